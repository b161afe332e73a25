"""Separation quality on benchmarks/data: SI-SDR improvement (dB) per case and method.

    .venv/bin/python benchmarks/bench_quality.py            # the main table
    .venv/bin/python benchmarks/bench_quality.py --levers   # plus one row per quality lever
    .venv/bin/python benchmarks/bench_quality.py --blind    # plus blind separation (best permutation):
        nmfsep's default and each --grouping, one factorization of C components (the default averages
        16, 24 and 32), librosa.decompose with k = N, nussl-style MFCC k-means, oracle grouping

Methods (same STFT for all: nmfsep's default for the data's rate):
  nmfsep        supervised: `nmfsep learn` on each source's training file, `split --model ...`
                (defaults: 128 bases learned with +-1 semitone shifts, then discriminative training
                of unfolded layers and mask bases on synthetic mixtures of the training frames)
  sklearn       the scikit-learn recipe: 20 KL bases per source (sklearn NMF, solver mu), then
                activations by non_negative_factorization with the bases fixed, soft masks (p=1)
  oracle        ideal ratio mask from the true sources, the better of |S|^1 and |S|^2 ratios:
                the ceiling for any mask method
Stems of the supervised methods are scored in their own order (no permutation search).

Corpus (blind separation of benchmarks/corpus, made by benchmarks/make_corpus.py):

    .venv/bin/python benchmarks/bench_quality.py --corpus [DIR] --split val   # choose defaults here
    .venv/bin/python benchmarks/bench_quality.py --corpus [DIR]               # report: --split test
        [--classes a,b] [--methods default,timbre,...] [--limit N] [-j N] [--json FILE]
        [--builtin] [--supervised] [--clips PATH]

Protocol: every default (method, component counts, weights, thresholds, exponents) is chosen on
--split val; the numbers reported are those of --split test, measured once. Rows (--methods keys),
each with N = the mixture's number of sources:
  default          nmfsep's default: Settings(n_sources=N) through split_sources (`nmfsep split -k N`)
  none, timbre, coactivation, pitch, flatness    the same with --grouping METHOD
  librosa          librosa.decompose.decompose with k = N, soft masks
  hpss             librosa.decompose.hpss soft masks (2-source classes only; blank for 3 sources)
  nussl            nussl-style NMF-MFCC: 24 KL components, MFCCs of their bases, sklearn KMeans
  oracle-grouping  the same 24 components, each to the source whose true power it overlaps most
  oracle-mask      ideal ratio mask from the true sources, the better of |S| and |S|^2 ratios
Rows with models, in the same run (not in the default --methods; they need the clips index of
`make clips`, benchmarks/make_corpus.py --clips: --clips PATH, default DIR/clips/clips.json):
  builtins         (--builtin) `nmfsep split --model NAME...` with the built-ins that name the
                   sources, as a user who knows what is in the file would choose them: speech ->
                   speech (two talkers of different gender: speech_low / speech_high by the index's
                   gender), music, noise, drums -> their namesakes, an instrument -> its family's
                   (piano+chromatic -> piano, guitar, bass, strings+ensemble -> strings,
                   brass+reed+pipe -> winds, organ+synth lead/pad/effects -> synth, other
                   families (ethnic, percussive) -> music); blank where two sources
                   would get the same built-in
  register         (--builtin) the same, with each voice named by its register, speech_low (M) or
                   speech_high (F), as a user who knows it would; blank where no voice is renamed
  supervised       (--supervised) `nmfsep learn` (its defaults) on the clips of each source's
                   material (other audio of the same speaker, program or track; never the mixture's
                   own), learned once per process, then `split --model ...`
  sklearn-recipe   (--supervised) the scikit-learn recipe (20 KL bases per source, see sklearn_recipe)
                   from the same clips
  voice-noise      (--supervised) a known voice in noise: the voice's model from its clips beside
                   the built-in noise (`--model me.npz --model noise`; speech_noise only)
  voice-music      (--supervised) the same over music, beside the built-in music (speech_music only)
  voice-free       (--supervised) the voice's model and --free 8, the noise the residual (speech_noise)
  The model rows give their stems in the sources' order and are scored in it (no permutation),
  and are blank where two sources share a material. After the table, the issue's targets: on
  speech_noise, speech_music and drums_pitched the built-ins >= +6 dB and >= the blind default
  + 2 dB; supervised >= the recipe + 2 dB on every class; seconds per mixture of the built-ins
  and of the blind default on the same mixtures.
The anchors share nmfsep's default STFT for the rate, on the magnitude averaged over channels
(nmfsep.pipeline.analyse), and apply their masks to every channel. Score: SI-SDR improvement,
mean over sources of SI-SDR(ref, stem) - SI-SDR(ref, mix), the stems matched to the references by
the best permutation; a stereo source is scored as one vector of all its channels
(nmfsep.evaluate.si_sdr); a silent or NaN stem scores FLOOR_DB (-50 dB), not -inf. Columns: mean
per class, mean over all mixtures, share of mixtures whose mean is below -1 dB, seconds per mixture
(after a warm-up, so imports are not counted), failed mixtures (the error goes to stderr and the
JSON; means are over the others). "best library recipe": per class, the best of librosa, hpss
and nussl, the bar nmfsep's default should clear in every class.
"""

import argparse
import functools
import json
import os
import sys
import time
import warnings

