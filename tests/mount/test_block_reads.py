"""Reads of a raw chunk in verified blocks (``FileReader.read_blocks``): a read at random of a
file not loaded whole reads only the 64 KiB blocks it falls in, each checked against the
digests written at ingest; a damaged block fails the reads in it, never the others."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from artfs.fs.direct import PackRanges
from artfs.fs.reader import BlockReads, ChunkCache, FileReader
from artfs.names import ArtifactName, Ref
from artfs.store import Store, catalog
from artfs.store.chunkstore import ChunkLocation
from artfs.store.codec import Codec
from artfs.store.gc import collect
from artfs.store.hashing import (
    BLOCK_SIZE,
    BLOCKS_FROM,
    ChunkId,
    block_digests,
    chunk_id,
)
from artfs.store.index import Table
from artfs.store.manifest import ChunkRef, FileEntry, Kind
from artfs.store.verify import verify

MIB = 1 << 20
PAGE = 4096
HEADER = 40  # bytes between two chunks stored one after the other (a record's header)


class Pack:
    """Raw chunks stored one after the other, with the reads asked of it."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.data = bytearray()
        self.locations: dict[bytes, ChunkLocation] = {}
        self.refs: list[ChunkRef] = []
        self.digests: dict[bytes, bytes | None] = {}
        for chunk in chunks:
            self.data += bytes(HEADER)
            cid = chunk_id(chunk)
            self.locations[cid] = ChunkLocation(1, len(self.data), len(chunk), len(chunk), 0)
            self.refs.append(ChunkRef(cid, len(chunk)))
            self.digests[cid] = block_digests(chunk)
            self.data += chunk
        self.reads: list[tuple[int, int]] = []

    def read(self, pack: int, at: int, length: int) -> bytes:
        assert pack == 1
        self.reads.append((at, length))
        return bytes(self.data[at : at + length])

    def reader(self, budget: int = 16 * MIB) -> FileReader:
        """A reader of the file of these chunks, with a cache too small to plan it whole and
        no whole-chunk loads (a test that wants one fails)."""
        entry = FileEntry(
            "f", Kind.FILE, 0o644, sum(r.length for r in self.refs), 0, chunks=tuple(self.refs)
        )

        def no_whole_loads(ref: ChunkRef) -> bytes:
            raise AssertionError(f"chunk {ref.chunk_id.hex()[:8]} was loaded whole")

        blocks = BlockReads(lambda cid: self.digests.get(cid), self.read)
        return FileReader(
            entry, ChunkCache(no_whole_loads, budget), locations=self.locations, blocks=blocks
        )


def random_chunks(sizes: list[int], seed: int = 3) -> tuple[list[bytes], bytes]:
    rng = random.Random(seed)
    chunks = [rng.randbytes(size) for size in sizes]
    return chunks, b"".join(chunks)


def read_at_random(reader: FileReader, offset: int, size: int) -> bytes | None:
    """A read as the daemon makes it: planned as it arrives, then read in blocks."""
    assert reader.plan(offset, size) == []  # nothing queued: the read takes its own blocks
    assert reader.in_blocks
    got = reader.read_blocks(offset, size)
    return None if got is None else bytes(got)


def test_a_read_at_random_reads_and_checks_only_the_blocks_it_falls_in() -> None:
    chunks, content = random_chunks([MIB] * 24)
    pack = Pack(chunks)
    reader = pack.reader()
    at = 5 * MIB + 3 * BLOCK_SIZE + 100
    assert read_at_random(reader, at, PAGE) == content[at : at + PAGE]
    start = pack.locations[pack.refs[5].chunk_id].offset + 3 * BLOCK_SIZE
    assert pack.reads == [(start, BLOCK_SIZE)]
    # A page fault's 1 MiB across two chunks stored one after the other: one read of the
    # blocks it falls in, about half of the two chunks.
    pack.reads.clear()
    at = 9 * MIB - MIB // 2 + 1000
    assert read_at_random(reader, at, MIB) == content[at : at + MIB]
    ((start, length),) = pack.reads
    first = pack.locations[pack.refs[8].chunk_id].offset
    # chunk 8's blocks 8-15, the record header between, chunk 9's blocks 0-8
    assert (start, length) == (first + 8 * BLOCK_SIZE, 8 * BLOCK_SIZE + HEADER + 9 * BLOCK_SIZE)


