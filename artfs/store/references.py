"""External references (W&B's ``add_reference``): entries whose bytes live elsewhere.

Supported schemes: ``file://`` (a file, or a directory expanded to one entry per file),
``http://``/``https://`` and ``s3://`` (an object, or a prefix expanded to one entry per object).
With ``checksum=True`` the content is hashed when the reference is added (BLAKE3, like stored
files) and every later fetch is checked against that digest, so a target that changed is an
error naming the URI, never silently different data. With ``checksum=False`` only the URI (and
the size when known) is recorded and fetches are not checked, except for ``s3://``.

An ``s3://`` entry also records the object's ETag, in the URI's fragment
(``s3://bucket/key#etag=...``), whatever ``checksum`` says (W&B's reference tracking). Every
fetch is a GET with ``If-Match`` on that ETag, so an object replaced since is refused by the
server itself (ReferenceChanged) and one deleted is ReferenceMissing. The endpoint and
credentials come from the environment, as for remotes (``AWS_ENDPOINT_URL``...). ``gs://`` is
refused with a clear message.
"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from artfs.errors import InputError, ReferenceChanged, ReferenceMissing
from artfs.names import check_stored_path
from artfs.store.hashing import FileDigest, FileHasher
from artfs.store.manifest import NO_DIGEST, FileEntry, Kind

if TYPE_CHECKING:  # obstore loads only when an s3:// URI is used, the HTTP client for http(s)
    import http.client

    from artfs.objectstore import ObjectInfo, S3ObjectStore

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
        return [_describe_http(uri, check_stored_path(name or default_name(uri)), checksum)]
    if scheme == "s3":
        return _describe_s3(uri, name, checksum, max_objects)
    if scheme == "gs":
        raise InputError(
            f"{uri}: gs:// references are not supported; reference the object over https:// "
            "or copy it to an S3-compatible bucket"
        )
    raise InputError(
        f"{uri}: unsupported reference scheme; use file://, http://, https:// or s3://"
    )


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
        raise InputError(f"{uri}: no such file or directory: check the path") from None
    if stat.S_ISREG(st.st_mode):
        return [_file_entry(root, check_stored_path(name or root.name), uri, checksum)]
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{uri}: not a regular file or directory")
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    _check_count(uri, len(paths), max_objects, "files")
    return [
        _file_entry(path, _inside(name, path.relative_to(root).as_posix()), path.as_uri(), checksum)
        for path in paths
    ]


def _check_count(uri: str, count: int, max_objects: int | None, what: str) -> None:
    if max_objects is not None and count > max_objects:
        raise InputError(
            f"{uri}: has more than max_objects={max_objects} {what}; raise max_objects"
        )


def _inside(name: str | None, inner: str) -> str:
    """Where a file of an expanded directory or prefix goes: below ``name``, else at the root."""
    return check_stored_path(f"{name}/{inner}" if name else inner)


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
        digest, size = _hash_sized(_read_http(uri))
    else:
        with _open_http(uri, method="HEAD") as response:
            size = int(response.headers.get("Content-Length") or 0)
    return FileEntry(name, Kind.FILE, 0o444, size, time.time_ns(), digest, (), uri)


# --- s3:// -----------------------------------------------------------------------------------

_ETAG_MARK = "#etag="


def _s3_location(uri: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(uri.partition(_ETAG_MARK)[0])
    if not parts.netloc or parts.query:
        raise InputError(f"{uri}: give an s3:// reference as s3://bucket/key or s3://bucket/prefix")
    return parts.netloc, parts.path.lstrip("/")


# What a client is made from: a fetch under other settings gets another client.
_CLIENT_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "ARTFS_ALLOW_HTTP",
    "ARTFS_REMOTE_TIMEOUT",
)


def _bucket(bucket: str) -> S3ObjectStore:
    """A read client for ``bucket``, shared by the fetches from it (the client is thread-safe
    and keeps its connections: a prefix of many small objects is not a TLS handshake each)."""
    return _client(bucket, tuple(os.environ.get(name) for name in _CLIENT_ENV))


@functools.lru_cache(maxsize=16)
def _client(bucket: str, settings: tuple[str | None, ...]) -> S3ObjectStore:
    del settings  # part of the cache key only; open_bucket reads the environment itself
    from artfs.objectstore import open_bucket

    return open_bucket(bucket)


def _describe_s3(
    uri: str, name: str | None, checksum: bool, max_objects: int | None
) -> list[FileEntry]:
    """An object, or every object below a prefix (as W&B does: a key that is not an object is
    a prefix, its objects placed below ``name`` or at the root)."""
    bucket, key = _s3_location(uri)
    client = _bucket(bucket)
    single = client.head(key) if key and not key.endswith("/") else None
    if single is not None:
        return [
            _s3_entry(
                client, bucket, single, check_stored_path(name or default_name(uri)), checksum
            )
        ]
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    objects = [o for o in client.list(prefix) if not o.key.endswith("/")]
    if not objects:
        raise InputError(f"{uri}: no object and no prefix with objects in bucket {bucket}")
    _check_count(uri, len(objects), max_objects, "objects")
    return [
        _s3_entry(client, bucket, o, _inside(name, o.key[len(prefix) :]), checksum) for o in objects
    ]


def _s3_entry(
    client: S3ObjectStore, bucket: str, obj: ObjectInfo, name: str, checksum: bool
) -> FileEntry:
    etag = str(obj.etag).strip('"')
    uri = f"s3://{bucket}/{obj.key}{_ETAG_MARK}{etag}"
    size, digest = obj.size, NO_DIGEST
    if checksum:
        digest, size = _hash_sized(_read_s3(uri, client))
    return FileEntry(name, Kind.FILE, 0o444, size, time.time_ns(), digest, (), uri)


def display_uri(uri: str) -> str:
    """The URI without the ETag an ``s3://`` entry carries (for messages)."""
    return uri.partition(_ETAG_MARK)[0]


