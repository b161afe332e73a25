"""Non-negative matrix factorization V ≈ W H for the beta-divergence family.

Pure numpy (and numba) on matrices; knows nothing about audio. Shapes follow the audio papers:
V (n_bins, n_frames), W (n_bins, k) the bases, H (k, n_frames) the activations.

    result = factorize(V, k, beta=1.0, max_iter=200, seed=0)
    result.W, result.H, result.losses, result.n_iter

Objective minimised (see ``mu`` for D_beta and the updates, ``hals`` for the beta = 2 solver,
``penalties`` for c_t)::

    D_beta(V | W H) + l1_W sum(W) + l1_H sum(H) + smooth_H c_t(H)
"""

from dataclasses import dataclass

import numpy as np

from ..errors import BadValueError
from . import hals, mu
from ._parallel import Workers
from .init import INITS, constant_complement, initialize
from .penalties import penalty, temporal_continuity_gradient

__all__ = ["factorize", "NMFResult", "kmeans", "deep_factorize", "DeepNMFResult",
           "beta_divergence", "numerical_floor", "SOLVERS"]

SOLVERS = ("auto", "mu", "hals")
CHECK_EVERY = 10
_BETA_NAMES = {"kl": 1.0, "kullback-leibler": 1.0, "is": 0.0, "itakura-saito": 0.0,
               "euclidean": 2.0, "frobenius": 2.0}
_FLOOR = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class NMFResult:
    """W (n_bins, k) bases, H (k, n_frames) activations, in V's float dtype.

    losses: float64 array of n_iter + 1 values: the objective of the starting factors, then after
    each iteration, so ``losses[-1]`` is the objective of the returned W, H. n_iter: iterations
    made.
    """

    W: np.ndarray
    H: np.ndarray
    losses: np.ndarray
    n_iter: int


def numerical_floor(V):
    """The floor applied to W H (and to V itself for beta <= 0): float32 eps * mean(V).

    Relative to V's scale, so a quiet, unnormalised spectrogram is not distorted the way an
    absolute floor (scikit-learn uses 1.2e-7) would distort it.
    """
    mean = float(np.mean(V, dtype=np.float64))
    return _FLOOR * mean if mean > 0 else _FLOOR       # an all-zero V: as if mean(V) were 1


def beta_divergence(V, W, H, beta=1.0):
    """D_beta(V | W H), computed naively in float64 with the solvers' floor (a reference)."""
    V = np.asarray(V)
    return mu.beta_divergence(V, np.asarray(W, np.float64) @ np.asarray(H, np.float64),
                              _beta_value(beta), numerical_floor(V))


def _beta_value(beta):
    if isinstance(beta, str):
        if beta.lower() not in _BETA_NAMES:
            raise BadValueError(f"unknown beta {beta!r}: use a number or one of "
                                f"{', '.join(sorted(_BETA_NAMES))}")
        return _BETA_NAMES[beta.lower()]
    try:
        value = float(beta)
    except (TypeError, ValueError):
        raise BadValueError(f"beta must be a number, got {beta!r}") from None
    if not np.isfinite(value):
        raise BadValueError(f"beta must be finite, got {beta!r}")
    return value


def check_spectrogram(V, name="V"):
    """V as a 2-D float array, or BadValueError naming what is wrong (shape, NaN, Inf, sign)."""
    V = np.asarray(V)
    if np.iscomplexobj(V):
        raise BadValueError(f"{name} is complex: pass a magnitude (np.abs) or power spectrogram")
    if V.ndim != 2:
        raise BadValueError(f"{name} must be a 2-D matrix (n_bins, n_frames), got shape {V.shape}")
    if V.size == 0:
        raise BadValueError(f"{name} is empty (shape {V.shape})")
    if V.dtype.kind not in "fiub":
        raise BadValueError(f"{name} must hold numbers, got dtype {V.dtype}")
    low, high = V.min(), V.max()         # NaN propagates through min/max: no V-sized mask
    if not (np.isfinite(low) and np.isfinite(high)):
        n_nan = int(np.count_nonzero(np.isnan(V)))
        if n_nan:
            raise BadValueError(f"{name} contains {n_nan} NaN value(s); clean the input first")
        n_inf = int(np.count_nonzero(np.isinf(V)))
        raise BadValueError(f"{name} contains {n_inf} infinite value(s); clean the input first")
    if low < 0:
        n_neg = int(np.count_nonzero(V < 0))
        raise BadValueError(f"{name} has {n_neg} negative value(s) (smallest {float(low):.3g}); "
                            f"NMF needs a non-negative matrix such as a magnitude spectrogram")
    return V


