"""Checks of the Python API's sample arrays and sample rates (``separate``, ``learn``)."""

import numpy as np

from . import audio
from .errors import BadValueError


def as_2d(samples, channels_first: bool = False, name: str = "samples", fix: str = " or channels_first=True") -> np.ndarray:
    """samples as (n_samples, n_channels), a view where it can be (never written to).

    Accepts (n_samples,) mono, (n_samples, n_channels), or (n_channels, n_samples) with
    channels_first=True (librosa's layout). Checks, before anything is allocated from them, the
    dtype (real numbers), the shape (1-D or 2-D, not empty, at most audio.MAX_CHANNELS channels,
    and a layout that does not look transposed) and finiteness; BadValueError names the problem
    and the fix (``fix``: how the caller's function takes channels-first arrays, if it does).
    """
    array = as_array(samples, name)
    shape = array.shape
    if array.dtype.kind not in "fiu":
        raise BadValueError(f"{name} must hold real numbers (float or integer), got dtype {array.dtype}")
    if array.ndim not in (1, 2):
        layout = "(n_channels, n_samples)" if channels_first else "(n_samples, n_channels)"
        raise BadValueError(f"{name} must be (n_samples,) or {layout}, got shape {shape}")
    if array.size == 0:
        raise BadValueError(f"{name} is empty (shape {shape})")
    if channels_first and array.ndim == 2:
        array = array.T
    n_samples = array.shape[0]
    n_channels = array.shape[1] if array.ndim == 2 else 1
    if n_channels > audio.MAX_CHANNELS:
        if n_channels > n_samples and channels_first:
            raise BadValueError(f"got shape {shape} with channels_first=True: that looks like (n_samples, "
                                "n_channels); leave channels_first out")
        if n_channels > n_samples:
            raise BadValueError(f"got shape {shape}: that looks like channels-first (librosa's layout); "
                                f"pass {name}.T{fix}")
        raise BadValueError(f"{name} has {n_channels} channels (shape {shape}); at most {audio.MAX_CHANNELS} "
                            "are supported")
    if not (np.isfinite(array.min()) and np.isfinite(array.max())):  # NaN and Inf propagate: no mask
        raise BadValueError(f"NaN or infinite values in {name}; clean them first (e.g. np.nan_to_num)")
    return array.reshape(n_samples, n_channels)


def as_array(samples, name: str = "samples") -> np.ndarray:
    try:
        return np.asarray(samples)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise BadValueError(f"{name} must be an array of numbers: {exc}") from None


def check_sample_rate(sample_rate) -> int:
    """sample_rate as an int, or BadValueError unless it is a whole number of Hz in range."""
    try:
        whole = not isinstance(sample_rate, (bool, np.bool_, str)) and int(sample_rate) == sample_rate
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or not 1 <= int(sample_rate) <= audio.MAX_SAMPLE_RATE:
        raise BadValueError(f"sample_rate must be a whole number of Hz in 1..{audio.MAX_SAMPLE_RATE}, "
                            f"got {sample_rate!r}")
    return int(sample_rate)
