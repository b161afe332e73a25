"""The pipeline for one input: STFT -> factorize -> group -> mask -> ISTFT, and learning bases.

    samples (n_samples, n_channels) --STFT--> X (n_channels, n_bins, n_frames)
    V = mean over channels of |X|           (one model for the file keeps the stereo image)
    V ≈ W H                                 (nmfsep.nmf.factorize)
    M_s = soft mask of W_s H_s              (nmfsep.masks)
    stem_s = ISTFT(M_s * X)                 (the stems add back up to the input)

Blind: W and H are learned on the mixture (by default three times, with 16, 24 and 32
components), the components are grouped into k sources (nmfsep.grouping), ordered by spectral
centroid, and the factorizations averaged, their masks moved toward 1/k as far as they disagree.
Supervised (Smaragdis 2007): W is the concatenation of the models' learned bases, held fixed, and
only H is learned; each model's columns make one stem, named after it. With two models or more,
H of the mixture fitted with the bases themselves goes through a few trained updates and the
masks use a trained copy of the bases (deep-unfolded and discriminative NMF, see
``discriminative_training``). Semi-supervised: ``n_free`` more bases are learned on the mixture
beside the fixed ones and make a ``residual`` stem (what the models do not cover).
"""

from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np

from . import audio, cache, discriminative, masks, spectrum
from .errors import BadValueError, NmfsepError
from .grouping import METHODS, group_components, order_by_centroid
from .model import MAX_FRAMES, MAX_PITCH_SHIFTS, Model
from .nmf import factorize

Progress = Callable[[int, int], None]
RESIDUAL = "residual"
DEFAULT_COMPONENTS = 24
# Blind default: factorizations of 24, 16 and 32 components, grouped one by one and averaged (see
# _ensemble); --components C makes one factorization of C.
ENSEMBLE = (1.0, 2 / 3, 4 / 3)
FULL_AGREEMENT = 0.9  # agreement (above chance) from which the ensemble's masks keep full strength
SIMPLE_SHARE = 0.75  # --grouping auto: see _one_component_per_source
# Mask exponent of the blind ensemble: averaging three models softens the masks, a higher exponent
# sharpens them again (bench_quality --blind means, exponent 1 / 1.5 / 2 / 2.5 / 3 / 4: +5.41 / +6.20 /
# +6.44 / +6.53 / +6.54 / +6.48 dB; a single factorization does best at 2: +5.88 against +5.74 at 3).
ENSEMBLE_POWER = 3.0
WIENER_POWER = 2.0  # everywhere else: the Wiener (power-ratio) mask
BLIND_SMOOTHNESS = 0.2  # temporal continuity of blind components (bench_quality --blind: 0 -> +5.4, 0.2 -> +5.9 dB)
# Discriminative training (bench_quality --levers): synthetic mixtures of the training frames, 16
# unfolded layers, 200 Adam steps at rate 0.05, each on a random batch of frames
DISCRIMINATIVE_MIXTURES = 4
UNFOLDED_LAYERS = 16
DISCRIMINATIVE_STEPS = 200
DISCRIMINATIVE_RATE = 0.05
DISCRIMINATIVE_BATCH = 512
DISCRIMINATIVE_FRAMES = 8192  # at most, over all the synthetic mixtures (memory)
DEFAULT_PITCH_SHIFTS = 1
SEMI_SUPERVISED_WARMUP = 100  # --free: iterations of each warm-up fit (see _semi_supervised)
DEFAULT_BASES = 128
# Peak memory of a separation, in bytes per sample of the framed signal (n_frames * n_fft per
# channel), per stem. Blind separation with its three factorizations (ENSEMBLE): 3 minutes of
# 16 kHz mono, 2 stems, peak RSS 575 MB = ~114 MB interpreter + ~42 bytes per framed sample
# (hop n_fft/4); 40 + 2 per stem covers it.
BYTES_PER_FRAMED_SAMPLE = 40
BYTES_PER_FRAMED_SAMPLE_PER_STEM = 2


