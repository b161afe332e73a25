"""Batches and pipes: folders, output names and formats, stdin/stdout, parallel jobs,
overwriting, atomic writes and the summary."""

import errno
import io
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from nmfsep import audio, batch
from nmfsep.cli import cli
from nmfsep.errors import NmfsepError
from nmfsep.pipeline import Settings

RATE = 22050
NMFSEP = os.path.join(os.path.dirname(sys.executable), "nmfsep")
# Subprocess runs skip the timbre grouping, whose import of librosa costs seconds per process.
FAST = ["--iter", "5", "--grouping", "none"]


def split(*args, input=None, env=None):
    return CliRunner(env=env).invoke(cli, ["split", *map(str, args)], input=input, catch_exceptions=False)


def tone(path, seconds=0.3, channels=1, subtype="PCM_16", fmt="WAV", seed=0, rate=RATE):
    """A short two-tone mixture with a little noise, written to path."""
    t = np.arange(int(seconds * rate)) / rate
    mix = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1760 * t)
    mix += 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    data = np.stack([mix * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, data, rate, subtype=subtype, format=fmt)
    return str(path)


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(root, f), folder)
                  for root, _, names in os.walk(folder) for f in names)


def records(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


# --- finding inputs --------------------------------------------------------------------------

@pytest.fixture
def library(tmp_path):
    """lib/ with audio at two depths, files of other kinds, a hidden file and the same name twice."""
    lib = tmp_path / "lib"
    tone(lib / "a.wav")
    tone(lib / "B.FLAC", fmt="FLAC")
    tone(lib / ".hidden.wav")
    (lib / "notes.txt").write_text("not audio")
    tone(lib / "live" / "a.wav", seed=1)
    tone(lib / "live" / "deep" / "c.ogg", fmt="OGG", subtype="VORBIS")
    return lib


def test_folder_gives_its_audio_files_in_order(library):
    jobs = batch.find_inputs([str(library)])
    assert [(os.path.relpath(j.input, library), j.track) for j in jobs] == [("B.FLAC", "B"), ("a.wav", "a")]


def test_recursive_folder_keeps_the_subfolders_in_track_names(library):
    jobs = batch.find_inputs([str(library)], recursive=True)
    assert [j.track for j in jobs] == ["B", "a", "live/a", "live/deep/c"]


def test_glob_matches_names_or_paths_below_the_folder(library):
    assert [j.track for j in batch.find_inputs([str(library)], True, "*.wav")] == ["a", "live/a"]
    assert [j.track for j in batch.find_inputs([str(library)], True, "live/*/*")] == ["live/deep/c"]


def test_output_folder_inside_an_input_folder_is_not_searched(library):
    tone(library / "separated" / "a" / "source1.wav")
    jobs = batch.find_inputs([str(library)], recursive=True, exclude=str(library / "separated"))
    assert "separated/a/source1" not in [j.track for j in jobs]


def test_duplicate_inputs_are_processed_once(tmp_path, monkeypatch):
    path = tone(tmp_path / "a.wav")
    monkeypatch.chdir(tmp_path)
    result = split(path, "a.wav", "./a.wav", str(tmp_path / "x" / ".." / "a.wav"), tmp_path,
                   "-o", "out", "--iter", 3, "--json", "-q")
    assert result.exit_code == 0, result.output
    assert [r["input"] for r in records(result)] == [path]


# --- a batch ---------------------------------------------------------------------------------

def test_folder_with_good_and_bad_files(library, tmp_path, monkeypatch):
    (library / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    (library / "live" / "empty.flac").write_bytes(b"")
    monkeypatch.chdir(tmp_path)  # short names, so that the summary table does not wrap them
    library, out = library.relative_to(tmp_path), tmp_path / "out"
    result = split(library, "-r", "-o", out, "--iter", 5, "--json")
    assert result.exit_code == 1
    status = {os.path.relpath(r["input"], library): r["status"] for r in records(result)}
    assert status == {"B.FLAC": "ok", "a.wav": "ok", "broken.wav": "error", "live/a.wav": "ok",
                      "live/deep/c.ogg": "ok", "live/empty.flac": "error"}
    assert files_under(out) == ["B/source1.flac", "B/source2.flac", "a/source1.wav", "a/source2.wav",
                                "live/a/source1.wav", "live/a/source2.wav",
                                "live/deep/c/source1.flac", "live/deep/c/source2.flac"]  # c.ogg is lossy
    errors = [line for line in result.stderr.splitlines() if line.startswith("nmfsep: error: ")]
    assert errors == [f"nmfsep: error: {library / 'broken.wav'}: not a readable audio file (Error in WAV file. No 'data' chunk marker.)",
                      f"nmfsep: error: {library / 'live' / 'empty.flac'}: is empty (0 bytes)"]
    summary = result.stderr[result.stderr.index("6 inputs: 4 done, 2 failed"):]
    assert "failed input" in summary
    assert "│ lib/broken.wav      │ not a readable audio file (Error in WAV" in summary
    assert "│ lib/live/empty.flac │ is empty (0 bytes)" in summary


def test_summary_of_a_clean_batch_is_one_line_and_quiet_silences_it(tmp_path):
    a, b = tone(tmp_path / "a.wav"), tone(tmp_path / "b.wav", seed=1)
    result = split(a, b, "-o", tmp_path / "out", "--iter", 3)
    assert result.exit_code == 0
    assert result.stderr.splitlines()[-1] == "2 inputs: 2 done, 0 failed"
    result = split(a, b, "-o", tmp_path / "out2", "--iter", 3, "-q")
    assert result.exit_code == 0 and result.stderr == ""


def test_an_internal_error_fails_its_input_in_one_line(tmp_path, monkeypatch):
    a, b = tone(tmp_path / "a.wav"), tone(tmp_path / "b.wav", seed=1)
    real = batch.split_sources

    def buggy(samples, *args, **kwargs):
        if len(buggy.calls) == 0:
            buggy.calls.append(1)
            raise IndexError("index 3 is out of bounds\nfor axis 0")
        return real(samples, *args, **kwargs)
    buggy.calls = []
    monkeypatch.setattr(batch, "split_sources", buggy)
    result = split(a, b, "-o", tmp_path / "out", "--iter", 3, "--json", "-q")
    assert result.exit_code == 1
    assert [r["status"] for r in records(result)] == ["error", "ok"]
    assert result.stderr == f"nmfsep: error: {a}: internal error: IndexError: index 3 is out of bounds for axis 0\n"


def test_ctrl_c_is_not_swallowed_as_an_input_error(tmp_path, monkeypatch):
    path = tone(tmp_path / "a.wav")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(batch, "split_sources", interrupted)
    result = split(path, tone(tmp_path / "b.wav"), "-o", tmp_path / "out", "--json")
    assert result.exit_code == 130 and result.stdout == ""
    assert result.stderr.endswith("nmfsep: interrupted\n")


# --- output names and formats ----------------------------------------------------------------

def test_filename_template(tmp_path):
    path = tone(tmp_path / "song.wav")
    result = split(path, "-o", tmp_path / "out", "--filename", "{stem}/{track}.{ext}", "--iter", 3, "-q")
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "out") == ["source1/song.wav", "source2/song.wav"]


@pytest.mark.parametrize("template,message", [
    ("{track}.{ext}", "--filename must contain {stem}"),
    ("{track}/{instrument}.{ext}", "--filename: unknown field {instrument}"),
    ("../{stem}.{ext}", "--filename must be a relative path inside the output folder"),
    ("/tmp/{stem}.{ext}", "--filename must be a relative path inside the output folder"),
    ("{stem.{ext}", "--filename: "),
    ("{track}/{stem}.{ext}/", "--filename must end in a file name, not a folder"),
    ("{track}/{stem}.{ext}/.", "--filename must end in a file name, not a folder"),
    ("{stem}/.", "--filename must end in a file name, not a folder"),
])
def test_bad_filename_template_is_a_usage_error(tmp_path, template, message):
    result = split(tone(tmp_path / "a.wav"), "--filename", template, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_inputs_that_would_write_the_same_file_are_refused_before_any_work(tmp_path):
    first, second = tone(tmp_path / "x" / "song.wav"), tone(tmp_path / "y" / "song.wav")
    result = split(first, second, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert f"{first} and {second} would both write {tmp_path / 'out' / 'song' / 'source1.wav'}" in result.stderr
    assert not (tmp_path / "out").exists()
    # a template without {track}: two inputs, one file name
    result = split(first, tone(tmp_path / "other.wav"), "--filename", "{stem}.{ext}", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "would both write" in result.stderr
    # different formats give different files: no collision
    tone(tmp_path / "y" / "song.flac", fmt="FLAC")
    result = split(first, tmp_path / "y" / "song.flac", "-o", tmp_path / "out", "--iter", 2, "-q")
    assert result.exit_code == 0, result.output
    # ... but one report each: two reports in one place are refused before any work, --force or not
    for force in ([], ["--force"]):
        result = split(first, tmp_path / "y" / "song.flac", "-o", tmp_path / "rep", "--report", "--iter", 2, *force)
        assert result.exit_code == 2, result.stderr
        assert f"would both write {tmp_path / 'rep' / 'song' / 'report.html'}" in result.stderr
        assert not (tmp_path / "rep").exists()


def test_a_stem_that_would_overwrite_an_input_is_refused_even_with_force(tmp_path):
    source = tone(tmp_path / "ow" / "source1.wav")
    before = (tmp_path / "ow" / "source1.wav").read_bytes()
    for force in ([], ["--force"]):
        result = split(source, "-o", tmp_path / "ow", "--filename", "{stem}", "--iter", 2, *force)
        assert result.exit_code == 2, result.stderr
        assert f"its stem {tmp_path / 'ow' / 'source1.wav'} would overwrite an input" in result.stderr
        assert (tmp_path / "ow" / "source1.wav").read_bytes() == before
        assert sorted(os.listdir(tmp_path / "ow")) == ["source1.wav"]


@pytest.mark.parametrize("fmt,subtype,expected", [
    ("flac", None, ("FLAC", "PCM_24")),        # FLAC cannot hold float: 24-bit
    ("flac", "PCM_16", ("FLAC", "PCM_16")),
    ("wav", "PCM_24", ("WAV", "PCM_24")),
    (None, "PCM_16", ("WAV", "PCM_16")),
])
def test_format_and_subtype(tmp_path, fmt, subtype, expected):
    path = tone(tmp_path / "a.wav", subtype="FLOAT")
    options = (["--format", fmt] if fmt else []) + (["--subtype", subtype] if subtype else [])
    result = split(path, *options, "-o", tmp_path / "out", "--iter", 3, "-q")
    assert result.exit_code == 0, result.output
    info = sf.info(str(tmp_path / "out" / "a" / f"source1.{expected[0].lower()}"))
    assert (info.format, info.subtype, info.frames, info.samplerate) == (*expected, sf.info(path).frames, RATE)


def test_format_that_cannot_hold_the_subtype_is_a_usage_error(tmp_path):
    result = split(tone(tmp_path / "a.wav"), "--format", "flac", "--subtype", "FLOAT", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "FLAC files cannot hold FLOAT samples" in result.stderr


def test_stems_of_formats_that_are_not_kept_are_wav(tmp_path):
    path = tone(tmp_path / "a.au", fmt="AU", subtype="PCM_16")
    result = split(path, "-o", tmp_path / "out", "--iter", 3, "-q")
    assert result.exit_code == 0, result.output
    assert sf.info(str(tmp_path / "out" / "a" / "source1.wav")).format == "WAV"


def test_new_stems_get_ordinary_file_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        result = split(tone(tmp_path / "a.wav"), "-o", tmp_path / "out", "--iter", 3, "-q")
    finally:
        os.umask(old)
    assert result.exit_code == 0
    assert oct(os.stat(tmp_path / "out" / "a" / "source1.wav").st_mode & 0o777) == oct(0o666 & ~audio._UMASK)


# --- stdin and stdout ------------------------------------------------------------------------

def test_stdout_stem_is_the_stem_that_would_be_written(tmp_path, monkeypatch):
    path = tone(tmp_path / "a.wav", channels=2, subtype="PCM_24")
    monkeypatch.chdir(tmp_path)
    piped = split("-", "--stdout", "source2", "--iter", 5, "-q", input=(tmp_path / "a.wav").read_bytes())
    assert piped.exit_code == 0, piped.stderr
    assert piped.stderr == "" and files_under(tmp_path) == ["a.wav"]  # stdout only, no files
    streamed, rate = sf.read(io.BytesIO(piped.stdout_bytes), dtype="float32")
    assert split(path, "-o", tmp_path / "out", "--iter", 5, "-q").exit_code == 0
    written, _ = sf.read(str(tmp_path / "out" / "a" / "source2.wav"), dtype="float32")
    assert rate == RATE and sf.info(io.BytesIO(piped.stdout_bytes)).subtype == "PCM_24"
    np.testing.assert_array_equal(streamed, written)


@pytest.mark.parametrize("args,message", [
    (["--stdout", "source3"], "'source3' is not a stem of this split (stems: source1, source2)"),
    (["--stdout", "source1", "--json"], "--stdout and --json both write to stdout"),
    (["--stdout", "source1", "--format", "flac"], "--stdout writes WAV"),
    (["--stdout", "source1", "EXTRA"], "--stdout writes one stem of one input, but 2 inputs were given"),
])
def test_stdout_usage_errors(tmp_path, args, message):
    path = tone(tmp_path / "a.wav")
    args = [tone(tmp_path / "b.wav") if a == "EXTRA" else a for a in args]
    result = split(path, *args)
    assert result.exit_code == 2 and message in result.stderr and result.stdout == ""


def test_real_pipeline_through_stdin_and_stdout(tmp_path):
    """producer | nmfsep split - --stdout source1 | consumer, all real processes and pipes."""
    path = tone(tmp_path / "in.flac", seconds=0.5, channels=2, fmt="FLAC")
    producer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import io, sys, soundfile as sf
            data, rate = sf.read({path!r}, dtype="float32")
            wav = io.BytesIO()  # a complete header, as sox writes
            sf.write(wav, data, rate, format="WAV", subtype="PCM_16")
            sys.stdout.buffer.write(wav.getvalue())""")],
        stdout=subprocess.PIPE)
    separator = subprocess.Popen([NMFSEP, "split", "-", "-k", "2", "--stdout", "source1", *FAST],
                                 stdin=producer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.close()
    consumer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import io, sys, soundfile as sf
            data, rate = sf.read(io.BytesIO(sys.stdin.buffer.read()), dtype="float32")
            print(data.shape[0], data.shape[1], rate, float(abs(data).max()))""")],
        stdin=separator.stdout, stdout=subprocess.PIPE, text=True)
    separator.stdout.close()
    shape, _ = consumer.communicate(timeout=120)
    stderr = separator.stderr.read().decode()
    assert (producer.wait(), separator.wait(), consumer.returncode) == (0, 0, 0), stderr
    frames, channels, rate, peak = shape.split()
    assert (int(frames), int(channels), int(rate)) == (sf.info(path).frames, 2, RATE) and float(peak) > 0
    assert stderr.startswith("<stdin>: source1 written to stdout (") and stderr.count("\n") == 1


# --- overwriting -----------------------------------------------------------------------------

def test_existing_stems_force_and_skip_existing(tmp_path):
    path, out = tone(tmp_path / "a.wav"), tmp_path / "out"
    assert split(path, "-o", out, "--iter", 3, "-q").exit_code == 0
    before = (out / "a" / "source1.wav").read_bytes()

    refused = split(path, "-o", out, "--iter", 4, "--json", "-q")
    assert refused.exit_code == 1 and (out / "a" / "source1.wav").read_bytes() == before
    assert records(refused)[0]["error"] == f"{path}: {out / 'a' / 'source1.wav'} already exists (use --force to overwrite)"

    skipped = split(path, "-o", out, "--iter", 4, "--json", "--skip-existing")
    record = records(skipped)[0]
    assert skipped.exit_code == 0 and record["status"] == "skipped" and record["iterations"] is None
    assert [s["path"] for s in record["stems"]] == [str(out / "a" / f"source{i}.wav") for i in (1, 2)]
    assert skipped.stderr == f"{path}: skipped, its 2 stems exist in {out / 'a'}/\n"
    assert (out / "a" / "source1.wav").read_bytes() == before

    forced = split(path, "-o", out, "--iter", 4, "--seed", 3, "-q", "--force")
    assert forced.exit_code == 0 and (out / "a" / "source1.wav").read_bytes() != before
    assert files_under(out) == ["a/source1.wav", "a/source2.wav"]


def test_skip_existing_with_some_stems_missing_still_refuses_to_overwrite(tmp_path):
    path, out = tone(tmp_path / "a.wav"), tmp_path / "out"
    assert split(path, "-o", out, "--iter", 3, "-q").exit_code == 0
    result = split(path, "-o", out, "-k", 3, "--iter", 3, "-q", "--skip-existing")
    assert result.exit_code == 1 and "source1.wav already exists" in result.stderr
    assert not (out / "a" / "source3.wav").exists()


def test_force_and_skip_existing_together_is_a_usage_error(tmp_path):
    result = split(tone(tmp_path / "a.wav"), "--force", "--skip-existing")
    assert result.exit_code == 2 and "--force and --skip-existing" in result.stderr


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_stem_written_by_another_run_after_the_check_is_not_overwritten(tmp_path, monkeypatch, hard_links):
    """Two runs writing the same stems at once: the check for existing stems passes in both, and the
    second to finish must not replace the first's (a hard link fails where the file exists; a
    filesystem with none is checked again just before the rename)."""
    path, out = tone(tmp_path / "a.wav"), tmp_path / "out"
    theirs = out / "a" / "source2.wav"
    real_write = audio.write_temp

    def meanwhile(target, *args, **kwargs):  # the other run writes its source2 while this one works
        if not theirs.exists():
            theirs.parent.mkdir(parents=True, exist_ok=True)
            theirs.write_bytes(b"the other run's stem")
        return real_write(target, *args, **kwargs)

    monkeypatch.setattr(audio, "write_temp", meanwhile)
    if not hard_links:
        def no_link(*args):
            raise OSError(errno.EPERM, "Operation not permitted")
        monkeypatch.setattr(os, "link", no_link)
    result = split(path, "-o", out, "--iter", 3, "--json", "-q")
    assert result.exit_code == 1
    assert records(result)[0]["error"] == (f"{path}: {theirs} already exists (written while this run worked; "
                                           "use --force to overwrite)")
    assert theirs.read_bytes() == b"the other run's stem"
    assert sorted(p.name for p in (out / "a").iterdir()) == ["source2.wav"]  # ours removed, no temporary file
    assert split(path, "-o", out, "--iter", 3, "-q", "--force").exit_code == 0
    assert theirs.read_bytes() != b"the other run's stem"


def test_commit_temp_renames_replaces_only_when_told_and_leaves_the_temp_where_it_refuses(tmp_path):
    temp, path = tmp_path / ".nmfsep-x.wav", tmp_path / "x.wav"
    temp.write_bytes(b"new")
    audio.commit_temp(str(temp), str(path), overwrite=False)
    assert path.read_bytes() == b"new" and not temp.exists()
    temp.write_bytes(b"newer")
    with pytest.raises(NmfsepError, match=f"^{re.escape(str(path))} already exists "):
        audio.commit_temp(str(temp), str(path), overwrite=False)
    assert path.read_bytes() == b"new" and temp.read_bytes() == b"newer"
    audio.commit_temp(str(temp), str(path), overwrite=True)
    assert path.read_bytes() == b"newer" and not temp.exists()


# --- atomic writes ---------------------------------------------------------------------------

def failing_on_second_stem(exception, monkeypatch):
    real, calls = audio.write_temp, []

    def write_temp(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise exception
        return real(*args, **kwargs)
    monkeypatch.setattr(audio, "write_temp", write_temp)


def test_failed_write_leaves_none_of_the_inputs_stems(tmp_path, monkeypatch):
    failing_on_second_stem(OSError(28, "No space left on device", "disk"), monkeypatch)
    result = split(tone(tmp_path / "a.wav"), "-o", tmp_path / "out", "--iter", 3, "--json")
    assert result.exit_code == 1 and "cannot write stems (No space left on device)" in result.stderr
    assert records(result)[0]["stems"] == [] and files_under(tmp_path / "out") == []


def test_ctrl_c_while_writing_leaves_no_file(tmp_path, monkeypatch):
    failing_on_second_stem(KeyboardInterrupt(), monkeypatch)
    result = split(tone(tmp_path / "a.wav"), "-o", tmp_path / "out", "--iter", 3)
    assert result.exit_code == 130 and files_under(tmp_path / "out") == []


SLOW_WRITER = """
import os, sys, time
import soundfile
from nmfsep.cli import main
real = soundfile.write
def write(*args, **kwargs):
    real(*args, **kwargs)
    open(os.environ["FLAG"], "w").close()  # the first stem's temporary file is on disk
    time.sleep(60)  # ... and the writer is slow
soundfile.write = write
sys.argv = ["nmfsep"] + sys.argv[1:]
main()
"""


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_run_killed_while_writing_leaves_no_partial_stem(tmp_path, signum):
    out, flag = tmp_path / "out", tmp_path / "flag"
    run = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, "split", tone(tmp_path / "a.wav"),
                            "-o", str(out), *FAST], env={**os.environ, "FLAG": str(flag)},
                           stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not flag.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert flag.exists(), run.stderr.read()
    assert [f for f in files_under(out) if "/.nmfsep-" in f]  # mid-write: a temporary file exists
    run.send_signal(signum)
    code = run.wait(timeout=30)
    visible = [f for f in files_under(out) if not os.path.basename(f).startswith(".")]
    assert visible == []  # no stem appears, complete or partial
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL  # only a hidden .nmfsep-* temporary file can remain
    else:
        assert code == 130 and files_under(out) == []  # interrupted cleanly: nothing at all
        assert run.stderr.read().decode().endswith("nmfsep: interrupted\n")


# --- parallel jobs ---------------------------------------------------------------------------

def test_parallel_jobs_give_the_same_stems_as_one_job(tmp_path):
    inputs = [tone(tmp_path / "in" / f"{name}.wav", seed=seed, channels=1 + seed % 2)
              for seed, name in enumerate("abc")]
    one = split(*inputs, "-o", tmp_path / "one", *FAST, "--json", "-q")
    two = split(*inputs, "-o", tmp_path / "two", *FAST, "--json", "-q", "-j", 2)
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    assert sorted(r["input"] for r in records(two)) == sorted(inputs)
    assert files_under(tmp_path / "one") == files_under(tmp_path / "two")
    for name in files_under(tmp_path / "one"):
        np.testing.assert_array_equal(sf.read(str(tmp_path / "one" / name))[0],
                                      sf.read(str(tmp_path / "two" / name))[0])


class KillWorkers:
    """A listener that kills every worker process when the victim input starts."""

    def __init__(self, victim):
        self.victim, self.killed = victim, False

    def started(self, job):
        if job.input == self.victim and not self.killed:
            self.killed = True
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)

    def progress(self, job, done, total):
        pass


def test_a_worker_that_dies_fails_its_input_and_the_batch_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "available_cpus", lambda: 2)  # a pool of 2 also on a 1-CPU runner
    # the victim is long enough (about a second of work) to be still running when its start is
    # seen (events are polled every 0.1 s), also on a loaded machine; it is killed at once
    inputs = [tone(tmp_path / "in" / f"{n}.wav", seconds=0.2 if n != "victim" else 60.0) for n in
              ("victim", "b", "c", "d")]
    jobs = batch.find_inputs(inputs)
    settings = Settings(2, max_iter=5, grouping="none")
    listener = KillWorkers(inputs[0])
    results = {r["input"]: r for r in batch.run(jobs, settings, batch.Output(str(tmp_path / "out")), 2, listener)}
    assert listener.killed and sorted(results) == sorted(inputs)
    assert results[inputs[0]]["status"] == "error"
    assert "the worker process died while separating it" in results[inputs[0]]["error"]
    for path, record in results.items():
        if record["status"] == "ok":
            assert all(os.path.exists(s["path"]) for s in record["stems"])
    assert sum(r["status"] == "ok" for r in results.values()) >= 2


def test_progress_bars_when_stderr_is_a_terminal(tmp_path):
    inputs = [tone(tmp_path / f"{n}.wav") for n in "ab"]
    shown = split(*inputs, "-o", tmp_path / "out", "--iter", 5, "--json", env={"TTY_COMPATIBLE": "1"})
    assert shown.exit_code == 0
    assert "all inputs" in shown.stderr and "iterations" in shown.stderr
    assert len(records(shown)) == 2  # stdout still holds only the JSON lines
    quiet = split(*inputs, "-o", tmp_path / "out2", "--iter", 5, "-q", env={"TTY_COMPATIBLE": "1"})
    assert quiet.stderr == ""


def test_a_folder_where_a_stem_goes_is_named_not_the_temp_file(tmp_path):
    source = tone(tmp_path / "song.wav")
    (tmp_path / "out" / "song" / "source1.wav").mkdir(parents=True)
    result = split(source, "-o", tmp_path / "out", "--iter", 2, "--force")
    assert result.exit_code == 1
    assert f"{tmp_path / 'out' / 'song' / 'source1.wav'}: cannot write stems" in result.stderr, result.stderr
    assert ".nmfsep-" not in result.stderr
    assert files_under(tmp_path / "out") == []
