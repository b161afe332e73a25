import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import nmfsep
from nmfsep import model, supervised, synth
from nmfsep.cli import cli
from nmfsep.errors import BadValueError
from nmfsep.evaluate import si_sdr, si_sdr_improvement
from nmfsep.discriminative import Trained, unfold
from nmfsep.pipeline import Settings, split_sources
from nmfsep.supervised import (discriminative_training, learn, pitch_shift, synthetic_sources, train_models,
                               training_needed)

RATE = 22050


@pytest.fixture(scope="module")
def data():
    """A mixture of two synthetic sources, and other (differently timed) audio of each to learn from."""
    mix, sources = synth.mixture(2, sample_rate=RATE, duration=3.0, seed=0)
    _, training = synth.mixture(2, sample_rate=RATE, duration=4.0, seed=7)
    return mix, sources, training


def short_training(monkeypatch):
    """Splits train with 20 steps of their recipe: a short training, for tests not about its result."""
    from nmfsep import supervised

    monkeypatch.setattr(supervised, "SPLIT_RECIPE", replace(supervised.SPLIT_RECIPE, steps=20))


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_learn_then_split_recovers_each_source_by_15_db(data):
    mix, sources, training = data
    models = [learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid"))]
    stems = nmfsep.separate(mix, RATE, models=models)
    assert stems.shape == (2,) + mix.shape
    gains = [si_sdr(s, e) - si_sdr(s, mix) for s, e in zip(sources, stems)]  # in model order
    assert min(gains) >= 15, gains
    assert np.abs(stems.sum(axis=0) - mix).max() <= 1e-4 * np.abs(mix).max()


@pytest.mark.parametrize("known", [0, 1])
def test_free_bases_recover_an_unmodelled_source(data, known):
    mix, sources, training = data
    voice = learn(training[known], RATE, 8, name="known")
    stems = nmfsep.separate(mix, RATE, models=[voice], n_free=4)
    other = 1 - known
    assert si_sdr(sources[other], stems[1]) - si_sdr(sources[other], mix) >= 10
    assert si_sdr(sources[known], stems[0]) - si_sdr(sources[known], mix) >= 10


def test_learned_bases_are_unit_norm_and_fixed_during_split(data):
    mix, _, training = data
    m = learn(training[0], RATE, 6, name="low")
    np.testing.assert_allclose(np.linalg.norm(m.bases, axis=0), 1.0, rtol=1e-5)
    result = split_sources(mix[:, None], RATE, Settings(models=(m,), n_free=2))
    np.testing.assert_array_equal(result.bases[:, :6], m.bases)
    assert result.names == ["low", "residual"]


def test_cli_learn_split_eval_round_trip(data, tmp_path):
    mix, sources, training = data
    for name, t, s in zip(("low", "mid"), training, sources):
        sf.write(tmp_path / f"train_{name}.wav", t, RATE, subtype="FLOAT")
        sf.write(tmp_path / f"ref_{name}.wav", s, RATE, subtype="FLOAT")
        result = run("learn", tmp_path / f"train_{name}.wav", "-o", tmp_path / f"{name}.npz", "-k", 8, "-q")
        assert result.exit_code == 0, result.output
    sf.write(tmp_path / "mix.wav", mix, RATE, subtype="FLOAT")
    result = run("split", tmp_path / "mix.wav", "--model", tmp_path / "low.npz", "--model", tmp_path / "mid.npz",
                 "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert [s["name"] for s in record["stems"]] == ["low", "mid"] and record["k"] == 2
    result = run("eval", "--ref", tmp_path / "ref_low.wav", "--ref", tmp_path / "ref_mid.wav",
                 tmp_path / "out" / "mix" / "mid.wav", tmp_path / "out" / "mix" / "low.wav", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = report["references"]
    assert [r["estimate"].rsplit("/", 1)[-1] for r in rows] == ["low.wav", "mid.wav"]  # best permutation
    for row, ref in zip(rows, sources):
        estimate = sf.read(row["estimate"], dtype="float32")[0]
        assert row["si_sdr"] == pytest.approx(si_sdr(ref, estimate), abs=1e-6)
        assert row["si_sdr_improvement"] == pytest.approx(si_sdr(ref, estimate) - si_sdr(ref, mix), abs=1e-3)
        assert {"sdr", "sir", "sar"} <= set(row) and row["sdr"] > 10
    assert report["mean"]["si_sdr"] == pytest.approx(np.mean([r["si_sdr"] for r in rows]))


def test_split_refuses_a_file_that_is_not_a_model(wav_file, tmp_path):
    bogus = tmp_path / "bogus.npz"
    bogus.write_bytes(b"PK\x03\x04 not really a zip")
    result = run("split", wav_file(), "--model", bogus, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == f"nmfsep: error: {bogus}: not an nmfsep model (not an .npz archive)\n"


def test_split_refuses_a_newer_model_format(data, wav_file, tmp_path):
    _, _, training = data
    m = learn(training[0], RATE, 4, name="low")
    m.format_version = model.FORMAT_VERSION + 1
    model.save(m, str(tmp_path / "new.npz"))
    result = run("split", wav_file(), "--model", tmp_path / "new.npz", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert (f"model format version {model.FORMAT_VERSION + 1} is newer than this nmfsep reads "
            f"({model.FORMAT_VERSION}); upgrade nmfsep") in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--free", "2"], "Invalid value for '--free': --free needs at least one --model"),
    (["--model", "M", "-k", "3"], "Invalid value for '-k': 3 stems asked, but 1 model gives 1"),
    (["--model", "speech", "--model", "noise", "-k", "1"], "Invalid value for '-k': 1 stem asked, but 2 models give 2"),
    (["--model", "M", "--free", "2", "-k", "1"], "Invalid value for '-k': 1 stem asked, but 1 model and --free give 2"),
    (["--model", "speech", "--model", "noise", "--n-fft", "2048"],
     "the models were learned with n_fft 1024 and hop 256: leave --n-fft/--hop out or match them"),
])
def test_model_option_usage_errors(wav_file, tmp_path, args, message):
    args = [str(tmp_path / "m.npz") if a == "M" else a for a in args]
    result = run("split", wav_file(), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_two_models_with_one_name_are_refused(data, wav_file, tmp_path):
    _, _, training = data
    model.save(learn(training[0], RATE, 4, name="same"), str(tmp_path / "a.npz"))
    model.save(learn(training[1], RATE, 4, name="same"), str(tmp_path / "b.npz"))
    result = run("split", wav_file(), "--model", tmp_path / "a.npz", "--model", tmp_path / "b.npz")
    assert result.exit_code == 1
    assert result.stderr == "nmfsep: error: two stems would be named 'same': give each model once (models of your own: learn them with distinct --name)\n"


def test_learn_refuses_to_overwrite_and_mixed_rates(wav_file, tmp_path):
    a = wav_file("a.wav")
    b = wav_file("b.wav", rate=16000)
    result = run("learn", a, b, "-o", tmp_path / "m.npz")
    assert result.exit_code == 1
    assert result.stderr == f"nmfsep: error: {b}: 16000 Hz, but {a} is 22050 Hz (all training files need one rate)\n"
    (tmp_path / "m.npz").write_bytes(b"mine")
    result = run("learn", a, "-o", tmp_path / "m.npz")
    assert result.exit_code == 1 and "already exists (use --force to overwrite)" in result.stderr
    assert (tmp_path / "m.npz").read_bytes() == b"mine"


@pytest.mark.parametrize("subtype", ["PCM_16", "ULAW", "PCM_U8", "FLOAT"])
def test_learn_warns_of_a_clipped_training_file_and_not_of_a_clean_one(wav_file, tmp_path, tones, subtype):
    mix, _, _ = tones
    clean = wav_file("clean.wav", samples=0.9 * mix / np.abs(mix).max(), subtype=subtype)
    clipped = wav_file("clipped.wav", samples=np.clip(3 * mix, -1, 1), subtype=subtype)
    loud = wav_file("loud.wav", samples=10 * mix, subtype="FLOAT")  # float beyond 1, not clipped
    one = wav_file("one.wav", samples=np.stack([np.clip(3 * mix, -1, 1), mix], axis=1), subtype=subtype)
    read = sf.read(str(clipped), dtype="float32")[0]
    share = np.mean((read == read.max()) | (read == read.min()))
    assert share > 0.01
    for path, expected in ((clipped, share), (one, share), (clean, None), (loud, None)):
        result = run("learn", path, "-k", "2", "--iter", "2", "--pitch-shifts", "0",
                     "-o", tmp_path / f"{path.stem}.npz")
        assert result.exit_code == 0
        if expected is None:
            assert "warning" not in result.stderr
        else:
            assert (f"nmfsep: warning: {path}: {100 * expected:.1f}% of its samples sit at its peak value (clipped?)"
                    in result.stderr)
    assert "warning" not in run("learn", clipped, "-k", "2", "--iter", "2", "--pitch-shifts", "0", "-q",
                                "-o", tmp_path / "q.npz").stderr


def test_clipped_share_counts_a_channels_extremes_not_an_offset_or_silence():
    from nmfsep.audio import clipped_share

    tone = np.sin(np.linspace(0, 200, 10000)).astype(np.float32)
    assert clipped_share(np.clip(tone, -0.5, 0.5)) > 0.3 and clipped_share(tone) < 0.001
    assert clipped_share(np.zeros(100, np.float32)) == 0 and clipped_share(np.zeros((0, 2), np.float32)) == 0
    assert clipped_share(np.clip(tone, -0.5, 2) + 1.0) < 0.001   # one side flat near the offset: not counted
    assert clipped_share(np.stack([tone, np.clip(tone, -0.5, 0.5)], axis=1)) > 0.3


def test_eval_improvement_is_over_the_given_mixture(data):
    mix, sources, _ = data
    estimates = sources[::-1] + 0.01
    improvement = si_sdr_improvement(sources, estimates, mix)
    expected = [si_sdr(s, e) - si_sdr(s, mix) for s, e in zip(sources, sources + 0.01)]
    np.testing.assert_allclose(improvement, expected)


def test_pitch_shift_moves_a_peak_by_the_frequency_ratio():
    V = np.zeros((513, 2), np.float32)
    V[100] = 1.0
    octave_up, octave_down = pitch_shift(V, 12), pitch_shift(V, -12)
    assert octave_up.argmax(axis=0).tolist() == [200, 200] and octave_up.sum() == pytest.approx(2 * 2)  # spread over 2 bins
    assert octave_down.argmax(axis=0).tolist() == [50, 50]
    np.testing.assert_array_equal(pitch_shift(V, 0), V)


def test_learn_keeps_training_frames_and_pitch_shifts(data):
    _, _, training = data
    plain, shifted = learn(training[0], RATE, 6, pitch_shifts=0), learn(training[0], RATE, 6, pitch_shifts=2)
    assert plain.frames.dtype == np.float16 and plain.frames.shape[0] == plain.bases.shape[0]
    assert float(plain.frames.astype(np.float32).mean()) == pytest.approx(1.0, rel=1e-2)
    assert (plain.pitch_shifts, shifted.pitch_shifts) == (0, 2)
    np.testing.assert_array_equal(plain.frames, shifted.frames)   # the frames are never shifted
    assert not np.allclose(plain.bases, shifted.bases)
    for bad in (13, -1, "two", 1.5, True):
        with pytest.raises(nmfsep.NmfsepError, match=f"pitch shifts must be 'auto' or between 0 and 12 semitones, "
                                                     f"got {bad!r}"):
            learn(training[0], RATE, 6, pitch_shifts=bad)


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path,rate,shifts", [
    ("sample_audio/voices_src1.wav", None, 0),
    ("benchmarks/data/voices/train_female.wav", 11025, 0),   # resampled up: only its band is fitted
    ("benchmarks/data/flute_cello/train_flute.wav", None, 1),
    ("benchmarks/data/piano_bass_clarinet/train_bass.wav", 44100, 1),
])
def test_auto_pitch_shifts_are_0_for_speech_and_1_for_instruments(path, rate, shifts):
    from nmfsep.audio import resample

    samples, sample_rate = sf.read(REPO / path, dtype="float32", always_2d=True)
    if rate is not None:
        samples, sample_rate = resample(samples, sample_rate, rate), rate
    learned = learn(samples, sample_rate, 4, max_iter=5)
    assert learned.pitch_shifts == shifts
    assert learn(samples, sample_rate, 4, max_iter=5, pitch_shifts=2).pitch_shifts == 2   # a number is kept


def test_closest_builtin_refuses_unknown_candidates_and_silence():
    from nmfsep.errors import ModelError
    from nmfsep.models import closest

    tone = synth.harmonic_tone(220.0, 1.0, False, RATE, RATE)
    with pytest.raises(ModelError, match="no built-in model kazoo .*built-ins: bass"):
        closest([tone], RATE, ("speech", "kazoo"))
    with pytest.raises(nmfsep.NmfsepError, match="the audio is silent"):
        closest([np.zeros(RATE, np.float32)], RATE)
    assert closest([tone], RATE, ("noise",)) == "noise"
    assert closest(tone, RATE, ("noise", "speech")) == closest([tone[:, None]], RATE, ("noise", "speech"))
    with pytest.raises(nmfsep.NmfsepError, match="closest needs at least one recording"):
        closest([], RATE)
    for rate in (0, 1.5, True):
        with pytest.raises(nmfsep.NmfsepError, match="sample_rate must be a whole number of Hz in 1.."):
            closest([tone], rate)
        with pytest.raises(nmfsep.NmfsepError, match="sample_rate must be a whole number of Hz in 1.."):
            learn(tone, rate, 4)
    with pytest.raises(nmfsep.NmfsepError, match="the audio is too loud to analyse: its spectrum overflows float32"):
        closest([tone * np.float32(3e38)], RATE)


def test_closest_looks_at_a_bounded_stretch_of_a_long_or_very_low_rate_recording(monkeypatch):
    from nmfsep import audio, models

    lengths = []
    real = audio.resample
    monkeypatch.setattr(audio, "resample", lambda x, a, b, *r: lengths.append(len(x)) or real(x, a, b, *r))
    noise = np.random.default_rng(0).standard_normal(20000).astype(np.float32)
    assert models.closest([noise], 1, ("noise", "speech")) in ("noise", "speech")  # 20000 s at 1 Hz
    assert lengths == [models.CLOSEST_SECONDS]
    lengths.clear()
    models.closest([noise[:3000], noise], 11025, ("noise", "speech"))   # 2.1 s: whole
    assert lengths == [3000, 20000]
    pieces = models._excerpt(np.arange(100)[:, None], 40).reshape(8, 5)   # 8 pieces of 5, first to last
    assert (np.diff(pieces, axis=1) == 1).all() and pieces[0, 0] == 0 and pieces[-1, -1] == 99
    assert (np.diff(pieces[:, 0]) >= 5).all()
    np.testing.assert_array_equal(models._excerpt(np.arange(30)[:, None], 40), np.arange(30)[:, None])


def test_cli_learn_names_the_files_of_silent_or_overflowing_training_audio(tmp_path):
    loud = (synth.harmonic_tone(220.0, 1.0, False, RATE, RATE) * np.float32(3e38)).astype(np.float32)
    sf.write(tmp_path / "loud.wav", loud, RATE, subtype="FLOAT")
    sf.write(tmp_path / "zero.wav", np.zeros(RATE, np.float32), RATE, subtype="FLOAT")
    for name, cause in (("loud.wav", "audio is too loud to analyse"), ("zero.wav", "audio is silent")):
        for shifts in ("auto", "1"):
            result = run("learn", tmp_path / name, "-o", tmp_path / "m.npz", "--pitch-shifts", shifts)
            assert result.exit_code == 1, result.stderr
            assert result.stderr.startswith(f"nmfsep: error: {tmp_path / name}: the "), result.stderr
            assert cause in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "m.npz").exists()


def test_learn_names_the_silent_or_overflowing_recording_among_several(tmp_path):
    tone = synth.harmonic_tone(220.0, 1.0, False, RATE, RATE)
    silence = np.zeros(RATE, np.float32)
    for shifts in ("auto", 1):
        with pytest.raises(nmfsep.NmfsepError, match=r"^recording 2 of 3: the audio is silent$"):
            learn([tone, silence, tone], RATE, 4, max_iter=5, pitch_shifts=shifts)
        with pytest.raises(nmfsep.NmfsepError, match=r"^the audio is silent$"):
            learn(silence, RATE, 4, max_iter=5, pitch_shifts=shifts)
        with pytest.raises(nmfsep.NmfsepError, match=r"^recording 1 of 2: the audio is too loud to analyse"):
            learn([tone * np.float32(3e38), tone], RATE, 4, max_iter=5, pitch_shifts=shifts)
    with pytest.raises(nmfsep.NmfsepError, match="closest needs at least one recording"):
        nmfsep.models.closest(None, RATE)
    sf.write(tmp_path / "tone.wav", tone, RATE)
    sf.write(tmp_path / "zero.wav", silence, RATE, subtype="FLOAT")
    result = run("learn", tmp_path / "tone.wav", tmp_path / "zero.wav", tmp_path / "tone.wav", "-o", tmp_path / "m.npz")
    assert result.exit_code == 1, result.stderr
    assert result.stderr == f"nmfsep: error: {tmp_path / 'zero.wav'}: the audio is silent\n"
    assert not (tmp_path / "m.npz").exists()


def test_cli_learn_refuses_bad_training_files_and_options_before_learning(tmp_path):
    tone = synth.harmonic_tone(220.0, 1.0, False, RATE, RATE)
    sf.write(tmp_path / "tone.wav", tone, RATE)
    sf.write(tmp_path / "few.wav", tone[:5], RATE)
    sf.write(tmp_path / "loud.wav", tone * np.float32(3e38), RATE, subtype="FLOAT")
    model_path = tmp_path / "m.npz"
    cases = [  # (arguments, exit code, stderr)
        (["few.wav"], 1, f"nmfsep: error: {tmp_path / 'few.wav'}: too short to learn from: 5 samples, less than one "
                         "STFT window (n_fft 1024)"),
        (["tone.wav", "loud.wav", "tone.wav"], 1, f"nmfsep: error: {tmp_path / 'loud.wav'}: the audio is too loud "
                                                  "to analyse: its spectrum overflows float32 (samples near 1e38)"),
        (["tone.wav", "-o", "nowhere/m.npz"], 1, "nmfsep: error: nowhere/m.npz: cannot write the model: no folder "
                                                 "nowhere"),
        (["tone.wav", "--hop", "100000"], 2, "nmfsep learn: error: Invalid value for '--hop': hop must be between 1 "
                                             f"and n_fft/2 = 512 samples, got 100000 (at {RATE} Hz)"),
        (["tone.wav", "--n-fft", "1000000"], 2, "nmfsep learn: error: Invalid value for '--n-fft': n_fft 1000000 is "
                                                "too large (at most 65536 samples)"),
        (["-", "-"], 2, "nmfsep learn: error: Invalid value for 'FILE...': - (stdin) is given more than once"),
        (["tone.wav", "--beta", "nan"], 2, "nmfsep learn: error: Invalid value for '--beta': beta must be a finite "
                                           "number, got nan"),
    ]
    for arguments, code, message in cases:
        paths = [str(tmp_path / a) if a.endswith(".wav") and "/" not in a else a for a in arguments]
        result = CliRunner().invoke(cli, ["learn", *paths, *([] if "-o" in arguments else ["-o", str(model_path)])],
                                    catch_exceptions=False)
        assert result.exit_code == code, (arguments, result.stderr)
        assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1, (arguments, result.stderr)
        assert not model_path.exists() and not (tmp_path / "nowhere").exists()
    (tmp_path / "folder").mkdir()
    result = run("learn", tmp_path / "tone.wav", "-o", tmp_path / "folder", "--force")
    assert result.exit_code == 1 and result.stderr.startswith(f"nmfsep: error: {tmp_path / 'folder'}: is a folder")
    result = run("learn", tmp_path / "tone.wav", "-o", tmp_path / "tone.wav", "--force")
    assert result.exit_code == 1
    assert result.stderr == (f"nmfsep: error: {tmp_path / 'tone.wav'}: is a training file: the model would "
                             "overwrite it (give another -o)\n")
    assert sf.info(tmp_path / "tone.wav").frames == RATE   # still the audio


def test_learn_factorizes_at_most_max_training_frames_evenly_spaced(tmp_path, monkeypatch):
    seen = []
    real = supervised.factorize
    monkeypatch.setattr(supervised, "factorize", lambda V, *a, **k: seen.append(V.shape) or real(V, *a, **k))
    monkeypatch.setattr(supervised, "MAX_TRAINING_FRAMES", 60)
    from nmfsep import spectrum

    tone = synth.harmonic_tone(220.0, 1.0, False, RATE, RATE)
    n_frames = spectrum.n_frames(len(tone), spectrum.default_params(RATE))   # 88
    supervised.learn(tone, RATE, 4, max_iter=3, pitch_shifts=0)
    supervised.learn(tone, RATE, 4, max_iter=3, pitch_shifts=2)
    assert [shape[1] for shape in seen] == [60, 60]   # 60 of them; 12, and 4 shifted copies of those
    assert supervised.training_frames(n_frames, 2) == 12 and supervised.training_frames(50, 0) == 50
    seen.clear()
    monkeypatch.setattr(supervised, "MAX_TRAINING_FRAMES", 10_000)
    learned = supervised.learn(tone, RATE, 4, max_iter=3, pitch_shifts=2)
    assert seen == [(513, 5 * n_frames)] and learned.frames.shape[1] == n_frames   # all of them, uncapped
    sf.write(tmp_path / "tone.wav", tone, RATE)
    monkeypatch.setattr(supervised, "MAX_TRAINING_FRAMES", 60)
    result = run("learn", tmp_path / "tone.wav", "-o", tmp_path / "m.npz", "-k", 4, "--iter", 3, "--pitch-shifts", 2)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith(f"nmfsep: note: learned from 12 of the {n_frames} frames (evenly spaced): "
                                    "the most that memory allows with pitch shifts 2\n")


def test_cli_says_out_of_memory_in_one_line(tmp_path, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError

    sf.write(tmp_path / "tone.wav", synth.harmonic_tone(220.0, 1.0, False, RATE, RATE), RATE)
    monkeypatch.setattr(supervised, "factorize", no_memory)
    result = run("learn", tmp_path / "tone.wav", "-o", tmp_path / "m.npz", "--pitch-shifts", 0)
    assert result.exit_code == 1 and not (tmp_path / "m.npz").exists()
    assert result.stderr.startswith("nmfsep: error: out of memory") and len(result.stderr.splitlines()) == 1


def test_mean_level_is_the_float64_mean_and_refuses_silence_and_overflow():
    from nmfsep import spectrum

    magnitude = np.full((3, 4), np.float32(3e38))   # its float32 sum overflows, the float64 one does not
    assert spectrum.mean_level(magnitude) == pytest.approx(3e38, rel=1e-6)
    with pytest.raises(nmfsep.NmfsepError, match="^the audio is silent$"):
        spectrum.mean_level(np.zeros((3, 4), np.float32))
    with pytest.raises(nmfsep.NmfsepError, match="too loud to analyse"):
        spectrum.mean_level(np.array([[1.0, np.inf]], np.float32))


def test_cli_learn_says_which_pitch_shifts_auto_chose(tmp_path):
    result = run("learn", REPO / "sample_audio/voices_src1.wav", "-o", tmp_path / "v.npz", "-k", 4, "--iter", 5)
    assert result.exit_code == 0
    assert "pitch shifts 0: auto, the built-in speech model fits it best)" in result.stderr
    assert model.load(str(tmp_path / "v.npz")).pitch_shifts == 0
    result = run("learn", REPO / "sample_audio/voices_src1.wav", "-o", tmp_path / "w.npz", "-k", 4, "--iter", 5,
                 "--pitch-shifts", "AUTO")
    assert result.exit_code == 0 and "pitch shifts 0: auto" in result.stderr


@pytest.mark.parametrize("value", ["-1", "13", "one", "1.5", "", "1_2", "\u0663"])
def test_cli_learn_refuses_bad_pitch_shifts(wav_file, tmp_path, value):
    result = run("learn", wav_file(), "-o", tmp_path / "m.npz", "--pitch-shifts", value)
    assert result.exit_code == 2 and "Invalid value for '--pitch-shifts'" in result.stderr
    assert not (tmp_path / "m.npz").exists()


def separation_error(models, trained):
    """KL of the ratio-masked stems of the models' synthetic mixture: what the training lowers."""
    from nmfsep.nmf import factorize

    S = synthetic_sources(models, 0)
    V = S.sum(axis=0)
    W = np.concatenate([m.bases for m in models], axis=1)
    H = unfold(factorize(V, W.shape[1], W=W, update_W=False).H, trained.layers, V)
    bases = trained.mask_bases
    parts = np.stack([bases[:, :8] @ H[:8], bases[:, 8:] @ H[8:]]) + 1e-9
    estimates = V * parts / parts.sum(axis=0)
    return float(np.sum(S * np.log((S + 1e-9) / (estimates + 1e-9)) - S + estimates))


def test_discriminative_training_lowers_the_masked_error_and_is_used_for_the_masks(data):
    mix, sources, training = data
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    trained = discriminative_training(models, Settings(models=models))
    W = np.concatenate([m.bases for m in models], axis=1)
    assert len(trained.layers) == Settings().unfolded_layers
    for bases in (*trained.layers, trained.mask_bases):
        assert bases.shape == W.shape and not np.allclose(bases, W) and bases.min() > 0
    assert separation_error(models, trained) < 0.9 * separation_error(models, Trained([], W))
    on = split_sources(mix[:, None], RATE, Settings(models=models))
    off = split_sources(mix[:, None], RATE, Settings(models=models, discriminative=False,
                                                     max_iter=supervised.TRAINED_FIT_ITERATIONS))
    np.testing.assert_array_equal(on.bases, W)                 # the activations come from W itself
    np.testing.assert_array_equal(on.activations, off.activations)
    assert not np.allclose(on.masks, off.masks)
    gains = [si_sdr(s, e) - si_sdr(s, mix) for s, e in zip(sources, on.stems[..., 0])]
    assert min(gains) >= 15, gains


@pytest.mark.parametrize("max_iter, expected", [(200, supervised.TRAINED_FIT_ITERATIONS), (7, 7)])
def test_trained_layers_refine_activations_fitted_with_at_most_trained_fit_iterations(data, max_iter, expected):
    from nmfsep.pipeline import planned_iterations

    mix, _, training = data
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    settings = Settings(models=models, max_iter=max_iter, tol=0.0)   # tol 0: every planned iteration runs
    assert planned_iterations(settings, 100) == expected
    assert split_sources(mix[:, None], RATE, settings).n_iter == expected
    plain = Settings(models=models, max_iter=max_iter, tol=0.0, discriminative=False)   # no layers: the full fit
    assert planned_iterations(plain, 100) == max_iter
    assert split_sources(mix[:, None], RATE, plain).n_iter == max_iter
    free = Settings(models=models, max_iter=max_iter, tol=0.0, n_free=2)   # free bases are learned: the full fit
    assert split_sources(mix[:, None], RATE, free).n_iter == max_iter


def test_models_without_frames_split_as_before(data):
    mix, _, training = data
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    old = tuple(model.Model(m.bases, m.sample_rate, m.n_fft, m.hop_length, m.beta, m.name) for m in models)
    plain = split_sources(mix[:, None], RATE, Settings(models=models, discriminative=False))
    np.testing.assert_array_equal(split_sources(mix[:, None], RATE, Settings(models=old)).stems, plain.stems)
    one = split_sources(mix[:, None], RATE, Settings(models=models[:1], n_free=2))   # one model: nothing to contrast
    np.testing.assert_array_equal(one.stems,
                                  split_sources(mix[:, None], RATE, Settings(models=models[:1], n_free=2,
                                                                             discriminative=False)).stems)


def test_settings_from_train_models_carry_the_training_so_splits_do_not_train_again(trainings, data, monkeypatch):
    import pickle

    from nmfsep import supervised

    mix, _, training = data
    monkeypatch.setenv("NMFSEP_CACHE_DIR", "")  # the on-disk cache off: the settings carry it
    short_training(monkeypatch)  # a short training: this is not about its result
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    made = trainings
    settings = train_models(Settings(models=models, unfolded_layers=1))
    assert len(made) == 1 and len(settings.trained.layers) == 1
    first = split_sources(mix[:, None], RATE, settings)
    again = split_sources(mix[:, None], RATE, pickle.loads(pickle.dumps(settings)))   # as a worker gets them
    assert len(made) == 1
    np.testing.assert_array_equal(first.stems, again.stems)
    assert train_models(settings) is settings
    untrained = split_sources(mix[:, None], RATE, Settings(models=models, unfolded_layers=1))  # trains itself
    assert len(made) == 2
    np.testing.assert_array_equal(untrained.stems, first.stems)
    one = Settings(models=models[:1])                          # one model: nothing to train
    assert train_models(one) is one and not training_needed(one)


def test_train_models_reports_its_start_and_steps_but_not_a_training_loaded_from_the_cache(data, monkeypatch,
                                                                                             tmp_path):
    from nmfsep import supervised

    _, _, training = data
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(tmp_path / "cache"))
    short_training(monkeypatch)
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    started, steps = [], []
    settings = Settings(models=models, unfolded_layers=1, max_iter=50)
    train_models(settings, lambda done, total: steps.append((done, total)), started.append)
    total = min(50, supervised.SPLIT_RECIPE.fit_iterations) + supervised.SPLIT_RECIPE.steps
    assert started == [tmp_path / "cache"]
    assert steps[-1] == (total, total) and {t for _, t in steps} == {total}
    assert [d for d, _ in steps] == sorted(d for d, _ in steps) and len(steps) >= supervised.SPLIT_RECIPE.steps
    started.clear()
    assert train_models(settings, lambda *a: steps.append(a), started.append).trained is not None  # loaded
    assert started == []
    monkeypatch.setenv("NMFSEP_CACHE_DIR", "")
    train_models(settings, None, started.append)
    assert started == [None]                                   # made, and kept nowhere


def test_cli_says_once_that_it_trains_the_models_and_where_it_keeps_them(data, tmp_path, monkeypatch):
    from nmfsep import supervised

    mix, _, training = data
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(tmp_path / "cache"))
    short_training(monkeypatch)
    for name, t in zip(("low", "mid"), training):
        model.save(learn(t, RATE, 8, name=name), str(tmp_path / f"{name}.npz"))
    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", mix, RATE, subtype="FLOAT")
    args = ["split", tmp_path / "a.wav", tmp_path / "b.wav", "--model", tmp_path / "low.npz",
            "--model", tmp_path / "mid.npz", "-o", tmp_path / "out", "--iter", 50]
    result = run(*args)
    assert result.exit_code == 0, result.output
    line = ("nmfsep: training the models to tell their sources apart, once for all inputs "
            f"(kept in {tmp_path / 'cache'} for later splits with them)")
    assert result.stderr.splitlines().count(line) == 1 and result.stderr.startswith(line)
    result = run(*args, "--force")                             # loaded from the cache: not trained, no line
    assert result.exit_code == 0, result.output
    assert "training" not in result.stderr
    result = run(*args, "--force", "-q")
    assert result.exit_code == 0 and result.stderr == ""


