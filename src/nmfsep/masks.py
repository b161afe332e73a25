"""Soft (Wiener-like) masks that share every time-frequency point between the sources.

    M_s = (W_s H_s)^p / sum_t (W_t H_t)^p

The masks sum to one at every bin, so the masked spectra add back up to the mixture. Where every
source model is zero the point is shared equally (1 / n_sources) instead of giving 0 / 0.
"""

import numpy as np


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
             confidence: float = 1.0) -> np.ndarray:
    """Soft masks (n_stems, n_bins, n_frames) of the stems W_s H_s, one per group of components,
    moved toward 1 / n_stems by 1 - confidence (they still sum to one)."""
    source_masks = soft_masks(np.stack([bases[:, g] @ activations[g] for g in groups]), power)
    if confidence < 1:
        source_masks = confidence * source_masks + np.float32((1 - confidence) / len(groups))
    return source_masks
