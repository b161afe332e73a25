"""Built-in models: ready-made sources (speech, music, noise, drums, instruments), so that a split
needs no training audio of one's own: ``nmfsep split x.wav --model speech --model noise``, or
``nmfsep.models.load("speech")`` in Python.

Each built-in is a model file in nmfsep.model's format (read without pickle and validated like
anyone's), ``NAME.npz`` in this folder (``folder()``), with its card ``NAME.md`` (what it models
and what it was learned from; the first line is its one-line summary). ``pairs/`` holds the
discriminative training (nmfsep.supervised.discriminative_training) of sets of built-ins, made
when they were built (``write_training``), so that a split with built-ins only does not train
(``shipped_training``).

Names and paths (``load``): an argument with no path separator and no ``.npz`` suffix that names
a built-in is that built-in, even where a file of that name exists in the working folder (write
``./speech`` for the file); any other argument, and any os.PathLike, is a path to a model file.
"""

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import cache, discriminative, spectrum
from ..errors import ModelError
from ..model import Model, check_one_rate, conform, load as load_file, read_arrays, write_arrays

MAX_LAYERS = 64  # unfolded layers a shipped training may hold
# The built-ins of one class of sound each (not speech_low / speech_high, parts of speech), which
# ``closest`` chooses from by default; at most CLOSEST_FRAMES frames, CLOSEST_ITERATIONS updates.
# Not ``synth`` either: with it among them, one of the validation split's 28 voices (the recorded
# klettres uk speaker) fitted ``synth`` better than ``speech``, and would have lost speech's defaults.
CLASSES = ("speech", "music", "noise", "drums", "piano", "guitar", "bass", "strings", "winds")
CLOSEST_FRAMES = 512
CLOSEST_ITERATIONS = 100
CLOSEST_SECONDS = 120  # longer recordings: 8 evenly spaced pieces of them, this long in all (memory)


def folder() -> Path:
    """Where the built-in models are: this package's folder."""
    return Path(__file__).parent


def names() -> list[str]:
    """The built-in models present, sorted (the names of the .npz files in ``folder()``)."""
    return sorted(p.stem for p in folder().glob("*.npz") if p.is_file())


def is_path(argument: str) -> bool:
    """Whether a model argument is a path whatever the built-ins are: it holds a path separator or
    ends in .npz (any case). Another argument names a built-in if there is one of that name
    (``builtin_path``; the module doc gives the whole rule)."""
    separators = {"/", os.sep, os.altsep} - {None}
    return any(s in argument for s in separators) or argument.lower().endswith(".npz")


def _listed(builtins: list[str], asked: str = "") -> str:
    """The built-ins for an error message, first the one that asked is likely a misspelling of."""
    import difflib

    if not builtins:
        return "no built-in models are installed"
    close = difflib.get_close_matches(asked.lower(), builtins, n=1, cutoff=0.6)
    return (f"did you mean {close[0]}? " if close else "") + f"built-ins: {', '.join(builtins)}"


def builtin_path(name_or_path: "str | os.PathLike") -> Path | None:
    """The file of the built-in that this argument names (see the module doc for the rule), or
    None: the argument is a path."""
    if isinstance(name_or_path, os.PathLike) or is_path(name_or_path) or name_or_path not in names():
        return None
    return folder() / f"{name_or_path}.npz"


def load(name_or_path: "str | os.PathLike") -> Model:
    """The built-in model of that name, else the model file at that path (see the module doc
    for the rule), read and validated by nmfsep.model.load. Raises ModelError naming the
    argument: a bare name that is neither a file nor a built-in lists the built-ins."""
    builtin = builtin_path(name_or_path)
    if builtin is not None:
        return replace(load_file(str(builtin)), builtin=True)
    path = os.fspath(name_or_path)
    if not isinstance(name_or_path, os.PathLike) and not is_path(path) and not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file and no built-in model of that name ({_listed(names(), path)})")
    stem = os.path.basename(path)[:-len(".npz")] if path.lower().endswith(".npz") else None
    if stem in names() and not os.path.exists(path):
        raise ModelError(f"{path}: no such model file (the built-in is named {stem}, without .npz)")
    return load_file(path)


