"""benchmarks/bench_quality.py --corpus: the scoring of one mixture of a corpus (benchmarks/make_corpus.py's format)."""

import os
import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

RATE = 16000


@pytest.fixture
def bench(benchmark_script):
    return benchmark_script("bench_quality")


def pattern(f0, harmonics, period, offset, seconds=2.0):
    """Harmonics of f0, on for the first half of each period (shifted by offset), float32."""
    t = np.arange(int(seconds * RATE)) / RATE
    gate = (t / period + offset) % 1 < 0.5
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in harmonics)
    return (0.2 * gate * tone).astype(np.float32)


@pytest.fixture
def corpus(tmp_path):
    """Two 2 s, 16 kHz mono test mixtures of a low harmonic pattern and a high one that alternate."""
    mixtures = []
    for i in range(2):
        sources = [pattern(220.0 * (1 + i / 10), (1, 2, 3), 0.5, 0.0), pattern(3000.0, (1, 2), 0.4, 0.5 + i / 4)]
        folder = f"test/pitched_far/{i:04d}"
        (tmp_path / folder).mkdir(parents=True)
        sf.write(tmp_path / folder / "mix.wav", sources[0] + sources[1], RATE, subtype="FLOAT")
        for k, source in enumerate(sources, 1):
            sf.write(tmp_path / folder / f"src{k}.wav", source, RATE, subtype="FLOAT")
        mixtures.append({"id": folder, "split": "test", "class": "pitched_far", "rate": RATE, "channels": 1,
                         "seconds": 2.0, "dir": folder,
                         "sources": [{"file": f"src{k}.wav", "kind": "instrument", "material": f"program:test:{k}",
                                      "gain_db": 0.0, "detail": ""} for k in (1, 2)]})
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 1, "seed": 0, "mixtures": mixtures}))
    return tmp_path, mixtures


def test_oracle_ratio_mask_row_scores_above_10_db_on_disjoint_sources(bench, corpus):
    folder, mixtures = corpus
    for entry in mixtures:
        [record] = bench.measure_mixture(str(folder), entry, ["oracle-mask"])
        assert "error" not in record, record
        assert (record["id"], record["method"], len(record["si_sdri"])) == (entry["id"], "oracle-mask", 2)
        assert record["mean"] > 10


def test_best_permutation_scores_swapped_stems_as_ordered_ones(bench, corpus):
    folder, mixtures = corpus
    case = bench.load_mixture(str(folder), mixtures[0])
    ordered = bench.improvements(case, case["refs"])
    swapped = bench.improvements(case, case["refs"][::-1])
    np.testing.assert_allclose(swapped, ordered)
    assert ordered.min() > 20  # a perfect estimate: far above the mixture


def test_a_failing_mixture_is_recorded_as_an_error_not_raised(bench, corpus):
    folder, mixtures = corpus
    (folder / mixtures[1]["dir"] / "src2.wav").unlink()
    records = bench.measure_mixture(str(folder), mixtures[1], ["oracle-mask", "librosa"])
    assert [r["method"] for r in records] == ["oracle-mask", "librosa"]
    assert all("src2.wav" in r["error"] and "mean" not in r for r in records)


# --- --builtin and --supervised: models named after, or learned from other clips of, each source's material ---

SPEECH = {"id": "speaker:test:low", "split": "test", "kind": "speech", "gender": "M"}
NOISE = {"id": "noise:test:hiss", "split": "test", "kind": "noise"}


def noise_band(offset, seconds=2.0, seed=0):
    """White noise high-passed by differencing, gated like pattern (other seeds: other audio), float32."""
    t = np.arange(int(seconds * RATE)) / RATE
    white = np.random.default_rng(seed).standard_normal(len(t) + 1)
    return (0.05 * ((t / 0.4 + offset) % 1 < 0.5) * np.diff(white)).astype(np.float32)


