"""Discriminative training for supervised separation: deep-unfolded NMF (pure numpy on matrices).

Bases learned on each source alone model it well, but nothing in them tells one source from
another. Given sources S (n_sources, n_bins, n) of a synthetic mixture V = sum_s S_s and the
activations H that the fixed bases W give for V, this trains (Le Roux, Hershey & Weninger 2015,
"Deep NMF for speech separation", ICASSP; its output layer is Weninger et al. 2014's
discriminative reconstruction bases) ``n_layers`` more KL multiplicative updates of H, each
with its own copy of the bases, and one more copy for the masks::

    H_l = H_{l-1} * (W_l^T (V / (W_l H_{l-1}))) / (W_l^T 1)          l = 1 ... L,  H_0 = H
    mask_s = W~_s H_L,s / sum_r W~_r H_L,r

All L + 1 copies start at W and are trained together to minimise sum_s KL(S_s | V * mask_s), by
Adam on log W (so they stay positive) over random batches of frames, back-propagating through
the layers, and averaged over the second half of the steps (Polyak). A split then fits H on its
mixture with W itself, runs the trained layers (``unfold``) and masks with W~ (at its own mask
exponent); with no layers this is Weninger's method alone.

Zeros of H (the solver flushes tiny activations to 0) stay 0 through every layer, so nothing
depends on their gradient; it is left out, since in near-silent frames it grows by N / d (up to
~1e4) per layer and overflowed float32 (two models with the same bases gave NaN). A step whose
gradients are still not finite is skipped, log W is kept in [LOG_MIN, LOG_MAX], and a training
that ends no better than the plain bases on its own mixtures (or not finite) gives the plain
bases back (no layers, W for the masks).
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

VERSION = 2  # of the training (raise it when the training changes): cached ones of another are not used
TINY = 1e-12  # added to every product that is divided by
_BETAS = (0.9, 0.999)  # Adam's
AVERAGE_FROM = 0.5  # the bases returned are the mean (in log) over the second half of the steps
LOG_MIN, LOG_MAX = float(np.log(1e-30)), float(np.log(1e30))  # log W stays in here: exp never overflows float32


@dataclass
class Trained:
    """The unfolded layers' bases (each (n_bins, k)) and the mask bases W~ (n_bins, k)."""

    layers: list[np.ndarray]
    mask_bases: np.ndarray

    def with_free(self, free: np.ndarray) -> "Trained":
        """The same with free bases (n_bins, f) appended, untrained, to every copy."""
        if free.shape[1] == 0:
            return self
        return Trained([np.concatenate([W, free], axis=1) for W in self.layers],
                       np.concatenate([self.mask_bases, free], axis=1))


def unfold(H: np.ndarray, layers: list[np.ndarray], V: np.ndarray) -> np.ndarray:
    """H (k, n) after one KL multiplicative update of V (n_bins, n) per layer's bases."""
    for W in layers:
        H = _layer(W, H, V)[0]
    return H


def train(S: np.ndarray, W: np.ndarray, H: np.ndarray, groups: list, n_layers: int,
          steps: int, rate: float, batch: int | None = None, seed: int = 0,
          callback: Callable[[int], None] | None = None, check_frames: int | None = None) -> Trained:
    """Train the layers and mask bases on sources S (n_sources, n_bins, n) whose sum W H models
    (W (n_bins, k), H (k, n); see the module doc), each step on ``batch`` frames drawn at random
    (None: all of them); callback(step) after each step (1 ... steps). Where the trained bases
    are not finite, or do no better than W itself on S (``objective``; on its first
    ``check_frames`` frames, None: all), returns the plain bases: Trained([], W)."""
    rng = np.random.default_rng(seed)
    theta = [np.log(np.maximum(W, np.exp(LOG_MIN))).astype(np.float32) for _ in range(n_layers + 1)]
    moments = [(np.zeros_like(t), np.zeros_like(t)) for t in theta]
    all_S, all_H = S, H
    means, count = [t.copy() for t in theta], 0
    for step in range(1, steps + 1):
        if batch is not None and batch < all_H.shape[1]:
            frames = np.sort(rng.choice(all_H.shape[1], batch, replace=False))
            S, H = all_S[:, :, frames], all_H[:, frames]
        grads, Ws = _gradients(theta, S, H, groups)
        if all(np.all(np.isfinite(g)) for g in grads):  # else skipped: it would poison Adam's moments
            for t, g, w, (m1, m2) in zip(theta, grads, Ws, moments):
                g *= w  # d/d(log W)
                m1 *= _BETAS[0]
                m1 += (1 - _BETAS[0]) * g
                m2 *= _BETAS[1]
                m2 += (1 - _BETAS[1]) * g * g
                t -= rate * (m1 / (1 - _BETAS[0] ** step)) / (np.sqrt(m2 / (1 - _BETAS[1] ** step)) + 1e-12)
                np.clip(t, LOG_MIN, LOG_MAX, out=t)
        if step > steps * AVERAGE_FROM:  # Polyak averaging: less of the last batches' noise
            count += 1
            for mean, t in zip(means, theta):
                mean += (t - mean) / count
        if callback is not None:
            callback(step)
    Ws = [np.exp(t) for t in (means if count else theta)]
    trained, plain = Trained(Ws[:-1], Ws[-1]), Trained([], W)
    S, H = all_S[:, :, :check_frames], all_H[:, :check_frames]
    return trained if objective(S, H, trained, groups) < objective(S, H, plain, groups) else plain