def load_set(arguments: Sequence["str | os.PathLike | Model"]) -> tuple[tuple[Model, ...], list[Model]]:
    """The models of a split, one per argument (built-in names or paths, see ``load``, or Model
    objects, taken as one's own), in order, and those among them that were conformed (as they
    were before), re-gridded with nmfsep.model.conform so that the set shares one STFT grid:

    - built-ins beside models of one's own at the built-ins' rate or lower: the built-ins go to
      the first own model's grid;
    - one's own models (all on one grid) at a higher rate than the built-ins: they go down to
      the built-ins' grid. A built-in models nothing above its band; used at the higher rate it
      would leave that band to one's own models alone (a known voice beside the built-in noise,
      both at 44.1 kHz: the voice took the hiss above 11 kHz). At the lower rate the stems get
      the highs as at any model rate below the input's (nmfsep.pipeline.back_to_rate).

    Raises NmfsepError where built-ins are given beside own models of different rates (without
    built-ins, own models on different grids are left as they are: an error of the split,
    Settings.stft_params)."""
    builtin = [not isinstance(a, Model) and builtin_path(a) is not None for a in arguments]
    models = [a if isinstance(a, Model) else load(a) for a in arguments]
    own = [m for m, b in zip(models, builtin) if not b]
    if not own:
        return tuple(models), []
    lowest = min((m for m, b in zip(models, builtin) if b), key=lambda m: m.sample_rate, default=None)
    if lowest is not None:   # else the split names them (Settings.stft_params)
        check_one_rate(own)
    if lowest is not None and len({_grid(m) for m in own}) == 1 and lowest.sample_rate < own[0].sample_rate:
        grid, movable = _grid(lowest), [True] * len(models)
    else:
        grid, movable = _grid(own[0]), builtin
    conformed = [m for m, move in zip(models, movable) if move and _grid(m) != grid]
    return tuple(conform(m, *grid) if move else m for m, move in zip(models, movable)), conformed


def closest(recordings: "Sequence[np.ndarray] | np.ndarray", sample_rate: int,
            candidates: Sequence[str] = CLASSES) -> str:
    """The built-in (of candidates, names) whose bases, held fixed, fit these recordings best:
    the lowest KL divergence between their magnitude spectrogram and W H after
    CLOSEST_ITERATIONS multiplicative updates of H (nmfsep.nmf.factorize), on at most
    CLOSEST_FRAMES frames spread evenly over the recordings laid end to end (over CLOSEST_SECONDS
    of them: 8 evenly spaced pieces of each, in proportion to its length).

    recordings: an array or a list of arrays (n_samples,) or (n_samples, n_channels) at
    sample_rate (Hz), resampled (soxr) to the built-ins' rate; above what recordings resampled
    up can hold (nmfsep.pipeline.input_band) no bin is fitted. A supervised fit's likeness, not
    a trained classifier: on the corpus' validation clips (benchmarks/make_corpus.py --clips)
    ``speech`` was closest for all 28 voices and none of the 90 instruments, but also for 5 of 7
    steady noises, 2 of 6 drum kits and 1 of 13 music tracks (test clips: every voice, and 5 of
    90 instruments, GM 76 and 115). Below 16 kHz speech is often taken for an instrument: a
    voice at 8 kHz (benchmarks/data/voices/train_female.wav) was closest to ``strings`` (KL 7976
    against 8221); new-user checks found 7 of 17 voices at 8 kHz, one at 11.025 kHz and one of 4
    flite voices at 16 kHz so.

    Raises ModelError for a candidate that is not a built-in or candidates on different STFT
    grids; NmfsepError for no recordings, silent recordings or a spectrum that overflows
    float32; BadValueError for a sample_rate that nmfsep.inputs.check_sample_rate refuses.
    """
    from ..errors import NmfsepError
    from ..inputs import as_2d, check_sample_rate
    from ..nmf import factorize
    from ..pipeline import input_band

    if isinstance(recordings, np.ndarray):
        recordings = [recordings]
    if recordings is None or not len(recordings):
        raise NmfsepError("closest needs at least one recording")
    sample_rate = check_sample_rate(sample_rate)
    missing = [c for c in candidates if c not in names()]
    if missing or not candidates:
        raise ModelError(f"no built-in model {', '.join(missing) or '(none asked)'} ({_listed(names())})")
    models = [load(c) for c in candidates]
    if len({_grid(m) for m in models}) > 1:
        raise ModelError(f"the built-ins {', '.join(candidates)} are not on one STFT grid")
    rate = models[0].sample_rate
    params = spectrum.StftParams(models[0].n_fft, models[0].hop_length)
    recordings = [as_2d(r, name="recording", fix="") for r in recordings]
    share = CLOSEST_SECONDS * sample_rate / sum(len(r) for r in recordings)
    magnitude = np.concatenate([spectrum.analyse(_at_rate(_excerpt(r, int(share * len(r))), sample_rate, rate),
                                                 params)[1] for r in recordings], axis=1)
    V = magnitude[: input_band(sample_rate, rate, params), spectrum.spread_frames(magnitude.shape[1], CLOSEST_FRAMES)]
    return candidates[_best_fit(V, models)]


