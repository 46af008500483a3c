"""Block digests for the large raw chunks a store holds without them.

Since issue 17's twenty-fifth pass a raw chunk of ``hashing.BLOCKS_FROM`` bytes or more is
stored with a digest of each of its 64 KiB blocks, so that the mount reads a file larger
than its chunk cache at random in verified blocks instead of whole chunks. Chunks put before
then, and chunks a ``pull`` brought in before the twenty-seventh, have none, and are read
whole. ``artfs upgrade`` gives them theirs: each such chunk is read and verified against its
id (BLAKE3 of its content), and only then digested, so a damaged chunk gets no digests that
would vouch for its bytes.

This is not a format change: a chunk without digests is still read correctly, and any artfs
that knows the table reads the new rows. The work goes in batches, each found, read and
written under the store's commit lock (which gc takes exclusively), its rows in a
transaction of its own that adds only rows still missing for chunks the index still holds:
a kill loses at most a batch, and leaves every written row right. A chunk held only on the
remote (a lazy clone's) is not in the chunk table, and is not fetched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from artfs.errors import CorruptData
from artfs.store import codec
from artfs.store.chunkstore import ChunkLocation
from artfs.store.hashing import ChunkId, block_digests, has_blocks
from artfs.store.index import Table
from artfs.store.manifest import ChunkRef
from artfs.store.repository import Store

# Raw bytes read before a batch's rows are written: a kill redoes at most this much reading.
BATCH_BYTES = 64 << 20
# Chunk-table keys one read transaction looks at, at most: a batch ends there too, so that a
# store of many small, compressed or digested chunks is not scanned in one long transaction.
SCAN_KEYS = 10_000


@dataclass
class BackfillReport:
    chunks: int = 0  # chunks given block digests
    bytes_read: int = 0  # their raw bytes, read and verified
    # Chunks that failed verification or could not be read: no digests for them.
    unsound: list[ChunkId] = field(default_factory=list)


def lacking_bytes(store: Store) -> int:
    """The raw bytes of the large raw chunks in this store's packs that have no block
    digests (what :func:`backfill` reads)."""
    return sum(ref.length for batch in _lacking(store) for ref in batch)


def backfill(store: Store, progress: Callable[[int], None] | None = None) -> BackfillReport:
    """Read, verify and digest each large raw chunk of this store's packs that has no block
    digests, and write them, a batch at a time; ``progress`` is told the raw bytes of each
    chunk done.

    Each batch is found, read and written under the store's commit lock, which gc takes
    exclusively: the chunks of a batch stay where they were found while it is read, so a
    chunk that fails is damaged (not moved or deleted meanwhile), and none is fetched from a
    remote. A gc waits for at most one batch."""
    report = BackfillReport()
    batches = _lacking(store)
    while True:
        with store.commit_lock():
            batch = next(batches, None)
            if batch is None:
                return report
            digests: dict[ChunkId, bytes] = {}
            for ref in batch:
                try:
                    data = store.read_chunk(ref)
                except (CorruptData, OSError):
                    report.unsound.append(ref.chunk_id)
                else:
                    digests[ref.chunk_id] = block_digests(data)
                    report.bytes_read += ref.length
                if progress:
                    progress(ref.length)
            report.chunks += _write(store, digests)


def _lacking(store: Store) -> Iterator[list[ChunkRef]]:
    """The chunks :func:`backfill` wants, in key order, in batches of up to ``BATCH_BYTES``
    (or what ``SCAN_KEYS`` keys held), each found in a read transaction of its own that ends
    before the batch is yielded: none is held while the chunks are read, which would keep
    LMDB from reusing the pages the writes free."""
    after, done = b"", False
    while not done:
        batch: list[ChunkRef] = []
        size = scanned = 0
        done = True
        with store.index.read() as txn:
            for key, value in txn.scan(Table.CHUNKS, start=after):
                if key == after:
                    continue
                after = key
                scanned += 1
                if ChunkLocation.codec_of(value) == codec.Codec.RAW:
                    length = ChunkLocation.decode(value).raw_length
                    if has_blocks(True, length) and txn.get(Table.CHUNK_BLOCKS, key) is None:
                        batch.append(ChunkRef(ChunkId(key), length))
                        size += length
                if size >= BATCH_BYTES or scanned >= SCAN_KEYS:
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
            if txn.get(Table.CHUNKS, cid) is not None:
                added += txn.put(Table.CHUNK_BLOCKS, cid, digests, overwrite=False)
    return added
