"""nmfsep.nmf: the factorization core (scikit-learn's tests/test_nmf.py is the model)."""

import re
import warnings

import numpy as np
import pytest

from nmfsep.errors import BadValueError, NmfsepError
from nmfsep.nmf import (beta_divergence, deep_factorize, factorize, kmeans, mu,
                        numerical_floor)
from nmfsep.nmf import _kernels, _parallel
from nmfsep.nmf.penalties import temporal_continuity

BETAS = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]


def low_rank(m=40, n=300, k=4, seed=0, noise=0.0, dtype=np.float32):
    """A non-negative (m, n) matrix of rank k, plus optional uniform noise."""
    rng = np.random.default_rng(seed)
    V = rng.random((m, k)) @ rng.random((k, n)) + noise * rng.random((m, n))
    return V.astype(dtype)


def custom_start(m, n, k, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((m, k)) + 0.1, rng.random((k, n)) + 0.1


def sklearn_mu(V, W0, H0, beta_loss, n_iter):
    NMF = pytest.importorskip("sklearn.decomposition").NMF
    model = NMF(W0.shape[1], init="custom", solver="mu", beta_loss=beta_loss, max_iter=n_iter,
                tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W = model.fit_transform(V, W=W0.copy(), H=H0.copy())
    return W, model.components_


def euclidean_precision(V):
    """The documented accuracy of the beta = 2 objective in float32: it is computed from W^T V
    and H H^T (no m x n temporary), so it is exact up to about 1e-6 * ||V||^2 / 2."""
    return 1e-6 * 0.5 * float(np.sum(np.asarray(V, np.float64) ** 2))


# ------------------------------------------------------------------ shapes, types, signs

@pytest.mark.parametrize("beta, solver", [(1.0, "mu"), (0.0, "mu"), (0.5, "mu"), (2.0, "mu"),
                                          (2.0, "hals"), (3.0, "mu")])
@pytest.mark.parametrize("init", ["random", "nndsvd", "nndsvda", "nndsvdar"])
def test_factors_are_non_negative_for_every_solver_and_init(beta, solver, init):
    V = low_rank(noise=0.05)
    result = factorize(V, 5, beta=beta, solver=solver, init=init, max_iter=30, seed=0)
    assert result.W.min() >= 0 and result.H.min() >= 0
    assert np.all(np.isfinite(result.W)) and np.all(np.isfinite(result.H))
    assert result.W.shape == (40, 5) and result.H.shape == (5, 300)
    assert len(result.losses) == result.n_iter + 1


def test_float32_in_gives_float32_out():
    result = factorize(low_rank(dtype=np.float32), 3, max_iter=5)
    assert result.W.dtype == np.float32 and result.H.dtype == np.float32


def test_float64_in_gives_float64_out_and_integers_give_float32():
    assert factorize(low_rank(dtype=np.float64), 3, max_iter=5).W.dtype == np.float64
    V_int = (100 * low_rank()).astype(np.int32)
    assert factorize(V_int, 3, max_iter=5).H.dtype == np.float32


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_caller_arrays_are_never_modified(beta):
    V = low_rank(noise=0.1)
    V_fortran = np.asfortranarray(V)          # its transpose is used without a copy
    W0, H0 = custom_start(40, 300, 4)
    copies = [A.copy() for A in (V, V_fortran, W0, H0)]
    factorize(V, 4, beta=beta, init="custom", W=W0, H=H0, max_iter=20)
    factorize(V_fortran, 4, beta=beta, W=W0, update_W=False, max_iter=20)
    for original, copy in zip((V, V_fortran, W0, H0), copies):
        np.testing.assert_array_equal(original, copy)


# ------------------------------------------------------------------ the divergences

@pytest.mark.parametrize("beta", BETAS)
def test_reported_loss_equals_the_naive_divergence_of_the_returned_factors(beta):
    V = low_rank(noise=0.2)
    result = factorize(V, 4, beta=beta, solver="mu", max_iter=15, tol=0, seed=0)
    expected = beta_divergence(V, result.W, result.H, beta)
    precision = euclidean_precision(V) if beta == 2 else 0.0
    assert result.losses[-1] == pytest.approx(expected, rel=1e-5, abs=precision)


def test_euclidean_loss_is_exact_in_float64():
    V = low_rank(noise=0.2, dtype=np.float64)
    for solver in ("mu", "hals"):
        result = factorize(V, 4, beta=2, solver=solver, max_iter=15, tol=0, seed=0)
        assert result.losses[-1] == pytest.approx(beta_divergence(V, result.W, result.H, 2),
                                                  rel=1e-9)


@pytest.mark.parametrize("beta", [0.0, 1.0, 1.5])
def test_divergence_is_exact_across_several_frame_blocks(beta):
    V = low_rank(n=3 * mu.BLOCK + 17, noise=0.2)
    result = factorize(V, 4, beta=beta, solver="mu", max_iter=5, tol=0, seed=0)
    assert result.losses[-1] == pytest.approx(beta_divergence(V, result.W, result.H, beta),
                                              rel=1e-5)


@pytest.mark.parametrize("beta, solver", [(1.0, "mu"), (0.5, "mu"), (2.0, "hals"), (2.0, "mu")])
def test_worker_threads_give_the_single_threaded_result(monkeypatch, beta, solver):
    V = low_rank(n=3 * _parallel.CHUNK_ROWS + 17, noise=0.2)
    single = factorize(V, 4, beta=beta, solver=solver, max_iter=10, tol=0, seed=0)
    monkeypatch.setattr(_parallel, "MIN_PARALLEL_SIZE", 0)
    monkeypatch.setattr(_parallel, "n_threads", lambda: 2)
    threaded = factorize(V, 4, beta=beta, solver=solver, max_iter=10, tol=0, seed=0)
    # tasks (frame blocks, row chunks) and the order their sums are combined in do not depend on
    # the threads, so neither does the result
    np.testing.assert_array_equal(threaded.W, single.W)
    np.testing.assert_array_equal(threaded.H, single.H)
    np.testing.assert_array_equal(threaded.losses, single.losses)


def test_fast_log_is_accurate_to_float32_precision():
    rng = np.random.default_rng(0)
    values = np.concatenate([np.exp(rng.uniform(-80, 80, 20000)),
                             rng.uniform(0.5, 2.0, 20000)]).astype(np.float32)
    out = np.empty_like(values)
    _kernels.log_array(values, out)
    exact = np.log(values.astype(np.float64))
    error = np.abs(out - exact) / np.maximum(np.abs(exact), 1e-3)
    assert error.max() < 2e-7


@pytest.mark.parametrize("beta", BETAS)
def test_mu_loss_never_increases(beta):
    V = low_rank(noise=0.3, dtype=np.float64)
    result = factorize(V, 6, beta=beta, solver="mu", init="random", max_iter=60, tol=0,
                       seed=3)
    steps = np.diff(result.losses)
    assert steps.max() <= 1e-9 * result.losses[0], steps.max()
    assert result.losses[-1] < result.losses[0]


def test_hals_loss_never_increases():
    V = low_rank(noise=0.3, dtype=np.float64)
    result = factorize(V, 6, beta=2, solver="hals", init="random", max_iter=60, tol=0, seed=3)
    assert np.diff(result.losses).max() <= 1e-9 * result.losses[0]


def test_hals_frame_pass_matches_the_whole_matrix_update(monkeypatch):
    # the blocked H update (3 blocks of frames here) must do the whole-matrix update's arithmetic
    # and hand back V H^T and H H^T of the new H; with DELTA = 0 every row gets all its sweeps
    from nmfsep.nmf import hals

    monkeypatch.setattr(hals, "DELTA", 0.0)
    V = low_rank(n=2 * mu.BLOCK + 70, noise=0.3, dtype=np.float64)
    W, H = custom_start(40, V.shape[1], 5)
    Vt, norm_V = np.ascontiguousarray(V.T), float(np.sum(V * V))
    with _parallel.Workers(2) as workers:
        Ht_whole, Ht_blocks = np.ascontiguousarray(H.T), np.ascontiguousarray(H.T)
        expected = hals.update_H(W, Ht_whole, Vt @ W, W.T @ W, norm_V, workers, 0.0, l1_H=0.1)
        frame_pass = hals.FramePass(Vt, 5, workers)
        assert len(frame_pass.blocks) == 3
        loss, (VHt, HHt) = frame_pass.update_H(W, Ht_blocks, norm_V, 0.0, l1_H=0.1)
    np.testing.assert_allclose(Ht_blocks, Ht_whole, rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(expected, rel=1e-10)
    assert loss == pytest.approx(beta_divergence(V, W, Ht_blocks.T, 2), rel=1e-10)
    np.testing.assert_allclose(VHt, V @ Ht_blocks, rtol=1e-10)
    np.testing.assert_allclose(HHt, Ht_blocks.T @ Ht_blocks, rtol=1e-10)
    assert frame_pass.update_H(W, Ht_blocks, norm_V, 0.0, want_VHt=False)[1] is None


@pytest.mark.parametrize("beta", [0.5, 1.0])
def test_factors_never_hold_float32_subnormals(beta):
    # exact sparse activations: the zero ones decay geometrically under the updates and would
    # reach the subnormal range (10^-38) within these iterations
    rng = np.random.default_rng(0)
    H_true = rng.random((4, 300)) * (rng.random((4, 300)) < 0.3)
    V = (rng.random((40, 4)) ** 3 @ H_true).astype(np.float32)
    result = factorize(V, 4, beta=beta, init="random", max_iter=400, tol=0, seed=0)
    tiny = np.finfo(np.float32).tiny
    for factor in (result.W, result.H):
        assert not np.any((factor > 0) & (factor < tiny))


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_zeros_in_V_give_no_nan_or_inf(beta):
    V = low_rank(noise=0.1)
    V[V < np.quantile(V, 0.3)] = 0
    V[5] = 0                                    # a silent bin
    V[:, 7] = 0                                 # a silent frame
    result = factorize(V, 4, beta=beta, max_iter=40, seed=0)
    assert np.all(np.isfinite(result.losses))
    assert np.all(np.isfinite(result.W)) and np.all(np.isfinite(result.H))
    assert result.losses[-1] == pytest.approx(beta_divergence(V, result.W, result.H, beta),
                                              rel=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0])
def test_an_all_zero_V_gives_the_floor_loss_and_finite_factors(beta):
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no overflow or invalid-value warnings either
        V = np.zeros((10, 20), np.float32)
        result = factorize(V, 2, beta=beta, init="random", max_iter=10)
    assert np.all(np.isfinite(result.W)) and np.all(np.isfinite(result.H))
    # the best W H can do is the floor itself: d(0 | floor) per entry (0 for beta <= 0, where
    # V is floored too)
    floor = numerical_floor(V)
    best = 0.0 if beta <= 0 else V.size * floor ** beta / beta
    assert result.losses[-1] <= best * (1 + 1e-5) + 1e-12


def test_a_quiet_spectrogram_factorizes_like_a_loud_one():
    V = low_rank(noise=0.1)
    V[V < np.quantile(V, 0.2)] = 0
    quiet = V * np.float32(1e-9)
    assert numerical_floor(quiet) == pytest.approx(1e-9 * numerical_floor(V), rel=1e-5)
    # init="random" scales with V (the NNDSVD fills follow scikit-learn, which assume mean(V) ~ 1)
    loud_result = factorize(V, 4, init="random", max_iter=50, seed=0)
    quiet_result = factorize(quiet, 4, init="random", max_iter=50, seed=0)
    np.testing.assert_allclose(quiet_result.W, loud_result.W, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(quiet_result.losses, 1e-9 * loud_result.losses, rtol=1e-3)


# ------------------------------------------------------------------ agreement and recovery

@pytest.mark.parametrize("beta, name", [(1.0, "kullback-leibler"), (2.0, "frobenius")])
def test_mu_loss_matches_scikit_learn_after_100_iterations(beta, name):
    V = low_rank(noise=0.1, dtype=np.float64)
    W0, H0 = custom_start(*V.shape, 6)
    W_sk, H_sk = sklearn_mu(V, W0, H0, name, 100)
    expected = beta_divergence(V, W_sk, H_sk, beta)
    result = factorize(V, 6, beta=beta, solver="mu", init="custom", W=W0, H=H0, max_iter=100,
                       tol=0)
    assert result.n_iter == 100
    assert result.losses[-1] == pytest.approx(expected, rel=1e-3)


def test_float32_kl_matches_scikit_learn_too():
    V = low_rank(noise=0.1, dtype=np.float32)
    W0, H0 = (F.astype(np.float32) for F in custom_start(*V.shape, 6))
    W_sk, H_sk = sklearn_mu(V, W0, H0, "kullback-leibler", 100)
    result = factorize(V, 6, beta=1, solver="mu", init="custom", W=W0, H=H0, max_iter=100,
                       tol=0)
    assert result.losses[-1] == pytest.approx(beta_divergence(V, W_sk, H_sk, 1), rel=1e-3)


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda", "nndsvdar"])
def test_svd_inits_match_scikit_learn(init):
    nmf_module = pytest.importorskip("sklearn.decomposition._nmf")
    V = low_rank(noise=0.2, dtype=np.float64)
    W_sk, H_sk = nmf_module._initialize_nmf(V, 4, init=init if init != "nndsvdar" else "nndsvd",
                                            random_state=0)
    result = factorize(V, 4, init=init if init != "nndsvdar" else "nndsvd", max_iter=0,
                       normalize_W=False)
    np.testing.assert_allclose(result.W @ result.H, W_sk @ H_sk, rtol=1e-6, atol=1e-8)


def test_exact_recovery_of_a_separable_low_rank_matrix():
    rng = np.random.default_rng(4)
    W_true = rng.random((30, 3)) ** 4
    H_true = rng.random((3, 200))
    H_true[:, :3] = np.eye(3)                    # each component alone in one frame
    V = W_true @ H_true
    result = factorize(V, 3, beta=2, max_iter=2000, tol=0, seed=0)
    assert np.linalg.norm(V - result.W @ result.H) < 1e-6 * np.linalg.norm(V)
    unit = W_true / np.linalg.norm(W_true, axis=0)
    cosines = unit.T @ (result.W / np.linalg.norm(result.W, axis=0))
    assert np.all(cosines.max(axis=1) > 1 - 1e-6)


def test_kl_recovers_a_low_rank_matrix():
    V = low_rank(k=3, dtype=np.float64)
    result = factorize(V, 3, beta=1, max_iter=1500, tol=0, seed=0)
    assert result.losses[-1] < 1e-4 * result.losses[0]


def test_hals_beats_mu_for_euclidean_in_the_same_iterations():
    V = low_rank(noise=0.2)
    hals_loss = factorize(V, 6, beta=2, max_iter=30, tol=0, seed=0).losses[-1]
    mu_loss = factorize(V, 6, beta=2, solver="mu", max_iter=30, tol=0, seed=0).losses[-1]
    assert hals_loss < mu_loss


@pytest.mark.parametrize("init", ["random", "nndsvdar"])
def test_same_seed_gives_the_same_result(init):
    V = low_rank(n=2 * mu.BLOCK + 5, noise=0.1)
    first = factorize(V, 4, init=init, max_iter=20, seed=7)
    second = factorize(V, 4, init=init, max_iter=20, seed=7)
    np.testing.assert_array_equal(first.W, second.W)
    np.testing.assert_array_equal(first.H, second.H)
    other = factorize(V, 4, init=init, max_iter=20, seed=8)
    assert not np.array_equal(first.W, other.W)


# ------------------------------------------------------------------ fixed factors

def test_fixed_bases_stay_fixed_and_activations_fit():
    V = low_rank(noise=0.05)
    W_known = factorize(V, 4, max_iter=100, seed=0).W
    for beta in (1.0, 2.0):
        result = factorize(V, 4, beta=beta, W=W_known, update_W=False, max_iter=50, seed=0)
        np.testing.assert_array_equal(result.W, W_known)
        assert result.losses[-1] < 0.5 * result.losses[0]


def test_first_columns_stay_fixed_while_the_others_learn():
    V = low_rank(noise=0.05)
    known = factorize(V[:, :150], 2, max_iter=50, seed=0).W
    for beta in (1.0, 2.0):
        result = factorize(V, 5, beta=beta, W=known, fixed_W_columns=range(2), max_iter=50,
                           seed=0)
        np.testing.assert_array_equal(result.W[:, :2], known)
        assert np.all(np.isfinite(result.W)) and result.losses[-1] < result.losses[0]


def test_fixed_columns_accept_a_boolean_mask():
    V = low_rank(noise=0.05)
    W0, H0 = custom_start(40, 300, 4)
    mask = np.array([False, True, False, True])
    result = factorize(V, 4, init="custom", W=W0, H=H0, fixed_W_columns=mask, max_iter=20)
    np.testing.assert_allclose(result.W[:, mask], W0[:, mask].astype(np.float32))
    assert not np.allclose(result.W[:, ~mask], W0[:, ~mask])


def test_fixed_activations_stay_fixed():
    V = low_rank(noise=0.05)
    H_known = factorize(V, 4, max_iter=50, seed=0).H
    result = factorize(V, 4, H=H_known, update_H=False, max_iter=30)
    np.testing.assert_array_equal(result.H, H_known)


# ------------------------------------------------------------------ penalties and scaling

def test_l1_on_H_makes_activations_sparser_and_is_counted_in_the_loss():
    V = low_rank(noise=0.1)
    plain = factorize(V, 6, max_iter=100, seed=0)
    sparse = factorize(V, 6, l1_H=5.0, max_iter=100, seed=0)
    assert sparse.H.sum() < 0.9 * plain.H.sum()
    expected = beta_divergence(V, sparse.W, sparse.H, 1) + 5.0 * sparse.H.astype(float).sum()
    assert sparse.losses[-1] == pytest.approx(expected, rel=1e-5)


def test_l1_on_W_makes_bases_sparser():
    V = low_rank(noise=0.1)
    plain = factorize(V, 6, beta=2, max_iter=100, seed=0, normalize_W=False)
    sparse = factorize(V, 6, beta=2, l1_W=20.0, max_iter=100, seed=0)
    assert np.mean(sparse.W == 0) > np.mean(plain.W == 0) + 0.05


def test_temporal_smoothness_makes_activations_smoother():
    rng = np.random.default_rng(0)
    V = low_rank(noise=0.0) * rng.uniform(0.5, 1.5, (1, 300)).astype(np.float32)
    plain = factorize(V, 4, max_iter=80, seed=0)
    smooth = factorize(V, 4, smooth_H=5.0, max_iter=80, seed=0)
    assert temporal_continuity(smooth.H.T) < 0.8 * temporal_continuity(plain.H.T)
    assert np.all(np.isfinite(smooth.losses))


def test_bases_are_unit_norm_and_normalising_leaves_the_product_alone():
    V = low_rank(noise=0.1)
    normalised = factorize(V, 4, max_iter=30, seed=0)
    raw = factorize(V, 4, max_iter=30, seed=0, normalize_W=False)
    np.testing.assert_allclose(np.linalg.norm(normalised.W, axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(normalised.W @ normalised.H, raw.W @ raw.H, rtol=1e-3,
                               atol=1e-4 * V.max())
    assert normalised.losses[-1] == pytest.approx(raw.losses[-1], rel=1e-4)


# ------------------------------------------------------------------ stopping and progress

def test_callback_sees_every_iteration_and_can_stop():
    seen = []
    result = factorize(low_rank(), 3, max_iter=50, tol=0,
                       callback=lambda it, loss: seen.append((it, loss)) or it == 12)
    assert [it for it, _ in seen] == list(range(1, 13))
    assert result.n_iter == 12 and len(result.losses) == 13
    assert [loss for _, loss in seen] == list(result.losses[1:])


@pytest.mark.parametrize("kwargs", [dict(beta=1.0), dict(beta=2.0), dict(beta=0.0),
                                    dict(beta=1.0, update_W=False)])
def test_tol_stops_early_and_the_last_loss_is_that_of_the_returned_factors(kwargs):
    V = low_rank(noise=0.2)
    if kwargs.get("update_W") is False:
        kwargs["W"] = factorize(V, 4, max_iter=30, seed=0).W
    result = factorize(V, 4, max_iter=1000, tol=1e-3, seed=0, **kwargs)
    assert result.n_iter < 1000 and result.n_iter % 10 == 0
    assert len(result.losses) == result.n_iter + 1
    expected = beta_divergence(V, result.W, result.H, kwargs["beta"])
    assert result.losses[-1] == pytest.approx(expected, rel=1e-5, abs=euclidean_precision(V))


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("bad, message", [
    (-1.0, "1 negative value"),
    (np.nan, "1 NaN value"),
    (np.inf, "1 infinite value"),
])
def test_bad_entries_raise_an_error_naming_the_problem(bad, message):
    V = low_rank()
    V[3, 4] = bad
    with pytest.raises(NmfsepError, match=message):
        factorize(V, 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(k=0), "k must be a positive integer"),
    (dict(k=2, beta="banana"), "unknown beta"),
    (dict(k=2, solver="als"), "unknown solver"),
    (dict(k=2, init="pca"), "unknown init"),
    (dict(k=2, beta=1.0, solver="hals"), "beta=2"),
    (dict(k=50), "k <= min"),
    (dict(k=2, init="custom"), "needs both W"),
    (dict(k=2, l1_H=-1.0), "l1_H must be"),
])
def test_bad_options_raise_an_error_that_names_the_fix(kwargs, message):
    with pytest.raises(NmfsepError, match=message):
        factorize(low_rank(), **kwargs)


def test_complex_or_one_dimensional_input_is_refused():
    with pytest.raises(NmfsepError, match="complex"):
        factorize(low_rank().astype(np.complex64), 2)
    with pytest.raises(NmfsepError, match="2-D"):
        factorize(np.ones(10), 2)



@pytest.mark.parametrize("bad", [
    dict(V=-1.0), dict(k=0), dict(beta="banana"), dict(solver="als"), dict(init="custom"),
])
def test_bad_values_are_value_errors_too(bad):
    V = low_rank()
    if "V" in bad:
        V[0, 0] = bad["V"]
    options = {key: value for key, value in bad.items() if key != "V"}
    with pytest.raises(ValueError) as caught:
        factorize(V, **{"k": 2, **options})
    assert isinstance(caught.value, NmfsepError)


@pytest.mark.parametrize("beta", BETAS)
def test_a_subnormal_entry_of_V_diverges_like_a_zero(beta):
    rng = np.random.default_rng(0)
    V, W, H = 10 * rng.random((10, 2)), 10 + rng.random((10, 2)), 1 + rng.random((2, 2))
    V[0, 0] = 0.0
    at_zero = beta_divergence(V, W, H, beta)
    V[0, 0] = 1e-323
    assert beta_divergence(V, W, H, beta) == pytest.approx(at_zero, rel=1e-12)


def start_with_zeros(V, zero):
    """A custom start (W, H) for V whose factor ``zero`` ('W' or 'H') is all zeros."""
    W, H = custom_start(*V.shape, 2)
    start = {"W": W, "H": H}
    start[zero] = np.zeros_like(start[zero])
    return start


@pytest.mark.parametrize("zero", ["W", "H"])
def test_mu_refuses_a_starting_factor_full_of_zeros(zero):
    V = low_rank(dtype=np.float64)
    start = start_with_zeros(V, zero)
    with pytest.raises(ValueError, match=f"{zero} is full of zeros"):
        factorize(V, 2, beta=2, solver="mu", init="custom", **start)


def test_a_fixed_factor_full_of_zeros_is_refused_by_every_solver():
    V = low_rank(dtype=np.float64)
    with pytest.raises(NmfsepError, match="W is full of zeros"):
        factorize(V, 2, beta=2, solver="hals", W=np.zeros((V.shape[0], 2)), update_W=False)


@pytest.mark.parametrize("zero", ["W", "H"])
def test_hals_learns_from_a_starting_factor_full_of_zeros(zero):
    V = low_rank(dtype=np.float64)
    start = start_with_zeros(V, zero)
    result = factorize(V, 2, beta=2, solver="hals", init="custom", max_iter=50, **start)
    assert result.W.any() and result.H.any()
    assert result.losses[-1] < 0.1 * result.losses[0]


def test_float32_starting_factors_with_float64_V_are_converted():
    V = low_rank(dtype=np.float64)
    W, H = custom_start(*V.shape, 2)
    same = factorize(V, 2, init="custom", W=W.astype(np.float32).astype(np.float64),
                     H=H.astype(np.float32).astype(np.float64), max_iter=5)
    converted = factorize(V, 2, init="custom", W=W.astype(np.float32),
                          H=H.astype(np.float32), max_iter=5)
    assert converted.W.dtype == converted.H.dtype == np.float64
    np.testing.assert_array_equal(converted.W, same.W)
    np.testing.assert_array_equal(converted.H, same.H)

# ------------------------------------------------------------------ k-means and deep NMF

def clustered_frames(seed=0, n=400, k=4):
    rng = np.random.default_rng(seed)
    centers = 3 * rng.random((20, k))
    labels = rng.integers(0, k, n)
    return np.abs(centers[:, labels] + 0.4 * rng.standard_normal((20, n)))


def test_kmeans_objective_equals_scikit_learn_inertia_from_the_same_centroids():
    KMeans = pytest.importorskip("sklearn.cluster").KMeans
    V = clustered_frames()
    start = V[:, np.random.default_rng(1).choice(V.shape[1], 4, replace=False)]
    ours = kmeans(V, 4, init=start)
    theirs = KMeans(4, init=start.T, n_init=1, algorithm="lloyd", tol=0).fit(V.T)
    assert ours.losses[-1] == pytest.approx(theirs.inertia_, rel=1e-9)
    np.testing.assert_array_equal(ours.H.argmax(axis=0), theirs.labels_)
    np.testing.assert_allclose(ours.W, theirs.cluster_centers_.T, rtol=1e-9)


def test_kmeans_returns_centroid_columns_and_a_one_hot_H():
    V = clustered_frames()
    result = kmeans(V, 4, seed=0)
    assert result.W.shape == (20, 4) and result.H.shape == (4, 400)
    np.testing.assert_array_equal(result.H.sum(axis=0), 1.0)
    assert set(np.unique(result.H)) <= {0.0, 1.0}
    assert result.losses[-1] == pytest.approx(np.sum((V - result.W @ result.H) ** 2), rel=1e-9)


def test_soft_nmf_of_the_same_rank_reaches_an_objective_no_larger_than_kmeans():
    V = clustered_frames()
    clusters = kmeans(V, 4, seed=0)
    soft = factorize(V, 4, beta=2, init="custom", W=clusters.W, H=clusters.H, max_iter=50)
    assert 2 * soft.losses[-1] <= clusters.losses[-1]
    assert np.sum((V - soft.W @ soft.H) ** 2) <= clusters.losses[-1]


def test_deep_nmf_factors_are_non_negative_with_chained_shapes():
    V = low_rank(m=30, n=200, k=6, noise=0.05)
    result = deep_factorize(V, [6, 3], max_iter=30, seed=0)
    assert [layer.shape for layer in result.layers] == [(30, 6), (6, 3)]
    assert result.H.shape == (3, 200) and result.W.shape == (30, 3)
    assert min(layer.min() for layer in result.layers) >= 0 and result.H.min() >= 0
    np.testing.assert_allclose(result.W, result.layers[0] @ result.layers[1], rtol=1e-6)


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_deep_nmf_fine_tuning_never_increases_the_loss(beta):
    V = low_rank(m=30, n=200, k=6, noise=0.1, dtype=np.float64)
    result = deep_factorize(V, [6, 3], beta=beta, max_iter=40, tol=0, seed=0)
    assert np.diff(result.losses).max() <= 1e-9 * result.losses[0]
    assert result.losses[-1] < result.losses[0]
    assert result.losses[-1] == pytest.approx(
        beta_divergence(V, result.W, result.H, beta), rel=1e-9)


@pytest.mark.parametrize("V, beta", [(np.full((20, 30), 5e-324), 1.0),                        # subnormal float64
                                     (np.full((20, 30), 1e-40, np.float32), 1.0),             # subnormal float32
                                     (np.random.default_rng(0).random((20, 30)).astype(np.float32) * 1e20, 1.0),
                                     (np.random.default_rng(0).random((20, 30)) * 1e-200, 0.0)])  # IS: V^-2
def test_a_V_out_of_the_solvers_range_is_refused_with_the_scaling_hint_not_returned_as_nan(V, beta):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BadValueError, match=re.escape("scale V to values around 1 (V / V.mean())")):
            factorize(V, 2, beta=beta)
    result = factorize(V / V.mean(), 2, beta=beta)                   # as the hint says
    assert np.all(np.isfinite(result.W)) and np.all(np.isfinite(result.H)) and np.all(np.isfinite(result.losses))
