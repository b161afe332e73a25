"""Separation quality: scale-invariant SDR and the best matching of estimates to references."""

import itertools
import warnings

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


def bss_eval(references: np.ndarray, estimates: np.ndarray) -> dict[str, np.ndarray]:
    """SDR, SIR, SAR (dB) of each reference against the estimate of the given order (mir_eval).

    references, estimates: (n_sources, n_samples, ...); channels are laid end to end, so a
    stereo source is scored as one signal twice as long.
    """
    from mir_eval.separation import bss_eval_sources

    def flat(x):
        x = np.asarray(x, dtype=np.float64)
        return np.moveaxis(x, 1, -1).reshape(len(x), -1) if x.ndim == 3 else x

    with warnings.catch_warnings():  # mir_eval 0.8 marks bss_eval_sources deprecated; it still works
        warnings.simplefilter("ignore", FutureWarning)
        sdr, sir, sar, _ = bss_eval_sources(flat(references), flat(estimates), compute_permutation=False)
    return {"sdr": sdr, "sir": sir, "sar": sar}


def score(references: np.ndarray, estimates: np.ndarray, mixture: np.ndarray | None = None,
          with_bss_eval: bool = True) -> list[dict]:
    """One row per reference: its best-matched estimate (index), SI-SDR, improvement, SDR/SIR/SAR.

    The mixture defaults to the sum of the references (true when they are a full separation).
    """
    mixture = references.sum(axis=0) if mixture is None else mixture
    order, scores = best_permutation(references, estimates)
    rows = [{"estimate": j, "si_sdr": float(s), "si_sdr_improvement": float(s - si_sdr(ref, mixture))}
            for ref, j, s in zip(references, order, scores)]
    if with_bss_eval:
        metrics = bss_eval(references, estimates[list(order)])
        for i, row in enumerate(rows):
            row.update({name: float(values[i]) for name, values in metrics.items()})
    return rows