def test_a_batch_with_two_workers_trains_the_models_once(data, tmp_path):
    """Every process counts its trainings (a sitecustomize that wraps discriminative.train and
    shortens it to 20 steps), with the cache off so that a worker would have to train for itself."""
    import os
    import subprocess
    import sys

    mix, _, training = data
    for name, t in zip(("low", "mid"), training):
        model.save(learn(t, RATE, 8, name=name), str(tmp_path / f"{name}.npz"))
    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", mix, RATE, subtype="FLOAT")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "from nmfsep import discriminative\n"
        "_real = discriminative.train\n"
        "def train(*a, **k):\n"
        "    with open(os.environ['TRAININGS_LOG'], 'a') as log:\n"
        "        log.write(f'{os.getpid()}\\n')\n"
        "    return _real(*a[:5], 20, *a[6:], **k)\n"
        "discriminative.train = train\n")
    log = tmp_path / "trainings.log"
    env = dict(os.environ, NMFSEP_CACHE_DIR="", TRAININGS_LOG=str(log),
               PYTHONPATH=os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", "nmfsep.cli", "split", tmp_path / "a.wav", tmp_path / "b.wav",
                             "--model", tmp_path / "low.npz", "--model", tmp_path / "mid.npz",
                             "-o", tmp_path / "out", "-j", "2", "--iter", "50", "--json"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert len(log.read_text().splitlines()) == 1
    assert result.stderr.count("training the models to tell their sources apart, once for all inputs "
                               "(not kept: the cache is off") == 1


def test_a_later_run_loads_the_training_from_the_disk_cache(trainings, data, monkeypatch, tmp_path):
    from nmfsep import supervised

    mix, _, training = data
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(tmp_path / "cache"))
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    settings = Settings(models=models, unfolded_layers=2)
    made = trainings
    first = split_sources(mix[:, None], RATE, settings)
    saved = list((tmp_path / "cache").iterdir())
    assert len(made) == 1 and len(saved) == 1 and saved[0].name.startswith("discriminative-")

    again = split_sources(mix[:, None], RATE, Settings(models=tuple(model.Model(**vars(m)) for m in models),
                                                       unfolded_layers=2))
    assert len(made) == 1
    np.testing.assert_array_equal(first.stems, again.stems)

    split_sources(mix[:, None], RATE, Settings(models=models, unfolded_layers=3))   # other settings: trained
    assert len(made) == 2 and len(list((tmp_path / "cache").iterdir())) == 2

    saved[0].write_bytes(saved[0].read_bytes()[:100])           # a damaged file is made again
    np.testing.assert_array_equal(split_sources(mix[:, None], RATE, settings).stems, first.stems)
    assert len(made) == 3


