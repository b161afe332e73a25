"""Reading and writing audio with soundfile (libsndfile).

Samples are float32 arrays of shape (n_samples, n_channels), as soundfile gives them. '-' reads a
stream from stdin or writes one to stdout. Writes are atomic: a temporary file in the target
folder is renamed over the final name only once it is complete.
"""

from dataclasses import dataclass
import io
import os
import sys
import tempfile

import numpy as np
import soundfile as sf

from .errors import AudioError

# Bounds checked from the header, before any sample memory is allocated.
MAX_CHANNELS = 64
MAX_SAMPLE_RATE = 768_000

EXTENSIONS = {"WAV": "wav", "FLAC": "flac", "OGG": "ogg", "AIFF": "aiff", "W64": "w64", "CAF": "caf"}


@dataclass
class Audio:
    """samples: float32 (n_samples, n_channels); format/subtype: soundfile's names, kept on write."""

    samples: np.ndarray
    sample_rate: int
    format: str = "WAV"
    subtype: str = "FLOAT"

    @property
    def n_samples(self) -> int:
        return self.samples.shape[0]

    @property
    def n_channels(self) -> int:
        return self.samples.shape[1]


def read(path: str) -> Audio:
    """Read a whole file (or '-' for stdin) as float32; raise AudioError naming the file."""
    name = "<stdin>" if path == "-" else path
    if path != "-" and not os.path.exists(path):
        raise AudioError(f"{name}: no such file")
    if path != "-" and os.path.isdir(path):
        raise AudioError(f"{name}: is a folder, not an audio file")
    try:
        source = io.BytesIO(sys.stdin.buffer.read()) if path == "-" else path
        with sf.SoundFile(source) as f:
            _check_header(name, f.samplerate, f.channels)
            fmt, subtype = f.format, f.subtype
            samples = f.read(dtype="float32", always_2d=True)
            sample_rate = f.samplerate
    except AudioError:
        raise
    except PermissionError:
        raise AudioError(f"{name}: permission denied") from None
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as exc:
        raise AudioError(f"{name}: not a readable audio file ({_reason(exc)})") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{name}: contains no audio samples")
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return Audio(samples, sample_rate, fmt, subtype)


def _check_header(name: str, sample_rate: int, channels: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{name}: {channels} channels (at most {MAX_CHANNELS} are supported)")
    if not 1 <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{name}: sample rate {sample_rate} Hz is not supported")


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    # libsndfile prefixes messages with the file name, which the caller already names.
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text


def extension(fmt: str) -> str:
    return EXTENSIONS.get(fmt, "wav")


def write_temp(path: str, samples: np.ndarray, sample_rate: int, fmt: str, subtype: str) -> str:
    """Write to a hidden temporary file beside ``path`` and return its name (rename it to commit)."""
    folder = os.path.dirname(path) or "."
    handle, temp = tempfile.mkstemp(prefix=".nmfsep-", suffix="." + extension(fmt), dir=folder)
    os.close(handle)
    try:
        sf.write(temp, samples, sample_rate, format=fmt, subtype=subtype)
    except BaseException:
        os.unlink(temp)
        raise
    return temp


def write_stream(stream, samples: np.ndarray, sample_rate: int, subtype: str) -> None:
    """Write a WAV stream (for stdout); the whole file is built in memory first."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="WAV", subtype=subtype)
    stream.write(buffer.getvalue())
    stream.flush()


def writable_subtype(fmt: str, subtype: str) -> str:
    """The input's subtype where the output format can hold it, else the format's default."""
    return subtype if sf.check_format(fmt, subtype) else sf.default_subtype(fmt)