@dataclass(frozen=True)
class Settings:
    """Everything that decides a separation, with the CLI's defaults.

    n_sources: stems written in blind separation. beta: divergence (1 = KL, the best on magnitude
    spectra for speech and music). power: mask exponent (2 = power ratio, a Wiener filter; None:
    see ``mask_power``).
    n_fft/hop_length: None follows the sample rate (see nmfsep.spectrum.default_params) or the
    models. models: learned bases, one stem each (supervised); n_free: extra bases learned on the
    mixture, written as the 'residual' stem. sparsity, smoothness: L1 weight on the activations
    and Virtanen's temporal-continuity weight on them (relative to the normalised spectrogram);
    smoothness None is BLIND_SMOOTHNESS in blind separation and 0 with models.
    discriminative: with two models or more that keep training frames, refine the activations
    and make the masks with layers and bases trained to separate those models' synthetic
    mixtures (see ``discriminative_training``); unfolded_layers: how many refining updates;
    trained: that training, made beforehand (see ``train_models``).
    """

    n_sources: int = 2
    beta: float = 1.0
    max_iter: int = 200
    tol: float = 1e-4
    seed: int = 0
    power: float | None = None
    n_fft: int | None = None
    hop_length: int | None = None
    models: tuple[Model, ...] = ()
    n_free: int = 0
    sparsity: float = 0.0
    smoothness: float | None = None
    n_components: int | None = None
    grouping: str = "auto"
    discriminative: bool = True
    unfolded_layers: int = UNFOLDED_LAYERS
    # The model set's discriminative training, made beforehand by ``train_models`` (a batch makes
    # it once, before its inputs and workers); None: made, or loaded from the cache, when needed.
    trained: "discriminative.Trained | None" = field(default=None, compare=False, repr=False)

    def check(self) -> "Settings":
        if self.n_sources < 1:
            raise BadValueError(f"k (number of sources) must be at least 1, got {self.n_sources}")
        if self.max_iter < 1:
            raise BadValueError(f"iter must be at least 1, got {self.max_iter}")
        if not self.tol >= 0:
            raise BadValueError(f"tol must be >= 0, got {self.tol}")
        if not np.isfinite(self.beta):
            raise BadValueError(f"beta must be a finite number, got {self.beta}")
        if self.power is not None and not self.power > 0:
            raise BadValueError(f"power must be > 0, got {self.power}")
        if not (self.sparsity >= 0 and self.temporal_smoothness >= 0):
            raise BadValueError("sparsity and smoothness must be >= 0")
        if self.grouping not in METHODS:
            raise BadValueError(f"unknown grouping {self.grouping!r} (choose from {', '.join(METHODS)})")
        if self.n_components is not None and self.n_components < self.n_sources and not self.models:
            raise BadValueError(f"--components {self.n_components} is fewer than the {self.n_sources} sources asked")
        if self.unfolded_layers < 0:
            raise BadValueError(f"unfolded layers must be >= 0, got {self.unfolded_layers}")
        if self.n_free < 0:
            raise BadValueError(f"free must be >= 0, got {self.n_free}")
        if self.n_free and not self.models:
            raise BadValueError("--free adds bases beside learned models: give at least one --model")
        names = [m.name for m in self.models]
        duplicate = next((n for n in names if names.count(n) > 1 or n == RESIDUAL and self.n_free), None)
        if duplicate is not None:
            raise BadValueError(f"two stems would be named {duplicate!r}: learn the models with distinct --name")
        return self

    def component_counts(self, n_frames: int) -> list[int]:
        """Components of each blind factorization: --components (one factorization), else
        DEFAULT_COMPONENTS times each of ENSEMBLE (at least one per source, at most n_frames // 4
        for short inputs; repeats dropped)."""
        if self.grouping == "none":
            return [self.n_sources]
        if self.n_components is not None:
            return [self.n_components]
        counts = [max(self.n_sources, min(round(DEFAULT_COMPONENTS * f), n_frames // 4)) for f in ENSEMBLE]
        return list(dict.fromkeys(counts))

    def mask_power(self, n_averaged: int = 1) -> float:
        """The mask exponent used: --power, else ENSEMBLE_POWER for an average of several blind
        factorizations and WIENER_POWER otherwise."""
        if self.power is not None:
            return self.power
        return ENSEMBLE_POWER if n_averaged > 1 else WIENER_POWER

    @property
    def temporal_smoothness(self) -> float:
        """The smoothness weight used: as given, else BLIND_SMOOTHNESS blind and 0 with models."""
        if self.smoothness is not None:
            return self.smoothness
        return 0.0 if self.models else BLIND_SMOOTHNESS

    @property
    def stem_names(self) -> list[str]:
        if not self.models:
            return [f"source{i + 1}" for i in range(self.n_sources)]
        return [m.name for m in self.models] + ([RESIDUAL] if self.n_free else [])

    def stft_params(self, sample_rate: int, name: str = "input") -> spectrum.StftParams:
        """The STFT of the models where there are models (they must agree), else the default at
        sample_rate (see ``separation_rate``: with models, the separation runs at theirs)."""
        if not self.models:
            return spectrum.default_params(sample_rate, self.n_fft, self.hop_length)
        first = self.models[0]
        for m in self.models:
            if m.sample_rate != first.sample_rate:
                raise NmfsepError(f"models {first.name!r} and {m.name!r} were learned at different sample rates "
                                  f"({first.sample_rate} and {m.sample_rate} Hz): learn them at one rate")
            if (m.n_fft, m.hop_length) != (first.n_fft, first.hop_length):
                raise NmfsepError(f"models {first.name!r} and {m.name!r} use different STFT sizes "
                                  f"({first.n_fft}/{first.hop_length} and {m.n_fft}/{m.hop_length})")
        if self.n_fft not in (None, first.n_fft) or self.hop_length not in (None, first.hop_length):
            raise NmfsepError(f"the models were learned with n_fft {first.n_fft} and hop {first.hop_length}: "
                              "leave --n-fft/--hop out or match them")
        return spectrum.StftParams(first.n_fft, first.hop_length).check()

    def separation_rate(self, sample_rate: int) -> int:
        """The rate an input at sample_rate is separated at: the models' (an input at another
        rate is resampled to it, and its stems back), else its own."""
        return self.models[0].sample_rate if self.models else sample_rate


@dataclass
class Separation:
    """stems: float32 (n_stems, n_samples, n_channels) in stem order; names: one per stem.

    For figures and reports: bases W (n_bins, C), activations H (C, n_frames), groups (the
    component indices of each stem, in stem order), masks (n_stems, n_bins, n_frames), losses
    (the objective per iteration) and the STFT params used.
    """

    stems: np.ndarray
    names: list[str]
    n_iter: int
    loss: float | None
    bases: np.ndarray = field(repr=False)
    activations: np.ndarray = field(repr=False)
    groups: list[np.ndarray] = field(repr=False, default_factory=list)
    masks: np.ndarray | None = field(repr=False, default=None)
    losses: np.ndarray | None = field(repr=False, default=None)
    params: spectrum.StftParams | None = None
    confidence: float = 1.0
    power: float = WIENER_POWER  # the mask exponent used
    iterations_run: int = 0  # solver iterations of all its factorizations (n_iter: the first's)
    # The models' rate where the input was resampled to it (see ``split_sources``): the bases,
    # activations, masks and params are at this rate, the stems at the input's. None: the input's.
    resampled_to: int | None = None

    def spectrogram(self, samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
        """(V (n_bins, n_frames), its rate): the magnitude of samples (n_samples, n_channels) at
        sample_rate as this separation saw them (resampled to its rate where it resampled), the
        frames of its masks and activations."""
        rate = self.resampled_to or sample_rate
        if rate != sample_rate:
            samples = audio.resample(samples, sample_rate, rate)
        return analyse(samples, self.params)[1], rate


class IterationCount:
    """The solver iterations of one separation over all its runs (factorizations; a streamed
    input's blocks), reported to ``progress`` as (done, total), starting with (0, planned).

    ``total`` starts as the most the planned runs may take; a run that stops early (its tolerance
    met) gives back what it did not use, so at the end total == done, the iterations run: a bar
    starts from a known total and ends on the count the record gives.
    """

    def __init__(self, progress: Progress | None, planned: int):
        self.progress, self.done, self.total = progress, 0, planned
        self._report(0)

    def callback(self) -> Callable[[int, float], None] | None:
        """For factorize: callback(it, loss), ``it`` counted from the start of the current run."""
        return None if self.progress is None else (lambda it, _loss: self._report(it))

    def ran(self, n_iter: int, budget: int) -> None:
        """A run of at most ``budget`` iterations (as planned) ended after ``n_iter``."""
        self.done += n_iter
        self.total += n_iter - budget
        self._report(0)

    def _report(self, current: int) -> None:
        if self.progress is not None:
            self.progress(self.done + current, max(self.total, self.done + current))


def planned_iterations(settings: "Settings", n_frames: int) -> int:
    """The most solver iterations ``fit_bases`` may run on n_frames frames (see IterationCount)."""
    if settings.models:
        return settings.max_iter + (2 * min(settings.max_iter, SEMI_SUPERVISED_WARMUP) if settings.n_free else 0)
    counts = settings.component_counts(n_frames)
    auto = 2 if len(counts) > 1 and settings.grouping == "auto" and settings.n_sources >= 2 else 0
    return settings.max_iter * (len(counts) + auto)


def analyse(samples: np.ndarray, params: spectrum.StftParams) -> tuple[np.ndarray, np.ndarray]:
    """(X (n_channels, n_bins, n_frames), V (n_bins, n_frames)) of samples (n_samples, n_channels)."""
    mixture = spectrum.stft(np.ascontiguousarray(samples.T, dtype=np.float32), params)
    return mixture, np.abs(mixture).mean(axis=0)


def split_sources(samples: np.ndarray, sample_rate: int, settings: Settings,
                  progress: Progress | None = None, name: str = "input") -> Separation:
    """Separate float samples (n_samples, n_channels) into the stems settings.stem_names.

    Models learned at another rate: the input is resampled to theirs (nmfsep.audio.resample),
    separated there, and the stems brought back to sample_rate and the input's length so that
    they still add up to it (``back_to_rate``); the Separation's ``resampled_to`` says so.
    """
    settings.check()
    rate = settings.separation_rate(sample_rate)
    if rate == sample_rate:
        return _split_at_rate(samples, sample_rate, settings, progress, name)
    result = _split_at_rate(audio.resample(samples, sample_rate, rate), rate, settings, progress, name)
    result.stems = back_to_rate(result.stems, samples, rate, sample_rate)
    result.resampled_to = rate
    return result


def _split_at_rate(samples: np.ndarray, sample_rate: int, settings: Settings, progress: Progress | None,
                   name: str) -> Separation:
    params = settings.stft_params(sample_rate, name)
    mixture, magnitude = analyse(samples, params)
    scale = float(magnitude.mean())
    fit = fit_bases(magnitude, scale, settings, sample_rate, params, progress)
    power = settings.mask_power(fit.n_averaged)
    source_masks = fit.masks(fit.activations, power, magnitude / np.float32(scale or 1.0))
    stems = np.stack([
        spectrum.istft(mixture * mask, params, samples.shape[0]).T for mask in source_masks
    ])
    return Separation(stems, settings.stem_names, fit.n_iter, fit.loss, fit.bases, fit.activations,
                      fit.groups, source_masks, fit.losses, params, fit.confidence, power,
                      fit.iterations_run)


def back_to_rate(stems: np.ndarray, samples: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """Stems (n_stems, m, n_channels) separated at ``rate`` from samples (n_samples, n_channels)
    resampled to it, brought back to sample_rate: float32 (n_stems, n_samples, n_channels) that
    add up to samples (to float32 rounding: the last stem is the input less the others).

    Resampled back, the stems miss the input by what the round trip loses: everything above the
    lower of the two Nyquist frequencies, and a little ringing at the edges. That residual r is
    shared out in the STFT (at sample_rate's default size) by masks that sum to one: below the
    lower Nyquist frequency each stem's share of the stems' power (a Wiener mask, as the
    separation itself); above it, where the stems hold nothing, each stem's share of the
    stems' power in the top octave below it, frame by frame. Spectra fall off smoothly, so
    what lies above the models' band most likely belongs with whatever is brightest just below
    it at that moment; splitting it evenly would put every source's highs in every stem.
    """
    if len(stems) == 1:
        return samples.astype(np.float32)[None]
    back = np.stack([audio.resample(stem, rate, sample_rate, samples.shape[0]) for stem in stems])
    residual = samples - back.sum(axis=0)
    params = spectrum.default_params(sample_rate)
    power = np.stack([(np.abs(spectrum.stft(np.ascontiguousarray(s.T), params)) ** 2).sum(axis=0) for s in back])
    top = min(params.n_bins, int(np.ceil(min(rate, sample_rate) / 2 / sample_rate * params.n_fft)))
    octave = slice(top // 2, top)
    shares = power[:, octave].sum(axis=1, keepdims=True)    # (n_stems, 1, n_frames)
    power[:, top:] = shares
    total = power.sum(axis=0)
    weights = np.where(total > 0, power / np.where(total > 0, total, 1), np.float32(1 / len(back)))
    spread = spectrum.stft(np.ascontiguousarray(residual.T, dtype=np.float32), params)
    stems = [b + spectrum.istft(spread * m, params, samples.shape[0]).T for b, m in zip(back[:-1], weights[:-1])]
    stems.append(samples - np.sum(stems, axis=0))
    return np.stack(stems).astype(np.float32)


@dataclass
class Fit:
    """Bases W (n_bins, C), activations H (C, n_frames) of V / scale, the component indices of
    each stem in stem order, the solver's record (iterations, final and per-iteration loss), and
    how far the blind grouping is trusted (see _ensemble; the masks move toward 1/n by 1 - it)."""

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

    def masks(self, activations: np.ndarray, power: float, magnitude: np.ndarray) -> np.ndarray:
        """The stems' soft masks for these activations of magnitude / scale (n_bins, n_frames):
        after the trained layers and from the trained mask bases where the models trained them
        (see ``discriminative_training``), else from the bases themselves."""
        if self.trained is None:
            return masks_of(self.bases, activations, self.groups, power, self.confidence)
        activations = discriminative.unfold(activations, self.trained.layers, magnitude)
        return masks_of(self.trained.mask_bases, activations, self.groups, power, self.confidence)


def fit_bases(magnitude: np.ndarray, scale: float, settings: Settings, sample_rate: int,
              params: spectrum.StftParams, progress: Progress | None = None,
              count: IterationCount | None = None) -> Fit:
    """Factorize magnitude / scale (n_bins, n_frames) as the settings ask and group the components
    into stems: blind (learn W and H, group, order by centroid), supervised (the models' W fixed)
    or semi-supervised (--free). ``scale`` is the mean magnitude of the whole input (the
    streaming path fits a subsample of it); 0 means digital silence (every stem silent).
    Progress goes to ``count`` where given (its plan includes planned_iterations), else to
    ``progress``, in solver iterations."""
    if count is None:
        count = IterationCount(progress, planned_iterations(settings, magnitude.shape[1]))
    start = count.done
    fit = _fit_bases(magnitude, scale, settings, sample_rate, params, count)
    fit.iterations_run = count.done - start
    return fit


def _fit_bases(magnitude, scale, settings, sample_rate, params, count: IterationCount) -> Fit:
    known = np.concatenate([m.bases for m in settings.models], axis=1) if settings.models else None
    n_known = 0 if known is None else known.shape[1]
    counts = [n_known + settings.n_free] if settings.models else settings.component_counts(magnitude.shape[1])
    k = counts[0]

    if scale == 0.0:  # digital silence: nothing to model, every stem is silent
        W = np.zeros((magnitude.shape[0], k), np.float32) if known is None else known
        H = np.zeros((k, magnitude.shape[1]), np.float32)
        n_iter, loss, losses = 0, 0.0, np.zeros(0)
        count.ran(0, planned_iterations(settings, magnitude.shape[1]))
    else:
        options = dict(beta=settings.beta, max_iter=settings.max_iter, tol=settings.tol,
                       seed=settings.seed, callback=count.callback(), l1_H=settings.sparsity,
                       smooth_H=settings.temporal_smoothness)
        if known is None and len(counts) > 1:
            fit = _ensemble(magnitude / scale, counts, settings, sample_rate, params, options, count)
            if settings.grouping == "auto":
                fit = _one_component_per_source(magnitude / scale, fit, settings, options, count) or fit
            return fit
        if known is None:
            result = factorize(magnitude / scale, k, init=_init_for(magnitude, k), **options)
        elif settings.n_free:
            result = _semi_supervised(magnitude / scale, known, settings.n_free, options, count)
        else:
            result = factorize(magnitude / scale, k, W=known, update_W=False, **options)
        count.ran(result.n_iter, settings.max_iter)
        W, H, n_iter, losses = result.W, result.H, result.n_iter, np.asarray(result.losses)
        loss = float(losses[-1]) if len(losses) else None

    if settings.models:
        groups = model_groups(settings.models, settings.n_free)
    else:
        groups = group_components(W, H, settings.n_sources, settings.grouping, sample_rate,
                                  params.n_fft, settings.seed)
        groups = order_by_centroid(groups, W, H)
    trained = None
    if settings.discriminative and scale != 0.0 and discriminative_applies(settings.models):
        trained = (settings.trained or discriminative_training(settings.models, settings)).with_free(W[:, n_known:])
    return Fit(W, H, groups, n_iter, loss, losses, trained=trained)


def model_groups(models: tuple[Model, ...], n_free: int = 0) -> list[np.ndarray]:
    """The component indices of each model's stem (then the residual's, n_free) in W = [W_1 .. W_m, free]."""
    edges = np.cumsum([0] + [m.n_bases for m in models] + ([n_free] if n_free else []))
    return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:])]


def discriminative_applies(models: tuple[Model, ...]) -> bool:
    """Two models or more, all with training frames (format 2): see ``discriminative_training``."""
    return len(models) >= 2 and all(m.frames is not None for m in models)


def synthetic_sources(models: tuple[Model, ...], seed: int) -> np.ndarray:
    """(n_models, n_bins, n_frames): each model's training frames, pitch-shifted as its bases
    were, in a random order (the shorter ones repeated), scaled so that their sum has mean 1."""
    rng = np.random.default_rng(seed)
    spectra = [augmented(m.frames.astype(np.float32), m.pitch_shifts) for m in models]
    n = max(x.shape[1] for x in spectra)
    S = np.stack([x[:, rng.permutation(np.arange(n) % x.shape[1])] for x in spectra])
    return S / S.sum(axis=0).mean()


def training_needed(settings: Settings) -> bool:
    """Whether splits with these settings need a discriminative training not yet made."""
    return settings.trained is None and settings.discriminative and discriminative_applies(settings.models)


def train_models(settings: Settings, progress: Progress | None = None,
                 started: Callable[[Path | None], None] | None = None) -> Settings:
    """The settings with their model set's discriminative training in ``trained`` (the same
    settings where there is none to make): loaded from the on-disk cache, else trained, with
    started(folder) called first (folder: where the training will be kept, None where it cannot
    be: the cache is off or not writable) and progress(step, total) as it goes. Splits with the
    returned settings, in this process or another (they pickle), do not train again.
    """
    if not training_needed(settings):
        return settings
    return replace(settings, trained=discriminative_training(settings.models, settings, progress, started))


def discriminative_training(models: tuple[Model, ...], settings: "Settings", progress: Progress | None = None,
                            started: Callable[[Path | None], None] | None = None) -> discriminative.Trained:
    """Unfolded layers and mask bases trained to separate the models' synthetic mixtures.

    DISCRIMINATIVE_MIXTURES synthetic mixtures of the models' stored training frames (see
    ``synthetic_sources``; pitch-shifted as their bases were; DISCRIMINATIVE_FRAMES in all at
    most) are fitted with the fixed bases as a split fits its input; then UNFOLDED_LAYERS more
    updates of the activations, each with its own copy of the bases, and a copy of the bases for
    the masks are trained so that the masked mixtures match the true sources
    (``nmfsep.discriminative``; where that does no better than the models' own bases, or does not
    stay finite, there are no layers and the masks use the bases themselves, as without it).
    They depend only on the models and the settings, so they are
    made once per model set (a batch makes them before its inputs: see ``train_models``) and
    kept on disk for later runs (``nmfsep.cache``). Made here (not loaded): started(folder)
    is called first, and progress(step, settings.max_iter + DISCRIMINATIVE_STEPS) as it goes
    (the fit of the activations, then the training's steps).
    """
    key = (settings.seed, settings.beta, settings.max_iter, settings.tol, settings.sparsity, settings.unfolded_layers)
    name = _training_name(models, key)
    trained = _cached_training(models, name, settings.unfolded_layers)
    if trained is None:
        if started is not None:
            started(cache.writable_folder())
        trained = _train(models, settings, progress)
        if all(np.all(np.isfinite(b)) for b in (*trained.layers, trained.mask_bases)):  # (train sees to it)
            cache.save("discriminative", name, {"layers": np.array(trained.layers, np.float32).reshape(
                (len(trained.layers),) + trained.mask_bases.shape), "mask_bases": trained.mask_bases.astype(np.float32)})
    for bases in (*trained.layers, trained.mask_bases):
        bases.flags.writeable = False
    return trained


def _training_name(models: tuple[Model, ...], key: tuple) -> str:
    """The on-disk cache's name for a training: the models' contents, the settings, the recipe."""
    recipe = (DISCRIMINATIVE_MIXTURES, DISCRIMINATIVE_STEPS, DISCRIMINATIVE_RATE, DISCRIMINATIVE_BATCH,
              DISCRIMINATIVE_FRAMES, discriminative.AVERAGE_FROM, discriminative.VERSION)
    return cache.digest(key, recipe, *[part for m in models for part in (m.bases, m.frames, m.pitch_shifts)])


def _cached_training(models: tuple[Model, ...], name: str, n_layers: int) -> discriminative.Trained | None:
    """The training an earlier run saved under this name, if it is whole, finite and fits the
    models (n_layers layers, or none: the training gave the plain bases back)."""
    saved = cache.load("discriminative", name)
    if saved is None or set(saved) != {"layers", "mask_bases"}:
        return None
    layers, mask_bases = saved["layers"], saved["mask_bases"]
    shape = (models[0].bases.shape[0], sum(m.n_bases for m in models))
    for bases in (layers, mask_bases):
        if bases.dtype != np.float32 or bases.shape[-2:] != shape or not np.all(np.isfinite(bases) & (bases >= 0)):
            return None
    if layers.shape not in {(n_layers,) + shape, (0,) + shape}:
        return None
    return discriminative.Trained(list(layers), mask_bases)


def _train(models: tuple[Model, ...], settings: "Settings", progress: Progress | None = None) -> discriminative.Trained:
    """Make the training (see ``discriminative_training``)."""
    S = np.concatenate([synthetic_sources(models, settings.seed + i) for i in range(DISCRIMINATIVE_MIXTURES)],
                       axis=2)[:, :, :DISCRIMINATIVE_FRAMES]  # in random order: a random subset
    W = np.concatenate([m.bases for m in models], axis=1)
    fitted, total = settings.max_iter, settings.max_iter + DISCRIMINATIVE_STEPS
    report = (lambda done: None) if progress is None else (lambda done: progress(done, total))
    H = factorize(S.sum(axis=0), W.shape[1], W=W, update_W=False, beta=settings.beta, max_iter=settings.max_iter,
                  tol=settings.tol, l1_H=settings.sparsity, callback=lambda it, _loss: report(it)).H
    report(fitted)  # the fit may stop early (tol)
    return discriminative.train(S, W, H, model_groups(models), settings.unfolded_layers, DISCRIMINATIVE_STEPS,
                                DISCRIMINATIVE_RATE, DISCRIMINATIVE_BATCH, settings.seed,
                                callback=lambda step: report(fitted + step))


def _ensemble(V: np.ndarray, counts: list[int], settings: Settings, sample_rate: int,
              params: spectrum.StftParams, options: dict, count: IterationCount) -> Fit:
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
    g = (a - 1/n) / (1 - 1/n), is at most FULL_AGREEMENT even for a clean separation (soft masks of
    different factorizations differ in detail: 0.95 on the benchmark's tones). The confidence
    c = min(1, g / FULL_AGREEMENT), and the masks become c M + (1 - c) / n (masks_of): an unsure
    separation is pulled toward the input split evenly (bench_quality --blind: two voices -0.3 ->
    +0.7 dB, piano_bass_clarinet -0.9 -> +0.8 dB; drums_guitar 11.0 -> 10.9 dB; FULL_AGREEMENT
    0.7, 0.8, 0.9, 1.0 gave means of +6.34, +6.41, +6.44, +6.29 dB).
    """
    bases, activations, groups, first, agreement = [], [], [], None, []
    for k in counts:
        result = factorize(V, k, init=_init_for(V, k), **options)
        count.ran(result.n_iter, settings.max_iter)
        member = group_components(result.W, result.H, settings.n_sources, settings.grouping, sample_rate,
                                  params.n_fft, settings.seed)
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
    confidence = float(np.clip(_above_chance(np.mean(agreement), settings.n_sources) / FULL_AGREEMENT, 0, 1))
    losses = np.asarray(first.losses)
    return Fit(W, H, stems, first.n_iter, float(losses[-1]), losses, confidence, len(counts))


def _match(V: np.ndarray, overlap: np.ndarray) -> tuple[np.ndarray, float]:
    """The other stems' order that best matches one set of stems (``overlap`` from _mask_overlap),
    and the share of the input's magnitude that the matched masks give to the same stem."""
    from scipy.optimize import linear_sum_assignment

    order = linear_sum_assignment(overlap, maximize=True)[1]
    share = float(overlap[np.arange(len(order)), order].sum()) / max(float(V.sum(dtype=np.float64)), 1e-30)
    return order, share


def _above_chance(agreement: float, n: int) -> float:
    """(a - 1/n) / (1 - 1/n): 0 for agreement by chance, 1 for the same masks."""
    return 1.0 if n == 1 else (agreement - 1.0 / n) / (1.0 - 1.0 / n)


def _one_component_per_source(V: np.ndarray, ensemble: Fit, settings: Settings, options: dict,
                              count: IterationCount) -> Fit | None:
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
    single = factorize(V, 1, init=_init_for(V, 1), **options)
    count.ran(single.n_iter, settings.max_iter)
    one = single.losses[-1]
    simple = factorize(V, n, init=_init_for(V, n), **options)
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


def masks_of(bases: np.ndarray, activations: np.ndarray, groups: list[np.ndarray], power: float,
             confidence: float = 1.0) -> np.ndarray:
    """Soft masks (n_stems, n_bins, n_frames) of the stems W_s H_s, one per group of components,
    moved toward 1 / n_stems by 1 - confidence (they still sum to one)."""
    source_masks = masks.soft_masks(np.stack([bases[:, g] @ activations[g] for g in groups]), power)
    if confidence < 1:
        source_masks = confidence * source_masks + np.float32((1 - confidence) / len(groups))
    return source_masks


def _init_for(V: np.ndarray, k: int) -> str:
    """nndsvda (deterministic, scikit-learn's default) where it applies, i.e. k <= min(V.shape);
    random for inputs too short (or too narrow) for k components."""
    return "nndsvda" if k <= min(V.shape) else "random"


def _semi_supervised(V: np.ndarray, known: np.ndarray, n_free: int, options: dict, count: IterationCount):
    """Fixed known bases plus n_free learned ones, warm-started so the free bases do not take over.

    Started from a generic init, free bases soon model the known source too (measured on the demo
    tones: 3-13 dB instead of 25-38 dB). So: fit the known bases alone, start the free bases from
    what they leave unexplained, max(V - W_known H_known, 0), then learn all activations and the
    free bases together, the known bases fixed.
    """
    r = known.shape[1]
    quick = dict(options, max_iter=min(options["max_iter"], SEMI_SUPERVISED_WARMUP))
    alone = factorize(V, r, W=known, update_W=False, **quick)
    count.ran(alone.n_iter, quick["max_iter"])
    unexplained = np.maximum(V - alone.W @ alone.H, 0) + 1e-3 * float(V.mean())
    free = factorize(unexplained, n_free, init=_init_for(V, n_free), **quick)
    count.ran(free.n_iter, quick["max_iter"])
    return factorize(V, r + n_free, W=np.concatenate([known, free.W], axis=1),
                     H=np.concatenate([alone.H, free.H]), init="custom", fixed_W_columns=range(r), **options)


def memory_needed(n_frames: int, n_channels: int, params: spectrum.StftParams, n_stems: int) -> int:
    """Bytes a separation of n_frames x n_channels needs at its peak (a measured upper bound)."""
    framed = spectrum.n_frames(n_frames, params) * params.n_fft * n_channels
    return framed * (BYTES_PER_FRAMED_SAMPLE + BYTES_PER_FRAMED_SAMPLE_PER_STEM * n_stems)


def separation_memory(settings: Settings, n_frames: int, n_channels: int, sample_rate: int,
                      name: str = "input") -> int:
    """Bytes ``split_sources`` needs at its peak for n_frames x n_channels at sample_rate: the
    separation at ``settings.separation_rate``, and where the input is resampled to it, the
    sharing-out of its stems at its own rate (``back_to_rate``: an STFT, no factorization;
    counted as one more separation, an upper bound)."""
    rate = settings.separation_rate(sample_rate)
    n_stems = len(settings.stem_names)
    need = memory_needed(round(n_frames * rate / sample_rate), n_channels, settings.stft_params(rate, name), n_stems)
    if rate != sample_rate:
        need += memory_needed(n_frames, n_channels, spectrum.default_params(sample_rate), n_stems)
    return need


def _as_2d(samples, channels_first: bool = False, name: str = "samples", fix: str = " or channels_first=True") -> np.ndarray:
    """samples as (n_samples, n_channels), a view where it can be (never written to).

    Accepts (n_samples,) mono, (n_samples, n_channels), or (n_channels, n_samples) with
    channels_first=True (librosa's layout). Checks, before anything is allocated from them, the
    dtype (real numbers), the shape (1-D or 2-D, not empty, at most audio.MAX_CHANNELS channels,
    and a layout that does not look transposed) and finiteness; BadValueError names the problem
    and the fix (``fix``: how the caller's function takes channels-first arrays, if it does).
    """
    array = _as_array(samples, name)
    shape = array.shape
    if array.dtype.kind not in "fiu":
        raise BadValueError(f"{name} must hold real numbers (float or integer), got dtype {array.dtype}")
    if array.ndim not in (1, 2):
        layout = "(n_channels, n_samples)" if channels_first else "(n_samples, n_channels)"
        raise BadValueError(f"{name} must be (n_samples,) or {layout}, got shape {shape}")
    if array.size == 0:
        raise BadValueError(f"{name} is empty (shape {shape})")
    if channels_first and array.ndim == 2:
        array = array.T
    n_samples = array.shape[0]
    n_channels = array.shape[1] if array.ndim == 2 else 1
    if n_channels > audio.MAX_CHANNELS:
        if n_channels > n_samples and channels_first:
            raise BadValueError(f"got shape {shape} with channels_first=True: that looks like (n_samples, "
                                "n_channels); leave channels_first out")
        if n_channels > n_samples:
            raise BadValueError(f"got shape {shape}: that looks like channels-first (librosa's layout); "
                                f"pass {name}.T{fix}")
        raise BadValueError(f"{name} has {n_channels} channels (shape {shape}); at most {audio.MAX_CHANNELS} "
                            "are supported")
    if not (np.isfinite(array.min()) and np.isfinite(array.max())):  # NaN and Inf propagate: no mask
        raise BadValueError(f"NaN or infinite values in {name}; clean them first (e.g. np.nan_to_num)")
    return array.reshape(n_samples, n_channels)


def _as_array(samples, name: str = "samples") -> np.ndarray:
    try:
        return np.asarray(samples)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise BadValueError(f"{name} must be an array of numbers: {exc}") from None


def _check_sample_rate(sample_rate) -> int:
    """sample_rate as an int, or BadValueError unless it is a whole number of Hz in range."""
    try:
        whole = not isinstance(sample_rate, (bool, np.bool_, str)) and int(sample_rate) == sample_rate
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or not 1 <= int(sample_rate) <= audio.MAX_SAMPLE_RATE:
        raise BadValueError(f"sample_rate must be a whole number of Hz in 1..{audio.MAX_SAMPLE_RATE}, "
                            f"got {sample_rate!r}")
    return int(sample_rate)


def separate(samples: np.ndarray, sample_rate: int, k: int = 2, *, models: list[Model] = (),
             n_free: int = 0, n_components: int | None = None, grouping: str = "auto",
             beta: float = 1.0, max_iter: int = 200, tol: float = 1e-4,
             seed: int = 0, power: float | None = None, n_fft: int | None = None,
             hop_length: int | None = None, channels_first: bool = False,
             progress: Progress | None = None) -> np.ndarray:
    """Split a recording into stems that add back up to it.

    samples: real numbers (n_samples,) for mono or (n_samples, n_channels); with
    channels_first=True, (n_channels, n_samples) as librosa gives them. Never modified.
    sample_rate: in Hz, a whole number up to audio.MAX_SAMPLE_RATE.
    Blind (no models): k stems, lowest spectral centroid first, from n_components NMF components
    grouped by ``grouping`` (see nmfsep.grouping). With models (see ``learn``): one
    stem per model in the given order, plus a residual stem when n_free > 0 (k is ignored).
    Returns float32 stems (n_stems, *samples.shape), in the layout given.

    Raises BadValueError (an NmfsepError and a ValueError) before anything is allocated from
    the samples when their dtype, shape or layout is wrong (a 2-D array with more channels than
    samples and over audio.MAX_CHANNELS of them is taken for channels-first and refused with the
    fix), when they hold NaN or Inf, for a bad sample_rate or setting, or when the separation
    would need more memory than the machine has (the CLI streams such inputs: ``nmfsep split``).
    """
    samples = _as_array(samples)
    frames = _as_2d(samples, channels_first)
    sample_rate = _check_sample_rate(sample_rate)
    settings = Settings(k, beta, max_iter, tol, seed, power, n_fft, hop_length, tuple(models), n_free,
                        n_components=n_components, grouping=grouping).check()
    need = separation_memory(settings, *frames.shape, sample_rate)
    limit = audio.memory_limit()
    if limit is not None and need > limit:
        raise BadValueError(f"samples {frames.shape} at {sample_rate} Hz: separating it in memory needs about "
                            f"{_mib(need)}, this machine has {_mib(limit)}; separate shorter excerpts, or "
                            "write it to a file for `nmfsep split`, which streams long inputs")
    stems = split_sources(frames.astype(np.float32, copy=False), sample_rate, settings, progress).stems
    if samples.ndim == 1:
        return stems[:, :, 0]
    return stems.transpose(0, 2, 1) if channels_first else stems


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.0f} MiB"


def pitch_shift(V: np.ndarray, semitones: float) -> np.ndarray:
    """V (n_bins, n_frames) with every frequency scaled by 2 ** (semitones / 12): bin f takes the
    value of V at f / 2 ** (semitones / 12), linearly interpolated (0 above the top bin)."""
    n_bins = V.shape[0]
    source = np.arange(n_bins) / 2 ** (semitones / 12)
    low = np.floor(source).astype(np.intp)
    inside = np.flatnonzero(low < n_bins - 1)
    frac = (source[inside] - low[inside])[:, None].astype(V.dtype)
    shifted = np.zeros_like(V)
    shifted[inside] = (1 - frac) * V[low[inside]] + frac * V[low[inside] + 1]
    return shifted


def augmented(V: np.ndarray, pitch_shifts: int) -> np.ndarray:
    """V followed by its copies shifted by -pitch_shifts ... +pitch_shifts semitones (0 left out)."""
    shifts = [s for s in range(-pitch_shifts, pitch_shifts + 1) if s]
    return np.concatenate([V] + [pitch_shift(V, s) for s in shifts], axis=1)


def learn(recordings: list[np.ndarray] | np.ndarray, sample_rate: int, n_bases: int = DEFAULT_BASES, *,
          name: str = "source", beta: float = 1.0, max_iter: int = 200, tol: float = 1e-4,
          seed: int = 0, n_fft: int | None = None, hop_length: int | None = None,
          pitch_shifts: int = DEFAULT_PITCH_SHIFTS, progress: Progress | None = None) -> Model:
    """Learn n_bases spectral templates of one source from clean recordings of it.

    recordings: one array or a list of arrays (n_samples,) or (n_samples, n_channels), all at
    sample_rate; their spectrograms are laid end to end (no seam is made in the audio).
    pitch_shifts: also learn from copies of the spectrogram shifted by +-1 ... +-pitch_shifts
    semitones, so that an instrument's bases cover notes missing from the training material. It
    makes speech and drum bases less specific, which the discriminative training of a split
    with several models make up for (see ``discriminative_training``); 0 suits one model alone.
    The model keeps up to MAX_FRAMES frames of the (unshifted) training spectrogram for that.
    Returns a Model whose bases (n_bins, n_bases) have unit-norm columns.
    """
    if isinstance(recordings, np.ndarray):
        recordings = [recordings]
    if not recordings:
        raise NmfsepError("learn needs at least one recording")
    if n_bases < 1:
        raise NmfsepError(f"k (number of bases) must be at least 1, got {n_bases}")
    if not 0 <= pitch_shifts <= MAX_PITCH_SHIFTS:
        raise NmfsepError(f"pitch shifts must be between 0 and {MAX_PITCH_SHIFTS} semitones, got {pitch_shifts}")
    params = spectrum.default_params(sample_rate, n_fft, hop_length)
    magnitude = np.concatenate([analyse(_as_2d(r, name="recording", fix=""), params)[1] for r in recordings], axis=1)
    scale = float(magnitude.mean())
    if scale == 0.0:
        raise NmfsepError("the training audio is silent: there is nothing to learn")
    frames = magnitude[:, np.linspace(0, magnitude.shape[1] - 1, min(magnitude.shape[1], MAX_FRAMES)).astype(np.intp)]
    magnitude = augmented(magnitude, pitch_shifts)
    callback = None if progress is None else (lambda it, _loss: progress(it, max_iter))
    result = factorize(magnitude / scale, n_bases, beta=beta, max_iter=max_iter, tol=tol, seed=seed,
                       init=_init_for(magnitude, n_bases), callback=callback)
    bases = result.W / np.maximum(np.linalg.norm(result.W, axis=0), np.finfo(np.float32).tiny)
    frames = np.minimum(frames / scale, np.finfo(np.float16).max).astype(np.float16)
    return Model(bases.astype(np.float32), sample_rate, params.n_fft, params.hop_length, float(beta), name,
                 frames, pitch_shifts)