def test_the_disk_cache_can_be_turned_off(data, monkeypatch, tmp_path):
    from nmfsep import cache

    mix, _, training = data
    monkeypatch.setenv("NMFSEP_CACHE_DIR", "")
    assert cache.folder() is None
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    split_sources(mix[:, None], RATE, Settings(models=models, unfolded_layers=1))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.delenv("NMFSEP_CACHE_DIR")
    assert cache.folder() == tmp_path / "nmfsep"


def test_cli_learn_limits_and_defaults_are_the_libraries():
    from nmfsep import cli, supervised

    assert cli.MAX_PITCH_SHIFTS == model.MAX_PITCH_SHIFTS
    params = {p.name: p for p in cli.learn.params}
    assert params["pitch_shifts"].default == supervised.DEFAULT_PITCH_SHIFTS
    assert params["n_bases"].default == supervised.DEFAULT_BASES


def test_two_models_learned_from_the_same_fading_audio_split_into_stems_that_sum_to_the_input(data, monkeypatch,
                                                                                                tmp_path):
    """The same audio learned twice (the same bases), fading out to -217 dB: near-silent frames
    made the training overflow to NaN (and the stems NaN); it is finite or the plain bases."""
    import warnings

    from nmfsep import supervised

    mix, _, training = data
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(tmp_path / "cache"))
    short_training(monkeypatch)
    fading = training[0] * np.exp(-np.linspace(0, 25, len(training[0])))
    models = tuple(learn(fading, RATE, 8, name=n) for n in ("a", "b"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = split_sources(mix[:, None], RATE, Settings(models=models))
    assert np.all(np.isfinite(result.stems))
    np.testing.assert_allclose(result.stems.sum(axis=0)[:, 0], mix, atol=1e-5)
    (saved,) = (tmp_path / "cache").iterdir()
    with np.load(saved) as kept:
        assert all(np.all(np.isfinite(kept[key])) for key in kept.files)


def test_a_cached_training_that_is_not_finite_is_made_again_and_replaced(trainings, data, monkeypatch, tmp_path):
    from nmfsep import supervised

    _, _, training = data
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(tmp_path / "cache"))
    short_training(monkeypatch)
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    settings = Settings(models=models, unfolded_layers=1)
    discriminative_training(models, settings)
    (saved,) = (tmp_path / "cache").iterdir()
    with np.load(saved) as kept:
        arrays = {key: np.full_like(kept[key], np.nan) for key in kept.files}
    np.savez(saved, **arrays)                                  # as the defect left it
    made = trainings
    made.clear()                                               # count from here: the first training is done
    trained = discriminative_training(models, settings)
    assert len(made) == 1
    assert all(np.all(np.isfinite(b)) for b in (*trained.layers, trained.mask_bases))
    with np.load(saved) as kept:
        assert all(np.all(np.isfinite(kept[key])) for key in kept.files)


def test_a_split_trains_its_models_with_the_fast_recipe(trainings, data, monkeypatch):
    from nmfsep import supervised

    mix, _, training = data
    monkeypatch.setenv("NMFSEP_CACHE_DIR", "")
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    made = trainings
    split_sources(mix[:, None], RATE, Settings(models=models))
    fast, thorough = supervised.SPLIT_RECIPE, supervised.THOROUGH_RECIPE
    ((S, _, _, _, n_layers, steps, rate, batch, _),) = made
    assert (n_layers, steps, rate, batch) == (Settings().unfolded_layers, fast.steps, fast.rate, fast.batch)
    assert S.shape[2] <= fast.frames
    assert fast.steps * fast.batch * 4 <= thorough.steps * thorough.batch   # a quarter of the Adam work at most


def test_a_cached_training_of_another_recipe_is_not_reused(trainings, data, monkeypatch, tmp_path):
    from nmfsep import supervised

    _, _, training = data
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(tmp_path / "cache"))
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    settings = Settings(models=models, unfolded_layers=1)
    made = trainings
    short = replace(supervised.SPLIT_RECIPE, steps=20)
    longer = replace(short, steps=30)
    first = discriminative_training(models, settings, recipe=short)
    discriminative_training(models, settings, recipe=longer)
    assert [a[5] for a in made] == [20, 30] and len(list((tmp_path / "cache").iterdir())) == 2
    again = discriminative_training(models, settings, recipe=short)   # each recipe's own, from the cache
    monkeypatch.setattr(supervised, "SPLIT_RECIPE", longer)
    discriminative_training(models, settings)
    assert [a[5] for a in made] == [20, 30]
    np.testing.assert_array_equal(again.mask_bases, first.mask_bases)