@pytest.fixture
def speech_noise(tmp_path):
    """One 2 s, 16 kHz test mixture of class speech_noise (a low harmonic 'talker' and a hiss) and a
    clips index (clips/clips.json) with two clips of each material: other audio than the sources."""
    sources = [pattern(150.0, (1, 2, 3, 4), 0.5, 0.0), noise_band(0.5, seed=1)]
    folder = "test/speech_noise/0000"
    (tmp_path / folder).mkdir(parents=True)
    sf.write(tmp_path / folder / "mix.wav", sources[0] + sources[1], RATE, subtype="FLOAT")
    for k, source in enumerate(sources, 1):
        sf.write(tmp_path / folder / f"src{k}.wav", source, RATE, subtype="FLOAT")
    entry = {"id": folder, "split": "test", "class": "speech_noise", "rate": RATE, "channels": 1, "seconds": 2.0,
             "dir": folder, "sources": [{"file": f"src{k}.wav", "kind": m["kind"], "material": m["id"], "gain_db": 0.0,
                                         "detail": ""} for k, m in ((1, SPEECH), (2, NOISE))]}
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 1, "seed": 0, "mixtures": [entry]}))
    clips = {SPEECH["id"]: [pattern(150.0, (1, 2, 3, 4), 0.3, 0.25), pattern(160.0, (1, 2, 3, 4), 0.7, 0.1)],
             NOISE["id"]: [noise_band(0.1, seed=2), noise_band(0.8, seed=3)]}
    materials = []
    for material in (SPEECH, NOISE):
        where = f"test/{material['id'].replace(':', '_')}"
        (tmp_path / "clips" / where).mkdir(parents=True)
        for i, clip in enumerate(clips[material["id"]]):
            sf.write(tmp_path / "clips" / where / f"{i:02d}.wav", clip, RATE, subtype="FLOAT")
        materials.append({**material, "dir": where, "clips": [{"file": f"{where}/{i:02d}.wav", "seconds": 2.0}
                                                              for i in range(2)]})
    (tmp_path / "clips" / "clips.json").write_text(json.dumps({"version": 1, "rate": RATE, "materials": materials}))
    return tmp_path, entry


@pytest.fixture
def builtins(tmp_path, monkeypatch):
    """Small stand-ins for the built-ins speech, speech_low and noise (8 bases from clips of their own), in a
    folder that nmfsep.models.folder() points at."""
    from nmfsep import models
    from nmfsep.model import save
    from nmfsep.supervised import learn

    where = tmp_path / "builtins"
    where.mkdir()
    voice = pattern(140.0, (1, 2, 3, 4), 0.6, 0.3)
    for name, clip in (("speech", voice), ("speech_low", voice), ("noise", noise_band(0.2, seed=4))):
        save(learn(clip, RATE, 8, name=name, pitch_shifts=0), str(where / f"{name}.npz"))
    monkeypatch.setattr(models, "folder", lambda: where)
    return where


@pytest.fixture
def few_bases(bench, monkeypatch):
    """The supervised row's learn (nmfsep learn's defaults) with 8 bases instead of 128, and 10
    steps of discriminative training instead of 200: a fast test. Returns the material names it
    learned, in order."""
    from nmfsep import supervised

    monkeypatch.setattr(supervised, "SPLIT_RECIPE", replace(supervised.SPLIT_RECIPE, steps=10))
    learned = []
    real_learn = bench.learn

    def learn(recordings, rate, n_bases=None, **options):
        learned.append(options["name"])
        return real_learn(recordings, rate, 8, **options)

    monkeypatch.setattr(bench, "learn", learn)
    return learned


