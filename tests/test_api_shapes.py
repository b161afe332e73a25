"""nmfsep.separate: the shapes, dtypes and sample rates of the Python API's arrays (issue 15, item 6).

Arrays from a script are untrusted like files: their shape and the memory it implies are checked
before anything is allocated from them. librosa's channels-first layout is the classic trap.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nmfsep
from nmfsep import audio
from nmfsep.errors import BadValueError, NmfsepError
from nmfsep.supervised import learn

RATE = 8000


def stereo(seconds=1.0, rate=RATE):
    """(n_samples, 2) float32: a low tone left, a high tone right, a little of each in the other."""
    t = np.arange(int(seconds * rate)) / rate
    low, high = np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 1760 * t)
    return (0.4 * np.stack([low + 0.2 * high, high + 0.2 * low], axis=1)).astype(np.float32)


def test_channels_first_stereo_is_refused_with_the_fix():
    with pytest.raises(BadValueError, match=r"got shape \(2, 8000\): that looks like channels-first "
                                            r"\(librosa's layout\); pass samples.T or channels_first=True"):
        nmfsep.separate(stereo().T, RATE, k=2)


def test_channels_first_is_refused_before_any_large_allocation():
    """librosa's layout of 12 s of 44.1 kHz stereo, with the address space capped at 300 MB above
    what the interpreter already holds: the refusal must come before any big array is made."""
    script = textwrap.dedent("""
        import os, resource
        import numpy as np
        import nmfsep, nmfsep.pipeline, nmfsep.audio
        samples = np.zeros((2, 529200), np.float32)
        with open("/proc/self/statm") as f:
            held = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (held + 300 * 2**20, resource.RLIM_INFINITY))
        try:
            nmfsep.separate(samples, 44100, k=2)
        except BaseException as exc:
            print(type(exc).__name__, exc)
    """)
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/statm")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("BadValueError got shape (2, 529200): that looks like channels-first"), \
        done.stdout + done.stderr


def test_channels_first_layout_is_accepted_explicitly_and_kept():
    samples = stereo()
    stems = nmfsep.separate(samples.T, RATE, k=2, max_iter=20, channels_first=True)
    assert stems.shape == (2, 2, len(samples))
    np.testing.assert_allclose(stems.sum(axis=0), samples.T, atol=1e-4 * np.abs(samples).max())


def test_both_layouts_give_the_same_stems():
    samples = stereo()
    last = nmfsep.separate(samples, RATE, k=2, max_iter=20)
    first = nmfsep.separate(np.ascontiguousarray(samples.T), RATE, k=2, max_iter=20, channels_first=True)
    np.testing.assert_array_equal(first, last.transpose(0, 2, 1))


def test_learn_refuses_a_channels_first_recording_with_the_fix():
    with pytest.raises(BadValueError, match=r"got shape \(2, 8000\): that looks like channels-first "
                                            r"\(librosa's layout\); pass recording.T$"):
        learn(stereo().T, RATE, n_bases=2)


def test_channels_last_given_as_channels_first_is_refused_with_the_fix():
    with pytest.raises(BadValueError, match=r"got shape \(8000, 2\) with channels_first=True: that looks "
                                            r"like \(n_samples, n_channels\); leave channels_first out"):
        nmfsep.separate(stereo(), RATE, k=2, channels_first=True)


def test_mono_is_the_same_with_either_layout():
    mono = stereo()[:, 0]
    plain = nmfsep.separate(mono, RATE, k=2, max_iter=20)
    first = nmfsep.separate(mono, RATE, k=2, max_iter=20, channels_first=True)
    assert plain.shape == first.shape == (2, len(mono))
    np.testing.assert_array_equal(plain, first)


def test_more_channels_than_supported_are_refused():
    many = np.zeros((10 * RATE, audio.MAX_CHANNELS + 1), np.float32)
    with pytest.raises(BadValueError, match=f"{audio.MAX_CHANNELS + 1} channels .*at most {audio.MAX_CHANNELS}"):
        nmfsep.separate(many, RATE)


@pytest.mark.parametrize("samples, message", [
    (np.zeros((4, 100, 2), np.float32), r"must be \(n_samples,\) or \(n_samples, n_channels\), got shape \(4, 100, 2\)"),
    (np.zeros(0, np.float32), r"is empty \(shape \(0,\)\)"),
    (np.zeros((100, 0), np.float32), r"is empty \(shape \(100, 0\)\)"),
    (np.array([0.0, np.inf, 0.1]), "NaN or infinite"),
    (np.array(["a", "b"]), "must hold real numbers.*<U1"),
    (np.array([0.1 + 1j, 0.2]), "must hold real numbers.*complex"),
    ([[0.1, 0.2], [0.3]], "must be an array of numbers"),
])
def test_unusable_arrays_are_refused_naming_the_problem(samples, message):
    with pytest.raises(BadValueError, match=message):
        nmfsep.separate(samples, RATE)


@pytest.mark.parametrize("rate", [0, -8000, audio.MAX_SAMPLE_RATE + 1, 8000.5, "8000", None, True])
def test_unusable_sample_rates_are_refused(rate):
    with pytest.raises(BadValueError, match=f"sample_rate must be a whole number of Hz in 1..{audio.MAX_SAMPLE_RATE}"):
        nmfsep.separate(stereo(), rate)


def test_a_numpy_integer_sample_rate_is_accepted():
    samples = stereo()[:, 0]
    np.testing.assert_array_equal(nmfsep.separate(samples, np.int64(RATE), k=2, max_iter=5),
                                  nmfsep.separate(samples, RATE, k=2, max_iter=5))


def test_an_input_too_big_for_memory_is_refused_with_the_numbers(monkeypatch):
    monkeypatch.setattr(audio, "memory_limit", lambda: 2**20)
    with pytest.raises(BadValueError, match=r"\(8000, 2\) at 8000 Hz: separating it in memory needs about "
                                            r"[0-9.]+ MiB, this machine has 1 MiB"):
        nmfsep.separate(stereo(), RATE, k=2)


def test_bad_values_are_value_errors_and_nmfsep_errors():
    for call in (lambda: nmfsep.separate(stereo().T, RATE), lambda: nmfsep.separate(stereo(), RATE, k=0)):
        with pytest.raises(ValueError) as caught:
            call()
        assert isinstance(caught.value, NmfsepError)


def test_integer_samples_are_separated_and_sum_to_the_input():
    samples = (stereo() * 2**15).astype(np.int16)
    stems = nmfsep.separate(samples, RATE, k=2, max_iter=20)
    assert stems.shape == (2,) + samples.shape and stems.dtype == np.float32
    np.testing.assert_allclose(stems.sum(axis=0), samples, atol=1e-4 * 2**15)


def test_the_caller_array_is_never_modified_in_either_layout():
    samples = stereo()
    first = np.ascontiguousarray(samples.T)
    copies = samples.copy(), first.copy()
    nmfsep.separate(samples, RATE, k=2, max_iter=5)
    nmfsep.separate(first, RATE, k=2, max_iter=5, channels_first=True)
    np.testing.assert_array_equal(samples, copies[0])
    np.testing.assert_array_equal(first, copies[1])
