"""scikit-learn's own NMF tests, run against nmfsep's core through a thin adapter.

The installed scikit-learn's ``sklearn/decomposition/tests/test_nmf.py`` is imported (not copied)
and each of its ``test_*`` functions becomes a test here, with its own parametrization. While one
runs, the names it looks up in its module (``NMF``, ``non_negative_factorization`` and the private
helpers it reaches through ``nmf``) are replaced by the adapter below, which calls
``nmfsep.factorize`` on V = X^T: scikit-learn's X (n_samples, n_features) = W_sk H_sk is
nmfsep's V (n_bins, n_frames) = W H with W = H_sk^T and H = W_sk^T.

What the adapter translates (and nothing more): parameter names (solver 'cd' is nmfsep's HALS,
beta_loss is beta, alpha_W/alpha_H with l1_ratio = 1 are scaled into l1_H/l1_W as scikit-learn
scales them), the layout, scikit-learn's init=None rule, reconstruction_err_ (sqrt(2 D)), and
the wording of refusals: a ValueError from nmfsep is re-raised as a ValueError worded as
scikit-learn words it (WORDING), so a test that expects scikit-learn's message checks that
nmfsep refuses the same thing with a ValueError. nmfsep's own normalisation of W is switched off
(scikit-learn has none). Items that do not apply are skipped (REASONS); items where nmfsep
differs on purpose run as expected failures (DIFFERENCES); every reason is written below.
"""

import functools
import math
import re
from contextlib import contextmanager

import numpy as np
import pytest

sk = pytest.importorskip("sklearn.decomposition.tests.test_nmf")
from sklearn.decomposition import NMF as SkNMF  # noqa: E402
from sklearn.decomposition import MiniBatchNMF as SkMiniBatchNMF  # noqa: E402

from nmfsep import nmf as core  # noqa: E402

# Items that do not apply: skipped, with these reasons.
REASONS = {
    "minibatch": "MiniBatchNMF (online updates over mini-batches): nmfsep has no such solver",
    "sparse": "scipy.sparse input: nmfsep factorizes dense arrays only (spectrograms are dense)",
    "l2": "an L2 penalty (alpha_W/alpha_H with l1_ratio < 1): nmfsep has L1 and temporal-continuity "
          "terms only",
    "estimator api": "scikit-learn's estimator API (get_feature_names_out), not the factorization",
}
# Items that apply but where nmfsep differs from scikit-learn on purpose: they run and must fail
# (an expected failure, reported as xfail; one that passes fails the run, so this list stays true).
DIFFERENCES = {
    "warnings": "scikit-learn warns (ConvergenceWarning; W or H ignored without init='custom'); "
                "nmfsep's library never warns: it returns n_iter, and uses a W or H given without "
                "init='custom' as the start (factorize's docstring)",
    "zeros for cd": "scikit-learn refuses an H full of zeros for solver='cd' too; nmfsep's HALS "
                    "learns from one (test_nmf.py::test_hals_learns_from_a_starting_factor_full_of_zeros), "
                    "its MU refuses one as scikit-learn does "
                    "(test_nmf.py::test_mu_refuses_a_starting_factor_full_of_zeros)",
    "dtype": "scikit-learn refuses (TypeError) a custom W or H whose dtype is not X's; nmfsep converts "
             "it to V's work dtype (test_nmf.py::test_float32_starting_factors_with_float64_V_are_converted)",
    "negative beta with zeros": "scikit-learn refuses beta_loss <= 0 when X holds zeros; nmfsep floors "
                                "V there instead (test_nmf.py::test_zeros_in_V_give_no_nan_or_inf); "
                                "it fails on the dense X, before its sparse part",
    "stopping rule": "the same tol stops nmfsep's MU earlier: its rule compares the objective D, "
                     "scikit-learn's sqrt(2 D) (factorize's docstring); here nmfsep stops after 110 "
                     "iterations (error 0.016), scikit-learn after 930; with tol=0 nmfsep reaches 3e-5",
}