def objective(S: np.ndarray, H: np.ndarray, trained: Trained, groups: list) -> float:
    """sum_s KL(S_s | V mask_s) (what ``train`` minimises) of sources S (n_sources, n_bins, n),
    V = sum_s S_s, with activations H (k, n) run through the trained layers and masked with its
    mask bases; inf where that is not finite."""
    V = S.sum(axis=0)
    with np.errstate(all="ignore"):  # an overflow is what this measures: it gives inf
        H = unfold(H, trained.layers, V)
        parts = [trained.mask_bases[:, g] @ H[g] + TINY for g in groups]
        total = sum(parts)
        loss = 0.0
        for target, part in zip(S, parts):
            estimate = V * part / total
            loss += float(np.sum(target * np.log((target + TINY) / (estimate + TINY)) - target + estimate,
                                 dtype=np.float64))
    return loss if np.isfinite(loss) else np.inf


def _gradients(theta, S, H, groups):
    """The gradients of the objective with respect to each copy of the bases (not yet in log),
    and the bases exp(theta); not finite where they overflowed (the caller skips the step)."""
    V = S.sum(axis=0)
    Ws = [np.exp(t) for t in theta]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        Hs, kept = [H], []
        for W_l in Ws[:-1]:
            H_l, products = _layer(W_l, Hs[-1], V)
            Hs.append(H_l)
            kept.append(products)
        grads = [np.empty_like(W) for W in Ws]
        grad_H = _output_gradients(Ws[-1], Hs[-1], S, V, groups, grads[-1])
        for layer in range(len(Ws) - 2, -1, -1):
            grad_H = _layer_gradients(Ws[layer], Hs[layer], grad_H, grads[layer], *kept[layer])
    return grads, Ws


def _output_gradients(mask_bases, H, S, V, groups, grad_W):
    """Gradients of sum_s KL(S_s | V L_s / L), L_s = W~_s H_s, L = sum_s L_s (V = sum_s S_s):
    d/dL_s = V / L - S_s / L_s. Writes d/dW~ into grad_W, returns d/dH."""
    parts = [mask_bases[:, g] @ H[g] + TINY for g in groups]
    inverse_total = 1.0 / sum(parts)
    grad_H = np.empty_like(H)
    for part, target, g in zip(parts, S, groups):
        G = V * inverse_total - target / part
        grad_W[:, g] = G @ H[g].T
        grad_H[g] = mask_bases[:, g].T @ G
    return grad_H


def _layer(W, H, V):
    """One unfolded update: (H', (X, R, N)) with X = W H, R = V / X, N = W^T R, H' = H * N / d,
    d = W^T 1 (X, R and N kept for the backward pass)."""
    X = W @ H + TINY
    R = V / X
    N = W.T @ R
    return H * N / W.sum(axis=0)[:, None], (X, R, N)


def _layer_gradients(W, H, grad_out, grad_W, X, R, N):
    """Back through ``_layer`` given d/dH' (grad_out) and its X, R, N: writes d/dW into grad_W,
    returns d/dH, 0 where H is 0 (it stays 0 in every layer: nothing depends on it)."""
    inverse_d = 1.0 / W.sum(axis=0)[:, None]
    grad_out = np.where(H > 0, grad_out, 0).astype(grad_out.dtype, copy=False)
    grad_N = grad_out * H * inverse_d
    grad_d = -(grad_out * H * N).sum(axis=1) * inverse_d[:, 0] ** 2
    grad_X = -(W @ grad_N) * R / X
    grad_W[:] = R @ grad_N.T + grad_X @ H.T
    grad_W += grad_d[None, :]  # d = W^T 1: every row of column j gets d/dd_j
    return grad_out * N * inverse_d + W.T @ grad_X
