"""Deep (multi-layer) NMF: V ≈ W_1 W_2 ... W_L H, every factor non-negative.

Shapes: V (m, n), W_1 (m, k_1), W_l (k_{l-1}, k_l), H (k_L, n) for ranks [k_1, ..., k_L]. The
columns of W_1 are fine-grained bases, those of W_1 W_2 coarser groups of them, and so on
(Trigeorgis et al. 2014, "A deep semi-NMF model for learning hidden representations"; De Handschutter,
Gillis & Siebert 2021, "A survey on deep matrix factorizations").

1. Layer-wise initialisation: V ≈ W_1 H_1, then H_1 ≈ W_2 H_2, ..., each by ``factorize``.
2. Joint fine-tuning of the whole product by multiplicative updates, one factor at a time. For a
   middle factor F with A = W_1 ... W_{l-1} before it and B = W_{l+1} ... H after it, X = A F B is
   linear in F with non-negative coefficients, so the beta-divergence update of Fevotte & Idier
   (2011) applies unchanged::

       F <- F * ( A^T (V * X^(beta-2)) B^T / (A^T X^(beta-1) B^T) )^gamma

   and, like the one-layer case, it never increases D_beta(V | X).

This is the plain reference implementation: it forms X whole (m x n) for each update.
"""

from dataclasses import dataclass
from functools import reduce

import numpy as np

from ..errors import BadValueError
from ._parallel import Workers
from .mu import beta_divergence, gamma_exponent


@dataclass(frozen=True)
class DeepNMFResult:
    """layers: [W_1 (m, k_1), W_2 (k_1, k_2), ...]; H (k_L, n). losses: D_beta(V | W_1...W_L H)
    of the layer-wise initialisation, then after each fine-tuning iteration. ``W`` is the
    product W_1 ... W_L (m, k_L)."""

    layers: list
    H: np.ndarray
    losses: np.ndarray
    n_iter: int

    @property
    def W(self):
        return reduce(np.matmul, self.layers)


def _update(V, A, F, B, beta, gamma, floor):
    """One multiplicative update of F in X = A F B (A or B may be None for identity)."""
    left = F if A is None else A @ F
    X = left if B is None else left @ B
    np.maximum(X, floor, out=X)
    if beta == 1:
        ratio = V / X
        numerator_inner, denominator_inner = ratio, np.ones_like(X)
    elif beta == 2:
        numerator_inner, denominator_inner = V, X
    else:
        powered = X ** (beta - 1)
        numerator_inner, denominator_inner = V * powered / X, powered

    def project(M):
        M = M if B is None else M @ B.T
        return M if A is None else A.T @ M

    numerator = project(numerator_inner)
    denominator = np.maximum(project(denominator_inner), np.finfo(np.float32).eps)
    F *= (numerator / denominator) ** gamma


def deep_factorize(V, ranks, *, beta=1.0, init="nndsvda", max_iter=200, layer_iter=200,
                   tol=1e-4, seed=None, callback=None):
    """Factorize V (n_bins, n_frames) as W_1 ... W_L H with ranks [k_1, ..., k_L].

    Each layer is initialised by ``factorize`` (``init``, ``layer_iter`` iterations, ``seed``),
    then all factors are fine-tuned jointly for up to ``max_iter`` iterations (one update of
    every factor each), stopping as ``factorize`` does (tol, every 10 iterations) or when
    callback(iteration, loss) returns True. Returns DeepNMFResult(layers, H, losses, n_iter).
    """
    from . import _beta_value, check_spectrogram, factorize, numerical_floor

    V = check_spectrogram(V)
    ranks = list(ranks)
    if not ranks or any(not isinstance(r, (int, np.integer)) or r < 1 for r in ranks):
        raise BadValueError(f"ranks must be a non-empty list of positive integers, got {ranks!r}")
    beta = _beta_value(beta)
    dtype = np.float64 if V.dtype == np.float64 else np.float32
    floor = numerical_floor(V)
    Vw = V.astype(dtype)
    if beta <= 0:
        Vw = np.maximum(Vw, floor)

    layers = []
    target = Vw
    for depth, rank in enumerate(ranks):
        layer_seed = None if seed is None else seed + depth
        layer_init = init if rank <= min(target.shape) else "random"
        result = factorize(target, rank, beta=beta, init=layer_init, max_iter=layer_iter,
                           tol=tol, seed=layer_seed)
        layers.append(result.W.astype(dtype))
        target = result.H
    H = target.astype(dtype)

    with Workers(1):                       # BLAS single-threaded, as in factorize
        return _fine_tune(Vw, layers, H, beta, floor, max_iter, tol, callback)


def _fine_tune(Vw, layers, H, beta, floor, max_iter, tol, callback):
    """Joint multiplicative updates of all factors (in place); returns the DeepNMFResult."""
    gamma = gamma_exponent(beta)

    def loss():
        return beta_divergence(Vw, reduce(np.matmul, layers) @ H, beta, floor)

    losses = [loss()]
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        for index in range(len(layers)):
            A = reduce(np.matmul, layers[:index]) if index else None
            B = reduce(np.matmul, layers[index + 1:] + [H])
            _update(Vw, A, layers[index], B, beta, gamma, floor)
        _update(Vw, reduce(np.matmul, layers), H, None, beta, gamma, floor)
        losses.append(loss())
        stop = callback is not None and bool(callback(n_iter, losses[-1]))
        if tol > 0 and n_iter % 10 == 0:
            stop = stop or losses[-11] - losses[-1] < tol * losses[0]
        if stop:
            break
    return DeepNMFResult(layers, H, np.asarray(losses, np.float64), n_iter)
