"""Ranged fetches of chunks from a remote's packs, verified: the one path by which chunk bytes
come from a remote, shared by pull (:mod:`artfs.remote.sync`) and lazy reads
(:mod:`artfs.remote.fetch`).

:func:`coalesce` groups the chunks wanted from one pack into byte ranges, :func:`fetch_group`
GETs one range and cuts it into the chunks' stored payloads, and :func:`verified_chunk`
decompresses and hashes each payload against its chunk id before anyone sees its bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from artfs.errors import CorruptData
from artfs.remote.layout import pack_key
from artfs.remote.remote import Remote
from artfs.store import codec
from artfs.store.chunkstore import RemoteChunk
from artfs.store.hashing import ChunkId

# Neighbouring chunks of one pack are fetched in one ranged GET when the gap between them is
# at most this (reading a little waste is cheaper than a round trip) ...
COALESCE_GAP = 1 << 20
# ... and a single GET covers at most this many bytes.
MAX_RANGE = 32 << 20


def coalesce(
    chunks: list[tuple[ChunkId, RemoteChunk]],
) -> Iterator[tuple[int, int, list[tuple[ChunkId, RemoteChunk]]]]:
    """Group chunks sorted by offset into byte ranges ``(start, end, chunks)``."""
    group: list[tuple[ChunkId, RemoteChunk]] = []
    start = end = 0
    for cid, loc in chunks:
        chunk_end = loc.offset + loc.stored_length
        if group and (loc.offset - end > COALESCE_GAP or chunk_end - start > MAX_RANGE):
            yield start, end, group
            group = []
        if not group:
            start = loc.offset
        group.append((cid, loc))
        end = max(end, chunk_end) if len(group) > 1 else chunk_end
    if group:
        yield start, end, group


def fetch_group(
    remote: Remote, group: list[tuple[ChunkId, RemoteChunk]]
) -> tuple[int, list[tuple[ChunkId, RemoteChunk, bytes]]]:
    """One ranged GET of neighbouring chunks of one pack (sorted by offset, as
    :func:`coalesce` groups them): the bytes it returned, and each chunk's stored payload, not
    verified yet (see :func:`verified_chunk`)."""
    first = group[0][1]
    start = first.offset
    end = max(loc.offset + loc.stored_length for _, loc in group)
    data = remote.objects.get_range(pack_key(first.pack), start, end)
    return len(data), [
        (cid, loc, data[loc.offset - start : loc.offset - start + loc.stored_length])
        for cid, loc in group
    ]


def verified_chunk(
    cid: ChunkId,
    loc: RemoteChunk,
    payload: bytes,
    what: str,
    remote: Remote,
    dictionaries: codec.Dictionaries | None = None,
) -> bytes:
    """The raw bytes of a chunk fetched from ``remote``, decompressed (a dictionary-coded one
    with its dictionary from ``dictionaries``) and hashed against its id; CorruptData (naming
    ``what``, the chunk and its pack) when they do not match or its dictionary cannot be had.
    """
    try:
        return codec.checked(cid, loc.codec, payload, loc.raw_length, dictionaries)
    except CorruptData as exc:
        where = f"chunk {cid.hex()[:16]} of {what} pack {loc.pack[:16]} on {remote.describe()}"
        reason = str(exc).removeprefix(f"chunk {cid.hex()[:16]} ")
        raise CorruptData(f"{where} {reason}: nothing was stored") from None