@pytest.mark.parametrize("other", [dict(sample_rate=16000), dict(n_fft=2048)])
def test_models_that_cannot_be_split_together_are_refused_before_any_training(data, wav_file, tmp_path, monkeypatch,
                                                                              trainings, other):
    _, _, training = data
    model.save(learn(training[0], RATE, 4, name="a", max_iter=20), str(tmp_path / "a.npz"))
    rate = other.get("sample_rate", RATE)
    model.save(learn(training[1][: len(training[1]) * rate // RATE], rate, 4, name="b", max_iter=20,
                     n_fft=other.get("n_fft")), str(tmp_path / "b.npz"))
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(tmp_path / "cache"))
    result = run("split", wav_file(), "--model", tmp_path / "a.npz", "--model", tmp_path / "b.npz",
                 "-o", tmp_path / "out")
    assert result.exit_code == 1
    cause = ("were learned at different sample rates (22050 and 16000 Hz)" if "sample_rate" in other
             else "use different STFT sizes (1024/256 and 2048/512)")
    assert result.stderr == f"nmfsep: error: models 'a' and 'b' {cause}{': learn them at one rate' if 'sample_rate' in other else ''}\n"
    assert trainings == [] and not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_a_cache_folder_that_cannot_be_written_is_named_in_the_training_line(data, wav_file, tmp_path, monkeypatch):
    short_training(monkeypatch)
    _, _, training = data
    for name, t in zip(("low", "mid"), training):
        model.save(learn(t, RATE, 4, name=name, max_iter=20), str(tmp_path / f"{name}.npz"))
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(blocker / "cache"))
    result = run("split", wav_file(), "--model", tmp_path / "low.npz", "--model", tmp_path / "mid.npz",
                 "-o", tmp_path / "out", "--iter", 20)
    assert result.exit_code == 0, result.output
    assert (f"(not kept: the cache folder {blocker / 'cache'} cannot be written)\n") in result.stderr
    assert blocker.read_bytes() == b""


