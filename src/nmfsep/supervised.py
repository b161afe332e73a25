"""Supervised separation (Smaragdis 2007) and learning the bases it uses.

W is the concatenation of the models' learned bases, held fixed, and only H is learned; each
model's columns make one stem, named after it. With two models or more, H of the mixture fitted
with the bases themselves goes through a few trained updates and the masks use a trained copy of
the bases (deep-unfolded and discriminative NMF, see ``discriminative_training``; made once per
model set and kept in nmfsep.cache). Semi-supervised: ``n_free`` more bases are learned on the
mixture beside the fixed ones and make a ``residual`` stem (what the models do not cover).
``fit`` is the entry for a split (nmfsep.pipeline.fit_bases calls it); ``learn`` makes a Model.
"""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import cache, discriminative, spectrum
from .errors import NmfsepError
from .fitting import Fit, Progress, init_for
from .inputs import as_2d, check_sample_rate
from .model import MAX_FRAMES, MAX_PITCH_SHIFTS, Model, regrid, stored_frames
from .models import shipped_training
from .nmf import factorize

if TYPE_CHECKING:
    from .pipeline import IterationCount, Settings

# Unfolded layers of the discriminative training (Settings.unfolded_layers). With SPLIT_RECIPE, on
# benchmarks/data's supervised row: 16 layers 12.13 dB, 12: 12.10, 4 (30 steps of 512 of 2048 frames): 11.77;
# the 200-step recipe of 16 layers that it replaced: 12.29.
UNFOLDED_LAYERS = 16
# A set of built-ins only (three or more: the pairs' trainings are shipped, with 8 layers or none) is trained at its
# first split with at most this many: on the three-source mixtures of two validation sets (bench_quality --builtin)
# 16 -> 8 layers lost 0.17 and 0.10 dB (the corpus' 12, 40 per class; 8 layers and 35 steps: 0.26 on the 40) for
# about half the training's time.
BUILTIN_SET_LAYERS = 8
# A split whose activations trained layers refine (activation_iterations) fits them first with at most this many
# iterations, as SPLIT_RECIPE fits its mixtures for the training, not until the tolerance stops the fit (after 70 to
# 200 iterations on the corpus). The layers then start from the activations they were trained on, and the fit costs
# a quarter as much. Chosen on the corpus' validation split (bench_quality --corpus --split val --builtin, the
# built-ins row: mean SI-SDRi over its 7 classes, the corpus' 12 per class / 40 per class): no cap 7.78 / 7.94 dB,
# 50: 7.94 / 8.12, 30: 7.99 / 8.30, 20: 8.22 / 8.23, 10: 7.20 (two instruments far apart -6.5 dB). At 30 every class
# that the built-ins are for gained on both sets (drums + pitched +0.36 / +0.51, speech + noise +0.18 / +0.22,
# speech + music +0.05 / +0.08, three sources +0.56 / +0.39). One's own models (--supervised, the corpus' 12 per
# class): every class gained, mean 11.79 -> 11.96 dB (two talkers of one gender +0.41, speech + noise +0.33); one's own
# voice beside music / noise +10.94 -> +10.97 / +15.11 -> +15.29. Pair trainings rebuilt on activations of 30
# iterations too (THOROUGH_RECIPE's 200) gave 7.97 against 7.99 on the 12 per class: they were kept.
TRAINED_FIT_ITERATIONS = 30
DEFAULT_PITCH_SHIFTS = "auto"  # see auto_pitch_shifts
SEMI_SUPERVISED_WARMUP = 100  # --free: iterations of each warm-up fit (see _semi_supervised)
DEFAULT_BASES = 128
SPEECH_BUILTINS = ("speech", "speech_low", "speech_high")  # see steady_stems
STEADY_RECEIVERS = ("noise", "music")  # built-ins that take a voice's steady floor, the first present
# learn factorizes at most this many frames, shifted copies included (evenly spaced ones of longer training
# audio): `nmfsep learn` on 10 min of 22.05 kHz audio peaks at 2.9 GB with 1 or 12 shifts each way (3.4 GB
# and about 27 GB uncapped). The built-ins' 480 s with 1 shift each way (124 000 frames) stay under it.
MAX_TRAINING_FRAMES = 131072