def _read_s3(uri: str, client: S3ObjectStore | None = None) -> Iterator[bytes]:
    """The object at ``uri``, only as long as it has the ETag recorded in ``uri``."""
    from artfs.errors import ObjectChanged, RemoteMissing

    bucket, key = _s3_location(uri)
    etag = uri.partition(_ETAG_MARK)[2]
    try:
        yield from (client or _bucket(bucket)).stream(key, f'"{etag}"' if etag else None, _BLOCK)
    except RemoteMissing:
        raise ReferenceMissing(f"{display_uri(uri)}: the referenced object is gone") from None
    except ObjectChanged:
        raise ReferenceChanged(
            f"{display_uri(uri)}: the object changed since it was logged (its ETag is not "
            f"{etag} any more)"
        ) from None


def _hash_stream(blocks: Iterator[bytes]) -> FileDigest:
    return _hash_sized(blocks)[0]


def _hash_sized(blocks: Iterator[bytes]) -> tuple[FileDigest, int]:
    hasher = FileHasher()
    size = 0
    for block in blocks:
        hasher.update(block)
        size += len(block)
    return hasher.digest(), size


def fetch(entry: FileEntry) -> Iterator[bytes]:
    """The referenced content, block by block. A digest mismatch raises ReferenceChanged at
    the end, so callers must not expose the bytes before the iterator is exhausted (``get``
    writes to a temporary file first)."""
    assert entry.uri is not None
    blocks = _read(entry.uri)
    pinned = _pinned(entry.uri)
    if entry.digest == NO_DIGEST and not pinned:
        yield from blocks
        return
    hasher = FileHasher()
    size = 0
    for block in blocks:
        hasher.update(block)
        size += len(block)
        yield block
    if size != entry.size or (entry.digest != NO_DIGEST and hasher.digest() != entry.digest):
        raise ReferenceChanged(
            f"{display_uri(entry.uri)}: the referenced content changed since it was logged"
        )


def _read(uri: str) -> Iterator[bytes]:
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme == "file":
        return _read_file(_local_path(uri), uri)
    if scheme == "s3":
        return _read_s3(uri)
    return _read_http(uri)


def _pinned(uri: str) -> bool:
    """Whether ``uri`` names one immutable content (an s3:// object at a recorded ETag)."""
    return _ETAG_MARK in uri and urllib.parse.urlsplit(uri).scheme == "s3"


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
    # Imported here: the HTTP client (with ssl and email) costs every command ~20 ms at start.
    import urllib.error
    import urllib.request

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
    if (entry.digest != NO_DIGEST or _pinned(entry.uri)) and target.exists():
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