_SCALE_HINT = "scale V to values around 1 (V / V.mean())"


def _check_scale(V, dtype, floor):
    """BadValueError where V's scale is out of the solver's reach in its work dtype: so small that
    the floor (float32 eps * mean(V)) is not a normal number, or so large that a sum of V's
    squares overflows. All-zero V passes (the floor is then float32 eps)."""
    info = np.finfo(dtype)
    high = float(V.max())
    if high == 0:
        return
    if floor < info.tiny:
        mean = float(np.mean(V, dtype=np.float64))
        raise BadValueError(f"V's values are too small to factorize in {info.dtype.name} (largest {high:.3g}, "
                            f"mean {mean:.3g}): the solver's products underflow; {_SCALE_HINT}")
    if high > np.sqrt(float(info.max) / V.size):
        raise BadValueError(f"V's values are too large to factorize in {info.dtype.name} (largest {high:.3g}): "
                            f"the solver's products overflow; {_SCALE_HINT}")


def _work_dtype(V):
    return np.float64 if V.dtype == np.float64 else np.float32


def _column_mask(fixed_W_columns, k):
    """A boolean mask of the k columns of W that stay fixed (False everywhere for None)."""
    fixed = np.zeros(k, np.bool_)
    if fixed_W_columns is None:
        return fixed
    spec = np.asarray(fixed_W_columns)
    if spec.dtype == np.bool_:
        if spec.shape != (k,):
            raise BadValueError(f"fixed_W_columns as a mask needs {k} entries, got {spec.shape}")
        return spec.copy()
    if spec.size and (spec.dtype.kind not in "iu" or spec.min() < -k or spec.max() >= k):
        raise BadValueError(f"fixed_W_columns must be column indices in [0, {k}) or a boolean mask")
    fixed[spec.astype(np.intp)] = True
    return fixed


def _start(V, k, init, seed, W, H, dtype, stuck=()):
    """Initial (W, Ht) in the work dtype, as fresh arrays (the caller's are never written).

    ``stuck``: the names of the factors ('W', 'H') that may not be given full of zeros (the
    solver could never move them).
    """
    m, n = V.shape
    rng = np.random.default_rng(seed)
    if W is not None:
        W = np.asarray(W)
        if W.ndim != 2 or W.shape[0] != m or not 1 <= W.shape[1] <= k:
            raise BadValueError(f"W must have shape ({m}, k) or ({m}, r <= k) for its first r "
                                f"columns, got {W.shape}")
        W = check_spectrogram(W, "W")
        _refuse_zeros("W", W, "W" in stuck)
    if H is not None:
        H = np.asarray(H)
        if H.shape != (k, n):
            raise BadValueError(f"H must have shape ({k}, {n}), got {H.shape}")
        H = check_spectrogram(H, "H")
        _refuse_zeros("H", H, "H" in stuck)
    full_W = W is not None and W.shape[1] == k
    if init == "custom":
        if not full_W or H is None:
            raise BadValueError(f"init='custom' needs both W ({m}, {k}) and H ({k}, {n})")
        W0, H0 = W, H
    elif full_W and H is None:
        W0, H0 = W, constant_complement(V, W=W)
    elif H is not None and W is None:
        W0, H0 = constant_complement(V, H=H), H
    elif full_W:
        W0, H0 = W, H
    else:
        if init.startswith("nndsvd") and k > min(m, n):
            raise BadValueError(f"init={init!r} needs k <= min(n_bins, n_frames) = {min(m, n)}, "
                                f"got k={k}; use init='random'")
        W0, H0 = initialize(V, k, init, rng)
        if W is not None:
            W0[:, :W.shape[1]] = W
        if H is not None:
            H0 = H
    return np.array(W0, dtype=dtype, order="C"), np.array(np.asarray(H0).T, dtype=dtype,
                                                          order="C")


