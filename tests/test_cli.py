import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from nmfsep.cli import cli


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def test_split_writes_stems_per_the_layout(wav_file, tmp_path):
    mix = wav_file("song.wav")
    out = tmp_path / "out"
    result = run("split", mix, "-k", 2, "-o", out, "--iter", 20, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out / "song")) == ["source1.wav", "source2.wav"]


def test_json_line_has_exactly_the_contract_fields(wav_file, tmp_path):
    mix = wav_file("song.wav", channels=2)
    result = run("split", mix, "-k", 3, "-o", tmp_path / "out", "--iter", 10, "--json")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert set(record) == {"input", "status", "error", "stems", "sample_rate", "channels", "frames",
                           "k", "iterations", "loss", "seconds", "mode", "peak_memory", "format", "subtype",
                           "clipped", "resampled", "blend", "steady_floor", "register"}
    assert record["status"] == "ok" and record["error"] is None and record["resampled"] is None
    assert record["blend"] is None and record["steady_floor"] is None and record["register"] is None
    assert [s["name"] for s in record["stems"]] == ["source1", "source2", "source3"]
    assert record["channels"] == 2 and record["k"] == 3 and record["sample_rate"] == 22050
    assert record["frames"] == sf.info(str(mix)).frames
    # iterations: all the factorizations' (3 of the blind ensemble and 2 of --grouping auto's check)
    assert 1 <= record["iterations"] <= 5 * 10 and record["loss"] > 0 and record["seconds"] >= 0
    assert all(os.path.exists(s["path"]) for s in record["stems"])


def test_a_failed_inputs_record_says_nothing_of_a_blend_it_never_made(wav_file, tmp_path):
    good = wav_file("good.wav")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 22050)
    result = run("split", good, empty, "--model", "speech", "--model", "noise", "-o", tmp_path / "out",
                 "--iter", 5, "--json")
    ok, failed = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert result.exit_code == 1 and ok["status"] == "ok" and failed["status"] == "error"
    assert ok["blend"] == 0.35 and ok["steady_floor"] is not None
    assert failed["blend"] is None and failed["steady_floor"] is None and failed["register"] is None


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_stems_keep_rate_channels_length_and_subtype(wav_file, tmp_path, subtype):
    mix = wav_file("a.wav", channels=2, subtype=subtype)
    result = run("split", mix, "-o", tmp_path / "out", "--iter", 10, "-q")
    assert result.exit_code == 0, result.output
    for stem in ("source1", "source2"):
        info = sf.info(str(tmp_path / "out" / "a" / f"{stem}.wav"))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (22050, 2, sf.info(str(mix)).frames, subtype)


def test_float_stems_add_up_to_the_input_on_disk(wav_file, tmp_path):
    mix = wav_file("a.wav", channels=2)
    assert run("split", mix, "-k", 2, "-o", tmp_path / "o", "--iter", 20, "-q").exit_code == 0
    original, _ = sf.read(str(mix), dtype="float32")
    total = sum(sf.read(str(tmp_path / "o" / "a" / f"source{i}.wav"), dtype="float32")[0] for i in (1, 2))
    assert np.abs(total - original).max() <= 1e-4 * np.abs(original).max()


@pytest.mark.parametrize("fmt,ext,subtype", [("FLAC", "flac", "PCM_16"), ("AIFF", "aiff", "PCM_24"),
                                              ("CAF", "caf", "PCM_16"), ("W64", "w64", "FLOAT"),
                                              ("RF64", "wav", "PCM_16")])
def test_other_lossless_formats_are_read_and_kept(wav_file, tmp_path, fmt, ext, subtype):
    mix = wav_file(f"a.{ext}", subtype=subtype, fmt=fmt)  # RF64 files are named .wav
    result = run("split", mix, "-o", tmp_path / "out", "--iter", 10, "-q")
    assert result.exit_code == 0, result.output
    info = sf.info(str(tmp_path / "out" / "a" / f"source1.{ext}"))
    assert (info.format, info.subtype) == (fmt, subtype)


