"""Many inputs: discovery, output paths, parallel jobs, atomic writes and one record per input.

    INPUT... --find_inputs--> jobs --check_collisions--> run(jobs, n_jobs) --> records
    process(job): header -> checks (paths, existing stems, memory) -> read -> split -> write

Each input gives one record (the `--json` line): a failure is caught here, reported in its
record, and leaves none of its stems on disk; the other inputs go on. Inputs are checked from
their header before their samples are decoded, and stems are written to temporary files that
are renamed only once all of them are complete.
"""

from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
import fnmatch
import multiprocessing
import os
import re
import resource
import signal
import string
import tempfile
import time
from typing import Iterator, Protocol

import numpy as np
import soundfile as sf

from . import audio, spectrum, storage, stream as streaming, supervised
from .errors import NmfsepError
from .fitting import mean_loss
from .pipeline import Progress, Settings, memory_needed, separation_memory, split_sources
from .report import report_path

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
# Sample formats that hold values beyond full scale; every other one (PCM, u-law, A-law, ADPCM,
# MPEG) wraps around or clips them, so its stems are clamped, with a word.
UNBOUNDED_SUBTYPES = {"FLOAT", "DOUBLE", "VORBIS", "OPUS"}
# What a folder is searched for without --glob: the extensions of the formats libsndfile reads
# (soundfile.available_formats()), headerless RAW excepted. Matched case-insensitively.
AUDIO_EXTENSIONS = frozenset({
    "wav", "wave", "bwf", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "aifc", "au", "snd",
    "caf", "w64", "rf64", "voc", "ircam", "sf", "nist", "sph", "paf", "svx", "8svx", "mat", "pvf",
    "xi", "htk", "sds", "avr", "wve", "sd2",
})
# A frame longer than this is no STFT frame any more (1.5 s at 44.1 kHz; the default is at most
# 32768, at 768 kHz), and its buffers grow with it whatever the input's length.
MAX_N_FFT = 65536
# Inputs whose in-memory separation would need more than this (or more than half the machine's
# memory) are streamed: two passes over the file in blocks, in bounded memory (nmfsep.stream).
# About 2 minutes of 44.1 kHz stereo at the default STFT (pipeline.separation_memory).
STREAM_ABOVE_BYTES = 2 * 2**30
READ_BLOCK = 65536  # samples per read in the streaming path


@dataclass(frozen=True)
class Job:
    """One input: its path as given or found ('-' is stdin), its {track} name, and an error
    known before any work (a folder with no audio in it)."""

    input: str
    track: str
    error: str | None = None


@dataclass(frozen=True)
class Output:
    """Where and how stems are written.

    format: soundfile's format name, 'WAV', 'FLAC', or lossy 'MP3' or 'OGG' (None keeps the
    input's format, FLAC for a lossy input: nmfsep.audio.output_format); subtype: soundfile's
    sample format (None keeps the input's where the format holds it), the codec for a lossy format
    ('MPEG_LAYER_III', 'VORBIS', 'OPUS'); stdout_stem: write only this stem, as WAV, to the stream
    given to ``process`` instead of files; report: also write an HTML report beside the stems
    (nmfsep.report), its path under the record's "report".
    """

    folder: str = "separated"
    template: str = DEFAULT_TEMPLATE
    force: bool = False
    skip_existing: bool = False
    format: str | None = None
    subtype: str | None = None
    stdout_stem: str | None = None
    report: bool = False

    def check(self) -> "Output":
        """Refuse, before any work, a template or format/subtype pair that cannot work, or a
        format the installed libsndfile does not write (MP3 needs libsndfile 1.1)."""
        check_template(self.template)
        fmt = "WAV" if self.stdout_stem else self.format
        if fmt and fmt not in sf.available_formats():
            raise NmfsepError(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt} files "
                              "(choose another --format)")
        if fmt and self.subtype and not sf.check_format(fmt, self.subtype):
            raise NmfsepError(f"{fmt} files cannot hold {self.subtype} samples (choose another --subtype)")
        return self

    def file_format(self, header: audio.Header) -> audio.StemFormat:
        """How the stems of an input with this header are written: --format or the input's format
        (FLAC for a lossy input), --subtype or the input's where the format holds it, and the
        input's channel mask where the stems are WAV (as WAVEX) or RF64. Not checked against the
        input's rate and channels: nmfsep.audio.check_writable does that."""
        fmt = "WAV" if self.stdout_stem else (self.format or audio.output_format(header.format, header.subtype))
        subtype = self.subtype or audio.writable_subtype(fmt, header.subtype)
        if not sf.check_format(fmt, subtype):
            raise NmfsepError(f"{fmt} files cannot hold {subtype} samples "
                              f"(choose another --subtype, or --format wav)")
        mask = header.channel_mask
        if mask is not None and self.stdout_stem:  # a stream: the WAV header says WAVE_FORMAT_EXTENSIBLE
            return audio.StemFormat("WAV", subtype, mask)
        if mask is not None and fmt in ("WAV", "WAVEX", "RF64"):
            return audio.StemFormat("RF64" if fmt == "RF64" else "WAVEX", subtype, mask)
        return audio.StemFormat(fmt, subtype)


