"""Bad input: one line on stderr that names the input and the cause, exit 1 (2 for a usage
error), no traceback and no file written. Edge inputs that are not bad give finite stems."""

import io
import os
import struct

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from nmfsep import audio
from nmfsep.cli import cli

RATE = 22050


def split(*args, input=None):
    # catch_exceptions=False: an exception escaping the CLI fails the test with its traceback
    return CliRunner().invoke(cli, ["split", *map(str, args)], input=input, catch_exceptions=False)


def good_wav_bytes(frames=4096, channels=1, subtype="PCM_16", rate=RATE, seed=0):
    samples = (np.random.default_rng(seed).standard_normal((frames, channels)) * 0.1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def with_bytes(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new):]


def files_under(folder):
    return sorted(str(p) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def bad_corpus(tmp_path):
    """(file name, bytes or a maker, expected message part): the issue's list and mutations of a
    good WAV (RIFF layout: 'RIFF' 0, 'WAVE' 8, 'fmt ' 12, format tag 20, channels 22, rate 24,
    bits 34, 'data' 36, data size 40)."""
    good = good_wav_bytes()
    rng = np.random.default_rng(6)
    corpus = [
        ("empty.wav", b"", "is empty (0 bytes)"),
        ("header_cut.wav", good[:20], "not a readable audio file"),
        ("header_only.wav", good[:44], "contains no audio samples"),
        ("half.wav", good[: len(good) // 2], "truncated file"),
        ("text.wav", b"this is not audio\n" * 20, "not a readable audio file"),
        ("random.wav", rng.bytes(5000), "not a readable audio file"),
        ("riff_flipped.wav", with_bytes(good, 0, b"RIFX"), "not a readable audio file"),
        ("wave_flipped.wav", with_bytes(good, 8, b"WAVF"), "not a readable audio file"),
        ("fmt_flipped.wav", with_bytes(good, 12, b"fmX "), "not a readable audio file"),
        ("data_flipped.wav", with_bytes(good, 36, b"dada"), "not a readable audio file"),
        ("format_tag.wav", with_bytes(good, 20, struct.pack("<H", 0x7777)), "not a readable audio file"),
        ("no_channels.wav", with_bytes(good, 22, struct.pack("<H", 0)), "not a readable audio file"),
        ("many_channels.wav", with_bytes(good, 22, struct.pack("<H", 65)), "65 channels"),
        ("rate_zero.wav", with_bytes(good, 24, struct.pack("<I", 0)), "not a readable audio file"),
        ("rate_huge.wav", with_bytes(good, 24, struct.pack("<I", 10**9)), "sample rate 1000000000 Hz"),
        ("bits_zero.wav", with_bytes(good, 34, struct.pack("<H", 0)), "not a readable audio file"),
        ("data_size_grown.wav", with_bytes(good, 40, struct.pack("<I", 10**6)), "truncated file"),
    ]
    # truncation at seeded random points: inside the header, and inside the samples
    for point in rng.integers(1, 44, size=3):
        corpus.append((f"cut_at_{point}.wav", good[:point], "not a readable audio file"))
    for point in rng.integers(46, len(good) - 2, size=5):
        corpus.append((f"cut_at_{point}.wav", good[:point], "truncated file"))
    nan = np.zeros(1000, np.float32)
    nan[500] = np.nan
    inf = np.zeros(1000, np.float32)
    inf[10] = -np.inf
    corpus += [("nan.wav", nan, "contains NaN or infinite samples"),
               ("inf.wav", inf, "contains NaN or infinite samples")]
    flac = io.BytesIO()
    sf.write(flac, np.zeros(20000, np.float32) + 0.1, RATE, format="FLAC")
    corpus.append(("half.flac", flac.getvalue()[: len(flac.getvalue()) // 2], ""))
    return corpus


def write_case(folder, name, content):
    path = folder / name
    if isinstance(content, np.ndarray):
        sf.write(path, content, RATE, subtype="FLOAT")
    else:
        path.write_bytes(content)
    return path


def assert_one_line_error(result, name, cause=""):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("nmfsep: error: "), result.stderr
    assert str(name) in result.stderr and cause in result.stderr, result.stderr


def test_corpus_of_bad_files_each_fails_alone_with_one_line_and_no_file(tmp_path):
    corpus = bad_corpus(tmp_path)
    assert len(corpus) >= 20
    out = tmp_path / "out"
    for name, content, cause in corpus:
        path = write_case(tmp_path, name, content)
        result = split(path, "-o", out, "--iter", 3)
        assert_one_line_error(result, path, cause)
        assert files_under(out) == [], name


def test_corpus_in_one_batch_gives_one_error_record_each_and_exit_1(tmp_path):
    import json

    folder = tmp_path / "bad"
    folder.mkdir()
    corpus = bad_corpus(tmp_path)
    for name, content, _ in corpus:
        write_case(folder, name, content)
    result = split(folder, "-o", tmp_path / "out", "--iter", 3, "--json", "-q")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(corpus) and {r["status"] for r in records} == {"error"}
    assert all(r["error"].startswith(r["input"] + ": ") for r in records)
    assert result.stderr.count("\n") == len(corpus) and "Traceback" not in result.stderr
    assert files_under(tmp_path / "out") == []


def test_random_header_damage_never_gives_a_traceback(tmp_path):
    """Seeded fuzz: any of 40 damaged headers is either split (finite stems of the input's
    length) or refused in one line with nothing written."""
    good = good_wav_bytes(frames=2048)
    rng = np.random.default_rng(2024)
    outcomes = set()
    for case in range(40):
        data = bytearray(good)
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(0, 44)] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"damaged{case}.wav"
        path.write_bytes(bytes(data))
        out = tmp_path / f"out{case}"
        result = split(path, "-o", out, "--iter", 2, "-q")
        assert "Traceback" not in result.stderr
        if result.exit_code == 0:
            frames = sf.info(str(path)).frames
            for stem in files_under(out):
                samples, _ = sf.read(stem, dtype="float32")
                assert len(samples) == frames and np.isfinite(samples).all()
        else:
            assert_one_line_error(result, path)
            assert files_under(out) == []
        outcomes.add(result.exit_code)
    assert outcomes == {0, 1}  # the corpus does exercise both outcomes


def test_missing_file_and_broken_link(tmp_path):
    link = tmp_path / "link.wav"
    link.symlink_to(tmp_path / "gone.wav")
    assert_one_line_error(split(tmp_path / "nope.wav", "-o", tmp_path / "out"), tmp_path / "nope.wav", "no such file")
    assert_one_line_error(split(link, "-o", tmp_path / "out"), link, "no such file (a broken link)")
    assert not (tmp_path / "out").exists()


def test_folder_with_no_audio_says_so_and_hints_at_r(tmp_path):
    folder = tmp_path / "notes"
    (folder / "deeper").mkdir(parents=True)
    (folder / "readme.txt").write_text("no audio here")
    (folder / "deeper" / "a.wav").write_bytes(good_wav_bytes())
    result = split(folder, "-o", tmp_path / "out")
    assert_one_line_error(result, folder, "no audio files in this folder (use -r to look in its subfolders)")
    result = split(folder, "-r", "--glob", "*.flac", "-o", tmp_path / "out")
    assert_one_line_error(result, folder, "no files matching '*.flac'")
    assert not (tmp_path / "out").exists()


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "locked.wav"
    path.write_bytes(good_wav_bytes())
    if os.geteuid() == 0:  # root reads anything: make open() refuse as it would for a user
        def refuse(file, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(file))
        monkeypatch.setattr(audio, "open", refuse, raising=False)
    else:
        path.chmod(0)
    assert_one_line_error(split(path, "-o", tmp_path / "out"), path, "permission denied")
    assert not (tmp_path / "out").exists()


def test_output_folder_that_is_a_file_fails_before_any_work(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(good_wav_bytes())
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a folder")
    result = split(path, "-o", blocker)
    assert_one_line_error(result, blocker, "not a folder")
    result = split(path, "-o", blocker / "sub")
    assert_one_line_error(result, blocker / "sub", "is a file")
    assert blocker.read_text() == "a file, not a folder"


def test_track_folder_that_is_a_file_fails_that_input(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(good_wav_bytes())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_text("in the way")
    assert_one_line_error(split(path, "-o", tmp_path / "out", "--iter", 2), path, "not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_output_folder(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(good_wav_bytes())
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    assert_one_line_error(split(path, "-o", tmp_path / "ro"), tmp_path / "ro", "permission denied")


def test_model_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(good_wav_bytes())
    model = tmp_path / "model.npz"
    model.write_text("not a model")
    assert_one_line_error(split(path, "--model", model, "-o", tmp_path / "out"), model, "not an nmfsep model")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,code,message", [
    (["-k", "-1"], 2, "Invalid value for '-k': -1 is not in the range x>=1."),
    (["-k", "0"], 2, "Invalid value for '-k': 0 is not in the range x>=1."),
    (["-k", "two"], 2, "Invalid value for '-k': 'two' is not a valid integer range."),
    (["--iter", "-5"], 2, "Invalid value for '--iter': -5 is not in the range x>=1."),
    (["--n-fft", "8"], 2, "Invalid value for '--n-fft': 8 is not in the range x>=16."),
    (["--n-fft", "1001"], 2, "--n-fft: n_fft must be an even number of samples >= 16, got 1001"),
    (["--n-fft", "100000000"], 2, "--n-fft: n_fft 100000000 is too large (at most 65536 samples)"),
    (["--n-fft", "64", "--hop", "40"], 2, "--hop: hop must be between 1 and n_fft/2 = 32 samples, got 40"),
])
def test_bad_options_fail_in_one_line_before_any_work(tmp_path, args, code, message):
    path = tmp_path / "a.wav"
    path.write_bytes(good_wav_bytes())
    result = split(path, *args, "-o", tmp_path / "out")
    assert result.exit_code == code
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_input_too_long_for_memory_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    path.write_bytes(good_wav_bytes(frames=RATE * 2))
    monkeypatch.setattr(audio, "memory_limit", lambda: 4 * 2**20)  # a 4 MiB machine
    decoded = []
    monkeypatch.setattr(audio.Source, "read", lambda self: decoded.append(1))
    assert_one_line_error(split(path, "-o", tmp_path / "out"), path, "too long to separate in memory")
    assert decoded == [] and not (tmp_path / "out").exists()


def test_stdin_that_is_not_audio(tmp_path):
    result = split("-", "-o", tmp_path / "out", input=b"hello")
    assert_one_line_error(result, "<stdin>", "not a readable audio file")
    result = split("-", "-o", tmp_path / "out", input=b"")
    assert_one_line_error(result, "<stdin>", "is empty (nothing was piped in)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name,frames,channels,rate", [
    ("silence", 4000, 1, RATE),
    ("shorter_than_a_frame", 100, 2, RATE),
    ("one_sample", 1, 1, RATE),
    ("eight_channels", 3000, 8, RATE),
    ("8k", 4000, 1, 8000),
    ("192k", 20000, 2, 192000),
])
def test_edge_inputs_give_finite_stems_that_add_up(tmp_path, name, frames, channels, rate):
    samples = (np.random.default_rng(1).standard_normal((frames, channels)) * 0.1).astype(np.float32)
    if name == "silence":
        samples[:] = 0
    path = tmp_path / f"{name}.wav"
    sf.write(path, samples, rate, subtype="FLOAT")
    result = split(path, "-o", tmp_path / "out", "--iter", 5, "-q")
    assert result.exit_code == 0, result.output
    stems = [sf.read(str(tmp_path / "out" / name / f"source{i}.wav"), dtype="float32", always_2d=True)
             for i in (1, 2)]
    for stem, stem_rate in stems:
        assert stem.shape == samples.shape and stem_rate == rate and np.isfinite(stem).all()
    total = stems[0][0] + stems[1][0]
    assert np.abs(total - samples).max() <= 1e-4 * max(np.abs(samples).max(), 1e-3)


def test_float_samples_far_outside_one_are_separated_without_overflow(tmp_path):
    samples = (np.random.default_rng(3).standard_normal(4000) * 1e30).astype(np.float32)
    path = tmp_path / "loud.wav"
    sf.write(path, samples, RATE, subtype="FLOAT")
    result = split(path, "-o", tmp_path / "out", "--iter", 5, "-q")
    assert result.exit_code == 0 and result.stderr == "", result.output
    total = sum(sf.read(str(tmp_path / "out" / "loud" / f"source{i}.wav"), dtype="float32")[0] for i in (1, 2))
    assert np.isfinite(total).all() and np.abs(total - samples).max() <= 1e-4 * np.abs(samples).max()


@pytest.mark.parametrize("options,message", [
    (["--beta", "nan"], "beta must be a finite number"),
    (["--tol", "nan"], "tol must be >= 0"),
    (["--components", "2", "-k", "3"], "--components 2 is fewer than the 3 sources asked"),
])
def test_option_values_that_cannot_work_are_usage_errors(tmp_path, options, message):
    mix = tmp_path / "a.wav"
    sf.write(str(mix), np.zeros(1600, np.float32), 16000)
    result = CliRunner().invoke(cli, ["split", str(mix), "-o", str(tmp_path / "out"), *options])
    assert result.exit_code == 2
    assert result.stderr.startswith("nmfsep split: error: ") and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_empty_stdin_is_named_empty(tmp_path):
    result = CliRunner().invoke(cli, ["split", "-", "-o", str(tmp_path / "out")], input=b"")
    assert result.exit_code == 1
    assert result.stderr == "nmfsep: error: <stdin>: is empty (nothing was piped in)\n"