import numpy as np
import soundfile as sf

from nmfsep import masks, spectrum
from nmfsep.evaluate import si_sdr, si_sdr_improvement
from nmfsep.pipeline import Settings, split_sources
from nmfsep.spectrum import analyse
from nmfsep.supervised import DEFAULT_BASES, DEFAULT_PITCH_SHIFTS, UNFOLDED_LAYERS, learn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the other benchmark scripts, run or loaded by path
from build_models import GROUPS, THREADS  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def load_cases():
    with open(os.path.join(DATA, "cases.json")) as f:
        names = json.load(f)
    cases = {}
    for case, sources in names.items():
        read = lambda name: sf.read(os.path.join(DATA, case, name), dtype="float32")  # noqa: E731
        mix, rate = read("mix.wav")
        cases[case] = {
            "rate": rate, "mix": mix, "sources": sources,
            "refs": np.stack([read(f"ref_{s}.wav")[0] for s in sources]),
            "train": [read(f"train_{s}.wav")[0] for s in sources],
        }
    return cases


def improvement(case, stems):
    """Mean over sources of SI-SDR(ref, stem) - SI-SDR(ref, mix), stems in reference order."""
    return float(np.mean([si_sdr(r, e) - si_sdr(r, case["mix"]) for r, e in zip(case["refs"], stems)]))


def nmfsep_supervised(case, n_bases=DEFAULT_BASES, beta=1.0, power=2.0, sparsity=0.0, smoothness=0.0,
                      max_iter=200, tol=1e-4, learn_beta=None, pitch_shifts=DEFAULT_PITCH_SHIFTS,
                      discriminative=True, unfolded_layers=UNFOLDED_LAYERS):
    models = [learn(train, case["rate"], n_bases, name=name, beta=beta if learn_beta is None else learn_beta,
                    max_iter=max_iter, tol=tol, pitch_shifts=pitch_shifts)
              for train, name in zip(case["train"], case["sources"])]
    settings = Settings(beta=beta, power=power, max_iter=max_iter, tol=tol, models=tuple(models),
                        sparsity=sparsity, smoothness=smoothness, discriminative=discriminative,
                        unfolded_layers=unfolded_layers)
    return split_sources(case["mix"][:, None], case["rate"], settings).stems[..., 0]