def sounds_like_speech(model: Model) -> bool:
    """Whether ``speech`` is the class built-in (CLASSES, those installed) that fits this model's
    training frames best, by ``closest``'s measure on at most CLOSEST_FRAMES of them (evenly
    spaced), with the built-ins put on the model's grid (nmfsep.model.conform) and only the bins
    that both hold (below the lower Nyquist frequency) fitted. False for a model with no frames
    (format 1), or where no ``speech`` built-in is installed. Raises ModelError for built-ins that
    cannot be read.
    What nmfsep.supervised.steady_stems asks of one's own models: a voice, or (for example) a
    held cello note, which must keep its steady floor."""
    present = [c for c in CLASSES if c in names()]
    if model.frames is None or not model.frames.size or "speech" not in present:
        return False
    builtins = [load(c) for c in present]
    top = min(model.sample_rate, builtins[0].sample_rate) / 2  # Hz: what both hold
    band = min(len(model.frames), int(top * model.n_fft / model.sample_rate) + 1)
    V = model.frames[:band, spectrum.spread_frames(model.frames.shape[1], CLOSEST_FRAMES)].astype(np.float32)
    level = float(V.mean(dtype=np.float64))
    if not (np.isfinite(level) and level > 0):
        return False
    built = [conform(m, model.sample_rate, model.n_fft, model.hop_length) for m in builtins]
    return present[_best_fit(V, built)] == "speech"


def _best_fit(V: np.ndarray, models: list[Model]) -> int:
    """The index of the model whose bases (their first len(V) bins), held fixed, fit V (n_bins,
    n_frames) best: the lowest KL divergence after CLOSEST_ITERATIONS multiplicative updates."""
    from ..nmf import factorize

    scale = spectrum.mean_level(V)
    losses = [factorize(V / scale, m.n_bases, W=m.bases[: len(V)], update_W=False, max_iter=CLOSEST_ITERATIONS,
                        tol=0).losses[-1] for m in models]
    return int(np.argmin(losses))


