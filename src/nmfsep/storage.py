"""Inputs and outputs as fsspec URLs (s3://, gs://, file://, memory://, any protocol fsspec knows).

Local paths never come here: they keep going through os and soundfile. A URL input is downloaded
to a local scratch folder and split there; the stems of a URL output are written locally, then
uploaded together (``put_all``): a stem appears whole or not at all, and a failed input leaves
none of its stems. fsspec and the protocol's package (s3fs for s3://) come with the dask extra
and are imported only when a URL is used. Credentials come from the environment or fsspec's own
configuration (for S3: AWS_ACCESS_KEY_ID, ~/.aws, AWS_ENDPOINT_URL for another server), never from
the URL, which ends up in logs and JSON.
"""

import os
import posixpath
import re
import shutil
import urllib.parse
import uuid

from .errors import NmfsepError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Stores where an upload becomes visible only once complete (an object PUT or a multipart upload's
# completion); on any other filesystem a stem is uploaded under a temporary name and moved.
WHOLE_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"})
INSTALL_HINT = "pip install 'nmfsep[dask]'"


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL with a protocol (``s3://bucket/key``), not a local path or '-'."""
    return bool(_SCHEME.match(path))


def protocol(path: str) -> str | None:
    """The URL's protocol in lower case ('s3'), or None for a local path."""
    match = _SCHEME.match(path)
    return match.group(1).lower() if match else None


def in_process_only(path: str) -> bool:
    """A memory:// URL: its files live in this process, so no other process (a -j worker, a Dask
    worker) sees them."""
    return protocol(path) == "memory"


def join(folder: str, relative: str) -> str:
    """``folder`` URL / ``relative`` (a '/'-separated path inside it, already checked to stay inside)."""
    return folder.rstrip("/") + "/" + posixpath.normpath(relative.replace("\\", "/")).lstrip("/")


def filesystem(url: str):
    """(fsspec filesystem, path inside it) for a URL; NmfsepError naming the URL when fsspec, or
    the protocol's package, is not installed, the protocol is unknown, or the URL holds credentials."""
    check_no_credentials(url)
    try:
        import fsspec
    except ImportError:
        raise NmfsepError(f"{url}: {protocol(url)}:// URLs need fsspec: {INSTALL_HINT}") from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # fsspec: "Install s3fs to access S3", "Please install gcsfs ..."
        hint = f" ({INSTALL_HINT})" if protocol(url) in ("s3", "s3a") else ""
        raise NmfsepError(f"{url}: {_first_line(exc)}{hint}") from None
    except ValueError as exc:
        raise NmfsepError(f"{url}: {_first_line(exc)}") from None


def check_no_credentials(path: str) -> None:
    """Refuse a URL with a user name or password in it (``s3://KEY:SECRET@bucket``): it would end
    up in logs and JSON. The NmfsepError shows the URL without them."""
    if not is_url(path):
        return
    parts = urllib.parse.urlsplit(path)
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        hidden = urllib.parse.urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))
        raise NmfsepError(f"{hidden}: a URL must not hold credentials (they would end up in logs and JSON); "
                          "give them in the environment or fsspec's configuration")


def kind(url: str) -> str | None:
    """'file', 'directory' or None (nothing there) for a URL; NmfsepError when it cannot be asked."""
    fs, path = filesystem(url)
    try:
        fs.invalidate_cache(path)
        info = fs.info(path)
    except FileNotFoundError:
        return None
    except Exception as exc:  # credentials, permissions, a server that does not answer
        raise error(url, exc) from None
    return "directory" if info.get("type") == "directory" else "file"


def list_files(url: str, recursive: bool, exclude: str | None = None) -> list[tuple[str, str]]:
    """The files in the folder ``url`` (in its subfolders too with ``recursive``) as (URL, path
    below the folder with '/'), sorted, leaving out hidden files and folders and the folder
    ``exclude`` (the output folder). NmfsepError when it cannot be listed."""
    fs, root = filesystem(url)
    root = root.rstrip("/")
    prefix = url.rstrip("/") + "/"
    excluded = exclude.rstrip("/") + "/" if exclude and is_url(exclude) else None
    try:
        fs.invalidate_cache(root)
        found = fs.find(root, maxdepth=None if recursive else 1)
    except Exception as exc:
        raise error(url, exc) from None
    files = []
    for path in sorted(found):
        relative = path[len(root):].lstrip("/") if path.startswith(root) else posixpath.basename(path)
        full = prefix + relative
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        if excluded and full.startswith(excluded):
            continue
        files.append((full, relative))
    return files


def exists(url: str) -> bool:
    return kind(url) is not None


