"""From NMF components to sources: which components make up each source, and in what order."""

import numpy as np


def spectral_centroids(source_spectra: np.ndarray) -> np.ndarray:
    """Centroid (in bins) of each row of non-negative spectra (n_sources, n_bins); 0 for silence."""
    bins = np.arange(source_spectra.shape[1], dtype=np.float64)
    energy = source_spectra.sum(axis=1, dtype=np.float64)
    weighted = source_spectra @ bins
    return np.divide(weighted, energy, out=np.zeros_like(weighted), where=energy > 0)


def order_by_centroid(groups: list[np.ndarray], W: np.ndarray, H: np.ndarray) -> list[np.ndarray]:
    """Groups sorted so the source with the lowest spectral centroid comes first.

    A source's spectrum is its components' bases weighted by their total activation, i.e. the
    time-average of W_s H_s. Ties keep the given order (stable sort).
    """
    activation = H.sum(axis=1)
    spectra = np.stack([W[:, g] @ activation[g] for g in groups])
    order = np.argsort(spectral_centroids(spectra), kind="stable")
    return [groups[i] for i in order]