def test_builtin_names_follow_kind_family_and_gender_of_two_talkers(bench):
    def material(kind, **fields):
        return {"kind": kind, **fields}

    assert bench.builtin_names([material("speech", gender="F"), material("noise")]) == ["speech", "noise"]
    assert bench.builtin_names([material("speech", gender="M"), material("speech", gender="F")]) == \
        ["speech_low", "speech_high"]
    assert bench.builtin_names([material("drums"), material("instrument", family="chromatic"),
                                material("instrument", family="reed")]) == ["drums", "piano", "winds"]
    assert bench.builtin_names([material("instrument", family="ensemble"), material("instrument", family="bass"),
                                material("instrument", family="guitar")]) == ["strings", "bass", "guitar"]
    assert bench.builtin_names([material("speech", gender="M"), material("instrument", family="synth_pad")]) == \
        ["speech", "synth"]
    assert bench.builtin_names([material("drums"), material("instrument", family="ethnic")]) == ["drums", "music"]
    assert bench.builtin_names([material("speech", gender="F"), material("music")], registers=True) == \
        ["speech_high", "music"]
    assert bench.builtin_names([material("speech", gender="M"), material("speech", gender="M")], registers=True) is None


def test_builtin_names_give_each_family_the_builtin_learned_from_it(bench, benchmark_script):
    """bench_quality names an instrument after the built-in learned from its family (build_models.GROUPS),
    on every family the corpus has; a family without one gets music."""
    build, corpus = benchmark_script("build_models"), benchmark_script("make_corpus")
    for family in corpus.FAMILIES:
        expected = build.GROUPS.get(family, "music")
        assert expected in build.BUILTINS
        assert bench.builtin_names([{"kind": "instrument", "family": family}]) == [expected], family


def test_builtin_names_do_not_apply_where_two_sources_get_the_same_builtin(bench):
    assert bench.builtin_names([{"kind": "speech", "gender": "M"}, {"kind": "speech", "gender": "M"}]) is None
    assert bench.builtin_names([{"kind": "music"}, {"kind": "instrument", "family": "percussive"}]) is None
    assert bench.builtin_names([{"kind": "instrument", "family": "brass"},
                                {"kind": "instrument", "family": "pipe"}]) is None


def test_rows_that_learn_do_not_apply_where_two_sources_share_a_material(bench, speech_noise):
    folder, entry = speech_noise
    case = bench.load_mixture(str(folder), entry, str(folder / "clips" / "clips.json"))
    case["materials"] = [SPEECH["id"], SPEECH["id"]]
    assert bench.nmfsep_supervised_clips(case) is None
    assert bench.sklearn_recipe_clips(case) is None
    assert bench.nmfsep_builtins(case) is None
    assert bench.nmfsep_builtins(case, registers=True) is None


def test_supervised_rows_learn_from_the_clips_index_never_from_the_mixtures_audio(bench, speech_noise, few_bases,
                                                                                   monkeypatch):
    folder, entry = speech_noise
    case = bench.load_mixture(str(folder), entry, str(folder / "clips" / "clips.json"))
    reads = []
    real_read = bench.sf.read
    monkeypatch.setattr(bench.sf, "read",
                        lambda path, *a, **kw: reads.append(os.fspath(path)) or real_read(path, *a, **kw))
    for row in (bench.nmfsep_supervised_clips, bench.sklearn_recipe_clips):
        stems = row(case)
        assert stems.shape == case["refs"].shape
        assert bench.improvements(case, stems, ordered=True).mean() > 0
    clip_files = sorted(str(p) for p in (folder / "clips").rglob("*.wav"))
    assert sorted(set(reads)) == clip_files  # every clip, and nothing from the mixture's folder


def test_supervised_rows_learn_each_material_once_per_process(bench, speech_noise, few_bases):
    folder, entry = speech_noise
    case = bench.load_mixture(str(folder), entry, str(folder / "clips" / "clips.json"))
    for _ in range(2):
        bench.nmfsep_supervised_clips(case)
    assert few_bases == [SPEECH["id"], NOISE["id"]]


