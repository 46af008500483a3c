"""External references (W&B's ``add_reference``): entries whose bytes live elsewhere.

Supported schemes: ``file://`` (a file, or a directory expanded to one entry per file) and
``http://``/``https://``. With ``checksum=True`` the content is hashed when the reference is
added (BLAKE3, like stored files) and every later fetch is checked against that digest, so a
target that changed is an error naming the URI, never silently different data. With
``checksum=False`` only the URI (and the size when known) is recorded and fetches are not
checked. ``s3://`` and ``gs://`` arrive with the object-store backend; until then they are
refused with a clear message.
"""

from __future__ import annotations

import http.client
import os
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from artfs.errors import InputError, ReferenceChanged, ReferenceMissing
from artfs.names import check_path
from artfs.store.hashing import FileDigest, FileHasher
from artfs.store.manifest import NO_DIGEST, FileEntry, Kind

_BLOCK = 1 << 20
_TIMEOUT = 30.0


def describe(
    uri: str, name: str | None = None, *, checksum: bool = True, max_objects: int | None = None
) -> list[FileEntry]:
    """Entries for ``uri`` placed at ``name`` inside the version.

    Without a name, a file or URL is placed at its base name and the files of a directory at
    the version's root (as W&B's ``add_reference`` does).
    """
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme == "file":
        return _describe_file(uri, name, checksum, max_objects)
    if scheme in ("http", "https"):
        return [_describe_http(uri, check_path(name or default_name(uri)), checksum)]
    if scheme in ("s3", "gs"):
        raise InputError(
            f"{uri}: {scheme}:// references need the object-store backend, which artfs does not "
            "have yet; download the object and add it as a file, or reference it over https://"
        )
    raise InputError(f"{uri}: unsupported reference scheme; use file://, http:// or https://")


def default_name(uri: str) -> str:
    path = urllib.parse.urlsplit(uri).path.rstrip("/")
    return os.path.basename(urllib.parse.unquote(path)) or "index"


def _local_path(uri: str) -> Path:
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InputError(f"{uri}: file:// references must be local (file:///path)")
    return Path(urllib.parse.unquote(parts.path))


def _describe_file(
    uri: str, name: str | None, checksum: bool, max_objects: int | None
) -> list[FileEntry]:
    root = _local_path(uri)
    try:
        st = root.stat()
    except FileNotFoundError:
        raise InputError(f"{uri}: no such file or directory") from None
    if stat.S_ISREG(st.st_mode):
        return [_file_entry(root, check_path(name or root.name), uri, checksum)]
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{uri}: not a regular file or directory")
    entries: list[FileEntry] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if max_objects is not None and len(entries) >= max_objects:
            raise InputError(
                f"{uri}: has more than max_objects={max_objects} files; raise max_objects"
            )
        inner = path.relative_to(root).as_posix()
        inside = f"{name}/{inner}" if name else inner
        entries.append(_file_entry(path, check_path(inside), path.as_uri(), checksum))
    return entries


def _file_entry(path: Path, name: str, uri: str, checksum: bool) -> FileEntry:
    st = path.stat()
    digest = _hash_stream(_read_file(path, uri)) if checksum else NO_DIGEST
    return FileEntry(
        name,
        Kind.FILE,
        stat.S_IMODE(st.st_mode) & 0o555 | 0o444,
        st.st_size,
        st.st_mtime_ns,
        digest,
        (),
        uri,
    )


def _describe_http(uri: str, name: str, checksum: bool) -> FileEntry:
    size = 0
    digest = NO_DIGEST
    if checksum:
        hasher = FileHasher()
        for block in _read_http(uri):
            hasher.update(block)
            size += len(block)
        digest = hasher.digest()
    else:
        with _open_http(uri, method="HEAD") as response:
            size = int(response.headers.get("Content-Length") or 0)
    return FileEntry(name, Kind.FILE, 0o444, size, time.time_ns(), digest, (), uri)


def _hash_stream(blocks: Iterator[bytes]) -> FileDigest:
    hasher = FileHasher()
    for block in blocks:
        hasher.update(block)
    return hasher.digest()


def fetch(entry: FileEntry) -> Iterator[bytes]:
    """The referenced content, block by block. A digest mismatch raises ReferenceChanged at
    the end, so callers must not expose the bytes before the iterator is exhausted (``get``
    writes to a temporary file first)."""
    assert entry.uri is not None
    scheme = urllib.parse.urlsplit(entry.uri).scheme
    blocks = (
        _read_file(_local_path(entry.uri), entry.uri) if scheme == "file" else _read_http(entry.uri)
    )
    if entry.digest == NO_DIGEST:
        yield from blocks
        return
    hasher = FileHasher()
    size = 0
    for block in blocks:
        hasher.update(block)
        size += len(block)
        yield block
    if size != entry.size or hasher.digest() != entry.digest:
        raise ReferenceChanged(f"{entry.uri}: the referenced content changed since it was logged")


def _read_file(path: Path, uri: str) -> Iterator[bytes]:
    try:
        with open(path, "rb") as f:
            while block := f.read(_BLOCK):
                yield block
    except FileNotFoundError:
        raise ReferenceMissing(f"{uri}: the referenced file is gone") from None
    except OSError as exc:
        raise InputError(f"{uri}: cannot read it ({exc.strerror})") from None


def _open_http(uri: str, method: str = "GET") -> http.client.HTTPResponse:
    request = urllib.request.Request(uri, method=method, headers={"User-Agent": "artfs"})
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=_TIMEOUT)
        return response
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise ReferenceMissing(f"{uri}: the server says {exc.code} {exc.reason}") from None
        raise InputError(f"{uri}: the server says {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"{uri}: cannot fetch it ({reason})") from None


def _read_http(uri: str) -> Iterator[bytes]:
    with _open_http(uri) as response:
        while block := response.read(_BLOCK):
            yield block


def cached_copy(entry: FileEntry, cache_dir: Path) -> Path:
    """A local, verified copy of a reference's content (for readers that need random access,
    such as the mount). Fetched once; a copy is published by rename only after it verified, so
    a crash never leaves a wrong copy under its final name."""
    assert entry.uri is not None
    key = FileHasher()
    key.update(entry.uri.encode() + b"\0" + entry.digest)
    target = cache_dir / key.digest().hex()
    if entry.digest != NO_DIGEST and target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{target.name}.", suffix=".tmp", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for block in fetch(entry):
                out.write(block)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