@dataclass(frozen=True)
class TrainingRecipe:
    """How a model set's discriminative training is made (see ``discriminative_training``).

    mixtures: synthetic mixtures of the models' training frames, at most ``frames`` frames in all
    (memory); fit_iterations: iterations of the fit of their activations with the fixed bases (at
    most the split's --iter); steps: Adam steps at learning rate ``rate``, each on ``batch`` random
    frames; check_frames: how many of the frames (None: all) the trained bases are checked on
    against the plain ones (``discriminative.train``). The layers are the split's
    (Settings.unfolded_layers).
    """

    mixtures: int
    steps: int
    rate: float
    batch: int
    frames: int
    fit_iterations: int
    check_frames: int | None = None


# The recipe of a split: 50 Adam steps at rate 0.15 on batches of 128 of 4096 frames, 30 iterations of the fit
# (see README "Supervised"): 0.16 dB below the thorough one it replaced on benchmarks/data (12.13 against 12.29
# dB) at a first split of 2.6x a blind split's wall time (6 s at 16 kHz, two 128-basis models). Per step the cost
# is layers x batch: batches of 512 cost 1.8x as much for 12.13 dB, batches of 64 gave 12.01 dB. The thorough
# recipe is for trainings made once ahead, e.g. the built-ins' pairs at build time.
# The check on a quarter of the frames: it ran all 16 layers over all of them twice, a sixth of the training's time.
SPLIT_RECIPE = TrainingRecipe(mixtures=4, steps=50, rate=0.15, batch=128, frames=4096, fit_iterations=30,
                              check_frames=1024)
THOROUGH_RECIPE = TrainingRecipe(mixtures=4, steps=200, rate=0.05, batch=512, frames=8192, fit_iterations=200)


def fit(V: np.ndarray, settings: "Settings", options: dict, count: "IterationCount",
        band: int | None = None) -> Fit:
    """Supervised Fit of V (n_bins, n_frames, the input's magnitude over its mean, not all zero)
    with settings.models' bases fixed (plus settings.n_free learned ones: ``_semi_supervised``;
    without them, for at most ``activation_iterations`` iterations),
    one stem per model then the residual; with the discriminative training where it applies
    (``discriminative_training``, or settings.trained). options: factorize's keywords; count: the
    IterationCount the factorizations report to.

    band: with no free bases, only V's first ``band`` bins are fitted (None: all), for an input
    resampled up to the models' rate: it holds nothing above its own Nyquist frequency, and a
    model of energy up there (noise, a voice's sibilants) is fitted down (KL weighs every bin)
    and leaves its source in the other stems. On the corpus' validation split (bench_quality
    --corpus --supervised) that took the supervised mean from 9.29 to 9.77 dB (speech + noise
    12.41 -> 14.24). With free bases every bin is fitted: there the empty band keeps a model from
    taking broadband sound that the free bases should (a voice + --free 8 in noise: 4.31 dB
    over all bins, 3.69 over the band)."""
    known = np.concatenate([m.bases for m in settings.models], axis=1)
    n_known = known.shape[1]
    if settings.n_free:
        band = None
        result = _semi_supervised(V, known, settings.n_free, options, count)
        count.ran(result.n_iter, settings.max_iter)
    else:
        n_iter = activation_iterations(settings)
        result = factorize(V[:band], n_known, W=known[:band], update_W=False, **dict(options, max_iter=n_iter))
        count.ran(result.n_iter, n_iter)
    W, losses = (result.W if band is None else known), np.asarray(result.losses)
    loss = float(losses[-1]) if len(losses) else None
    trained = None
    if uses_training(settings):
        trained = (settings.trained or shipped_training(settings.models)
                   or discriminative_training(settings.models, settings)).with_free(W[:, n_known:])
    return Fit(W, result.H, model_groups(settings.models, settings.n_free), result.n_iter, loss, losses,
               trained=trained, band=band, steady=settings.steady)