def test_auto_pitch_shifts_fall_back_to_1_without_the_speech_builtin(monkeypatch):
    from nmfsep import models

    samples, sample_rate = sf.read(REPO / "sample_audio/voices_src1.wav", dtype="float32")
    assert learn(samples, sample_rate, 4, max_iter=5).pitch_shifts == 0
    monkeypatch.setattr(models, "names", lambda: ["music", "noise"])
    assert learn(samples, sample_rate, 4, max_iter=5).pitch_shifts == 1
    assert supervised.auto_pitch_shifts(samples, sample_rate) == (1, None)


def test_cli_learn_says_when_auto_had_no_builtins_to_compare(tmp_path, monkeypatch):
    from nmfsep import models

    monkeypatch.setattr(models, "names", lambda: ["speech_low"])
    result = run("learn", REPO / "sample_audio/voices_src1.wav", "-o", tmp_path / "v.npz", "-k", 4, "--iter", 5)
    assert result.exit_code == 0 and "pitch shifts 1: auto, no built-in models to compare)" in result.stderr


def test_cli_learn_calls_stdin_by_the_name_other_commands_use(tmp_path):
    import io

    few = io.BytesIO()
    sf.write(few, np.full(5, 0.1, np.float32), RATE, format="WAV")
    result = CliRunner().invoke(cli, ["learn", "-", "-o", str(tmp_path / "m.npz")], input=few.getvalue(),
                                catch_exceptions=False)
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith("nmfsep: error: <stdin>: too short to learn from: 5 samples"), result.stderr


