import warnings

import numpy as np
import pytest

from nmfsep import discriminative
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


def same_bases_twice_with_near_silent_frames():
    """Two sources of one kind (the same bases twice, as two models learned from the same audio)
    with every fourth frame 160 dB down: the solver flushes those frames' activations to 0."""
    rng = np.random.default_rng(0)
    m, k, n = 40, 4, 200
    W0 = (rng.random((m, k)) ** 4).astype(np.float32)
    W0 /= np.linalg.norm(W0, axis=0)
    S = np.stack([W0 @ rng.random((k, n)) for _ in range(2)]).astype(np.float32)
    S[:, :, ::4] *= 1e-8
    S /= S.sum(axis=0).mean()
    W = np.concatenate([W0, W0], axis=1)
    H = factorize(S.sum(axis=0), 2 * k, W=W, update_W=False).H
    assert np.any(H == 0)
    return S, W, H, [np.arange(k), np.arange(k, 2 * k)]


def test_two_models_with_the_same_bases_train_to_finite_bases_without_warnings():
    S, W, H, groups = same_bases_twice_with_near_silent_frames()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # no RuntimeWarning reaches the user
        trained = train(S, W, H, groups, 16, steps=5, rate=0.05)
    assert all(np.all(np.isfinite(b)) for b in (*trained.layers, trained.mask_bases))
    plain = discriminative.objective(S, H, Trained([], W), groups)
    assert np.isfinite(plain) and discriminative.objective(S, H, trained, groups) <= plain


def test_a_training_no_better_than_the_plain_bases_gives_them_back(problem, monkeypatch):
    S, W, H, groups = (x.astype(np.float32) if isinstance(x, np.ndarray) else x for x in problem)
    real = discriminative._gradients

    def ascent(*args):                                          # every step makes the masks worse
        grads, Ws = real(*args)
        return [-g for g in grads], Ws

    monkeypatch.setattr(discriminative, "_gradients", ascent)
    trained = train(S, W, H, groups, 2, steps=20, rate=0.05)
    assert trained.layers == []
    np.testing.assert_array_equal(trained.mask_bases, W)


def test_the_trained_bases_are_checked_on_the_first_check_frames(problem, monkeypatch):
    S, W, H, groups = (x.astype(np.float32) if isinstance(x, np.ndarray) else x for x in problem)
    seen = []
    real = discriminative.objective
    monkeypatch.setattr(discriminative, "objective", lambda S_, H_, *rest: seen.append((S_, H_)) or real(S_, H_, *rest))
    train(S, W, H, groups, 2, steps=5, rate=0.05, check_frames=4)
    assert len(seen) == 2 and all(np.array_equal(s, S[:, :, :4]) and np.array_equal(h, H[:, :4]) for s, h in seen)
    seen.clear()
    train(S, W, H, groups, 2, steps=5, rate=0.05)
    assert [s.shape[2] for s, _ in seen] == [S.shape[2]] * 2


def test_a_step_with_gradients_that_are_not_finite_is_skipped(problem, monkeypatch):
    S, W, H, groups = (x.astype(np.float32) if isinstance(x, np.ndarray) else x for x in problem)
    real = discriminative._gradients
    calls = []

    def overflowing_first(*args):
        grads, Ws = real(*args)
        calls.append(1)
        if len(calls) == 1:
            grads[0][0, 0] = np.nan
        return grads, Ws

    monkeypatch.setattr(discriminative, "_gradients", overflowing_first)
    trained = train(S, W, H, groups, 2, steps=50, rate=0.05)
    assert len(trained.layers) == 2
    assert all(np.all(np.isfinite(b)) for b in (*trained.layers, trained.mask_bases))
    assert discriminative.objective(S, H, trained, groups) < discriminative.objective(S, H, Trained([], W), groups)
