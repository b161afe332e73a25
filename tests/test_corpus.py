"""The benchmark corpus generator (benchmarks/make_corpus.py): its split assignment, manifest check and
clip plans, on made-up material lists and small files: no espeak-ng, flite, fluidsynth or Debian data needed."""
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(scope="module")
def corpus(benchmark_script):
    return benchmark_script("make_corpus")


def fake_materials(corpus):
    """A material list shaped like the real one, but small and invented."""
    materials = []
    for k in range(14):
        gender = "F" if k % 3 == 0 else "M"
        materials.append({"id": f"speaker:espeak:v{k}", "kind": "speech", "engine": "espeak", "voice": f"v{k}",
                          "gender": gender, "group": f"speech:{gender}"})
    for name in ("forest.ogg", "forest2.ogg", "forest3.ogg", "cave.ogg", "cave_old.ogg", "ice.ogg", "sky.ogg", "sea.ogg"):
        materials.append({"id": f"track:supertux:{name}", "kind": "music", "group": "track",
                          "unit": corpus.track_unit(name)})
    for recipe in ("slope-1.0", "slope+0.0", "band500", "lowpass1500"):
        materials.append({"id": f"noise:coloured:{recipe}", "kind": "noise", "group": "noise:coloured"})
    for name in ("rain.wav", "fire.ogg", "lava.wav"):
        materials.append({"id": f"noise:supertux:{name}", "kind": "noise", "group": "noise:recorded"})
    for soundfont in ("FluidR3_GM", "TimGM6mb"):
        for program in list(range(0, 8)) + list(range(32, 40)) + list(range(72, 80)):
            materials.append({"id": f"program:{soundfont}:{program}", "kind": "instrument", "soundfont": soundfont,
                              "program": program, "group": f"program:{corpus.family(program)}",
                              "unit": f"program:{program}"})
        for kit in (0, 8, 16, 24):
            materials.append({"id": f"drumkit:{soundfont}:{kit}", "kind": "drums", "soundfont": soundfont,
                              "program": kit, "group": "drumkit", "unit": f"drumkit:{kit}"})
    return materials


def test_assign_splits_puts_each_material_and_shared_sound_in_one_split(corpus):
    materials = fake_materials(corpus)
    splits = corpus.assign_splits(materials, seed=0)
    assert set(splits) == {m["id"] for m in materials}
    assert set(splits.values()) == set(corpus.SPLITS)
    by_unit = {}
    for m in materials:
        by_unit.setdefault(m.get("unit", m["id"]), set()).add(splits[m["id"]])
    assert all(len(s) == 1 for s in by_unit.values())
    # the shared units really are shared: one program in both soundfonts, versions of one tune
    assert splits["program:FluidR3_GM:33"] == splits["program:TimGM6mb:33"]
    assert splits["track:supertux:forest.ogg"] == splits["track:supertux:forest3.ogg"]


def test_assign_splits_gives_every_group_material_in_every_split(corpus):
    materials = fake_materials(corpus)
    splits = corpus.assign_splits(materials, seed=3)
    for group in {m["group"] for m in materials}:
        assert {splits[m["id"]] for m in materials if m["group"] == group} == set(corpus.SPLITS), group


def test_assign_splits_is_deterministic_from_the_seed(corpus):
    materials = fake_materials(corpus)
    first = corpus.assign_splits(materials, seed=7)
    assert corpus.assign_splits(list(reversed(materials)), seed=7) == first
    assert any(corpus.assign_splits(materials, seed=s) != first for s in (8, 9, 10))


def test_assign_splits_refuses_a_group_too_small_for_three_splits(corpus):
    with pytest.raises(ValueError, match="fewer than the 3 splits"):
        corpus.assign_splits([{"id": "a", "group": "g"}, {"id": "b", "group": "g"}], seed=0)


def test_every_class_can_be_built_from_every_split(corpus):
    materials = fake_materials(corpus)
    pools = corpus.split_materials(materials, corpus.assign_splits(materials, seed=0))
    for split in corpus.SPLITS:
        assert corpus.class_problems(pools[split]) == [], split


def test_class_problems_names_the_classes_a_split_cannot_build(corpus):
    only_men = [m for m in fake_materials(corpus) if not (m["kind"] == "speech" and m["gender"] == "F")]
    no_drums = [m for m in only_men if m["kind"] != "drums"]
    problems = corpus.class_problems(no_drums)
    assert [p.split(":")[0] for p in problems] == ["talkers_mf", "drums_pitched"]


