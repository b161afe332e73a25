"""`--stdout` into a pipe whose reader leaves early: one rule for every path, a stem that is not
delivered whole is an error (exit 1, "broken pipe"), never "written to stdout".

All real processes and pipes: nmfsep writes into a reader that takes a number of bytes and exits.
"""

import os
import shlex
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

RATE = 22050
FAST = ["--iter", "5", "--grouping", "none"]
# nmfsep's CLI in a subprocess; STREAMED lowers the in-memory limit so that every input streams.
RUN = "import sys; from nmfsep.cli import main; sys.argv = ['nmfsep'] + sys.argv[1:]; main()"
STREAMED = "import nmfsep.batch; nmfsep.batch.STREAM_ABOVE_BYTES = 0\n" + RUN
# Reads N bytes from stdin (fewer if it ends), prints how many, and leaves.
READER = textwrap.dedent("""
    import os, sys
    wanted, got = int(sys.argv[1]), 0
    while got < wanted:
        chunk = os.read(0, min(65536, wanted - got))
        if not chunk:
            break
        got += len(chunk)
    print(got)""")
PIPE_CAPACITY = 65536  # what the kernel can hold for a reader that has left (Linux's default)


@pytest.fixture(scope="module")
def long_input(tmp_path_factory):
    """3 s of stereo, 16-bit: its stem is a WAV stream of 264,644 bytes (four pipes' worth)."""
    t = np.arange(3 * RATE) / RATE
    mix = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1760 * t)
    mix += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    path = tmp_path_factory.mktemp("pipes") / "long.wav"
    sf.write(path, np.stack([mix, 0.7 * mix], axis=1).astype(np.float32), RATE, subtype="PCM_16")
    return str(path)


def stem_bytes(path):
    return 44 + sf.info(path).frames * 2 * 2


def split_into_reader(script, path, n_bytes, unbuffered):
    """nmfsep split PATH --stdout source1 | reader taking n_bytes: (exit code, stderr, bytes read)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:  # sys.stdout.buffer is then a raw stream, which may take part of a write
        env["PYTHONUNBUFFERED"] = "1"
    separator = subprocess.Popen([sys.executable, "-c", script, "split", path, "-k", "2",
                                  "--stdout", "source1", *FAST],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(n_bytes)], stdin=separator.stdout,
                              stdout=subprocess.PIPE, text=True)
    separator.stdout.close()  # the reader holds the only read end
    got, _ = reader.communicate(timeout=120)
    code = separator.wait(timeout=120)
    return code, separator.stderr.read().decode(), int(got)


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("script", [RUN, STREAMED], ids=["in_memory", "streamed"])
@pytest.mark.parametrize("leaves_after", ["header", "most_of_it"])
def test_a_reader_that_leaves_early_fails_the_stem_with_broken_pipe(long_input, script, unbuffered,
                                                                     leaves_after):
    total = stem_bytes(long_input)
    n_bytes = 100 if leaves_after == "header" else total - 2 * PIPE_CAPACITY
    code, stderr, got = split_into_reader(script, long_input, n_bytes, unbuffered)
    assert got == n_bytes
    assert code == 1, stderr
    assert stderr == (f"nmfsep: error: {long_input}: stdout was closed before the stem was written "
                      "(broken pipe)\n")


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("script", [RUN, STREAMED], ids=["in_memory", "streamed"])
def test_a_reader_that_takes_everything_gets_the_whole_stem(long_input, script, unbuffered):
    total = stem_bytes(long_input)
    code, stderr, got = split_into_reader(script, long_input, total + 1, unbuffered)
    assert (code, got) == (0, total), stderr
    assert stderr.startswith(f"{long_input}: source1 written to stdout (") and stderr.count("\n") == 1


def run_cli(args, **streams):
    return subprocess.run([sys.executable, "-m", "nmfsep.cli", *map(str, args)], stderr=subprocess.PIPE,
                          text=True, timeout=120, **streams)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_json_lines_to_a_full_device_are_one_error_line_not_a_traceback(tmp_path):
    song = tmp_path / "a.wav"
    sf.write(str(song), 0.3 * np.sin(np.arange(8000) / 3).astype(np.float32), 8000)
    with open("/dev/full", "w") as full:
        done = run_cli(["split", song, "--iter", 5, "-o", tmp_path / "out", "--json", "-q"], stdout=full)
    assert done.returncode == 1
    assert done.stderr == "nmfsep: error: stdout: cannot write (No space left on device)\n"


@pytest.mark.parametrize("option", [["--stdout", "source1"], ["--json"]])
def test_a_closed_stdout_is_a_usage_error_before_any_work(tmp_path, option):
    song = tmp_path / "a.wav"
    sf.write(str(song), 0.3 * np.sin(np.arange(8000) / 3).astype(np.float32), 8000)
    done = subprocess.run(f"{shlex.quote(sys.executable)} -m nmfsep.cli split {shlex.quote(str(song))} "
                          f"-o {shlex.quote(str(tmp_path / 'out'))} {' '.join(option)} >&-",
                          shell=True, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "which is closed" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