# Whole tests that do not apply or differ (parametrized items are sorted out in ``verdict``).
WHOLE_TESTS = {
    "test_convergence_warning": "warnings",
    "test_nmf_w_h_not_used_warning": "warnings",
    "test_minibatch_nmf_transform": "minibatch",
    "test_mbnmf_inverse_transform": "minibatch",
    "test_minibatch_nmf_negative_beta_loss": "minibatch",
    "test_nmf_minibatchnmf_equivalence": "minibatch",
    "test_minibatch_nmf_partial_fit": "minibatch",
    "test_minibatch_nmf_verbose": "minibatch",
    "test_special_sparse_dot": "sparse",
    "test_beta_divergence": "sparse",              # every item compares with a CSR matrix
    "test_nmf_multiplicative_update_sparse": "sparse",
    "test_nmf_decreasing": "l2",                   # alpha_W=0.1, l1_ratio=0.5 throughout
    "test_nmf_dtype_match": "l2",                  # alpha_W=alpha_H=1.0, l1_ratio=0 throughout
    "test_feature_names_out": "estimator api",
    "test_nmf_negative_beta_loss": "negative beta with zeros",
    "test_non_negative_factorization_checking": "zeros for cd",
    "test_nmf_custom_init_dtype_error": "dtype",
}
ITEMS = {("test_nmf_inverse_transform", "mu"): "stopping rule"}
SPARSE_PARAMETERS = {"sparse_container", "csr_container", "csc_container"}


def verdict(name, params):
    """The key in REASONS (skip) or DIFFERENCES (expected failure) for this item, or None."""
    if params.get("Estimator") is SkMiniBatchNMF:
        return "minibatch"
    if name in WHOLE_TESTS:
        return WHOLE_TESTS[name]
    if SPARSE_PARAMETERS & set(params):
        return "sparse"
    # tests parametrized over alpha_W/alpha_H keep scikit-learn's default l1_ratio = 0: all L2
    if params.get("alpha_W", 0) != 0 or params.get("alpha_H", 0) not in (0, "same"):
        return "l2"
    solver = params.get("solver")
    return ITEMS.get((name, solver)) if isinstance(solver, str) else None


class NotApplicable(Exception):
    """Raised by the adapter for a feature nmfsep does not have (args[0]: a key of REASONS)."""


# nmfsep's refusal (a ValueError) -> scikit-learn's wording of the same refusal
WORDING = [
    (r"negative value", lambda m, s: "Negative values in data passed to NMF"),
    (r"init='(\w+)' needs k <= min", lambda m, s: f"init = '{m.group(1)}' can only be used when "
                                                  "n_components <= min(n_samples, n_features)"),
    (r"solver='hals' minimises the Euclidean cost \(beta=2\), got beta=([-\d.e]+)",
     lambda m, s: f"Invalid beta_loss parameter: solver 'cd' does not handle beta_loss = {m.group(1)}"),
    # H = W_sk^T: its second dimension is W_sk's first
    (r"H must have shape \((\d+), (\d+)\), got \((\d+), (\d+)\)",
     lambda m, s: "Array with wrong " + ("first" if m.group(2) != m.group(4) else "second")
                  + " dimension passed to NMF (input W)"),
]


@contextmanager
def sklearn_wording():
    try:
        yield
    except ValueError as exc:
        for pattern, words in WORDING:
            match = re.search(pattern, str(exc))
            if match:
                raise ValueError(f"{words(match, str(exc))} (nmfsep: {exc})") from exc
        raise


def dense(X):
    if hasattr(X, "toarray"):
        raise NotApplicable("sparse")
    return np.asarray(X)


def seed_of(random_state):
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    return random_state


