"""A version's file entries and their format-1 byte encoding (pure; no I/O).

Each entry is one file or directory of a version, with what ``stat``/``readdir`` need and, for
files, the ordered chunk list that reassembles the content. Since store format 2 entries live
in tree pages (:mod:`artfs.store.trees`); the encoding and keys below are those of format 1's
``files`` table, one record per (version, parent directory, name), which the upgrade
(:mod:`artfs.store.upgrade`) reads::

    entry := kind:u8 mode:u32 size:u64 mtime_ns:i64 digest:32 n:u32 (chunk_id:32 length:u32)*n
             [uri_length:u16 uri]

A *reference* entry (W&B's ``add_reference``) has no chunks: its content lives at ``uri`` and is
fetched on demand, checked against ``digest`` unless the digest is all zeros (recorded with
``checksum=False``).
"""

from __future__ import annotations

import enum
import posixpath
import struct
from dataclasses import dataclass, field

from artfs.store.hashing import ChunkId, FileDigest

_HEAD = struct.Struct("<BIQq32sI")
_CHUNK = struct.Struct("<32sI")
NO_DIGEST = FileDigest(bytes(32))


class Kind(enum.IntEnum):
    FILE = 1
    DIR = 2


@dataclass(frozen=True, slots=True)
class ChunkRef:
    chunk_id: ChunkId
    length: int


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file or directory inside a version; ``path`` is relative POSIX (see artfs.names)."""

    path: str
    kind: Kind
    mode: int
    size: int
    mtime_ns: int
    digest: FileDigest = NO_DIGEST
    chunks: tuple[ChunkRef, ...] = field(default=())
    uri: str | None = None

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent(self) -> str:
        return posixpath.dirname(self.path)

    @property
    def is_dir(self) -> bool:
        return self.kind == Kind.DIR

    @property
    def is_reference(self) -> bool:
        return self.uri is not None

    def encode(self) -> bytes:
        head = _HEAD.pack(
            self.kind, self.mode, self.size, self.mtime_ns, self.digest, len(self.chunks)
        )
        body = b"".join(_CHUNK.pack(c.chunk_id, c.length) for c in self.chunks)
        if self.uri is None:
            return head + body
        uri = self.uri.encode()
        return head + body + len(uri).to_bytes(2, "little") + uri

    @classmethod
    def decode(cls, path: str, data: bytes) -> FileEntry:
        kind, mode, size, mtime_ns, digest, count = _HEAD.unpack_from(data)
        end = _HEAD.size + count * _CHUNK.size
        chunks = tuple(
            ChunkRef(ChunkId(cid), length)
            for cid, length in _CHUNK.iter_unpack(data[_HEAD.size : end])
        )
        uri = None
        if len(data) > end:
            uri_length = int.from_bytes(data[end : end + 2], "little")
            uri = data[end + 2 : end + 2 + uri_length].decode()
        return cls(path, Kind(kind), mode, size, mtime_ns, FileDigest(digest), chunks, uri)


def encode_path(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def decode_path(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def entry_key(version_key: bytes, path: str) -> bytes:
    """Index key of ``path`` in a version: version key + parent dir + NUL + name."""
    parent, _, name = path.rpartition("/")
    return version_key + encode_path(parent) + b"\0" + encode_path(name)


def children_prefix(version_key: bytes, directory: str) -> bytes:
    """Key prefix shared by exactly the direct children of ``directory`` ('' is the root)."""
    return version_key + encode_path(directory) + b"\0"


def path_from_key(version_key: bytes, key: bytes) -> str:
    parent, _, name = key[len(version_key) :].partition(b"\0")
    return decode_path(parent + b"/" + name if parent else name)
