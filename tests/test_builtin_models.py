"""Built-in models (nmfsep.models): names, cards, the name-or-path rule, `nmfsep models`, mixing
with one's own models (conformed to their STFT) and the shipped pair trainings.

The tests make their own small built-ins (a fixture folder) and point nmfsep.models.folder at
it; the last tests check whatever is actually shipped in src/nmfsep/models."""

from dataclasses import replace
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import nmfsep
from nmfsep import model, supervised, synth
from nmfsep.cli import cli
from nmfsep.discriminative import Trained
from nmfsep.errors import ModelError
from nmfsep.evaluate import si_sdr
from nmfsep.pipeline import Settings, split_sources

RATE = 22050
SHIPPED = Path(nmfsep.__file__).parent / "models"


def _models_module():
    import nmfsep.models

    return nmfsep.models


def _learn_builtins(folder: Path) -> dict:
    """Three small built-ins (two tones and a noise) at 22050 Hz with cards, and the pair
    training of low+mid written as a shipped pair; returns what was written."""
    models = _models_module()
    _, sources = synth.mixture(2, sample_rate=RATE, duration=3.0, seed=7)
    hiss = np.random.default_rng(3).standard_normal(3 * RATE).astype(np.float32) * 0.1
    learned = {name: supervised.learn(audio, RATE, 6, name=name, max_iter=100)
               for name, audio in (("low", sources[0]), ("mid", sources[1]), ("hiss", hiss))}
    folder.mkdir()
    for name, m in learned.items():
        model.save(m, str(folder / f"{name}.npz"))
        (folder / f"{name}.md").write_text(f"# A {name} test source\n\nLearned from synthetic audio.\n")
    loaded = {name: model.load(str(folder / f"{name}.npz")) for name in learned}
    pair = (loaded["low"], loaded["mid"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NMFSEP_CACHE_DIR", "")
        patch.setattr(supervised, "SPLIT_RECIPE", replace(supervised.SPLIT_RECIPE, steps=20))
        trained = supervised.discriminative_training(pair, Settings(models=pair, unfolded_layers=2))
    (folder / "pairs").mkdir()
    models.write_training(models.pair_path(["mid", "low"], folder), pair, trained)
    return {"models": loaded, "trained": trained}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("builtin") / "models"
    return {"folder": folder, **_learn_builtins(folder)}


@pytest.fixture
def builtins(made, monkeypatch):
    """nmfsep.models pointed at the fixture's folder."""
    monkeypatch.setattr(_models_module(), "folder", lambda: made["folder"])
    return made


@pytest.fixture
def mix():
    mix, _ = synth.mixture(2, sample_rate=RATE, duration=2.0, seed=0)
    return mix


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def as_float16(trained: Trained) -> Trained:
    """The training as a pair file stores it (float16; the layers at least its smallest positive
    value), back in float32."""
    tiny = np.finfo(np.float16).smallest_subnormal
    return Trained([np.float32(np.float16(np.maximum(w, tiny))) for w in trained.layers],
                   np.float32(np.float16(trained.mask_bases)))


def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a training was started")

    monkeypatch.setattr(supervised, "_train", fail)
    monkeypatch.setattr(supervised.discriminative, "train", fail)


def count_trainings(monkeypatch) -> list:
    made = []
    real = supervised.discriminative.train
    monkeypatch.setattr(supervised, "SPLIT_RECIPE", replace(supervised.SPLIT_RECIPE, steps=20))
    monkeypatch.setattr(supervised.discriminative, "train", lambda *a, **k: made.append(a) or real(*a, **k))
    return made


# --- names, load, cards --------------------------------------------------------------------

def test_names_lists_the_builtins_sorted_and_load_reads_one_by_name(builtins):
    assert nmfsep.models.names() == ["hiss", "low", "mid"]
    speech_like = nmfsep.models.load("low")
    assert speech_like.name == "low" and speech_like.sample_rate == RATE
    np.testing.assert_array_equal(speech_like.bases, builtins["models"]["low"].bases)


def test_card_gives_the_model_card_and_the_summary_its_first_line(builtins):
    models = _models_module()
    assert models.card("mid") == "# A mid test source\n\nLearned from synthetic audio.\n"
    assert models.describe("mid") == {"name": "mid", "summary": "A mid test source", "bases": 6,
                                      "sample_rate": RATE, "n_fft": 1024, "hop_length": 256,
                                      "path": str(builtins["folder"] / "mid.npz")}
    with pytest.raises(ModelError, match=r"^nothing: no built-in model of that name \(built-ins: hiss, low, mid\)$"):
        models.card("nothing")


def test_a_file_named_like_a_builtin_in_the_working_folder_does_not_shadow_it(builtins, tmp_path, monkeypatch):
    models = _models_module()
    _, sources = synth.mixture(3, sample_rate=RATE, duration=2.0, seed=1)
    own = supervised.learn(sources[2], RATE, 3, name="mine")
    monkeypatch.chdir(tmp_path)
    model.save(own, "low")
    model.save(own, "low.npz")
    assert models.load("low").n_bases == 6                      # the built-in
    assert models.load("./low").n_bases == 3                    # a path
    assert models.load("low.npz").n_bases == 3                  # a path
    assert models.load(Path("low")).n_bases == 3                # a Path is always a path
    with pytest.raises(ModelError, match=r"^mid\.npz: no such model file \(the built-in is named mid, without \.npz\)$"):
        models.load("mid.npz")                                  # .npz: a path, not the built-in
    with pytest.raises(ModelError, match=r"^loud\.npz: no such model file$"):
        models.load("loud.npz")                                 # no built-in of that name: no hint


def test_a_name_that_is_neither_a_file_nor_a_builtin_lists_the_builtins(builtins, wav_file, tmp_path, monkeypatch):
    models = _models_module()
    with pytest.raises(ModelError, match=r"^speach: no such model file and no built-in model of that name "
                                         r"\(built-ins: hiss, low, mid\)$"):
        models.load("speach")
    monkeypatch.chdir(tmp_path)
    result = run("split", wav_file(), "--model", "low", "--model", "speach", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == ("nmfsep: error: speach: no such model file and no built-in model of that name "
                             "(built-ins: hiss, low, mid)\n")
    assert not (tmp_path / "out").exists()


def test_models_command_lists_one_line_per_builtin(builtins):
    result = run("models")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["hiss  6 bases  22050 Hz  A hiss test source",
                                          "low   6 bases  22050 Hz  A low test source",
                                          "mid   6 bases  22050 Hz  A mid test source"]
    result = run("models", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["name"] for r in records] == ["hiss", "low", "mid"]
    assert records[1] == _models_module().describe("low")


def test_models_command_with_a_name_prints_its_card_and_an_unknown_name_lists_the_builtins(builtins):
    result = run("models", "low")
    assert result.exit_code == 0, result.output
    assert result.stdout == "# A low test source\n\nLearned from synthetic audio.\n"
    result = run("models", "low", "--json")
    assert json.loads(result.stdout)["card"].startswith("# A low test source")
    result = CliRunner().invoke(cli, ["models", "loud"])
    assert result.exit_code == 1
    assert result.stderr == "nmfsep: error: loud: no built-in model of that name (built-ins: hiss, low, mid)\n"


def test_models_command_with_a_model_file_of_ones_own_prints_its_line(builtins, tmp_path, monkeypatch):
    _, sources = synth.mixture(3, sample_rate=RATE, duration=2.0, seed=1)
    own = supervised.learn(sources[2], RATE, 3, name="mine")
    monkeypatch.chdir(tmp_path)
    model.save(own, "me.npz")
    result = run("models", "me.npz")
    assert result.exit_code == 0, result.output
    frames = own.frames.shape[1]
    assert result.stdout == (f"mine  3 bases  {RATE} Hz  n_fft {own.n_fft}, hop {own.hop_length}; a model file of your "
                             f"own: beta 1, pitch shifts {own.pitch_shifts}, {frames} training frames kept\n")
    record = json.loads(run("models", "me.npz", "--json").stdout)
    assert (record["name"], record["bases"], record["path"], record["training_frames"]) == ("mine", 3, "me.npz", frames)
    assert run("models", "low").stdout.startswith("# A low test source")   # a built-in's name is still its card
    missing = CliRunner().invoke(cli, ["models", "mid.npz"])
    assert (missing.exit_code, missing.stderr) == (1, "nmfsep: error: mid.npz: no such model file (the built-in is "
                                                      "named mid, without .npz)\n")
    empty = CliRunner().invoke(cli, ["models", " "])
    assert empty.exit_code == 2 and "NAME is empty" in empty.stderr and "Traceback" not in empty.output
    in_folder = CliRunner().invoke(cli, ["models", "kept/low"])   # a path, as split --model takes it
    assert (in_folder.exit_code, in_folder.stderr) == (1, "nmfsep: error: kept/low: no such model file\n")
    (tmp_path / "notes.txt").write_text("not a model")
    bad = CliRunner().invoke(cli, ["models", "notes.txt"])
    assert bad.exit_code == 1 and bad.stderr.startswith("nmfsep: error: notes.txt: not an nmfsep model")


def test_a_misspelt_builtin_name_gets_a_suggestion(builtins, wav_file, tmp_path):
    result = CliRunner().invoke(cli, ["split", str(wav_file()), "--model", "Low", "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "Low: no such model file and no built-in model of that name (did you mean low? built-ins: hiss, low, mid)" \
        in result.stderr
    assert not (tmp_path / "out").exists()
    as_json = CliRunner().invoke(cli, ["split", str(wav_file()), "--model", "Low", "--json", "-o", str(tmp_path / "out")])
    assert (as_json.exit_code, as_json.stdout) == (1, "")   # no input was tried: no JSON line (README)
    assert "did you mean low?" in as_json.stderr


def test_one_more_stem_than_the_models_give_suggests_free(builtins, wav_file, tmp_path):
    result = CliRunner().invoke(cli, ["split", str(wav_file()), "--model", "low", "--model", "mid", "-k", "3",
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "3 stems asked, but 2 models give 2 (add --free N for a 'residual' stem)" in result.stderr


def test_one_model_without_free_says_its_stem_is_the_whole_input(builtins, wav_file, tmp_path):
    result = CliRunner().invoke(cli, ["split", str(wav_file()), "--model", "low", "-o", str(tmp_path / "out"),
                                      "--iter", "20"])
    assert result.exit_code == 0, result.output
    assert ("nmfsep: note: one --model and no --free give one stem, the whole input: add --free N (what 'low' does "
            "not cover) or another --model\n") in result.stderr
    quiet = CliRunner().invoke(cli, ["split", str(wav_file()), "--model", "low", "-o", str(tmp_path / "q"), "-q"])
    assert "one --model" not in quiet.stderr


def test_nmfsep_models_is_reachable_from_the_package_without_importing_it(tmp_path):
    result = subprocess.run([sys.executable, "-c", "import nmfsep; print(nmfsep.models.load.__module__)"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "nmfsep.models"


def test_models_command_in_a_real_process_lists_what_is_shipped():
    """Whatever src/nmfsep/models holds (nothing, until the real built-ins land)."""
    result = subprocess.run([sys.executable, "-m", "nmfsep.cli", "models"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    shipped = sorted(p.stem for p in SHIPPED.glob("*.npz"))
    assert [line.split()[0] for line in result.stdout.splitlines()] == shipped
    assert result.stderr == ("" if shipped else "nmfsep: no built-in models are installed\n")


# --- shipped pair trainings ------------------------------------------------------------------

def test_a_split_with_a_shipped_set_starts_no_training_and_uses_the_shipped_arrays(builtins, mix, monkeypatch):
    models = _models_module()
    pair = (models.load("low"), models.load("mid"))
    expected = split_sources(mix[:, None], RATE, Settings(models=pair, trained=as_float16(builtins["trained"])))
    no_training(monkeypatch)
    settings = Settings(models=pair)
    assert not supervised.training_needed(settings)
    result = split_sources(mix[:, None], RATE, settings)
    np.testing.assert_array_equal(result.stems, expected.stems)
    assert len(builtins["trained"].layers) == 2


def test_a_cli_split_with_builtins_only_says_nothing_of_a_training_and_writes_no_cache(builtins, wav_file, tmp_path,
                                                                                      monkeypatch):
    no_training(monkeypatch)
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(tmp_path / "cache"))
    result = run("split", wav_file(), "--model", "mid", "--model", "low", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "training" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "mix").iterdir()) == ["low.wav", "mid.wav"]
    assert not (tmp_path / "cache").exists()


def test_a_batch_with_builtins_reads_their_shipped_training_once_not_per_input(builtins, wav_file, tmp_path,
                                                                              monkeypatch):
    models = _models_module()
    no_training(monkeypatch)
    reads = []
    real = models.read_training
    monkeypatch.setattr(models, "read_training", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    inputs = [wav_file(f"mix{i}.wav") for i in range(3)]
    result = run("split", *inputs, "--model", "mid", "--model", "low", "-o", tmp_path / "out", "--iter", 20)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mix0", "mix1", "mix2"]
    assert len(reads) <= 2  # training_needed, then train_models hands it to every input


@pytest.mark.parametrize("script", ["build_models", "bench_quality"])
def test_the_benchmark_scripts_change_no_environment_variable_at_import(benchmark_script, monkeypatch, script):
    """bench_quality imports build_models' GROUPS, the tests load both: each sets the cache and BLAS threads in
    its main, not at import."""
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(Path("somewhere")))
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    loaded = benchmark_script(script)
    assert dict(os.environ) == before
    assert set(loaded.THREADS) == {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"}


def test_cards_quote_the_register_rows_for_the_register_a_voice_got(benchmark_script):
    build = benchmark_script("build_models")
    rows = [{"id": "a", "class": "speech_music", "method": "builtins", "models": ["speech", "music"], "mean": 7.0},
            {"id": "a", "class": "speech_music", "method": "register", "models": ["speech_high", "music"], "mean": 8.5},
            {"id": "b", "class": "talkers_mf", "method": "builtins", "models": ["speech_low", "speech_high"],
             "mean": 9.0}]
    scores = {"split": "test", "scores": rows}
    assert build.registers_of("speech_high", scores).endswith("speech_music +8.50 dB (with `speech` +7.00; 1 mixtures).")
    assert build.registers_of("music", scores) == ""       # music named that source in both rows
    assert build.registers_of("speech_low", scores) == ""  # no voice got it
    assert "talkers_mf +9.00 dB" in build.scores_of("speech_high", scores)


def test_discriminative_training_makes_a_fresh_training_even_for_a_shipped_set(builtins, monkeypatch):
    """What benchmarks/build_models.py calls to make the pairs: never the shipped file back."""
    models = _models_module()
    monkeypatch.setenv("NMFSEP_CACHE_DIR", "")
    pair = (models.load("low"), models.load("mid"))
    assert models.shipped_training(pair) is not None
    made = count_trainings(monkeypatch)
    supervised.discriminative_training(pair, Settings(models=pair, unfolded_layers=1))
    assert len(made) == 1


def test_a_set_of_builtins_trained_at_its_split_gets_at_most_builtin_set_layers(builtins, monkeypatch):
    """Three built-ins (no shipped training): BUILTIN_SET_LAYERS; the same models as one's own files:
    the settings' layers; fewer asked for: those."""
    models = _models_module()
    monkeypatch.setenv("NMFSEP_CACHE_DIR", "")
    three = tuple(models.load(n) for n in ("low", "mid", "hiss"))
    own = tuple(model.load(str(builtins["folder"] / f"{n}.npz")) for n in ("low", "mid", "hiss"))
    made = count_trainings(monkeypatch)
    for models_, layers in ((three, supervised.UNFOLDED_LAYERS), (own, supervised.UNFOLDED_LAYERS), (three, 3)):
        supervised.discriminative_training(models_, Settings(models=models_, unfolded_layers=layers))
    assert [a[4] for a in made] == [supervised.BUILTIN_SET_LAYERS, supervised.UNFOLDED_LAYERS, 3]
    assert supervised.BUILTIN_SET_LAYERS < supervised.UNFOLDED_LAYERS


def test_a_shipped_training_is_used_in_any_model_order(builtins, mix, monkeypatch):
    models = _models_module()
    low, mid = models.load("low"), models.load("mid")
    stored = as_float16(builtins["trained"])                    # its columns: low's 6, then mid's 6
    swap = np.r_[6:12, 0:6]
    swapped = Trained([np.ascontiguousarray(w[:, swap]) for w in stored.layers],
                      np.ascontiguousarray(stored.mask_bases[:, swap]))
    shipped = models.shipped_training((mid, low))
    np.testing.assert_array_equal(shipped.mask_bases, swapped.mask_bases)
    np.testing.assert_array_equal(np.array(shipped.layers), np.array(swapped.layers))
    expected = split_sources(mix[:, None], RATE, Settings(models=(mid, low), trained=swapped))
    no_training(monkeypatch)
    result = split_sources(mix[:, None], RATE, Settings(models=(mid, low)))
    np.testing.assert_array_equal(result.stems, expected.stems)
    assert result.names == ["mid", "low"]


def test_a_changed_model_invalidates_its_shipped_training(builtins, mix, tmp_path, monkeypatch):
    models = _models_module()
    changed = tmp_path / "models"
    shutil.copytree(builtins["folder"], changed)
    low = builtins["models"]["low"]
    model.save(model.Model(**{**vars(low), "bases": low.bases[:, ::-1].copy()}), str(changed / "low.npz"))
    monkeypatch.setattr(models, "folder", lambda: changed)
    pair = (models.load("low"), models.load("mid"))
    assert models.shipped_training(pair) is None
    assert supervised.training_needed(Settings(models=pair))
    made = count_trainings(monkeypatch)
    split_sources(mix[:, None], RATE, Settings(models=pair, max_iter=50))
    assert len(made) == 1


def _pair_file(path: Path, trained: Trained, names: str, digest: str, layers=None):
    np.savez(path, layers=np.float16(np.array(trained.layers)) if layers is None else layers,
             mask_bases=np.float16(trained.mask_bases), models=names, digest=digest)


@pytest.mark.parametrize("damage,message", [
    ("garbage", "not an nmfsep training"),
    ("digest", "made for other versions of the models"),
    ("names", "made for the models hiss\\+low, not low\\+mid"),
    ("shape", "out of range"),
    ("nan", "must be finite and non-negative"),
    ("negative", "must be finite and non-negative"),
    ("empty column", "a layer has a column of zeros"),
])
def test_a_damaged_or_mismatched_pair_file_is_refused_by_the_reader_and_not_shipped(
        builtins, tmp_path, monkeypatch, damage, message):
    models = _models_module()
    folder = tmp_path / "models"
    shutil.copytree(builtins["folder"], folder)
    monkeypatch.setattr(models, "folder", lambda: folder)
    pair = (models.load("low"), models.load("mid"))
    path = models.pair_path(["low", "mid"])
    trained, digest = builtins["trained"], models.training_digest(pair)
    layers = np.float16(np.array(trained.layers))
    if damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip at all")
    elif damage == "digest":
        _pair_file(path, trained, "low+mid", "0" * 40)
    elif damage == "names":
        _pair_file(path, trained, "hiss+low", digest)
    elif damage == "shape":
        _pair_file(path, trained, "low+mid", digest, layers[:, :-1])
    else:
        layers[0, 3, 2] = {"nan": np.nan, "negative": -1.0, "empty column": 0.0}[damage]
        if damage == "empty column":
            layers[0, :, 2] = 0
        _pair_file(path, trained, "low+mid", digest, layers)
    with pytest.raises(ModelError, match=f"^{re.escape(str(path))}: .*{message}"):
        models.read_training(path, pair)
    assert models.shipped_training(pair) is None
    assert supervised.training_needed(Settings(models=pair))


def test_a_split_with_a_damaged_pair_file_trains_the_set_and_shows_no_traceback(builtins, tmp_path, monkeypatch,
                                                                                wav_file):
    models = _models_module()
    folder = tmp_path / "models"
    shutil.copytree(builtins["folder"], folder)
    monkeypatch.setattr(models, "folder", lambda: folder)
    models.pair_path(["low", "mid"]).write_bytes(b"PK\x03\x04 not a zip at all")
    made = count_trainings(monkeypatch)
    result = run("split", wav_file(), "--model", "low", "--model", "mid", "-o", tmp_path / "out", "--iter", 50)
    assert result.exit_code == 0, result.output
    assert len(made) == 1 and "Traceback" not in result.output
    assert "nmfsep: training the models to tell their sources apart" in result.stderr


def test_write_training_then_read_training_round_trips_in_float16(builtins):
    models = _models_module()
    pair = (builtins["models"]["low"], builtins["models"]["mid"])
    read = models.read_training(models.pair_path(["low", "mid"]), pair)
    stored = as_float16(builtins["trained"])
    assert len(read.layers) == len(stored.layers) == 2
    np.testing.assert_array_equal(np.array(read.layers), np.array(stored.layers))
    np.testing.assert_array_equal(read.mask_bases, stored.mask_bases)
    with np.load(models.pair_path(["low", "mid"])) as saved:
        assert saved["layers"].dtype == saved["mask_bases"].dtype == np.float16
        assert str(saved["models"]) == "low+mid" and str(saved["digest"]) == models.training_digest(pair)


def test_a_pair_training_with_no_layers_is_used_as_it_is(builtins, mix, tmp_path, monkeypatch):
    models = _models_module()
    folder = tmp_path / "models"
    shutil.copytree(builtins["folder"], folder)
    monkeypatch.setattr(models, "folder", lambda: folder)
    pair = (models.load("low"), models.load("mid"))
    plain = Trained([], np.concatenate([m.bases for m in pair], axis=1))
    models.write_training(models.pair_path(["low", "mid"]), pair, plain)
    expected = split_sources(mix[:, None], RATE, Settings(models=pair, trained=as_float16(plain)))
    no_training(monkeypatch)
    result = split_sources(mix[:, None], RATE, Settings(models=pair))
    np.testing.assert_array_equal(result.stems, expected.stems)


# --- mixing built-ins with one's own models ---------------------------------------------------

def test_conform_moves_bases_to_another_grid_keeping_a_peak_at_1_khz(builtins):
    freqs = np.arange(513) * RATE / 1024
    bump = np.exp(-0.5 * ((freqs - 1000) / 60) ** 2)
    flat = np.ones(513)
    bases = np.stack([bump, flat], axis=1).astype(np.float32)
    bases /= np.linalg.norm(bases, axis=0)
    frames = np.float16(np.stack([bump, 2 * bump, flat], axis=1))
    original = model.Model(bases, RATE, 1024, 256, 1.0, "peak", frames, 0)
    low = model.conform(original, 16000, 512, 128)
    assert (low.sample_rate, low.n_fft, low.hop_length, low.bases.shape) == (16000, 512, 128, (257, 2))
    assert np.argmax(low.bases[:, 0]) * 16000 / 512 == 1000.0
    np.testing.assert_allclose(np.linalg.norm(low.bases, axis=0), 1.0, rtol=1e-6)
    assert low.frames.dtype == np.float16 and low.frames.shape == (257, 3)
    assert float(low.frames.astype(np.float32).mean()) == pytest.approx(1.0, rel=1e-3)
    high = model.conform(original, 32000, 1024, 256)
    high_freqs = np.arange(513) * 32000 / 1024
    assert np.argmax(high.bases[:, 0]) * 32000 / 1024 == 1000.0
    assert np.all(high.bases[high_freqs > RATE / 2] == 0) and np.all(high.bases[high_freqs <= RATE / 2, 1] > 0)
    assert model.conform(original, RATE, 1024, 256) is original


def test_a_builtin_beside_a_user_model_at_another_rate_is_conformed_and_the_stems_sum_to_the_mixture(
        builtins, tmp_path, monkeypatch):
    import soxr

    _, sources = synth.mixture(2, sample_rate=RATE, duration=3.0, seed=7)
    mine = supervised.learn(soxr.resample(sources[1], RATE, 16000), 16000, 6, name="mine", max_iter=100)
    model.save(mine, str(tmp_path / "mine.npz"))
    mix16, _ = synth.mixture(2, sample_rate=16000, duration=2.0, seed=0)
    sf.write(tmp_path / "mix.wav", mix16, 16000, subtype="FLOAT")
    made = count_trainings(monkeypatch)
    result = run("split", tmp_path / "mix.wav", "--model", tmp_path / "mine.npz", "--model", "low",
                 "-o", tmp_path / "out", "--json", "--iter", 50)
    assert result.exit_code == 0, result.output
    note = ("nmfsep: note: built-in model 'low' (22050 Hz, n_fft 1024, hop 256) conformed to the other models' "
            "16000 Hz, n_fft 1024, hop 256")
    assert result.stderr.splitlines().count(note) == 1
    assert json.loads(result.stdout)["resampled"] is None and len(made) == 1   # no shipped pair: trained
    stems = [sf.read(tmp_path / "out" / "mix" / f"{n}.wav", dtype="float32")[0] for n in ("mine", "low")]
    np.testing.assert_allclose(stems[0] + stems[1], mix16, atol=1e-5)
    quiet = run("split", tmp_path / "mix.wav", "--model", tmp_path / "mine.npz", "--model", "low",
                "-o", tmp_path / "out", "--force", "-q", "--iter", 50)
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_own_models_at_a_higher_rate_go_down_to_the_builtins_grid(builtins, tmp_path):
    """A 44.1 kHz model of a tone beside the built-in hiss (22.05 kHz) on tone + white noise at
    44.1 kHz: at 44.1 kHz the hiss model has nothing above 11 kHz, so the tone's model took the
    hiss up there (+2.9 dB tone, +7.1 noise); at the built-ins' rate, +19.0 and +26.2."""
    _, sources = synth.mixture(2, sample_rate=44100, duration=3.0, seed=7)
    mine = supervised.learn(sources[0], 44100, 6, name="mine", max_iter=100)
    model.save(mine, str(tmp_path / "mine.npz"))
    loaded, conformed = _models_module().load_set([str(tmp_path / "mine.npz"), "hiss"])
    assert [m.name for m in conformed] == ["mine"] and conformed[0].sample_rate == 44100
    assert [(m.sample_rate, m.n_fft, m.hop_length) for m in loaded] == [(RATE, 1024, 256)] * 2
    mix, (low, _) = synth.mixture(2, sample_rate=44100, duration=2.0, seed=0)
    white = (0.05 * np.random.default_rng(5).standard_normal(len(mix))).astype(np.float32)
    mix = low + white
    sf.write(tmp_path / "mix.wav", mix, 44100, subtype="FLOAT")
    result = run("split", tmp_path / "mix.wav", "--model", tmp_path / "mine.npz", "--model", "hiss",
                 "-o", tmp_path / "out", "--json", "--subtype", "float")
    assert result.exit_code == 0, result.output
    assert ("nmfsep: note: model 'mine' (44100 Hz, n_fft 2048, hop 512) conformed to the built-in models' "
            "22050 Hz, n_fft 1024, hop 256") in result.stderr.splitlines()
    assert json.loads(result.stdout)["resampled"] == {"from": 44100, "to": RATE}
    stems = [sf.read(tmp_path / "out" / "mix" / f"{n}.wav", dtype="float32")[0] for n in ("mine", "hiss")]
    np.testing.assert_allclose(stems[0] + stems[1], mix, atol=1e-5)
    gains = [si_sdr(s, e) - si_sdr(s, mix) for s, e in zip((low, white), stems)]
    assert min(gains) >= 12, gains


def test_sets_that_cannot_be_conformed_fail_in_one_line_naming_the_models_at_fault(builtins, wav_file, tmp_path):
    _, sources = synth.mixture(2, sample_rate=44100, duration=2.0, seed=7)
    for name, rate in (("hiss", 44100), ("a", 44100), ("b", 48000)):
        model.save(supervised.learn(sources[0], rate, 4, name=name, max_iter=20), str(tmp_path / f"{name}{rate}.npz"))
    mix = wav_file()
    named_like = run("split", mix, "--model", tmp_path / "hiss44100.npz", "--model", "hiss", "-o", tmp_path / "o1")
    assert named_like.exit_code == 1 and named_like.stderr == (
        "nmfsep: error: two stems would be named 'hiss': give each model once (models of your own: learn them "
        "with distinct --name)\n")
    rates = run("split", mix, "--model", "hiss", "--model", tmp_path / "a44100.npz", "--model", tmp_path / "b48000.npz",
                "-o", tmp_path / "o2", "--json")
    assert rates.exit_code == 1 and rates.stdout == "" and rates.stderr == (
        "nmfsep: error: models 'a' and 'b' were learned at different sample rates (44100 and 48000 Hz): learn "
        "them at one rate\n")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_load_set_conforms_only_builtins_and_two_user_models_at_different_rates_stay_an_error(builtins, tmp_path):
    models = _models_module()
    _, sources = synth.mixture(2, sample_rate=RATE, duration=2.0, seed=7)
    model.save(supervised.learn(sources[0], 16000, 4, name="a", max_iter=20), str(tmp_path / "a.npz"))
    model.save(supervised.learn(sources[1], RATE, 4, name="b", max_iter=20), str(tmp_path / "b.npz"))
    loaded, conformed = models.load_set(["hiss", str(tmp_path / "a.npz")])
    assert [m.sample_rate for m in loaded] == [16000, 16000] and [m.name for m in conformed] == ["hiss"]
    assert conformed[0].sample_rate == RATE
    loaded, conformed = models.load_set(["hiss", "low"])
    assert conformed == [] and all(m.sample_rate == RATE for m in loaded)
    loaded, conformed = models.load_set([str(tmp_path / "a.npz"), str(tmp_path / "b.npz")])
    assert conformed == []
    with pytest.raises(nmfsep.NmfsepError, match="learned at different sample rates"):
        Settings(models=loaded).stft_params(16000)


def test_free_bases_beside_a_builtin(builtins, wav_file, tmp_path):
    result = run("split", wav_file(), "--model", "low", "--free", 2, "-o", tmp_path / "out", "--json", "--iter", 50)
    assert result.exit_code == 0, result.output
    assert [s["name"] for s in json.loads(result.stdout)["stems"]] == ["low", "residual"]


def test_separate_takes_builtin_names_and_a_model_of_ones_own_at_another_rate(builtins, mix, monkeypatch):
    no_training(monkeypatch)
    stems = nmfsep.separate(mix, RATE, models=["low", "mid"], max_iter=50)
    assert stems.shape == (2, *mix.shape)
    np.testing.assert_allclose(stems.sum(axis=0), mix, atol=1e-4)
    monkeypatch.undo()  # training allowed again: a set with one's own model trains
    monkeypatch.setattr(_models_module(), "folder", lambda: builtins["folder"])
    own = supervised.learn(resampled(mix, RATE, 16000), 16000, 4, name="own", max_iter=50)
    monkeypatch.setattr(supervised, "SPLIT_RECIPE", replace(supervised.SPLIT_RECIPE, steps=5))
    stems = nmfsep.separate(mix, RATE, models=[own, "hiss"], max_iter=50)  # hiss re-gridded to 16 kHz
    assert stems.shape == (2, *mix.shape)
    np.testing.assert_allclose(stems.sum(axis=0), mix, atol=1e-4)


def resampled(x, rate_in, rate_out):
    from nmfsep.audio import resample
    return resample(np.asarray(x, np.float32)[:, None], rate_in, rate_out)[:, 0]


def test_the_package_data_carries_builtin_models_cards_and_pairs():
    import fnmatch
    import tomllib

    root = Path(__file__).parent.parent
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data.get("nmfsep.models", [])
    for shipped in ("speech.npz", "speech.md", "pairs/noise+speech.npz"):
        assert any(fnmatch.fnmatch(shipped, p) for p in patterns), (shipped, patterns)


# --- what is actually shipped ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(p.stem for p in SHIPPED.glob("*.npz")))
def test_every_shipped_builtin_loads_validates_and_has_a_card(name):
    models = _models_module()
    m = models.load(name)
    assert m.name == name and m.frames is not None
    first = {(x.sample_rate, x.n_fft, x.hop_length) for x in map(models.load, models.names())}
    assert len(first) == 1                                      # one rate and STFT for all built-ins
    assert models.describe(name)["summary"]


def test_the_shipped_builtins_fit_in_25_mb():
    assert sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file()) <= 25_000_000  # the 25 MB


@pytest.mark.parametrize("pair", sorted(p.name for p in (SHIPPED / "pairs").glob("*.npz")))
def test_every_shipped_pair_matches_its_models(pair, benchmark_script):
    models = _models_module()
    names = pair.removesuffix(".npz").split("+")
    assert names == sorted(names) and models.pair_path(names) == SHIPPED / "pairs" / pair
    loaded = tuple(models.load(n) for n in names)
    trained = models.read_training(SHIPPED / "pairs" / pair, loaded)
    assert models.shipped_training(loaded) is not None and trained.mask_bases.shape[1] == sum(m.n_bases for m in loaded)
    build = benchmark_script("build_models")    # the layers the build script gives this pair
    assert len(trained.layers) == build.LAYERED_PAIRS.get(tuple(names), build.PAIR_LAYERS)