def test_a_damaged_block_fails_only_the_reads_in_it() -> None:
    chunks, content = random_chunks([MIB] * 24)
    pack = Pack(chunks)
    damaged = pack.locations[pack.refs[7].chunk_id].offset + 2 * BLOCK_SIZE + 5
    pack.data[damaged] ^= 0x40
    reader = pack.reader()
    at = 7 * MIB + 2 * BLOCK_SIZE
    assert read_at_random(reader, at, PAGE) is None  # the whole chunk's load says why
    elsewhere = 7 * MIB + 9 * BLOCK_SIZE
    assert read_at_random(reader, elsewhere, PAGE) == content[elsewhere : elsewhere + PAGE]


def test_a_pack_gone_by_its_name_has_the_read_load_whole_chunks() -> None:
    """Block reads open the pack by its name; once gc has deleted it (the reader still holds
    it pinned), the read loads whole chunks through the pinned pack instead of failing."""
    chunks, _ = random_chunks([MIB] * 24)
    pack = Pack(chunks)

    def gone(pack_id: int, at: int, length: int) -> bytes:
        raise FileNotFoundError(2, "No such file or directory")

    pack.read = gone  # type: ignore[method-assign]
    assert read_at_random(pack.reader(), 6 * MIB + 100, PAGE) is None


def test_a_chunk_cached_when_planned_and_gone_since_is_loaded_whole_if_not_raw_here() -> None:
    """A read planned while one of its chunks was cached takes blocks for the others; if that
    chunk left the cache meanwhile and is not a raw chunk here, the read loads whole chunks."""
    chunks, content = random_chunks([MIB] * 24)
    pack = Pack(chunks)
    reader = pack.reader()
    cache = reader._cache
    cache.put(pack.refs[10], chunks[10])
    del pack.locations[pack.refs[10].chunk_id]  # held only on a remote
    at = 10 * MIB + MIB // 2
    assert reader.plan(at, MIB) == [] and reader.in_blocks
    assert bytes(reader.read_blocks(at, MIB) or b"") == content[at : at + MIB]
    cache.discard(pack.refs[10])
    assert reader.read_blocks(at, MIB) is None


def test_a_chunk_stored_without_digests_has_its_reader_load_whole_chunks() -> None:
    """A chunk put by an artfs before block digests has none: its read loads whole chunks,
    and so does every later read of that reader (one index lookup spent, not one a read)."""
    chunks, _ = random_chunks([MIB] * 24)
    pack = Pack(chunks)
    pack.digests[pack.refs[4].chunk_id] = None
    reader = pack.reader()
    assert read_at_random(reader, 4 * MIB + 100, PAGE) is None
    reader.plan(12 * MIB, PAGE)
    assert not reader.in_blocks


def test_reads_in_order_and_small_or_compressed_chunks_are_not_read_in_blocks() -> None:
    chunks, _ = random_chunks([MIB] * 24)
    pack = Pack(chunks)
    reader = pack.reader()
    reader.plan(0, 128 << 10)  # from the start: a sequential reader
    assert not reader.in_blocks
    small, _ = random_chunks([BLOCKS_FROM - PAGE] * 80)  # 80 chunks just under the bound
    reader = Pack(small).reader()
    reader.plan(20 * (BLOCKS_FROM - PAGE), PAGE)
    assert not reader.in_blocks
    zstd = Pack(chunks)
    for cid, loc in zstd.locations.items():
        zstd.locations[cid] = ChunkLocation(
            loc.pack_id, loc.offset, loc.stored_length, loc.raw_length, Codec.ZSTD
        )
    reader = zstd.reader()
    reader.plan(7 * MIB, PAGE)
    assert not reader.in_blocks


def test_a_file_the_cache_can_hold_is_read_in_whole_chunks() -> None:
    """Its later reads find the chunks in the cache, which blocks would not leave there."""
    chunks, _ = random_chunks([MIB] * 24)
    reader = Pack(chunks).reader(budget=32 * MIB)  # not planned whole at this first read
    assert reader.plan(7 * MIB + 100, PAGE) == []
    assert not reader.in_blocks


def test_a_file_planned_whole_is_not_read_in_blocks() -> None:
    """One small enough to be loaded whole (its first read at random plans it) waits for its
    chunks: they are on their way, and the reads that follow find them cached."""
    chunks, _ = random_chunks([MIB] * 12)
    reader = Pack(chunks).reader(budget=256 * MIB)
    assert reader.plan(7 * MIB, PAGE) != []
    assert not reader.in_blocks


def block_rows(store: Store) -> dict[bytes, bytes]:
    with store.index.read() as txn:
        return dict(txn.scan(Table.CHUNK_BLOCKS))


