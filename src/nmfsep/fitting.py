"""What a factorization of one input hands to the masks, shared by the blind and supervised paths.

``Fit``: bases, activations and the stems' groups of components (nmfsep.blind, nmfsep.supervised),
and their masks (nmfsep.masks.masks_of); ``init_for``: the factorization's start.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import discriminative
from .masks import masks_of

Progress = Callable[[int, int], None]  # progress(done, total)


@dataclass
class Fit:
    """Bases W (n_bins, C), activations H (C, n_frames) of V / scale, the component indices of
    each stem in stem order, the solver's record (iterations, final and per-iteration loss), and
    how far the blind grouping is trusted (see nmfsep.blind._ensemble; the masks move toward 1/n
    by 1 - it)."""

    bases: np.ndarray
    activations: np.ndarray
    groups: list[np.ndarray]
    n_iter: int
    loss: float | None
    losses: np.ndarray
    confidence: float = 1.0
    n_averaged: int = 1  # factorizations averaged (blind ensemble)
    trained: discriminative.Trained | None = None
    iterations_run: int = 0  # solver iterations of all its factorizations (n_iter: the first's)
    band: int | None = None  # the activations fit the first band bins only (nmfsep.supervised.fit)
    steady: tuple[int, tuple[int, ...]] | None = None  # (receiving stem, voice stems): see masks.masks_of

    def masks(self, activations: np.ndarray, power: float, magnitude: np.ndarray) -> np.ndarray:
        """The stems' soft masks for these activations of magnitude / scale (n_bins, n_frames):
        after the trained layers and from the trained mask bases where the models trained them
        (see ``nmfsep.supervised.discriminative_training``), else from the bases themselves; with
        ``steady``, the voice stems' steady floor goes to the receiving stem (nmfsep.masks.masks_of)."""
        if self.trained is None:
            return masks_of(self.bases, activations, self.groups, power, self.confidence, self.steady)
        rows = slice(None, self.band)
        activations = discriminative.unfold(activations, [W[rows] for W in self.trained.layers], magnitude[rows])
        return masks_of(self.trained.mask_bases, activations, self.groups, power, self.confidence, self.steady)


def init_for(V: np.ndarray, k: int) -> str:
    """nndsvda (deterministic, scikit-learn's default) where it applies, i.e. k <= min(V.shape);
    random for inputs too short (or too narrow) for k components."""
    return "nndsvda" if k <= min(V.shape) else "random"


def mean_loss(loss: float | None, bases: np.ndarray, activations: np.ndarray) -> float | None:
    """The --json record's "loss" and the report's final loss: the factorization's final
    objective (the beta-divergence between the magnitude spectrogram scaled to mean 1 and W H,
    plus blind separation's smoothness term) per time-frequency point of the spectrogram it
    fitted, W (n_bins, C) and H (C, n_frames): a mean, comparable across inputs of any length
    and level."""
    points = bases.shape[0] * activations.shape[1]
    return None if loss is None or points == 0 else loss / points