def sklearn_bases(train, rate, n_bases=20):
    """The recipe's bases of one source, (n_bases, n_bins): sklearn NMF (KL, mu) of the magnitude
    of its training recording(s) (one array or a list, (n_samples[, n_channels]), at rate, laid
    end to end), nmfsep's default STFT for rate."""
    from sklearn.decomposition import NMF

    params = spectrum.default_params(rate)
    recordings = [train] if isinstance(train, np.ndarray) else train
    V = np.concatenate([analyse(channels(r), params)[1] for r in recordings], axis=1)
    nmf = NMF(n_bases, beta_loss="kullback-leibler", solver="mu", max_iter=200, init="nndsvda", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at max_iter
        nmf.fit(V.T)
    return nmf.components_


def sklearn_recipe(case, n_bases=20, bases=None):
    """The scikit-learn recipe on case["mix"] (mono or (n_samples, n_channels)): bases given
    (one (n_bases, n_bins) per source), else sklearn_bases of each of case["train"]. Stems
    shaped like the mix, one per source, in the sources' order."""
    from sklearn.decomposition import non_negative_factorization

    params = spectrum.default_params(case["rate"])
    if bases is None:
        bases = [sklearn_bases(train, case["rate"], n_bases) for train in case["train"]]
    X, V = analyse(channels(case["mix"]), params)
    H_all = np.concatenate(bases)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at max_iter
        act, _, _ = non_negative_factorization(V.T, H=H_all, n_components=len(H_all), update_H=False,
                                               beta_loss="kullback-leibler", solver="mu", max_iter=200,
                                               init="custom", W=np.full((V.shape[1], len(H_all)), 0.1, np.float32))
    starts = np.cumsum([0] + [len(b) for b in bases])
    models = np.stack([(act[:, start:start + len(b)] @ b).T for start, b in zip(starts, bases)])
    return masked_stems(case, X, params, masks.soft_masks(models, 1.0))


def channels(samples):
    """(n_samples, n_channels) of a mono (n_samples,) or multichannel (n_samples, n_channels) signal."""
    return samples[:, None] if samples.ndim == 1 else samples


def masked_stems(case, X, params, source_masks):
    """Each mask (n_bins, n_frames) applied to every channel of X: stems shaped like case["refs"]."""
    stems = np.stack([spectrum.istft(X * m, params, len(case["mix"])) for m in source_masks])
    return stems[:, 0] if case["mix"].ndim == 1 else stems.transpose(0, 2, 1)


def nmfsep_blind(case, grouping="auto", n_components=None, smoothness=None):
    """`nmfsep split -k N [--grouping G]`: Settings(n_sources=N, ...) through split_sources."""
    settings = Settings(n_sources=len(case["refs"]), grouping=grouping, n_components=n_components,
                        smoothness=smoothness)
    stems = split_sources(channels(case["mix"]), case["rate"], settings).stems
    return stems[..., 0] if case["mix"].ndim == 1 else stems


def librosa_recipe(case):
    """librosa.decompose.decompose with k = number of sources, soft masks (librosa.util.softmask)."""
    import librosa

    params = spectrum.default_params(case["rate"])
    X, V = analyse(channels(case["mix"]), params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W, H = librosa.decompose.decompose(V, n_components=len(case["refs"]), sort=True, random_state=0)
    models = np.stack([np.outer(W[:, i], H[i]) for i in range(W.shape[1])])
    total = models.sum(axis=0)
    source_masks = [librosa.util.softmask(m, total - m, power=1) for m in models]
    return masked_stems(case, X, params, source_masks)


def hpss_recipe(case):
    """librosa.decompose.hpss soft masks (power 2): harmonic and percussive, two sources only."""
    import librosa

    params = spectrum.default_params(case["rate"])
    X, V = analyse(channels(case["mix"]), params)
    return masked_stems(case, X, params, librosa.decompose.hpss(V, mask=True))


def components(case, n_components=24):
    """The 24 KL components the grouping rows share: (X, W, H, params)."""
    from nmfsep.nmf import factorize

    params = spectrum.default_params(case["rate"])
    X, V = analyse(channels(case["mix"]), params)
    result = factorize(V / V.mean(), n_components, beta=1.0, max_iter=200, seed=0)
    return X, result.W, result.H, params


def grouped_stems(case, X, W, H, params, labels):
    groups = [np.flatnonzero(labels == s) for s in range(len(case["refs"]))]
    models = np.stack([W[:, g] @ H[g] for g in groups])
    source_masks = masks.soft_masks(models, 2.0)
    return masked_stems(case, X, params, source_masks)


def nussl_recipe(case):
    """nussl-style NMF-MFCC: 24 KL components, MFCCs of their bases clustered by sklearn KMeans."""
    import librosa
    from sklearn.cluster import KMeans

    X, W, H, params = components(case)
    log_mel = np.log(librosa.filters.mel(sr=case["rate"], n_fft=params.n_fft, n_mels=40) @ W + 1e-8)
    mfccs = librosa.feature.mfcc(S=log_mel, n_mfcc=13)[1:].T
    labels = KMeans(len(case["refs"]), n_init=10, random_state=0).fit_predict(mfccs)
    return grouped_stems(case, X, W, H, params, labels)


def oracle_grouping(case):
    """The same 24 components, each given to the source whose true power it overlaps most."""
    X, W, H, params = components(case)
    power = np.stack([analyse(channels(r), params)[1] ** 2 for r in case["refs"]])
    share = power / np.maximum(power.sum(axis=0), 1e-20)
    overlap = np.array([[np.sum(np.outer(W[:, c], H[c]) * s) for s in share] for c in range(W.shape[1])])
    labels = overlap.argmax(axis=1)
    if len(set(labels)) < len(case["refs"]):  # every source gets at least its best component
        for s in range(len(case["refs"])):
            if s not in labels:
                labels[np.argmax(overlap[:, s] / overlap.sum(axis=1))] = s
    return grouped_stems(case, X, W, H, params, labels)


def best_improvement(case, stems):
    """Blind stems come in centroid order: score them under the best permutation."""
    return float(si_sdr_improvement(case["refs"], stems, case["mix"]).mean())


def oracle(case, power):
    params = spectrum.default_params(case["rate"])
    X = analyse(channels(case["mix"]), params)[0]
    true = np.stack([analyse(channels(r), params)[1] for r in case["refs"]])
    return masked_stems(case, X, params, masks.soft_masks(true, power))


LEVERS = [  # (label, keyword arguments of nmfsep_supervised)
    ("default", {}),
    ("no discriminative training", {"discriminative": False}),
    ("no unfolded layers (discriminative mask bases only)", {"unfolded_layers": 0}),
    ("4 unfolded layers", {"unfolded_layers": 4}),
    ("8 unfolded layers", {"unfolded_layers": 8}),
    ("no pitch shifts (learn --pitch-shifts 0)", {"pitch_shifts": 0}),
    ("neither (the plain recipe, 32 bases)", {"discriminative": False, "pitch_shifts": 0, "n_bases": 32}),
    ("pitch shifts 2", {"pitch_shifts": 2}),
    ("32 bases", {"n_bases": 32}),
    ("64 bases", {"n_bases": 64}),
    ("beta 0.5", {"beta": 0.5}),
    ("mask power 1", {"power": 1.0}),
    ("sparsity 0.1", {"sparsity": 0.1}),
    ("smoothness 0.1", {"smoothness": 0.1}),
    ("tol 0 (all 200 iterations)", {"tol": 0.0}),
]


def table(rows, cases):
    width = max(len(label) for label, _ in rows) + 2
    head = "method".ljust(width) + "".join(c[:12].rjust(13) for c in cases) + "mean".rjust(8)
    print(head)
    print("-" * len(head))
    for label, values in rows:
        print(label.ljust(width) + "".join(f"{v:13.2f}" for v in values) + f"{np.mean(values):8.2f}")
    sys.stdout.flush()


# --- --corpus: blind separation of benchmarks/corpus (benchmarks/make_corpus.py) -------------------------

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
FLOOR_DB = -50.0  # SI-SDR of a silent (or not finite) estimate: the worst score, not -inf


def oracle_mask(case):
    """Ideal ratio mask from the true sources, the better of |S|^1 and |S|^2 ratios."""
    return max((oracle(case, p) for p in (1.0, 2.0)), key=lambda stems: improvements(case, stems).mean())


# --builtin: the built-in model that names each kind of source, as a user who knows what is in the file
# would choose it; an instrument gets the built-in learned from its family (make_corpus.family), by
# build_models.GROUPS, and a family without one of its own (ethnic, percussive) gets "music".
BUILTIN_OF_KIND = {"speech": "speech", "music": "music", "noise": "noise", "drums": "drums"}
BUILTIN_OF_GENDER = {"M": "speech_low", "F": "speech_high"}
# Rows whose stems come in the sources' order (models given in it): scored in that order, no permutation.
ORDERED_ROWS = ("builtins", "register", "supervised", "sklearn-recipe", "voice-noise", "voice-music", "voice-free")
EXTRA_ROWS = {"--builtin": ("builtins", "register"),  # not by default
              "--supervised": ("supervised", "sklearn-recipe", "voice-noise", "voice-music", "voice-free")}


@functools.lru_cache(maxsize=None)
def clips_index(path):
    """The materials of a clips index (make_corpus.py --clips: clips.json), by id, each with
    "paths": its clip files (absolute). Read once per process."""
    with open(path) as f:
        index = json.load(f)
    root = os.path.dirname(os.path.abspath(path))
    return {m["id"]: {**m, "paths": [os.path.join(root, c["file"]) for c in m["clips"]]} for m in index["materials"]}


def case_materials(case, need_clips=True):
    """The clips index's record of each source's material, in the sources' order (KeyError for a
    material the index lacks), or None where two sources share a material or (need_clips) one
    has no clip: the rows that learn from the clips need one, the built-ins need only the record
    (kind, gender, family)."""
    if len(set(case["materials"])) < len(case["materials"]):
        return None
    index = clips_index(case["clips"])
    materials = [index[m] for m in case["materials"]]
    return None if need_clips and any(not m["clips"] for m in materials) else materials  # a track too short for a clip


def builtin_names(materials, registers=False):
    """The built-in of each material record (kind; gender of speech, family of instruments) in
    order, or None where two would get the same. Two or more talkers of different genders get
    the speech_low (M) / speech_high (F) built-ins, other speech gets speech; with registers,
    every voice gets its register's (a user who knows it: the "register" row)."""
    genders = {m.get("gender") for m in materials if m["kind"] == "speech"}
    by_gender = registers or (len([m for m in materials if m["kind"] == "speech"]) > 1 and len(genders) > 1)
    names = [GROUPS.get(m.get("family"), "music") if m["kind"] == "instrument"
             else BUILTIN_OF_GENDER[m["gender"]] if m["kind"] == "speech" and by_gender
             else BUILTIN_OF_KIND[m["kind"]] for m in materials]
    return names if len(set(names)) == len(names) else None


def model_split(case, models, n_free=0):
    """`nmfsep split --model ... [--free N]`: the models (in the sources' order) through
    train_models (a shipped training for built-ins, else made) and split_sources; stems shaped
    like the mix (the residual last where n_free)."""
    from nmfsep.supervised import train_models

    settings = train_models(Settings(n_sources=len(models) + (n_free > 0), models=tuple(models),
                                     n_free=n_free).check())
    stems = split_sources(channels(case["mix"]), case["rate"], settings).stems
    return stems[..., 0] if case["mix"].ndim == 1 else stems


def nmfsep_builtins(case, registers=False):
    """`nmfsep split --model NAME...` with the built-ins that name the sources (builtin_names, of
    registers): nmfsep.models.load_set as the CLI calls it. None where the row does not apply."""
    from nmfsep.models import load_set

    materials = case_materials(case, need_clips=False)
    names = None if materials is None else builtin_names(materials, registers)
    case["models"] = names
    if names is None or (registers and names == builtin_names(materials)):
        return None  # the row does not apply, or (registers) no voice is renamed: the builtins row's split
    return model_split(case, load_set(names)[0])


def known_voice(case, other="noise"):
    """The material records of a mixture of one voice and one source of kind other, else None."""
    materials = case_materials(case)
    if materials is None or sorted(m["kind"] for m in materials) != sorted(["speech", other]):
        return None
    return materials


def voice_and_builtin(case, other="noise"):
    """A known voice in unknown noise (or over unknown music), the README's recipe: the voice's
    model learned from its clips (`nmfsep learn`) beside the built-in noise or music (`--model
    me.npz --model noise`), blended with the blind split as split does by default."""
    from nmfsep.models import load

    materials = known_voice(case, other)
    if materials is None:
        return None
    return model_split(case, [material_model(case["clips"], m["id"]) if m["kind"] == "speech" else load(other)
                              for m in materials])


def voice_and_free(case):
    """The recipe it replaced: the voice's model and 8 free bases (`--model me.npz --free 8`);
    the noise is the residual stem."""
    materials = known_voice(case)
    if materials is None:
        return None
    voice = material_model(case["clips"], next(m["id"] for m in materials if m["kind"] == "speech"))
    stems = model_split(case, [voice], n_free=8)
    return stems if materials[0]["kind"] == "speech" else stems[::-1]


def read_clips(material):
    """The clips of a material record: a list of float32 arrays and their (common) rate."""
    sounds = [sf.read(p, dtype="float32") for p in material["paths"]]
    if len({rate for _, rate in sounds}) > 1:
        raise ValueError(f"{material['id']}: clips at several rates")
    return [samples for samples, _ in sounds], sounds[0][1]


@functools.lru_cache(maxsize=None)
def material_model(clips, material_id):
    """`nmfsep learn CLIPS... --name ID` (its defaults) on the material's clips: once per process."""
    recordings, rate = read_clips(clips_index(clips)[material_id])
    return learn(recordings, rate, name=material_id)


@functools.lru_cache(maxsize=None)
def material_sklearn_bases(clips, material_id, rate):
    """sklearn_bases of the material's clips, resampled to rate: once per process and rate."""
    from nmfsep.audio import resample

    recordings, clip_rate = read_clips(clips_index(clips)[material_id])
    return sklearn_bases([resample(channels(r), clip_rate, rate) for r in recordings], rate)


def nmfsep_supervised_clips(case):
    """Each source's model learned from its material's clips (material_model), then the split."""
    materials = case_materials(case)
    return None if materials is None else model_split(case, [material_model(case["clips"], m["id"])
                                                             for m in materials])


def sklearn_recipe_clips(case):
    """The scikit-learn recipe (20 KL bases per source) with each source's bases from its clips."""
    materials = case_materials(case)
    return None if materials is None else sklearn_recipe(
        case, bases=[material_sklearn_bases(case["clips"], m["id"], case["rate"]) for m in materials])


def corpus_rows():
    """{key of --methods: (label, function(case) -> stems or None where the row does not apply)}."""
    from functools import partial

    from nmfsep.grouping import METHODS

    rows = {"default": ("nmfsep default", nmfsep_blind)}
    rows.update({m: (f"nmfsep --grouping {m}", partial(nmfsep_blind, grouping=m)) for m in METHODS if m != "auto"})
    rows.update({
        "librosa": ("librosa decompose k=N", librosa_recipe),
        "hpss": ("librosa HPSS (2 sources)", lambda case: hpss_recipe(case) if len(case["refs"]) == 2 else None),
        "nussl": ("nussl MFCC k-means, 24", nussl_recipe),
        "oracle-grouping": ("oracle grouping, 24", oracle_grouping),
        "oracle-mask": ("oracle ratio mask", oracle_mask),
        "builtins": ("nmfsep built-ins", nmfsep_builtins),
        "register": ("built-ins, voices by register", partial(nmfsep_builtins, registers=True)),
        "supervised": ("nmfsep supervised", nmfsep_supervised_clips),
        "sklearn-recipe": ("scikit-learn recipe, 20 KL bases", sklearn_recipe_clips),
        "voice-noise": ("own voice + built-in noise", voice_and_builtin),
        "voice-music": ("own voice + built-in music", partial(voice_and_builtin, other="music")),
        "voice-free": ("own voice + --free 8", voice_and_free),
    })
    return rows


LIBRARY_RECIPES = ("librosa", "hpss", "nussl")  # the "best library recipe" of a class: the best of these


def safe_si_sdr(reference, estimate):
    """nmfsep.evaluate.si_sdr (all channels as one vector), at least FLOOR_DB: a silent or NaN
    estimate scores FLOOR_DB. A silent reference has no SI-SDR: ValueError."""
    if not np.any(reference):
        raise ValueError("a reference source is silent")
    with np.errstate(divide="ignore", invalid="ignore"):
        value = si_sdr(reference, estimate)
    return value if value > FLOOR_DB else FLOOR_DB


def improvements(case, stems, ordered=False):
    """SI-SDR improvement (dB) of each reference: SI-SDR(ref, stem) - SI-SDR(ref, mix), the stems
    matched to the references by the permutation of best mean (blind stems have no order), or
    in their own order where ordered (stems of models given in the sources' order)."""
    import itertools

    refs, n = case["refs"], len(case["refs"])
    scores = np.array([[safe_si_sdr(r, e) for e in stems] for r in refs])
    orders = [tuple(range(n))] if ordered else itertools.permutations(range(len(stems)), n)
    best = max(orders, key=lambda p: scores[np.arange(n), list(p)].sum())
    return scores[np.arange(n), list(best)] - np.array([safe_si_sdr(r, case["mix"]) for r in refs])


def load_mixture(corpus, entry, clips=None):
    """A manifest entry's mix (n_samples[, n_channels]) and refs (n_sources, n_samples[, n_channels]),
    its sources' materials (ids) and clips (the clips index's path, for the rows that learn)."""
    def read(name):
        samples, rate = sf.read(os.path.join(corpus, entry["dir"], name), dtype="float32")
        return samples, rate

    mix, rate = read("mix.wav")
    refs = np.stack([read(source["file"])[0] for source in entry["sources"]])
    if refs.shape[1:] != mix.shape:
        raise ValueError(f"sources {refs.shape[1:]} and mix {mix.shape} differ in shape")
    return {"id": entry["id"], "class": entry["class"], "rate": rate, "mix": mix, "refs": refs,
            "materials": [source["material"] for source in entry["sources"]], "clips": clips}


def measure_mixture(corpus, entry, keys, clips=None):
    """One record per row of keys (rows that do not apply are left out): id, class, method,
    si_sdri (per source, dB), mean, seconds; or error instead of the scores. clips: the clips
    index (make_corpus.py --clips) of the rows that learn from other clips of the materials."""
    rows = corpus_rows()
    records = []
    try:
        case = load_mixture(corpus, entry, clips)
    except Exception as error:  # noqa: BLE001 (one mixture failing must not end the run)
        return [{"id": entry["id"], "class": entry["class"], "method": k, "error": f"{type(error).__name__}: {error}"}
                for k in keys]
    for key in keys:
        record = {"id": entry["id"], "class": entry["class"], "method": key}
        started = time.perf_counter()
        try:
            stems = rows[key][1](case)
            if stems is None:
                continue
            values = improvements(case, stems, ordered=key in ORDERED_ROWS)
            record.update(si_sdri=[round(float(v), 3) for v in values], mean=round(float(values.mean()), 3))
            if key in ("builtins", "register"):
                record["models"] = case["models"]
        except Exception as error:  # noqa: BLE001
            record["error"] = f"{type(error).__name__}: {error}"
        record["seconds"] = round(time.perf_counter() - started, 3)
        records.append(record)
    return records


def warm_up(keys):
    """Run the rows once on 0.5 s of noise, so that the seconds of the first mixture do not count
    the imports (librosa, sklearn: seconds) and first-call compilations."""
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, 8000)).astype(np.float32)
    case = {"id": "warm-up", "class": "", "rate": 16000, "mix": refs.sum(axis=0), "refs": refs}
    rows = corpus_rows()
    for key in keys:
        try:
            rows[key][1](case)
        except Exception:  # noqa: BLE001 (measure_mixture records the row's error on each mixture)
            pass


