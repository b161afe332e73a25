"""Separation quality: scale-invariant SDR and the best matching of estimates to references."""

import itertools

import numpy as np


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), over all samples and channels.

        target = (<s_hat, s> / ||s||^2) s,   SI-SDR = 10 log10(||target||^2 / ||s_hat - target||^2)
    """
    s = np.asarray(reference, dtype=np.float64).ravel()
    s_hat = np.asarray(estimate, dtype=np.float64).ravel()
    energy = s @ s
    if energy == 0:
        return float("-inf")
    target = (s_hat @ s) / energy * s
    noise = s_hat - target
    return float(10 * np.log10((target @ target) / max(noise @ noise, 1e-20)))


def best_permutation(references: np.ndarray, estimates: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    """The estimate order that maximises the mean SI-SDR, and the SI-SDR of each reference."""
    n = len(references)
    scores = np.array([[si_sdr(references[i], estimates[j]) for j in range(len(estimates))]
                       for i in range(n)])
    best = max(itertools.permutations(range(len(estimates)), n),
               key=lambda perm: scores[np.arange(n), list(perm)].mean())
    return best, scores[np.arange(n), list(best)]


def si_sdr_improvement(references: np.ndarray, estimates: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    """SI-SDR of each reference's best-matched estimate minus that of the unprocessed mixture."""
    _, scores = best_permutation(references, estimates)
    baseline = np.array([si_sdr(ref, mixture) for ref in references])
    return scores - baseline
