"""Separation quality: scale-invariant SDR and the best matching of estimates to references."""

import itertools
from collections.abc import Callable

import numpy as np

from .errors import NmfsepError


CHUNK = 1 << 20  # samples that si_sdr converts to float64 at a time (its memory, whatever the length)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), over all samples and channels.

        target = (<s_hat, s> / ||s||^2) s,   SI-SDR = 10 log10(||target||^2 / ||s_hat - target||^2)

    The sums are taken in float64, CHUNK samples at a time. -inf for a silent reference or estimate.
    """
    s, s_hat = np.asarray(reference).ravel(), np.asarray(estimate).ravel()

    def total(f):
        return sum(f(s[i: i + CHUNK].astype(np.float64), s_hat[i: i + CHUNK].astype(np.float64))
                   for i in range(0, len(s), CHUNK))

    energy, overlap = total(lambda a, b: np.array([a @ a, b @ a]))
    if energy == 0:
        return float("-inf")
    scale = overlap / energy
    target = scale**2 * energy
    if target == 0:  # a silent estimate, or one orthogonal to the reference
        return float("-inf")
    noise = total(lambda a, b: (b - scale * a) @ (b - scale * a))
    return float(10 * np.log10(target / max(noise, 1e-20 * target)))  # at most 200 dB, at any level


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


FILTER_LENGTH = 512  # taps of bss_eval's distortion filter (mir_eval's and fast_bss_eval's default)
BSS_BUDGET = 1 << 21  # frames x channels x sources^2 that bss_eval scores at a time (its memory)


def bss_window(n_sources: int, n_channels: int) -> int:
    """Frames per bss_eval window: BSS_BUDGET / (n_channels n_sources^2), at least 16 filter
    lengths. fast_bss_eval's correlations of a window take about 100 bytes per frame, channel and
    pair of sources, so about 200 MB: 6 s of 44.1 kHz stereo with 2 sources, 1.5 s with 4."""
    return max(BSS_BUDGET // (n_channels * n_sources**2), 16 * FILTER_LENGTH)


def windows(n_frames: int, window: int) -> list[tuple[int, int]]:
    """(start, stop) of the fewest windows of at most `window` frames, of near-equal length
    (a short tail is spread over the others), that tile n_frames frames."""
    count = -(-n_frames // window)
    bounds = np.linspace(0, n_frames, count + 1).round().astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def bss_eval_energies(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """bss_eval's decomposition of each estimate, est_i = s_target + e_interf + e_artif, as energies.

    references, estimates: (n_sources, n_samples); estimate i is scored against reference i.
    Returns (3, n_sources): ||s_target||^2, ||s_target + e_interf||^2 and ||est_i||^2 (fast_bss_eval's
    projections on the FILTER_LENGTH shifts of reference i and of all the references). A silent
    reference spans nothing: its estimate's target energy is 0, and it is left out of the others'.
    Raises NmfsepError where the references' projection is singular (the same signal twice, or
    scaled; a reference that is a mix of others may or may not be, numerically).
    """
    from fast_bss_eval.numpy import square_cosine_metrics

    energy = np.einsum("ij,ij->i", estimates, estimates)
    target, projected = np.zeros_like(energy), np.zeros_like(energy)
    active = np.flatnonzero(np.any(references != 0, axis=1))
    if len(active):
        try:
            coh_target, coh_all = square_cosine_metrics(references[active], estimates,
                                                        filter_length=FILTER_LENGTH, pairwise=True)
        except np.linalg.LinAlgError:
            raise NmfsepError("bss_eval cannot score references that depend on each other (the same signal "
                              "twice, or scaled): --no-bss scores SI-SDR only") from None
        target[active] = coh_target[np.arange(len(active)), active] * energy[active]
        projected = coh_all[0] * energy
        if len(active) == 1:  # no other reference, no interference (the two solves differ by rounding)
            projected[active] = target[active]
    return np.stack([target, projected, energy])


def bss_eval(references: np.ndarray, estimates: np.ndarray, window: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """SDR, SIR, SAR (dB) of each reference against the estimate of the given order (bss_eval v3).

    references, estimates: (n_sources, n_frames) or (n_sources, n_frames, n_channels), or lists
    of n_sources such arrays. In each window the channels are laid end to end, so a stereo source
    is scored as one signal twice as long. Windows hold at most `window` frames (default
    bss_window: about 200 MB whatever the length, channels and sources; n_frames: one window).
    Each window is decomposed by bss_eval with its own distortion filter (bss_eval_energies), and
    the energies are summed over the windows before the ratios are taken:

        SDR = 10 log10(sum T / sum(E - T)),  SIR = 10 log10(sum T / sum(P - T)),
        SAR = 10 log10(sum P / sum(E - P))

    with T = ||s_target||^2, P = ||s_target + e_interf||^2, E = ||est||^2 of each window. In one
    window this is mir_eval's bss_eval_sources (to 1e-6 dB where the references are broadband; for
    a few pure tones the filter's system is ill-conditioned and the two can differ by dB). Silent
    windows weigh nothing (museval takes the median over 1 s windows and drops their NaN); an
    estimate silent throughout gets NaN. progress(done, total) after each window. Raises
    NmfsepError for signals shorter than FILTER_LENGTH frames (fast_bss_eval fails on them, or
    gives meaningless ratios) and where bss_eval_energies does.
    """
    n_frames, n_channels = len(references[0]), (np.shape(references[0]) + (1,))[1]
    if n_frames < FILTER_LENGTH:
        raise NmfsepError(f"{n_frames} samples are too short for bss_eval's {FILTER_LENGTH}-tap distortion filter: "
                          "--no-bss scores SI-SDR only")
    spans = windows(n_frames, window or bss_window(len(references), n_channels))
    totals = np.zeros((3, len(references)))
    for done, (start, stop) in enumerate(spans, 1):
        def flat(signals):  # this window in float64, channels end to end
            x = np.stack([signal[start:stop] for signal in signals], dtype=np.float64)
            return x.swapaxes(1, 2).reshape(len(x), -1) if x.ndim == 3 else x

        totals += bss_eval_energies(flat(references), flat(estimates))
        if progress is not None:
            progress(done, len(spans))
    target, projected, energy = totals
    with np.errstate(divide="ignore", invalid="ignore"):
        # a difference that rounding takes below zero is no energy at all (one reference: no interference)
        return {"sdr": 10 * np.log10(target / np.maximum(energy - target, 0)),
                "sir": 10 * np.log10(target / np.maximum(projected - target, 0)),
                "sar": 10 * np.log10(projected / np.maximum(energy - projected, 0))}


def score(references: np.ndarray, estimates: np.ndarray, mixture: np.ndarray | None = None,
          with_bss_eval: bool = True, window: int | None = None,
          progress: Callable[[int, int], None] | None = None, ordered: bool = False) -> list[dict]:
    """One row per reference: its best-matched estimate (index), SI-SDR, improvement, SDR/SIR/SAR.

    references: (n_sources, n_frames[, n_channels]); estimates: (n_estimates >= n_sources, ...) of
    the same frames and channels; mixture: (n_frames[, n_channels]), by default the sum of the
    references (true when they are a full separation; with one reference that would be the
    reference itself, which the CLI refuses). window, progress: see bss_eval. ordered: the i-th
    reference goes with the i-th estimate, not its best match (stems named after models, where
    a swap is an error to score, not to forgive).
    """
    mixture = references.sum(axis=0) if mixture is None else mixture
    with np.errstate(divide="ignore", invalid="ignore"):  # silent signals score -inf or NaN, no warning
        if ordered:
            order = tuple(range(len(references)))
            scores = [si_sdr(ref, est) for ref, est in zip(references, estimates)]
        else:
            order, scores = best_permutation(references, estimates)
        rows = [{"estimate": j, "si_sdr": float(s), "si_sdr_improvement": float(s - si_sdr(ref, mixture))}
                for ref, j, s in zip(references, order, scores)]
        if with_bss_eval:
            metrics = bss_eval(references, [estimates[j] for j in order], window, progress)
            for i, row in enumerate(rows):
                row.update({name: float(values[i]) for name, values in metrics.items()})
    return rows