def start_worker(keys):
    """Worker start-up with -j > 1: one BLAS/OpenMP thread per process, then warm_up."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    warm_up(keys)


def measure_corpus(corpus, entries, keys, jobs, clips=None):
    """All records of entries, in manifest order; errors are printed to stderr as they come."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    def report(done, entry, records):
        for r in records:
            if "error" in r:
                print(f"error: {r['id']} {r['method']}: {r['error']}", file=sys.stderr)
        print(f"[{done}/{len(entries)}] {entry['id']}", file=sys.stderr, flush=True)

    if jobs <= 1:
        warm_up(keys)
        results = []
        for done, entry in enumerate(entries, 1):
            results.append(measure_mixture(corpus, entry, keys, clips))
            report(done, entry, results[-1])
        return [r for records in results for r in records]
    for name in THREADS:  # read by the workers' BLAS when they import numpy (spawned, not forked)
        os.environ[name] = "1"
    import multiprocessing

    results = {}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=start_worker, initargs=(keys,)) as pool:
        futures = {pool.submit(measure_mixture, corpus, entry, keys, clips): i for i, entry in enumerate(entries)}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            results[i] = future.result()
            report(done, entries[i], results[i])
    return [r for i in range(len(entries)) for r in results[i]]


def corpus_table(records, keys, classes):
    """Per-class means, overall mean, share below -1 dB, mean seconds per mixture, failures."""
    labels = {k: label for k, (label, _) in corpus_rows().items()}
    width = max(len(labels[k]) for k in keys) + 2
    head = ("method".ljust(width) + "".join(c[:13].rjust(14) for c in classes)
            + "mean".rjust(8) + "< -1 dB".rjust(9) + "s/mix".rjust(8) + "failed".rjust(8))
    print(head)
    print("-" * len(head))
    class_means = {}
    for key in keys:
        rows = [r for r in records if r["method"] == key]
        scored = [r for r in rows if "error" not in r]
        if not rows:
            continue
        means = {c: [r["mean"] for r in scored if r["class"] == c] for c in classes}
        class_means[key] = {c: float(np.mean(v)) for c, v in means.items() if v}
        cells = "".join(f"{class_means[key][c]:14.2f}" if c in class_means[key] else " " * 14 for c in classes)
        values = np.array([r["mean"] for r in scored])
        overall = f"{values.mean():8.2f}{100 * np.mean(values < -1):8.0f}%" if len(values) else " " * 17
        timed = [r["seconds"] for r in rows if "seconds" in r]  # not the mixtures that could not be read
        seconds = f"{np.mean(timed):8.1f}" if timed else " " * 8
        print(labels[key].ljust(width) + cells + overall + seconds + f"{len(rows) - len(scored):8d}")
    library = [k for k in LIBRARY_RECIPES if k in class_means]
    if library:
        best = {c: max(class_means[k][c] for k in library if c in class_means[k]) for c in classes
                if any(c in class_means[k] for k in library)}
        print("-" * len(head))
        print(("best library recipe".ljust(width) + "".join(f"{best[c]:14.2f}" if c in best else " " * 14
                                                            for c in classes)).rstrip())
        if "default" in class_means:
            ours = class_means["default"]
            behind = [c for c in best if c in ours and ours[c] < best[c]]
            print(f"\nnmfsep default >= the best library recipe in {len(best) - len(behind)} of {len(best)} classes"
                  + (f" (behind: {', '.join(behind)})" if behind else "") + " (target: all)")
    sys.stdout.flush()