def manifest(corpus, materials_by_split):
    mixtures = []
    for split, materials in materials_by_split:
        mixtures.append({"id": f"{split}/talkers_mf/{len(mixtures):04d}", "split": split, "class": "talkers_mf",
                         "sources": [{"material": m} for m in materials]})
    return {"version": 1, "seed": 0, "mixtures": mixtures}


def test_check_manifest_accepts_disjoint_splits(corpus):
    corpus.check_manifest(manifest(corpus, [("train", ["speaker:espeak:a", "program:TimGM6mb:1"]),
                                            ("test", ["speaker:espeak:b", "program:TimGM6mb:2"])]))


def test_check_manifest_rejects_a_speaker_in_two_splits(corpus):
    bad = manifest(corpus, [("train", ["speaker:espeak:a", "speaker:flite:slt"]),
                            ("val", ["speaker:flite:slt", "speaker:espeak:b"])])
    with pytest.raises(ValueError, match=r"speaker:flite:slt in train, val"):
        corpus.check_manifest(bad)


def test_check_manifest_rejects_one_program_with_two_soundfonts_in_two_splits(corpus):
    bad = manifest(corpus, [("train", ["program:FluidR3_GM:40"]), ("test", ["program:MuseScore_General:40"])])
    with pytest.raises(ValueError, match=r"program:40 in test, train"):
        corpus.check_manifest(bad)


def test_check_manifest_rejects_a_mixture_filed_under_another_split(corpus):
    bad = manifest(corpus, [("train", ["speaker:espeak:a"])])
    bad["mixtures"][0]["split"] = "test"
    with pytest.raises(ValueError, match="does not start with its split"):
        corpus.check_manifest(bad)


def test_track_unit_joins_versions_of_one_tune_only(corpus):
    assert corpus.track_unit("forest/forest2.ogg") == corpus.track_unit("forest/forest.ogg")
    assert corpus.track_unit("retro/cave_old.ogg") == corpus.track_unit("antarctic/cave.ogg")
    assert corpus.track_unit("antarctic/arctic_cave.ogg") != corpus.track_unit("antarctic/cave.ogg")


@pytest.mark.parametrize("cls", ["talkers_mf", "talkers_same", "speech_noise", "speech_music", "pitched_far",
                                 "pitched_same", "drums_pitched", "three_mixed"])
def test_plan_mixture_draws_only_its_split_material_within_the_ranges(corpus, cls):
    materials = fake_materials(corpus)
    pools = corpus.split_materials(materials, corpus.assign_splits(materials, seed=0))
    by_id = {m["id"]: m for m in materials}
    for split in corpus.SPLITS:
        for index in range(6):
            plan = corpus.plan_mixture(pools[split], split, cls, index, seed=0)
            assert plan == corpus.plan_mixture(pools[split], split, cls, index, seed=0)
            used = [by_id[s["material"]] for s in plan["sources"]]
            assert all(m in pools[split] for m in used)
            assert len({m["id"] for m in used}) == len(used)
            assert plan["rate"] in (16000, 22050, 44100) and plan["channels"] in (1, 2)
            assert 2 <= plan["seconds"] <= 10
            assert plan["sources"][0]["gain_db"] == 0 and all(-6 <= s["gain_db"] <= 6 for s in plan["sources"])
            genders = [m["gender"] for m in used if m["kind"] == "speech"]
            if cls == "talkers_mf":
                assert sorted(genders) == ["F", "M"]
            if cls == "talkers_same":
                assert len(genders) == 2 and genders[0] == genders[1]
            if cls == "pitched_far":
                ranges = sorted((min(n[2] for n in s["notes"]), max(n[2] for n in s["notes"])) for s in plan["sources"])
                assert ranges[0][1] <= 55 and ranges[1][0] >= 60
            if cls == "three_mixed":
                assert len(used) == 3 and len({m["kind"] for m in used}) >= 2


def test_mixture_plans_of_one_split_extend_that_split_of_a_smaller_corpus(corpus):
    materials = fake_materials(corpus)
    pools = corpus.split_materials(materials, corpus.assign_splits(materials, seed=0))
    small = corpus.mixture_plans(pools, 10, seed=0)
    big = corpus.mixture_plans(pools, 20, seed=0, splits=["val"])
    assert {p["split"] for p in big} == {"val"} and len(big) == len(corpus.CLASSES) * corpus.split_counts(20)["val"]
    small_val = {p["id"]: p for p in small if p["split"] == "val"}
    assert small_val and all(p == small_val[p["id"]] for p in big if p["id"] in small_val)
    assert len(big) > len(small_val)


