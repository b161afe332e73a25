"""The pipeline for one input: STFT -> factorize -> group -> mask -> ISTFT.

    samples (n_samples, n_channels) --STFT--> X (n_channels, n_bins, n_frames)
    V = mean over channels of |X|           (one model for the file keeps the stereo image)
    V ≈ W H                                 (nmfsep.blind or nmfsep.supervised: a fitting.Fit)
    M_s = soft mask of W_s H_s              (nmfsep.masks)
    stem_s = ISTFT(M_s * X)                 (the stems add back up to the input; with several
                                             channels, the multichannel Wiener filter of the
                                             masks: nmfsep.masks.source_spectra)

This module orchestrates: the settings (``Settings``), the STFT and its inverse, resampling to
the models' rate, the choice between the blind path (nmfsep.blind: factorize, group, order,
ensemble) and the supervised one (nmfsep.supervised: the models' bases fixed, semi-supervised
--free, discriminative training; and ``learn``), a voice beside music split by its pitch
(nmfsep.register: again with ``speech_high`` where it is high, and its harmonics in the masks),
progress, memory estimates and ``separate``.
"""

import numbers
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import audio, blend, blind, masks, register, spectrum, supervised
from .errors import BadValueError, NmfsepError
from .fitting import Fit, Progress
from .grouping import METHODS
from .inputs import as_2d, as_array, check_sample_rate
from .model import Model, check_one_rate

if TYPE_CHECKING:
    from . import discriminative