def test_ordered_rows_score_stems_in_their_own_order(bench, speech_noise):
    folder, entry = speech_noise
    case = bench.load_mixture(str(folder), entry)
    swapped = case["refs"][::-1]
    assert bench.improvements(case, swapped, ordered=False).min() > 20
    assert bench.improvements(case, swapped, ordered=True).max() < 0


def test_builtins_row_splits_with_the_builtins_that_name_the_sources(bench, speech_noise, builtins, few_bases,
                                                                     monkeypatch):
    from nmfsep import models

    folder, entry = speech_noise
    case = bench.load_mixture(str(folder), entry, str(folder / "clips" / "clips.json"))
    asked = []
    real_load_set = models.load_set
    monkeypatch.setattr(models, "load_set", lambda names: asked.append(list(names)) or real_load_set(names))
    stems = bench.nmfsep_builtins(case)
    assert asked == [["speech", "noise"]]
    assert stems.shape == case["refs"].shape
    assert bench.improvements(case, stems, ordered=True).mean() > 0


def test_builtins_row_applies_to_a_material_without_clips_where_the_rows_that_learn_do_not(bench, speech_noise,
                                                                                           builtins, few_bases):
    """A track too short for a clip still has its record (kind, gender, family): the built-ins
    need only that, the supervised rows need its clips."""
    folder, entry = speech_noise
    index = folder / "clips" / "clips.json"
    data = json.loads(index.read_text())
    for material in data["materials"]:
        if material["id"] == NOISE["id"]:
            material["clips"] = []
    index.write_text(json.dumps(data))
    case = bench.load_mixture(str(folder), entry, str(index))
    assert bench.nmfsep_supervised_clips(case) is None
    assert bench.sklearn_recipe_clips(case) is None
    stems = bench.nmfsep_builtins(case)
    assert stems.shape == case["refs"].shape
    assert case["models"] == ["speech", "noise"]


def test_voice_rows_learn_the_voice_from_its_clips_beside_the_builtin_noise_or_free_bases(bench, speech_noise, builtins,
                                                                                         few_bases):
    folder, entry = speech_noise
    case = bench.load_mixture(str(folder), entry, str(folder / "clips" / "clips.json"))
    for row in (bench.voice_and_builtin, bench.voice_and_free):
        stems = row(case)
        assert stems.shape == case["refs"].shape
        assert bench.improvements(case, stems, ordered=True).mean() > 0
    assert few_bases == [SPEECH["id"]]  # the voice only: the noise is the built-in's, or the free bases'


def test_corpus_run_with_builtin_and_supervised_writes_their_rows_to_json_and_prints_targets(
        bench, speech_noise, builtins, few_bases, monkeypatch, capsys):
    folder, entry = speech_noise
    out = folder / "scores.json"
    monkeypatch.setattr("sys.argv", ["bench_quality.py", "--corpus", str(folder), "--split", "test", "--methods",
                                     "default", "--builtin", "--supervised", "-j", "1", "--json", str(out)])
    bench.main()
    printed = capsys.readouterr().out
    records = json.loads(out.read_text())["scores"]
    assert [r["method"] for r in records] == ["default", "builtins", "register", "supervised", "sklearn-recipe",
                                              "voice-noise", "voice-free"]
    assert all("error" not in r and len(r["si_sdri"]) == 2 for r in records), records
    assert records[1]["models"] == ["speech", "noise"]
    assert records[2]["models"] == ["speech_low", "noise"]  # the voice is a man's
    for label in ("nmfsep built-ins", "built-ins, voices by register", "nmfsep supervised", "scikit-learn recipe, 20 KL bases",
                  "own voice + built-in noise", "own voice + --free 8"):
        assert label in printed
    assert "built-ins on speech_noise: " in printed
    assert "supervised on speech_noise: " in printed
    assert "seconds per mixture (the 1 mixtures the built-ins row applies to): built-ins " in printed


