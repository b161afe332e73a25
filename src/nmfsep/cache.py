"""An on-disk cache of float32 arrays, named by a digest of what they were made from.

Used for what is slow to make and depends only on its inputs (the discriminative training of a
model set), so that separate runs of ``nmfsep split`` with the same models make it once. The
folder is $NMFSEP_CACHE_DIR, else $XDG_CACHE_HOME/nmfsep, else ~/.cache/nmfsep; NMFSEP_CACHE_DIR
set to an empty string turns the cache off. A file that cannot be read or written is simply not
used: the caller makes the arrays again.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np


def folder() -> Path | None:
    """Where cached files go (None: the cache is off)."""
    chosen = os.environ.get("NMFSEP_CACHE_DIR")
    if chosen is not None:
        return Path(chosen) if chosen else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nmfsep"


def writable_folder() -> Path | None:
    """The cache folder if files can be kept in it (it, or the nearest folder above it that
    exists, is writable), else None (also when the cache is off)."""
    where = folder()
    if where is None:
        return None
    existing = where
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    return where if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK) else None


def digest(*parts) -> str:
    """A name for these inputs: arrays by their dtype, shape and bytes, anything else by repr."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(repr((part.dtype.str, part.shape)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()[:40]


def load(kind: str, name: str) -> dict[str, np.ndarray] | None:
    """The arrays saved under this kind and name, or None (absent, unreadable or off)."""
    where = folder()
    if where is None:
        return None
    try:
        with np.load(where / f"{kind}-{name}.npz", allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception:  # absent, truncated, corrupt: made again
        return None


def save(kind: str, name: str, arrays: dict[str, np.ndarray]) -> None:
    """Save arrays under this kind and name (atomically: a reader never sees half a file)."""
    where = folder()
    if where is None:
        return
    temporary = None
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, suffix=".tmp", delete=False) as handle:
            temporary = handle.name
            np.savez(handle, **arrays)
        os.replace(temporary, where / f"{kind}-{name}.npz")
    except OSError:  # a read-only or full disk: no cache, no error
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