class NMF:
    """scikit-learn's NMF estimator, computed by nmfsep.factorize on X^T."""

    def __init__(self, n_components="auto", *, init=None, solver="cd", beta_loss="frobenius",
                 tol=1e-4, max_iter=200, random_state=None, alpha_W=0.0, alpha_H="same",
                 l1_ratio=0.0, verbose=0, shuffle=False):
        self.n_components, self.init, self.solver, self.beta_loss = n_components, init, solver, beta_loss
        self.tol, self.max_iter, self.random_state = tol, max_iter, random_state
        self.alpha_W, self.alpha_H, self.l1_ratio = alpha_W, alpha_H, l1_ratio

    def _options(self, X):
        n_samples, n_features = X.shape
        alpha_H = self.alpha_W if self.alpha_H == "same" else self.alpha_H
        if (self.alpha_W or alpha_H) and self.l1_ratio < 1:
            raise NotApplicable("l2")
        return dict(beta=self.beta_loss, solver={"cd": "hals"}.get(self.solver, self.solver),
                    tol=self.tol, max_iter=self.max_iter, normalize_W=False,
                    l1_H=n_features * self.alpha_W * self.l1_ratio,       # on W_sk = H^T
                    l1_W=n_samples * alpha_H * self.l1_ratio)             # on H_sk = W^T

    def fit_transform(self, X, y=None, W=None, H=None):
        X = dense(X)
        k = self.n_components
        if k in ("auto", None):
            k = H.shape[0] if self.init == "custom" and H is not None else X.shape[1]
        init = self.init or ("nndsvda" if k <= min(X.shape) else "random")
        options = self._options(X)
        start = dict(W=np.asarray(H).T, H=np.asarray(W).T) if init == "custom" else {}
        with sklearn_wording():
            result = core.factorize(X.T, k, init=init, seed=seed_of(self.random_state), **start,
                                    **options)
        self.components_ = result.W.T
        self.n_components_ = self._n_components = k
        self.n_iter_ = result.n_iter
        self.reconstruction_err_ = math.sqrt(2 * core.beta_divergence(X.T, result.W, result.H,
                                                                      self.beta_loss))
        return result.H.T

    def fit(self, X, y=None, **params):
        self.fit_transform(X, **params)
        return self

    def transform(self, X):
        X = dense(X)
        options = self._options(X)
        with sklearn_wording():
            result = core.factorize(X.T, self.components_.shape[0], W=self.components_.T,
                                    update_W=False, seed=seed_of(self.random_state), **options)
        self.n_iter_ = result.n_iter
        return result.H.T

    def inverse_transform(self, X):
        return X @ self.components_


def non_negative_factorization(X, W=None, H=None, n_components="auto", *, init=None, update_H=True,
                               solver="cd", beta_loss="frobenius", tol=1e-4, max_iter=200,
                               alpha_W=0.0, alpha_H="same", l1_ratio=0.0, random_state=None,
                               verbose=0, shuffle=False):
    """scikit-learn's function: (W_sk, H_sk, n_iter); update_H=False learns W_sk for a fixed H."""
    est = NMF(n_components, init=init, solver=solver, beta_loss=beta_loss, tol=tol,
              max_iter=max_iter, random_state=random_state, alpha_W=alpha_W, alpha_H=alpha_H,
              l1_ratio=l1_ratio)
    if update_H:
        W = est.fit_transform(X, W=W, H=H)
        return W, est.components_, est.n_iter_
    est.components_ = np.asarray(H)
    return est.transform(X), est.components_, est.n_iter_


def _initialize_nmf(X, n_components, init=None, eps=1e-6, random_state=None):
    """nmfsep's start (the same checks and inits as factorize) for V = X^T: (W_sk, H_sk)."""
    init = init or ("nndsvda" if n_components <= min(X.shape) else "random")
    with sklearn_wording():
        V = core.check_spectrogram(X.T)
        W, Ht = core._start(V, n_components, init, seed_of(random_state), None, None, np.float64)
    return Ht, W.T


def _beta_divergence(X, W, H, beta, square_root=False):
    value = core.beta_divergence(dense(X).T, H.T, W.T, beta)
    return math.sqrt(2 * value) if square_root else value


class _Internals:
    """What the tests reach through ``nmf`` (scikit-learn's private module)."""

    _initialize_nmf = staticmethod(_initialize_nmf)
    _beta_divergence = staticmethod(_beta_divergence)


def adapted(name, test):
    """scikit-learn's test ``test`` run against the adapter (same signature and marks)."""

    @functools.wraps(test)
    def run(**params):
        key = verdict(name, params)
        if key in REASONS:
            pytest.skip(REASONS[key])
        params = {name: NMF if value is SkNMF else value for name, value in params.items()}
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sk, "NMF", NMF)
            patch.setattr(sk, "non_negative_factorization", non_negative_factorization)
            patch.setattr(sk, "nmf", _Internals)
            try:
                test(**params)
            except NotApplicable as exc:
                pytest.skip(REASONS[exc.args[0]])
            except (Exception, pytest.fail.Exception):     # an error, or a failed check
                if key is None:
                    raise
                pytest.xfail(DIFFERENCES[key])
        if key is not None:
            pytest.fail(f"listed as a difference ({key}) but it passes: update DIFFERENCES")

    return run


for _name, _test in list(vars(sk).items()):
    if _name.startswith("test_") and callable(_test):
        globals()[_name] = adapted(_name, _test)
