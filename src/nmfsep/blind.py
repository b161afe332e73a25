"""Blind separation of one input's magnitude: factorize, group the components into stems, order them.

W and H are learned on the mixture (by default three times, with 16, 24 and 32 components), the
components are grouped into k sources (nmfsep.grouping), ordered by spectral centroid, and the
factorizations averaged, their masks moved toward 1/k as far as they disagree (``_ensemble``);
with --grouping auto, one component per source replaces them for steady sources
(``_one_component_per_source``). ``fit`` is the entry (nmfsep.pipeline.fit_bases calls it).
"""

from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

from . import spectrum
from .fitting import Fit, init_for
from .masks import masks_of
from .grouping import group_components, order_by_centroid
from .nmf import factorize

if TYPE_CHECKING:
    from .pipeline import IterationCount, Settings

DEFAULT_COMPONENTS = 24
# Blind default: factorizations of 24, 16 and 32 components, grouped one by one and averaged (see
# _ensemble); --components C makes one factorization of C.
ENSEMBLE = (1.0, 2 / 3, 4 / 3)
# The ensemble's agreement (above chance) from which its masks keep full strength (see _ensemble).
# Chosen on the corpus' validation split with the learned grouping (mask exponent 2, without the
# one-component-per-source check):
# 0.6 -> +6.91 dB mean, 5% of mixtures below -1 dB; 0.7 -> +6.90, 4%; 0.8 -> +6.85, 2%; 0.9 -> +6.72,
# 2%; 1.0 -> +6.43, 2%; none (full strength always) -> +6.86, 5%. 0.8: the fewest below -1 dB, at
# 0.06 dB of the best mean.
CONFIDENT_AGREEMENT = 0.8
FULL_AGREEMENT = 0.9  # --grouping auto: the agreement that keeps the ensemble (see _one_component_per_source)
SIMPLE_SHARE = 0.75  # --grouping auto: see _one_component_per_source
# Mask exponent of the blind ensemble: 2 (the Wiener mask), better than 3 on the validation split
# with the learned grouping (above). (With timbre grouping on the six-case benchmark, 3 was.)
ENSEMBLE_POWER = 2.0
BLIND_SMOOTHNESS = 0.2  # temporal continuity of blind components (bench_quality --blind: 0 -> +5.4, 0.2 -> +5.9 dB)


def fit(V: np.ndarray, settings: "Settings", sample_rate: int, params: spectrum.StftParams, options: dict,
        count: "IterationCount", channels: np.ndarray | None = None) -> Fit:
    """Blind Fit of V (n_bins, n_frames, the input's magnitude over its mean, not all zero) into
    settings.n_sources stems, lowest spectral centroid first: one factorization of
    ``settings.component_counts`` components grouped by settings.grouping, or where it asks for
    several, their average (``_ensemble``; --grouping auto: or one component per source, see
    ``_one_component_per_source``). options: factorize's keywords (seed, solver settings,
    callback); count: the IterationCount each factorization reports to; channels: the input's
    spectrogram per channel (n_channels, n_bins, n_frames), for the learned grouping's stereo cue."""
    counts = settings.component_counts(V.shape[1])
    if len(counts) > 1:
        ensemble = _ensemble(V, counts, settings, sample_rate, params, options, count, channels)
        if settings.grouping == "auto":
            return _one_component_per_source(V, ensemble, settings, options, count) or ensemble
        return ensemble
    k = counts[0]
    result = factorize(V, k, init=init_for(V, k), **options)
    count.ran(result.n_iter, settings.max_iter)
    losses = np.asarray(result.losses)
    loss = float(losses[-1]) if len(losses) else None
    return Fit(result.W, result.H, stem_groups(result.W, result.H, settings, sample_rate, params, channels),
               result.n_iter, loss, losses)


def stem_groups(W: np.ndarray, H: np.ndarray, settings: "Settings", sample_rate: int,
                params: spectrum.StftParams, channels: np.ndarray | None = None) -> list[np.ndarray]:
    """The component indices of each stem of one factorization W (n_bins, C), H (C, n_frames):
    grouped by settings.grouping (seeded by settings.seed), lowest spectral centroid first."""
    groups = group_components(W, H, settings.n_sources, settings.grouping, sample_rate, params.n_fft, settings.seed,
                              channels)
    return order_by_centroid(groups, W, H)