def activation_iterations(settings: "Settings") -> int:
    """The most iterations of a split's fit of the activations with the models' bases fixed and no
    free bases: settings.max_iter, and at most TRAINED_FIT_ITERATIONS where a discriminative
    training's layers refine them (two models or more with training frames: see that constant)."""
    if uses_training(settings):
        return min(settings.max_iter, TRAINED_FIT_ITERATIONS)
    return settings.max_iter


def _semi_supervised(V: np.ndarray, known: np.ndarray, n_free: int, options: dict, count: "IterationCount"):
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
    free = factorize(unexplained, n_free, init=init_for(V, n_free), **quick)
    count.ran(free.n_iter, quick["max_iter"])
    return factorize(V, r + n_free, W=np.concatenate([known, free.W], axis=1),
                     H=np.concatenate([alone.H, free.H]), init="custom", fixed_W_columns=range(r), **options)


def steady_stems(models: tuple[Model, ...]) -> tuple[int, tuple[int, ...]] | None:
    """(the stem that takes the steady floor, the voice stems) for masks.masks_of, or None where
    no voice has a built-in beside it to take its floor. That is the built-in ``noise``, else the
    built-in ``music`` (STEADY_RECEIVERS). Voices: the speech built-ins (SPEECH_BUILTINS) and
    one's own models that sound like speech (nmfsep.models.sounds_like_speech: it fits the
    built-ins to their training frames, about a second each, so Settings.steady asks once per
    settings). The music and instrument built-ins, and one's own instruments, keep their floor:
    held notes are steady too (validation, three sources with the built-in noise: 6.54 dB with
    music's floor kept, 6.32 moved; a new-user check: a held cello note beside ``noise`` went
    94% to the noise stem when own models all counted as voices). Validation, built-ins on
    speech + music: 5.12 dB, 5.28 with the speech's floor given to ``music``."""
    from .models import sounds_like_speech

    builtin_index = {m.name: i for i, m in enumerate(models) if m.builtin}
    receiver = next((builtin_index[name] for name in STEADY_RECEIVERS if name in builtin_index), None)
    if receiver is None:
        return None
    voices = tuple(i for i, m in enumerate(models) if i != receiver
                   and (m.name in SPEECH_BUILTINS if m.builtin else sounds_like_speech(m)))
    return (receiver, voices) if voices else None


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


def training_needed(settings: "Settings") -> bool:
    """Whether splits with these settings need a discriminative training not yet made (none
    is for a set of built-in models whose training is shipped: nmfsep.models.shipped_training)."""
    return _untrained(settings) and shipped_training(settings.models) is None


def uses_training(settings: "Settings") -> bool:
    """Splits with these settings use a discriminative training: it is on (settings.discriminative)
    and applies to their models (``discriminative_applies``)."""
    return settings.discriminative and discriminative_applies(settings.models)


def _untrained(settings: "Settings") -> bool:
    """Splits with these settings use a discriminative training that they do not hold yet."""
    return settings.trained is None and uses_training(settings)


def train_models(settings: "Settings", progress: Progress | None = None,
                 started: Callable[[Path | None], None] | None = None) -> "Settings":
    """The settings with their model set's discriminative training in ``trained`` (the same
    settings where there is none to make): loaded from the on-disk cache, else trained, with
    started(folder) called first (folder: where the training will be kept, None where it cannot
    be: the cache is off or not writable) and progress(step, total) as it goes. Splits with the
    returned settings, in this process or another (they pickle), do not train again. A set of
    built-ins with a shipped training gets it here (read once, not by every split). The voices
    whose steady floor goes to the built-in noise or music (Settings.steady) are worked out here too, once:
    the settings carry them to every split and worker.
    """
    if _untrained(settings):
        settings = replace(settings, trained=shipped_training(settings.models)
                           or discriminative_training(settings.models, settings, progress, started))
    settings.steady  # noqa: B018 (cached on the settings, and pickled with them)
    return settings


