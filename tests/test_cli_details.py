"""The smaller kinds of issue 15, item 9: empty folders after a failure, a template without {ext},
--hop as a usage error, subfolders a folder input does not search, "1 stem", the progress bar's
unit and totals, what "loss" is, and what --seed changes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from nmfsep import audio, batch
from nmfsep.cli import BatchProgress, cli

RATE = 22050
FAST = ["--iter", "5", "--grouping", "none"]


def split(*args, env=None):
    return CliRunner(env=env).invoke(cli, ["split", *map(str, args)], catch_exceptions=False)


def tone(path, seconds=0.5, rate=RATE, repeat=1):
    t = np.arange(int(seconds * rate)) / rate
    mix = 0.3 * np.sin(2 * np.pi * 220 * t) * (t % 0.25 < 0.12) + 0.2 * np.sin(2 * np.pi * 1760 * t)
    mix += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, np.tile(mix, repeat).astype(np.float32), rate, subtype="FLOAT")
    return str(path)


def records(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


# --- no empty folders after a failure --------------------------------------------------------

def test_a_failed_write_removes_the_folders_the_input_created(tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device", "disk")
    monkeypatch.setattr(audio, "write_temp", no_space)
    out = tmp_path / "out" / "deeper"
    result = split(tone(tmp_path / "a.wav"), "-o", out, *FAST)
    assert result.exit_code == 1 and "No space left on device" in result.stderr
    assert os.listdir(tmp_path) == ["a.wav"]  # neither out/, out/deeper/ nor out/deeper/a/


def test_a_failed_write_keeps_a_folder_that_was_there_before(tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device", "disk")
    monkeypatch.setattr(audio, "write_temp", no_space)
    (tmp_path / "out").mkdir()
    result = split(tone(tmp_path / "a.wav"), "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 1 and os.listdir(tmp_path / "out") == []


# The CLI with every input streamed (its stem folders are made before the long first pass).
STREAMED = ("import sys, nmfsep.batch; nmfsep.batch.STREAM_ABOVE_BYTES = 0\n"
            "from nmfsep.cli import main; sys.argv = ['nmfsep'] + sys.argv[1:]; main()")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_split_leaves_no_empty_folder(tmp_path, signum):
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-c", STREAMED, "split", tone(tmp_path / "a.wav"), "-o", str(out),
                            "--grouping", "none", "--tol", "0", "--iter", "1000000"],
                           stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / "a").exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (out / "a").is_dir(), run.stderr.read()  # its folder is made: the split is under way
    time.sleep(0.5)
    run.send_signal(signum)
    assert run.wait(timeout=30) == 130
    assert run.stderr.read().decode().endswith("nmfsep: interrupted\n")
    assert os.listdir(tmp_path) == ["a.wav"]


# --- names -----------------------------------------------------------------------------------

def test_a_template_without_ext_gets_the_formats_extension(tmp_path):
    result = split(tone(tmp_path / "a.wav"), "-o", tmp_path / "out", "--filename", "{track}_{stem}", *FAST, "--json")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path / "out")) == ["a_source1.wav", "a_source2.wav"]
    assert [s["path"] for s in records(result)[0]["stems"]] == [str(tmp_path / "out" / f"a_source{i}.wav")
                                                               for i in (1, 2)]


def test_a_template_ending_in_the_extension_is_kept_as_it_is(tmp_path):
    result = split(tone(tmp_path / "a.wav"), "-o", tmp_path / "out", "--filename", "{track}-{stem}.wav", *FAST)
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path / "out")) == ["a-source1.wav", "a-source2.wav"]


# --- usage errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("options,hint", [
    (["--n-fft", "512", "--hop", "1000"], "--hop: "),
    (["--hop", "5000"], "--hop: "),             # more than half of this input's default n_fft (1024)
    (["--n-fft", "511"], "--n-fft: "),
])
def test_an_invalid_hop_or_n_fft_is_a_usage_error(tmp_path, options, hint):
    result = split(tone(tmp_path / "a.wav"), "-o", tmp_path / "out", *options)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("nmfsep split: error: ") and hint in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "out").exists()


# --- what a folder input leaves out ----------------------------------------------------------

def test_a_folder_without_r_says_which_subfolders_it_did_not_search(tmp_path):
    music = tmp_path / "music"
    tone(music / "top.wav")
    tone(music / "live" / "a.wav")
    tone(music / "demos" / "old" / "b.wav")
    (music / "covers").mkdir()
    (music / "covers" / "front.jpg").write_bytes(b"\xff\xd8")
    result = split(music, "-o", tmp_path / "out", *FAST, "-q")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"nmfsep: note: {music}: 2 subfolders with audio not searched (use -r)\n"
    assert os.listdir(tmp_path / "out") == ["top"]


def test_a_folder_with_r_or_without_audio_subfolders_gives_no_note(tmp_path):
    music = tmp_path / "music"
    tone(music / "top.wav")
    tone(music / "live" / "a.wav")
    assert split(music, "-r", "-o", tmp_path / "out", *FAST, "-q").stderr == ""
    (music / "live" / "a.wav").unlink()
    assert split(music, "-o", tmp_path / "out2", *FAST, "-q").stderr == ""


# --- words and numbers -----------------------------------------------------------------------

def test_one_stem_is_one_stem_not_one_stems(tmp_path):
    path = tone(tmp_path / "a.wav")
    result = split(path, "-k", 1, "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"{path}: 1 stem in {tmp_path / 'out' / 'a'}/ (")
    again = split(path, "-k", 1, "-o", tmp_path / "out", *FAST, "--skip-existing")
    assert again.stderr == f"{path}: skipped, its 1 stem exists in {tmp_path / 'out' / 'a'}/\n"


class Recorder:
    """A listener that keeps every (done, total) it is told."""

    def __init__(self):
        self.calls = []

    def started(self, job):
        pass

    def progress(self, job, done, total):
        self.calls.append((done, total))


@pytest.mark.parametrize("streamed", [False, True], ids=["in_memory", "streamed"])
@pytest.mark.parametrize("options", [dict(grouping="none"), dict(grouping="auto"), dict(n_components=4)],
                         ids=["one_factorization", "ensemble", "components"])
def test_progress_counts_iterations_from_a_known_total_to_the_records_count(tmp_path, monkeypatch,
                                                                            streamed, options):
    from nmfsep.pipeline import Settings

    if streamed:
        monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", 0)
    recorder = Recorder()
    settings = Settings(2, max_iter=40, **options)
    output = batch.Output(str(tmp_path / "out"))
    [record] = batch.run([batch.Job(tone(tmp_path / "a.wav", seconds=2), "a")], settings, output,
                         listener=recorder)
    assert record["status"] == "ok" and record["mode"] == ("stream" if streamed else "memory")
    done, totals = [d for d, _ in recorder.calls], [t for _, t in recorder.calls]
    assert recorder.calls[0][0] == 0 and totals[0] >= record["iterations"]  # a total from the start
    assert all(t is not None for t in totals) and done == sorted(done)
    assert all(d <= t for d, t in recorder.calls)
    assert recorder.calls[-1] == (record["iterations"], record["iterations"])  # ends at the true count


def test_the_bar_shows_no_unknown_total(tmp_path):
    from rich.console import Console

    console = Console(stderr=True, force_terminal=True, width=100, record=True)
    bars = BatchProgress(console, 1, True)
    job = batch.Job("a.wav", "a")
    bars.started(job)
    shown = "".join(str(column.render(bars.bars.tasks[0])) for column in bars.bars.columns[2:3])
    assert "None" not in shown


# --- loss and seed ---------------------------------------------------------------------------

def test_loss_is_per_time_frequency_point_so_a_longer_input_does_not_raise_it(tmp_path):
    once = split(tone(tmp_path / "once.wav"), "-o", tmp_path / "out", "--json", "-q", "--grouping", "none")
    four = split(tone(tmp_path / "four.wav", repeat=4), "-o", tmp_path / "out", "--json", "-q", "--grouping", "none")
    loss_once, loss_four = records(once)[0]["loss"], records(four)[0]["loss"]
    assert 0 < loss_once and 0.8 < loss_four / loss_once < 1.25  # the total would be about 4x


def test_seed_help_says_what_it_changes_and_where_the_start_is_deterministic():
    result = CliRunner().invoke(cli, ["split", "--help"])
    text = " ".join(result.output.split())
    assert "--seed" in text and "k-means" in text and "discriminative training" in text
    assert "over 600 bins and 600 frames" in text and "same input, settings and seed give the same stems" in text
    assert "try another start" not in open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()


def test_a_folder_says_which_files_it_skips_because_only_ffmpeg_reads_them(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    sf.write(str(music / "a.wav"), np.sin(np.arange(8000) / 5).astype(np.float32) * 0.3, 8000)
    (music / "b.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    (music / "c.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    result = CliRunner().invoke(cli, ["split", str(music), "-o", str(tmp_path / "out"), "--iter", "5", "-q"])
    assert result.exit_code == 0, result.output
    assert (f"nmfsep: note: {music}: 2 .m4a files that libsndfile does not read, not split "
            "(b.m4a, c.m4a; convert them first: ffmpeg -i IN.m4a OUT.flac)") in result.stderr.splitlines()

    (music / "a.wav").unlink()
    result = CliRunner().invoke(cli, ["split", str(music), "-o", str(tmp_path / "out2")])
    assert result.exit_code == 1
    assert "no audio files in this folder; 2 .m4a files that libsndfile does not read" in result.stderr