class Listener(Protocol):
    """What ``run`` reports while it works (the CLI draws progress bars from it)."""

    def started(self, job: Job) -> None: ...

    def progress(self, job: Job, done: int, total: int) -> None: ...

    def training_started(self, folder) -> None:
        """The model set's discriminative training starts, once for the batch; folder: where it
        is kept for later runs (None: nowhere, see nmfsep.supervised.train_models)."""

    def training_progress(self, done: int, total: int) -> None: ...


# --- finding inputs and naming outputs --------------------------------------------------------

def safe_name(name: str) -> str:
    """A file-name part with path separators, '..' and control characters neutralised."""
    name = re.sub(r"[\x00-\x1f/\\]", "_", name).strip()
    name = re.sub(r"^\.+", lambda m: "_" * len(m.group()), name)
    return name or "_"


def track_name(path: str) -> str:
    return "stdin" if path == "-" else safe_name(os.path.splitext(os.path.basename(path))[0])


def find_inputs(inputs: list[str], recursive: bool = False, pattern: str | None = None,
                exclude: str | None = None) -> list[Job]:
    """Jobs for files, folders, their URLs (nmfsep.storage) and '-', each input once, in the order given.

    A folder (or a folder URL: an object-store prefix) gives the files in it (in its subfolders too with ``recursive``) that match
    ``pattern`` (fnmatch on the file name, or on the path below the folder when the pattern has
    a '/'), by default those with an audio extension; hidden files and the folder ``exclude``
    (the output folder) are left out. Their track names keep the path below the folder
    (``live/set1``), so files of the same name in different subfolders do not collide. A folder
    with nothing to process gives a job that fails with the reason.
    """
    jobs: list[Job] = []
    seen: set[str] = set()

    def add(job: Job, key: str) -> None:
        if key not in seen:
            seen.add(key)
            jobs.append(job)

    for given in inputs:
        if given == "-":
            add(Job("-", "stdin"), "-")
        elif storage.is_url(given):
            for job in _url_jobs(given, recursive, pattern, exclude):
                add(job, job.input)
        elif os.path.isdir(given):
            found = list(_walk(given, recursive, pattern, exclude))
            for path, track in found:
                add(Job(path, track), os.path.realpath(path))
            if not found:
                add(Job(given, track_name(given.rstrip("/\\")) or "_",
                        error=_nothing_found(given, recursive, pattern)), "dir:" + os.path.realpath(given))
        else:
            add(Job(given, track_name(given)), os.path.realpath(given))
    return jobs


def _url_jobs(url: str, recursive: bool, pattern: str | None, exclude: str | None) -> list[Job]:
    """find_inputs for one URL: a file's job (a missing one fails when it is read), a folder's
    files, or one job that fails with the reason (nothing to split, the store cannot be asked)."""
    folder_track = track_name(url.rstrip("/")) or "_"
    try:
        if storage.kind(url) != "directory":
            return [Job(url, track_name(url))]
        found = [(path, _track(relative)) for path, relative in storage.list_files(url, recursive, exclude)
                 if _matches(relative.rsplit("/", 1)[-1], relative, pattern)]
        if found:
            return [Job(path, track) for path, track in found]
        below = not recursive and bool(storage.list_files(url, True, exclude))
        return [Job(url, folder_track, error=_nothing_in(url, pattern, below))]
    except NmfsepError as exc:
        return [Job(url, folder_track, error=str(exc))]


def _track(relative: str) -> str:
    """The {track} of a file found in a folder: its path below the folder ('/'-separated), without
    its extension, each part made safe."""
    return "/".join(safe_name(p) for p in os.path.splitext(relative)[0].split("/"))


def _walk(folder: str, recursive: bool, pattern: str | None, exclude: str | None,
          extensions: frozenset = AUDIO_EXTENSIONS) -> Iterator[tuple[str, str]]:
    excluded = os.path.realpath(exclude) if exclude else None
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if recursive and not d.startswith(".")
                         and os.path.realpath(os.path.join(root, d)) != excluded)
        for name in sorted(files):
            relative = os.path.relpath(os.path.join(root, name), folder)
            if not name.startswith(".") and _matches(name, relative, pattern, extensions):
                yield os.path.join(root, name), _track(relative.replace(os.sep, "/"))


def _matches(name: str, relative: str, pattern: str | None, extensions: frozenset = AUDIO_EXTENSIONS) -> bool:
    if pattern is None:
        return os.path.splitext(name)[1][1:].lower() in extensions
    return fnmatch.fnmatchcase(relative.replace(os.sep, "/") if "/" in pattern else name, pattern)


def _nothing_found(folder: str, recursive: bool, pattern: str | None) -> str:
    has_subfolders = any(entry.is_dir() and not entry.name.startswith(".") for entry in os.scandir(folder))
    skipped = unreadable_files(folder, recursive) if pattern is None else []
    return (_nothing_in(folder, pattern, has_subfolders and not recursive)
            + (f"; {unreadable_note(skipped)}" if skipped else ""))


def _nothing_in(folder: str, pattern: str | None, unsearched_below: bool) -> str:
    """The error of a folder (or folder URL) with nothing to split, with the -r hint where its
    subfolders were not searched."""
    what = f"no files matching {pattern!r}" if pattern else "no audio files"
    return f"{folder}: {what} in this folder" + (" (use -r to look in its subfolders)" if unsearched_below else "")