def test_builtin_without_a_clips_index_is_a_usage_error_that_names_the_index(bench, corpus, monkeypatch, capsys):
    folder, _ = corpus
    monkeypatch.setattr("sys.argv", ["bench_quality.py", "--corpus", str(folder), "--builtin", "-j", "1"])
    with pytest.raises(SystemExit) as exit_info:
        bench.main()
    assert exit_info.value.code == 2
    assert f"{folder / 'clips' / 'clips.json'}: no such file" in capsys.readouterr().err


def record(method, cls, mean, seconds=1.0, id_=None):
    return {"id": id_ or f"{cls}/0", "class": cls, "method": method, "mean": mean, "si_sdri": [mean],
            "seconds": seconds}


def test_target_lines_give_the_blind_default_on_the_mixtures_the_builtins_apply_to_where_fewer(bench):
    records = [record("default", "speech_music", 3.0, id_="a"), record("default", "speech_music", 9.0, id_="b"),
               record("builtins", "speech_music", 7.0, id_="a")]
    lines = bench.target_lines(records)
    assert lines[0].startswith("built-ins on speech_music: +7.00 dB") and "blind default +6.00 +2 = +8.00: NOT met" in lines[0]
    assert lines[1] == "  (on the 1 mixtures the built-ins apply to, the blind default is +3.00: built-ins +4.00 above it)"


def test_target_lines_give_the_seconds_by_number_of_builtins_where_a_run_has_several(bench):
    records = [record("default", "speech_music", 5.0, 1.0, id_="a"),
               record("builtins", "speech_music", 7.0, 1.5, id_="a"),
               record("default", "three_mixed", 3.0, 1.0, id_="b"),
               record("builtins", "three_mixed", 4.0, 5.0, id_="b")]
    records[1]["models"], records[3]["models"] = ["speech", "music"], ["speech", "music", "noise"]
    lines = bench.target_lines(records)
    assert lines[-3].endswith("built-ins 3.2 s, blind default 1.0 s, ratio 3.25 (target: about 1)")
    assert lines[-2] == ("  with 2 built-ins (1 mixtures, their pair's training shipped): built-ins 1.5 s, "
                         "blind default 1.0 s, ratio 1.50")
    assert lines[-1].startswith("  with 3 built-ins (1 mixtures, their training made at the split")
    assert lines[-1].endswith("built-ins 5.0 s, blind default 1.0 s, ratio 5.00")
    assert not any("with 2" in line for line in bench.target_lines(records[:2]))


def test_target_lines_say_met_or_not_met_per_class_with_the_numbers(bench):
    records = [record("default", "speech_noise", 5.0, 2.0), record("builtins", "speech_noise", 7.5, 1.0),
               record("default", "speech_music", 3.0, 4.0), record("builtins", "speech_music", 6.5, 3.0),
               record("default", "drums_pitched", 1.0, 2.0), record("builtins", "drums_pitched", 5.9, 2.0),
               record("supervised", "talkers_mf", 4.0), record("sklearn-recipe", "talkers_mf", 1.5),
               record("supervised", "pitched_far", 4.0), record("sklearn-recipe", "pitched_far", 2.5)]
    lines = bench.target_lines(records)
    assert lines[0] == ("built-ins on speech_noise: +7.50 dB, target >= +6 and >= blind default +5.00 +2 = +7.00: met")
    assert lines[1].startswith("built-ins on speech_music: +6.50 dB") and lines[1].endswith("= +6.00: met")
    assert lines[2].startswith("built-ins on drums_pitched: +5.90 dB") and lines[2].endswith("= +6.00: NOT met")
    assert lines[3] == "supervised on talkers_mf: +4.00 dB, target >= recipe +1.50 +2 = +3.50: met"
    assert lines[4] == "supervised on pitched_far: +4.00 dB, target >= recipe +2.50 +2 = +4.50: NOT met"
    assert lines[5] == ("seconds per mixture (the 3 mixtures the built-ins row applies to): built-ins 2.0 s, "
                        "blind default 2.7 s, ratio 0.75 (target: about 1)")
