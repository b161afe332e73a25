"""Learned bases: a model file (.npz) holds what one source sounds like.

A model file comes from someone else: it is read with ``allow_pickle=False``, every member's
header is checked before its data is read, and every field is validated, so a file can neither
run code nor make us allocate more than it holds. A model is used only at the sample rate and
STFT parameters it was learned with: a file at another rate is resampled to it for the split,
and its stems back (see nmfsep.pipeline.split_sources).
"""

from dataclasses import dataclass
import os
import zipfile

import numpy as np

from . import __version__
from .errors import ModelError, NmfsepError

FORMAT_VERSION = 2
MAX_BASES = 4096
MAX_BINS = 1 << 16
MAX_FRAMES = 4096
MAX_PITCH_SHIFTS = 12  # semitones, each way (see nmfsep.supervised.learn)
FIELDS = {  # name -> (numpy kind, number of dimensions); all are required
    "bases": ("f", 2),
    "sample_rate": ("i", 0),
    "n_fft": ("i", 0),
    "hop_length": ("i", 0),
    "beta": ("f", 0),
    "name": ("U", 0),
    "nmfsep_version": ("U", 0),
    "format_version": ("i", 0),
}
OPTIONAL = {  # since format 2 (a version-1 file has no training frames and no pitch shifts)
    "frames": ("f", 2),
    "pitch_shifts": ("i", 0),
}


@dataclass
class Model:
    """bases: float32 (n_bins, k), columns with unit norm; the rest says how they were learned.

    frames: a sample of the training spectrogram (n_bins, <= MAX_FRAMES), float16, mean 1, or
    None (format 1); with the other models' frames it trains discriminative bases at split time.
    pitch_shifts: the +-semitones the bases were also learned from (see ``supervised.learn``).
    builtin: read from one of nmfsep's built-ins (nmfsep.models.load), which model a class of
    sound rather than one source; not stored in the file.
    """

    bases: np.ndarray
    sample_rate: int
    n_fft: int
    hop_length: int
    beta: float
    name: str
    frames: np.ndarray | None = None
    pitch_shifts: int = 0
    nmfsep_version: str = __version__
    format_version: int = FORMAT_VERSION
    builtin: bool = False

    @property
    def n_bases(self) -> int:
        return self.bases.shape[1]


def save(model: Model, path: str, *, compress: bool = False) -> None:
    """Write the model atomically (``write_arrays``); compress: deflate its arrays (the built-ins)."""
    names = [*FIELDS, *(["frames"] if model.frames is not None else []), "pitch_shifts"]
    write_arrays(path, {name: np.asarray(getattr(model, name)) for name in names}, compress=compress)


def write_arrays(path, arrays: dict, *, compress: bool = False) -> None:
    """Write arrays as an .npz archive (numpy's format, without pickle) atomically (a temporary
    file, then a rename) and reproducibly: fixed member timestamps, so the same arrays give the
    same bytes (the shipped models are rebuilt byte for byte). Raises ModelError naming path
    where it cannot be written."""
    path = os.fspath(path)
    temp = f"{path}.tmp-{os.getpid()}.npz"
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    try:
        with zipfile.ZipFile(temp, "w", method) as archive:
            for name, value in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                with archive.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
        os.replace(temp, path)
    except OSError as exc:
        if os.path.exists(temp):
            os.unlink(temp)
        raise ModelError(f"{path}: cannot write the model ({exc.strerror or exc})") from None


def load(path: str) -> Model:
    """Read and validate a model file; raise ModelError naming the file and the problem."""
    spec = {name: (kind, (None,) * ndim) for name, (kind, ndim) in FIELDS.items()}
    optional = {name: (kind, (None,) * ndim) for name, (kind, ndim) in OPTIONAL.items()}
    fields = read_arrays(path, spec, optional, max_shape=_max_shape, what="an nmfsep model")
    return _validate(fields, path)


def _max_shape(field: str, shape: tuple[int, ...]) -> bool:
    return 1 <= shape[0] <= MAX_BINS and 1 <= shape[1] <= (MAX_FRAMES if field == "frames" else MAX_BASES)


def read_arrays(path, spec: dict, optional: dict | None = None, *, max_shape=None, max_elements: int | None = None,
                what: str = "an nmfsep model") -> dict:
    """The arrays of an .npz file, read without pickle, each member's header checked before its
    data is read: spec and optional map a field to (numpy kind, shape), shape a tuple of sizes,
    None for any size, () for a scalar (returned as a Python value). A 2-D field must pass
    max_shape(field, shape) where given; no field may hold more than max_elements values.
    Every field of spec is required. ModelError names the file and the problem."""
    expected = {**spec, **(optional or {})}
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            missing = [f for f in spec if f not in members]
            if missing:
                raise ModelError(f"{path}: not {what} (no field {missing[0]!r})")
            return {f: _read_member(archive, members[f], f, path, *expected[f], max_shape, max_elements)
                    for f in expected if f in members}
    except zipfile.BadZipFile:
        raise ModelError(f"{path}: not {what} (not an .npz archive)") from None
    except (OSError, ValueError, EOFError) as exc:
        raise ModelError(f"{path}: corrupt model file ({exc})") from None


