"""Multiplicative updates for the beta-divergence family.

Cost, for V (m, n), W (m, k), H (k, n) and X = W H::

    D_beta(V | X) = sum_ij d_beta(v_ij | x_ij)

    d_beta(v | x) = v/x - log(v/x) - 1                              beta = 0 (Itakura-Saito)
                  = v log(v/x) - v + x                              beta = 1 (Kullback-Leibler)
                  = (v - x)^2 / 2                                   beta = 2 (squared Euclidean)
                  = (v^b + (b-1) x^b - b v x^(b-1)) / (b (b-1))     otherwise

Updates (Lee & Seung 2001; Fevotte & Idier 2011, "Algorithms for nonnegative matrix factorization
with the beta-divergence", Neural Computation 23(9)); penalties enter through the positive and
negative parts of their gradients (l1 in the denominator)::

    H <- H * ( W^T (V * X^(beta-2)) / (W^T X^(beta-1) + l1_H) )^gamma
    W <- W * ( (V * X^(beta-2)) H^T / (X^(beta-1) H^T + l1_W) )^gamma

    gamma = 1/(2-beta) for beta < 1,  1 for 1 <= beta <= 2,  1/(beta-1) for beta > 2

With this exponent each update is a majorization-minimization step, so the divergence never
increases (Fevotte & Idier 2011, Theorem 1). For beta = 1 the denominators are the column sums of
W and row sums of H; for beta = 2 neither update forms X (W^T V, W^T W, V H^T, H H^T suffice).

Layout and speed. Internally frames are rows: Vt = V^T (n, m) and Ht = H^T (n, k), C-contiguous,
so a block of frames is a contiguous slice. One ``sweep`` per iteration goes over blocks of BLOCK
frames; per block it forms X_b = H_b W^T into a preallocated buffer, runs one fused numba pass
(ratio and powers), updates H_b, forms X_b again with the new H_b, runs the fused pass again
(now also summing the divergence of the updated factors) and adds the block's part of the W
numerator, while the block is still in cache. Frames are independent given W, so this is exact.
W itself is updated at the start of the next iteration (``apply_W``), which keeps scikit-learn's
order (W, then H) and lets a stop drop the pending update. 8 m n k flops per iteration, as
scikit-learn, but no n_bins x n_frames temporary (the per-block W numerators are k / BLOCK of V).

Zeros: X is floored at ``floor`` (see ``nmfsep.nmf.numerical_floor``) wherever it is divided by or
raised to a negative power, so zeros in V or X give no NaN or Inf. For beta <= 0, where d(0 | x)
is infinite, the caller floors V itself.
"""

import threading

import numpy as np

from . import _kernels

# Frames per block: 512 measured 5% faster per KL iteration than 256 or 1024 (bench_nmf's matrix,
# both OpenBLAS kernels of this machine); results depend on it only through summation order.
BLOCK = 512
# Entries of H below FLUSH * floor (about 1e-16 mean(V), scikit-learn's 2.2e-16 for a V of mean
# 1) are set to 0, as scikit-learn does for beta <= 1: multiplicative updates otherwise drive them
# on into float32 subnormals, which make every later product many times slower (scikit-learn's
# Euclidean MU slows down ~10x over 200 iterations on music this way). W only gets the bare
# minimum (entries below the smallest normal float become 0): a tiny basis entry may still need
# to grow back, and W's columns are normalised, so its scale is not V's.
FLUSH = 1e-9


def frame_blocks(n):
    """(start, stop) of the blocks of BLOCK frames the blocked solvers go over."""
    return [(start, min(start + BLOCK, n)) for start in range(0, n, BLOCK)]


def gamma_exponent(beta):
    """Fevotte & Idier's exponent that makes the multiplicative update monotone."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def beta_divergence(V, WH, beta, floor=0.0):
    """D_beta(V | WH) by its definition, in float64 on whole arrays (the naive reference).

    WH is floored at ``floor`` for beta != 2, and V too for beta <= 0, where d(0 | x) would be
    infinite (as the solvers do); terms with v = 0 take their limits for beta > 0: x for
    beta = 1, x^beta / beta otherwise.
    """
    V = np.asarray(V, np.float64)
    X = np.asarray(WH, np.float64)
    if beta == 2:
        return float(0.5 * np.sum((V - X) ** 2))
    X = np.maximum(X, floor)
    if beta <= 0:
        V = np.maximum(V, floor)
    if beta == 1:
        positive = V > 0
        out = X.copy()
        v, x = V[positive], X[positive]
        out[positive] = v * (np.log(v) - np.log(x)) - v + x   # not log(v / x): v / x can
        return float(out.sum())                                # underflow to 0 for a subnormal v
    if beta == 0:
        ratio = V / X
        return float(np.sum(ratio - np.log(ratio) - 1))
    return float(np.sum((V ** beta + (beta - 1) * X ** beta - beta * V * X ** (beta - 1))
                        / (beta * (beta - 1))))


def constant_part(Vt, beta):
    """The part of D_beta that does not depend on W H: sum v^beta for beta not in {0, 1, 2}."""
    if beta in (0, 1, 2):
        return 0.0
    return _kernels.sum_power(Vt, float(beta))


def _ratios(Vb, X, D, beta, floor, want_loss):
    """X <- V * X^(beta-2), D <- X^(beta-1) in place; the block's divergence part."""
    if beta == 1:
        return _kernels.kl_ratio(Vb, X, floor, want_loss)
    if beta == 0:
        return _kernels.is_ratio(Vb, X, D, floor, want_loss)
    return _kernels.beta_ratio(Vb, X, D, float(beta), floor, want_loss)


