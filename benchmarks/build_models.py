"""Build nmfsep's built-in models (src/nmfsep/models/) from the corpus' train-split clips.

    python benchmarks/make_corpus.py --clips --out benchmarks/corpus        # the clips (make clips)
    python benchmarks/build_models.py --clips benchmarks/corpus/clips.json  # this (make models)

Every built-in is learned with nmfsep.supervised.learn from the clean clips of the train split's
materials that its class selects (no speaker, program, track or noise of the validation or test
splits), at RATE; then the discriminative training of every pair of built-ins is made and
written to models/pairs/ (nmfsep.models.write_training), so that a split with built-ins only
trains nothing. One thread, fixed seeds and fixed archive timestamps: a second run writes the
same bytes.
"""
import argparse
import itertools
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 22050
N_BASES = 128
# Training frames kept in each model (for trainings with one's own models, and of three built-ins). 640, not
# 768, keeps the twelve built-ins under SIZE_LIMIT: on the corpus' validation split one's own voice beside noise
# 14.87 -> 15.11 dB, three built-ins 6.43 -> 6.35 (bench_quality --builtin --supervised).
FRAMES_KEPT = 640
SECONDS_CAP = 480      # of audio per model at most (the clips are spread over all its materials)
PAIR_LAYERS = 0        # unfolded layers of a shipped pair training (size: see SIZE_LIMIT), but:
LAYERED_PAIRS = {("music", "speech"): 8, ("noise", "speech"): 8}  # 1.8 MB instead of 0.35: see the README's Built-in models
# Frames of each built-in's training clips that its pair trainings learn from (train_pair), against the
# FRAMES_KEPT the models keep: +0.13 dB over the corpus' validation split's 75 built-in mixtures (bench_quality
# --builtin; 47 gained, 18 lost, both halves up; speech + music 7.51 -> 7.63, a man and a woman 9.78 -> 10.04).
PAIR_FRAMES = 32768
SIZE_LIMIT = 25_000_000  # bytes: the 25 MB, models, pairs and cards together
THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

GROUPS = {  # family of the corpus (make_corpus.family) -> built-in
    "piano": "piano", "chromatic": "piano", "guitar": "guitar", "bass": "bass",
    "strings": "strings", "ensemble": "strings", "brass": "winds", "reed": "winds", "pipe": "winds",
    "organ": "synth", "synth_lead": "synth", "synth_pad": "synth", "synth_fx": "synth",
}
def family(name: str):
    """The selector of the instruments whose family (make_corpus.family) GROUPS gives to the built-in name."""
    return lambda m: m["kind"] == "instrument" and GROUPS.get(m.get("family")) == name


BUILTINS = {  # name: (summary, pitch shifts, selector of clip materials)
    "speech": ("Speech, any voice (espeak-ng, flite and recorded speakers)", 0,
               lambda m: m["kind"] == "speech"),
    "speech_low": ("Speech in a low voice (most men's)", 0,
                   lambda m: m["kind"] == "speech" and m.get("gender") == "M"),
    "speech_high": ("Speech in a high voice (most women's and children's)", 0,
                    lambda m: m["kind"] == "speech" and m.get("gender") == "F"),
    "music": ("Recorded music, many instruments at once (game soundtracks)", 0,
              lambda m: m["kind"] == "music"),
    "noise": ("Steady noise: hiss, rumble, rain, fire, coloured noise", 0,
              lambda m: m["kind"] == "noise"),
    "drums": ("A drum kit (General MIDI kits of three soundfonts)", 0,
              lambda m: m["kind"] == "drums"),
    "piano": ("Piano and other keyboards, mallets and bells (GM 1-16)", 1, family("piano")),
    "guitar": ("Guitars, acoustic and electric (GM 25-32)", 1, family("guitar")),
    "bass": ("Bass: acoustic, electric and synth bass (GM 33-40)", 1, family("bass")),
    "strings": ("Strings: violin to contrabass, string and choir ensembles (GM 41-56)", 1, family("strings")),
    "winds": ("Winds: brass, reeds and pipes (GM 57-80)", 1, family("winds")),
    "synth": ("Synths and organs: leads, pads, synth effects, organs and accordions (GM 17-24, 81-104)", 1,
              family("synth")),
}


def chosen_clips(index: dict, root: Path, select) -> tuple[list[Path], list[str]]:
    """The train split's clips of the selected materials, round robin over the materials in a
    seeded random order (first clip of each, then the second ...: every engine, speaker, program
    and track gets its share) up to SECONDS_CAP seconds; and the materials used."""
    materials = sorted((m for m in index["materials"] if m["split"] == "train" and select(m)), key=lambda m: m["id"])
    materials = [materials[i] for i in np.random.default_rng(0).permutation(len(materials))]
    rounds = itertools.zip_longest(*[m["clips"] for m in materials])
    picked, total = [], 0.0
    for clip in (c for r in rounds for c in r if c is not None):
        if total >= SECONDS_CAP:
            break
        picked.append(root / clip["file"])
        total += clip["seconds"]
    used = sorted({m["id"] for m in materials if any(root / c["file"] in picked for c in m["clips"])})
    return picked, used


