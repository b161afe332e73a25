"""Initial factors for NMF: random, nndsvd, nndsvda, nndsvdar, custom.

The SVD-based inits follow Boutsidis & Gallopoulos (2008), "SVD based initialization: A head
start for nonnegative matrix factorization", Pattern Recognition 41(4), exactly as scikit-learn's
``_initialize_nmf`` does, so the same init gives scikit-learn and nmfsep the same start.
Shapes follow the audio papers: V (n_bins, n_frames) ≈ W (n_bins, k) @ H (k, n_frames).
"""

import numpy as np

INITS = ("random", "nndsvd", "nndsvda", "nndsvdar", "custom")

# Below this many rows or columns an exact SVD is cheap; above, a randomized one is used.
_EXACT_SVD_MAX = 600


def truncated_svd(V, k, rng):
    """The k leading singular triplets of V: U (m, k), S (k,), Vt (k, n).

    Exact (LAPACK) for small matrices; otherwise the randomized range finder of Halko, Martinsson
    & Tropp (2011), Algorithm 4.4, with 10 oversamples and 7 QR-normalised power iterations (as
    scikit-learn's ``randomized_svd``). Signs are fixed so that each column of U has its largest
    absolute entry positive, so the result does not depend on LAPACK's sign choice.
    """
    m, n = V.shape
    if min(m, n) <= _EXACT_SVD_MAX:
        U, S, Vt = np.linalg.svd(V.astype(np.float64), full_matrices=False)
    else:
        p = min(k + 10, min(m, n))
        Q = V @ rng.standard_normal((n, p)).astype(V.dtype)
        for _ in range(7):
            Q, _ = np.linalg.qr(Q)
            Q, _ = np.linalg.qr(V.T @ Q)
            Q = V @ Q
        Q, _ = np.linalg.qr(Q)
        Ub, S, Vt = np.linalg.svd((Q.T @ V).astype(np.float64), full_matrices=False)
        U = Q.astype(np.float64) @ Ub
    U, S, Vt = U[:, :k], S[:k], Vt[:k]
    signs = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])])
    signs[signs == 0] = 1
    return U * signs, S, Vt * signs[:, None]


def nndsvd(V, k, rng, fill="zeros"):
    """Non-negative double SVD (Boutsidis & Gallopoulos 2008).

    For each singular triplet (u_j, s_j, v_j) keep the larger of the positive or negative parts
    (by ||u+|| ||v+|| vs ||u-|| ||v-||): W[:, j] = sqrt(s_j sigma) u / ||u||, H[j] likewise.
    Entries below 1e-6 become 0 ("zeros", plain NNDSVD), the mean of V ("mean", NNDSVDa, better
    for multiplicative updates, which cannot leave zero), or |mean(V) N(0,1) / 100| ("random",
    NNDSVDar). These constants are scikit-learn's and assume a V of mean about 1 (normalise V,
    as ``nmfsep.separate`` does); ``random_init`` scales with V whatever its level.
    """
    U, S, Vt = truncated_svd(V, k, rng)
    W = np.zeros((V.shape[0], k))
    H = np.zeros((k, V.shape[1]))
    W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
    H[0] = np.sqrt(S[0]) * np.abs(Vt[0])
    for j in range(1, k):
        x, y = U[:, j], Vt[j]
        x_p, y_p = np.maximum(x, 0), np.maximum(y, 0)
        x_n, y_n = np.abs(np.minimum(x, 0)), np.abs(np.minimum(y, 0))
        x_p_nrm, y_p_nrm = np.linalg.norm(x_p), np.linalg.norm(y_p)
        x_n_nrm, y_n_nrm = np.linalg.norm(x_n), np.linalg.norm(y_n)
        m_p, m_n = x_p_nrm * y_p_nrm, x_n_nrm * y_n_nrm
        if m_p > m_n:
            u, v, sigma = x_p / x_p_nrm, y_p / y_p_nrm, m_p
        elif m_n > 0:
            u, v, sigma = x_n / x_n_nrm, y_n / y_n_nrm, m_n
        else:  # a zero singular vector (rank-deficient V): leave the component to the fill
            continue
        lbd = np.sqrt(S[j] * sigma)
        W[:, j] = lbd * u
        H[j] = lbd * v
    W[W < 1e-6] = 0
    H[H < 1e-6] = 0
    avg = float(V.mean())
    if fill == "mean":
        W[W == 0] = avg
        H[H == 0] = avg
    elif fill == "random":
        W[W == 0] = np.abs(avg * rng.standard_normal(int((W == 0).sum())) / 100)
        H[H == 0] = np.abs(avg * rng.standard_normal(int((H == 0).sum())) / 100)
    return W, H


def random_init(V, k, rng):
    """|N(0, 1)| * sqrt(mean(V) / k) for every entry, so that W H has the scale of V."""
    avg = np.sqrt(float(V.mean()) / k)
    H = np.abs(avg * rng.standard_normal((k, V.shape[1])))
    W = np.abs(avg * rng.standard_normal((V.shape[0], k)))
    return W, H


def constant_complement(V, W=None, H=None):
    """The missing factor as a constant c chosen so that mean(W H) = mean(V)."""
    if H is None:
        row_sums = W.sum(axis=1).mean()
        c = V.mean() / row_sums if row_sums > 0 else 1.0
        return np.full((W.shape[1], V.shape[1]), c)
    col_sums = H.sum(axis=0).mean()
    c = V.mean() / col_sums if col_sums > 0 else 1.0
    return np.full((V.shape[0], H.shape[0]), c)


def initialize(V, k, init, rng):
    """Initial (W, H) as float64 for V (m, n) and rank k with one of the non-custom INITS."""
    if init == "random":
        return random_init(V, k, rng)
    fills = {"nndsvd": "zeros", "nndsvda": "mean", "nndsvdar": "random"}
    return nndsvd(V, k, rng, fills[init])
