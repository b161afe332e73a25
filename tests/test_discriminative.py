import numpy as np
import pytest

from nmfsep.discriminative import Trained, _layer, _layer_gradients, _output_gradients, train, unfold
from nmfsep.nmf import factorize


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    m, n, k = 7, 9, 4
    S = rng.random((2, m, n)) + 0.1
    return S, rng.random((m, k)) + 0.1, rng.random((k, n)) + 0.1, [slice(0, 2), slice(2, 4)]


def objective(S, layers, mask_bases, H, groups):
    """sum_s KL(S_s | V * mask_s) after the layers: what training minimises."""
    V = S.sum(axis=0)
    H = unfold(H, layers, V)
    parts = np.stack([mask_bases[:, g] @ H[g] for g in groups])
    estimates = V * parts / parts.sum(axis=0)
    return float(np.sum(S * np.log(S / estimates) - S + estimates))


def numerical_gradient(f, X, eps=1e-6):
    grad = np.zeros_like(X)
    for index in np.ndindex(X.shape):
        up, down = X.copy(), X.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (f(up) - f(down)) / (2 * eps)
    return grad


def test_gradients_agree_with_finite_differences(problem):
    S, W, H, groups = problem
    V = S.sum(axis=0)
    layers = [W * 1.1, W * 0.9]
    mask_bases = W + 0.05
    # forward as train does, then back through both layers
    Hs, kept = [H], []
    for W_l in layers:
        H_l, products = _layer(W_l, Hs[-1], V)
        Hs.append(H_l)
        kept.append(products)
    grad_mask = np.empty_like(W)
    grad_H = _output_gradients(mask_bases, Hs[2], S, V, groups, grad_mask)
    grads = [np.empty_like(W), np.empty_like(W)]
    for layer in (1, 0):
        grad_H = _layer_gradients(layers[layer], Hs[layer], grad_H, grads[layer], *kept[layer])
    np.testing.assert_allclose(grad_mask, numerical_gradient(lambda X: objective(S, layers, X, H, groups), mask_bases),
                               rtol=1e-5, atol=1e-7)
    for layer in (0, 1):
        def f(X, layer=layer):
            changed = list(layers)
            changed[layer] = X
            return objective(S, changed, mask_bases, H, groups)
        np.testing.assert_allclose(grads[layer], numerical_gradient(f, layers[layer]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grad_H, numerical_gradient(lambda X: objective(S, layers, mask_bases, X, groups), H),
                               rtol=1e-5, atol=1e-7)


def test_a_layer_is_one_kl_update_of_the_core():
    rng = np.random.default_rng(1)
    V = rng.random((30, 40)).astype(np.float32) + 0.01
    W = rng.random((30, 5)).astype(np.float32)
    H = rng.random((5, 40)).astype(np.float32)
    core = factorize(V, 5, W=W, H=H, init="custom", update_W=False, max_iter=1, tol=0.0).H
    np.testing.assert_allclose(unfold(H, [W], V), core, rtol=1e-5)
    np.testing.assert_array_equal(unfold(H, [], V), H)


@pytest.mark.parametrize("n_layers, batch", [(0, None), (2, None), (2, 5)])
def test_training_lowers_the_objective_and_keeps_every_basis_positive(problem, n_layers, batch):
    S, W, H, groups = (x.astype(np.float32) if isinstance(x, np.ndarray) else x for x in problem)
    trained = train(S, W, H, groups, n_layers, steps=50, rate=0.05, batch=batch)
    assert len(trained.layers) == n_layers
    assert all(b.shape == W.shape and b.dtype == np.float32 and b.min() > 0 for b in (*trained.layers, trained.mask_bases))
    before = objective(S, [W] * n_layers, W, H, groups)
    assert objective(S, trained.layers, trained.mask_bases, H, groups) < 0.9 * before


def test_free_bases_join_every_copy_untrained(problem):
    _, W, _, _ = problem
    free = np.ones((W.shape[0], 3))
    joined = Trained([W, 2 * W], 3 * W).with_free(free)
    for bases, factor in zip((*joined.layers, joined.mask_bases), (1, 2, 3)):
        np.testing.assert_array_equal(bases, np.concatenate([factor * W, free], axis=1))
