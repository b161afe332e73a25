"""k-means as NMF: V ≈ W H with H one-hot.

Clustering the frames (columns) of V into k groups with centroids c_1..c_k minimises

    sum_t ||v_t - c_label(t)||^2  =  ||V - W H||_F^2,   W = [c_1 .. c_k],  H[j, t] = [label(t) = j]

which is NMF with the extra constraint that each column of H is a unit vector (Ding, He & Simon
2005, "On the equivalence of nonnegative matrix factorization and spectral clustering"). Lloyd's
algorithm alternates the two exact block minimisations: H given W (each frame to its nearest
centroid) and W given H (each centroid the mean of its frames, which is W = V H^T (H H^T)^-1 and
non-negative when V is). Dropping the one-hot constraint can only lower the optimum, so NMF of the
same rank reaches an objective no larger (NMF started from the k-means solution proves it, since
its updates never increase the cost).

Lloyd's iterations here follow scikit-learn's ``KMeans(algorithm="lloyd")`` step for step
(labels from the current centroids, new centroids from those labels, empty clusters re-seeded
with the frames farthest from their centroids, stop when no label changes), so from the same
initial centroids both reach the same labels and the same inertia.
"""

import numpy as np

from ..errors import BadValueError
from ._parallel import Workers


def kmeans_plusplus(points, k, rng):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007): centroids (k, m) from points
    (n, m), each new one the best of 2 + log(k) candidates drawn in proportion to the squared
    distance to the nearest centroid so far."""
    n = points.shape[0]
    trials = 2 + int(np.log(k))
    norms = np.einsum("ij,ij->i", points, points)
    centers = np.empty((k, points.shape[1]), points.dtype)
    first = rng.integers(n)
    centers[0] = points[first]
    closest = np.maximum(norms - 2 * points @ points[first] + norms[first], 0)
    for c in range(1, k):
        total = closest.sum()
        if total <= 0:                       # fewer distinct points than k: repeat one
            centers[c] = points[rng.integers(n)]
            continue
        candidates = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
        candidates = np.minimum(candidates, n - 1)
        distances = np.maximum(norms[None, :] - 2 * points[candidates] @ points.T
                               + norms[candidates, None], 0)
        distances = np.minimum(closest[None, :], distances)
        best = int(np.argmin(distances.sum(axis=1)))
        centers[c] = points[candidates[best]]
        closest = distances[best]
    return centers


def _assign(points, norms, centers):
    """Labels of the nearest centroid for each point, and the squared distances to it."""
    distances = norms[:, None] - 2.0 * points @ centers.T + np.einsum("ij,ij->i", centers,
                                                                      centers)[None, :]
    labels = np.argmin(distances, axis=1)
    return labels, np.maximum(distances[np.arange(len(labels)), labels], 0)


def _means(points, labels, centers_old, k):
    """Centroids as the means of their points; empty clusters take the points farthest from
    their own centroids (scikit-learn's ``_relocate_empty_clusters_dense``)."""
    m = points.shape[1]
    sums = np.zeros((k, m), np.float64)
    np.add.at(sums, labels, points)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        distances = ((points - centers_old[labels]) ** 2).sum(axis=1)
        far = np.argpartition(distances, -empty.size)[:-empty.size - 1:-1]
        for new_cluster, point in zip(empty, far):
            old_cluster = labels[point]
            sums[old_cluster] -= points[point]
            sums[new_cluster] = points[point]
            counts[new_cluster] = 1
            counts[old_cluster] -= 1
    filled = counts > 0
    centers = centers_old.astype(np.float64, copy=True)
    centers[filled] = sums[filled] / counts[filled, None]
    return centers


def kmeans(V, k, *, seed=None, init="k-means++", max_iter=300, callback=None):
    """Cluster the frames (columns) of V (n_bins, n_frames) into k groups, as NMF.

    init: 'k-means++' (seeded by ``seed``) or an array of k initial centroids as columns,
    (n_bins, k). Runs Lloyd's iterations until no frame changes cluster, or max_iter.
    callback(iteration, inertia) is called after each iteration; returning True stops.

    Returns NMFResult(W, H, losses, n_iter): W (n_bins, k) the centroids, H (k, n_frames) one-hot,
    losses the k-means objective ||V - W H||_F^2 (scikit-learn's ``inertia_``) for each
    iteration's centroids and labels. Note: ``factorize(beta=2)`` reports half of the squared
    error, so compare ``2 * factorize(...).losses[-1]`` with ``kmeans(...).losses[-1]``.
    """
    from . import check_spectrogram

    V = check_spectrogram(V)
    dtype = np.float64 if V.dtype == np.float64 else np.float32
    m, n = V.shape
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise BadValueError(f"k must be an integer in [1, n_frames = {n}], got {k!r}")
    with Workers(1):                       # BLAS single-threaded, as in factorize
        return _lloyd(V, k, seed, init, max_iter, callback, dtype)


def _lloyd(V, k, seed, init, max_iter, callback, dtype):
    from . import NMFResult, check_spectrogram

    m, n = V.shape
    points = np.ascontiguousarray(V.T, dtype=np.float64)
    norms = np.einsum("ij,ij->i", points, points)
    if isinstance(init, str):
        if init != "k-means++":
            raise BadValueError(f"unknown init {init!r}: use 'k-means++' or an (n_bins, k) array")
        centers = kmeans_plusplus(points, k, np.random.default_rng(seed))
    else:
        centers = np.array(init, dtype=np.float64)
        if centers.shape != (m, k):
            raise BadValueError(f"init centroids must have shape ({m}, {k}), got {centers.shape}")
        centers = np.ascontiguousarray(check_spectrogram(centers, "init").T)

    def inertia(labels):
        return float(np.sum((points - centers[labels]) ** 2))

    losses = []
    labels_old = np.full(n, -1)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        labels, _ = _assign(points, norms, centers)
        centers = _means(points, labels, centers, k)
        converged = np.array_equal(labels, labels_old)
        losses.append(inertia(labels))
        if converged or (callback is not None and callback(n_iter, losses[-1])):
            break
        labels_old = labels
    if not converged:                     # labels that match the final centroids
        labels, _ = _assign(points, norms, centers)
        if losses:
            losses[-1] = inertia(labels)
        else:
            losses.append(inertia(labels))

    H = np.zeros((k, n), dtype)
    H[labels, np.arange(n)] = 1
    return NMFResult(np.ascontiguousarray(centers.T, dtype=dtype), H,
                     np.asarray(losses, np.float64), n_iter)
