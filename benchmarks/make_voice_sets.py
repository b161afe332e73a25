#!/usr/bin/env python3
"""Voice-over-music and voice-in-noise mixtures from the clips of one split, in the corpus' layout.

Run (after ``make_corpus.py --clips``; seconds)::

    .venv/bin/python benchmarks/make_voice_sets.py --clips CLIPS/clips.json --out DIR \\
        [--engine klettres] [--split val] [--per-class 12] [--seed 7]

then ``bench_quality.py --corpus DIR --split val --builtin``. Never run by CI or ``make test``.

Why: the corpus' validation split has no recorded voice over music or in noise (its recorded
speakers are in its talker classes), yet recorded voices are what users bring. This makes
``--per-class`` mono mixtures in each of two classes, speech_music and speech_noise, from the
clips of ``--split``: a voice clip of one engine (``klettres``: recorded speakers; ``espeak``,
``flite``: synthesized) over a music clip, or in a noise clip (coloured and recorded), both cut to
the shorter, the second source at the voice's RMS times a gain uniform in -6..+6 dB, the two then
scaled together so that the mix peaks at 0.9 at most. Voice clips are taken in the index's order
where there are enough of them, else drawn; then in turn the first clip of each track (not a
track with a voice in it) or the first two of each noise. Files:
``<out>/<split>/<class>/<NNNN>/{mix,src1,src2}.wav`` (32-bit float, the clips' rate, the same
bytes on every run: make_corpus.write_wav) and
``<out>/manifest.json`` in make_corpus.py's format (no ``detail``). Used to choose the blind
split's share beside the built-in ``noise`` (nmfsep.blend).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_corpus import write_wav  # noqa: E402  (the corpus' own float WAV writer: the same bytes every run)

CLASSES = (("speech_music", "music"), ("speech_noise", "noise"))
CLIPS_EACH = {"music": 1, "noise": 2}  # clips of each track or noise used, in turn
GAIN_DB = 6.0
PEAK = 0.9


def voice_sets(index: dict, root: Path, out: Path, engine: str, split: str, per_class: int, seed: int) -> dict:
    """Write the mixtures and return their manifest; SystemExit where the split lacks the clips."""
    materials = [m for m in index["materials"] if m["split"] == split]
    voices = [(m, c) for m in materials if m["kind"] == "speech" and m["id"].split(":")[1] == engine
              for c in m["clips"]]
    # a track with a voice in it ("voc-") would be a second voice, not music
    others = {kind: [(m, c) for m in materials if m["kind"] == kind and "voc-" not in m["id"]
                     for c in m["clips"][:CLIPS_EACH[kind]]] for _, kind in CLASSES}
    for kind, found in (("speech", voices), *others.items()):
        if not found:
            raise SystemExit(f"make_voice_sets: {root}: no {split}-split clips of {kind}"
                             + (f" by {engine}" if kind == "speech" else ""))
    rng = np.random.default_rng(seed)
    mixtures = []
    for cls, kind in CLASSES:
        for i in range(per_class):
            voice_material, voice_clip = voices[i] if len(voices) >= per_class else voices[rng.integers(len(voices))]
            other_material, other_clip = others[kind][i % len(others[kind])]
            voice, rate = sf.read(root / voice_clip["file"], dtype="float32")
            other, other_rate = sf.read(root / other_clip["file"], dtype="float32")
            if voice.ndim != 1 or other.ndim != 1 or other_rate != rate:
                raise SystemExit(f"make_voice_sets: {voice_clip['file']}, {other_clip['file']}: "
                                 "expected mono clips at one rate")
            n = min(len(voice), len(other))
            voice, other = voice[:n], other[:n]
            gain = float(rng.uniform(-GAIN_DB, GAIN_DB))
            other = other * np.float32(np.sqrt(np.mean(voice ** 2) / max(np.mean(other ** 2), 1e-12)) * 10 ** (gain / 20))
            peak = float(np.abs(voice + other).max())
            scale = np.float32(PEAK / peak if peak > PEAK else 1.0)
            voice, other = voice * scale, other * scale
            folder = f"{split}/{cls}/{i:04d}"
            (out / folder).mkdir(parents=True, exist_ok=True)
            for name, samples in (("mix.wav", voice + other), ("src1.wav", voice), ("src2.wav", other)):
                write_wav(str(out / folder / name), samples[:, None], rate)
            mixtures.append({"id": folder, "split": split, "class": cls, "rate": rate, "channels": 1,
                             "seconds": n / rate, "dir": folder,
                             "sources": [{"file": "src1.wav", "kind": "speech", "material": voice_material["id"],
                                          "gain_db": 0.0},
                                         {"file": "src2.wav", "kind": kind, "material": other_material["id"],
                                          "gain_db": round(gain, 2)}]})
    return {"version": 1, "seed": seed, "mixtures": mixtures}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", required=True, help="clips.json written by make_corpus.py --clips")
    parser.add_argument("--out", required=True)
    parser.add_argument("--engine", default="klettres", help="the voices' engine: klettres, espeak or flite")
    parser.add_argument("--split", default="val")
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    index_path = Path(args.clips)
    out = Path(args.out)
    if (out / "manifest.json").exists():
        raise SystemExit(f"make_voice_sets: {out / 'manifest.json'} exists: give another --out")
    manifest = voice_sets(json.loads(index_path.read_text()), index_path.parent, out, args.engine, args.split,
                          args.per_class, args.seed)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(manifest['mixtures'])} mixtures in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