def test_chosen_splits_refuses_a_name_that_is_not_a_split(corpus):
    assert corpus.chosen_splits("test,val") == ["val", "test"]
    with pytest.raises(SystemExit, match="--splits takes"):
        corpus.chosen_splits("val,dev")


def test_write_wav_writes_the_same_float_file_every_time(corpus, tmp_path):
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (1000, 2)).astype(np.float32)
    corpus.write_wav(tmp_path / "a.wav", data, 22050)
    corpus.write_wav(tmp_path / "b.wav", data, 22050)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    back, rate = sf.read(tmp_path / "a.wav", dtype="float32")
    assert rate == 22050 and sf.info(tmp_path / "a.wav").subtype == "FLOAT"
    np.testing.assert_array_equal(back, data)


# ---------------------------------------------------------------- clean clips of each material (--clips)

def test_clip_plans_give_every_material_of_a_split_its_clips_and_no_other_material(corpus):
    materials = fake_materials(corpus)
    pools = corpus.split_materials(materials, corpus.assign_splits(materials, seed=0))
    for split in corpus.SPLITS:
        plans = corpus.clip_plans(pools[split], split, {}, n_clips=3, seconds=8.0, seed=0)
        assert sorted(p["material"] for p in plans) == sorted(m["id"] for m in pools[split])
        assert all(p["split"] == split and p["dir"].startswith(split + "/") for p in plans)
        assert len({p["dir"] for p in plans}) == len(plans) and not any("." in p["dir"] for p in plans)
        assert all(len(p["clips"]) == 3 and all(s["material"] == p["material"] for c in p["clips"] for s in c) for p in plans)
        assert plans == corpus.clip_plans(pools[split], split, {}, n_clips=3, seconds=8.0, seed=0)
        seeds = [s["seed"] for p in plans for c in p["clips"] for s in c]
        assert len(set(seeds)) == len(seeds)


def test_clip_plans_play_new_phrases_over_the_programs_whole_range(corpus):
    materials = fake_materials(corpus)
    pools = corpus.split_materials(materials, corpus.assign_splits(materials, seed=0))
    for plan in corpus.clip_plans(pools["train"], "train", {}, n_clips=3, seconds=8.0, seed=0):
        material = next(m for m in materials if m["id"] == plan["material"])
        if material["kind"] in ("instrument", "drums"):
            candidates = [s for c in plan["clips"] for s in c]
            notes = [tuple(n) for s in candidates for n in s["notes"]]
            assert notes and max(n[0] for n in notes) < 8.0
            assert len({tuple(map(tuple, s["notes"])) for s in candidates}) == 3 * corpus.CLIP_CANDIDATES
        if material["kind"] == "instrument":
            lo, hi = corpus.program_range(material["program"])
            assert all(lo <= n[2] <= hi for n in notes)


def test_clip_plans_give_a_speaker_sentences_and_speeds_its_mixtures_did_not_use(corpus):
    speaker = {"id": "speaker:espeak:v0", "kind": "speech", "engine": "espeak", "voice": "v0", "gender": "F"}
    said = set(range(0, len(corpus.SENTENCES), 2))
    usage = {speaker["id"]: {"sentences": said, "speeds": set(range(140, 180))}}
    plan, = corpus.clip_plans([speaker], "test", usage, n_clips=3, seconds=8.0, seed=0)
    assert all(len(c) == 1 for c in plan["clips"])
    sentences = [i for c in plan["clips"] for i in c[0]["sentences"]]
    assert len(set(sentences)) == len(sentences) == 3 * corpus.SENTENCES_PER_CLIP
    assert not said & set(sentences)
    assert all(180 <= c[0]["speed"] <= 190 for c in plan["clips"])


def fake_klettres(corpus, tmp_path, monkeypatch, n_syllables):
    monkeypatch.setattr(corpus, "KLETTRES_DIR", str(tmp_path))
    (tmp_path / "xx" / "alpha").mkdir(parents=True)
    (tmp_path / "xx" / "syllab").mkdir(parents=True)
    for k in range(n_syllables):
        (tmp_path / "xx" / "syllab" / f"s{k:02d}.ogg").write_bytes(b"")
    return {"id": "speaker:klettres:xx", "kind": "speech", "engine": "klettres", "voice": "xx", "gender": "M", "f0": 120.0}