def _apply_ratio(F, numerator, denominator, gamma, flush):
    """F <- F * (numerator / denominator)^gamma in place (numerator is overwritten), with the
    denominator floored at float32 eps as scikit-learn does; entries below ``flush`` become 0
    (see ``FLUSH``)."""
    np.maximum(denominator, np.finfo(np.float32).eps, out=denominator)
    np.divide(numerator, denominator, out=numerator)
    if gamma != 1:
        np.power(numerator, gamma, out=numerator)
    F *= numerator
    F[F < flush] = 0


class BlockedMU:
    """Multiplicative updates for beta != 2 over frame blocks (see the module docstring).

    ``sweep`` is one pass over the blocks; ``apply_W`` then updates W. Blocks are handed to the
    workers one at a time (a worker slowed by another process simply takes fewer), each worker
    with its own buffers; every block writes its own divergence part and W numerator, summed in
    block order afterwards, so the result does not depend on the number of threads or on which
    thread took which block.
    """

    def __init__(self, Vt, k, beta, floor, workers):
        self.Vt, self.beta = Vt, float(beta)
        n, m = Vt.shape
        self.shape, self.dtype = (n, m, k), Vt.dtype
        self.floor = Vt.dtype.type(floor)
        self.flush = Vt.dtype.type(FLUSH * floor)               # for H
        self.flush_W = np.finfo(Vt.dtype).tiny
        self.gamma = gamma_exponent(beta)
        self.constant = constant_part(Vt, beta)
        self.blocks = frame_blocks(n)
        self.workers = workers
        self.local = threading.local()
        self.parts = np.zeros(len(self.blocks))
        self.num = self.den = None          # (n_blocks, m, k) W numerator/denominator parts

    def _buffers(self):
        """This thread's block buffers (X, D, N, Nd), made on first use."""
        buffers = getattr(self.local, "buffers", None)
        if buffers is None:
            n, m, k = self.shape
            width = min(BLOCK, n)
            dtype = self.dtype
            buffers = dict(X=np.empty(width * m, dtype),
                           D=np.empty(width * m, dtype) if self.beta != 1 else None,
                           N=np.empty(width * k, dtype), Nd=np.empty(width * k, dtype))
            self.local.buffers = buffers
        return buffers

    def divergence_from(self, parts):
        if self.beta in (0, 1):
            return parts
        return (self.constant + parts) / (self.beta * (self.beta - 1))

    def _block(self, index, W, Wt, Ht, update_H, accumulate_W, loss_at, h_terms):
        """One block of frames: its divergence part, H update and W numerator part."""
        buf = self._buffers()
        start, stop = self.blocks[index]
        m, k = W.shape
        b = stop - start
        beta, floor = self.beta, self.floor
        Vb, Hb = self.Vt[start:stop], Ht[start:stop]
        X = buf["X"][:b * m].reshape(b, m)
        D = None if buf["D"] is None else buf["D"][:b * m].reshape(b, m)
        part = 0.0
        np.dot(Hb, Wt, out=X)
        if update_H:
            part += _ratios(Vb, X, D, beta, floor, loss_at == "entry")
            N = buf["N"][:b * k].reshape(b, k)
            np.dot(X, W, out=N)
            inverse, col_sums, l1_H, smooth = h_terms
            if D is None and smooth is None:
                _kernels.scale_columns(Hb, N, inverse, self.flush)
            else:
                den = buf["Nd"][:b * k].reshape(b, k)
                if D is None:
                    den[:] = col_sums
                else:
                    np.dot(D, W, out=den)
                if smooth is not None:
                    N += smooth[1][start:stop]
                    den += smooth[0][start:stop]
                _kernels.scale_by_ratio(Hb, N, den, W.dtype.type(l1_H), self.gamma, self.flush)
            if accumulate_W or loss_at == "exit":
                np.dot(Hb, Wt, out=X)
                part += _ratios(Vb, X, D, beta, floor, loss_at == "exit")
        else:
            part += _ratios(Vb, X, D, beta, floor, loss_at is not None)
        if accumulate_W:
            np.dot(X.T, Hb, out=self.num[index])
            if D is not None:
                np.dot(D.T, Hb, out=self.den[index])
        self.parts[index] = part

    def sweep(self, W, Ht, update_H=True, accumulate_W=True, loss_at="exit", l1_H=0.0,
              smooth=None):
        """One pass over the frames: the H update (if asked), then the W numerator and
        denominator for the new H (if asked; the update itself is ``apply_W``, so that the caller
        may still drop it).

        loss_at: "entry" returns D_beta(V | W H) of the factors before the H update, "exit"
        after it, None nothing (nan).
        """
        n, m, k = self.shape
        if accumulate_W and self.num is None:
            self.num = np.empty((len(self.blocks), m, k), self.dtype)
            self.den = np.empty_like(self.num) if self.beta != 1 else None
        inverse = col_sums = None
        if self.beta == 1:      # the KL denominator: column sums of W (+ l1_H), floored
            col_sums = W.sum(axis=0, dtype=np.float64)
            inverse = (1.0 / np.maximum(col_sums + l1_H, np.finfo(np.float32).eps))
            col_sums, inverse = col_sums.astype(W.dtype), inverse.astype(W.dtype)
        Wt = np.ascontiguousarray(W.T)       # X_b = H_b W^T runs faster with W^T stored
        args = (W, Wt, Ht, update_H, accumulate_W, loss_at, (inverse, col_sums, l1_H, smooth))
        self.parts[:] = 0.0
        self.workers.map(lambda index: self._block(index, *args), range(len(self.blocks)))
        return np.nan if loss_at is None else self.divergence_from(float(self.parts.sum()))

    def apply_W(self, W, Ht, l1_W=0.0, free=None):
        """W <- W * (numerator / denominator)^gamma on the ``free`` columns (after ``sweep``)."""
        num = self.num.sum(axis=0)
        if self.beta == 1:
            den = np.broadcast_to(Ht.sum(axis=0), num.shape).copy()
        else:
            den = self.den.sum(axis=0)
        if l1_W:
            den += l1_W
        if free is None:
            _apply_ratio(W, num, den, self.gamma, self.flush_W)
        else:
            W_free = W[:, free]
            _apply_ratio(W_free, num[:, free], den[:, free], self.gamma, self.flush_W)
            W[:, free] = W_free