def check_folder(url: str) -> None:
    """Refuse, before any work, an output folder URL that cannot be written: an unknown protocol, a
    missing package, no credentials, a bucket (or root) that does not exist, a file in its place."""
    fs, path = filesystem(url)
    root = _bucket(url, path)
    try:
        if root:
            try:
                fs.info(root)  # not fs.exists: it says False for a bucket it may not look into
            except FileNotFoundError:
                raise NmfsepError(f"{url}: the bucket {root} does not exist (create it first)") from None
        fs.invalidate_cache(path)
        if fs.isfile(path):
            raise NmfsepError(f"{url}: is a file, not a folder: cannot write stems there")
    except NmfsepError:
        raise
    except Exception as exc:
        raise error(url, exc) from None


def download(url: str, folder: str) -> str:
    """Copy the file at ``url`` into the local ``folder`` as input.EXT (its own extension); return
    the local path.
    NmfsepError when it is missing, a folder, or larger than the free space in ``folder``."""
    fs, path = filesystem(url)
    try:
        fs.invalidate_cache(path)
        info = fs.info(path)
        if info.get("type") == "directory":
            raise NmfsepError(f"{url}: is a folder (give it as an input folder, with -r for its subfolders)")
        size, free = info.get("size") or 0, shutil.disk_usage(folder).free
        if size > free:
            raise NmfsepError(f"{url}: too large to download here ({size / 2**30:.1f} GiB, {free / 2**30:.1f} GiB "
                              f"free in {folder}; set TMPDIR to a larger disk)")
        # Not the object's own name: a key's last part may be longer than a local file name can be.
        local = os.path.join(folder, "input" + posixpath.splitext(path.rstrip("/"))[1][:16])
        fs.get_file(path, local)
    except NmfsepError:
        raise
    except FileNotFoundError:
        raise NmfsepError(f"{url}: {_missing(fs, path, url)}") from None
    except Exception as exc:
        raise error(url, exc) from None
    return local


def _missing(fs, path: str, url: str) -> str:
    """Why nothing is at ``path``: its bucket does not exist, or no file there."""
    bucket = _bucket(url, path)
    try:
        if bucket and bucket != path:
            fs.info(bucket)
    except FileNotFoundError:
        return f"the bucket {bucket} does not exist"
    except Exception:  # asking about the bucket is not allowed: say what is known
        pass
    return "no such file"


def _bucket(url: str, path: str) -> str | None:
    """The bucket (container) of ``path`` in an object store, None elsewhere (memory:// has none)."""
    return path.split("/", 1)[0] if protocol(url) in WHOLE_OBJECT_STORES - {"memory"} else None


def put_all(pairs: list[tuple[str, str]]) -> None:
    """Upload each (local file, URL) pair; on any failure (Ctrl-C included) remove the ones already
    uploaded and raise (NmfsepError naming the URL, or the interrupt): all appear, or none.

    On stores where an upload is visible only once complete (WHOLE_OBJECT_STORES) a file is put in
    place directly; elsewhere under a hidden temporary name, then moved.
    """
    done = []
    try:
        for local, url in pairs:
            fs, path = filesystem(url)
            if protocol(url) in WHOLE_OBJECT_STORES:
                fs.put_file(local, path)
            else:
                fs.makedirs(posixpath.dirname(path), exist_ok=True)
                temp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{uuid.uuid4().hex}.part")
                fs.put_file(local, temp)
                try:
                    fs.mv(temp, path)
                except BaseException:
                    fs.rm(temp)
                    raise
            done.append(url)
    except BaseException as exc:
        for url in done:
            remove(url)
        if isinstance(exc, Exception) and not isinstance(exc, NmfsepError):
            raise error(pairs[len(done)][1], exc, "cannot write it") from None
        raise


def remove(url: str) -> None:
    """Remove the file at ``url`` if it can be; never raises (used in clean-ups)."""
    try:
        fs, path = filesystem(url)
        fs.rm(path)
    except Exception:
        pass


def error(url: str, exc: BaseException, doing: str = "") -> NmfsepError:
    """One line for what fsspec (or the store's client) raised about ``url``."""
    what = f"{doing} " if doing else ""
    name = type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        reason = "no such file or bucket"
    elif isinstance(exc, PermissionError):
        reason = "permission denied"
    elif name in ("NoCredentialsError", "PartialCredentialsError"):
        reason = ("no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use ~/.aws/credentials; "
                  "AWS_ENDPOINT_URL for another S3 server)")
    elif isinstance(exc, NmfsepError):
        return exc
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        reason = _first_line(exc) or name
    return NmfsepError(f"{url}: {what}({reason})" if what else f"{url}: {reason}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__