def unreadable_files(folder: str, recursive: bool, exclude: str | None = None) -> list[str]:
    """The files a folder search (as find_inputs walks it) passes over because their format is one
    that only ffmpeg reads (audio.FFMPEG_ONLY: .m4a, .wma, ...)."""
    return [path for path, _ in _walk(folder, recursive, None, exclude, frozenset(audio.FFMPEG_ONLY))]


def unreadable_note(paths: list[str]) -> str:
    """What to say of the files unreadable_files found: how many, their kinds, how to convert."""
    extensions = sorted({os.path.splitext(p)[1].lower() for p in paths})
    example = os.path.splitext(paths[0])[1].lower()
    names = ", ".join(os.path.basename(p) for p in paths[:3]) + (", ..." if len(paths) > 3 else "")
    return (f"{len(paths)} {'/'.join(extensions)} file{'s' if len(paths) != 1 else ''} that libsndfile does not "
            f"read, not split ({names}; convert them first: ffmpeg -i IN{example} OUT.flac)")


def check_template(template: str) -> None:
    """Refuse templates with unknown fields or that could leave the output folder."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise NmfsepError(f"--filename: {exc} (use {{track}}, {{stem}}, {{ext}})") from None
    unknown = fields - {"track", "stem", "ext"}
    if unknown:
        raise NmfsepError(f"--filename: unknown field {{{sorted(unknown)[0]}}} (use {{track}}, {{stem}}, {{ext}})")
    if "stem" not in fields:
        raise NmfsepError("--filename must contain {stem}, or every stem would write the same file")
    if os.path.isabs(template) or ".." in template.replace("\\", "/").split("/"):
        raise NmfsepError("--filename must be a relative path inside the output folder")
    if template.replace("\\", "/").split("/")[-1] in ("", ".", ".."):
        raise NmfsepError("--filename must end in a file name, not a folder ('/' or '/.')")


def stem_paths(output: Output, track: str, stem_names: list[str], ext: str) -> list[str]:
    """The stems' paths (URLs in a URL output folder), in stem order; NmfsepError for one that would
    leave the output folder."""
    paths = []
    root = os.path.abspath(output.folder)
    for stem in stem_names:
        relative = output.template.format(track=track, stem=safe_name(stem), ext=ext)
        if not relative.lower().endswith("." + ext.lower()):  # a template without {ext}: a file
            relative += "." + ext                             # name still says its format
        if storage.is_url(output.folder):  # check_template keeps it relative and free of '..'
            paths.append(storage.join(output.folder, relative))
            continue
        path = os.path.normpath(os.path.join(output.folder, relative))
        if os.path.commonpath([root, os.path.abspath(path)]) != root:
            raise NmfsepError(f"--filename: {relative} would be written outside {output.folder}")
        paths.append(path)
    return paths


def check_collisions(jobs: list[Job], output: Output, stem_names: list[str]) -> None:
    """Refuse, before any work, two inputs that would write the same stem file or report, and a
    stem that would overwrite an input (--force or not).

    The stems' extension comes from --format or from each file's header (unreadable files are
    left to fail on their own).
    """
    if output.stdout_stem:
        return
    owners: dict[str, Job] = {}
    inputs = {os.path.realpath(job.input) for job in jobs if job.input != "-" and not storage.is_url(job.input)}
    for job in jobs:
        ext = None if job.error else _planned_extension(job.input, output)
        if ext is None:
            continue
        paths = stem_paths(output, job.track, stem_names, ext)
        for path in paths + ([report_path(paths, job.track, output.template)] if output.report else []):
            owner = owners.setdefault(path if storage.is_url(path) else os.path.abspath(path), job)
            if owner is not job:
                raise NmfsepError(f"{owner.input} and {job.input} would both write {path} "
                                  "(rename one, or split them into different -o folders)")
            if not storage.is_url(path) and os.path.realpath(path) in inputs:
                raise NmfsepError(f"{job.input}: its stem {path} would overwrite an input (give another -o or "
                                  "--filename)")


def _planned_extension(path: str, output: Output) -> str | None:
    if output.format:
        return audio.extension(output.format, output.subtype)
    if path == "-":
        return "wav"
    if storage.is_url(path):  # not downloaded to read a header: its own extension stands in
        return os.path.splitext(path)[1][1:].lower() or None
    try:
        if not os.path.isfile(path):
            return None
        info = sf.info(path)
        return audio.extension(audio.output_format(info.format, info.subtype))
    except Exception:  # an unreadable file: it fails in process(), with its reason
        return None


def check_output_folder(folder: str) -> None:
    """Refuse an output folder (or folder URL: nmfsep.storage.check_folder) that is a file or
    cannot be created or written."""
    if storage.is_url(folder):
        storage.check_folder(folder)
    else:
        check_writable(folder)


def check_writable(folder: str, what: str = "stems") -> None:
    """The folder exists and is writable, or its nearest existing parent is a writable folder:
    else NmfsepError saying that ``what`` cannot be written there."""
    path = os.path.abspath(folder or ".")
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if not os.path.isdir(path):
        where = folder if path == os.path.abspath(folder) else f"{folder} ({path} is a file)"
        raise NmfsepError(f"{where}: not a folder, cannot write {what} there")
    if not os.access(path, os.W_OK | os.X_OK):
        raise NmfsepError(f"{folder}: cannot write {what} there (permission denied)")


# --- one input --------------------------------------------------------------------------------

# An input that failed was not split: what the split would have done is not in its record.
NOT_SPLIT = {"blend": None, "steady_floor": None, "register": None}


def new_record(job: Job, settings: Settings) -> dict:
    return {"input": job.input, "status": "ok", "error": None, "stems": [], "sample_rate": None,
            "channels": None, "frames": None, "k": len(settings.stem_names), "iterations": None,
            "loss": None, "seconds": None, "mode": None, "peak_memory": None, "format": None,
            "subtype": None, "clipped": [],
            "resampled": None, "blend": settings.blind_share or None, "steady_floor": settings.steady_floor,
            "register": None}


def process(job: Job | str, settings: Settings, output: Output, progress: Progress | None = None,
            stream=None) -> dict:
    """Separate one input and write its stems (or its stdout stem to ``stream``); return its
    record. Never raises, except for KeyboardInterrupt and SystemExit: a failure is the
    record's "error" (one line that names the input), and leaves no stem of it on disk."""
    if isinstance(job, str):
        job = Job(job, track_name(job))
    if not job.error and (storage.is_url(job.input) or (stream is None and storage.is_url(output.folder))):
        return _process_remote(job, settings, output, progress, stream)
    started = time.perf_counter()
    record = new_record(job, settings)
    name = audio.display_name(job.input)
    try:
        if job.error:
            raise NmfsepError(job.error)
        settings.check()
        with audio.open_input(job.input) as source:
            header = source.header
            record.update(sample_rate=header.sample_rate, channels=header.n_channels, frames=header.n_frames)
            stem_format = output.file_format(header)
            audio.check_writable(name, stem_format, header.sample_rate, header.n_channels)
            record.update(format=stem_format.format, subtype=stem_format.subtype)
            paths, report_file = [], None
            if stream is None:
                paths = stem_paths(output, job.track, settings.stem_names, stem_format.extension)
                if output.skip_existing and all(os.path.exists(p) for p in paths):
                    record.update(status="skipped", stems=_stem_list(settings.stem_names, paths))
                    return record
                report_file = report_path(paths, job.track, output.template) if output.report else None
                refuse_existing(paths + [report_file] * bool(report_file), output.force)
                for folder in dict.fromkeys(os.path.dirname(p) for p in paths):
                    check_writable(folder)
            record["mode"] = check_memory(name, header, settings)
            if report_file and record["mode"] == "stream":
                unblended = settings.blind_share and check_memory(name, header, replace(settings, blend=0.0)) == "memory"
                raise NmfsepError(f"{name}: too long for --report (the report embeds all its audio); split it "
                                  f"without --report{', or with --blend 0 (less memory)' if unblended else ''}")
            if record["mode"] == "stream":
                _process_streaming(source, settings, output, paths, stem_format, progress, stream, record)
            else:
                sound = source.read()
        if record["mode"] == "memory":
            _process_in_memory(sound, settings, output, paths, stem_format, progress, stream, record, name,
                               report_file)
    except NmfsepError as exc:
        message = str(exc) if str(exc).startswith(name + ": ") else f"{name}: {exc}"
        record.update(status="error", error=_one_line(message))
    except MemoryError:
        record.update(status="error", error=f"{name}: not enough memory to separate this input")
    except Exception as exc:  # a bug, reported for this input without stopping the others
        record.update(status="error", error=_one_line(f"{name}: internal error: {type(exc).__name__}: {exc}"))
    finally:
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["peak_memory"] = peak_memory()
        if record["status"] == "error":
            record.update(NOT_SPLIT)
    return record


