"""nmfsep.nmf: the factorization core (scikit-learn's tests/test_nmf.py is the model)."""

import warnings

import numpy as np
import pytest

from nmfsep.errors import NmfsepError
from nmfsep.nmf import beta_divergence, factorize


def low_rank(m=40, n=300, k=4, seed=0, noise=0.0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    V = rng.random((m, k)) @ rng.random((k, n)) + noise * rng.random((m, n))
    return V.astype(dtype)


def custom_start(m, n, k, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((m, k)) + 0.1, rng.random((k, n)) + 0.1


def test_kl_factors_are_non_negative_float32_with_paper_shapes():
    V = low_rank()
    result = factorize(V, 5, beta=1.0, max_iter=50, seed=0)
    assert result.W.shape == (40, 5) and result.H.shape == (5, 300)
    assert result.W.dtype == np.float32 and result.H.dtype == np.float32
    assert result.W.min() >= 0 and result.H.min() >= 0
    assert len(result.losses) == result.n_iter + 1


@pytest.mark.parametrize("beta, name", [(1.0, "kullback-leibler"), (2.0, "frobenius")])
def test_mu_loss_matches_scikit_learn_after_100_iterations(beta, name):
    NMF = pytest.importorskip("sklearn.decomposition").NMF
    V = low_rank(noise=0.1, dtype=np.float64)
    W0, H0 = custom_start(*V.shape, 6)
    model = NMF(6, init="custom", solver="mu", beta_loss=name, max_iter=100, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W_sk = model.fit_transform(V, W=W0.copy(), H=H0.copy())
    expected = beta_divergence(V, W_sk, model.components_, beta)
    result = factorize(V, 6, beta=beta, solver="mu", init="custom", W=W0, H=H0, max_iter=100,
                       tol=0)
    assert result.n_iter == 100
    assert result.losses[-1] == pytest.approx(expected, rel=1e-3)


def test_negative_entries_raise_an_error_naming_them():
    V = low_rank()
    V[3, 4] = -1.0
    with pytest.raises(NmfsepError, match="1 negative value"):
        factorize(V, 2)
