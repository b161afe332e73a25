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