def test_klettres_clip_plans_avoid_the_clips_the_mixtures_said(corpus, tmp_path, monkeypatch):
    speaker = fake_klettres(corpus, tmp_path, monkeypatch, 30)
    said = set(corpus.klettres_clips("xx")[:10])
    plan, = corpus.clip_plans([speaker], "val", {speaker["id"]: {"clips": said}}, n_clips=2, seconds=8.0, seed=0)
    for candidates in plan["clips"]:
        assert all(sorted(source["clips"]) == corpus.klettres_clips("xx")[10:] for source in candidates)


def test_klettres_clip_plans_use_every_clip_when_too_few_are_unused(corpus, tmp_path, monkeypatch):
    speaker = fake_klettres(corpus, tmp_path, monkeypatch, corpus.KLETTRES_MIN_POOL + 3)
    said = set(corpus.klettres_clips("xx")[:4])
    plan, = corpus.clip_plans([speaker], "val", {speaker["id"]: {"clips": said}}, n_clips=2, seconds=8.0, seed=0)
    assert all(source["clips"] == corpus.klettres_clips("xx") for c in plan["clips"] for source in c)


def test_free_gaps_are_the_frames_no_taken_segment_covers(corpus):
    frames, taken = 1000, [(50, 200), (180, 300), (700, 760), (990, 1200)]
    gaps = corpus.free_gaps(frames, taken)
    free = {f for lo, hi in gaps for f in range(lo, hi)}
    assert free == {f for f in range(frames) if not any(a <= f < b for a, b in taken)}
    assert gaps == [(0, 50), (300, 700), (760, 990)]


def track_file(tmp_path, rate, seconds):
    path = tmp_path / "tune.wav"
    sf.write(path, np.random.default_rng(0).standard_normal(seconds * rate) * 0.1, rate)
    return str(path)


def test_track_clips_avoid_the_segments_the_mixtures_played_and_each_other(corpus, tmp_path):
    rate = 8000
    path = track_file(tmp_path, rate, 40)
    avoid = [(5 * rate, 12 * rate), (20 * rate, 23 * rate)]
    for seed in range(5):
        segments, file_rate = corpus.track_clip_segments(path, rate, 4.0, avoid, 3, np.random.default_rng(seed))
        assert file_rate == rate and len(segments) == 3 and all(frames == 4 * rate + 1 for _, frames in segments)
        spans = sorted([(s, s + frames) for s, frames in segments] + avoid)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
        assert all(0 <= s and s + frames <= 40 * rate for s, frames in segments)


def test_track_clips_fill_a_short_free_stretch_with_as_many_clips_as_fit(corpus, tmp_path):
    rate = 8000
    path = track_file(tmp_path, rate, 20)
    segments, _ = corpus.track_clip_segments(path, rate, 4.0, [(0, 11 * rate)], 3, np.random.default_rng(0))
    assert len(segments) == 2 and all(s >= 11 * rate for s, _ in segments)  # 9 s free: room for two 4 s clips


def test_a_track_without_room_for_a_clip_gives_one_shorter_clip_or_none(corpus, tmp_path):
    rate = 8000
    path = track_file(tmp_path, rate, 20)
    segments, _ = corpus.track_clip_segments(path, rate, 8.0, [(3 * rate, 17 * rate)], 3, np.random.default_rng(0))
    assert segments == [(17 * rate, 3 * rate)]  # the longer of the two 3 s gaps (the later, on a tie)
    segments, _ = corpus.track_clip_segments(path, rate, 8.0, [(rate, 19 * rate)], 3, np.random.default_rng(0))
    assert segments == []  # 1 s gaps: below CLIP_MIN_SECONDS


def test_mixture_usage_replays_the_track_segment_a_mixture_played(corpus, tmp_path):
    rate = 8000
    path = tmp_path / "tune.wav"
    sf.write(path, np.random.default_rng(0).standard_normal(30 * rate) * 0.1, rate)
    track = {"id": "track:supertux:tune.wav", "kind": "music", "path": str(path)}
    source = {"material": track["id"], "kind": "music", "seed": 12345}
    plan = {"id": "test/speech_music/0000", "rate": 16000, "seconds": 3.5, "sources": [source]}
    usage, details = corpus.mixture_usage([plan], {track["id"]: track})
    (start, stop), = usage[track["id"]]["segments"]
    x, detail = corpus.make_source(track, source, 16000, 56000, None, str(tmp_path))
    assert details[(plan["id"], 0)] == detail
    assert detail.endswith(f"from {start / rate:.2f} s") and stop - start == int(3.5 * rate) + 1