def read_clips(paths) -> list[np.ndarray]:
    """The clips (n_samples, n_channels), float32; SystemExit for one not at RATE."""
    recordings = []
    for p in paths:
        x, rate = sf.read(p, dtype="float32", always_2d=True)
        if rate != RATE:
            raise SystemExit(f"build_models: {p}: {rate} Hz, expected {RATE}")
        recordings.append(x)
    return recordings


def learn_one(task):
    name, paths, shifts = task
    from nmfsep import spectrum
    from nmfsep.model import Model
    from nmfsep.supervised import learn
    recordings = read_clips(paths)
    started = time.perf_counter()
    m = learn(recordings, RATE, N_BASES, name=name, pitch_shifts=shifts, seed=0)
    keep = spectrum.spread_frames(m.frames.shape[1], FRAMES_KEPT)
    m = Model(m.bases.astype(np.float16), m.sample_rate, m.n_fft, m.hop_length, m.beta, name,
              np.ascontiguousarray(m.frames[:, keep]), m.pitch_shifts)
    return name, m, time.perf_counter() - started


def pair_frames(paths: list[Path]) -> np.ndarray:
    """PAIR_FRAMES evenly spaced frames of the clips' spectrogram laid end to end (as
    nmfsep.supervised.learn lays out a model's), over its mean level, float16 (n_bins, frames)."""
    from nmfsep import spectrum
    from nmfsep.model import stored_frames
    params = spectrum.default_params(RATE)
    magnitude = np.concatenate([spectrum.analyse(x, params)[1] for x in read_clips(paths)], axis=1)
    return stored_frames(magnitude[:, spectrum.spread_frames(magnitude.shape[1], PAIR_FRAMES)],
                         spectrum.mean_level(magnitude))


def train_pair(task):
    """The pair's training (THOROUGH_RECIPE) from PAIR_FRAMES frames of each model's training
    clips in place of the FRAMES_KEPT it keeps (the shipped file's digest is of the models as kept)."""
    names, folder, frames = task
    from dataclasses import replace
    from nmfsep import supervised
    from nmfsep.model import load
    from nmfsep.pipeline import Settings
    ms = tuple(replace(load(str(Path(folder) / f"{n}.npz")), frames=f) for n, f in zip(names, frames))
    started = time.perf_counter()
    settings = Settings(len(ms), models=ms, unfolded_layers=LAYERED_PAIRS.get(tuple(names), PAIR_LAYERS))
    recipe = replace(supervised.THOROUGH_RECIPE, frames=PAIR_FRAMES)
    trained = supervised.discriminative_training(ms, settings, recipe=recipe)
    return names, trained, time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", required=True, help="clips.json written by make_corpus.py --clips")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src" / "nmfsep" / "models"))
    parser.add_argument("--only", default=None,
                        help="comma-separated built-ins to rebuild, with the pairs they are in (default: all)")
    parser.add_argument("--no-pairs", action="store_true")
    parser.add_argument("--pairs-only", action="store_true", help="the pair trainings of the built-ins in --out")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--scores", default=None, help="a bench_quality --json file: the cards quote its built-in rows")
    parser.add_argument("--cards-only", action="store_true", help="rewrite the cards, nothing else")
    args = parser.parse_args(argv)
    # Set here, not at import (bench_quality imports GROUPS): every training made here, none read from a
    # cache, and the workers' BLAS on one thread, for the same sums in the same order, the same bytes. The
    # workers are spawned, so they import numpy after this.
    os.environ["NMFSEP_CACHE_DIR"] = ""
    for name in THREADS:
        os.environ.setdefault(name, "1")
    spawn = multiprocessing.get_context("spawn")
    from nmfsep import models as builtins
    from nmfsep.model import save
    index_path = Path(args.clips)
    index = json.loads(index_path.read_text())
    if index.get("rate") != RATE:
        raise SystemExit(f"build_models: {index_path}: clips at {index.get('rate')} Hz, expected {RATE}")
    out = Path(args.out)
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    names = [n for n in BUILTINS if args.only is None or n in args.only.split(",")]
    tasks, sources = [], {}
    for name in names:
        summary, shifts, select = BUILTINS[name]
        paths, used = chosen_clips(index, index_path.parent, select)
        if not paths:
            raise SystemExit(f"build_models: no train-split clips for {name}")
        sources[name] = (len(paths), len(used), used)
        tasks.append((name, [str(p) for p in paths], shifts))
    scores = json.loads(Path(args.scores).read_text()) if args.scores else None
    if args.cards_only:
        for name in names:
            write_card(out, name, sources[name], scores)
        return 0
    with ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
        for name, m, seconds in pool.map(learn_one, [] if args.pairs_only else tasks):
            save(m, str(out / f"{name}.npz"), compress=True)
            n_clips, n_materials, _ = sources[name]
            print(f"{name}: {m.n_bases} bases from {n_clips} clips of {n_materials} materials in {seconds:.0f} s",
                  flush=True)
    if not args.no_pairs:
        pairs = [p for p in itertools.combinations(sorted(BUILTINS), 2) if not _redundant(p)
                 and (args.only is None or set(p) & set(names))]   # --only: the pairs its models are in
        frames = {n: pair_frames(chosen_clips(index, index_path.parent, BUILTINS[n][2])[0]) for n in sorted(BUILTINS)}
        with ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
            for pair, trained, seconds in pool.map(train_pair, [(p, str(out), [frames[n] for n in p]) for p in pairs]):
                from nmfsep.model import load
                ms = [load(str(out / f"{n}.npz")) for n in pair]
                builtins.write_training(builtins.pair_path(pair, out), ms, trained)
                print(f"pair {'+'.join(pair)}: {len(trained.layers)} layers in {seconds:.0f} s", flush=True)
    for name in names:
        write_card(out, name, sources[name], scores)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"built-ins: {size / 1e6:.2f} MB in all (limit {SIZE_LIMIT / 1e6:.0f})")
    return 0 if size <= SIZE_LIMIT else 1