def discriminative_training(models: tuple[Model, ...], settings: "Settings", progress: Progress | None = None,
                            started: Callable[[Path | None], None] | None = None, *,
                            recipe: TrainingRecipe | None = None) -> discriminative.Trained:
    """Unfolded layers and mask bases trained to separate the models' synthetic mixtures.

    recipe.mixtures synthetic mixtures of the models' stored training frames (see
    ``synthetic_sources``; pitch-shifted as their bases were; recipe.frames in all at most) are
    fitted with the fixed bases as a split fits its input; then ``training_layers`` more
    updates of the activations, each with its own copy of the bases, and a copy of the bases for
    the masks are trained so that the masked mixtures match the true sources
    (``nmfsep.discriminative``; where that does no better than the models' own bases, or does not
    stay finite, there are no layers and the masks use the bases themselves, as without it).
    They depend only on the models and the settings, so they are
    made once per model set (a batch makes them before its inputs: see ``train_models``) and
    kept on disk for later runs (``nmfsep.cache``), named after the recipe too (a training of
    another recipe is not used). recipe: None is SPLIT_RECIPE (fast: see ``TrainingRecipe``);
    THOROUGH_RECIPE for a training made once ahead. Made here (not loaded): started(folder) is
    called first, and progress(step, fit iterations + recipe.steps) as it goes (the fit of the
    activations, then the training's steps). A shipped training of built-ins
    (nmfsep.models.shipped_training) is not looked for here: splits (``fit``, ``train_models``)
    take it before they get here, and benchmarks/build_models.py makes it here.
    """
    recipe = SPLIT_RECIPE if recipe is None else recipe
    layers = training_layers(models, settings)
    # the training sees --iter only as the iterations of its fit (``_train``): --iter 200 and 1000 share one
    key = (settings.seed, settings.beta, _fit_iterations(settings, recipe), settings.tol, settings.sparsity, layers)
    name = _training_name(models, key, recipe)
    trained = _cached_training(models, name, layers)
    if trained is None:
        if started is not None:
            started(cache.writable_folder())
        trained = _train(models, settings, recipe, layers, progress)
        if all(np.all(np.isfinite(b)) for b in (*trained.layers, trained.mask_bases)):  # (train sees to it)
            cache.save("discriminative", name, {"layers": np.array(trained.layers, np.float32).reshape(
                (len(trained.layers),) + trained.mask_bases.shape), "mask_bases": trained.mask_bases.astype(np.float32)})
    for bases in (*trained.layers, trained.mask_bases):
        bases.flags.writeable = False
    return trained


def training_layers(models: tuple[Model, ...], settings: "Settings") -> int:
    """The unfolded layers of the models' discriminative training: settings.unfolded_layers, and at
    most BUILTIN_SET_LAYERS where every model is a built-in (nmfsep.models.load)."""
    if all(m.builtin for m in models):
        return min(settings.unfolded_layers, BUILTIN_SET_LAYERS)
    return settings.unfolded_layers


def _fit_iterations(settings: "Settings", recipe: TrainingRecipe) -> int:
    """The iterations of the training's fit of its mixtures' activations (``_train``)."""
    return min(settings.max_iter, recipe.fit_iterations)


def _training_name(models: tuple[Model, ...], key: tuple, recipe: TrainingRecipe) -> str:
    """The on-disk cache's name for a training: the models' contents, the settings, the recipe."""
    return cache.digest(key, recipe, discriminative.AVERAGE_FROM, discriminative.VERSION, *[part for m in models for part in (m.bases, m.frames, m.pitch_shifts)])


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


