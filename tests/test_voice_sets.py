"""benchmarks/make_voice_sets.py: voice-over-music and voice-in-noise mixtures from a split's clips, on a
small made-up clips index (no corpus needed)."""

import json

import numpy as np
import pytest
import soundfile as sf

RATE = 8000


@pytest.fixture
def clips(tmp_path):
    """A clips index with val and train material of each kind: noise at 0.5 s, the rest 0.6 s."""
    rng = np.random.default_rng(0)
    materials = []
    for split in ("val", "train"):
        for material, kind, seconds in ((f"speaker:klettres:{split}a", "speech", 0.6),
                                        (f"speaker:espeak:{split}b", "speech", 0.6),
                                        (f"track:supertux:{split}.ogg", "music", 0.6),
                                        ("track:supertux:voc-x.ogg" if split == "val" else "track:supertux:t.ogg",
                                         "music", 0.6),
                                        (f"noise:coloured:{split}", "noise", 0.5)):
            entries = []
            for k in range(3):
                file = f"{split}/{material.replace(':', '_')}/{k:02d}.wav"
                (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
                sf.write(tmp_path / file, (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32), RATE,
                         subtype="FLOAT")
                entries.append({"file": file, "seconds": seconds})
            materials.append({"id": material, "kind": kind, "split": split, "clips": entries})
    (tmp_path / "clips.json").write_text(json.dumps({"rate": RATE, "materials": materials}))
    return tmp_path / "clips.json"


def test_voice_sets_mix_a_splits_voice_of_one_engine_with_its_music_or_noise(clips, tmp_path, benchmark_script):
    sets = benchmark_script("make_voice_sets")
    out = tmp_path / "out"
    assert sets.main(["--clips", str(clips), "--out", str(out), "--per-class", "4"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    mixtures = manifest["mixtures"]
    assert [m["class"] for m in mixtures] == ["speech_music"] * 4 + ["speech_noise"] * 4
    for m in mixtures:
        voice, other = m["sources"]
        assert voice["material"] == "speaker:klettres:vala" and voice["gain_db"] == 0.0
        assert other["material"] == ("track:supertux:val.ogg" if m["class"] == "speech_music" else "noise:coloured:val")
        assert -sets.GAIN_DB <= other["gain_db"] <= sets.GAIN_DB
        mix, rate = sf.read(out / m["dir"] / "mix.wav", dtype="float32")
        refs = [sf.read(out / m["dir"] / s["file"], dtype="float32")[0] for s in m["sources"]]
        assert rate == RATE == m["rate"] and m["channels"] == 1 and len(mix) == round(m["seconds"] * RATE)
        assert len(mix) == (0.5 if m["class"] == "speech_noise" else 0.6) * RATE   # cut to the shorter clip
        np.testing.assert_allclose(mix, refs[0] + refs[1], atol=1e-6)
        assert np.abs(mix).max() <= sets.PEAK + 1e-6
        ratio_db = 10 * np.log10(np.mean(refs[1] ** 2) / np.mean(refs[0] ** 2))
        assert ratio_db == pytest.approx(other["gain_db"], abs=0.02)
    case = benchmark_script("bench_quality").load_mixture(str(out), mixtures[0])   # what bench_quality --corpus reads
    assert case["refs"].shape == (2,) + case["mix"].shape
    # written as the corpus writes its files, the same bytes on every run (soundfile's float WAV
    # carries a PEAK chunk with the time of writing)
    for m in mixtures:
        for name in ("mix.wav", "src1.wav", "src2.wav"):
            samples, _ = sf.read(out / m["dir"] / name, dtype="float32", always_2d=True)
            sets.write_wav(str(tmp_path / "twin.wav"), samples, RATE)
            assert (out / m["dir"] / name).read_bytes() == (tmp_path / "twin.wav").read_bytes()


def test_voice_sets_refuse_a_missing_engine_and_an_existing_manifest(clips, tmp_path, benchmark_script):
    sets = benchmark_script("make_voice_sets")
    with pytest.raises(SystemExit, match="no val-split clips of speech by flite"):
        sets.main(["--clips", str(clips), "--out", str(tmp_path / "a"), "--engine", "flite"])
    assert sets.main(["--clips", str(clips), "--out", str(tmp_path / "b"), "--per-class", "1"]) == 0
    with pytest.raises(SystemExit, match="exists"):
        sets.main(["--clips", str(clips), "--out", str(tmp_path / "b")])