RESIDUAL = "residual"
LEVEL_OCTAVES = 16  # split_sources: peaks outside 2**-16 (-96 dBFS) to 2**16 are split at a peak near 1
WIENER_POWER = 2.0  # the Wiener (power-ratio) mask: everywhere but the blind ensemble (blind.ENSEMBLE_POWER)
# Peak memory of a separation, in bytes per sample of the framed signal (n_frames * n_fft per
# channel), per stem. Blind separation with its three factorizations (blind.ENSEMBLE): 3 minutes of
# 16 kHz mono, 2 stems, peak RSS 575 MB = ~114 MB interpreter + ~42 bytes per framed sample
# (hop n_fft/4); 40 + 2 per stem covers it.
BYTES_PER_FRAMED_SAMPLE = 40
BYTES_PER_FRAMED_SAMPLE_PER_STEM = 2
# With several channels the multichannel Wiener filter holds every stem's complex64 spectrum at once
# (masks.source_spectra): 2 minutes of 44.1 kHz stereo, peak RSS 1.27 GB with 2 stems, 1.73 with 4,
# 5.5 bytes per framed sample per stem; 2 + 4 covers it.
BYTES_PER_FRAMED_SAMPLE_PER_STEM_SPECTRUM = 4
# back_to_rate's peak (tracemalloc), per sample of the framed signal at the input's rate: 3.2 minutes
# of 44.1 kHz stereo brought back from 22.05 kHz, 22.1 bytes with 2 stems, 30.0 with 4.
BYTES_PER_FRAMED_SAMPLE_BACK = 16
BYTES_PER_FRAMED_SAMPLE_BACK_PER_STEM = 4


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
    smoothness None is blind.BLIND_SMOOTHNESS in blind separation and 0 with models.
    discriminative: with two models or more that keep training frames, refine the activations
    and make the masks with layers and bases trained to separate those models' synthetic
    mixtures (see ``supervised.discriminative_training``); unfolded_layers: how many refining updates;
    trained: that training, made beforehand (see ``supervised.train_models``).
    blend: with two models or more, the share (0 to 1) of the blind split of the same input
    (as many stems, named after the models: nmfsep.blend) in the masks; None: blend.default_share
    (0.5, or 0.35 beside the built-in noise) where a model is a built-in (it models a class of
    sound, not the file's sources; not one's own beside the built-in noise) and there are no
    free bases, else 0 (see ``blind_share``).
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
    unfolded_layers: int = supervised.UNFOLDED_LAYERS
    blend: float | None = None
    # The model set's discriminative training, made beforehand by ``supervised.train_models`` (a batch makes
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
        if self.blend is not None and (isinstance(self.blend, bool) or not isinstance(self.blend, numbers.Real)):
            raise BadValueError(f"blend must be a number between 0 and 1, got {self.blend!r}")
        if self.blend is not None and not 0 <= self.blend <= 1:
            raise BadValueError(f"blend must be between 0 and 1, got {self.blend}")
        if self.blend and (not 2 <= len(self.models) <= blend.MAX_STEMS or self.n_free):
            raise BadValueError(f"--blend mixes the split of 2 to {blend.MAX_STEMS} models with the blind split of "
                                "as many stems: give that many --model and no --free")
        if self.models and self.n_components is not None and self.n_components < len(self.models) and self.blind_share:
            raise BadValueError(f"--components {self.n_components} is fewer than the {len(self.models)} stems of the "
                                "blind split blended with the models: give at least that many, or --blend 0 for the "
                                "models alone")
        names = [m.name for m in self.models]
        duplicate = next((n for n in names if names.count(n) > 1 or n == RESIDUAL and self.n_free), None)
        if duplicate is not None:
            raise BadValueError(f"two stems would be named {duplicate!r}: give each model once (models of your own: "
                                "learn them with distinct --name)")
        if self.models:
            self.models_stft()
        return self

    def component_counts(self, n_frames: int) -> list[int]:
        """Components of each blind factorization: --components (one factorization), else
        blind.DEFAULT_COMPONENTS times each of blind.ENSEMBLE (at least one per source, at most
        n_frames // 4 for short inputs; repeats dropped)."""
        if self.grouping == "none":
            return [self.n_sources]
        if self.n_components is not None:
            return [self.n_components]
        counts = [max(self.n_sources, min(round(blind.DEFAULT_COMPONENTS * f), n_frames // 4))
                  for f in blind.ENSEMBLE]
        return list(dict.fromkeys(counts))

    def solver_options(self, callback: Callable[[int, float], None] | None = None) -> dict:
        """nmfsep.nmf.factorize's keywords for a split with these settings (callback(it, loss))."""
        return dict(beta=self.beta, max_iter=self.max_iter, tol=self.tol, seed=self.seed, callback=callback,
                    l1_H=self.sparsity, smooth_H=self.temporal_smoothness)

    def mask_power(self, n_averaged: int = 1) -> float:
        """The mask exponent used: --power, else blind.ENSEMBLE_POWER for an average of several
        blind factorizations and WIENER_POWER otherwise."""
        if self.power is not None:
            return self.power
        return blind.ENSEMBLE_POWER if n_averaged > 1 else WIENER_POWER

    @property
    def blind_share(self) -> float:
        """The share of the blind split in the masks (see ``blend``): as given, else
        blend.default_share for 2 to blend.MAX_STEMS models without free bases, else 0."""
        if self.blend is not None:
            return self.blend
        blendable = 2 <= len(self.models) <= blend.MAX_STEMS and not self.n_free
        return blend.default_share(self.models) if blendable else 0.0

    @cached_property
    def steady(self) -> tuple[int, tuple[int, ...]] | None:
        """supervised.steady_stems of the models (the stem of the built-in noise or music and the
        voices', whose steady floor goes to it: nmfsep.masks.masks_of), worked out once per settings
        (for one's own models it fits the built-ins to their training frames)."""
        return supervised.steady_stems(self.models)

    @property
    def steady_floor(self) -> dict | None:
        """``steady`` by stem name, as --json gives it: {"to": name, "from": [names]}, or None."""
        if self.steady is None:
            return None
        to, voices = self.steady
        return {"to": self.stem_names[to], "from": [self.stem_names[v] for v in voices]}

    def blind_counterpart(self) -> "Settings":
        """The blind split a model split is blended with (nmfsep.blend): one stem per model, the
        blind defaults but for the solver's limits, the seed, --components and --grouping, and
        ``auto`` taken as ``learned``: its check of one component per source (for steady tones)
        changed no stem of the validation split's blends and cost 12% of their time."""
        grouping = "learned" if self.grouping == "auto" else self.grouping
        return Settings(n_sources=len(self.models), max_iter=self.max_iter, tol=self.tol, seed=self.seed,
                        n_components=self.n_components, grouping=grouping)

    @property
    def temporal_smoothness(self) -> float:
        """The smoothness weight used: as given, else blind.BLIND_SMOOTHNESS blind and 0 with models."""
        if self.smoothness is not None:
            return self.smoothness
        return 0.0 if self.models else blind.BLIND_SMOOTHNESS

    @property
    def stem_names(self) -> list[str]:
        if not self.models:
            return [f"source{i + 1}" for i in range(self.n_sources)]
        return [m.name for m in self.models] + ([RESIDUAL] if self.n_free else [])

    def stft_params(self, sample_rate: int, name: str = "input") -> spectrum.StftParams:
        """The STFT of the models where there are models (they must agree: ``models_stft``), else
        the default at sample_rate (see ``separation_rate``: with models, the separation runs at theirs)."""
        if not self.models:
            return spectrum.default_params(sample_rate, self.n_fft, self.hop_length)
        return self.models_stft()

    def models_stft(self) -> spectrum.StftParams:
        """The models' one STFT; NmfsepError where two models differ in rate or STFT, BadValueError where
        --n-fft/--hop ask for another. ``check`` asks it, so a set that cannot be split together
        is refused before its discriminative training is made, not after."""
        check_one_rate(self.models)
        first = self.models[0]
        for m in self.models:
            if (m.n_fft, m.hop_length) != (first.n_fft, first.hop_length):
                raise NmfsepError(f"models {first.name!r} and {m.name!r} use different STFT sizes "
                                  f"({first.n_fft}/{first.hop_length} and {m.n_fft}/{m.hop_length})")
        if self.n_fft not in (None, first.n_fft) or self.hop_length not in (None, first.hop_length):
            raise BadValueError(f"the models were learned with n_fft {first.n_fft} and hop {first.hop_length}: "
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
    # A voice beside music split by its pitch (nmfsep.register): {"stem", "pitch_hz", "model", "harmonics"}
    # (model: the built-in it was split with; harmonics: the share of its harmonic masks; pitch_hz and
    # harmonics None where the stem has no pitch: silent, too short);
    # None where the models are not the built-ins speech and music.
    register: dict | None = None
    # The blind split's share in the masks (nmfsep.blend): settings.blind_share, or 0 where none was
    # run or where it clashed with the models' split (blend.clash)
    blend: float = 0.0

    def spectrogram(self, samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
        """(V (n_bins, n_frames), its rate): the magnitude of samples (n_samples, n_channels) at
        sample_rate as this separation saw them (resampled to its rate where it resampled), the
        frames of its masks and activations."""
        rate = self.resampled_to or sample_rate
        if rate != sample_rate:
            samples = audio.resample(samples, sample_rate, rate)
        return spectrum.analyse(samples, self.params)[1], rate


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
        warmup = min(settings.max_iter, supervised.SEMI_SUPERVISED_WARMUP)
        blended = planned_iterations(settings.blind_counterpart(), n_frames) if settings.blind_share else 0
        fitted = settings.max_iter + 2 * warmup if settings.n_free else supervised.activation_iterations(settings)
        return fitted + blended
    counts = settings.component_counts(n_frames)
    auto = 2 if len(counts) > 1 and settings.grouping == "auto" and settings.n_sources >= 2 else 0
    return settings.max_iter * (len(counts) + auto)


def split_sources(samples: np.ndarray, sample_rate: int, settings: Settings,
                  progress: Progress | None = None, name: str = "input") -> Separation:
    """Separate float samples (n_samples, n_channels) into the stems settings.stem_names.

    Models learned at another rate: the input is resampled to theirs (nmfsep.audio.resample),
    separated there, and the stems brought back to sample_rate and the input's length so that
    they still add up to it (``back_to_rate``); the Separation's ``resampled_to`` says so.

    Samples whose peak is outside [2**-LEVEL_OCTAVES, 2**LEVEL_OCTAVES] are split at a peak near 1
    and their stems scaled back, both by a power of two (exact in floating point, subnormal
    samples and stems aside): the squares
    of float32 spectra underflow long before the samples do (a blind split of a voice over music
    at x1e-15 gave stems 15 dB from those at x1).
    """
    settings.check()
    octaves = level_octaves(samples)
    if octaves:
        samples = np.ldexp(samples, octaves)
    rate = settings.separation_rate(sample_rate)
    if rate == sample_rate:
        result = _split_at_rate(samples, sample_rate, settings, progress, name)
    else:
        result = _split_at_rate(audio.resample(samples, sample_rate, rate), rate, settings, progress, name,
                                input_rate=sample_rate)
        result.stems = back_to_rate(result.stems, samples, rate, sample_rate)
        result.resampled_to = rate
    if octaves:
        result.stems = np.ldexp(result.stems, -octaves)
    return result


def level_octaves(samples: np.ndarray) -> int:
    """The power of two (its exponent) that brings the samples' peak (absolute, finite) to within
    [0.5, 1), where it is outside [2**-LEVEL_OCTAVES, 2**LEVEL_OCTAVES]; else (and for silence) 0.
    Applied with np.ldexp: 2**149 (a float32 subnormal's) is beyond float32 as a factor."""
    peak = max(float(samples.max()), -float(samples.min())) if samples.size else 0.0  # (no |samples| copy)
    if not (np.isfinite(peak) and peak > 0) or 2.0 ** -LEVEL_OCTAVES <= peak <= 2.0 ** LEVEL_OCTAVES:
        return 0
    return -int(np.frexp(peak)[1])


def _split_at_rate(samples: np.ndarray, sample_rate: int, settings: Settings, progress: Progress | None,
                   name: str, input_rate: int | None = None) -> Separation:
    params = settings.stft_params(sample_rate, name)
    mixture, magnitude = spectrum.analyse(samples, params)
    scale = float(magnitude.mean())
    voice = register.voice_beside_music(settings)
    refit = settings.max_iter if voice is not None else 0  # planned for a high voice; given back where not
    count = IterationCount(progress, planned_iterations(settings, magnitude.shape[1]) + refit)
    band = input_band(input_rate or sample_rate, sample_rate, params)
    normalised = magnitude / np.float32(scale or 1.0)

    blended = [0.0]  # the blind split's share in the last masks made (0: where the two splits clash)

    def model_masks(fitted: Fit, blind_masks: np.ndarray | None) -> np.ndarray:
        found = fitted.masks(fitted.activations, settings.mask_power(fitted.n_averaged), normalised)
        if blind_masks is None:
            return found
        matched = blind_masks[blend.match(found, blind_masks, magnitude)]
        blended[0] = 0.0 if blend.clash(found, matched, magnitude) > blend.CLASH else settings.blind_share
        return blend.combine(found, matched, blended[0]) if blended[0] else found

    fit = fit_bases(magnitude, scale, settings, sample_rate, params, count=count, channels=mixture, band=band)
    blind_masks = None
    if settings.blind_share:
        counterpart = settings.blind_counterpart()
        other = fit_bases(magnitude, scale, counterpart, sample_rate, params, count=count, channels=mixture)
        blind_masks = other.masks(other.activations, counterpart.mask_power(other.n_averaged), normalised)
        fit.iterations_run += other.iterations_run
    source_masks = model_masks(fit, blind_masks)

    def stems_of(source_masks: np.ndarray) -> np.ndarray:
        return np.stack([spectrum.istft(source, params, samples.shape[0]).T
                         for source in masks.source_spectra(mixture, source_masks)])

    stems, picked = stems_of(source_masks), None
    if voice is not None:
        track = register.pitch_track(register.principal_channel(stems[voice]), sample_rate, params.hop_length,
                                     magnitude.shape[1])
        pitch = register.median_pitch(track)
        track = None if pitch is None else track  # no frame louder than the median: nothing voiced
        picked = {"stem": settings.stem_names[voice], "pitch_hz": None if pitch is None else round(pitch, 1),
                  "model": "speech", "harmonics": None if track is None else register.HARMONIC_SHARE}
        if pitch is not None and pitch > register.HIGH_HZ:
            again = fit_bases(magnitude, scale, register.with_high_voice(settings, voice), sample_rate, params,
                              count=count, channels=mixture, band=band)
            again.iterations_run += fit.iterations_run
            fit, source_masks, picked["model"] = again, model_masks(again, blind_masks), "speech_high"
        else:
            count.ran(0, refit)
        if track is not None:  # (a voice split again with speech_high has one)
            source_masks = register.with_harmonics(source_masks, voice, track, params.n_fft, sample_rate, pitch)
            stems = stems_of(source_masks)
    return Separation(stems, settings.stem_names, fit.n_iter, fit.loss, fit.bases, fit.activations,
                      fit.groups, source_masks, fit.losses, params, fit.confidence, settings.mask_power(fit.n_averaged),
                      fit.iterations_run, register=picked, blend=blended[0])


def input_band(input_rate: int, rate: int, params: spectrum.StftParams) -> int | None:
    """The number of low STFT bins (params, at rate) that an input at input_rate resampled up to
    rate can hold: those up to the resampler's passband edge below its own Nyquist frequency
    (nmfsep.audio.RESAMPLE_PASSBAND); None where it was not resampled up (every bin)."""
    if input_rate >= rate:
        return None
    return min(params.n_bins, int(audio.RESAMPLE_PASSBAND * input_rate / 2 * params.n_fft / rate) + 1)


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


def fit_bases(magnitude: np.ndarray, scale: float, settings: Settings, sample_rate: int,
              params: spectrum.StftParams, progress: Progress | None = None,
              count: IterationCount | None = None, channels: np.ndarray | None = None,
              band: int | None = None) -> Fit:
    """Factorize magnitude / scale (n_bins, n_frames) as the settings ask and group the components
    into stems: blind (learn W and H, group, order by centroid), supervised (the models' W fixed)
    or semi-supervised (--free). ``scale`` is the mean magnitude of the whole input (the
    streaming path fits a subsample of it); 0 means digital silence (every stem silent).
    Progress goes to ``count`` where given (its plan includes planned_iterations), else to
    ``progress``, in solver iterations. channels: the spectrogram of each channel (n_channels,
    n_bins, n_frames, complex or magnitude) where there are several, for the blind grouping.
    band: the models are fitted to the first ``band`` bins only (``input_band``: an input
    resampled up to the models' rate holds nothing above its own Nyquist frequency)."""
    if count is None:
        count = IterationCount(progress, planned_iterations(settings, magnitude.shape[1]))
    start = count.done
    fit = _fit_bases(magnitude, scale, settings, sample_rate, params, count, channels, band)
    fit.iterations_run = count.done - start
    return fit


def _fit_bases(magnitude: np.ndarray, scale: float, settings: Settings, sample_rate: int,
               params: spectrum.StftParams, count: IterationCount, channels: np.ndarray | None,
               band: int | None = None) -> Fit:
    if scale == 0.0:  # digital silence: nothing to model, every stem is silent
        count.ran(0, planned_iterations(settings, magnitude.shape[1]))
        if settings.models:
            W = np.concatenate([m.bases for m in settings.models], axis=1)
            k = W.shape[1] + settings.n_free
        else:
            k = settings.component_counts(magnitude.shape[1])[0]
            W = np.zeros((magnitude.shape[0], k), np.float32)
        H = np.zeros((k, magnitude.shape[1]), np.float32)
        groups = (supervised.model_groups(settings.models, settings.n_free) if settings.models
                  else blind.stem_groups(W, H, settings, sample_rate, params))
        return Fit(W, H, groups, 0, 0.0, np.zeros(0))
    options = settings.solver_options(count.callback())
    if settings.models:
        return supervised.fit(magnitude / scale, settings, options, count, band)
    return blind.fit(magnitude / scale, settings, sample_rate, params, options, count, channels)


def memory_needed(n_frames: int, n_channels: int, params: spectrum.StftParams, n_stems: int) -> int:
    """Bytes a separation of n_frames x n_channels needs at its peak (a measured upper bound)."""
    framed = spectrum.n_frames(n_frames, params) * params.n_fft * n_channels
    per_stem = BYTES_PER_FRAMED_SAMPLE_PER_STEM + (BYTES_PER_FRAMED_SAMPLE_PER_STEM_SPECTRUM if n_channels > 1 else 0)
    return framed * (BYTES_PER_FRAMED_SAMPLE + per_stem * n_stems)


def separation_memory(settings: Settings, n_frames: int, n_channels: int, sample_rate: int,
                      name: str = "input") -> int:
    """Bytes ``split_sources`` needs at its peak for n_frames x n_channels at sample_rate: the
    separation at ``settings.separation_rate``, and where the input is resampled to it, the
    sharing-out of its stems at its own rate (``back_to_rate``: STFTs, no factorization; added
    to the separation's, an upper bound). A blend (nmfsep.blend) holds one more set of masks,
    the models', through its blind split: counted as twice the stems of the separation.
    3.2 minutes of 44.1 kHz stereo split by two built-ins at 22.05 kHz: 3.0 GiB (peak RSS 1.9 GB)."""
    rate = settings.separation_rate(sample_rate)
    n_stems = len(settings.stem_names)
    need = memory_needed(round(n_frames * rate / sample_rate), n_channels, settings.stft_params(rate, name),
                         n_stems * (2 if settings.blind_share else 1))
    if rate != sample_rate:
        params = spectrum.default_params(sample_rate)
        framed = spectrum.n_frames(n_frames, params) * params.n_fft * n_channels
        need += framed * (BYTES_PER_FRAMED_SAMPLE_BACK + BYTES_PER_FRAMED_SAMPLE_BACK_PER_STEM * n_stems)
    return need


def separate(samples: np.ndarray, sample_rate: int, k: int = 2, *, models: "list[Model | str]" = (),
             n_free: int = 0, n_components: int | None = None, grouping: str = "auto",
             beta: float = 1.0, max_iter: int = 200, tol: float = 1e-4,
             seed: int = 0, power: float | None = None, n_fft: int | None = None,
             hop_length: int | None = None, channels_first: bool = False, blend: float | None = None,
             progress: Progress | None = None) -> np.ndarray:
    """Split a recording into stems that add back up to it.

    samples: real numbers (n_samples,) for mono or (n_samples, n_channels); with
    channels_first=True, (n_channels, n_samples) as librosa gives them. Never modified.
    sample_rate: in Hz, a whole number up to audio.MAX_SAMPLE_RATE.
    Blind (no models): k stems, lowest spectral centroid first, from n_components NMF components
    grouped by ``grouping`` (see nmfsep.grouping). With models (Model objects from
    ``nmfsep.supervised.learn``, built-in names or model file paths, resolved as ``split --model``
    does: nmfsep.models.load_set): one stem per model in the given order, plus a residual stem when
    n_free > 0 (k is ignored); the built-ins speech and music split a voice by its pitch
    (nmfsep.register; ``split_sources``' Separation.register says how). blend: the
    share of the blind split in the masks of a split with 2 to 6 models (nmfsep.blend; None:
    half where every model is a built-in, else none).
    Returns float32 stems (n_stems, *samples.shape), in the layout given.

    Raises BadValueError (an NmfsepError and a ValueError) before anything is allocated from
    the samples when their dtype, shape or layout is wrong (a 2-D array with more channels than
    samples and over audio.MAX_CHANNELS of them is taken for channels-first and refused with the
    fix), when they hold NaN or Inf, for a bad sample_rate or setting, or when the separation
    would need more memory than the machine has (the CLI streams such inputs: ``nmfsep split``).
    """
    samples = as_array(samples)
    frames = as_2d(samples, channels_first)
    sample_rate = check_sample_rate(sample_rate)
    if any(not isinstance(m, Model) for m in models):
        from .models import load_set
        models = load_set(models)[0]
    settings = Settings(k, beta, max_iter, tol, seed, power, n_fft, hop_length, tuple(models), n_free,
                        n_components=n_components, grouping=grouping, blend=blend).check()
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