def _train(models: tuple[Model, ...], settings: "Settings", recipe: TrainingRecipe, layers: int,
           progress: Progress | None = None) -> discriminative.Trained:
    """Make the training (see ``discriminative_training``)."""
    mixtures = []   # each in random order, so their first frames are a random subset
    while len(mixtures) < recipe.mixtures and sum(m.shape[2] for m in mixtures) < recipe.frames:
        mixtures.append(synthetic_sources(models, settings.seed + len(mixtures)))
    S = np.concatenate(mixtures, axis=2)[:, :, :recipe.frames]
    W = np.concatenate([m.bases for m in models], axis=1)
    fitted = _fit_iterations(settings, recipe)
    total = fitted + recipe.steps
    report = (lambda done: None) if progress is None else (lambda done: progress(done, total))
    H = factorize(S.sum(axis=0), W.shape[1], W=W, update_W=False, beta=settings.beta, max_iter=fitted,
                  tol=settings.tol, l1_H=settings.sparsity, callback=lambda it, _loss: report(it)).H
    report(fitted)  # the fit may stop early (tol)
    return discriminative.train(S, W, H, model_groups(models), layers, recipe.steps,
                                recipe.rate, recipe.batch, settings.seed, callback=lambda step: report(fitted + step),
                                check_frames=recipe.check_frames)


def pitch_shift(V: np.ndarray, semitones: float) -> np.ndarray:
    """V (n_bins, n_frames) with every frequency scaled by 2 ** (semitones / 12): bin f takes the
    value of V at f / 2 ** (semitones / 12), linearly interpolated (0 above the top bin)."""
    return regrid(V, np.arange(V.shape[0]) / 2 ** (semitones / 12))


def augmented(V: np.ndarray, pitch_shifts: int) -> np.ndarray:
    """V followed by its copies shifted by -pitch_shifts ... +pitch_shifts semitones (0 left out)."""
    shifts = [s for s in range(-pitch_shifts, pitch_shifts + 1) if s]
    return np.concatenate([V] + [pitch_shift(V, s) for s in shifts], axis=1)


