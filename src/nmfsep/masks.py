"""Soft (Wiener-like) masks that share every time-frequency point between the sources.

    M_s = (W_s H_s)^p / sum_t (W_t H_t)^p

The masks sum to one at every bin, so the masked spectra add back up to the mixture. Where every
source model is zero the point is shared equally (1 / n_sources) instead of giving 0 / 0.

A steady floor (``masks_of``'s ``steady``): a voice falls silent between words, so what a voice's
bases explain in every frame, the low part of each of its activations, is steady sound that
resembles it (hum, a narrow band of noise) and goes to a noise (or music) stem instead. That is
minimum-statistics noise tracking (Martin 2001, IEEE TSAP 9(5)) applied to NMF activations.
"""

import numpy as np

# The percentile of each activation over time that counts as its steady floor (``masks_of``).
# Chosen on the corpus' validation split (SI-SDRi, dB): built-ins speech + noise (blended, the
# default) / 42 mono mixtures of validation voices and noises at 0 dB, --model speech --model
# noise --blend 0 / own voice + built-in noise: none 9.68 / 8.15 / 12.08; 30: - / 8.53 / -;
# 40: 9.86 / 8.66 / 12.32; 50: 9.64 / 8.60 / 12.23; 60: - / 8.26 / -. Three sources with the
# built-in noise: 6.39 -> 6.54 at 40, but 6.32 when music's floor moved too (held notes). A running
# percentile over 2 / 4 s windows instead of the whole input: speech + noise 9.69 / 9.78, speech +
# music (the built-in music taking the floor) 5.50 / 5.39, own voice + noise 12.05 / 12.26, against
# 9.86 / 5.28 / 12.32: no better on the whole, so the whole input's (a streamed block's) it is.
STEADY_PERCENTILE = 40.0


def soft_masks(source_models: np.ndarray, power: float = 2.0) -> np.ndarray:
    """Masks (n_sources, n_bins, n_frames) from non-negative source models of the same shape.

    Each point is divided by the largest source there before the power is taken, so the
    power can neither overflow nor underflow to an all-zero denominator.
    """
    models = np.asarray(source_models, dtype=np.float32)
    peak = models.max(axis=0)
    silent = peak <= 0
    masks = models / np.where(silent, 1.0, peak)
    if power != 1:
        np.power(masks, power, out=masks)
    total = masks.sum(axis=0)  # >= 1 wherever peak > 0: the largest source contributes 1
    total[silent] = 1.0
    masks /= total
    masks[:, silent] = 1.0 / models.shape[0]
    return masks


def masks_of(bases: np.ndarray, activations: np.ndarray, groups: list[np.ndarray], power: float,
             confidence: float = 1.0, steady: "tuple[int, tuple[int, ...]] | None" = None) -> np.ndarray:
    """Soft masks (n_stems, n_bins, n_frames) of the stems W_s H_s, one per group of components,
    moved toward 1 / n_stems by 1 - confidence (they still sum to one).

    steady: (receiver, voices), stem indices: of each voice stem's activations, the part under their
    STEADY_PERCENTILE over time (min(H, floor), per component) is modelled in the receiver's stem
    instead (see the module doc); None: no stem's floor moves."""
    receiver, voices = steady if steady is not None and activations.shape[1] else (None, ())
    stem_models, floors = [], {}
    for s, g in enumerate(groups):
        H = activations[g]
        if s in voices:
            floors[s] = np.minimum(H, np.percentile(H, STEADY_PERCENTILE, axis=1, keepdims=True))
            H = H - floors[s]
        stem_models.append(bases[:, g] @ H)
    for s, low in floors.items():
        stem_models[receiver] = stem_models[receiver] + bases[:, groups[s]] @ low
    source_masks = soft_masks(np.stack(stem_models), power)
    if confidence < 1:
        source_masks = confidence * source_masks + np.float32((1 - confidence) / len(groups))
    return source_masks
