"""How many components? The reconstruction loss for k = 1..N, and a suggested k.

A rank-k factorization can always do at least as well as a rank-(k-1) one (give it a zero
component), so the best loss is non-increasing in k; independent runs from fresh starts do not
show it, because each stops in its own local minimum. ``loss_by_rank`` therefore grows one fit:

    k = 1:   factorize V from NNDSVDa
    k > 1:   start from the best rank-(k-1) factors plus one component initialised from what
             they leave unexplained, R = max(V - W H, 0) (its leading singular pair, which is
             positive), and run the updates.

The loss reported for k is the smaller of that fit's and the best rank-(k-1) loss (the latter
is a real rank-k factorization: the same factors with a zero extra component), so the curve is
non-increasing by construction, and each entry is the loss of an actual rank-k factorization.

``knee`` suggests k where the curve bends most: the point farthest below the chord from the
first to the last point, both axes scaled to [0, 1] (the "kneedle" idea, Satopaa et al. 2011).
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import NmfsepError
from .nmf import factorize

KNEE_RULE = ("knee: the k farthest below the straight line from the first to the last k "
             "(k and loss both scaled to 0-1)")
BETA_NAMES = {0.0: "Itakura-Saito", 1.0: "Kullback-Leibler", 2.0: "squared Euclidean"}


def beta_name(beta: float) -> str:
    return BETA_NAMES.get(float(beta), f"beta = {beta:g}")


@dataclass(frozen=True)
class RankLoss:
    k: int
    loss: float
    n_iter: int


def loss_by_rank(V: np.ndarray, max_k: int, *, beta: float = 1.0, max_iter: int = 200,
                 tol: float = 1e-4, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None,
                 on_fit: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> list[RankLoss]:
    """Loss of the best factorization found for each k = 1..max_k of V (n_bins, n_frames),
    non-increasing in k (see the module docstring). progress(k, max_k) after each k;
    on_fit(k, W (n_bins, k), H (k, n_frames)) with the rank-k factors whose loss is reported for
    k (the best rank-(k-1) factors and a zero component where the new fit did worse).
    NmfsepError for max_k below 1 or above min(V.shape)."""
    if max_k < 1:
        raise NmfsepError(f"max-k must be at least 1, got {max_k}")
    if max_k > min(V.shape):
        raise NmfsepError(f"max-k {max_k} is more than this input supports (at most {min(V.shape)}: "
                          f"{V.shape[0]} frequencies x {V.shape[1]} frames); lower --max-k")
    options = dict(beta=beta, max_iter=max_iter, tol=tol, seed=seed)
    rows: list[RankLoss] = []
    W = H = None
    best = np.inf
    for k in range(1, max_k + 1):
        if W is None:
            result = factorize(V, k, init="nndsvda", **options)
        else:
            W_new, H_new = new_components(V, W, H, k - W.shape[1])
            result = factorize(V, k, init="custom", W=np.concatenate([W, W_new.astype(W.dtype)], axis=1),
                               H=np.concatenate([H, H_new.astype(H.dtype)]), **options)
        loss = float(result.losses[-1])
        if loss <= best:
            best, W, H = loss, result.W, result.H
        rows.append(RankLoss(k, best, result.n_iter))
        if on_fit is not None:
            missing = k - W.shape[1]
            on_fit(k, np.pad(W, ((0, 0), (0, missing))), np.pad(H, ((0, missing), (0, 0))))
        if progress is not None:
            progress(k, max_k)
    return rows


def new_components(V: np.ndarray, W: np.ndarray, H: np.ndarray, n_new: int, n_power: int = 30):
    """n_new components (W_new (n_bins, n_new), H_new (n_new, n_frames)) for what W H leaves out.

    Each is the leading singular pair of the unexplained part R = max(V - W H, 0) + eps (then
    peeled off R): R is positive, so by Perron-Frobenius its leading singular vectors are
    positive and sqrt(s) u, sqrt(s) v is already the best rank-1 non-negative fit of R. Found by
    power iteration (a few matrix-vector products instead of a full SVD).
    """
    R = np.maximum(V - W @ H, 0).astype(np.float64) + 1e-6 * float(V.mean())
    columns, rows = [], []
    for _ in range(n_new):
        u = R.sum(axis=1)
        for _ in range(n_power):
            v = R.T @ u
            u = R @ v
            u /= np.linalg.norm(u)
        v = R.T @ u
        sigma = float(np.linalg.norm(v))
        v /= sigma
        columns.append(np.sqrt(sigma) * u)
        rows.append(np.sqrt(sigma) * v)
        R = np.maximum(R - np.outer(columns[-1], rows[-1]), 0) + 1e-6 * float(V.mean())
    return np.stack(columns, axis=1), np.stack(rows)


def knee(ks, losses) -> int | None:
    """The k farthest below the chord from the first to the last point (axes scaled to [0, 1]);
    None for fewer than three points or a flat curve."""
    ks = np.asarray(ks, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if len(ks) < 3 or losses[0] == losses[-1]:
        return None
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    y = (losses - losses[-1]) / (losses[0] - losses[-1])
    below = (1 - x) - y          # the chord runs from (0, 1) to (1, 0)
    return int(ks[int(np.argmax(below))])