def _read_member(archive: zipfile.ZipFile, member: str, field: str, path, kind: str, expected, max_shape,
                 max_elements):
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
        if dtype.kind != kind and not (kind == "f" and dtype.kind == "i"):
            raise ModelError(f"{path}: field {field!r} has type {dtype}, expected kind {kind!r}")
        ndim = len(expected)
        if len(shape) != ndim:
            raise ModelError(f"{path}: field {field!r} has {len(shape)} dimensions, expected {ndim}")
        if (any(e is not None and e != n for e, n in zip(expected, shape))
                or (ndim == 2 and max_shape is not None and not max_shape(field, shape))
                or (max_elements is not None and int(np.prod(shape)) > max_elements)):
            raise ModelError(f"{path}: {field} of shape {shape} are out of range")
        if dtype.itemsize * int(np.prod(shape)) > archive.getinfo(member).file_size:
            raise ModelError(f"{path}: field {field!r} is truncated")
        f.seek(0)
        value = np.lib.format.read_array(f, allow_pickle=False)
    return value if ndim else value.item()


def _validate(fields: dict, path: str) -> Model:
    version = int(fields["format_version"])
    if version > FORMAT_VERSION:
        raise ModelError(f"{path}: model format version {version} is newer than this nmfsep reads "
                         f"({FORMAT_VERSION}); upgrade nmfsep")
    if version < 1:
        raise ModelError(f"{path}: invalid model format version {version}")
    bases = np.ascontiguousarray(fields["bases"], dtype=np.float32)
    if not np.isfinite(bases).all() or bases.min() < 0:
        raise ModelError(f"{path}: bases must be finite and non-negative")
    if not bases.any():
        raise ModelError(f"{path}: every basis is all zero: the model describes no sound")
    n_fft, hop, rate = int(fields["n_fft"]), int(fields["hop_length"]), int(fields["sample_rate"])
    if not (16 <= n_fft <= 2 * (MAX_BINS - 1) and n_fft % 2 == 0 and 1 <= hop <= n_fft // 2):
        raise ModelError(f"{path}: invalid STFT parameters (n_fft {n_fft}, hop {hop})")
    if bases.shape[0] != n_fft // 2 + 1:
        raise ModelError(f"{path}: bases have {bases.shape[0]} bins but n_fft {n_fft} gives {n_fft // 2 + 1}")
    if not 1 <= rate <= 768_000:
        raise ModelError(f"{path}: invalid sample rate {rate}")
    beta = float(fields["beta"])
    if not np.isfinite(beta):
        raise ModelError(f"{path}: invalid beta {beta}")
    frames = fields.get("frames")
    if frames is not None:
        frames = np.ascontiguousarray(frames, dtype=np.float16)
        if frames.shape[0] != bases.shape[0] or not np.isfinite(frames).all() or frames.min() < 0:
            raise ModelError(f"{path}: training frames must be finite, non-negative and have {bases.shape[0]} bins")
    shifts = int(fields.get("pitch_shifts", 0))
    if not 0 <= shifts <= MAX_PITCH_SHIFTS:
        raise ModelError(f"{path}: invalid pitch shifts {shifts}")
    return Model(bases, rate, n_fft, hop, beta, str(fields["name"]), frames, shifts,
                 str(fields["nmfsep_version"]), version)


def check_one_rate(models) -> None:
    """NmfsepError naming the first of models (Models) and the first one learned at another rate."""
    first = models[0]
    other = next((m for m in models if m.sample_rate != first.sample_rate), None)
    if other is not None:
        raise NmfsepError(f"models {first.name!r} and {other.name!r} were learned at different sample rates "
                          f"({first.sample_rate} and {other.sample_rate} Hz): learn them at one rate")


def conform(model: Model, sample_rate: int, n_fft: int, hop_length: int) -> Model:
    """The model on another STFT grid (a built-in used beside models learned at another rate or
    STFT): its bases (n_bins, k) and training frames re-gridded along frequency to n_fft // 2 + 1
    bins: bin j (j * sample_rate / n_fft Hz) takes the model's value at that frequency, linearly
    interpolated between its bins, and 0 above its Nyquist frequency (sample_rate / 2 of the
    model). The bases' columns are renormalised to unit norm, the frames to mean 1 (float16).
    The model itself where the grid is already its own. Raises ModelError where none of the
    model's bases has anything left on the new grid."""
    if (sample_rate, n_fft, hop_length) == (model.sample_rate, model.n_fft, model.hop_length):
        return model
    position = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft) * (model.n_fft / model.sample_rate)
    bases = regrid(model.bases, position)
    norms = np.linalg.norm(bases, axis=0)
    if not norms.any():
        raise ModelError(f"model {model.name!r} has nothing below {sample_rate / 2:g} Hz to use at {sample_rate} Hz")
    bases /= np.maximum(norms, np.finfo(np.float32).tiny)
    frames = None
    if model.frames is not None:
        frames = regrid(model.frames.astype(np.float32), position)
        mean = float(frames.mean())
        frames = stored_frames(frames, mean or 1.0)
    return Model(bases, sample_rate, n_fft, hop_length, model.beta, model.name, frames, model.pitch_shifts,
                 model.nmfsep_version, model.format_version, model.builtin)


def stored_frames(frames: np.ndarray, scale: float) -> np.ndarray:
    """Training frames (n_bins, n) over scale as a Model keeps them: float16, clipped to its range."""
    return np.minimum(frames / scale, np.finfo(np.float16).max).astype(np.float16)


def regrid(values: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Rows of values (n_bins, m) at fractional row positions (len(position), m), linearly
    interpolated, 0 beyond the last row; in values' dtype. Re-grids a model (``conform``) and
    pitch-shifts a spectrogram (nmfsep.supervised.pitch_shift)."""
    n_bins = values.shape[0]
    inside = np.flatnonzero(position <= n_bins - 1)
    low = np.minimum(np.floor(position[inside]).astype(np.intp), n_bins - 2)
    frac = (position[inside] - low)[:, None].astype(values.dtype)
    out = np.zeros((len(position), values.shape[1]), values.dtype)
    out[inside] = (1 - frac) * values[low] + frac * values[low + 1]
    return out