def test_clip_index_lists_each_materials_kind_and_what_to_group_it_by(corpus):
    program = {"id": "program:TimGM6mb:33", "kind": "instrument", "soundfont": "TimGM6mb", "program": 33}
    kit = {"id": "drumkit:FluidR3_GM:8", "kind": "drums", "soundfont": "FluidR3_GM", "program": 8}
    speaker = {"id": "speaker:flite:slt", "kind": "speech", "engine": "flite", "voice": "slt", "gender": "F"}
    track = {"id": "track:supertux:forest/forest2.ogg", "kind": "music", "path": corpus.SUPERTUX + "/music/forest/forest2.ogg"}
    noise = {"id": "noise:coloured:band500", "kind": "noise", "recipe": "band500"}
    assert corpus.clip_entry(program, "train", "train/x") == {
        "id": "program:TimGM6mb:33", "split": "train", "kind": "instrument", "dir": "train/x",
        "soundfont": "TimGM6mb", "program": 33, "family": "bass"}
    assert corpus.clip_entry(kit, "val", "val/k")["program"] == 8 and "family" not in corpus.clip_entry(kit, "val", "val/k")
    assert corpus.clip_entry(speaker, "test", "test/s")["gender"] == "F"
    assert corpus.clip_entry(speaker, "test", "test/s")["engine"] == "flite"
    assert corpus.clip_entry(track, "train", "t")["tune"] == corpus.track_unit("forest/forest.ogg")
    assert corpus.clip_entry(noise, "train", "n")["recipe"] == "band500"


def test_build_clips_writes_each_clip_and_lists_it_in_the_index_the_same_every_time(corpus, tmp_path):
    rate = 8000
    path = tmp_path / "tune.wav"
    sf.write(path, np.random.default_rng(0).standard_normal(40 * rate) * 0.1, rate)
    track = {"id": "track:supertux:tune.wav", "kind": "music", "path": str(path), "group": "track"}
    noise = {"id": "noise:coloured:band500", "kind": "noise", "recipe": "band500", "group": "noise:coloured"}
    usage = {track["id"]: {"segments": [(0, 10 * rate)]}}
    entries = {}
    for run in ("a", "b"):
        for plan in corpus.clip_plans([track, noise], "train", usage, n_clips=3, seconds=2.0, seed=0):
            material = track if plan["material"] == track["id"] else noise
            renders = [[None] * len(candidates) for candidates in plan["clips"]]
            entries[run, material["kind"]] = corpus.build_clips((plan, material, renders, str(tmp_path / run), 16000, 2.0))
    for kind in ("music", "noise"):
        entry = entries["a", kind]
        assert entry["kind"] == kind and entry["split"] == "train" and len(entry["clips"]) == 3
        for clip in entry["clips"]:
            info = sf.info(tmp_path / "a" / clip["file"])
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 32000, "FLOAT")
            assert (tmp_path / "a" / clip["file"]).read_bytes() == (tmp_path / "b" / clip["file"]).read_bytes()
            assert clip["active"] > 0.9
        assert entries["b", kind] == entry
    starts = [float(c["detail"].split("from ")[1].split(" s")[0]) for c in entries["a", "music"]["clips"]]
    assert all(s >= 10 for s in starts)
    noise_clips = [sf.read(tmp_path / "a" / c["file"])[0] for c in entries["a", "noise"]["clips"]]
    assert not np.allclose(noise_clips[0], noise_clips[1])


def test_build_clips_keeps_each_clips_most_active_candidate(corpus, tmp_path):
    rate = 8000
    x = np.random.default_rng(0).standard_normal(12 * rate) * 0.1
    x[2 * rate:10 * rate] *= 1e-3  # a loud start and end around a long near-silence
    path = tmp_path / "bursts.wav"
    sf.write(path, x, rate)
    noise = {"id": "noise:supertux:bursts.wav", "kind": "noise", "path": str(path)}
    plan, = corpus.clip_plans([noise], "test", {}, n_clips=3, seconds=3.0, seed=0)
    entry = corpus.build_clips((plan, noise, [[None] * len(c) for c in plan["clips"]], str(tmp_path), rate, 3.0))
    spread = False
    for candidates, clip in zip(plan["clips"], entry["clips"]):
        assert len(candidates) == corpus.CLIP_CANDIDATES
        activity = [corpus.active_fraction(corpus.make_source(noise, s, rate, 3 * rate, None, str(tmp_path))[0], rate)
                    for s in candidates]
        chosen = next((a for a in activity if a >= 0.9), max(activity))
        assert clip["active"] == pytest.approx(chosen, abs=0.01)
        spread |= len({round(a, 2) for a in activity}) > 1
    assert spread  # the candidates did differ, so the choice was tested