TARGET_CLASSES = ("speech_noise", "speech_music", "drums_pitched")  # where built-ins must clear the bars
BUILTIN_TARGET_DB, MARGIN_DB = 6.0, 2.0


# what the seconds of a split with this many built-ins hold beside the split itself
SET_NOTE = {2: ", their pair's training shipped", 3: ", their training made at the split: only pairs are shipped"}


def target_lines(records):
    """The issue's targets, one line each, from the records of a run: built-ins >= +6 dB and >=
    the blind default + 2 dB on each of TARGET_CLASSES (the blind default's class mean over all
    its mixtures; where the built-ins apply to fewer, a second line gives it on theirs); nmfsep supervised >= the scikit-learn
    recipe + 2 dB on every class; seconds per mixture of the built-ins and of the blind default
    on the same mixtures (those the built-ins row applies to), and their ratio, then by the
    number of built-ins where the run has more than one number."""
    def means(key):
        scored = [r for r in records if r["method"] == key and "error" not in r]
        return {c: float(np.mean([r["mean"] for r in scored if r["class"] == c]))
                for c in dict.fromkeys(r["class"] for r in scored)}

    def verdict(ok):
        return "met" if ok else "NOT met"

    lines = []
    builtins, blind = means("builtins"), means("default")
    for c in TARGET_CLASSES:
        if c not in builtins:
            continue
        if c in blind:
            bar = max(BUILTIN_TARGET_DB, blind[c] + MARGIN_DB)
            lines.append(f"built-ins on {c}: {builtins[c]:+.2f} dB, target >= {BUILTIN_TARGET_DB:+.0f} and >= "
                         f"blind default {blind[c]:+.2f} {MARGIN_DB:+.0f} = {bar:+.2f}: {verdict(builtins[c] >= bar)}")
            ids = {r["id"] for r in records if r["method"] == "builtins" and r["class"] == c and "error" not in r}
            same = [r["mean"] for r in records if r["method"] == "default" and r["id"] in ids and "error" not in r]
            if same and len(same) < sum(r["method"] == "default" and r["class"] == c and "error" not in r
                                        for r in records):
                lines.append(f"  (on the {len(same)} mixtures the built-ins apply to, the blind default is "
                             f"{np.mean(same):+.2f}: built-ins {builtins[c] - np.mean(same):+.2f} above it)")
        else:
            lines.append(f"built-ins on {c}: {builtins[c]:+.2f} dB, target >= {BUILTIN_TARGET_DB:+.0f}: "
                         f"{verdict(builtins[c] >= BUILTIN_TARGET_DB)} (no blind default row to compare)")
    supervised, recipe = means("supervised"), means("sklearn-recipe")
    for c in [c for c in supervised if c in recipe]:
        bar = recipe[c] + MARGIN_DB
        lines.append(f"supervised on {c}: {supervised[c]:+.2f} dB, target >= recipe {recipe[c]:+.2f} "
                     f"{MARGIN_DB:+.0f} = {bar:+.2f}: {verdict(supervised[c] >= bar)}")
    applied = {r["id"]: len(r.get("models") or ()) for r in records if r["method"] == "builtins" and "seconds" in r}

    def seconds(key, ids):
        timed = [r["seconds"] for r in records if r["method"] == key and r["id"] in ids and "seconds" in r]
        return float(np.mean(timed)) if timed else None

    ours, theirs = seconds("builtins", applied), seconds("default", applied)
    if ours is not None and theirs:
        lines.append(f"seconds per mixture (the {len(applied)} mixtures the built-ins row applies to): built-ins "
                     f"{ours:.1f} s, blind default {theirs:.1f} s, ratio {ours / theirs:.2f} (target: about 1)")
        sizes = sorted(set(applied.values()))
        for size in sizes if len(sizes) > 1 else ():
            ids = {i for i, n in applied.items() if n == size}
            ours, theirs = seconds("builtins", ids), seconds("default", ids)
            if ours is not None and theirs:
                lines.append(f"  with {size} built-ins ({len(ids)} mixtures{SET_NOTE.get(size, '')}): built-ins "
                             f"{ours:.1f} s, blind default {theirs:.1f} s, ratio {ours / theirs:.2f}")
    return lines