def test_learn_help_and_readme_quote_the_training_frame_limit():
    assert f"at most {supervised.MAX_TRAINING_FRAMES} with the shifted copies" in " ".join(
        run("learn", "--help").stdout.split())
    assert f"beyond {supervised.MAX_TRAINING_FRAMES} frames" in " ".join((REPO / "README.md").read_text().split())


def test_iterations_beyond_the_trainings_fit_share_its_cached_training(trainings, data, monkeypatch, tmp_path):
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(tmp_path))
    short_training(monkeypatch)
    _, _, training = data
    models = tuple(learn(t, RATE, 8, name=n) for t, n in zip(training, ("low", "mid")))
    for max_iter in (200, 1000, 200):
        train_models(Settings(models=models, max_iter=max_iter, unfolded_layers=1))
    assert len(trainings) == 1   # --iter 1000 loaded the training that --iter 200 made
    train_models(Settings(models=models, max_iter=10, unfolded_layers=1))   # fewer than its fit's: another
    assert len(trainings) == 2


def test_split_help_and_readme_quote_the_activation_fit_limit():
    n = supervised.TRAINED_FIT_ITERATIONS
    assert f"at most {n} fit the activations" in " ".join(run("split", "--help").stdout.split())
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"the fit of the activations runs at most {n}," in readme
    assert f"for at most {n} iterations before those layers" in readme


