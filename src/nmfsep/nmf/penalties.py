"""Penalties on the factors: L1 (sparsity) and temporal continuity of H (Virtanen 2007).

All functions take Ht = H^T (n_frames, k), the solvers' internal layout.

Temporal continuity (T. Virtanen, "Monaural sound source separation by nonnegative matrix
factorization with temporal continuity and sparseness criteria", IEEE TASLP 15(3), 2007)::

    c_t(H) = sum_j  T / (sum_t h_jt^2)  *  sum_{t>=1} (h_jt - h_j,t-1)^2

It penalises jumps between neighbouring frames relative to each row's energy, so it does not
depend on the scale of a row. Its gradient splits into a positive and a negative part, which
enter the multiplicative update as extra denominator and numerator terms (Virtanen's eq. 13-14,
with the exact neighbour count at the first and last frame)::

    d c_t / d h_jt = [2 T n_t h_jt / S_j]  -  [2 T (h_j,t-1 + h_j,t+1) / S_j + 2 T h_jt Q_j / S_j^2]
                      (positive part)         (negative part)

with S_j = sum_t h_jt^2, Q_j = sum_t (h_jt - h_j,t-1)^2 and n_t the number of neighbours of t.
Unlike the plain multiplicative updates this step is a heuristic: the penalised objective usually
but not provably decreases.
"""

import numpy as np


def temporal_continuity(Ht):
    """c_t(H) (float64); rows that are all zero contribute nothing."""
    H64 = Ht.astype(np.float64)
    energy = np.sum(H64 ** 2, axis=0)
    jumps = np.sum(np.diff(H64, axis=0) ** 2, axis=0)
    active = energy > 0
    return float(H64.shape[0] * np.sum(jumps[active] / energy[active]))


def temporal_continuity_gradient(Ht, weight):
    """(positive, negative) parts of weight * grad c_t at Ht, each (n, k) in Ht's dtype."""
    T = Ht.shape[0]
    H64 = Ht.astype(np.float64)
    energy = np.sum(H64 ** 2, axis=0)
    jumps = np.sum(np.diff(H64, axis=0) ** 2, axis=0)
    scale = np.divide(2.0 * T * weight, energy, out=np.zeros_like(energy), where=energy > 0)
    neighbours = np.zeros_like(H64)
    neighbours[1:] += H64[:-1]
    neighbours[:-1] += H64[1:]
    count = np.full((T, 1), 2.0)
    count[0] = count[-1] = 1.0
    if T == 1:
        count[0] = 0.0
    positive = scale * count * H64
    ratio = np.divide(jumps, energy, out=np.zeros_like(energy), where=energy > 0)
    negative = scale * (neighbours + H64 * ratio)
    return positive.astype(Ht.dtype), negative.astype(Ht.dtype)


def penalty(W, Ht, l1_W=0.0, l1_H=0.0, smooth_H=0.0):
    """l1_W sum(W) + l1_H sum(H) + smooth_H c_t(H) (float64)."""
    value = 0.0
    if l1_W:
        value += l1_W * float(W.sum(dtype=np.float64))
    if l1_H:
        value += l1_H * float(Ht.sum(dtype=np.float64))
    if smooth_H:
        value += smooth_H * temporal_continuity(Ht)
    return value