def _ensemble(V: np.ndarray, counts: list[int], settings: "Settings", sample_rate: int,
              params: spectrum.StftParams, options: dict, count: "IterationCount",
              channels: np.ndarray | None = None) -> Fit:
    """Blind separation averaged over factorizations of V with each of ``counts`` components.

    Each factorization is grouped on its own; the first's groups are put in stem order and every
    other's are matched to them (the assignment with the most overlap of their soft masks). The
    stems' models are then the mean over factorizations: W = [W_1 .. W_m], H = [H_1 .. H_m] / m.

    Which components a grouping gets right depends on the number of components almost at random
    (bench_quality --blind, timbre grouping alone: 16, 20, 28, 32 or 40 components give +4.5 to
    +5.0 dB, 24 gives +5.9); the average does not hang on one of them. The solver's record
    (iterations, losses) is the first factorization's.

    Confidence: where the factorizations agree, the grouping is trusted; where they disagree, it is
    likely wrong and full-strength masks would make the stems worse than the input. The agreement
    a is the share of the input's magnitude that the matched masks give to the same stem (mean of
    sum(V M_first M_other) / sum(V) over the others), 1 / n by chance; its part above chance,
    g = (a - 1/n) / (1 - 1/n), is below 1 even for a clean separation (soft masks of different
    factorizations differ in detail: 0.95 on the benchmark's tones). The confidence
    c = min(1, g / CONFIDENT_AGREEMENT), and the masks become c M + (1 - c) / n (masks_of): an
    unsure separation is pulled toward the input split evenly, and the masks still sum to one.
    CONFIDENT_AGREEMENT was calibrated on the corpus' validation split (see its comment).
    """
    bases, activations, groups, first, agreement = [], [], [], None, []
    for k in counts:
        result = factorize(V, k, init=init_for(V, k), **options)
        count.ran(result.n_iter, settings.max_iter)
        member = group_components(result.W, result.H, settings.n_sources, settings.grouping, sample_rate,
                                  params.n_fft, settings.seed, channels)
        if first is None:
            first, member = result, order_by_centroid(member, result.W, result.H)
            reference = member
        else:
            overlap = _mask_overlap(V, first, reference, result, member, settings.mask_power(len(counts)))
            order, share = _match(V, overlap)
            member = [member[j] for j in order]
            agreement.append(share)
        offset = len(activations)  # components so far
        groups.append([offset + g for g in member])
        bases.append(result.W)
        activations.extend(result.H)
    H = np.stack(activations) / len(counts)
    W = np.concatenate(bases, axis=1)
    stems = order_by_centroid([np.concatenate([member[s] for member in groups]) for s in range(settings.n_sources)], W, H)
    confidence = confidence_of(float(np.mean(agreement)), settings.n_sources)
    losses = np.asarray(first.losses)
    return Fit(W, H, stems, first.n_iter, float(losses[-1]), losses, confidence, len(counts))


def _match(V: np.ndarray, overlap: np.ndarray) -> tuple[np.ndarray, float]:
    """The other stems' order that best matches one set of stems (``overlap`` from _mask_overlap),
    and the share of the input's magnitude that the matched masks give to the same stem."""
    from scipy.optimize import linear_sum_assignment

    order = linear_sum_assignment(overlap, maximize=True)[1]
    share = float(overlap[np.arange(len(order)), order].sum()) / max(float(V.sum(dtype=np.float64)), 1e-30)
    return order, share


def confidence_of(agreement: float, n: int) -> float:
    """How far the masks are trusted (see _ensemble): 0 for agreement at chance (1/n), 1 from
    CONFIDENT_AGREEMENT above chance on."""
    return float(np.clip(_above_chance(agreement, n) / CONFIDENT_AGREEMENT, 0, 1))


def _above_chance(agreement: float, n: int) -> float:
    """(a - 1/n) / (1 - 1/n): 0 for agreement by chance, 1 for the same masks."""
    return 1.0 if n == 1 else (agreement - 1.0 / n) / (1.0 - 1.0 / n)


def _one_component_per_source(V: np.ndarray, ensemble: Fit, settings: "Settings", options: dict,
                              count: "IterationCount") -> Fit | None:
    """--grouping auto: one component per source instead of the ensemble, where that models the
    input nearly as well as many components and the ensemble's grouping disagrees with it; else None.

    Steady sources with one spectrum each (synthetic tones, a hum under a whistle) are modelled by
    one component each: n components then make at least SIMPLE_SHARE of the gain that the
    ensemble's first factorization (C components) makes over one component, (D_1 - D_n) /
    (D_1 - D_C) (the demo's tones 0.89-0.93, the benchmark's tones 0.83, its real mixtures 0.20 to
    0.46). Many components cut such sources into pieces (onsets, partials) that timbre grouping
    can reassemble wrongly: the default ensemble put 3 of 8 demo mixtures below 10 dB, one
    component per source none (34-38 dB). So where the ensemble's stems and the n components'
    agree less than FULL_AGREEMENT above chance, the n components win.
    """
    n = settings.n_sources
    if n < 2 or ensemble.n_averaged < 2:
        return None
    single = factorize(V, 1, init=init_for(V, 1), **options)
    count.ran(single.n_iter, settings.max_iter)
    one = single.losses[-1]
    simple = factorize(V, n, init=init_for(V, n), **options)
    count.ran(simple.n_iter, settings.max_iter)
    if (one - simple.losses[-1]) < SIMPLE_SHARE * (one - ensemble.loss):  # loss: its first factorization
        return None
    groups = order_by_centroid([np.array([i]) for i in range(n)], simple.W, simple.H)
    model = SimpleNamespace(W=ensemble.bases, H=ensemble.activations)
    overlap = _mask_overlap(V, model, ensemble.groups, simple, groups, settings.mask_power(1))
    if _above_chance(_match(V, overlap)[1], n) >= FULL_AGREEMENT:
        return None
    losses = np.asarray(simple.losses)
    return Fit(simple.W, simple.H, groups, simple.n_iter, float(losses[-1]), losses)


def _mask_overlap(V: np.ndarray, one, one_groups: list[np.ndarray], other, other_groups: list[np.ndarray],
                  power: float, chunk: int = 1024) -> np.ndarray:
    """(n, n): sum over the input of V times stem i's mask in ``one`` times stem j's in ``other``
    (two factorizations of V with their groups), a chunk of frames at a time (no whole masks)."""
    overlap = np.zeros((len(one_groups), len(other_groups)))
    for start in range(0, V.shape[1], chunk):
        frames = slice(start, start + chunk)
        mine = masks_of(one.W, one.H[:, frames], one_groups, power) * V[:, frames]
        theirs = masks_of(other.W, other.H[:, frames], other_groups, power)
        overlap += mine.reshape(len(mine), -1) @ theirs.reshape(len(theirs), -1).T.astype(np.float64)
    return overlap