def test_models_of_two_stft_sizes_are_refused_as_such_with_or_without_n_fft(data, wav_file, tmp_path):
    _, _, training = data
    b = learn(training[1], RATE, 4, name="b")
    model.save(learn(training[0], RATE, 4, name="a", n_fft=b.n_fft // 2, hop_length=b.hop_length // 2),
               str(tmp_path / "a.npz"))
    model.save(b, str(tmp_path / "b.npz"))
    for extra in ([], ["--n-fft", str(b.n_fft)]):   # --n-fft matches b, not a (the first)
        result = run("split", wav_file(), "--model", tmp_path / "a.npz", "--model", tmp_path / "b.npz", *extra,
                     "-o", tmp_path / "out")
        assert result.exit_code == 1 and "use different STFT sizes" in result.stderr, result.output


def test_separate_refuses_an_n_fft_against_the_models_as_a_bad_value(data):
    _, _, training = data
    m = learn(training[0], RATE, 4, name="a")
    with pytest.raises(BadValueError, match="leave --n-fft/--hop out or match them"):
        nmfsep.separate(training[0], RATE, models=[m, learn(training[1], RATE, 4, name="b")], n_fft=m.n_fft * 2)


def _steady_case(rate=8000, seconds=4.0):
    """A voice-like harmonic tone switched on and off, a steady hum of the same timbre, and white
    noise; models of the voice (its own audio, other timing; flagged as the built-in speech, as
    own models only count as voices where they sound like speech) and of the noise, as the built-in."""
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 8)).astype(np.float32)
    rng = np.random.default_rng(0)
    voice = 0.3 * tone * (np.sin(2 * np.pi * 1.3 * t) > 0.3)
    hum = 0.1 * tone
    noise = 0.02 * rng.standard_normal(t.size).astype(np.float32)
    voice_model = replace(learn(0.3 * tone * (np.sin(2 * np.pi * 0.9 * t) > 0), rate, 6, name="speech", max_iter=60),
                          builtin=True)
    noise_model = replace(learn(0.05 * rng.standard_normal(t.size).astype(np.float32), rate, 6, name="noise",
                                max_iter=60), builtin=True)
    return voice, hum + noise, (voice_model, noise_model), rate