# ---------------------------------------------------------------- squared Euclidean (beta = 2)

def euclidean_loss(norm_V, cross, gram_W, gram_H):
    """||V - W H||^2 / 2 = (||V||^2 - 2 <W^T V, H> + <W^T W, H H^T>) / 2, in float64.

    ``cross`` is <W^T V, H> (equivalently <V H^T, W>), taken from a product the update needs
    anyway, so the loss costs O((m + n) k^2) rather than a pass over V.
    """
    value = 0.5 * (norm_V - 2.0 * cross + float(np.vdot(gram_W.astype(np.float64),
                                                           gram_H.astype(np.float64))))
    return max(value, 0.0)


def update_H_euclidean(W, Ht, VtW, WtW, norm_V, flush, l1_H=0.0, smooth=None):
    """Lee & Seung: H <- H * (W^T V) / (W^T W H + l1_H), on Ht = H^T in place.

    VtW = V^T W (n, k) and WtW = W^T W are passed in (constants when W is fixed). Returns
    ||V - W H||^2 / 2 of the updated factors.
    """
    numerator = VtW.copy()
    denominator = Ht @ WtW
    if l1_H:
        denominator += l1_H
    if smooth is not None:
        numerator += smooth[1]
        denominator += smooth[0]
    _apply_ratio(Ht, numerator, denominator, 1.0, flush)
    return euclidean_loss(norm_V, float(np.vdot(VtW.astype(np.float64), Ht)), WtW, Ht.T @ Ht)


def update_W_euclidean(W, VHt, HHt, norm_V, flush, l1_W=0.0, free=None):
    """Lee & Seung: W <- W * (V H^T) / (W H H^T + l1_W) in place on the ``free`` columns.

    VHt = V H^T (m, k) and HHt = H H^T are passed in. Returns ||V - W H||^2 / 2 afterwards.
    """
    numerator = VHt.copy()
    denominator = W @ HHt
    if l1_W:
        denominator += l1_W
    if free is None:
        _apply_ratio(W, numerator, denominator, 1.0, flush)
    else:
        W_free = W[:, free]
        _apply_ratio(W_free, numerator[:, free], denominator[:, free], 1.0, flush)
        W[:, free] = W_free
    return euclidean_loss(norm_V, float(np.vdot(VHt.astype(np.float64), W)), W.T @ W, HHt)

