"""BLAKE3, the store's only hash (the one module importing ``blake3``).

A chunk id is the BLAKE3-256 of the chunk's uncompressed bytes; a file digest is the BLAKE3-256
of the file's whole content; a version digest is the BLAKE3-256 over its sorted file list; a
tree id is the BLAKE3-256 of a tree page. The four are distinct types so they cannot be mixed
up.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import NewType

import blake3

Buffer = bytes | bytearray | memoryview

ChunkId = NewType("ChunkId", bytes)
FileDigest = NewType("FileDigest", bytes)
VersionDigest = NewType("VersionDigest", bytes)
TreeId = NewType("TreeId", bytes)

DIGEST_SIZE = 32
# The module of blake3's compiled code: what ``artfs.fs.direct.map_code`` maps in before a
# cold read.
COMPILED = ("blake3.blake3",)
# Inputs above this size are hashed with BLAKE3's own threads: on this 2-core machine a 64 MiB
# buffer hashes in 4.7 ms with threads against 8.5 ms without; small inputs only pay the set-up.
_THREADED_FROM = 8 << 20


def _hash(data: Buffer) -> bytes:
    threads = blake3.blake3.AUTO if memoryview(data).nbytes >= _THREADED_FROM else 1
    return blake3.blake3(data, max_threads=threads).digest()


def chunk_id(data: Buffer) -> ChunkId:
    return ChunkId(_hash(data))


# A raw chunk of at least BLOCKS_FROM bytes is also stored with a digest of each of its
# BLOCK_SIZE blocks (see block_digests), so that a random read of a few KiB reads and verifies
# the blocks it falls in, not the whole chunk (docs/perf.md, "Twenty-fifth pass"). Past the page
# cache this disk reads 64 KiB at random in ~0.10 ms, 256 KiB in ~0.25 and 1 MiB in ~0.9;
# a smaller chunk is read whole.
BLOCK_SIZE = 64 << 10
BLOCKS_FROM = 256 << 10
# A block's digest is its BLAKE3 cut to 128 bits: 16 bytes of index per 64 KiB (250 MB for a
# TB of raw chunks), and a damaged block still has one chance in 2**128 of passing.
BLOCK_DIGEST_SIZE = 16


def block_digests(data: Buffer) -> bytes:
    """The digest of each ``BLOCK_SIZE`` block of ``data`` (the last one may be shorter),
    concatenated: ``BLOCK_DIGEST_SIZE`` bytes a block."""
    view = memoryview(data)
    return b"".join(
        blake3.blake3(view[start : start + BLOCK_SIZE]).digest(BLOCK_DIGEST_SIZE)
        for start in range(0, view.nbytes, BLOCK_SIZE)
    )


def has_blocks(raw: bool, length: int) -> bool:
    """Whether a chunk of ``length`` bytes, stored raw or not (``raw``), is stored with block
    digests, which the mount may read it in blocks by: raw and at least ``BLOCKS_FROM``."""
    return raw and length >= BLOCKS_FROM


def blocks_if_raw(raw: bool, data: Buffer) -> bytes:
    """``block_digests(data)`` for a chunk that :func:`has_blocks`; else nothing (b"")."""
    return block_digests(data) if has_blocks(raw, memoryview(data).nbytes) else b""


def block_matches(data: Buffer, digests: bytes, index: int) -> bool:
    """Whether ``data`` is block ``index`` of the chunk whose ``block_digests`` are
    ``digests``."""
    start = index * BLOCK_DIGEST_SIZE
    return (
        blake3.blake3(data).digest(BLOCK_DIGEST_SIZE) == digests[start : start + BLOCK_DIGEST_SIZE]
    )


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


# Length prefixes of the paths a version digest hashes, made once (a path is at most 4096
# bytes on Linux; longer ones are encoded as they come).
_LENGTHS = [n.to_bytes(4, "little") for n in range(4097)]
# Pairs hashed per update: one update per pair cost three calls each (0.5 s per 1 M files).
_BATCH = 1 << 16


def _length(n: int) -> bytes:
    return _LENGTHS[n] if n < len(_LENGTHS) else n.to_bytes(4, "little")


def version_digest(entries: Iterable[tuple[bytes, bytes]]) -> VersionDigest:
    """Digest of a version from its (path, file digest) pairs; order-independent. The BLAKE3
    of, in path order, each path's length (u32 little-endian), the path and the digest."""
    return ordered_digest(sorted(entries))


def ordered_digest(entries: Iterable[tuple[bytes, bytes]]) -> VersionDigest:
    """:func:`version_digest` of pairs already in path order, taken as they come (a caller
    that sorts its own records need not hold every pair at once)."""
    hasher = blake3.blake3()
    pairs = iter(entries)
    while batch := list(itertools.islice(pairs, _BATCH)):
        parts: list[bytes] = [b""] * (3 * len(batch))
        parts[0::3] = [_length(len(path)) for path, _ in batch]
        parts[1::3] = [path for path, _ in batch]
        parts[2::3] = [digest for _, digest in batch]
        hasher.update(b"".join(parts))
    return VersionDigest(hasher.digest())