@pytest.mark.parametrize("discriminative", [False, True])
def test_a_steady_hum_that_the_voice_model_explains_goes_to_the_noise_stem(discriminative, monkeypatch):
    short_training(monkeypatch)
    voice, background, models, rate = _steady_case()
    mix = (voice + background)[:, None]
    settings = train_models(Settings(models=models, discriminative=discriminative, blend=0))
    assert settings.steady == (1, (0,))
    moved = split_sources(mix, rate, settings).stems[..., 0]
    kept = split_sources(mix, rate, replace(settings, models=(replace(models[0], name="me"), models[1]))).stems[..., 0]
    np.testing.assert_allclose(moved.sum(axis=0), mix[:, 0], atol=1e-4)
    assert si_sdr(background, kept[1]) < 0                       # the voice model takes the hum
    assert si_sdr(background, moved[1]) > si_sdr(background, kept[1]) + 6
    assert si_sdr(voice, moved[0]) > si_sdr(voice, kept[0]) + 3


def test_steady_stems_are_the_voices_beside_the_builtin_noise(monkeypatch):
    def m(name, builtin):
        return model.Model(bases=np.ones((5, 2), np.float32), sample_rate=RATE, n_fft=8, hop_length=2, beta=1.0,
                           name=name, builtin=builtin)

    monkeypatch.setattr(nmfsep.models, "sounds_like_speech", lambda m: m.name == "me")
    noise, speech, music, own, cello = m("noise", True), m("speech", True), m("music", True), m("me", False), m("cello", False)
    assert supervised.steady_stems((speech, noise)) == (1, (0,))
    assert supervised.steady_stems((noise, own, music, m("speech_low", True))) == (0, (1, 3))
    assert supervised.steady_stems((music, noise)) is None                # held notes keep their floor
    assert supervised.steady_stems((cello, noise)) is None                # and one's own instruments too
    assert supervised.steady_stems((speech, m("noise", False))) is None   # one's own "noise" is a model like any
    assert supervised.steady_stems((speech, own)) is None
    assert supervised.steady_stems((speech, music)) == (1, (0,))           # no noise: music takes it
    assert supervised.steady_stems((music, speech, noise)) == (2, (1,))    # noise before music
    assert supervised.steady_stems((speech, m("piano", True))) is None
    assert Settings(models=(own, noise)).steady == (1, (0,))


def test_own_models_sound_like_speech_where_the_speech_builtin_fits_their_frames_best():
    speech, strings = nmfsep.models.load("speech"), nmfsep.models.load("strings")
    assert nmfsep.models.sounds_like_speech(replace(speech, builtin=False))
    assert not nmfsep.models.sounds_like_speech(strings)
    assert not nmfsep.models.sounds_like_speech(replace(speech, frames=None))   # format 1: no frames
    # at another rate (44.1 kHz, n_fft 2048): the bins the built-ins hold are compared
    high = nmfsep.model.conform(replace(speech, builtin=False), 44100, 2048, 512)
    assert nmfsep.models.sounds_like_speech(high)


def test_a_held_note_of_ones_own_instrument_keeps_its_floor_beside_the_builtin_noise(monkeypatch):
    rate = 22050
    t = np.arange(4 * rate) / rate
    note = (0.3 * sum(np.sin(2 * np.pi * 196 * h * t) / h for h in range(1, 10))).astype(np.float32)
    noise = 0.03 * np.random.default_rng(1).standard_normal(t.size).astype(np.float32)
    cello = learn(note[: 2 * rate], rate, 8, name="cello", max_iter=60)
    assert not nmfsep.models.sounds_like_speech(cello)
    settings = Settings(models=(cello, nmfsep.models.load("noise")), blend=0, discriminative=False)
    assert settings.steady is None
    stems = split_sources((note + noise)[:, None], rate, settings).stems[..., 0]
    assert si_sdr(note, stems[0]) > 10


def test_a_streamed_split_moves_the_steady_floor_block_by_block(monkeypatch):
    from nmfsep import stream

    short_training(monkeypatch)
    monkeypatch.setattr(stream, "BLOCK_FRAMES", 100)
    voice, background, models, rate = _steady_case(seconds=8.0)
    mix = (voice + background)[:, None]
    settings = Settings(models=models, discriminative=False, blend=0)

    def streamed(settings):
        out = []
        stream.split_stream(stream.ArrayReader(mix, 997), 1, rate, len(mix), settings, out.append)
        return np.concatenate(out, axis=1)[..., 0]

    moved = streamed(settings)
    kept = streamed(replace(settings, models=(replace(models[0], name="me"), models[1])))
    np.testing.assert_allclose(moved.sum(axis=0), mix[:, 0], atol=1e-4)
    assert si_sdr(background, moved[1]) > si_sdr(background, kept[1]) + 6


def test_train_models_works_out_the_voices_once_for_every_split_and_worker(monkeypatch):
    import pickle

    calls = []
    real = nmfsep.models.sounds_like_speech
    monkeypatch.setattr(nmfsep.models, "sounds_like_speech", lambda m: calls.append(m.name) or real(m))
    speech = replace(nmfsep.models.load("speech"), builtin=False, name="me")
    settings = train_models(Settings(models=(speech, nmfsep.models.load("noise")), discriminative=False))
    assert calls == ["me"]
    copy = pickle.loads(pickle.dumps(settings))   # as a worker gets them
    assert copy.steady == settings.steady == (1, (0,))
    assert calls == ["me"]


@pytest.mark.parametrize("names,floor", [
    (["speech", "noise"], {"to": "noise", "from": ["speech"]}),
    (["music", "speech_low", "speech_high"], {"to": "music", "from": ["speech_low", "speech_high"]}),
    (["piano", "noise"], None),
])
def test_json_and_report_say_where_the_steady_floor_went(names, floor, tmp_path):
    rate = 22050
    t = np.arange(2 * rate) / rate
    sf.write(str(tmp_path / "mix.wav"), (0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * np.random.default_rng(0)
                                         .standard_normal(t.size)).astype(np.float32), rate)
    args = [a for n in names for a in ("--model", n)]
    result = run("split", tmp_path / "mix.wav", *args, "-o", tmp_path / "out", "--json", "--report", "--iter", 20)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["steady_floor"] == floor
    text = open(record["report"], encoding="utf-8").read()
    said = ("none: no voice beside a built-in noise or music" if floor is None else
            f"the part of the voices&#x27; activations ({', '.join(floor['from'])}) under their 40th percentile over "
            f"time goes to {floor['to']}")
    assert "steady floor" in text and said in text
