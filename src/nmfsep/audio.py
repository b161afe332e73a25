"""Reading and writing audio with soundfile (libsndfile).

Samples are float32 arrays of shape (n_samples, n_channels), as soundfile gives them. '-' reads a
stream from stdin, and ``write_stream`` writes a WAV stream (to stdout). Inputs are untrusted
bytes: ``open_input`` parses and checks the header (channels, rate, length, truncation) before
any sample memory is allocated, and ``Source.read`` decodes the samples afterwards. Writes are
atomic: a temporary file in the target folder is renamed over the final name once complete.
"""

from dataclasses import dataclass, replace
import errno
import io
import os
import re
import shlex
import select
import stat
import sys
import tempfile

import numpy as np
import soundfile as sf

from .errors import AudioError, NmfsepError

# Bounds checked from the header, before any sample memory is allocated.
MAX_CHANNELS = 64
MAX_SAMPLE_RATE = 768_000

# Formats whose stems are written in the input's format (a lossy input excepted, see LOSSY); any
# other input gives WAV stems. soundfile's format names and their file extensions.
EXTENSIONS = {"WAV": "wav", "WAVEX": "wav", "FLAC": "flac", "AIFF": "aiff", "W64": "w64", "CAF": "caf",
              "RF64": "wav", "OGG": "ogg", "MP3": "mp3"}  # RF64 files are named .wav (EBU Tech 3306)
# Lossy codecs (soundfile's subtype names) and what people call them. A lossy input's stems are
# lossless (LOSSLESS_STEMS) unless a lossy format is asked for: re-encoded lossily, they would no
# longer add up to the input.
LOSSY = {"MPEG_LAYER_I": "MP1", "MPEG_LAYER_II": "MP2", "MPEG_LAYER_III": "MP3", "VORBIS": "Ogg Vorbis",
         "OPUS": "Ogg Opus"}
LOSSLESS_STEMS = "FLAC"
# Containers whose WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk carries a channel mask (which speaker each
# channel feeds): read from the input, written into the stems.
MASKED_FORMATS = ("WAVEX", "RF64")
# Formats libsndfile does not read, by file extension: refused with the command that converts them.
FFMPEG_ONLY = {"m4a": "AAC/M4A", "m4b": "AAC/M4A", "m4r": "AAC/M4A", "aac": "AAC", "mp4": "MP4",
               "alac": "ALAC", "wma": "WMA", "asf": "WMA", "webm": "WebM", "mka": "Matroska",
               "ac3": "AC-3", "dts": "DTS", "ape": "Monkey's Audio", "wv": "WavPack"}