def corpus_main(args, parser):
    manifest_path = os.path.join(args.corpus, "manifest.json")
    if not os.path.isfile(manifest_path):
        parser.error(f"{manifest_path}: no such file (make the corpus with benchmarks/make_corpus.py)")
    with open(manifest_path) as f:
        entries = [m for m in json.load(f)["mixtures"] if m["split"] == args.split]
    rows = corpus_rows()
    extra = {k for keys in EXTRA_ROWS.values() for k in keys}
    wanted = [k for k in rows if k not in extra] if args.methods is None else args.methods.split(",")
    wanted += [k for flag, keys in EXTRA_ROWS.items() if getattr(args, flag[2:]) for k in keys]
    unknown = [k for k in wanted if k not in rows]
    if unknown:
        parser.error(f"unknown --methods {', '.join(unknown)} (choose from {', '.join(rows)})")
    keys = [k for k in rows if k in wanted]  # the table's order
    clips = args.clips or os.path.join(args.corpus, "clips", "clips.json")
    if extra & set(keys) and not os.path.isfile(clips):
        parser.error(f"{clips}: no such file (the rows {', '.join(k for k in keys if k in extra)} read the clips "
                     f"index of benchmarks/make_corpus.py --clips, `make clips`; give its path with --clips)")
    classes = list(dict.fromkeys(m["class"] for m in entries))
    if args.classes is not None:
        wanted = args.classes.split(",")
        missing = [c for c in wanted if c not in classes]
        if missing:
            parser.error(f"no {args.split} mixtures of class {', '.join(missing)} in {args.corpus}")
        classes = wanted
    entries = [m for c in classes for m in [m for m in entries if m["class"] == c][:args.limit]]
    started = time.perf_counter()
    records = measure_corpus(args.corpus, entries, keys, args.jobs, clips if extra & set(keys) else None)
    wall = time.perf_counter() - started
    print(f"Blind separation of {args.corpus}, split {args.split}: {len(entries)} mixtures, "
          f"SI-SDR improvement (dB), best permutation\n")
    corpus_table(records, keys, classes)
    lines = target_lines(records)
    if lines:
        print("\nTargets (issue 17)\n" + "\n".join(lines))
    print(f"\nwall time {wall:.0f} s with -j {args.jobs}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"corpus": args.corpus, "split": args.split, "wall_seconds": round(wall, 1),
                       "scores": records}, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levers", action="store_true", help="also measure each quality lever")
    parser.add_argument("--blind", action="store_true", help="also measure blind separation")
    parser.add_argument("--corpus", nargs="?", const=CORPUS, default=None, metavar="DIR",
                        help="blind separation of a corpus instead (default DIR: benchmarks/corpus)")
    parser.add_argument("--split", choices=("test", "val", "train"), default="test",
                        help="the corpus split to measure (choose on val, report on test)")
    parser.add_argument("--classes", help="comma-separated classes (default: all)")
    parser.add_argument("--methods", help="comma-separated rows (default: all): " + ", ".join(corpus_rows()))
    parser.add_argument("--builtin", action="store_true",
                        help="also the row 'nmfsep built-ins': each mixture split with the built-in models that "
                             "name its sources")
    parser.add_argument("--supervised", action="store_true",
                        help="also 'nmfsep supervised' and the scikit-learn recipe, each source learned from other "
                             "clips of its material (the clips index)")
    parser.add_argument("--clips", metavar="PATH", default=None,
                        help="the clips index of --builtin and --supervised (default: DIR/clips/clips.json, "
                             "where `make clips` writes)")
    parser.add_argument("--limit", type=int, default=None, help="the first N mixtures of each class")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--json", metavar="FILE", help="write the per-mixture scores to FILE")
    args = parser.parse_args()
    # Measure the code as it is: no discriminative training from an earlier run's cache (nmfsep.cache).
    # Set here, not at import (tests load this script), and before the workers are spawned: they inherit it.
    os.environ["NMFSEP_CACHE_DIR"] = ""
    if args.corpus is not None:
        return corpus_main(args, parser)
    cases = load_cases()
    started = time.perf_counter()
    rows = {
        "nmfsep supervised": [improvement(c, nmfsep_supervised(c)) for c in cases.values()],
        "sklearn recipe": [improvement(c, sklearn_recipe(c)) for c in cases.values()],
        "oracle mask": [max(improvement(c, oracle(c, 1.0)), improvement(c, oracle(c, 2.0))) for c in cases.values()],
    }
    print("SI-SDR improvement (dB), supervised separation of benchmarks/data\n")
    table(list(rows.items()), cases)
    ours, recipe, ceiling = (np.array(v) for v in rows.values())
    print(f"\nnmfsep - sklearn recipe: {ours.mean() - recipe.mean():+.2f} dB (target >= +2)")
    print(f"nmfsep / oracle: {100 * ours.mean() / ceiling.mean():.0f}% (target >= 80%)")
    print(f"cases below the recipe: {int((ours < recipe).sum())} (target 0)")
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.blind:
        print("\nBlind separation (-k = number of sources), SI-SDR improvement (dB), best permutation\n")
        from nmfsep.grouping import DEFAULT_METHOD, METHODS

        blind = [(f"nmfsep blind ({m})", [best_improvement(c, nmfsep_blind(c, m)) for c in cases.values()])
                 for m in METHODS]
        blind += [(f"nmfsep {DEFAULT_METHOD}, C={n}", [best_improvement(c, nmfsep_blind(c, DEFAULT_METHOD, n))
                                                     for c in cases.values()])
                  for n in (8, 16, 24, 32)]
        blind += [(f"nmfsep {DEFAULT_METHOD}, C=24, smoothness 0",
                   [best_improvement(c, nmfsep_blind(c, DEFAULT_METHOD, 24, 0.0)) for c in cases.values()])]
        blind += [("librosa decompose k=N", [best_improvement(c, librosa_recipe(c)) for c in cases.values()]),
                  ("nussl MFCC k-means, 24", [best_improvement(c, nussl_recipe(c)) for c in cases.values()]),
                  ("oracle grouping, 24", [best_improvement(c, oracle_grouping(c)) for c in cases.values()])]
        table(blind, cases)
        ours = np.array(blind[0][1])
        print(f"\nnmfsep blind (auto): mean {ours.mean():+.2f} dB (target >= +6), "
              f"{int((ours < 0).sum())} mixtures below 0 dB (target 0), "
              f"behind a library recipe on {int(((ours < np.array(blind[-3][1])) | (ours < np.array(blind[-2][1]))).sum())} (target 0)")
    if args.levers:
        print("\nLevers, one at a time from the default (SI-SDR improvement, dB)\n")
        table([(label, [improvement(c, nmfsep_supervised(c, **kw)) for c in cases.values()])
               for label, kw in LEVERS], cases)


if __name__ == "__main__":
    main()