def _refuse_zeros(name, factor, stuck):
    """BadValueError when a starting factor that the solver could never move is all zeros."""
    if stuck and not factor.any():
        raise BadValueError(f"{name} is full of zeros: multiplicative updates (or holding it "
                            f"fixed) would keep it at zero; start it from positive values, or "
                            f"let solver='hals' (beta=2) learn it")


def _normalize_columns(W, Ht, free):
    """Scale the free columns of W to unit L2 norm, moving the scale into H (W H unchanged)."""
    norms = np.sqrt(np.einsum("ij,ij->j", W, W, dtype=np.float64))
    scale = np.where(free & (norms > 0), norms, 1.0).astype(W.dtype)
    W /= scale
    Ht *= scale


def factorize(V, k, *, beta=1.0, solver="auto", init="nndsvda", max_iter=200, tol=1e-4,
              seed=None, W=None, H=None, update_W=True, update_H=True, fixed_W_columns=None,
              l1_W=0.0, l1_H=0.0, smooth_H=0.0, normalize_W=True, callback=None):
    """Factorize a non-negative V (n_bins, n_frames) as W (n_bins, k) @ H (k, n_frames).

    Minimises D_beta(V | W H) + l1_W sum(W) + l1_H sum(H) + smooth_H c_t(H).

    Parameters
    ----------
    V : array (n_bins, n_frames), non-negative and finite (else BadValueError). float64 stays
        float64; anything else is computed and returned in float32. Never modified.
    k : number of components.
    beta : float or 'kl' | 'is' | 'euclidean': 2 squared Euclidean, 1 Kullback-Leibler (default,
        best on magnitude spectra), 0 Itakura-Saito; any other float works (slower).
    solver : 'auto' (HALS for beta = 2 without smoothness, else MU), 'mu' (multiplicative
        updates, any beta), 'hals' (accelerated HALS, beta = 2 only).
    init : 'nndsvda' (default), 'nndsvd', 'nndsvdar', 'random' or 'custom' (W and H given).
        Deterministic for a given ``seed``.
    max_iter, tol : stop after max_iter iterations, or when, checked every 10 iterations, the
        objective has fallen by less than tol times its starting value over the last 10
        (``losses[i - 10] - losses[i] < tol * losses[0]``); tol=0 runs all iterations. This is
        not scikit-learn's rule: its 'mu' solver tests the square root of 2 D instead,
        (sqrt(2 D_i-10) - sqrt(2 D_i)) / sqrt(2 D_0) < tol, and its 'cd' solver the size of
        the coordinate steps, so the same tol stops at different points.
    W, H : optional starting factors (copied, converted to the work dtype). W may have r < k
        columns: they become the first r bases and the rest come from ``init``. Given a full W
        without H, H starts constant (and vice versa), scaled so that mean(W H) = mean(V). A
        factor full of zeros is refused where it could never move (solver 'mu', or held fixed).
    update_W, update_H : False keeps that factor fixed (update_W=False: supervised separation
        with known bases).
    fixed_W_columns : columns of W kept fixed while the others learn (semi-supervised): a
        boolean mask of length k or a sequence of indices, e.g. ``range(r)`` with the r known
        bases given as ``W`` (n_bins, r).
    l1_W, l1_H : L1 (sparsity) weights. smooth_H : weight of Virtanen's temporal continuity.
    normalize_W : scale each learned column of W to unit L2 norm after every W update, moving
        the scale into H (W H and the divergence unchanged; this is what makes l1_H meaningful).
        Only when both factors learn, and not with l1_W > 0 (which fixes the scale itself). With
        l1_H > 0 the rescaling changes the penalty, so that objective is then not guaranteed to
        fall at every iteration (the divergence part is unchanged by it).
    callback : called as callback(iteration, loss) after each iteration; returning True stops.

    Precision: for beta = 2 the objective comes from W^T V and H H^T (no n_bins x n_frames
    temporary), so in float32 it is exact only up to about 1e-6 * ||V||^2 / 2; pass float64 V
    for an exact loss curve. Other betas sum the divergence in float64 (float32 terms).

    Zeros: W H is floored at ``numerical_floor(V)`` (float32 eps * mean(V)) wherever it is
    divided by or raised to a negative power; for beta <= 0 V is floored there too, so zeros in
    V give neither NaN nor Inf.

    Returns
    -------
    NMFResult(W, H, losses, n_iter)

    Raises
    ------
    nmfsep.errors.BadValueError (an NmfsepError and a ValueError) for a V, W, H or option that
    cannot be used, with a message naming it; also for a V whose scale is out of reach of the
    work dtype (its mean so small that float32 eps times it is not a normal number, or its
    largest value above sqrt(dtype max / V.size)), and where the factors do not stay finite
    (or their loss: powers of V's scale overflowed, e.g. Itakura-Saito on a V of 1e-200): scale V to values
    around 1 (V / V.mean()) first.
    """
    V = check_spectrogram(V)
    m, n = V.shape
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise BadValueError(f"k must be a positive integer, got {k!r}")
    beta = _beta_value(beta)
    if solver not in SOLVERS:
        raise BadValueError(f"unknown solver {solver!r}: use one of {', '.join(SOLVERS)}")
    if init not in INITS:
        raise BadValueError(f"unknown init {init!r}: use one of {', '.join(INITS)}")
    if not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise BadValueError(f"max_iter must be a non-negative integer, got {max_iter!r}")
    if not tol >= 0:
        raise BadValueError(f"tol must be >= 0, got {tol!r}")
    for name, value in (("l1_W", l1_W), ("l1_H", l1_H), ("smooth_H", smooth_H)):
        if not (np.isfinite(value) and value >= 0):
            raise BadValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if solver == "auto":
        solver = "hals" if beta == 2 and not smooth_H else "mu"
    if solver == "hals" and beta != 2:
        raise BadValueError(f"solver='hals' minimises the Euclidean cost (beta=2), got "
                            f"beta={beta}; use solver='mu'")
    if solver == "hals" and smooth_H:
        raise BadValueError("smooth_H needs solver='mu'")

    # A factor full of zeros stays zero under multiplicative updates (and when held fixed)
    stuck = [name for name, learns in (("W", update_W), ("H", update_H))
             if solver == "mu" or not learns]
    dtype = _work_dtype(V)
    floor = numerical_floor(V)
    _check_scale(V, dtype, floor)
    if V.dtype != dtype:                             # integers, float16: one float32 copy
        V = V.astype(dtype)
    # BLAS stays single-threaded from here on, the init's SVD included: a multi-threaded BLAS
    # stalls badly on these products as soon as another process holds a core.
    workers = Workers.for_size(V.size)
    try:
        W, Ht = _start(V, k, init, seed, W, H, dtype, stuck)
        free = ~_column_mask(fixed_W_columns, k) if update_W else np.zeros(k, np.bool_)
        update_W = bool(free.any())
        normalize = normalize_W and not l1_W and update_W and update_H

        Vt = np.ascontiguousarray(V.T, dtype=dtype)  # frames as rows; a copy unless V is F-order
        if beta <= 0:
            Vt = np.maximum(Vt, dtype(floor))
        # beta = 2 also reads V by rows (V H^T is fastest that way): the caller's array when it
        # is already C-ordered in the work dtype, else one more copy.
        V_rows = np.ascontiguousarray(V, dtype=dtype) if beta == 2 else None
        run = _Run(V_rows, Vt, W, Ht, beta, solver, floor, l1_W, l1_H, smooth_H, free, workers)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked just below
            losses, n_iter = run.iterate(max_iter, tol, update_W, update_H, normalize, callback)
    finally:
        workers.close()
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(Ht)) and np.all(np.isfinite(losses))):
        raise BadValueError(f"the factorization of V (largest value {float(V.max()):.3g}) with beta={beta:g} "
                            f"did not stay finite in {np.dtype(dtype).name}: {_SCALE_HINT}")
    return NMFResult(W, np.ascontiguousarray(Ht.T), np.asarray(losses, np.float64), n_iter)


