"""BLAKE3, the store's only hash (the one module importing ``blake3``).

A chunk id is the BLAKE3-256 of the chunk's uncompressed bytes; a file digest is the BLAKE3-256
of the file's whole content; a version digest is the BLAKE3-256 over its sorted file list; a
tree id is the BLAKE3-256 of a tree page. The four are distinct types so they cannot be mixed
up.
"""

from __future__ import annotations

import struct
from typing import NewType

import blake3

Buffer = bytes | bytearray | memoryview

ChunkId = NewType("ChunkId", bytes)
FileDigest = NewType("FileDigest", bytes)
VersionDigest = NewType("VersionDigest", bytes)
TreeId = NewType("TreeId", bytes)

DIGEST_SIZE = 32
_LENGTH = struct.Struct("<I")  # a path's length in a version digest
# Inputs above this size are hashed with BLAKE3's own threads: on this 2-core machine a 64 MiB
# buffer hashes in 4.7 ms with threads against 8.5 ms without; small inputs only pay the set-up.
_THREADED_FROM = 8 << 20


def _hash(data: Buffer) -> bytes:
    threads = blake3.blake3.AUTO if memoryview(data).nbytes >= _THREADED_FROM else 1
    return blake3.blake3(data, max_threads=threads).digest()


def chunk_id(data: Buffer) -> ChunkId:
    return ChunkId(_hash(data))


def file_digest(data: Buffer) -> FileDigest:
    return FileDigest(_hash(data))


def tree_id(data: Buffer) -> TreeId:
    """A tree page is named by the BLAKE3 of its encoding (see artfs.store.trees)."""
    return TreeId(_hash(data))


class FileHasher:
    """Incremental file digest, fed chunk by chunk in file order."""

    def __init__(self) -> None:
        self._hasher = blake3.blake3()

    def update(self, data: Buffer) -> None:
        self._hasher.update(data)

    def digest(self) -> FileDigest:
        return FileDigest(self._hasher.digest())


def version_digest(entries: list[tuple[bytes, bytes]]) -> VersionDigest:
    """Digest of a version from its (path, file digest) pairs; order-independent."""
    # One buffer, hashed once: a quarter faster than three updates per file at 100,000 files.
    length = _LENGTH.pack
    joined = b"".join([length(len(path)) + path + digest for path, digest in sorted(entries)])
    return VersionDigest(blake3.blake3(joined, max_threads=1).digest())