def test_render_candidates_renders_a_further_candidate_only_for_clips_not_yet_mostly_active(corpus, tmp_path, monkeypatch):
    """fluidsynth stands in: a fake render_all writes each segment as loud noise, except the first
    candidate of every program 1 clip 00, which it leaves silent after its first second."""
    batches, files = [], {}

    def fake_render_all(plans, materials, folder, jobs, group=None):
        batches.append(sorted(p["id"] for p in plans))
        index = {}
        for k, plan in enumerate(plans):
            files.setdefault(group(plan, 0, materials[plan["sources"][0]["material"]]), set()).add(plan["id"].split("/")[0])
            frames = round(plan["seconds"] * corpus.RENDER_RATE)
            x = np.random.default_rng(k).standard_normal((frames, 2)).astype("<f4") * 0.1
            if plan["id"].endswith("00/0") and "program_TimGM6mb_1/" in plan["id"]:
                x[corpus.RENDER_RATE:] = 0
            path = os.path.join(folder, f"{k}.raw")
            x.tofile(path)
            index[(plan["id"], 0)] = (path, 0, frames)
        return index
    monkeypatch.setattr(corpus, "render_all", fake_render_all)
    materials = [{"id": f"program:TimGM6mb:{p}", "kind": "instrument", "soundfont": "TimGM6mb", "program": p} for p in (1, 2, 3)]
    plans = (corpus.clip_plans(materials[:2], "train", {}, n_clips=2, seconds=2.0, seed=0)
             + corpus.clip_plans(materials[2:], "test", {}, n_clips=2, seconds=2.0, seed=0))
    by_id = {m["id"]: m for m in materials}
    renders = corpus.render_candidates(plans, by_id, str(tmp_path / "render"), 8000, 2.0, jobs=1)
    assert batches[0] == sorted(f"{p['dir']}/{c:02d}/0" for p in plans for c in range(2))
    assert batches[1:] == [["train/program_TimGM6mb_1/00/1"]]
    assert all(len(splits) == 1 for splits in files.values())  # a split's clips render alike without the others
    entry = corpus.build_clips((plans[0], materials[0], [[renders.get((f"{plans[0]['dir']}/{c:02d}/{j}", 0))
                                for j in range(corpus.CLIP_CANDIDATES)] for c in range(2)], str(tmp_path), 8000, 2.0))
    assert [c["active"] for c in entry["clips"]] == [1.0, 1.0]


def test_render_all_with_a_group_renders_each_groups_segments_in_a_file_of_their_own(corpus, tmp_path, monkeypatch):
    """A segment's samples depend on what fluidsynth played before it in the file: a group's
    segments are rendered alone, the same whichever others are rendered in the same run."""
    def fake_fluidsynth(cmd, **kwargs):
        open(cmd[-3], "wb").close()
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(corpus.subprocess, "run", fake_fluidsynth)
    materials = [{"id": f"program:{sf}:{p}", "kind": "instrument", "soundfont": sf, "program": p}
                 for sf in ("TimGM6mb", "FluidR3_GM") for p in (1, 2)]
    plans = corpus.clip_plans(materials, "train", {}, n_clips=3, seconds=2.0, seed=0)
    segments = [{"id": f"{p['dir']}/{c:02d}", "seconds": 2.0, "sources": [cands[0]]} for p in plans for c, cands in enumerate(p["clips"])]
    by_id = {m["id"]: m for m in materials}
    index = corpus.render_all(segments, by_id, str(tmp_path), 1, group=lambda plan, k, material: corpus.slug(material["id"]))
    files = {}
    for segment in segments:
        files.setdefault(index[(segment["id"], 0)][0], set()).add(segment["sources"][0]["material"])
    assert sorted(len(m) for m in files.values()) == [1, 1, 1, 1]
    assert sorted(index[(s["id"], 0)][1] for s in segments if s["id"].startswith(plans[0]["dir"])) == [0, 3 * 44100, 6 * 44100]
    # without a group: one file per soundfont (up to 60 segments each), as the mixtures are rendered
    index = corpus.render_all(segments, by_id, str(tmp_path), 1)
    assert len({index[(s["id"], 0)][0] for s in segments}) == 2
