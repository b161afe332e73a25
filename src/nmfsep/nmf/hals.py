"""Accelerated HALS (coordinate descent) for the squared Euclidean cost.

Cost: ||V - W H||_F^2 / 2 + l1_W sum(W) + l1_H sum(H). Hierarchical alternating least squares
(Cichocki & Phan 2009) minimises it exactly over one row of H (or column of W) at a time, the
others fixed; with A = W^T W and B = W^T V::

    h_j <- max(0, h_j + (b_j - l1_H - a_j^T H) / a_jj)          (j = 1..k in turn)

and symmetrically for W with A = H H^T, B = V H^T. This is scikit-learn's "cd" solver. Each step
is an exact block minimisation, so the cost never increases.

Acceleration (Gillis & Glineur 2012, "Accelerated multiplicative updates and hierarchical
alternating least squares algorithms for NMF", Neural Computation 24(4)): B costs 2mnk flops but
a sweep over the k rows only 2nk^2, so each factor gets up to 1 + alpha * rho sweeps per
computation of B, rho = 1 + (mn + (m + n) k) / (n (k + 1)) for H (m (k + 1) for W), stopping once
a sweep changes the factor by less than delta times the first one (alpha = 0.5, delta = 0.1, the
paper's choice).

The sweeps run in ``_kernels.hals_rows`` on the solver's layout Ht = H^T (n, k) and W (m, k), so
one routine serves both factors. Rows (frames of H, bins of W) are independent given the other
factor, so they are handed to the worker threads in chunks of rows (``_parallel.CHUNK_ROWS``);
each chunk applies the stopping rule to its own rows.

When both factors learn, ``FramePass`` updates H block by block of frames (``mu.BLOCK``): it forms
the block's V^T W, sweeps its rows and, while the block of V is still in cache, adds up the
block's part of V H^T and H H^T for the next W update. Same arithmetic, one read of V per
iteration instead of two.
"""

import numpy as np

from . import _kernels
from .mu import euclidean_loss, frame_blocks

ALPHA = 0.5
DELTA = 0.1


def inner_sweeps(rows, other, k, m_times_n):
    """1 + floor(alpha * rho): how many sweeps one product V^T W (or V H^T) pays for."""
    rho = 1.0 + (m_times_n + (rows + other) * k) / (rows * (k + 1))
    return 1 + int(ALPHA * rho)


def sweep(F, B, A, l1, free, n_sweeps, flush):
    """HALS sweeps on the rows of F given B and A, in place: the negative gradient B - F A, then
    ``_kernels.hals_rows`` (B is left as it is)."""
    _kernels.hals_rows(F, B - F @ A, A, l1, free, n_sweeps, DELTA, flush)


def sweep_rows(F, B, A, l1, free, n_sweeps, workers, flush):
    """HALS sweeps on the rows of F given B and A, in place, the rows split over the workers."""
    l1 = F.dtype.type(l1)
    workers.map(lambda span: sweep(F[span[0]:span[1]], B[span[0]:span[1]], A, l1, free,
                                   n_sweeps, flush),
                workers.chunks(F.shape[0]))


def update_H(W, Ht, VtW, WtW, norm_V, workers, flush, l1_H=0.0):
    """HALS sweeps on H, in place on Ht = H^T; VtW = V^T W and WtW = W^T W are given (constants
    when W is fixed). Returns ||V - W H||^2 / 2 of the updated factors."""
    n, k = Ht.shape
    m = W.shape[0]
    sweep_rows(Ht, VtW, WtW, l1_H, np.ones(k, np.bool_), inner_sweeps(n, m, k, m * n), workers,
               Ht.dtype.type(flush))
    return euclidean_loss(norm_V, float(np.vdot(VtW.astype(np.float64), Ht)), WtW, Ht.T @ Ht)


def update_W(W, Ht, VHt, HHt, norm_V, workers, flush, l1_W=0.0, free=None):
    """HALS sweeps on the ``free`` columns of W (in place); VHt = V H^T and HHt = H H^T are
    given. Returns ||V - W H||^2 / 2 of the updated factors."""
    m, k = W.shape
    n = Ht.shape[0]
    free = np.ones(k, np.bool_) if free is None else free
    sweep_rows(W, VHt, HHt, l1_W, free, inner_sweeps(m, n, k, m * n), workers,
               W.dtype.type(flush))
    return euclidean_loss(norm_V, float(np.vdot(VHt.astype(np.float64), W)), W.T @ W, HHt)


class FramePass:
    """HALS on H over blocks of frames, with V H^T for the next W update made on the way (see
    the module docstring). Each block writes its own parts, summed in block order afterwards, so
    the result does not depend on the number of threads."""

    def __init__(self, Vt, k, workers):
        n, m = Vt.shape
        self.Vt, self.workers = Vt, workers
        self.blocks = frame_blocks(n)
        self.sweeps = inner_sweeps(n, m, k, m * n)
        self.VHt_parts = np.empty((len(self.blocks), m, k), Vt.dtype)
        self.HHt_parts = np.empty((len(self.blocks), k, k), Vt.dtype)
        self.cross_parts = np.zeros(len(self.blocks))

    def update_H(self, W, Ht, norm_V, flush, l1_H=0.0, want_VHt=True):
        """HALS sweeps on H, in place on Ht = H^T, given the current W.

        Returns (||V - W H||^2 / 2 of the updated factors, (V H^T, H H^T) of the updated H, or
        None when ``want_VHt`` is False).
        """
        k = W.shape[1]
        WtW = W.T @ W
        free = np.ones(k, np.bool_)
        l1, flush = Ht.dtype.type(l1_H), Ht.dtype.type(flush)

        def block(index):
            start, stop = self.blocks[index]
            Vb, Hb = self.Vt[start:stop], Ht[start:stop]
            VtW = Vb @ W
            sweep(Hb, VtW, WtW, l1, free, self.sweeps, flush)
            self.cross_parts[index] = np.vdot(VtW.astype(np.float64), Hb)
            np.dot(Hb.T, Hb, out=self.HHt_parts[index])
            if want_VHt:
                np.dot(Vb.T, Hb, out=self.VHt_parts[index])

        self.workers.map(block, range(len(self.blocks)))
        HHt = self.HHt_parts.sum(axis=0)
        loss = euclidean_loss(norm_V, float(self.cross_parts.sum()), WtW, HHt)
        return loss, ((self.VHt_parts.sum(axis=0), HHt) if want_VHt else None)
