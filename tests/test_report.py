import json
import os
import re
import subprocess

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from conftest import CHROMIUM_FLAGS
from nmfsep import report
from nmfsep.cli import cli

def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """(record, folder) of one `split --report` of a short stereo mixture whose name needs escaping."""
    from nmfsep import synth

    folder = tmp_path_factory.mktemp("report")
    mix, _ = synth.mixture(2, 22050, 2.0, seed=2)
    path = folder / "a <b>&'song'.wav"
    sf.write(path, np.stack([mix, 0.5 * mix], axis=1), 22050, subtype="PCM_16")
    result = run("split", path, "-o", folder / "out", "--iter", 30, "--components", 6, "--report", "--json", "-q")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), folder


def test_report_is_written_beside_the_stems_and_named_in_the_json(reported):
    record, _ = reported
    assert record["status"] == "ok"
    path = record["report"]
    assert os.path.basename(path) == "report.html"
    assert os.path.dirname(path) == os.path.dirname(record["stems"][0]["path"])
    assert os.path.getsize(path) > 10_000


def test_report_final_loss_is_the_json_loss(reported):
    record, _ = reported
    text = open(record["report"], encoding="utf-8").read()
    shown = re.search(r"final loss[^<]*</t[hd]>\s*<td>([^<]+)</td>", text)
    assert shown is not None
    assert float(shown.group(1)) == pytest.approx(record["loss"], rel=1e-5)


def test_split_without_report_adds_no_report_key(wav_file, tmp_path):
    result = run("split", wav_file("s.wav"), "-o", tmp_path / "o", "--iter", 5, "--json", "-q")
    assert "report" not in json.loads(result.stdout)
    assert not (tmp_path / "o" / "s" / "report.html").exists()


def test_report_is_self_contained(reported):
    record, _ = reported
    text = open(record["report"], encoding="utf-8").read()
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', text)
    audio = [s for s in sources if s.startswith("data:audio/")]
    images = [s for s in sources if s.startswith("data:image/png;base64,")]
    assert len(audio) == 3 and len(images) == 4        # mixture + 2 stems; 3 spectrograms + overview
    links = [s for s in sources if not s.startswith("data:")]
    assert links == ["source1.wav", "source2.wav"]      # the stems beside it, relative
    assert "http://" not in text and "https://" not in text and "<link" not in text


def test_report_embeds_playable_audio_of_the_stems(reported):
    import base64
    import io

    record, _ = reported
    text = open(record["report"], encoding="utf-8").read()
    first = re.search(r'data-name="source1" src="data:audio/flac;base64,([^"]*)"', text).group(1)
    samples, rate = sf.read(io.BytesIO(base64.b64decode(first)))
    stem, _ = sf.read(record["stems"][0]["path"])
    assert rate == 22050 and samples.shape == stem.shape
    assert np.abs(samples - stem).max() < 1e-3


def test_report_states_settings_and_time(reported):
    record, _ = reported
    text = open(record["report"], encoding="utf-8").read()
    for needed in ("divergence (--beta)", "Kullback-Leibler", "iterations (--iter)", "at most 30",
                   "STFT (--n-fft, --hop)", "time taken", "grouping (--grouping)", "seed (--seed)",
                   "spatial filter", "multichannel Wiener filter"):
        assert needed in text, needed


def test_report_escapes_the_input_name(reported):
    record, _ = reported
    text = open(record["report"], encoding="utf-8").read()
    assert "a &lt;b&gt;&amp;&#x27;song&#x27;.wav" in text
    assert "<b>&" not in text


def test_report_is_never_overwritten_without_force(wav_file, tmp_path):
    existing = tmp_path / "out" / "song" / "report.html"
    existing.parent.mkdir(parents=True)
    existing.write_text("mine")
    result = run("split", wav_file("song.wav"), "-o", tmp_path / "out", "--report", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"].endswith(f"{existing} already exists (use --force to overwrite)")
    assert os.listdir(existing.parent) == ["report.html"] and existing.read_text() == "mine"


def test_a_report_written_by_another_run_meanwhile_is_kept_and_this_inputs_stems_removed(wav_file, tmp_path,
                                                                                         monkeypatch):
    """Two runs whose stems differ (WAV and FLAC) but whose report is one file: the one to finish
    second fails and leaves nothing of its own."""
    theirs = tmp_path / "out" / "song" / "report.html"
    real_render = report.render

    def meanwhile(*args, **kwargs):  # the other run writes its report while this one renders
        theirs.write_text("their report")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(report, "render", meanwhile)
    result = run("split", wav_file("song.wav"), "-o", tmp_path / "out", "--iter", 5, "--report", "--json", "-q")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"].endswith(
        f"{theirs} already exists (written while this run worked; use --force to overwrite)")
    assert os.listdir(theirs.parent) == ["report.html"] and theirs.read_text() == "their report"
    result = run("split", wav_file("song.wav"), "-o", tmp_path / "out", "--iter", 5, "--report", "-q", "--force")
    assert result.exit_code == 0 and theirs.read_text() != "their report"


def test_report_with_stdout_is_a_usage_error(wav_file):
    result = run("split", wav_file("s.wav"), "--stdout", "source1", "--report")
    assert result.exit_code == 2 and "--report" in result.stderr


def test_report_path_follows_the_template():
    assert report.report_path(["out/song/source1.wav"], "song", "{track}/{stem}.{ext}") == "out/song/report.html"
    assert report.report_path(["out/song-source1.wav"], "song", "{track}-{stem}.{ext}") == "out/song.report.html"


def test_report_opens_in_headless_chromium(chromium, reported, tmp_path):
    """Every player loads its audio and knows its duration, no script or console error, and the
    page draws something (the screenshot is not one colour)."""
    binary = chromium
    record, _ = reported
    url = "file://" + os.path.abspath(record["report"])
    flags = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
             "--v=0", "--virtual-time-budget=10000", "--window-size=1280,1800"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    players = re.findall(r"<audio\b[^>]*>", dom.stdout)
    assert len(players) == 3
    for player in players:
        assert "data-error" not in player, player[:300]
        duration = re.search(r'data-duration="([0-9.]+)"', player)
        assert duration and float(duration.group(1)) == pytest.approx(2.0, abs=0.01), player[:300]
    assert 'data-errors="0"' in dom.stdout
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []

    shot = tmp_path / "shot.png"
    capture = subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, text=True,
                             timeout=60)
    assert capture.returncode == 0 and shot.exists(), capture.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[1] == 1280
    assert (pixels != pixels[0, 0]).any(axis=-1).mean() > 0.05       # not one colour: drawn


def test_report_names_no_spatial_filter_for_one_channel():
    assert report._spatial(1, 2) == "none: each stem is its mask times the input's spectrum (one channel)"
    assert report._spatial(2, 1).startswith("none")
    assert "over the 2 channels" in report._spatial(2, 3)