# errnos of a filesystem that makes no hard links (commit_temp then checks and renames)
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV}
# Declared chunk sizes at or above this are streaming placeholders (ffmpeg and sox write
# 0xFFFFFFFF or 0x7FFFF000 when they cannot seek back), not promises of that much audio.
_STREAMING_SIZE = 0x7FFF0000
# libsndfile's log lines for a chunk larger than the file: "data : 88200 (should be 44060)".
_SHORT_CHUNK = re.compile(r"^\s*(data|SSND|riff|Riff size)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)


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


@dataclass(frozen=True)
class Header:
    """What a file says about itself, checked but not yet decoded."""

    sample_rate: int
    n_channels: int
    n_frames: int
    format: str
    subtype: str
    channel_mask: int | None = None  # dwChannelMask of a WAVE_FORMAT_EXTENSIBLE input


@dataclass(frozen=True)
class StemFormat:
    """How stems are written: soundfile's format and subtype names ('FLAC', 'PCM_24'; 'OGG',
    'OPUS'), and the channel mask written into a WAVEX or RF64 stem (None: libsndfile's own)."""

    format: str
    subtype: str
    channel_mask: int | None = None

    @property
    def extension(self) -> str:
        return extension(self.format, self.subtype)

    @property
    def lossy(self) -> bool:
        return self.subtype in LOSSY

    def __str__(self) -> str:
        return f"{self.format} {self.subtype}"


def display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def memory_limit() -> int | None:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup limit."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None


class Source:
    """An opened input whose header has been read and checked; ``read()`` decodes it.

    Use as a context manager: ``with open_input(path) as source: source.header, source.read()``.
    """

    def __init__(self, name: str, handle: sf.SoundFile, header: Header):
        self.name = name
        self.header = header
        self._file = handle

    def read(self) -> Audio:
        """All samples as float32 (n_samples, n_channels); AudioError for truncated or NaN data."""
        name, header = self.name, self.header
        try:
            samples = self._file.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as exc:
            raise AudioError(f"{name}: not a readable audio file ({_reason(exc)})") from None
        if samples.shape[0] == 0:
            raise AudioError(f"{name}: contains no audio samples")
        if samples.shape[0] < header.n_frames:
            raise AudioError(f"{name}: truncated file (its header announces {header.n_frames} frames, "
                             f"it holds {samples.shape[0]})")
        if not np.isfinite(samples).all():
            raise AudioError(f"{name}: contains NaN or infinite samples")
        return Audio(samples, header.sample_rate, header.format, header.subtype)

    def blocks(self, n_samples: int):
        """Yield the samples from the start as float32 blocks (at most n_samples, n_channels),
        with the checks of ``read`` (truncation, NaN), without decoding the whole input at once.
        Each call rewinds, so a second pass reads the input again."""
        name, header = self.name, self.header
        try:
            self._file.seek(0)
        except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
            raise AudioError(f"{name}: cannot be read twice ({_reason(exc)})") from None
        total = 0
        while True:
            try:
                block = self._file.read(n_samples, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as exc:
                raise AudioError(f"{name}: not a readable audio file ({_reason(exc)})") from None
            if block.shape[0] == 0:
                break
            if not np.isfinite(block).all():
                raise AudioError(f"{name}: contains NaN or infinite samples")
            total += block.shape[0]
            yield block
        if total == 0:
            raise AudioError(f"{name}: contains no audio samples")
        if total < header.n_frames:
            raise AudioError(f"{name}: truncated file (its header announces {header.n_frames} frames, "
                             f"it holds {total})")

    def read_range(self, start: int, n_samples: int) -> np.ndarray:
        """float32 samples [start, start + n_samples) (fewer at the end of the input)."""
        try:
            self._file.seek(start)
            block = self._file.read(n_samples, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as exc:
            raise AudioError(f"{self.name}: not a readable audio file ({_reason(exc)})") from None
        if not np.isfinite(block).all():
            raise AudioError(f"{self.name}: contains NaN or infinite samples")
        return block

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_input(path: str) -> Source:
    """Open a file (or '-' for stdin) and check its header; raise AudioError naming the input.

    Pipes and other unseekable inputs (stdin, ``<(sox ...)``) are read into memory first, at most
    a fraction of the machine's memory: anything longer could not be separated anyway.
    """
    name = display_name(path)
    if path == "-":
        stdin = sys.stdin
        if stdin is None or stdin.isatty():
            raise AudioError(f"{name}: is a terminal; pipe a WAV stream in (sox in.flac -t wav - | nmfsep split - ...)")
        source = io.BytesIO(_read_capped(getattr(stdin, "buffer", stdin), name))
        if not source.getbuffer().nbytes:
            raise AudioError(f"{name}: is empty (nothing was piped in)")
    else:
        source = _open_file(path, name)
    try:
        handle = sf.SoundFile(source)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as exc:
        kind = FFMPEG_ONLY.get(os.path.splitext(path)[1][1:].lower())
        if kind:
            flac = os.path.splitext(path)[0] + ".flac"
            raise AudioError(f"{name}: {kind} is not a format libsndfile reads; convert it first: "
                             f"ffmpeg -i {shlex.quote(path)} {shlex.quote(flac)}") from None
        raise AudioError(f"{name}: not a readable audio file ({_reason(exc)})") from None
    try:
        mask = channel_mask(source) if handle.format in MASKED_FORMATS else None
        header = Header(handle.samplerate, handle.channels, handle.frames, handle.format, handle.subtype, mask)
        _check_header(name, header, handle.extra_info)
        if handle.format == "MP3":  # libsndfile's count is an estimate (over by up to a frame's
            header = replace(header, n_frames=_count_frames(handle, name))  # worth for sox's files)
    except BaseException:
        handle.close()
        raise
    return Source(name, handle, header)


def _count_frames(handle: sf.SoundFile, name: str) -> int:
    """The frames a file really decodes to, read block by block (bounded memory), then rewound."""
    total = 0
    try:
        while True:
            block = handle.read(65536, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            total += block.shape[0]
        handle.seek(0)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as exc:
        raise AudioError(f"{name}: not a readable audio file ({_reason(exc)})") from None
    if total == 0:
        raise AudioError(f"{name}: contains no audio samples")
    return total


def read(path: str) -> Audio:
    """Read a whole file (or '-' for stdin) as float32; raise AudioError naming the file."""
    with open_input(path) as source:
        return source.read()


def _open_file(path: str, name: str):
    """The path itself for a regular file (libsndfile opens it), else its bytes in memory."""
    if not os.path.exists(path):
        raise AudioError(f"{name}: no such file" + (" (a broken link)" if os.path.islink(path) else ""))
    if os.path.isdir(path):
        raise AudioError(f"{name}: is a folder, not an audio file")
    try:
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            if stat.S_ISREG(status.st_mode):
                if not status.st_size:
                    raise AudioError(f"{name}: is empty (0 bytes)")
                return path
            return io.BytesIO(_read_capped(handle, name))
    except PermissionError:
        raise AudioError(f"{name}: permission denied") from None
    except OSError as exc:
        raise AudioError(f"{name}: cannot be read ({exc.strerror or exc})") from None


def _read_capped(stream, name: str) -> bytes:
    limit = memory_limit()
    limit = None if limit is None else limit // 16
    data = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise AudioError(f"{name}: stream longer than {limit / 2**30:.1f} GiB, too long to separate in memory")
    return data


def _check_header(name: str, header: Header, log: str) -> None:
    if not 1 <= header.n_channels <= MAX_CHANNELS:
        raise AudioError(f"{name}: {header.n_channels} channels (at most {MAX_CHANNELS} are supported)")
    if not 1 <= header.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{name}: sample rate {header.sample_rate} Hz is not supported")
    if header.n_frames <= 0:
        raise AudioError(f"{name}: contains no audio samples")
    limit = memory_limit()
    if limit is not None and header.n_frames * header.n_channels * 4 > limit // 2:
        raise AudioError(f"{name}: {header.n_frames} frames x {header.n_channels} channels would not fit "
                         f"in memory (its header may be corrupt)")
    for _, declared, actual in _SHORT_CHUNK.findall(log):
        declared, actual = int(declared), int(actual)
        if actual < declared < _STREAMING_SIZE:
            raise AudioError(f"{name}: truncated file (its header announces {declared} bytes, "
                             f"it holds {actual})")


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    # libsndfile prefixes messages with the file name, which the caller already names.
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text


def output_format(fmt: str, subtype: str | None = None) -> str:
    """The format stems are written in for an input of format ``fmt`` and ``subtype`` (soundfile's
    names): the input's own, FLAC for a lossy input (MP3, Ogg Vorbis, Opus), else WAV."""
    if subtype in LOSSY:
        return LOSSLESS_STEMS
    return fmt if fmt in EXTENSIONS else "WAV"


def extension(fmt: str, subtype: str | None = None) -> str:
    return "opus" if subtype == "OPUS" else EXTENSIONS.get(fmt, "wav")


def check_writable(name: str, stem_format: StemFormat, sample_rate: int, n_channels: int) -> None:
    """Raise AudioError naming ``name`` unless the installed libsndfile writes ``stem_format`` at
    this rate and channel count (Opus takes 8-48 kHz, MP3 at most 2 channels, ...). A few frames
    are encoded in memory, so the answer is libsndfile's own, before any work."""
    try:
        with open_output(io.BytesIO(), sample_rate, n_channels, stem_format) as handle:
            handle.write(np.zeros((64, n_channels), np.float32))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        reason = re.sub(r"^Error\s*:\s*", "", _reason(exc)).rstrip(".")
        raise AudioError(f"{name}: stems cannot be written as {stem_format} at {sample_rate} Hz with "
                         f"{n_channels} channels ({reason}); choose another --format") from None


def open_output(file, sample_rate: int, n_channels: int, stem_format: StemFormat) -> sf.SoundFile:
    """A SoundFile open for writing stems of ``stem_format`` to ``file`` (a path or a file object)."""
    return sf.SoundFile(file, "w", sample_rate, n_channels, stem_format.subtype, format=stem_format.format)


def write_temp(path: str, samples: np.ndarray, sample_rate: int, stem_format: StemFormat) -> str:
    """Write to a hidden temporary file beside ``path`` and return its name (rename it to commit).

    The file is flushed to disk and given the permissions a new file would get (mkstemp's are
    owner-only), so renaming it gives a complete, ordinary file. On any failure, Ctrl-C included,
    the temporary file is removed.
    """
    temp = new_temp(path, stem_format)
    try:
        sf.write(temp, samples, sample_rate, format=stem_format.format, subtype=stem_format.subtype)
        finish_temp(temp, stem_format)
    except BaseException:
        os.unlink(temp)
        raise
    return temp


def clipped_share(samples: np.ndarray) -> float:
    """The share (0 to 1) of a channel's samples that sit at its own highest or lowest value, the
    largest over the channels of samples (n_samples,) or (n_samples, n_channels): a clipped
    recording's flat tops, whatever its format's full scale (0.99997 in 16-bit PCM, 0.98 in u-law,
    none in float) or its gain since. A side whose extreme is not past half the channel's peak
    (an offset, a one-sided signal) is not counted; 0 for no samples."""
    if not samples.size:
        return 0.0
    share = 0.0
    for channel in samples.reshape(len(samples), -1).T:
        high, low = channel.max(), channel.min()
        if high == low:  # a constant: no tops to be flat
            continue
        peak = max(high, -low)
        count = sum(int(np.count_nonzero(channel == extreme)) for extreme in (high, low) if abs(extreme) > 0.5 * peak)
        share = max(share, count / channel.size)
    return share


def commit_temp(temp: str, path: str, overwrite: bool) -> None:
    """Rename a finished temporary file (``write_temp``, ``new_temp``) to path. Without overwrite a
    file at path is never replaced, not even one that another run wrote after this one checked
    (two runs writing the same stems at once): the file is hard-linked to path, which fails where
    path exists (NmfsepError naming path; temp is left for the caller to remove), then its
    temporary name is removed. Where the filesystem has no hard links (FAT, some network ones), a
    check then a rename, which cannot rule that race out."""
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)
    except FileExistsError:
        raise _written_meanwhile(path) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(path):
            raise _written_meanwhile(path) from None
        os.replace(temp, path)
        return
    os.unlink(temp)


def _written_meanwhile(path: str) -> NmfsepError:
    return NmfsepError(f"{path} already exists (written while this run worked; use --force to overwrite)")


def new_temp(path: str, stem_format: StemFormat) -> str:
    """An empty hidden temporary file beside ``path`` (the streaming path writes it in blocks)."""
    folder = os.path.dirname(path) or "."
    handle, temp = tempfile.mkstemp(prefix=".nmfsep-", suffix="." + stem_format.extension, dir=folder)
    os.close(handle)
    return temp


def finish_temp(temp: str, stem_format: StemFormat | None = None) -> None:
    """Write the stem format's channel mask into a written temporary file (libsndfile writes its
    own default), flush the file to disk and give it a new file's permissions."""
    if stem_format is not None and stem_format.channel_mask is not None:
        with open(temp, "r+b") as handle:
            set_channel_mask(handle, stem_format.channel_mask)
    handle = os.open(temp, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
    os.chmod(temp, 0o666 & ~_UMASK)


def _read_umask() -> int:
    try:  # Linux: read it without changing it
        with open("/proc/self/status") as f:
            return int(re.search(r"^Umask:\s*([0-7]+)", f.read(), re.M).group(1), 8)
    except (OSError, AttributeError, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


_UMASK = _read_umask()


def write_stream(stream, samples: np.ndarray, sample_rate: int, subtype: str,
                 channel_mask: int | None = None) -> None:
    """Write a WAV stream (for stdout), WAVE_FORMAT_EXTENSIBLE with ``channel_mask`` where one is
    given; the whole file is built in memory first, so a failure before the write sends nothing."""
    write_all(stream, _wav_bytes(samples, sample_rate, subtype, channel_mask))
    stream.flush()


def _wav_bytes(samples: np.ndarray, sample_rate: int, subtype: str, channel_mask: int | None) -> bytes:
    """samples (n, n_channels) as a whole WAV file in memory: WAVE_FORMAT_EXTENSIBLE with
    ``channel_mask`` where one is given, plain WAV otherwise."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="WAV" if channel_mask is None else "WAVEX", subtype=subtype)
    if channel_mask is not None:
        set_channel_mask(buffer, channel_mask)
    return buffer.getvalue()


def write_all(stream, data: bytes) -> None:
    """Write every byte of ``data`` to a binary stream, or raise BrokenPipeError.

    A raw stream may take only part of a write: ``sys.stdout.buffer`` is one under ``python -u``
    or PYTHONUNBUFFERED, and a pipe whose reader leaves mid-write takes what fitted and no more.
    The rest is written until all of it is delivered; a write that takes nothing, or one into a
    pipe with no reader left (EPIPE), raises BrokenPipeError.
    """
    view = memoryview(data)
    while view:
        written = stream.write(view)
        if written is None:  # a non-blocking stream that is full: wait until it takes more
            select.select([], [stream], [])
            continue
        if written == 0:
            raise BrokenPipeError(errno.EPIPE, "the stream took no more bytes")
        view = view[written:]


def writable_subtype(fmt: str, subtype: str) -> str:
    """The input's subtype where the output format can hold it; else 24-bit for float, 32-bit or
    lossy input where the format has it (FLAC), else the format's default.

    A lossy codec is never kept: libsndfile's check_format accepts WAV + MPEG_LAYER_III (it reads
    such files) but cannot write it, and stems of a lossy input are lossless anyway.
    """
    if subtype not in LOSSY and sf.check_format(fmt, subtype):
        return subtype
    if (subtype in ("FLOAT", "DOUBLE", "PCM_32") or subtype in LOSSY) and sf.check_format(fmt, "PCM_24"):
        return "PCM_24"
    return sf.default_subtype(fmt)


# --- channel masks: WAVE_FORMAT_EXTENSIBLE's dwChannelMask, read and written in the file's bytes ---

_WAVE_EXTENSIBLE = b"\xfe\xff"
_MASK_OFFSET = 20  # in the 'fmt ' chunk's data: wFormatTag ... cbSize, wValidBitsPerSample, dwChannelMask
_MAX_CHUNKS = 1000  # chunks walked before 'fmt ' (the bytes are untrusted)


def channel_mask(file) -> int | None:
    """The dwChannelMask of a RIFF/RF64 WAVE file (a path or a BytesIO) whose 'fmt ' chunk is
    WAVE_FORMAT_EXTENSIBLE, else None. A BytesIO's position is left as it was."""
    if isinstance(file, io.BytesIO):
        with file.getbuffer() as view:
            return _read_mask(lambda start, size: bytes(view[start:start + size]))
    with open(file, "rb") as handle:
        return _read_mask(_reader(handle))


def set_channel_mask(handle, mask: int) -> None:
    """Write ``mask`` into the WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk of a WAVE file open as "r+b"
    (libsndfile writes WAVEX and RF64 that way); a file without one is left as it is."""
    fmt = _fmt_chunk(_reader(handle))
    if fmt is not None:
        handle.seek(fmt + _MASK_OFFSET)
        handle.write(mask.to_bytes(4, "little"))


def _reader(handle):
    def read_at(start: int, size: int) -> bytes:
        handle.seek(start)
        return handle.read(size)
    return read_at


def _read_mask(read_at) -> int | None:
    fmt = _fmt_chunk(read_at)
    return None if fmt is None else int.from_bytes(read_at(fmt + _MASK_OFFSET, 4), "little")


def _fmt_chunk(read_at) -> int | None:
    """Offset of the data of a RIFF/RF64/BW64 WAVE file's 'fmt ' chunk if it is
    WAVE_FORMAT_EXTENSIBLE, else None."""
    if read_at(0, 4) not in (b"RIFF", b"RF64", b"BW64") or read_at(8, 4) != b"WAVE":
        return None
    position = 12
    for _ in range(_MAX_CHUNKS):
        head = read_at(position, 8)
        if len(head) < 8:
            return None
        size = int.from_bytes(head[4:], "little")
        if head[:4] == b"fmt ":
            extensible = size >= _MASK_OFFSET + 4 and read_at(position + 8, 2) == _WAVE_EXTENSIBLE
            return position + 8 if extensible else None
        position += 8 + size + (size & 1)
    return None


_SAMPLE_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}


class WavStream:
    """A WAV stream of a known length written block by block (for stdout: nothing is seeked).

    The header is written first with the final sizes (n_frames x n_channels of ``subtype``), so
    the stream is a complete WAV file once n_frames have been written; WAVE_FORMAT_EXTENSIBLE
    with ``channel_mask`` where one is given.
    """

    def __init__(self, stream, sample_rate: int, n_channels: int, subtype: str, n_frames: int,
                 channel_mask: int | None = None):
        if subtype not in _SAMPLE_BYTES:
            subtype = "FLOAT"
        self.stream, self.sample_rate, self.subtype = stream, sample_rate, subtype
        header = bytearray(_wav_bytes(np.zeros((0, n_channels), np.float32), sample_rate, subtype, channel_mask))
        data_bytes = n_frames * n_channels * _SAMPLE_BYTES[subtype]
        data = header.rfind(b"data")
        header[data + 4 : data + 8] = min(data_bytes, 0xFFFFFFFF).to_bytes(4, "little")
        header[4:8] = min(len(header) - 8 + data_bytes, 0xFFFFFFFF).to_bytes(4, "little")
        fact = header.find(b"fact", 12, data)
        if fact >= 0:
            header[fact + 8 : fact + 12] = min(n_frames, 0xFFFFFFFF).to_bytes(4, "little")
        write_all(self.stream, bytes(header))

    def write(self, samples: np.ndarray) -> None:
        """samples: float (n, n_channels)."""
        buffer = io.BytesIO()
        sf.write(buffer, samples, self.sample_rate, format="RAW", subtype=self.subtype)
        write_all(self.stream, buffer.getvalue())

    def close(self) -> None:
        self.stream.flush()


# soxr's "VHQ" (very high quality): passband to 95% of the lower Nyquist frequency, 175 dB
# stopband; the stems are made to add back up to the input anyway (nmfsep.pipeline.back_to_rate).
RESAMPLE_QUALITY = "VHQ"
RESAMPLE_PASSBAND = 0.95  # of the lower Nyquist frequency, at RESAMPLE_QUALITY


def resample(samples: np.ndarray, from_rate: int, to_rate: int, length: int | None = None) -> np.ndarray:
    """samples (n_samples, n_channels) at from_rate, as float32 (length, n_channels) at to_rate.

    soxr (the SoX resampler, linear phase: no delay). length defaults to round(n_samples *
    to_rate / from_rate), at least 1; the result is trimmed or zero-padded to it.
    """
    import soxr

    if length is None:
        length = max(1, round(samples.shape[0] * to_rate / from_rate))
    n_channels = samples.shape[1]
    out = soxr.resample(np.ascontiguousarray(samples, dtype=np.float32), from_rate, to_rate, RESAMPLE_QUALITY)
    out = out.reshape(-1, n_channels)[:length]
    if out.shape[0] < length:
        out = np.concatenate([out, np.zeros((length - out.shape[0], n_channels), np.float32)])
    return out