def test_missing_file_is_one_line_exit_1(tmp_path):
    result = run("split", tmp_path / "nope.wav", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == f"nmfsep: error: {tmp_path / 'nope.wav'}: no such file\n"
    assert not (tmp_path / "out").exists()


def test_text_file_named_wav_is_refused(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("this is not audio\n")
    result = run("split", bad, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"nmfsep: error: {bad}: not a readable audio file (")
    assert result.stderr.count("\n") == 1
    assert json.loads(result.stdout)["status"] == "error"
    assert not (tmp_path / "out" / "bad").exists()


def test_one_bad_input_does_not_stop_the_others(wav_file, tmp_path):
    good = wav_file("good.wav")
    result = run("split", tmp_path / "missing.wav", good, "-o", tmp_path / "out", "--iter", 5, "--json")
    assert result.exit_code == 1
    statuses = [json.loads(line)["status"] for line in result.stdout.splitlines()]
    assert statuses == ["error", "ok"]
    assert (tmp_path / "out" / "good" / "source1.wav").exists()


@pytest.mark.parametrize("args,message", [
    (["-k", "0"], "nmfsep split: error: Invalid value for '-k': 0 is not in the range x>=1. (see 'nmfsep split --help')\n"),
    (["-k", "two"], "nmfsep split: error: Invalid value for '-k': 'two' is not a valid integer range. (see 'nmfsep split --help')\n"),
    (["--beta", "foo"], "nmfsep split: error: Invalid value for '--beta': 'foo' is not kl, is, euclidean or a number (see 'nmfsep split --help')\n"),
    (["--iter", "-3"], "nmfsep split: error: Invalid value for '--iter': -3 is not in the range x>=1. (see 'nmfsep split --help')\n"),
    (["--bogus"], "nmfsep split: error: No such option '--bogus'. (see 'nmfsep split --help')\n"),
])
def test_usage_errors_are_one_line_exit_2(wav_file, args, message):
    result = run("split", wav_file(), *args)
    assert result.exit_code == 2
    assert result.stderr == message


def test_unusable_n_fft_is_a_usage_error(wav_file, tmp_path):
    result = run("split", wav_file(), "--n-fft", 1001, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr == ("nmfsep split: error: --n-fft: n_fft must be an even number of samples >= 16, "
                             "got 1001 (see 'nmfsep split --help')\n")


def test_existing_stems_are_not_overwritten_without_force(wav_file, tmp_path):
    mix = wav_file("a.wav")
    out = tmp_path / "out"
    assert run("split", mix, "-o", out, "--iter", 5, "-q").exit_code == 0
    before = (out / "a" / "source1.wav").read_bytes()
    result = run("split", mix, "-o", out, "--iter", 6, "-q", "--seed", 4)
    assert result.exit_code == 1
    assert "already exists (use --force to overwrite)" in result.stderr
    assert (out / "a" / "source1.wav").read_bytes() == before
    assert run("split", mix, "-o", out, "--iter", 6, "-q", "--force").exit_code == 0


def test_no_temporary_files_are_left(wav_file, tmp_path):
    run("split", wav_file("a.wav"), "-o", tmp_path / "out", "--iter", 5, "-q")
    assert sorted(os.listdir(tmp_path / "out" / "a")) == ["source1.wav", "source2.wav"]


def test_python_m_nmfsep_is_the_command():
    done = subprocess.run([sys.executable, "-m", "nmfsep", "models"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "speech" in done.stdout
    usage = subprocess.run([sys.executable, "-m", "nmfsep", "split", "--no-such-option"], capture_output=True,
                           text=True, timeout=120)
    assert usage.returncode == 2 and usage.stderr.startswith("nmfsep split: error:")


def test_installed_entry_point_runs_in_a_subprocess(wav_file, tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "nmfsep")
    mix = wav_file("a.wav")
    done = subprocess.run([exe, "split", str(mix), "-o", str(tmp_path / "out"), "--iter", "5", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "ok"
    assert done.stderr.strip().endswith("s)")  # the one-line summary for people, on stderr