class _Run:
    """One factorization in progress: the solver's state and its iteration loop.

    Each iteration updates W, then H (scikit-learn's order), and records the objective of the
    factors it leaves. For beta != 2 the blocked sweep forms W H right after each H block update,
    so it gets that objective and the next W numerator from the same pass (see ``mu``); the W
    update is then applied at the start of the next iteration, or dropped when the loop stops.
    HALS with both factors learning works alike: its pass over the frames updates H and makes
    V H^T for the next W update (``pending``; see ``hals.FramePass``).
    """

    def __init__(self, V, Vt, W, Ht, beta, solver, floor, l1_W, l1_H, smooth_H, free, workers):
        self.V, self.Vt, self.W, self.Ht = V, Vt, W, Ht
        self.beta, self.solver = beta, solver
        self.l1_W, self.l1_H, self.smooth_H = l1_W, l1_H, smooth_H
        self.free_mask = free                         # columns of W that learn
        self.free = None if free.all() else free      # None: all of them (no masking needed)
        self.cache = {}
        self.workers = workers
        self.flush_H = mu.FLUSH * floor                  # see mu.FLUSH
        self.flush_W = float(np.finfo(Vt.dtype).tiny)
        self.blocked = self.frame_pass = None
        self.pending = None             # (V H^T, H H^T) of the current H, from the frame pass
        if beta == 2:
            self.norm_V = float(np.einsum("ij,ij->", Vt, Vt, dtype=np.float64))
        else:
            self.blocked = mu.BlockedMU(Vt, W.shape[1], beta, floor, self.workers)

    def penalty(self):
        return penalty(self.W, self.Ht, self.l1_W, self.l1_H, self.smooth_H)

    def smoothness(self):
        return temporal_continuity_gradient(self.Ht, self.smooth_H) if self.smooth_H else None

    def start(self, update_W):
        """The objective of the starting factors (and, for beta != 2, the first W numerator)."""
        if self.beta == 2:
            VtW, WtW = self.products("W", fixed=not update_W)
            cross = float(np.vdot(VtW.astype(np.float64), self.Ht))
            return mu.euclidean_loss(self.norm_V, cross, WtW, self.Ht.T @ self.Ht) + self.penalty()
        div = self.blocked.sweep(self.W, self.Ht, update_H=False, accumulate_W=update_W,
                                 loss_at="exit")
        return div + self.penalty()

    def products(self, name, fixed):
        """V^T W, W^T W ('W') or V H^T, H H^T ('H'); cached when that factor is fixed."""
        if name in self.cache:
            return self.cache[name]
        if name == "W":
            value = (self.workers.matmul_rows(self.Vt, self.W), self.W.T @ self.W)
        else:
            value = (self.workers.matmul_rows(self.V, self.Ht), self.Ht.T @ self.Ht)
        if fixed:
            self.cache[name] = value
        return value

    def step(self, update_W, update_H, normalize, last):
        """One iteration (W then H); returns the objective of the factors it leaves."""
        W, Ht = self.W, self.Ht
        if self.beta != 2:
            if update_W:
                self.blocked.apply_W(W, Ht, self.l1_W, self.free)
                if normalize:
                    _normalize_columns(W, Ht, self.free_mask)
            div = self.blocked.sweep(W, Ht, update_H, update_W and not last, "exit", self.l1_H,
                                     self.smoothness())
            return div + self.penalty()
        use_hals = self.solver == "hals"
        if update_W:
            if self.pending is not None:
                (VHt, HHt), self.pending = self.pending, None
            else:
                VHt, HHt = self.products("H", fixed=not update_H)
            if use_hals:
                div = hals.update_W(W, Ht, VHt, HHt, self.norm_V, self.workers, self.flush_W,
                                    self.l1_W, self.free)
            else:
                div = mu.update_W_euclidean(W, VHt, HHt, self.norm_V, self.flush_W, self.l1_W,
                                            self.free)
            if normalize:
                _normalize_columns(W, Ht, self.free_mask)
        if update_H and use_hals and update_W:
            if self.frame_pass is None:
                self.frame_pass = hals.FramePass(self.Vt, W.shape[1], self.workers)
            div, self.pending = self.frame_pass.update_H(W, Ht, self.norm_V, self.flush_H,
                                                         self.l1_H, want_VHt=not last)
        elif update_H:
            VtW, WtW = self.products("W", fixed=not update_W)
            if use_hals:
                div = hals.update_H(W, Ht, VtW, WtW, self.norm_V, self.workers, self.flush_H,
                                    self.l1_H)
            else:
                div = mu.update_H_euclidean(W, Ht, VtW, WtW, self.norm_V, self.flush_H, self.l1_H,
                                            self.smoothness())
        return div + self.penalty()

    def iterate(self, max_iter, tol, update_W, update_H, normalize, callback):
        """Run the iterations; returns (losses, n_iter)."""
        if self.beta != 2 and update_H and not update_W:
            return self.iterate_H_only(max_iter, tol, callback)
        losses = [self.start(update_W and max_iter > 0)]
        if not (update_W or update_H):
            return losses, 0
        for it in range(1, max_iter + 1):
            losses.append(self.step(update_W, update_H, normalize, last=it == max_iter))
            if _should_stop(losses, it, tol, callback):
                return losses, it
        return losses, max_iter

    def iterate_H_only(self, max_iter, tol, callback):
        """Bases fixed, beta != 2: each sweep updates H and, on the way, measures the objective
        of the H it started from, so the objective lags one sweep and a stop restores that H."""
        W, Ht = self.W, self.Ht
        saved = Ht.copy()
        losses = []
        for it in range(1, max_iter + 1):
            saved[...] = Ht
            value = self.penalty()
            div = self.blocked.sweep(W, Ht, True, False, "entry", self.l1_H, self.smoothness())
            losses.append(div + value)                 # the objective after it - 1 iterations
            if it > 1 and _should_stop(losses, it - 1, tol, callback):
                Ht[...] = saved
                return losses, it - 1
        losses.append(self.blocked.sweep(W, Ht, False, False, "exit") + self.penalty())
        if max_iter > 0 and callback is not None:
            callback(max_iter, losses[-1])
        return losses, max_iter


def _should_stop(losses, it, tol, callback):
    """callback(it, loss) asked to stop, or (every 10 iterations, when tol > 0) the objective
    fell by less than tol * its starting value over the last 10 iterations."""
    stop = bool(callback(it, losses[it])) if callback is not None else False
    if tol > 0 and it % CHECK_EVERY == 0:
        stop = stop or losses[it - CHECK_EVERY] - losses[it] < tol * losses[0]
    return stop


from .deep import DeepNMFResult, deep_factorize  # noqa: E402  (they build on factorize)
from .kmeans import kmeans  # noqa: E402
