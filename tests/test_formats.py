"""Formats, layouts and clipping of stems: compressed inputs (MP3, Ogg Vorbis, Opus) give lossless
stems unless a lossy --format is asked for, WAVE_FORMAT_EXTENSIBLE inputs keep their channel mask,
and an integer stem beyond full scale is never clipped without a word."""

import json
import os
import shlex

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from nmfsep import audio, batch
from nmfsep.cli import cli

FAST = ["--iter", "5", "--grouping", "none"]
WRITES_MP3 = pytest.mark.skipif("MP3" not in sf.available_formats(),
                                reason="this libsndfile cannot write MP3 (needs 1.1 or later)")


def split(*args):
    return CliRunner().invoke(cli, ["split", *map(str, args)], catch_exceptions=False)


def records(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def tones(path, rate=44100, seconds=1.0, channels=2, fmt="WAV", subtype="PCM_16", amplitude=0.3):
    """A low and a high tone, each channel a little different, written to path; returns path."""
    t = np.arange(int(seconds * rate)) / rate
    mix = amplitude * (np.sin(2 * np.pi * 220 * t) + 0.6 * np.sin(2 * np.pi * 3520 * t)) / 1.6
    data = np.stack([mix * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)
    sf.write(str(path), data, rate, format=fmt, subtype=subtype)
    return str(path)


def stem_sum(record):
    return sum(sf.read(s["path"], dtype="float64", always_2d=True)[0] for s in record["stems"])


# --- 1. compressed inputs and lossy stems ------------------------------------------------------

@WRITES_MP3
def test_mp3_input_gives_lossless_flac_stems_named_on_stderr_and_in_json(tmp_path):
    song = tones(tmp_path / "song.mp3", fmt="MP3", subtype="MPEG_LAYER_III")
    result = split(song, "-k", 2, "-o", tmp_path / "out", *FAST, "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["status"] == "ok" and (record["format"], record["subtype"]) == ("FLAC", "PCM_24")
    assert [os.path.basename(s["path"]) for s in record["stems"]] == ["source1.flac", "source2.flac"]
    for stem in record["stems"]:
        info = sf.info(stem["path"])
        assert (info.format, info.subtype, info.frames) == ("FLAC", "PCM_24", sf.info(song).frames)
    assert "FLAC PCM_24" in result.stderr
    decoded = sf.read(song, dtype="float64", always_2d=True)[0]
    assert np.abs(stem_sum(record) - decoded).max() <= 1e-4 * np.abs(decoded).max()


@pytest.mark.parametrize("subtype,rate", [("VORBIS", 44100), ("OPUS", 48000)])
def test_ogg_inputs_give_flac_stems_that_add_up_to_the_decoded_input(tmp_path, subtype, rate):
    song = tones(tmp_path / "song.ogg", rate=rate, fmt="OGG", subtype=subtype)
    result = split(song, "-k", 2, "-o", tmp_path / "out", *FAST, "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert (record["format"], record["subtype"]) == ("FLAC", "PCM_24")
    assert all(sf.info(s["path"]).format == "FLAC" for s in record["stems"])
    decoded = sf.read(song, dtype="float64", always_2d=True)[0]
    assert np.abs(stem_sum(record) - decoded).max() <= 1e-4 * np.abs(decoded).max()


@WRITES_MP3
def test_format_wav_of_an_mp3_input_writes_wav_stems(tmp_path):
    song = tones(tmp_path / "song.mp3", fmt="MP3", subtype="MPEG_LAYER_III")
    result = split(song, "--format", "wav", "-o", tmp_path / "out", *FAST, "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["format"] == "WAV"
    assert {sf.info(s["path"]).format for s in record["stems"]} == {"WAV"}


@pytest.mark.parametrize("option,fmt,subtype,ext", [
    pytest.param("mp3", "MP3", "MPEG_LAYER_III", "mp3", marks=WRITES_MP3),
    ("ogg", "OGG", "VORBIS", "ogg"),
    ("opus", "OGG", "OPUS", "opus"),
])
def test_lossy_stem_format_when_asked_with_a_note_that_they_add_up_only_approximately(tmp_path, option, fmt,
                                                                                    subtype, ext):
    song = tones(tmp_path / "song.wav", rate=48000)
    result = split(song, "--format", option, "-o", tmp_path / "out", *FAST, "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert (record["format"], record["subtype"]) == (fmt, subtype)
    for stem in record["stems"]:
        assert stem["path"].endswith("." + ext)
        assert (sf.info(stem["path"]).format, sf.info(stem["path"]).subtype) == (fmt, subtype)
    assert "add up to the input only approximately" in result.stderr


def test_stem_format_that_cannot_take_the_input_fails_before_any_work(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("separated an input whose stems cannot be written")

    monkeypatch.setattr(batch, "split_sources", never)
    song = tones(tmp_path / "song.wav", rate=44100)  # Opus takes 8, 12, 16, 24 or 48 kHz
    result = split(song, "--format", "opus", "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if not line.startswith("nmfsep: note:")]
    assert line.startswith(f"nmfsep: error: {song}: ") and "Opus" in line and "internal error" not in line
    assert not (tmp_path / "out").exists()


def test_subtype_with_a_lossy_format_is_a_usage_error(tmp_path):
    result = split(tones(tmp_path / "a.wav"), "--format", "ogg", "--subtype", "PCM_16", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "--subtype" in result.stderr and "ogg" in result.stderr


@pytest.mark.parametrize("name,kind", [("song.m4a", "AAC/M4A"), ("song.wma", "WMA")])
def test_formats_only_ffmpeg_reads_are_refused_with_the_command_that_converts_them(tmp_path, name, kind):
    path = tmp_path / name
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(4096))
    result = split(path, "-o", tmp_path / "out")
    assert result.exit_code == 1
    flac = os.path.splitext(str(path))[0] + ".flac"
    assert result.stderr == (f"nmfsep: error: {path}: {kind} is not a format libsndfile reads; convert it "
                             f"first: ffmpeg -i {shlex.quote(str(path))} {shlex.quote(flac)}\n")


def test_writable_subtype_never_keeps_a_codec_that_the_format_cannot_write():
    # libsndfile's check_format accepts WAV + MPEG_LAYER_III (it reads such files) but cannot write it
    assert audio.writable_subtype("WAV", "MPEG_LAYER_III") == "PCM_24"
    assert audio.writable_subtype("FLAC", "VORBIS") == "PCM_24"
    assert audio.writable_subtype("WAV", "PCM_16") == "PCM_16"


# --- 2. channel layout -------------------------------------------------------------------------

def channel_mask(path):
    """dwChannelMask of a RIFF/RF64 WAVE file's WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk (None if plain)."""
    data = open(path, "rb").read()
    position = 12
    while position + 8 <= len(data):
        chunk, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        if chunk == b"fmt ":
            body = data[position + 8:position + 8 + size]
            return int.from_bytes(body[20:24], "little") if body[:2] == b"\xfe\xff" else None
        position += 8 + size + (size & 1)
    raise AssertionError(f"{path}: no fmt chunk")


def surround(path, mask, channels=6, rate=16000):
    tones(path, rate=rate, channels=channels, fmt="WAVEX", subtype="PCM_16")
    data = bytearray(open(path, "rb").read())
    fmt = data.index(b"fmt ")
    data[fmt + 8 + 20:fmt + 8 + 24] = mask.to_bytes(4, "little")
    open(path, "wb").write(bytes(data))
    assert channel_mask(path) == mask
    return str(path)


@pytest.mark.parametrize("mode", ["memory", "stream"])
@pytest.mark.parametrize("mask", [0x3F, 0x60F])  # 5.1 (back), 5.1 (side)
def test_wavex_input_gives_wavex_stems_with_its_channel_mask(tmp_path, monkeypatch, mask, mode):
    if mode == "stream":
        monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", 1)
    song = surround(tmp_path / "five.wav", mask)
    result = split(song, "-k", 2, "-o", tmp_path / "out", *FAST, "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["mode"] == mode and record["format"] == "WAVEX"
    for stem in record["stems"]:
        assert sf.info(stem["path"]).format == "WAVEX" and sf.info(stem["path"]).channels == 6
        assert channel_mask(stem["path"]) == mask


def test_format_wav_keeps_the_channel_mask_of_a_wavex_input(tmp_path):
    song = surround(tmp_path / "quad.wav", 0x33, channels=4)
    result = split(song, "--format", "wav", "--subtype", "PCM_24", "-o", tmp_path / "out", *FAST, "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert [channel_mask(s["path"]) for s in record["stems"]] == [0x33, 0x33]
    assert sf.info(record["stems"][0]["path"]).subtype == "PCM_24"


# --- 3. clipping -------------------------------------------------------------------------------

def clipped_master(path, rate=16000):
    """A bass driven past full scale (a clipped square wave) plus ticks, as 16-bit PCM."""
    t = np.arange(2 * rate) / rate
    bass = np.clip(4 * np.sin(2 * np.pi * 55 * t), -1, 1)
    ticks = np.zeros_like(t)
    ticks[:: rate // 4] = 1
    ticks = np.convolve(ticks, np.hanning(64) * np.sin(np.arange(64) * 2.5), "same")
    sf.write(str(path), np.clip(bass + 0.3 * ticks, -1, 1), rate, subtype="PCM_16")
    return str(path)


@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_clipped_integer_stem_is_named_with_its_samples_and_peak_on_stderr_and_in_json(tmp_path, monkeypatch,
                                                                                       mode):
    if mode == "stream":
        monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", 1)
    master = clipped_master(tmp_path / "master.wav")
    exact = split(master, "-k", 2, "-o", tmp_path / "float", "--subtype", "float", "--iter", 20,
                  "--grouping", "none", "--json")
    assert exact.exit_code == 0, exact.output
    expected = []
    for stem in records(exact)[0]["stems"]:
        samples = sf.read(stem["path"], dtype="float32")[0]
        if np.abs(samples).max() > 1:
            expected.append((stem["name"], int((np.abs(samples) > 1).sum()), float(np.abs(samples).max())))
    assert expected, "the test input should drive a stem past full scale"

    result = split(master, "-k", 2, "-o", tmp_path / "out", "--iter", 20, "--grouping", "none", "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["mode"] == mode and record["subtype"] == "PCM_16"
    assert [(c["stem"], c["samples"], c["peak"]) for c in record["clipped"]] == [
        (name, count, pytest.approx(peak, rel=1e-6)) for name, count, peak in expected]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("nmfsep: warning:")]
    assert warnings == [f"nmfsep: warning: {master}: stem '{name}' clipped: {count} samples beyond full scale, "
                        f"peak {peak:.3f} (+{20 * np.log10(peak):.2f} dB); use --subtype float to keep the "
                        f"stems exact" for name, count, peak in expected]


def test_float_stems_of_a_clipped_master_add_up_to_it_and_report_no_clipping(tmp_path):
    master = clipped_master(tmp_path / "master.wav")
    result = split(master, "-k", 2, "-o", tmp_path / "out", "--subtype", "float", "--iter", 20,
                   "--grouping", "none", "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["clipped"] == [] and "warning" not in result.stderr
    original = sf.read(master, dtype="float64")[0]
    assert np.abs(stem_sum(record)[:, 0] - original).max() <= 1e-4 * np.abs(original).max()


def test_wavex_on_stdin_gives_stems_with_its_channel_mask(tmp_path):
    song = surround(tmp_path / "five.wav", 0x60F)
    result = CliRunner().invoke(cli, ["split", "-", "-k", "2", "-o", str(tmp_path / "out"), *FAST, "--json"],
                                input=open(song, "rb").read(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert [channel_mask(s["path"]) for s in record["stems"]] == [0x60F, 0x60F]


# --- found by trying it as a new user would ----------------------------------------------------

def mp3_without_length_header(path, rate=44100):
    """A constant-bitrate MP3 whose first frame (the Info header with the exact length) is cut off,
    as sox writes them: libsndfile then estimates the length from the size, a little too long."""
    tones(path, rate=rate, seconds=3.0, fmt="MP3", subtype="MPEG_LAYER_III")
    sf.write(str(path), sf.read(str(path), dtype="float32")[0], rate, format="MP3",
             subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT", compression_level=0.5)
    data = open(path, "rb").read()
    bitrate = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320][data[2] >> 4] * 1000
    first_frame = 144 * bitrate // rate + ((data[2] >> 1) & 1)  # MPEG-1 layer III
    assert data[first_frame:first_frame + 2] == b"\xff\xfb"
    open(path, "wb").write(data[first_frame:])
    return str(path)


@WRITES_MP3
def test_an_mp3_whose_header_overestimates_its_length_is_split_whole_not_called_truncated(tmp_path):
    song = mp3_without_length_header(tmp_path / "sox.mp3")
    decoded = sf.read(song, dtype="float64", always_2d=True)[0]
    assert sf.info(song).frames > len(decoded), "the test input should carry libsndfile's estimate"
    result = split(song, "-k", 2, "-o", tmp_path / "out", *FAST, "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["frames"] == len(decoded)
    assert all(sf.info(s["path"]).frames == len(decoded) for s in record["stems"])
    assert np.abs(stem_sum(record) - decoded).max() <= 1e-4 * np.abs(decoded).max()


@pytest.mark.parametrize("subtype", ["ULAW", "ALAW", "IMA_ADPCM"])
def test_stems_of_a_bounded_sample_format_are_clamped_with_a_warning_not_wrapped(tmp_path, subtype):
    master = tmp_path / f"master_{subtype}.wav"
    sf.write(str(master), sf.read(clipped_master(tmp_path / "pcm.wav"), dtype="float32")[0], 16000,
             subtype=subtype)
    result = split(master, "-k", 2, "-o", tmp_path / "out", "--iter", 20, "--grouping", "none", "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["subtype"] == subtype and record["clipped"]
    assert f"stem '{record['clipped'][0]['stem']}' clipped" in result.stderr
    # a wrapped sample lands near the opposite full scale: the stems would miss the input by ~2
    # (ADPCM's own coding error on this square wave reaches ~0.9)
    original = sf.read(str(master), dtype="float64")[0]
    assert np.abs(stem_sum(record)[:, 0] - original).max() < 1.0


def test_clipping_advice_names_wav_where_the_stem_format_holds_no_float(tmp_path):
    master = clipped_master(tmp_path / "master.wav")
    result = split(master, "-k", 2, "-o", tmp_path / "out", "--format", "flac", "--iter", 20, "--grouping", "none")
    assert result.exit_code == 0, result.output
    assert "use --format wav --subtype float to keep the stems exact" in result.stderr
    exact = split(master, "-k", 2, "-o", tmp_path / "exact", "--format", "wav", "--subtype", "float", *FAST)
    assert exact.exit_code == 0, exact.output


def test_the_stdout_stem_of_a_wavex_input_keeps_its_channel_mask(tmp_path):
    import subprocess
    import sys

    song = surround(tmp_path / "five.wav", 0x60F)
    with open(tmp_path / "stem.wav", "wb") as out:
        done = subprocess.run([sys.executable, "-m", "nmfsep.cli", "split", song, *FAST, "--stdout", "source1"],
                              stdout=out, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert channel_mask(tmp_path / "stem.wav") == 0x60F
    assert sf.info(str(tmp_path / "stem.wav")).channels == 6


def test_a_stdout_that_cannot_take_the_stem_is_named_with_its_cause(tmp_path):
    import subprocess
    import sys

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    song = tones(tmp_path / "a.wav")
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "nmfsep.cli", "split", song, *FAST, "--stdout", "source1"],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (f"nmfsep: error: {song}: cannot write the stem to stdout "
                                                    "(No space left on device)")
    assert "internal error" not in done.stderr


def test_a_full_disk_is_named_as_such_not_an_internal_error(tmp_path, monkeypatch):
    song = tones(tmp_path / "a.wav")

    def full_disk(*args, **kwargs):
        raise sf.LibsndfileError(2, "Error writing: ")  # what libsndfile raises as its "System error"

    monkeypatch.setattr(audio.sf, "write", full_disk)
    monkeypatch.setattr(batch.os, "statvfs", lambda folder: os.statvfs_result((4096, 4096, 10, 0, 0, 10, 0, 0, 0, 255)))
    result = split(song, "-k", 2, "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 1
    assert result.stderr.endswith(f"{tmp_path / 'out' / 'a'}: cannot write stems (no space left on device)\n")
    assert not (tmp_path / "out").exists()
