"""Block digests for the large raw chunks a store holds without them.

Since issue 17's twenty-fifth pass a raw chunk of ``hashing.BLOCKS_FROM`` bytes or more is
stored with a digest of each of its 64 KiB blocks, so that the mount reads a file larger
than its chunk cache at random in verified blocks instead of whole chunks. Chunks put before
then, and chunks a ``pull`` brought in before the twenty-seventh, have none, and are read
whole. ``artfs upgrade`` gives them theirs: each such chunk is read and verified against its
id (BLAKE3 of its content), and only then digested, so a damaged chunk gets no digests that
would vouch for its bytes.

This is not a format change: a chunk without digests is still read correctly, and any artfs
that knows the table reads the new rows. Rows are written in batches of their own
transactions, each adding only rows that are missing for chunks the index still holds (a gc
between the read and the write may have removed one), so a kill loses at most a batch of
work and leaves every written row right. A chunk held only on the remote (a lazy clone's) is
not in the chunk table, and is not fetched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from artfs.errors import CorruptData
from artfs.store import codec
from artfs.store.chunkstore import ChunkLocation
from artfs.store.hashing import BLOCKS_FROM, ChunkId, block_digests
from artfs.store.index import Table
from artfs.store.manifest import ChunkRef
from artfs.store.repository import Store

# Raw bytes read before a batch's rows are written: a kill redoes at most this much reading.
BATCH_BYTES = 64 << 20


@dataclass
class BackfillReport:
    chunks: int = 0  # chunks given block digests
    bytes_read: int = 0  # their raw bytes, read and verified
    damaged: list[ChunkId] = field(default_factory=list)  # chunks that failed verification


def lacking_bytes(store: Store) -> int:
    """The raw bytes of the large raw chunks in this store's packs that have no block
    digests (what :func:`backfill` reads)."""
    total = 0
    for batch in _lacking(store, 1 << 62):
        total += sum(ref.length for ref in batch)
    return total


def backfill(store: Store, progress: Callable[[int], None] | None = None) -> BackfillReport:
    """Read, verify and digest each large raw chunk of this store's packs that has no block
    digests, and write them, ``BATCH_BYTES`` of chunks at a time; ``progress`` is told the
    raw bytes of each chunk done."""
    report = BackfillReport()
    for batch in _lacking(store, BATCH_BYTES):
        digests: dict[ChunkId, bytes] = {}
        for ref in batch:
            try:
                data = store.read_chunk(ref)
            except CorruptData:
                report.damaged.append(ref.chunk_id)
            else:
                digests[ref.chunk_id] = block_digests(data)
                report.bytes_read += ref.length
            if progress:
                progress(ref.length)
        report.chunks += _write(store, digests)
    return report


def _lacking(store: Store, batch_bytes: int) -> Iterator[list[ChunkRef]]:
    """The chunks :func:`backfill` wants, in key order, in batches of up to ``batch_bytes``
    (at least one chunk), each found in a read transaction of its own: none is held while
    the chunks are read, which would keep LMDB from reusing the pages the writes free."""
    after, done = b"", False
    while not done:
        batch: list[ChunkRef] = []
        size = 0
        done = True
        with store.index.read() as txn:
            for key, value in txn.scan(Table.CHUNKS, start=after):
                if key == after:
                    continue
                after = key
                if ChunkLocation.codec_of(value) != codec.Codec.RAW:
                    continue
                length = ChunkLocation.decode(value).raw_length
                if length < BLOCKS_FROM or txn.get(Table.CHUNK_BLOCKS, key) is not None:
                    continue
                batch.append(ChunkRef(ChunkId(key), length))
                size += length
                if size >= batch_bytes:
                    done = False
                    break
        if batch:
            yield batch


def _write(store: Store, batch: dict[ChunkId, bytes]) -> int:
    """Add ``batch``'s rows for the chunks the index still holds; how many were added."""
    if not batch:
        return 0
    added = 0
    with store.index.write() as txn:
        for cid, digests in batch.items():
            if txn.get(Table.CHUNKS, cid) is not None and txn.get(Table.CHUNK_BLOCKS, cid) is None:
                txn.put(Table.CHUNK_BLOCKS, cid, digests)
                added += 1
    return added