def _excerpt(samples: np.ndarray, keep: int, pieces: int = 8) -> np.ndarray:
    """samples (n_samples, n_channels) where at most ``keep`` long, else ``pieces`` evenly spaced
    pieces of them, ``keep`` samples in all."""
    if len(samples) <= keep:
        return samples
    size = max(1, keep // pieces)
    starts = np.linspace(0, len(samples) - size, pieces).astype(np.intp)
    return np.concatenate([samples[start:start + size] for start in starts])


def _at_rate(samples: np.ndarray, sample_rate: int, rate: int) -> np.ndarray:
    from .. import audio

    return samples if sample_rate == rate else audio.resample(samples, sample_rate, rate)


def _grid(m: Model) -> tuple[int, int, int]:
    return m.sample_rate, m.n_fft, m.hop_length


def card(name: str) -> str:
    """The text of a built-in's model card (NAME.md). Raises ModelError for a name that is not a
    built-in, or a card that cannot be read."""
    builtins = names()
    if name not in builtins:
        raise ModelError(f"{name}: no built-in model of that name ({_listed(builtins, name)})")
    path = folder() / f"{name}.md"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the model card ({getattr(exc, 'strerror', None) or exc})") from None


def describe_file(path: "str | os.PathLike") -> dict:
    """A model file of one's own (``nmfsep learn``) in one record, as ``describe`` gives a
    built-in's, its summary made from the file: name, summary, bases, sample_rate (Hz), n_fft and
    hop_length (samples), path, beta, pitch_shifts, training_frames (0 where it keeps none).
    Raises ModelError as ``load`` does (a missing NAME.npz of a built-in's name says so)."""
    m = load(path) if builtin_path(path) is None else load_file(os.fspath(path))
    frames = 0 if m.frames is None else int(m.frames.shape[1])
    summary = (f"a model file of your own: beta {m.beta:g}, pitch shifts {m.pitch_shifts}, "
               f"{frames} training frames kept")
    return {"name": m.name, "summary": summary, "bases": m.n_bases, "sample_rate": m.sample_rate,
            "n_fft": m.n_fft, "hop_length": m.hop_length, "path": os.fspath(path), "beta": m.beta,
            "pitch_shifts": m.pitch_shifts, "training_frames": frames}


def describe(name: str) -> dict:
    """A built-in in one record: name, summary (its card's first line, less the heading's #),
    bases (how many), sample_rate (Hz), n_fft and hop_length (samples), path (its file)."""
    m = load(name)
    lines = [line.strip().lstrip("#").strip() for line in card(name).splitlines()]
    return {"name": name, "summary": next((line for line in lines if line), ""), "bases": m.n_bases,
            "sample_rate": m.sample_rate, "n_fft": m.n_fft, "hop_length": m.hop_length,
            "path": str(folder() / f"{name}.npz")}


# --- shipped pair trainings -----------------------------------------------------------------

def pair_path(set_names: Sequence[str], where: Path | None = None) -> Path:
    """The file of the shipped training of these built-ins (any order): pairs/A+B.npz in
    ``where`` (default ``folder()``), the names sorted."""
    return (folder() if where is None else where) / "pairs" / ("+".join(sorted(set_names)) + ".npz")


def training_digest(models: Sequence[Model]) -> str:
    """What a shipped training was made from: a digest (nmfsep.cache.digest) of each model's
    bases, training frames and pitch shifts, in this order. Models as nmfsep.model.load reads
    them (bases float32, frames float16)."""
    return cache.digest(*[part for m in models for part in (np.ascontiguousarray(m.bases, np.float32), m.frames,
                                                           m.pitch_shifts)])


def write_training(path: "str | os.PathLike", models: Sequence[Model], trained: discriminative.Trained) -> None:
    """Write the discriminative training of models (in their order; see
    nmfsep.supervised.discriminative_training) as a shipped training: ``layers`` (L, n_bins,
    k_total) and ``mask_bases`` (n_bins, k_total), float16 (clipped to its range; the layers
    at least its smallest positive value, as the training keeps them positive), ``models`` (the
    names, joined by '+', in the columns' order) and ``digest`` (``training_digest``). Use
    ``pair_path`` for the name, and the models as read from their files."""
    shape = (models[0].bases.shape[0], sum(m.n_bases for m in models))
    layers = np.array(trained.layers, np.float32).reshape((len(trained.layers),) + shape)
    half = np.finfo(np.float16)
    write_arrays(path, {"layers": np.clip(layers, half.smallest_subnormal, half.max).astype(np.float16),
                        "mask_bases": np.clip(trained.mask_bases, 0, half.max).astype(np.float16),
                        "models": np.asarray("+".join(m.name for m in models)),
                        "digest": np.asarray(training_digest(models))}, compress=True)


def read_training(path: "str | os.PathLike", models: Sequence[Model]) -> discriminative.Trained:
    """The shipped training in the file at path, for these models in this order (its columns
    permuted to it), float32. Read without pickle, each field's shape checked before its data
    is read (nmfsep.model.read_arrays). Raises ModelError naming the file where it is not one,
    holds values that are not finite and non-negative or a layer with a column of zeros, or was
    made for other models (other names, or other contents: ``training_digest``)."""
    path = os.fspath(path)
    n_bins, k = models[0].bases.shape[0], sum(m.n_bases for m in models)
    spec = {"layers": ("f", (None, n_bins, k)), "mask_bases": ("f", (n_bins, k)), "models": ("U", ()),
            "digest": ("U", ())}
    fields = read_arrays(path, spec, max_elements=MAX_LAYERS * n_bins * k, what="an nmfsep training")
    order = str(fields["models"]).split("+")
    by_name = {m.name: m for m in models}
    if sorted(order) != sorted(by_name):
        raise ModelError(f"{path}: made for the models {'+'.join(order)}, not {'+'.join(by_name)}")
    stored = [by_name[n] for n in order]
    if str(fields["digest"]) != training_digest(stored):
        raise ModelError(f"{path}: made for other versions of the models {'+'.join(order)}")
    layers, mask_bases = (np.asarray(fields[f], np.float32) for f in ("layers", "mask_bases"))
    for bases in (layers, mask_bases):
        if not np.isfinite(bases).all() or (bases < 0).any():
            raise ModelError(f"{path}: the trained bases must be finite and non-negative")
    if (layers.sum(axis=1) <= 0).any():
        raise ModelError(f"{path}: a layer has a column of zeros")
    starts = dict(zip(order, np.cumsum([0] + [m.n_bases for m in stored])))
    columns = np.concatenate([np.arange(starts[m.name], starts[m.name] + m.n_bases) for m in models])
    return discriminative.Trained([np.ascontiguousarray(W[:, columns]) for W in layers],
                                  np.ascontiguousarray(mask_bases[:, columns]))


def shipped_training(models: Sequence[Model]) -> discriminative.Trained | None:
    """The shipped training of exactly this set of built-ins (any order), or None: not two
    models or more, not all built-in names, no such file, or a file that ``read_training``
    refuses (made for other versions of the models, or damaged): the set is then trained as
    any other."""
    if len(models) < 2 or not {m.name for m in models} <= set(names()):
        return None
    path = pair_path([m.name for m in models])
    if not path.is_file():
        return None
    try:
        return read_training(path, models)
    except ModelError:
        return None
