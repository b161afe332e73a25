"""Many inputs: output paths, refusing to overwrite, atomic writes and one record per input.

Each input gives one record (the `--json` line): a failure is caught here, reported in its
record, and leaves none of its stems on disk; the other inputs go on.
"""

from dataclasses import dataclass
import os
import re
import string
import time

import numpy as np

from . import audio
from .errors import NmfsepError
from .pipeline import Progress, Settings, split_sources

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
PCM_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"}


@dataclass(frozen=True)
class Output:
    """Where and how stems are written."""

    folder: str = "separated"
    template: str = DEFAULT_TEMPLATE
    force: bool = False


def safe_name(name: str) -> str:
    """A file-name part with path separators, '..' and control characters neutralised."""
    name = re.sub(r"[\x00-\x1f/\\]", "_", name).strip()
    name = re.sub(r"^\.+", lambda m: "_" * len(m.group()), name)
    return name or "_"


def track_name(path: str) -> str:
    return "stdin" if path == "-" else safe_name(os.path.splitext(os.path.basename(path))[0])


def check_template(template: str) -> None:
    """Refuse templates with unknown fields or that could leave the output folder."""
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    unknown = fields - {"track", "stem", "ext"}
    if unknown:
        raise NmfsepError(f"--filename: unknown field {{{sorted(unknown)[0]}}} (use {{track}}, {{stem}}, {{ext}})")
    if "stem" not in fields:
        raise NmfsepError("--filename must contain {stem}, or every stem would write the same file")
    if os.path.isabs(template) or ".." in template.replace("\\", "/").split("/"):
        raise NmfsepError("--filename must be a relative path inside the output folder")


def stem_paths(output: Output, track: str, stem_names: list[str], ext: str) -> list[str]:
    paths = []
    root = os.path.abspath(output.folder)
    for stem in stem_names:
        relative = output.template.format(track=track, stem=safe_name(stem), ext=ext)
        path = os.path.normpath(os.path.join(output.folder, relative))
        if os.path.commonpath([root, os.path.abspath(path)]) != root:
            raise NmfsepError(f"--filename: {relative} would be written outside {output.folder}")
        paths.append(path)
    return paths


def process(path: str, settings: Settings, output: Output, progress: Progress | None = None) -> dict:
    """Separate one input and write its stems; never raises for a user error."""
    started = time.perf_counter()
    record = {"input": path, "status": "ok", "error": None, "stems": [], "sample_rate": None,
              "channels": None, "frames": None, "k": len(settings.stem_names), "iterations": None,
              "loss": None, "seconds": None}
    try:
        settings.check()
        sound = audio.read(path)
        record.update(sample_rate=sound.sample_rate, channels=sound.n_channels, frames=sound.n_samples)
        paths = stem_paths(output, track_name(path), settings.stem_names, audio.extension(sound.format))
        refuse_existing(paths, output.force)
        result = split_sources(sound.samples, sound.sample_rate, settings, progress, name=path)
        write_stems(paths, result.stems, sound)
        record.update(stems=[{"name": n, "path": p} for n, p in zip(result.names, paths)],
                      iterations=result.n_iter, loss=result.loss)
    except NmfsepError as exc:
        record.update(status="error", error=str(exc))
    except MemoryError:
        record.update(status="error", error=f"{path}: not enough memory to separate this input")
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def refuse_existing(paths: list[str], force: bool) -> None:
    if force:
        return
    existing = [p for p in paths if os.path.exists(p)]
    if existing:
        raise NmfsepError(f"{existing[0]} already exists (use --force to overwrite)")


def write_stems(paths: list[str], stems: np.ndarray, sound: audio.Audio) -> None:
    """Write every stem to a temporary file, then rename them all; on failure none is left."""
    subtype = audio.writable_subtype(sound.format, sound.subtype)
    temps = []
    try:
        for path, stem in zip(paths, stems):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            if subtype in PCM_SUBTYPES:  # integer formats wrap around instead of clipping
                stem = np.clip(stem, -1.0, 1.0)
            temps.append(audio.write_temp(path, stem, sound.sample_rate, sound.format, subtype))
        for temp, path in zip(temps, paths):
            os.replace(temp, path)
    except OSError as exc:
        for temp in temps:
            if os.path.exists(temp):
                os.unlink(temp)
        where = exc.filename or os.path.dirname(paths[0])
        raise NmfsepError(f"{where}: cannot write stems ({exc.strerror or exc})") from None
