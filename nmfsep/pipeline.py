"""The pipeline for one input: STFT -> factorize -> group -> mask -> ISTFT.

    samples (n_samples, n_channels) --STFT--> X (n_channels, n_bins, n_frames)
    V = mean over channels of |X|           (one model for the file keeps the stereo image)
    V ≈ W H                                 (nmfsep.nmf.factorize)
    M_s = soft mask of W_s H_s              (nmfsep.masks)
    stem_s = ISTFT(M_s * X)                 (the stems add back up to the input)
"""

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import masks, spectrum
from .errors import NmfsepError
from .grouping import order_by_centroid
from .nmf import factorize

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Settings:
    """Everything that decides a separation, with the CLI's defaults.

    n_sources: stems written. beta: divergence (1 = KL, the best on magnitude spectra for
    speech and music). power: mask exponent (2 = power ratio, a Wiener filter). n_fft/hop_length:
    None follows the sample rate (see nmfsep.spectrum.default_params).
    """

    n_sources: int = 2
    beta: float = 1.0
    max_iter: int = 200
    tol: float = 1e-4
    seed: int = 0
    power: float = 2.0
    n_fft: int | None = None
    hop_length: int | None = None

    def check(self) -> "Settings":
        if self.n_sources < 1:
            raise NmfsepError(f"k (number of sources) must be at least 1, got {self.n_sources}")
        if self.max_iter < 1:
            raise NmfsepError(f"iter must be at least 1, got {self.max_iter}")
        if not self.tol >= 0:
            raise NmfsepError(f"tol must be >= 0, got {self.tol}")
        if not self.power > 0:
            raise NmfsepError(f"power must be > 0, got {self.power}")
        return self


@dataclass
class Separation:
    """stems: float32 (n_sources, n_samples, n_channels) in source order; names: one per stem."""

    stems: np.ndarray
    names: list[str]
    n_iter: int
    loss: float | None
    bases: np.ndarray = field(repr=False)
    activations: np.ndarray = field(repr=False)


def split_sources(samples: np.ndarray, sample_rate: int, settings: Settings,
                  progress: Progress | None = None) -> Separation:
    """Separate float samples (n_samples, n_channels) into settings.n_sources stems."""
    settings.check()
    params = spectrum.default_params(sample_rate, settings.n_fft, settings.hop_length)
    channels_first = np.ascontiguousarray(samples.T, dtype=np.float32)
    mixture = spectrum.stft(channels_first, params)
    magnitude = np.abs(mixture).mean(axis=0)
    k = settings.n_sources

    scale = float(magnitude.mean())
    if scale == 0.0:  # digital silence: nothing to model, every stem is silent
        W = np.zeros((magnitude.shape[0], k), np.float32)
        H = np.zeros((k, magnitude.shape[1]), np.float32)
        n_iter, loss = 0, 0.0
    else:
        callback = None if progress is None else (lambda it, _loss: progress(it, settings.max_iter))
        result = factorize(
            magnitude / scale, k, beta=settings.beta, max_iter=settings.max_iter, tol=settings.tol,
            seed=settings.seed, init="nndsvda" if k <= min(magnitude.shape) else "random",
            callback=callback,
        )
        W, H, n_iter = result.W, result.H, result.n_iter
        loss = float(result.losses[-1]) if len(result.losses) else None

    groups = order_by_centroid([np.array([c]) for c in range(k)], W, H)
    models = np.stack([W[:, g] @ H[g] for g in groups])
    source_masks = masks.soft_masks(models, settings.power)
    stems = np.stack([
        spectrum.istft(mixture * mask, params, samples.shape[0]).T for mask in source_masks
    ])
    names = [f"source{i + 1}" for i in range(k)]
    return Separation(stems, names, n_iter, loss, W, H)


def separate(samples: np.ndarray, sample_rate: int, k: int = 2, *, beta: float = 1.0,
             max_iter: int = 200, tol: float = 1e-4, seed: int = 0, power: float = 2.0,
             n_fft: int | None = None, hop_length: int | None = None,
             progress: Progress | None = None) -> np.ndarray:
    """Split a recording into k stems that add back up to it.

    samples: float array (n_samples,) for mono or (n_samples, n_channels).
    Returns float32 stems (k, *samples.shape), lowest spectral centroid first.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim not in (1, 2) or samples.shape[0] == 0:
        raise NmfsepError(f"samples must be (n_samples,) or (n_samples, n_channels), got {samples.shape}")
    if not np.isfinite(samples).all():
        raise NmfsepError("samples contain NaN or infinite values")
    settings = Settings(k, beta, max_iter, tol, seed, power, n_fft, hop_length)
    two_d = samples.reshape(samples.shape[0], -1)
    stems = split_sources(two_d, sample_rate, settings, progress).stems
    return stems.reshape((k,) + samples.shape)
