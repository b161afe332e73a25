"""The benchmark corpus generator's split assignment and manifest check (benchmarks/make_corpus.py),
on made-up material lists: no espeak-ng, flite, fluidsynth or Debian data needed."""
import importlib.util
import pathlib

import numpy as np
import pytest
import soundfile as sf

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "make_corpus.py"


@pytest.fixture(scope="module")
def corpus():
    spec = importlib.util.spec_from_file_location("make_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_materials(corpus):
    """A material list shaped like the real one, but small and invented."""
    materials = []
    for k in range(14):
        gender = "F" if k % 3 == 0 else "M"
        materials.append({"id": f"speaker:espeak:v{k}", "kind": "speech", "gender": gender, "group": f"speech:{gender}"})
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


def test_write_wav_writes_the_same_float_file_every_time(corpus, tmp_path):
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (1000, 2)).astype(np.float32)
    corpus.write_wav(tmp_path / "a.wav", data, 22050)
    corpus.write_wav(tmp_path / "b.wav", data, 22050)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    back, rate = sf.read(tmp_path / "a.wav", dtype="float32")
    assert rate == 22050 and sf.info(tmp_path / "a.wav").subtype == "FLOAT"
    np.testing.assert_array_equal(back, data)