def training_frames(n_frames: int, pitch_shifts: int) -> int:
    """How many of n_frames (unshifted) learn factorizes with pitch_shifts each way: all of them,
    or as many as MAX_TRAINING_FRAMES holds with their 2 * pitch_shifts shifted copies."""
    return min(n_frames, MAX_TRAINING_FRAMES // (2 * pitch_shifts + 1))


def auto_pitch_shifts(recordings: list[np.ndarray] | np.ndarray, sample_rate: int) -> tuple[int, str | None]:
    """learn's pitch_shifts="auto": (0, "speech") for recordings that the built-in speech model
    fits best of the class built-ins (nmfsep.models.closest), else (1, the built-in that does),
    or (1, None) where there were none to compare.

    Shifted copies let an instrument's bases cover notes its training never played (the
    benchmark's flute against cello: +3 dB), but they make a voice's bases less specific to that
    voice. Chosen on the corpus' validation split (bench_quality.py --corpus --split val
    --supervised, every source learned from its own clips): the supervised mean went from 9.77 to
    9.98 dB with "auto" instead of 1 for every source: two talkers +0.38 and +0.66, speech + noise
    +0.14, speech + music +0.22, drums + pitched +0.16, three sources +0.20; the two instrument
    classes were unchanged (every instrument kept 1). The steady noises and drum kits that the
    speech model fits best also get 0 (they are in those gains). 0 for every source instead gave
    the instrument classes 3.54 and 1.40 dB (7.13 and 5.92 with 1). Learned from one 8 s clip
    each instead of three, the four speech classes gained too (10.15 -> 10.33 dB mean). On the
    six-case benchmark (bench_quality.py) it lost: voices 9.64 -> 9.26, voice + noise 9.74 -> 9.55.
    On the test split (reported, not chosen on): talkers +0.35 / +0.77, speech + music +0.25, but
    two instruments 4.31 -> 3.17 and drums + pitched 18.68 -> 18.10, where ``speech`` was closest
    for 5 of 90 instruments (GM 76 and 115) and 3 of 6 drum kits; mean 9.84 -> 9.78.

    Only the class built-ins installed are compared; without ``speech`` and one other: 1.
    """
    from .models import CLASSES, closest, names

    installed = [c for c in CLASSES if c in names()]
    if "speech" not in installed or len(installed) < 2:
        return 1, None
    best = closest(recordings, sample_rate, installed)
    return (0 if best == "speech" else 1), best


def learn(recordings: list[np.ndarray] | np.ndarray, sample_rate: int, n_bases: int = DEFAULT_BASES, *,
          name: str = "source", beta: float = 1.0, max_iter: int = 200, tol: float = 1e-4,
          seed: int = 0, n_fft: int | None = None, hop_length: int | None = None,
          pitch_shifts: int | str = DEFAULT_PITCH_SHIFTS, progress: Progress | None = None) -> Model:
    """Learn n_bases spectral templates of one source from clean recordings of it.

    recordings: one array or a list of arrays (n_samples,) or (n_samples, n_channels), all at
    sample_rate; their spectrograms are laid end to end (no seam is made in the audio).
    pitch_shifts: also learn from copies of the spectrogram shifted by +-1 ... +-pitch_shifts
    semitones, so that an instrument's bases cover notes missing from the training material. It
    makes speech and drum bases less specific; 0 suits one model alone. "auto" (the default): 0
    where the recordings sound like speech, else 1 (``auto_pitch_shifts``; Model.pitch_shifts
    holds the number chosen).
    At most MAX_TRAINING_FRAMES frames are factorized, shifted copies included: longer training
    audio is learned from evenly spaced frames of it (``training_frames``), so memory stays bounded.
    The model keeps up to MAX_FRAMES frames of the (unshifted) training spectrogram for the
    discriminative training of a split with several models (``discriminative_training``).
    Returns a Model whose bases (n_bins, n_bases) have unit-norm columns.
    Raises NmfsepError for no recordings, a bad sample rate, k or pitch_shifts, and a silent or
    overflowing recording (spectrum.mean_level; "recording 2 of 3: ..." where several are given).
    """
    if isinstance(recordings, np.ndarray):
        recordings = [recordings]
    if not recordings:
        raise NmfsepError("learn needs at least one recording")
    if n_bases < 1:
        raise NmfsepError(f"k (number of bases) must be at least 1, got {n_bases}")
    sample_rate = check_sample_rate(sample_rate)
    if isinstance(pitch_shifts, str) and pitch_shifts.strip().lower() == "auto":
        pitch_shifts = "auto"
    elif isinstance(pitch_shifts, bool) or not (isinstance(pitch_shifts, (int, np.integer))
                                                 and 0 <= pitch_shifts <= MAX_PITCH_SHIFTS):
        raise NmfsepError(f"pitch shifts must be 'auto' or between 0 and {MAX_PITCH_SHIFTS} semitones, "
                          f"got {pitch_shifts!r}")
    params = spectrum.default_params(sample_rate, n_fft, hop_length)
    magnitudes = [spectrum.analyse(as_2d(r, name="recording", fix=""), params)[1] for r in recordings]
    for i, m in enumerate(magnitudes):
        try:
            spectrum.mean_level(m)
        except NmfsepError as error:
            raise (error if len(magnitudes) == 1 else
                   NmfsepError(f"recording {i + 1} of {len(magnitudes)}: {error}")) from None
    magnitude = np.concatenate(magnitudes, axis=1)
    del magnitudes
    scale = spectrum.mean_level(magnitude)
    if pitch_shifts == "auto":
        pitch_shifts = auto_pitch_shifts(recordings, sample_rate)[0]
    frames = magnitude[:, spectrum.spread_frames(magnitude.shape[1], MAX_FRAMES)]
    keep = training_frames(magnitude.shape[1], pitch_shifts)
    if keep < magnitude.shape[1]:
        magnitude = magnitude[:, spectrum.spread_frames(magnitude.shape[1], keep)]
    magnitude = augmented(magnitude, pitch_shifts)
    callback = None if progress is None else (lambda it, _loss: progress(it, max_iter))
    result = factorize(magnitude / scale, n_bases, beta=beta, max_iter=max_iter, tol=tol, seed=seed,
                       init=init_for(magnitude, n_bases), callback=callback)
    bases = result.W / np.maximum(np.linalg.norm(result.W, axis=0), np.finfo(np.float32).tiny)
    frames = stored_frames(frames, scale)
    return Model(bases.astype(np.float32), sample_rate, params.n_fft, params.hop_length, float(beta), name,
                 frames, pitch_shifts)
