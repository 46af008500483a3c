"""The read path without a kernel: read-ahead planning, views of cached chunks, verification."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pyfuse3
import pytest
import trio
from artfsd.operations import ArtfsOperations

from artfs import vfs as vfs_module
from artfs.errors import CorruptData
from artfs.fs import reader as reader_module
from artfs.fs.errors import ReadOnly
from artfs.fs.reader import MAX_READAHEAD_BYTES, RANDOM_READAHEAD_BYTES, ChunkHolders
from artfs.names import ArtifactName
from artfs.store import Store, packs
from artfs.store import staging as store_staging
from artfs.store.chunkstore import ChunkLocation
from artfs.store.hashing import ChunkId
from artfs.store.manifest import ChunkRef, FileEntry, Kind
from artfs.store.repository import PinnedChunks
from artfs.vfs import READAHEAD_START_BYTES, ROOT_INODE, ChunkCache, FileReader, Vfs
from tests.mount.mountutil import put, resident_pages

MIB = 1 << 20


def entry_of(sizes: list[int]) -> FileEntry:
    chunks = tuple(ChunkRef(ChunkId(bytes([i]) * 32), size) for i, size in enumerate(sizes))
    return FileEntry("f", Kind.FILE, 0o644, sum(sizes), 0, chunks=chunks)


def fake_cache(budget: int = 256 * MIB, loaded: list[int] | None = None) -> ChunkCache:
    """A cache whose chunk i holds ``length`` bytes of value i; loads are noted in ``loaded``."""

    def load(ref: ChunkRef) -> bytes:
        if loaded is not None:
            loaded.append(ref.chunk_id[0])
        return bytes([ref.chunk_id[0]]) * ref.length

    return ChunkCache(load, budget)


def test_sequential_reader_plans_ahead_once_and_a_seek_resets() -> None:
    entry = entry_of([MIB] * 40)
    reader = FileReader(entry, fake_cache())
    first = reader.plan(0, 128 << 10)
    # From the first read at offset 0: the window covers the next READAHEAD_START_BYTES.
    assert [entry.chunks.index(r) for r in first] == list(
        range(1, 1 + READAHEAD_START_BYTES // MIB)
    )
    scheduled = list(first)
    offset = 128 << 10
    while offset < 8 * MIB:
        ahead = reader.plan(offset, 128 << 10)
        assert not set(ahead) & set(scheduled), "a chunk is scheduled twice"
        scheduled += ahead
        offset += 128 << 10
    indexes = [entry.chunks.index(r) for r in scheduled]
    assert indexes == list(range(1, len(indexes) + 1)) and len(indexes) >= 16  # window grew
    assert reader.plan(30 * MIB, 4096) == []  # a seek: no read-ahead


def test_reached_end_says_so_once_for_a_reader_in_order_from_the_start() -> None:
    """Once a reader in order from the file's start has its last chunk planned; never for
    one that began at random or sought."""
    entry = entry_of([MIB] * 12)
    reader = FileReader(entry, fake_cache())
    said = []
    for offset in range(0, 12 * MIB, MIB):
        reader.plan(offset, MIB)
        said.append(reader.reached_end())
    # The window (4, 8, then 16 MiB past each read's end) covers chunk 11 at the read of
    # chunk 2.
    assert said == [False, False, True] + [False] * 9
    two = FileReader(entry_of([MIB, MIB]), fake_cache())
    two.plan(0, 4096)
    assert two.reached_end() and not two.reached_end()
    one = FileReader(entry_of([2 * MIB]), fake_cache())  # one chunk: never
    one.plan(0, 4096)
    assert not one.reached_end()
    at_random = FileReader(entry, fake_cache())
    sought = FileReader(entry, fake_cache())
    sought.plan(0, MIB)
    sought.plan(6 * MIB, MIB)
    for offset in range(7 * MIB, 12 * MIB, MIB):
        at_random.plan(offset, MIB)
        sought.plan(offset, MIB)
        assert not at_random.reached_end() and not sought.reached_end()


def test_random_first_read_of_a_large_file_plans_nothing_and_cached_chunks_are_skipped() -> None:
    entry = entry_of([MIB] * (MAX_READAHEAD_BYTES // MIB + 1))  # more than one window
    cache = fake_cache()
    reader = FileReader(entry, cache)
    assert reader.plan(3 * MIB + 5, 4096) == []
    cache.get(entry.chunks[1])
    again = FileReader(entry, cache)
    assert entry.chunks[1] not in again.plan(0, MIB)


def test_second_random_read_plans_the_rest_of_the_file_once() -> None:
    """A file larger than one read-ahead window read at random (two seeks) gets every chunk
    not cached planned, from the one after the read's on, so random page faults find them
    loaded; once, not per read."""
    entry = entry_of([4 * MIB] * 12)  # 48 MiB: more than a window, within the random bound
    cache = fake_cache()
    cache.get(entry.chunks[2])
    reader = FileReader(entry, cache)
    assert reader.plan(28 * MIB, 4096) == []  # one seek (a footer, a header): nothing
    planned = [entry.chunks.index(r) for r in reader.plan(20 * MIB + 100, 4096)]
    assert planned == [6, 7, 8, 9, 10, 11, 0, 1, 3, 4]  # not 5 (the read's own), not 2 (cached)
    assert reader.plan(4 * MIB, 4096) == [] and reader.plan(36 * MIB, 4096) == []


def test_a_file_within_one_window_first_read_at_random_is_planned_whole() -> None:
    """A file no larger than the read-ahead window's maximum whose first read is not at its
    start (a reader through mmap, or of random records) is planned whole at that read, once,
    and keeps its chunks (a random reader comes back to them). One read from its start first
    leaves it to the two-seek rule, and a cache too small for it plans nothing."""
    entry = entry_of([MIB] * 12)
    cache = fake_cache()
    cache.get(entry.chunks[2])
    reader = FileReader(entry, cache, drop_behind=ChunkHolders())
    planned = [entry.chunks.index(r) for r in reader.plan(7 * MIB + 100, 4096)]
    assert planned == [8, 9, 10, 11, 0, 1, 3, 4, 5, 6]  # not 7 (the read's own), not 2 (cached)
    assert reader.plan(MIB, 4096) == []
    while reader.fetch_next():
        pass
    read_at(reader, range(8 * MIB, 12 * MIB, MIB))
    reader.release()
    assert cached_indexes(cache, entry) == set(range(12)) - {7}  # the read's own: not read here
    header_first = FileReader(entry, fake_cache())
    assert header_first.plan(0, 4096) != [] and header_first.plan(7 * MIB, 4096) == []
    # More than a quarter of the cache (4 MiB < 12 MiB): not at the first read, only at the
    # second seek (the rule for larger files), and never in a cache it does not fit in.
    small_cache = FileReader(entry, fake_cache(budget=16 * MIB))
    assert small_cache.plan(7 * MIB, 4096) == [] and len(small_cache.plan(2 * MIB, 4096)) == 11
    too_small = FileReader(entry, fake_cache(budget=12 * MIB))  # 7/8 of it: 10.5 MiB
    assert too_small.plan(7 * MIB, 4096) == [] and too_small.plan(2 * MIB, 4096) == []


def test_a_file_planned_whole_at_its_first_read_still_drops_behind_a_run_in_order() -> None:
    """A reader that starts inside a small file and reads on in order (``dd skip=``, ``tail``,
    a copy whose first pages the kernel had) has the file planned whole at its first read,
    but the chunks its run passed still leave the cache, behind it and at release, as any
    sequential reader's do: only a second seek marks a reader at random that keeps them."""
    entry = entry_of([MIB] * 12)
    cache = fake_cache()
    reader = FileReader(entry, cache, drop_behind=ChunkHolders())
    read_at(reader, [5 * MIB + MIB // 2])
    assert reader.ahead == 11  # planned whole at the first read: its second chunk, the ten others
    while reader.fetch_next():
        pass
    read_at(reader, range(6 * MIB + MIB // 2, 12 * MIB, MIB))  # on in order
    reader.release()
    # 6-11 were read whole by the run; 5 only in part, 0-4 never: those stay.
    assert cached_indexes(cache, entry) == set(range(6))


def test_a_first_read_at_random_plans_nothing_when_a_chunk_is_only_on_a_remote() -> None:
    """A remote-backed file (a lazy clone's) is not fetched whole for one read that seeks:
    the first-read rule needs every chunk in this store's packs; two seeks still plan it."""
    entry = entry_of([MIB] * 12)
    here = {
        ref.chunk_id: ChunkLocation(1, i * MIB, MIB, MIB, 0) for i, ref in enumerate(entry.chunks)
    }
    local = FileReader(entry, fake_cache(), locations=here)
    assert local.plan(7 * MIB, 4096) != []
    del here[entry.chunks[3].chunk_id]  # held only on the remote
    remote = FileReader(entry, fake_cache(), locations=here)
    assert remote.plan(7 * MIB, 4096) == []
    assert remote.plan(2 * MIB, 4096) != []  # the second seek: read at random


def test_the_first_read_rule_holds_up_to_a_file_of_exactly_one_window() -> None:
    window = MAX_READAHEAD_BYTES // MIB
    exact = FileReader(entry_of([MIB] * window), fake_cache())
    assert len(exact.plan(3 * MIB, 4096)) == window - 1
    over = FileReader(entry_of([MIB] * window + [4096]), fake_cache())
    assert over.plan(3 * MIB, 4096) == []


def test_a_read_across_chunks_is_copied_once_into_the_reply_buffer() -> None:
    """The pieces of a read spanning two chunks go straight into the reused buffer, with
    nothing of the read's size allocated meanwhile: a bytearray's slice assignment from a
    view first copies it into a new bytearray (fresh pages in the daemon, every such read)."""
    entry = entry_of([MIB] * 4)
    cache = fake_cache()
    for ref in entry.chunks:  # views, as the loader's arena hands them out
        cache.put(ref, memoryview(bytes([ref.chunk_id[0]]) * MIB).toreadonly())
    reader = FileReader(entry, cache)
    scratch = bytearray(MIB)
    tracemalloc.start()
    try:
        got = reader.read_cached(MIB // 2, MIB, scratch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got is not None and bytes(got) == bytes(MIB // 2) + bytes([1]) * (MIB // 2)
    assert peak < 64 << 10, f"{peak} bytes allocated for a 1 MiB read"


def test_random_reads_of_a_file_larger_than_the_bound_plan_nothing_at_first() -> None:
    entry = entry_of([MIB] * (RANDOM_READAHEAD_BYTES // MIB + 1))
    reader = FileReader(entry, fake_cache())
    for offset in (40 * MIB, 3 * MIB, 40 * MIB + 4096, 20 * MIB):  # never 3 new chunks in a row
        assert reader.plan(offset, 4096) == []
    small = entry_of([MIB] * 8)  # within the bound, but more than seven eighths of the cache
    reader = FileReader(small, fake_cache(budget=8 * MIB))
    assert reader.plan(5 * MIB, 4096) == [] and reader.plan(2 * MIB, 4096) == []


def test_a_larger_file_read_across_is_planned_whole_once_it_fits_in_the_cache() -> None:
    """A file above the bound is planned whole at the seek that makes its seeks begin in one
    of every ``CHUNKS_PER_SEEK_TO_PLAN_WHOLE`` of its chunks (a 200 MiB array read through
    mmap: its faults come to most chunks), and keeps its chunks; seeks within two chunks
    plan nothing, and neither does any reading of a file larger than seven eighths of the
    cache or with a chunk only on a remote (``read_across``, which seeks into every chunk in
    turn, would be planned at its third read by the next test's rule otherwise)."""
    chunks = 191  # the bench's 200 MiB file: 191 // 16 = 11 chunks to seek into
    spread = chunks // reader_module.CHUNKS_PER_SEEK_TO_PLAN_WHOLE
    entry = entry_of([MIB] * chunks)
    cache = fake_cache()  # 256 MiB: room for 191 MiB with an eighth to spare
    reader = FileReader(entry, cache, drop_behind=ChunkHolders())
    for _ in range(3):  # many seeks, all within two chunks (a header, one tensor): nothing
        for offset in (50 * MIB + 4096, 51 * MIB + (600 << 10), 50 * MIB + (300 << 10)):
            assert reader.plan(offset, 4096) == []
    landing = [(n * 37 % chunks) * MIB + 4096 for n in range(1, spread + 1)]
    assert len({offset // MIB for offset in landing} | {50, 51}) == spread + 2
    for offset in landing[: spread - 3]:  # with 50 and 51: one chunk short
        assert reader.plan(offset, 4096) == []
        # Back into a chunk sought before: not a run of seeks into new chunks (next test).
        assert reader.plan(50 * MIB + 8192, 4096) == []
    last = landing[spread - 3]
    planned = {entry.chunks.index(r) for r in reader.plan(last, 4096)}
    assert planned == set(range(chunks)) - {last // MIB}  # all but the read's own
    assert reader.plan(5 * MIB, 4096) == []  # once
    while reader.fetch_next():
        pass
    read_at(reader, range(0, 8 * MIB, MIB))  # a run in order: a reader at random keeps all
    reader.release()
    assert cached_indexes(cache, entry) == set(range(chunks)) - {last // MIB}

    def read_across(budget: int, locations: dict[bytes, ChunkLocation] | None = None) -> bool:
        """Whether a reader of ``entry`` seeking into every chunk in turn ever plans it."""
        reader = FileReader(entry, fake_cache(budget=budget), locations=locations)
        return any(reader.plan(n * MIB + 4096, 4096) for n in range(chunks - 1, -1, -1))

    fits = chunks * MIB * 8 // 7 + 8  # seven eighths of it: just the file's size
    assert read_across(fits) and not read_across(fits - 16)
    here = {
        ref.chunk_id: ChunkLocation(1, i * MIB, MIB, MIB, 0) for i, ref in enumerate(entry.chunks)
    }
    assert read_across(256 * MIB, here)
    del here[entry.chunks[3].chunk_id]  # held only on the remote: not fetched whole
    assert not read_across(256 * MIB, here)


def test_a_larger_file_with_three_seeks_in_a_row_into_new_chunks_is_planned_whole() -> None:
    """A file above the bound is planned whole as soon as ``NEW_CHUNK_SEEKS_TO_PLAN_WHOLE``
    reads in a row were each a seek into a chunk no earlier seek began in (a reader at random
    across it, whose first reads would otherwise each wait for their own chunks); a run in
    order between seeks (a tensor read through), a seek back into a chunk sought before or
    read first (a header) or a read past the end starts the count again."""
    chunks = 191
    entry = entry_of([MIB] * chunks)
    assert reader_module.NEW_CHUNK_SEEKS_TO_PLAN_WHOLE == 3
    # Three seeks into three new chunks, after a read from the start: the third plans.
    reader = FileReader(entry, fake_cache())
    assert reader.plan(0, 4096)  # from the start: in order, a window of its own
    reader.drop_ahead()
    assert reader.plan(10 * MIB, 4096) == [] and reader.plan(80 * MIB, 4096) == []
    planned = {entry.chunks.index(r) for r in reader.plan(150 * MIB + 4096, 4096)}
    assert planned == set(range(chunks)) - {150}
    # A tensor reader: each seek followed by a run in order through the tensor.
    reader = FileReader(entry, fake_cache())
    for start in (10, 80, 150, 30, 120):
        assert reader.plan(start * MIB + 4096, 4096) == []
        for offset in (8192, 8192 + 16384, 8192 + 32768):  # three 16 KiB reads in order
            reader.plan(start * MIB + offset, 16384)
        reader.drop_ahead()
    assert not reader.keeps_all  # five seeks, not planned whole
    # A header read between seeks into two new chunks at a time.
    reader = FileReader(entry, fake_cache())
    assert reader.plan(5 * MIB + 4096, 4096) == []  # the header: a first seek
    reader.plan(5 * MIB + 8192, 4096)  # read through: in order
    for start in (50, 100, 140):
        assert reader.plan(start * MIB, 4096) == [] and reader.plan((start + 1) * MIB, 4096) == []
        assert reader.plan(5 * MIB + 4096, 4096) == []  # back into the header's chunk
    assert reader.plan(60 * MIB, 4096) == [] and reader.plan(70 * MIB, 4096) == []
    assert len(reader.plan(90 * MIB, 4096)) == chunks - 1  # all but its own: none loaded here
    # A header at the file's start, read first, then again between seeks into new chunks.
    reader = FileReader(entry, fake_cache())
    assert reader.plan(0, 4096)  # in order from the start: a window of its own
    reader.drop_ahead()
    for start in (50, 100, 140):
        assert reader.plan(start * MIB, 4096) == [] and reader.plan((start + 1) * MIB, 4096) == []
        assert reader.plan(0, 4096) == []  # back to the header
    # A read past the end between them.
    reader = FileReader(entry, fake_cache())
    for start in (50, 100, 140):
        assert reader.plan(start * MIB, 4096) == [] and reader.plan((start + 1) * MIB, 4096) == []
        assert reader.plan(chunks * MIB + 4096, 4096) == []
    # Not when it would not fit in seven eighths of the cache.
    reader = FileReader(entry, fake_cache(budget=chunks * MIB))
    assert not any(reader.plan(n * MIB, 4096) for n in (10, 80, 150, 30, 120))


def test_read_ahead_loads_in_the_order_planned_the_read_s_own_chunks_first() -> None:
    """Loaders take the queue from its front: a read's own chunks after its first come before
    the window (the read loads its first itself), and the window in file order."""
    entry = entry_of([MIB // 2] * 16)
    loaded: list[int] = []
    reader = FileReader(entry, fake_cache(loaded=loaded))
    assert [entry.chunks.index(r) for r in reader.plan(0, MIB + 5)] == [1, 2, *range(3, 11)]
    assert reader.ahead == 10
    while reader.fetch_next():
        pass
    assert loaded == list(range(1, 11)) and reader.ahead == 0
    reader.plan(4 * MIB, 4096)  # a first seek after a run from the start: nothing queued
    assert not reader.fetch_next()
    reader.plan(MIB, MIB)
    reader.drop_ahead()  # the file was closed: nothing queued is loaded
    assert reader.ahead == 0 and not reader.fetch_next()


def test_several_chunks_load_per_call_in_the_order_planned() -> None:
    """What one worker-thread hop of a loader does: up to ``count`` chunks from the front of
    the queue, False once it found the queue empty."""
    entry = entry_of([MIB // 2] * 16)
    loaded: list[int] = []
    reader = FileReader(entry, fake_cache(loaded=loaded))
    assert [entry.chunks.index(r) for r in reader.plan(0, 4096)] == list(range(1, 9))
    assert reader.fetch_some(3) and loaded == [1, 2, 3] and reader.ahead == 5
    assert reader.fetch_some(5) and loaded == list(range(1, 9)) and reader.ahead == 0
    assert not reader.fetch_some(4) and loaded == list(range(1, 9))
    reader.plan(4096, MIB)  # sequential, the window doubled: the rest of the file
    assert not reader.fetch_some(100) and loaded[8:] == list(range(9, 16))


def test_a_hop_stops_at_a_failed_chunk_and_after_a_release() -> None:
    """A chunk that fails ends the hop with its error and leaves the rest queued (the next
    hop loads them); a release during a hop ends it after the chunk under way."""
    entry = entry_of([MIB // 2] * 16)
    loaded: list[int] = []

    def load(ref: ChunkRef) -> bytes:
        index = ref.chunk_id[0]
        if index == 3:
            raise CorruptData("chunk 3 does not match its hash")
        if index == 6:
            reader.drop_ahead()  # the file is closed while chunk 6 loads
        loaded.append(index)
        return bytes([index]) * ref.length

    reader = FileReader(entry, ChunkCache(load, 256 * MIB))
    assert [entry.chunks.index(r) for r in reader.plan(0, 4096)] == list(range(1, 9))
    with pytest.raises(CorruptData):
        reader.fetch_some(4)
    assert loaded == [1, 2] and reader.ahead == 5
    assert not reader.fetch_some(4)
    assert loaded == [1, 2, 4, 5, 6] and reader.ahead == 0


def test_read_ahead_window_stays_within_a_quarter_of_the_cache() -> None:
    entry = entry_of([MIB] * 64)
    reader = FileReader(entry, fake_cache(budget=8 * MIB))
    offset, planned = 0, 0
    while offset < MIB:
        planned += len(reader.plan(offset, 128 << 10))
        offset += 128 << 10
    assert planned <= 2 + 1  # 8 MiB / 4 ahead of the 1 MiB read so far


def cached_indexes(cache: ChunkCache, entry: FileEntry) -> set[int]:
    return {i for i, ref in enumerate(entry.chunks) if cache.peek(ref) is not None}


def read_in_order(reader: FileReader, start: int, stop: int, step: int = MIB) -> None:
    for offset in range(start, stop, step):
        reader.plan(offset, step)
        assert bytes(reader.read(offset, step)) == bytes([offset // MIB % 256]) * step


def read_at(reader: FileReader, offsets: Iterable[int], size: int = MIB) -> None:
    """Reads of ``size`` at ``offsets`` in turn, each planned as it arrives (as the daemon does)."""
    for offset in offsets:
        reader.plan(offset, size)
        reader.read(offset, size)


def test_a_sequential_reader_s_chunks_leave_the_cache_once_it_is_well_past_them() -> None:
    """With drop_behind, a chunk leaves the cache once a sequential reader's newest read is
    DROP_BEHIND_BYTES past its end (reads in flight behind it keep theirs); a chunk the file
    holds twice stays, and after a seek drops start again from there."""
    chunks = [ChunkRef(ChunkId(bytes([i]) * 32), MIB) for i in range(16)]
    chunks[12] = chunks[2]  # the same content twice in the file
    entry = FileEntry("f", Kind.FILE, 0o644, 16 * MIB, 0, chunks=tuple(chunks))
    cache = fake_cache()
    reader = FileReader(entry, cache, drop_behind=ChunkHolders())
    read_in_order(reader, 0, 9 * MIB, 256 << 10)
    # The newest read began at 9 MiB - 256 KiB: chunks ending 4 MiB before it (0-3) are
    # dropped but chunk 2, which is also chunk 12.
    assert cached_indexes(cache, entry) & set(range(9)) == {2, 4, 5, 6, 7, 8}
    read_in_order(reader, 0, 6 * MIB)  # a seek back to the start, then in order again
    assert cached_indexes(cache, entry) & set(range(9)) == {2, *range(1, 9)} - {0}
    assert cache.size == 8 * MIB  # what it holds: chunks 1-8 (2 is also 12)


def test_without_drop_behind_and_at_random_every_chunk_stays() -> None:
    entry = entry_of([MIB] * 12)
    cache = fake_cache()
    read_in_order(FileReader(entry, cache), 0, 12 * MIB)
    assert cached_indexes(cache, entry) == set(range(12))
    cache = fake_cache()
    at_random = FileReader(entry, cache, drop_behind=ChunkHolders())
    read_at(at_random, (5 * MIB, 2 * MIB, *range(0, 12 * MIB, MIB)))  # two seeks, then in order
    assert cached_indexes(cache, entry) == set(range(12))


def test_a_chunk_another_open_file_holds_is_not_dropped_behind() -> None:
    """Another open file holding a chunk (another version's copy, whose kernel pages are its
    own) keeps it cached; handles of one file count once, and the hold ends at its last."""
    entry = entry_of([MIB] * 12)
    other = entry.chunks[2:4]
    cache, holders = fake_cache(), ChunkHolders()
    holders.hold(1, entry.chunks)
    holders.hold(1, entry.chunks)  # a second handle of the same file
    holders.hold(2, other)
    reader = FileReader(entry, cache, drop_behind=holders)
    read_in_order(reader, 0, 12 * MIB)
    assert cached_indexes(cache, entry) & set(range(7)) == {2, 3}  # file 2 holds them
    assert holders.elsewhere(other[0])
    holders.release(2)
    assert not holders.elsewhere(other[0])
    holders.release(1)
    holders.hold(3, other)  # file 1 still has a handle: two files hold them again
    assert holders.elsewhere(other[0])
    holders.release(3)
    read_in_order(reader, 0, 12 * MIB)
    assert cached_indexes(cache, entry) & set(range(7)) == set()
    holders.release(1)
    holders.hold(3, other)
    assert not holders.elsewhere(other[0])  # file 1 closed: one holder
    with pytest.raises(KeyError):  # one release too many is a bug, not a count below zero
        holders.release(1)


def test_a_released_reader_drops_what_it_read_and_keeps_the_rest() -> None:
    """At release, no read of the handle is in flight: what its last sequential run read is
    dropped to its end, unless the file holds it twice or another open file holds it; what
    was loaded ahead and never read stays, and a file read at random keeps every chunk."""
    chunks = [ChunkRef(ChunkId(bytes([i]) * 32), MIB) for i in range(12)]
    chunks[11] = chunks[3]  # the same content twice in the file
    entry = FileEntry("f", Kind.FILE, 0o644, 12 * MIB, 0, chunks=tuple(chunks))
    cache, holders = fake_cache(), ChunkHolders()
    holders.hold(1, entry.chunks)
    holders.hold(2, entry.chunks[9:10])  # another open file holds chunk 9
    reader = FileReader(entry, cache, drop_behind=holders)
    read_at(reader, range(0, 12 * MIB, MIB))
    # Before release: the last 4 MiB behind the newest read (7-11) and chunk 3 (also 11).
    assert cached_indexes(cache, entry) == {3, 7, 8, 9, 10, 11}
    reader.release()
    assert cached_indexes(cache, entry) == {3, 9, 11}

    entry = entry_of([MIB] * 16)
    cache = fake_cache()
    reader = FileReader(entry, cache, drop_behind=ChunkHolders())
    read_in_order(reader, 0, 6 * MIB)
    while reader.fetch_next():  # the loaders ran the window ahead of the reads
        pass
    ahead = cached_indexes(cache, entry) - set(range(6))
    assert ahead
    reader.release()
    assert cached_indexes(cache, entry) == ahead

    cache = fake_cache()
    at_random = FileReader(entry, cache, drop_behind=ChunkHolders())
    read_at(at_random, (5 * MIB, 2 * MIB, *range(0, 16 * MIB, MIB)))  # two seeks: planned whole
    at_random.release()
    assert cached_indexes(cache, entry) == set(range(16))


def test_a_run_that_starts_inside_a_chunk_does_not_drop_that_chunk() -> None:
    """A seek lands inside a chunk: the run from there read only its end, so neither a release
    nor drop-behind takes it (another open reading its start would load it again). The file
    is larger than one read-ahead window: a smaller one whose first read is not at its start
    is planned whole, and keeps every chunk
    (test_a_file_within_one_window_first_read_at_random_is_planned_whole)."""
    entry = entry_of([MIB] * (MAX_READAHEAD_BYTES // MIB + 8))
    loaded: list[int] = []
    cache = fake_cache(loaded=loaded)
    reader = FileReader(entry, cache, drop_behind=ChunkHolders())
    read_at(reader, [5 * MIB + MIB // 2])  # the end of chunk 5, the start of chunk 6
    reader.release()
    assert cached_indexes(cache, entry) >= {5, 6}
    reader = FileReader(entry, cache, drop_behind=ChunkHolders())
    read_at(reader, range(5 * MIB + MIB // 2, 12 * MIB, MIB))  # a run from inside chunk 5
    reader.release()
    assert 5 in cached_indexes(cache, entry) and not {6, 7, 8, 9, 10} & cached_indexes(cache, entry)
    assert loaded.count(5) == 1


def test_read_ahead_skips_the_chunks_dropped_behind_the_reader() -> None:
    """Chunks dropped behind a sequential reader are in the kernel's page cache: neither the
    loaders (reads ran ahead of them) nor a later whole-file plan (a random reader) load
    them again; a read of one still does."""
    entry = entry_of([MIB] * 16)
    loaded: list[int] = []
    reader = FileReader(entry, fake_cache(loaded=loaded), drop_behind=ChunkHolders())
    read_in_order(reader, 0, 10 * MIB)  # the loaders never ran: the reads loaded their own
    assert loaded == list(range(10))
    while reader.fetch_next():  # the queue holds chunks 1-15, 0-4 dropped meanwhile
        pass
    assert loaded[10:] == list(range(10, 16))  # not the dropped 1-4 again
    del loaded[:]
    reader = FileReader(entry, fake_cache(loaded=loaded), drop_behind=ChunkHolders())
    read_in_order(reader, 0, 10 * MIB)
    reader.plan(7 * MIB, 4096)  # two seeks: a random reader, its file planned whole
    planned = reader.plan(12 * MIB, 4096)
    assert sorted(entry.chunks.index(r) for r in planned) == [10, 11, 13, 14, 15]  # not 0-4
    assert bytes(reader.read(MIB, 10)) == b"\x01" * 10 and loaded[10:] == [1]


def test_reads_across_chunks_are_exact() -> None:
    sizes = [300_000, 1_000_000, 7, 500_000]
    entry = entry_of(sizes)
    reader = FileReader(entry, fake_cache())
    expected = b"".join(bytes([i]) * size for i, size in enumerate(sizes))
    rng = random.Random(3)
    scratch = bytearray(b"\xee" * MIB)  # smaller than the largest reads: those get their own
    for _ in range(200):
        offset = rng.randrange(0, len(expected) + 10)
        size = rng.choice([1, 4096, 128 << 10, MIB, 3 * MIB])
        assert bytes(reader.read(offset, size)) == expected[offset : offset + size]
        cached = reader.read_cached(offset, size)
        assert cached is not None and bytes(cached) == expected[offset : offset + size]
        # Into a reused buffer (the event loop's): exact, whatever the buffer held before.
        into = reader.read_cached(offset, size, scratch)
        assert into is not None and bytes(into) == expected[offset : offset + size]
        assert bytes(reader.read(offset, size, scratch)) == expected[offset : offset + size]


def test_chunks_shorter_than_the_entry_are_an_error_not_stale_bytes() -> None:
    """An entry whose recorded size exceeds its chunks (a damaged or forged record): reads
    past what the chunks hold fail, and never hand out what the reused buffer held before."""
    scratch = bytearray(b"T" * MIB)  # the previous reply, from another file
    chunks = (ChunkRef(ChunkId(b"\x01" * 32), 50_000), ChunkRef(ChunkId(b"\x02" * 32), 50_000))
    entry = FileEntry("f", Kind.FILE, 0o644, 200_000, 0, chunks=chunks)
    reader = FileReader(entry, fake_cache())
    within = reader.read(40_000, 20_000, scratch)  # across both chunks, within what they hold
    assert bytes(within) == b"\x01" * 10_000 + b"\x02" * 10_000
    # Past what the chunks hold: across chunks (copied) and inside the last one (a view).
    for offset, size in [(0, 200_000), (90_000, 20_000), (150_000, 100)]:
        with pytest.raises(CorruptData):
            reader.read(offset, size, scratch)
        with pytest.raises(CorruptData):
            reader.read_cached(offset, size, scratch)


def read_whole(ops: ArtfsOperations, ino: int, size: int, step: int, flags: int = 0) -> bytes | int:
    """The file read front to back in ``step`` reads, with read-ahead; or the errno."""

    async def main() -> bytes | int:
        async with trio.open_nursery() as nursery:
            ops.nursery = nursery  # read-ahead runs, as in the daemon
            info = await ops.open(ino, os.O_RDONLY | flags, CTX)
            got = bytearray()
            try:
                while len(got) <= size:
                    piece = await ops.read(info.fh, len(got), step)
                    if not piece:
                        break
                    got += piece
            except pyfuse3.FUSEError as exc:
                return exc.errno
            finally:
                await ops.release(info.fh)
                ops.nursery = None
        return bytes(got)

    return trio.run(main)


class _Ctx:
    uid, gid, pid, umask = os.getuid(), os.getgid(), 0, 0o022


CTX: pyfuse3.RequestContext = _Ctx()  # type: ignore[assignment]


@pytest.fixture
def big(tmp_path: Path) -> tuple[Path, bytes]:
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(11)
    content = rng.randbytes(6 * MIB) + b"csv,row\n" * 400_000  # raw and zstd chunks
    (src / "big.bin").write_bytes(content)
    put(tmp_path / "home", src, "proj/big")
    return tmp_path / "home", content


def lookup(ops: ArtfsOperations, path: str) -> int:
    ino: int = ROOT_INODE
    for part in path.split("/"):
        ino = trio.run(ops.lookup, ino, part.encode(), CTX).st_ino
    return ino


@pytest.mark.parametrize("step", [128 << 10, MIB, 3 * MIB + 17])
def test_sequential_reads_with_read_ahead_are_exact(big: tuple[Path, bytes], step: int) -> None:
    home, content = big
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, cache_bytes=64 * MIB, lineage=False))
        ino = lookup(ops, "proj/big/v0/big.bin")
        assert read_whole(ops, ino, len(content), step) == content


def test_a_read_of_a_dropped_chunk_brings_read_ahead_back() -> None:
    """A read of a chunk dropped behind means the kernel lost those pages: read-ahead plans
    dropped chunks again from there on."""
    entry = entry_of([MIB] * 16)
    reader = FileReader(entry, fake_cache(), drop_behind=ChunkHolders())
    read_in_order(reader, 0, 10 * MIB)  # drops 0-4
    reader.plan(2 * MIB, MIB)  # a seek back into what was dropped
    reader.read(2 * MIB, MIB)
    assert [entry.chunks.index(r) for r in reader.plan(3 * MIB, MIB)] == [4]  # 5-7 cached
    # The same when only a later chunk of the read was dropped (another file kept its first).
    holders, loaded = ChunkHolders(), []
    holders.hold(1, entry.chunks)  # this reader's file
    holders.hold(2, entry.chunks[1:2])
    reader = FileReader(entry, fake_cache(loaded=loaded), drop_behind=holders)
    read_in_order(reader, 0, 10 * MIB)  # drops 0 and 2-4
    del loaded[:]
    assert entry.chunks[2] in reader.plan(MIB, 2 * MIB)  # a seek: chunk 1 cached, 2 dropped
    assert reader.fetch_next() and loaded == [2]  # queued, and not skipped as dropped


def test_a_version_file_read_in_order_is_dropped_behind_and_read_again_exactly(
    big: tuple[Path, bytes],
) -> None:
    """The daemon keeps little of a version file read front to back (the kernel has its
    pages); read again, as after the kernel dropped them, the chunks load again, verified.
    Opened O_DIRECT (every read comes back to the daemon), it keeps them."""
    home, _ = big
    content = random.Random(5).randbytes(24 * MIB)
    (home.parent / "src" / "big.bin").write_bytes(content)
    put(home, home.parent / "src", "proj/large")
    with Store.open(home) as store:
        vfs = Vfs.create(store, cache_bytes=64 * MIB, lineage=False)
        ops = ArtfsOperations(vfs)
        ino = lookup(ops, "proj/large/v0/big.bin")
        assert read_whole(ops, ino, len(content), MIB) == content
        # Read to its end and released: nothing is left (the kernel has every page).
        assert vfs.cache.size == 0
        assert read_whole(ops, ino, len(content), 128 << 10) == content
        vfs.cache = ChunkCache(store.read_chunk, 64 * MIB)
        assert read_whole(ops, ino, len(content), MIB, os.O_DIRECT) == content
        assert vfs.cache.size == len(content)


def test_open_files_hold_their_chunks_once_per_inode_until_the_last_release(
    big: tuple[Path, bytes],
) -> None:
    """The same content in two versions is two open files (two kernel page caches); two
    handles of one file are one, but an O_DIRECT handle (past the page cache) is its own; a
    small file (its handle keeps its own content) holds nothing; every hold ends with its
    release."""
    home, _ = big
    (home.parent / "src" / "small.txt").write_text("small")
    put(home, home.parent / "src", "proj/copy")
    with Store.open(home) as store:
        vfs = Vfs.create(store, cache_bytes=64 * MIB, lineage=False)
        ops = ArtfsOperations(vfs)
        first = lookup(ops, "proj/big/v0/big.bin")
        copy = lookup(ops, "proj/copy/v0/big.bin")
        small = vfs.open(lookup(ops, "proj/copy/v0/small.txt"), os.O_RDONLY)
        assert len(vfs.holders) == 0  # it holds its own content (see load_own), if any
        handles = [vfs.open(first, os.O_RDONLY)]
        chunk = vfs.reader(handles[0]).entry.chunks[0]
        assert not vfs.holders.elsewhere(chunk)
        handles.append(vfs.open(first, os.O_RDONLY))
        assert not vfs.holders.elsewhere(chunk)
        other = vfs.open(copy, os.O_RDONLY)
        assert vfs.holders.elsewhere(chunk)
        vfs.release(handles.pop())
        assert vfs.holders.elsewhere(chunk)  # the first handle is still open
        vfs.release(handles.pop())
        assert not vfs.holders.elsewhere(chunk)
        vfs.release(other)
        vfs.release(small)
        handles.append(vfs.open(first, os.O_RDONLY))
        assert not vfs.holders.elsewhere(chunk)  # the copy's hold ended with its release
        handles.append(vfs.open(first, os.O_RDONLY | os.O_DIRECT))
        assert vfs.holders.elsewhere(chunk)
        for fh in handles:
            vfs.release(fh)
        assert len(vfs.holders) == 0


@contextmanager
def two_copies(
    big: tuple[Path, bytes], content: bytes
) -> Iterator[tuple[Vfs, ArtfsOperations, Counter[bytes], list[int]]]:
    """``content`` stored as big.bin in two versions (proj/one, proj/two) and mounted without
    a kernel: the vfs, its operations, the loads of each chunk from its pack, the two files'
    inodes."""
    home, _ = big
    src = home.parent / "src"
    (src / "big.bin").write_bytes(content)
    put(home, src, "proj/one")
    put(home, src, "proj/two")
    with Store.open(home) as store:
        vfs = Vfs.create(store, cache_bytes=256 * MIB, lineage=False)
        ops = ArtfsOperations(vfs)
        loads: Counter[bytes] = Counter()
        read_pinned = store.read_pinned

        def counted(ref: ChunkRef, *args: object) -> bytes:
            loads[ref.chunk_id] += 1
            return read_pinned(ref, *args)  # type: ignore[arg-type]

        store.read_pinned = counted  # type: ignore[method-assign]
        yield vfs, ops, loads, [lookup(ops, f"proj/{name}/v0/big.bin") for name in ("one", "two")]


def test_two_versions_of_the_same_data_read_together_load_each_chunk_once(
    big: tuple[Path, bytes],
) -> None:
    """Two versions' copies of a file, the second read 6 MiB behind the first: the first
    drops nothing the second still wants, so every chunk loads once (a reader that dropped
    them made the second load them all again)."""
    with two_copies(big, random.Random(9).randbytes(24 * MIB)) as (_, ops, loads, inodes):

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                ops.nursery = nursery
                first, second = [(await ops.open(ino, os.O_RDONLY, CTX)).fh for ino in inodes]
                for offset in range(0, 30 * MIB, MIB):
                    await ops.read(first, offset, MIB)
                    if offset >= 6 * MIB:
                        await ops.read(second, offset - 6 * MIB, MIB)
                for fh in (first, second):
                    await ops.release(fh)
                ops.nursery = None

        trio.run(main)
        assert loads and max(loads.values()) == 1


def test_a_file_released_while_another_holds_its_chunks_leaves_them_cached(
    big: tuple[Path, bytes],
) -> None:
    """A version file read to its end and released drops its chunks, but not those another
    open file (the same data in another version) has yet to read: each loads once."""
    content = random.Random(13).randbytes(16 * MIB)
    with two_copies(big, content) as (vfs, ops, loads, (one, two)):
        held = vfs.open(two, os.O_RDONLY)
        assert read_whole(ops, one, len(content), MIB) == content
        assert vfs.cache.size == len(content)  # the open copy holds every chunk
        assert read_whole(ops, two, len(content), MIB) == content
        assert loads and max(loads.values()) == 1
        # That read's handle shares the kernel's pages with the one still open (the same
        # inode): its release dropped what it read.
        assert vfs.cache.size == 0
        vfs.release(held)
        assert len(vfs.holders) == 0


def test_a_base_file_read_through_a_based_staging_holds_its_chunks(
    big: tuple[Path, bytes],
) -> None:
    """A base file open through staging is an open file of its own (no keep_cache): while it
    is open, the version file's reader keeps the chunks they share."""
    home, _ = big
    with Store.open(home) as store:
        vfs = Vfs.create(store, cache_bytes=64 * MIB, lineage=False)
        ops = ArtfsOperations(vfs)
        base = trio.run(ops.open, lookup(ops, "proj/big/staging/.artfs-base"), os.O_WRONLY, CTX)
        assert trio.run(ops.write, base.fh, 0, b"v0\n") == 3
        trio.run(ops.release, base.fh)
        version = vfs.open(lookup(ops, "proj/big/v0/big.bin"), os.O_RDONLY)
        chunk = vfs.reader(version).entry.chunks[-1]
        assert not vfs.holders.elsewhere(chunk)
        staged = trio.run(ops.open, lookup(ops, "proj/big/staging/big.bin"), os.O_RDONLY, CTX)
        assert vfs.holders.elsewhere(chunk)
        trio.run(ops.release, staged.fh)
        assert not vfs.holders.elsewhere(chunk)
        vfs.release(version)


def test_random_reader_s_chunks_are_loaded_and_cached_in_the_background(
    big: tuple[Path, bytes],
) -> None:
    """One read at a random offset of a file within one read-ahead window (its first read):
    the file's other chunks load in worker threads while the read is answered, so later reads
    anywhere in it find their chunks cached."""
    home, content = big
    with Store.open(home) as store:
        vfs = Vfs.create(store, cache_bytes=64 * MIB, lineage=False)
        ops = ArtfsOperations(vfs)
        ino = lookup(ops, "proj/big/v0/big.bin")

        async def main() -> FileReader:
            async with trio.open_nursery() as nursery:
                ops.nursery = nursery
                info = await ops.open(ino, os.O_RDONLY, CTX)
                reader = vfs.reader(info.fh)
                offset = 5 * MIB + 4096
                got = await ops.read(info.fh, offset, 4096)
                assert bytes(got) == content[offset : offset + 4096]
                with trio.fail_after(30):
                    while reader.loaders:
                        await trio.sleep(0.01)
                await ops.release(info.fh)
                ops.nursery = None
            return reader

        reader = trio.run(main)
        assert len(reader.entry.chunks) >= 4
        assert all(vfs.cache.peek(ref) is not None for ref in reader.entry.chunks)


def test_flipped_pack_byte_is_eio_even_with_read_ahead(big: tuple[Path, bytes]) -> None:
    home, content = big
    for pack in (home / "packs").iterdir():
        with open(pack, "r+b") as f:
            f.seek(3 * MIB)
            byte = f.read(1)
            f.seek(3 * MIB)
            f.write(bytes([byte[0] ^ 0x01]))
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, cache_bytes=64 * MIB, lineage=False))
        ino = lookup(ops, "proj/big/v0/big.bin")
        assert read_whole(ops, ino, len(content), MIB) == errno.EIO


def skip_without_nowait_reads(path: Path) -> None:
    """Skip the test where ``path``'s filesystem cannot read without waiting (``RWF_NOWAIT``);
    a page on disk (``EAGAIN``) shows that it can."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
    except BlockingIOError:
        pass
    except OSError as exc:
        pytest.skip(f"this filesystem has no RWF_NOWAIT reads: {exc}")
    finally:
        os.close(fd)


def test_the_next_file_is_guessed_in_name_order_and_not_loaded_after_two_wrong_guesses(
    tmp_path: Path,
) -> None:
    """What a reader that read a file to its end gets loaded next: the start of the file after
    it in name order, until two guesses in a row were not the file read to its end next, and
    again from the next right guess."""
    src = tmp_path / "src"
    src.mkdir()
    names = ["a.bin", "b.bin", "c.bin", "d.bin", "e.bin"]
    for seed, name in enumerate(names):
        (src / name).write_bytes(random.Random(seed).randbytes(300_000))
    put(tmp_path / "home", src, "proj/files")
    with Store.open(tmp_path / "home") as store:
        vfs = Vfs.create(store, cache_bytes=8 * MIB, lineage=False)
        v0 = lookup(ArtfsOperations(vfs), "proj/files/v0")
        entries = {name: vfs.node(vfs.lookup(v0, name.encode()).ino).entry for name in names}

        def after(name: str) -> str | None:
            """The file whose chunks next_file_chunks gives once ``name`` is read to its end."""
            fh = vfs.open(vfs.lookup(v0, name.encode()).ino, os.O_RDONLY)
            try:
                chunks = [ref for ref, _ in vfs.next_file_chunks(fh)]
            finally:
                vfs.release(fh)
            found = [n for n, e in entries.items() if e is not None and list(e.chunks) == chunks]
            return found[0] if found else None

        assert after("a.bin") == "b.bin"
        assert after("d.bin") == "e.bin"  # b was guessed: one wrong
        assert after("b.bin") is None  # e was guessed: two wrong, nothing loaded
        assert after("a.bin") is None  # c was guessed: three
        assert after("b.bin") == "c.bin"  # b was guessed: right again
        assert after("e.bin") is None  # nothing after it


def test_inline_reads_from_the_page_cache_are_verified_and_cached(tmp_path: Path) -> None:
    """A small file whose pack bytes are in the page cache is read without a worker thread:
    the bytes are still checked against the chunk id (a flipped byte gives nothing inline and
    EIO from the blocking read), and what passed is kept in the chunk cache."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(random.Random(1).randbytes(20_000))
    (src / "b.bin").write_bytes(random.Random(2).randbytes(20_000))
    put(tmp_path / "home", src, "proj/small")
    with Store.open(tmp_path / "home") as store:
        vfs = Vfs.create(store, cache_bytes=8 * MIB, lineage=False)
        v0 = lookup(ArtfsOperations(vfs), "proj/small/v0")
        a, b = (vfs.lookup(v0, name).ino for name in (b"a.bin", b"b.bin"))
        (pack,) = (tmp_path / "home" / "packs").iterdir()
        data = pack.read_bytes()  # the pack's pages are now in the page cache
        skip_without_nowait_reads(pack)
        first = vfs.open(a, os.O_RDONLY)  # the inode's first open holds it whole (no pin)
        vfs.content_for_kernel(a, first, os.O_RDONLY)  # as the daemon's: the kernel has it
        vfs.release(first)
        fh = vfs.open(a, os.O_RDONLY)  # a reopen: a read comes only if the kernel dropped it
        reader = vfs.reader(fh)
        assert reader.held is None
        got = reader.read_inline(0, 1 << 17)
        assert got is not None and bytes(got) == (src / "a.bin").read_bytes()
        assert reader.read_cached(0, 1 << 17) is not None  # kept in the chunk cache
        vfs.release(fh)
        # Damage b's stored bytes (raw: random data does not compress) in the cached pages.
        at = data.index((src / "b.bin").read_bytes()[:64])
        with open(pack, "r+b") as f:
            f.seek(at + 100)
            f.write(bytes([data[at + 100] ^ 0xFF]))
        fh = vfs.open(b, os.O_RDONLY)
        reader = vfs.reader(fh)
        assert reader.read_inline(0, 1 << 17) is None
        with pytest.raises(CorruptData):
            reader.read(0, 1 << 17)
        vfs.release(fh)


def resident(path: Path, offset: int, length: int) -> bool:
    """Whether every page of ``path``'s bytes at ``offset`` is in the page cache."""
    return all(resident_pages(path, offset, length))


def test_a_small_file_read_off_disk_brings_its_neighbours_in_with_it(tmp_path: Path) -> None:
    """A small file whose pack bytes are on disk is not read on the event loop; the miss asks
    the kernel for the pack's window that holds it, so the files stored next to it (a
    dataset's other samples, read next in any order) are in the page cache by the time they
    are opened, not each a disk read of its own."""
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(3)
    for i in range(120):  # 2.4 MB of pack: more than one window
        (src / f"{i:03d}.bin").write_bytes(rng.randbytes(20_000))
    put(tmp_path / "home", src, "proj/small")
    with Store.open(tmp_path / "home") as store:
        (pack,) = (tmp_path / "home" / "packs").iterdir()
        files = sorted(store.files(store.resolve("proj/small:v0")), key=lambda e: e.path)
        locations = [store.chunk_location(e.chunks[0].chunk_id) for e in files]
        first = locations[0]
        assert first is not None
        window = packs.MISS_WINDOW_BYTES
        start = first.offset - first.offset % window
        # The neighbours: in the window, past what the kernel's own read-ahead of a read at
        # ``first`` brings in (128 KiB by default).
        neighbours = [
            loc
            for loc in locations
            if loc is not None
            and first.offset + (512 << 10) < loc.offset
            and loc.offset + loc.stored_length <= start + window
        ]
        assert neighbours

        def evicted() -> bool:
            with open(pack, "rb") as f:
                os.fsync(f.fileno())  # clean pages, so that the kernel can drop them
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            return not any(
                resident(pack, loc.offset, loc.stored_length) for loc in [first, *neighbours]
            )

        skip_without_nowait_reads(pack)
        # On disk, the event loop does not wait. A miss starts the kernel's read-ahead, which
        # a fast disk may finish before the read looks again: then it is a hit, evicted anew.
        for _ in range(5):
            if not evicted():
                pytest.skip("this filesystem keeps a file's pages whatever it is told (tmpfs)")
            if store.chunks.read_cached(first) is None:
                break
        else:
            pytest.skip("this disk read the evicted chunk back in before the miss, five times")
        deadline = time.monotonic() + 30
        while not all(resident(pack, loc.offset, loc.stored_length) for loc in neighbours):
            assert time.monotonic() < deadline, "the miss's window was not read in"
            time.sleep(0.01)


def threads_pinning(store: Store) -> list[int]:
    """The threads ``store.pin_chunks`` is called in from now on, each call's."""
    threads: list[int] = []
    pin_chunks = store.pin_chunks

    def noted(refs: Sequence[ChunkRef]) -> PinnedChunks:
        threads.append(threading.get_ident())
        return pin_chunks(refs)

    store.pin_chunks = noted  # type: ignore[method-assign]
    return threads


def test_a_file_of_many_chunks_is_pinned_in_a_worker_thread_and_read_exactly(
    big: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its index gets run off the event loop (thousands for a large checkpoint, which held up
    every other request); the handle reads with those pins and leaves none at release."""
    home, content = big
    monkeypatch.setattr(vfs_module, "PIN_ON_LOOP_CHUNKS", 2)
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, cache_bytes=64 * MIB, lineage=False))
        ino = lookup(ops, "proj/big/v0/big.bin")
        assert len(ops.vfs.node(ino).entry.chunks) > 2  # type: ignore[union-attr]
        threads = threads_pinning(store)
        assert read_whole(ops, ino, len(content), MIB) == content
        assert len(threads) == 1 and threads[0] != threading.get_ident()
        assert not store.chunks._pinned  # type: ignore[attr-defined]


def test_pins_handed_to_an_open_are_released_when_it_refuses_or_fails(
    big: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = big
    monkeypatch.setattr(vfs_module, "PIN_ON_LOOP_CHUNKS", 2)
    with Store.open(home) as store:
        vfs = Vfs.create(store, cache_bytes=64 * MIB, lineage=False)
        ino = lookup(ArtfsOperations(vfs), "proj/big/v0/big.bin")
        entry = vfs.entry_to_prepare(ino, os.O_RDONLY)
        assert entry is not None and vfs.entry_to_prepare(ino, os.O_RDWR) is None
        with pytest.raises(ReadOnly):  # opened for writing: no such pins are wanted
            vfs.open(ino, os.O_RDWR, 0, (entry, store.pin_chunks(entry.chunks)))
        assert not store.chunks._pinned  # type: ignore[attr-defined]

        def fails(*args: object, **kwargs: object) -> None:
            raise OSError(errno.EIO, "a step of the open failed")

        with monkeypatch.context() as patched:
            patched.setattr(vfs, "_record_open", fails)
            with pytest.raises(OSError):
                vfs.open(ino, os.O_RDONLY, 0, (entry, store.pin_chunks(entry.chunks)))
        assert not store.chunks._pinned and vfs.open_files == 0  # type: ignore[attr-defined]
        with monkeypatch.context() as patched:  # the reader cannot be made
            patched.setattr(reader_module, "FileReader", fails)
            with pytest.raises(OSError):
                vfs.open(ino, os.O_RDONLY, 0, (entry, store.pin_chunks(entry.chunks)))
        assert not store.chunks._pinned and vfs.open_files == 0  # type: ignore[attr-defined]
        pins = store.pin_chunks(entry.chunks)
        fh = vfs.open(ino, os.O_RDONLY, 0, (entry, pins))
        assert vfs._pins[fh] is pins and store.chunks._pinned  # type: ignore[attr-defined]
        vfs.release(fh)
        assert not store.chunks._pinned  # type: ignore[attr-defined]


def based_staging(store: Store, ref: str) -> None:
    """Base ``ref``'s artifact's staging on that version, as ``artfs stage --from`` does."""
    record = store.resolve(ref)
    art = ArtifactName.parse(ref.partition(":")[0])
    store_staging.set_base(store, art, record)
    store_staging.ensure(store, art)


def test_a_base_file_of_many_chunks_is_pinned_in_a_worker_thread_and_read_exactly(
    big: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A based staging's file that only its base has reads like a version's file, its pins
    made off the event loop and held by its handle until release."""
    home, content = big
    monkeypatch.setattr(vfs_module, "PIN_ON_LOOP_CHUNKS", 2)
    with Store.open(home) as store:
        based_staging(store, "proj/big:v0")
        ops = ArtfsOperations(Vfs.create(store, cache_bytes=64 * MIB, lineage=False))
        ino = lookup(ops, "proj/big/staging/big.bin")
        threads = threads_pinning(store)
        assert read_whole(ops, ino, len(content), MIB) == content
        assert len(threads) == 1 and threads[0] != threading.get_ident()
        assert not store.chunks._pinned  # type: ignore[attr-defined]

        vfs = ops.vfs
        entry = vfs.entry_to_prepare(ino, os.O_RDONLY)
        assert entry is not None and vfs.entry_to_prepare(ino, os.O_WRONLY) is None
        pins = store.pin_chunks(entry.chunks)
        fh = vfs.open(ino, os.O_RDONLY, 0, (entry, pins))
        assert vfs.staging.holds_pins(fh, pins) and len(threads) == 2  # none pinned again
        assert read_whole(ops, ino, len(content), MIB) == content  # beside another handle
        assert store.chunks._pinned  # type: ignore[attr-defined]
        vfs.release_other(fh)
        assert not store.chunks._pinned  # type: ignore[attr-defined]


@pytest.mark.parametrize("meanwhile", ["copied up", "based anew"])
def test_pins_made_for_a_base_file_that_changed_meanwhile_are_released(
    big: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    """Between the pins made in a worker thread and the open, a writer copied the file up
    (the open reads the upper file, which needs none) or the staging was based on another
    version (the open pins that version's file itself): the pins are released, and the
    open reads what staging shows now."""
    home, content = big
    other = content[::-1]
    src = home.parent / "src1"
    src.mkdir()
    (src / "big.bin").write_bytes(other)
    put(home, src, "proj/big")  # v1: another big.bin
    monkeypatch.setattr(vfs_module, "PIN_ON_LOOP_CHUNKS", 2)
    with Store.open(home) as store:
        based_staging(store, "proj/big:v0")
        ops = ArtfsOperations(Vfs.create(store, cache_bytes=64 * MIB, lineage=False))
        vfs = ops.vfs
        ino = lookup(ops, "proj/big/staging/big.bin")
        entry = vfs.entry_to_prepare(ino, os.O_RDONLY)
        assert entry is not None
        pins = store.pin_chunks(entry.chunks)
        unpinned: list[PinnedChunks] = []
        unpin_chunks = store.unpin_chunks

        def noted(released: PinnedChunks) -> None:
            unpinned.append(released)
            unpin_chunks(released)

        store.unpin_chunks = noted  # type: ignore[method-assign]
        if meanwhile == "copied up":
            vfs.staging.copy_up(ArtifactName("proj", "big"), "big.bin")  # a writer came first
            expected = content
        else:
            store_staging.set_base(store, ArtifactName("proj", "big"), store.resolve("proj/big:v1"))
            expected = other
        fh = vfs.open(ino, os.O_RDONLY, 0, (entry, pins))
        assert unpinned == [pins] and not vfs.staging.holds_pins(fh, pins)
        assert read_whole(ops, ino, len(expected), MIB) == expected
        vfs.release_other(fh)
        assert unpinned.count(pins) == 1 and not store.chunks._pinned  # type: ignore[attr-defined]


def test_a_base_reference_file_is_fetched_in_a_worker_thread(tmp_path: Path) -> None:
    """A based staging's reference file is fetched and verified off the event loop, as a
    version's is; a copy fetched for another entry is not served."""
    target = tmp_path / "target.bin"
    target.write_bytes(b"referenced bytes " * 1000)
    log = (
        "import sys, artfs\n"
        "run = artfs.init(project='proj', home=sys.argv[1])\n"
        "art = artfs.Artifact('ext', type='dataset')\n"
        "art.add_reference('file://' + sys.argv[2], name='remote.bin')\n"
        "run.log_artifact(art)\n"
        "run.finish()\n"
    )
    subprocess.run([sys.executable, "-c", log, str(tmp_path / "home"), str(target)], check=True)
    with Store.open(tmp_path / "home") as store:
        based_staging(store, "proj/ext:v0")
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        ino = lookup(ops, "proj/ext/staging/remote.bin")
        threads: list[int] = []
        reference_copy = store.reference_copy

        def noted(entry: FileEntry) -> Path:
            threads.append(threading.get_ident())
            return reference_copy(entry)

        store.reference_copy = noted  # type: ignore[method-assign]
        assert read_whole(ops, ino, target.stat().st_size, MIB) == target.read_bytes()
        assert len(threads) == 1 and threads[0] != threading.get_ident()

        vfs = ops.vfs
        entry = vfs.entry_to_prepare(ino, os.O_RDONLY)
        assert entry is not None and entry.is_reference
        assert vfs.entry_to_prepare(ino, os.O_RDWR) is None
        stale = tmp_path / "stale.bin"
        stale.write_bytes(b"not this")
        fh = vfs.open_reference(ino, os.O_RDONLY, replace(entry, size=8), stale)
        assert vfs.staging.read(fh, 0, 1 << 16) == target.read_bytes()
        vfs.release_other(fh)