def write_card(out: Path, name: str, source: tuple, scores: dict | None) -> None:
    """NAME.md: what the built-in models, what it was learned from, how, and how it scores."""
    from nmfsep.model import load
    summary, shifts, _ = BUILTINS[name]
    n_clips, n_materials, used = source
    m = load(str(out / f"{name}.npz"))
    lines = [f"# {summary}", "", f"The built-in model `{name}` (`nmfsep split INPUT --model {name}`).", "",
             f"- Learned from: {n_clips} clean clips (8 s each) of {n_materials} materials of the train split of "
             f"nmfsep's corpus (benchmarks/make_corpus.py --clips; no speaker, program, track or noise of its "
             f"validation or test splits; corpus ids, GM programs numbered from 0): {', '.join(used)}.",
             f"- Bases: {m.n_bases} (float16), KL (beta {m.beta:g}), {shifts} semitone pitch shifts each way; "
             f"{m.frames.shape[1]} training frames kept for trainings with one's own models.",
             f"- STFT: {m.sample_rate} Hz, n_fft {m.n_fft}, hop {m.hop_length}; a file at another rate is resampled "
             f"to it and the stems back.",
             "- Rebuilt byte for byte by `benchmarks/build_models.py` (nmfsep.supervised.learn, seed 0) from the "
             "same clips with the same libraries.", ""]
    if scores:
        lines += ["## How it scores", "", scores_of(name, scores), ""]
    (out / f"{name}.md").write_text("\n".join(lines), encoding="utf-8")


def scores_of(name: str, scores: dict) -> str:
    """The built-in rows of a bench_quality --json run where this built-in named a source."""
    rows = [r for r in scores["scores"] if r.get("method") == "builtins" and name in (r.get("models") or [])
            and "mean" in r]
    if not rows:
        return f"Not used on the {scores.get('split')} split's mixtures."
    blind = {r["id"]: r["mean"] for r in scores["scores"] if r.get("method") == "default" and "mean" in r}
    by_class = {}
    for r in rows:
        by_class.setdefault(r["class"], []).append((r["mean"], blind.get(r["id"], np.nan)))
    text = (f"Mean SI-SDR improvement on the corpus' {scores.get('split')} split, split with the built-ins that "
            f"name each source, blended with the blind split as `split` does by default (`bench_quality.py "
            f"--corpus --builtin`): " + class_means(by_class, "blind default") + ".")
    return text + registers_of(name, scores)


def class_means(by_class: dict, beside: str) -> str:
    """'CLASS +A dB (BESIDE +B; N mixtures); ...' of {class: [(a, b) per mixture]}, classes sorted."""
    return "; ".join(f"{c} {np.mean([a for a, _ in v]):+.2f} dB ({beside} {np.mean([b for _, b in v]):+.2f}; "
                     f"{len(v)} mixtures)" for c, v in sorted(by_class.items()))


def registers_of(name: str, scores: dict) -> str:
    """The bench's register rows (a voice named by its register) where this built-in is the register a voice
    got, beside the built-ins row (speech, which picks speech_high itself for a high voice over music:
    nmfsep.register) on the same mixtures; "" where none."""
    named = {r["id"]: r for r in scores["scores"] if r.get("method") == "builtins" and "mean" in r}
    by_class = {}
    for r in scores["scores"]:
        if r.get("method") == "register" and "mean" in r and name in r["models"] and r["id"] in named \
                and name not in named[r["id"]]["models"]:
            by_class.setdefault(r["class"], []).append((r["mean"], named[r["id"]]["mean"]))
    if not by_class:
        return ""
    return (" A lone voice named by its register instead of `speech` (row `register`; beside `music`, `speech` "
            "picks `speech_high` itself for a high voice): " + class_means(by_class, "with `speech`") + ".")


def _redundant(pair) -> bool:
    """speech beside one of its own registers models the same voices twice"""
    return "speech" in pair and any(n.startswith("speech_") for n in pair)


if __name__ == "__main__":
    sys.exit(main())