def _process_remote(job: Job, settings: Settings, output: Output, progress: Progress | None, stream) -> dict:
    """``process`` for an input or output folder given as a URL (nmfsep.storage): the input is
    downloaded to a local scratch folder and split there; the stems of a URL output are written
    there too, then uploaded together (all or none). Existing stems are looked for before any work
    (--skip-existing, --force). The record names the URLs."""
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="nmfsep-") as scratch:
            record = _split_remote(job, settings, output, progress, stream, scratch)
    except NmfsepError as exc:
        record = error_record(job, settings, str(exc) if str(exc).startswith(job.input) else f"{job.input}: {exc}")
    except Exception as exc:  # a bug, reported for this input without stopping the others
        record = error_record(job, settings, f"{job.input}: internal error: {type(exc).__name__}: {exc}")
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def _split_remote(job: Job, settings: Settings, output: Output, progress: Progress | None, stream,
                  scratch: str) -> dict:
    local = storage.download(job.input, scratch) if storage.is_url(job.input) else job.input
    remote = stream is None and storage.is_url(output.folder)
    staged = replace(output, folder=os.path.join(scratch, "stems"), force=False, skip_existing=False)
    ext = _planned_extension(local, output) if remote else None
    if ext:  # None: an input that cannot be read, which process() reports
        paths = stem_paths(output, job.track, settings.stem_names, ext)
        if output.skip_existing and all(storage.exists(p) for p in paths):
            record = new_record(job, settings)
            record.update(status="skipped", stems=_stem_list(settings.stem_names, paths))
            return record
        refuse_existing(paths, output.force, storage.exists)
    record = process(Job(local, job.track), settings, staged if remote else output, progress, stream)
    record["input"] = job.input
    if record["error"]:
        record["error"] = record["error"].replace(local, job.input)
    elif remote and record["status"] == "ok":
        def uploaded(path):
            return storage.join(output.folder, os.path.relpath(path, staged.folder).replace(os.sep, "/"))

        files = [s["path"] for s in record["stems"]] + ([record["report"]] if record.get("report") else [])
        storage.put_all([(path, uploaded(path)) for path in files])
        move_paths(record, uploaded)
    return record