def test_put_stores_the_block_digests_of_large_raw_chunks_and_gc_drops_them(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    art = ArtifactName("proj", "weights")
    noise = random.Random(8).randbytes(3 * MIB)
    put_result = store.put(
        make_tree(tmp_path / "a", {"noise.bin": noise, "zeros.bin": bytes(3 * MIB)}), art
    )
    with store.index.read() as txn:
        entries = {p: catalog.lookup(txn, put_result.record, p) for p in ("noise.bin", "zeros.bin")}
    rows = block_rows(store)
    offset = 0
    noisy, zeros = entries["noise.bin"], entries["zeros.bin"]
    assert noisy is not None and zeros is not None
    for ref in noisy.chunks:  # stored raw: each large one has its digests
        chunk = noise[offset : offset + ref.length]
        offset += ref.length
        loc = store.chunk_location(ChunkId(ref.chunk_id))
        assert loc is not None and loc.codec == Codec.RAW
        if ref.length >= BLOCKS_FROM:
            assert rows[ref.chunk_id] == block_digests(chunk)
        else:
            assert ref.chunk_id not in rows
    assert not {ref.chunk_id for ref in zeros.chunks} & rows.keys()  # stored zstd
    assert verify(store, [put_result.record]) == []
    some = next(iter(rows))  # block digests that are not the chunk's: verify says so
    with store.index.write() as txn:
        txn.put(Table.CHUNK_BLOCKS, some, bytes(len(rows[some])))
    (problem,) = verify(store, [put_result.record])
    assert problem.path == "noise.bin" and "block digests" in problem.reason
    store.delete(Ref.parse("proj/weights:v0"))
    collect(store)
    assert block_rows(store) == {}


def test_block_reads_serve_exact_bytes_whatever_the_chunks_and_their_places() -> None:
    """Chunks of sizes that are not whole blocks, some cached, placed in two packs in a
    shuffled order (some adjacent, most not), read at random offsets and sizes up to the end
    of the file: every read in blocks returns exactly the file's bytes."""
    rng = random.Random(21)
    sizes = [rng.randrange(BLOCKS_FROM, 5 * MIB // 2) for _ in range(30)]
    chunks, content = random_chunks(sizes, seed=22)
    refs = [ChunkRef(chunk_id(chunk), len(chunk)) for chunk in chunks]
    packs: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    locations, digests = {}, {}
    for n in rng.sample(range(len(chunks)), len(chunks)):
        pack_id = rng.choice((1, 2))
        data = packs[pack_id]
        data += bytes(rng.choice((HEADER, 3 * PAGE + 7)))
        locations[refs[n].chunk_id] = ChunkLocation(pack_id, len(data), sizes[n], sizes[n], 0)
        digests[refs[n].chunk_id] = block_digests(chunks[n])
        data += chunks[n]

    def read(pack_id: int, at: int, length: int) -> bytes:
        return bytes(packs[pack_id][at : at + length])

    def no_whole_loads(ref: ChunkRef) -> bytes:
        raise AssertionError("a chunk was loaded whole")

    cache = ChunkCache(no_whole_loads, 64 * MIB)
    for n in rng.sample(range(len(chunks)), 6):
        cache.put(refs[n], chunks[n])
    entry = FileEntry("f", Kind.FILE, 0o644, len(content), 0, chunks=tuple(refs))
    reader = FileReader(entry, cache, locations=locations, blocks=BlockReads(digests.get, read))
    for _ in range(1500):
        size = rng.choice((PAGE, MIB, rng.randrange(1, 3 * MIB)))
        at = rng.randrange(len(content))
        got = reader.read_blocks(at, size)
        assert got is not None and bytes(got) == content[at : at + size]


def test_pack_ranges_read_unaligned_ranges_past_the_cache_and_through_it(
    tmp_path: Path,
) -> None:
    """Ranges at any offset and length, read with O_DIRECT in whole 4 KiB blocks (this
    tmp_path is on a local block filesystem here), and buffered where that is off; short at
    the pack's end."""
    data = random.Random(4).randbytes(3 * MIB + 123)
    (tmp_path / "p.pack").write_bytes(data)
    for past_cache in (True, False):
        ranges = PackRanges(tmp_path, past_cache)
        for at, length in ((0, 10), (4095, 2), (12345, 70000), (MIB - 1, 2 * MIB), (3 * MIB, 500)):
            assert ranges.read("p.pack", at, length) == data[at : at + length]
    with pytest.raises(FileNotFoundError):
        PackRanges(tmp_path, True).read("gone.pack", 0, 10)