def move_paths(record: dict, where) -> None:
    """Give the record's stem paths and report path as ``where(path)`` says (an upload's URL, a
    cluster worker's path as the user typed it)."""
    record["stems"] = [{**stem, "path": where(stem["path"])} for stem in record["stems"]]
    if record.get("report"):
        record["report"] = where(record["report"])


def peak_memory() -> int:
    """Peak resident memory of this process so far, in bytes (ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _process_in_memory(sound, settings, output, paths, stem_format, progress, stream, record, name,
                       report_file=None):
    """The whole input at once (nmfsep.pipeline.split_sources); stems written together, then
    the report (if asked) beside them."""
    started = time.perf_counter()
    # (float samples far outside +-1 are split at a peak near 1 and their stems scaled back: split_sources)
    result = split_sources(sound.samples, sound.sample_rate, settings, progress, name=name)
    stems = result.stems
    if not np.isfinite(stems).all():
        peak = float(np.abs(sound.samples).max())
        raise NmfsepError(f"{name}: the separation overflowed (peak sample {peak:.3g}; is it really audio?)")
    if stream is None:
        clamp = Clamp(result.names, stem_format.subtype)
        created = write_stems(paths, stems, sound.sample_rate, stem_format, clamp, output.force)
        record.update(stems=_stem_list(result.names, paths))
        if report_file:
            from .report import write as write_report

            try:
                record["report"] = write_report(report_file, name, sound, result, settings,
                                                time.perf_counter() - started, paths, stems, output.force)
            except BaseException as exc:  # no report, no stems: the input failed
                _abandon(exc, list(paths), paths, created)
    else:
        stem = stems[result.names.index(output.stdout_stem)]
        clamp = Clamp([output.stdout_stem], stem_format.subtype)
        _write_to_stream(stream, clamp(0, stem), sound.sample_rate, stem_format)
        record.update(stems=[{"name": output.stdout_stem, "path": "-"}])
    record.update(iterations=result.iterations_run,
                  loss=mean_loss(result.loss, result.bases, result.activations), clipped=clamp.report())
    if result.resampled_to:
        record["resampled"] = {"from": sound.sample_rate, "to": result.resampled_to}
    record["register"] = result.register
    record["blend"] = result.blend or None  # (0 where the blind split clashed with the models': blend.clash)


def _process_streaming(source: audio.Source, settings: Settings, output: Output, paths: list[str],
                       stem_format: audio.StemFormat, progress: Progress | None, stream, record: dict) -> None:
    """Separate an input too long for memory in two passes (nmfsep.stream), writing the stems
    block by block: to temporary files renamed together at the end, or the stdout stem as a
    WAV stream sent while the second pass runs."""
    header, name = source.header, source.name
    names = settings.stem_names

    def check(stems):
        if not np.isfinite(stems).all():
            raise NmfsepError(f"{name}: the separation overflowed (is it really audio?)")
        return stems

    def separate(write):
        return streaming.split_stream(source, header.n_channels, header.sample_rate, header.n_frames,
                                      settings, write, progress, name)

    if stream is not None:
        index = names.index(output.stdout_stem)
        clamp = Clamp([output.stdout_stem], stem_format.subtype)
        for _ in source.blocks(READ_BLOCK):  # a stream cannot be taken back: check the whole input
            pass                             # (truncation, NaN) before sending anything
        writer = []

        def write(stems):
            if not writer:
                writer.append(audio.WavStream(stream, header.sample_rate, header.n_channels,
                                              stem_format.subtype, header.n_frames, stem_format.channel_mask))
            writer[0].write(clamp(0, check(stems)[index]))

        try:
            result = separate(write)
            if writer:
                writer[0].close()
        except OSError as exc:
            raise _stdout_error(exc) from None
        record.update(stems=[{"name": output.stdout_stem, "path": "-"}])
    else:
        temps, handles, renamed, created = [], [], [], []
        clamp = Clamp(names, stem_format.subtype)
        try:
            created = make_folders(paths)
            for path in paths:
                temps.append(audio.new_temp(path, stem_format))
                handles.append(audio.open_output(temps[-1], header.sample_rate, header.n_channels, stem_format))

            def write(stems):
                for i, (handle, stem) in enumerate(zip(handles, check(stems))):
                    handle.write(clamp(i, stem))

            result = separate(write)
            for handle in handles:
                handle.close()
            for temp in temps:
                audio.finish_temp(temp, stem_format)
            for temp, path in zip(temps, paths):
                audio.commit_temp(temp, path, output.force)
                renamed.append(path)
        except BaseException as exc:
            for handle in handles:
                handle.close()
            _abandon(exc, temps[len(renamed):] + renamed, paths, created)
        record.update(stems=_stem_list(names, paths))
    record.update(iterations=result.iterations_run, loss=mean_loss(result.fit.loss, result.fit.bases,
                                                                  result.fit.activations),
                  clipped=clamp.report(), blend=result.blend or None)


def _stem_list(names: list[str], paths: list[str]) -> list[dict]:
    return [{"name": n, "path": p} for n, p in zip(names, paths)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_record(job: Job, settings: Settings, message: str) -> dict:
    record = new_record(job, settings)
    record.update(status="error", error=_one_line(message), seconds=0.0, **NOT_SPLIT)
    return record


def check_options(settings: Settings, jobs: list[Job] = ()) -> None:
    """Check, once before any input, the STFT sizes given on the command line; NmfsepError whose
    message starts with the option at fault ("--n-fft: ...", "--hop: ..."). A hop given without
    n_fft is checked against the default n_fft of each input's sample rate, from the headers that
    can be read (stdin and unreadable files are checked when they are read)."""
    if settings.models:  # the models' STFT decides; Settings.stft_params refuses another
        return
    if settings.n_fft is not None:
        try:
            spectrum.StftParams(settings.n_fft, settings.n_fft // 2).check()
        except NmfsepError as exc:
            raise NmfsepError(f"--n-fft: {exc}") from None
        if settings.n_fft > MAX_N_FFT:
            raise NmfsepError(f"--n-fft: n_fft {settings.n_fft} is too large (at most {MAX_N_FFT} samples)")
        if settings.hop_length is not None and settings.hop_length > settings.n_fft // 2:
            raise NmfsepError(f"--hop: hop must be between 1 and n_fft/2 = {settings.n_fft // 2} samples, "
                              f"got {settings.hop_length}")
    elif settings.hop_length is not None:
        for job in jobs:
            try:
                rate = sf.info(job.input).samplerate if job.input != "-" and not job.error else None
            except Exception:  # an unreadable file fails in process(), with its reason
                rate = None
            n_fft = rate and spectrum.default_params(rate).n_fft
            if n_fft and settings.hop_length > n_fft // 2:
                raise NmfsepError(f"--hop: hop must be at most n_fft/2 = {n_fft // 2} samples for {job.input} "
                                  f"(n_fft {n_fft} at {rate} Hz), got {settings.hop_length}; give a smaller "
                                  "--hop or a larger --n-fft")


def unsearched_subfolders(folder: str, pattern: str | None = None, exclude: str | None = None) -> int:
    """How many subfolders of ``folder`` (not hidden, not the output folder ``exclude``) hold,
    at any depth, a file that ``find_inputs`` with ``recursive`` would split: what a search
    without it leaves out."""
    excluded = os.path.realpath(exclude) if exclude else None
    count = 0
    for entry in os.scandir(folder):
        if (entry.is_dir() and not entry.name.startswith(".")
                and os.path.realpath(entry.path) != excluded
                and next(_walk(entry.path, True, pattern, exclude), None) is not None):
            count += 1
    return count


def check_memory(name: str, header: audio.Header, settings: Settings) -> str:
    """How an input is separated, from its header: "memory" (the whole input at once) when its
    separation needs at most STREAM_ABOVE_BYTES and half the machine's memory, else "stream"
    (nmfsep.stream, memory bounded by its learning subsample). Refuse an input that fits
    neither. An input resampled to the models' rate (see nmfsep.pipeline.split_sources) is not
    streamed (nmfsep.pipeline.separation_memory counts its resampling): it is separated in memory
    above STREAM_ABOVE_BYTES too, while that takes at most half the machine's memory."""
    rate = settings.separation_rate(header.sample_rate)
    params = settings.stft_params(rate, name)
    if params.n_fft > MAX_N_FFT:
        raise NmfsepError(f"n_fft {params.n_fft} is too large (at most {MAX_N_FFT} samples)")
    limit = audio.memory_limit()
    need = separation_memory(settings, header.n_frames, header.n_channels, header.sample_rate, name)
    if need <= STREAM_ABOVE_BYTES and (limit is None or need <= limit // 2):
        return "memory"
    if rate != header.sample_rate:   # it cannot be streamed: in memory while it takes at most half of it
        if limit is not None and need <= limit // 2:
            return "memory"
        raise NmfsepError(f"{name}: too long to separate in memory, and "
                          f"{streaming.cannot_resample(header.sample_rate, settings)}")
    learned = min(header.n_frames, int(streaming.LEARN_SECONDS * header.sample_rate))
    need = memory_needed(learned, header.n_channels, params, len(settings.stem_names))
    if limit is not None and need > limit:
        minutes = header.n_frames / header.sample_rate / 60
        raise NmfsepError(f"{name}: too long to separate in memory ({minutes:.0f} min x {header.n_channels} "
                          f"channels needs about {need / 2**30:.0f} GiB, this machine has {limit / 2**30:.0f} GiB); "
                          "cut it into shorter files")
    return "stream"


def refuse_existing(paths: list[str], force: bool, exists=os.path.exists) -> None:
    """NmfsepError for the first of ``paths`` that ``exists`` (storage.exists for URLs), unless ``force``."""
    if force:
        return
    existing = [p for p in paths if exists(p)]
    if existing:
        raise NmfsepError(f"{existing[0]} already exists (use --force to overwrite)")


class Clamp:
    """Clamps the samples of stems whose sample format is bounded (integer PCM, u-law, A-law,
    ADPCM, MPEG: they would wrap around or clip) to full scale (+-1) and counts, per stem, the
    samples beyond it and the peak, so that no stem is clipped without a word. Float, Vorbis and
    Opus stems are written as they are.

    ``clamp(i, block)`` returns stem i's block (samples, n_channels) ready to write; blocks of one
    stem may come in any number of calls (the streaming path). ``report()`` gives the record's
    "clipped" list: [{"stem", "samples", "peak"}] for the stems that were clipped, in stem order,
    "samples" counting sample values over all channels, "peak" the largest absolute value.
    """

    def __init__(self, names: list[str], subtype: str):
        self.names, self.clamps = names, subtype not in UNBOUNDED_SUBTYPES
        self.samples, self.peaks = [0] * len(names), [0.0] * len(names)

    def __call__(self, index: int, stem: np.ndarray) -> np.ndarray:
        if not self.clamps or stem.size == 0:
            return stem
        peak = float(max(stem.max(), -stem.min()))
        if peak <= 1.0:
            return stem
        self.samples[index] += int(np.count_nonzero(np.abs(stem) > 1.0))
        self.peaks[index] = max(self.peaks[index], peak)
        return np.clip(stem, -1.0, 1.0)

    def report(self) -> list[dict]:
        return [{"stem": name, "samples": count, "peak": peak}
                for name, count, peak in zip(self.names, self.samples, self.peaks) if count]


def write_stems(paths: list[str], stems: np.ndarray, sample_rate: int, stem_format: audio.StemFormat,
                clamp: Clamp, overwrite: bool = False) -> list[str]:
    """Write every stem (samples, n_channels) to a temporary file beside it, then rename them all
    (audio.commit_temp: without overwrite, a file that appeared at a stem's path since it was
    checked is not replaced, and the input fails); ``clamp`` (one for these stems) clamps and
    counts what an integer format cannot hold.

    On any failure, Ctrl-C included, the temporary files and the stems already renamed are
    removed: an input's stems appear together or not at all. Returns the folders it created
    (``make_folders``).
    """
    temps, renamed, created = [], [], []
    try:
        created = make_folders(paths)
        for i, (path, stem) in enumerate(zip(paths, stems)):
            temps.append(audio.write_temp(path, clamp(i, stem), sample_rate, stem_format))
        for temp, path in zip(temps, paths):
            audio.commit_temp(temp, path, overwrite)
            renamed.append(path)
    except BaseException as exc:
        _abandon(exc, temps[len(renamed):] + renamed, paths, created)
    return created


def make_folders(paths: list[str]) -> list[str]:
    """Create the folders of ``paths``; return those that did not exist, deepest first (so that
    a failed input can remove what it made, and only that)."""
    created = []
    for folder in dict.fromkeys(os.path.abspath(os.path.dirname(p) or ".") for p in paths):
        missing, parent = [], folder
        while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
            missing.append(parent)
            parent = os.path.dirname(parent)
        os.makedirs(folder, exist_ok=True)
        created.extend(missing)
    return sorted(dict.fromkeys(created), key=lambda f: f.count(os.sep), reverse=True)


def _abandon(exc: BaseException, written: list[str], paths: list[str], created: list[str] = ()):
    """Remove what a failed input wrote (temp files, stems already renamed, and the folders it
    created that are empty now), then re-raise: an OSError as one NmfsepError line, anything
    else (Ctrl-C included) as it was."""
    if isinstance(exc, sf.LibsndfileError):  # before the clean-up frees the space it took
        reason = _write_failure(os.path.dirname(paths[0]) or ".", exc)
    for leftover in written:
        try:
            os.unlink(leftover)
        except OSError:
            pass
    for folder in created:  # deepest first; a folder another input has written into stays
        try:
            os.rmdir(folder)
        except OSError:
            pass
    if isinstance(exc, OSError):
        where = exc.filename2 or exc.filename or os.path.dirname(paths[0])  # a rename's target, else the file
        if os.path.basename(os.fspath(where)).startswith(".nmfsep-"):  # our temp file: name its folder
            where = os.path.dirname(os.fspath(where)) or "."
        raise NmfsepError(f"{where}: cannot write stems ({exc.strerror or exc})") from None
    if isinstance(exc, sf.LibsndfileError):  # libsndfile says "System error." for a full disk
        raise NmfsepError(f"{os.path.dirname(paths[0]) or '.'}: cannot write stems ({reason})") from None
    raise exc


def _write_failure(folder: str, exc: Exception) -> str:
    """Why libsndfile could not write into folder: a full disk named as such, else its words."""
    try:
        stats = os.statvfs(folder)
        if stats.f_bavail * stats.f_frsize < 2**20:
            return "no space left on device"
    except OSError:
        pass
    return str(exc).strip().rstrip(".") or type(exc).__name__


def _write_to_stream(stream, samples: np.ndarray, sample_rate: int, stem_format: audio.StemFormat) -> None:
    try:
        audio.write_stream(stream, samples, sample_rate, stem_format.subtype, stem_format.channel_mask)
    except OSError as exc:
        raise _stdout_error(exc) from None


def _stdout_error(exc: OSError) -> NmfsepError:
    """A failed write of the stdout stem as one line: a reader that left, or any other cause."""
    if isinstance(exc, BrokenPipeError):
        return NmfsepError("stdout was closed before the stem was written (broken pipe)")
    return NmfsepError(f"cannot write the stem to stdout ({exc.strerror or exc})")


# --- many inputs ------------------------------------------------------------------------------

def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(jobs: list[Job], settings: Settings, output: Output, n_jobs: int = 1,
        listener: Listener | None = None, stream=None) -> Iterator[dict]:
    """Process every job, yielding each record as its input is done.

    n_jobs > 1 runs that many worker processes (at most one per CPU and per input), each with
    its BLAS and solver threads limited to cpus // n_jobs, and yields records in the order the
    inputs finish. stdin is always read here, in this process, first. The models' training,
    where they need one, is made here first, once (``train_models``).
    """
    settings = train_models(jobs, settings, listener)
    local = [j for j in jobs if j.input == "-"]
    pooled = [j for j in jobs if j.input != "-"]
    n_jobs = max(1, min(n_jobs, available_cpus(), len(pooled)))
    if n_jobs == 1:
        local, pooled = jobs, []
    for job in local:
        if listener:
            listener.started(job)
        report = None if listener is None else (lambda done, total, job=job: listener.progress(job, done, total))
        yield process(job, settings, output, report, stream)
    if pooled:
        yield from _run_pool(pooled, settings, output, n_jobs, listener)


def train_models(jobs: list[Job], settings: Settings, listener: Listener | None = None) -> Settings:
    """The settings with their model set's discriminative training made (or loaded from the
    cache), once, before any input is split (nmfsep.supervised.train_models): every input and
    every worker gets it with the settings, even where the cache folder cannot be written.
    Not made when no input can use it (every input failed already, or does not exist); a shipped
    training of built-ins is handed over as it is, announced to no listener."""
    if not supervised.training_needed(settings):
        return supervised.train_models(settings)  # a shipped training, if any: nothing to make or announce
    if not any(not job.error and (job.input == "-" or storage.is_url(job.input) or os.path.exists(job.input))
               for job in jobs):
        return settings
    if listener is None:
        return supervised.train_models(settings)
    return supervised.train_models(settings, listener.training_progress, listener.training_started)


def _run_pool(jobs: list[Job], settings: Settings, output: Output, n_jobs: int,
              listener: Listener | None) -> Iterator[dict]:
    """Worker processes (spawned: no inherited threads or locks). A worker that dies (killed, or
    out of memory) fails the input it was working on; inputs it had not started are retried
    once in a fresh pool."""
    context = multiprocessing.get_context("spawn")
    threads = max(1, available_cpus() // n_jobs)
    todo, retried = list(enumerate(jobs)), set()
    while todo:
        started: set[int] = set()
        # A SimpleQueue writes from the calling thread (no feeder thread to hang a dying worker),
        # and a fresh one per pool leaves behind whatever a killed worker held.
        events = context.SimpleQueue()
        pool = ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_init_worker,
                                   initargs=(events, threads))
        try:
            futures = {pool.submit(_work, index, job, settings, output, listener is not None): (index, job)
                       for index, job in todo}
            todo = []
            while futures:
                done, _ = wait(futures, timeout=0.1, return_when=FIRST_COMPLETED)
                _drain(events, jobs, listener, started)
                for future in done:
                    index, job = futures.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        if index in started or index in retried:
                            yield error_record(job, settings, f"{job.input}: the worker process died while "
                                               "separating it (out of memory, or killed)")
                        else:
                            retried.add(index)
                            todo.append((index, job))
                    except Exception as exc:  # e.g. settings that cannot be sent to a worker
                        yield error_record(job, settings, f"{job.input}: internal error: {type(exc).__name__}: {exc}")
        except BaseException:  # Ctrl-C, or the caller stopped early: stop the workers, cleanly
            _stop(pool)
            raise
        pool.shutdown(wait=True)
        events.close()


def _drain(events, jobs: list[Job], listener: Listener | None, started: set[int]) -> None:
    while not events.empty():  # messages are small: written whole, so a waiting one is complete
        kind, index, *rest = events.get()
        if kind == "start":
            started.add(index)
            if listener:
                listener.started(jobs[index])
        elif listener:
            listener.progress(jobs[index], *rest)


def _stop(pool: ProcessPoolExecutor) -> None:
    """SIGTERM every worker (a busy one removes its temporary files, see _init_worker), then
    wait for them; the pending inputs are cancelled."""
    for process_ in list((getattr(pool, "_processes", None) or {}).values()):
        if process_.is_alive():
            process_.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


# Worker-process state: the event queue, and whether an input is being processed.
_events = None
_busy = False


def _init_worker(events, threads: int) -> None:
    """Limit BLAS and the solvers to ``threads`` threads (nmf takes its thread count from the BLAS
    limit), and make SIGINT/SIGTERM interrupt a running input (so that it cleans up) or end an
    idle worker quietly."""
    global _events
    _events = events
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[variable] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # as in the parent (nohup, `&`)
            signal.signal(signum, _on_signal)


def _on_signal(signum, frame):
    if _busy:
        raise KeyboardInterrupt
    os._exit(128 + signum)


def _work(index: int, job: Job, settings: Settings, output: Output, report: bool) -> dict:
    global _busy
    _busy = True
    try:
        _events.put(("start", index))
        progress = (lambda done, total: _events.put(("progress", index, done, total))) if report else None
        return process(job, settings, output, progress)
    except KeyboardInterrupt:  # SIGINT/SIGTERM: the input's temporary files are removed by now
        os._exit(130)
    finally:
        _busy = False
