"""Pages of a file read at random handed to the kernel as its chunks land: which pages a
chunk completes (FileReader.pages_of) and the threads that store them (artfsd.pagestores),
with a recording store in the place of pyfuse3.notify_store. Through a real mount:
tests/mount/test_random_reads.py."""

from __future__ import annotations

import errno
import mmap
import random
import threading
from collections.abc import Callable

import pytest
import trio
from artfsd.pagestores import STORE_THREADS, PageStores

from artfs.fs.reader import ChunkCache, ChunkHolders, FileReader
from artfs.store.hashing import ChunkId
from artfs.store.manifest import ChunkRef, FileEntry, Kind

PAGE = mmap.PAGESIZE


def _reader(sizes: list[int]) -> tuple[FileReader, ChunkCache, bytes]:
    """A reader of a file of chunks of ``sizes`` (chunk i all bytes i), its cache (empty) and
    the file's content."""
    chunks = tuple(ChunkRef(ChunkId(bytes([i]) * 32), n) for i, n in enumerate(sizes))
    entry = FileEntry("f", Kind.FILE, 0o644, sum(sizes), 0, chunks=chunks)
    cache = ChunkCache(lambda ref: bytes([ref.chunk_id[0]]) * ref.length, 1 << 30)
    content = b"".join(bytes([i]) * n for i, n in enumerate(sizes))
    return FileReader(entry, cache), cache, content


def _land(reader: FileReader, cache: ChunkCache, index: int) -> list[tuple[int, bytes]]:
    ref = reader.entry.chunks[index]
    data = bytes([index]) * ref.length
    cache.put(ref, data)
    return [(at, bytes(page)) for at, page in reader.pages_of(index, data)]


@pytest.mark.parametrize("seed", range(40))
def test_chunks_landing_in_any_order_hand_over_every_page_whole_once_all_are_cached(
    seed: int,
) -> None:
    """Chunk bounds fall anywhere in a page, chunks may be smaller than a page: each store
    is page-aligned, whole pages only (the file's last may be short), of the file's bytes;
    once every chunk has landed every page was stored."""
    rng = random.Random(seed)
    sizes = [
        rng.choice([rng.randrange(1, 3 * PAGE), rng.randrange(PAGE, 40 * PAGE)]) for _ in range(12)
    ]
    reader, cache, content = _reader(sizes)
    stored: set[int] = set()
    for index in rng.sample(range(len(sizes)), len(sizes)):
        for at, page in _land(reader, cache, index):
            assert at % PAGE == 0
            assert len(page) % PAGE == 0 or at + len(page) == len(content)
            assert page == content[at : at + len(page)]
            stored.update(range(at // PAGE, -(-(at + len(page)) // PAGE)))
    assert stored == set(range(-(-len(content) // PAGE)))


def test_a_page_shared_with_a_neighbour_waits_for_it() -> None:
    """Chunk 1 spans 5,000..15,000: alone it completes pages 2 (8,192..12,288) only; the
    pages it shares with chunks 0 and 2 come with whichever of them lands second."""
    reader, cache, content = _reader([5000, 10_000, 3000])
    assert [at for at, _ in _land(reader, cache, 1)] == [2 * PAGE]
    assert [at for at, _ in _land(reader, cache, 0)] == [0, PAGE]
    last = _land(reader, cache, 2)  # the file's last, short page (16,384..18,000) is whole
    assert last == [(4 * PAGE, content[4 * PAGE :]), (3 * PAGE, content[3 * PAGE : 4 * PAGE])]


class Recorder:
    """A store that records (inode, offset, bytes) and may fail with ``errno``."""

    def __init__(self, fail: int = 0, failing: frozenset[int] | None = None) -> None:
        self.stores: list[tuple[int, int, bytes]] = []
        self.fail = fail
        self.failing = failing  # the inodes whose stores fail (None: all)
        self._made = threading.Condition()

    def __call__(self, inode: int, offset: int, data: object) -> None:
        with self._made:
            self.stores.append((inode, offset, bytes(data)))  # type: ignore[call-overload]
            self._made.notify_all()
        if self.fail and (self.failing is None or inode in self.failing):
            raise OSError(self.fail, "refused")

    def wait_for(self, count: int) -> None:
        with self._made:
            assert self._made.wait_for(lambda: len(self.stores) >= count, 10)


async def _until(done: Callable[[], bool]) -> None:
    """Let the loop run (the drops the storing threads ask of it) until ``done()``."""
    with trio.fail_after(10):
        while not done():
            await trio.sleep(0.01)


def test_cached_chunks_are_stored_at_watch_the_rest_as_they_land_and_none_after_forget() -> None:
    reader, cache, content = _reader([4 * PAGE, 4 * PAGE, 4 * PAGE])
    other, other_cache, other_content = _reader([PAGE])
    recorder = Recorder()
    stores = PageStores(recorder)
    cache.put(reader.entry.chunks[0], content[: 4 * PAGE])

    async def main() -> None:
        stores.watch(5, 77, reader)
        stores.watch(6, 77, reader)  # once per inode
        second = reader.entry.chunks[1]
        cache.put(second, content[4 * PAGE : 8 * PAGE])
        stores.landed(second, content[4 * PAGE : 8 * PAGE])
        stores.landed(second, content[4 * PAGE : 8 * PAGE])  # no longer wanted
        recorder.wait_for(2)
        stores.forget(6, 77)  # not the handle watched: nothing changes
        stores.forget(5, 77)
        stores.landed(reader.entry.chunks[2], content[8 * PAGE :])  # released: not stored
        other_cache.put(other.entry.chunks[0], other_content)
        stores.watch(7, 78, other)
        recorder.wait_for(3)

    stores.start()
    try:
        trio.run(main)
    finally:
        assert stores.stop()  # every storing thread ended: no store comes after these
    assert sorted(recorder.stores) == [
        (77, 0, content[: 4 * PAGE]),
        (77, 4 * PAGE, content[4 * PAGE : 8 * PAGE]),
        (78, 0, other_content),
    ]
    assert stores.stored == 9 * PAGE
    assert not stores.running


def _cached(cache: ChunkCache, chunks: list[ChunkRef]) -> list[int]:
    return [i for i, ref in enumerate(chunks) if cache.peek(ref) is not None]


def test_a_chunk_leaves_the_cache_once_it_and_its_neighbours_are_stored() -> None:
    """Chunks land as 1 (and 3, the same chunk), 0, 2, 4: each is dropped once it and its
    neighbours are stored (the pages it shares with them are stored with the second of
    each pair), except the one the file holds twice (1 and 3) and the one another open file
    holds (2)."""
    sizes = [5000, 10_000, 7000, 10_000, 3000]
    chunks = [ChunkRef(ChunkId(bytes([i]) * 32), n) for i, n in enumerate(sizes)]
    chunks[3] = chunks[1]
    entry = FileEntry("f", Kind.FILE, 0o644, sum(sizes), 0, chunks=tuple(chunks))
    cache = ChunkCache(lambda ref: b"", 1 << 30)
    holders = ChunkHolders()
    holders.hold(10, entry.chunks)
    holders.hold(11, [chunks[2]])
    reader = FileReader(entry, cache, drop_behind=holders)
    content = b"".join(bytes([ref.chunk_id[0]]) * ref.length for ref in chunks)
    recorder = Recorder()
    stores = PageStores(recorder, threads=1)

    async def main() -> None:
        stores.watch(1, 10, reader)
        for index, cached in ((1, [1, 3]), (0, [1, 3]), (2, [1, 2, 3]), (4, [1, 2, 3])):
            ref = chunks[index]
            data = bytes([ref.chunk_id[0]]) * ref.length
            cache.put(ref, data)
            stores.landed(ref, data)
            # 0's one neighbour is stored: it goes; 1 waits for the page it shares with 2
            await _until(lambda cached=cached: _cached(cache, chunks) == cached)

    stores.start()
    try:
        trio.run(main)
    finally:
        assert stores.stop()
    pages = {offset: data for _, offset, data in recorder.stores}
    assert b"".join(pages[at] for at in sorted(pages)) == content  # every page, whole


def test_a_chunk_whose_store_failed_stays_cached() -> None:
    """The kernel forgot inode 3 (ENOENT): each of its chunks' stores fails, the next is still
    made, and both chunks stay cached, where inode 4's, stored after them, are dropped."""

    def reader_of(inode: int) -> tuple[FileReader, ChunkCache, bytes]:
        reader, cache, content = _reader([4 * PAGE, 4 * PAGE])
        holders = ChunkHolders()
        holders.hold(inode, reader.entry.chunks)
        for ref, at in zip(reader.entry.chunks, (0, 4 * PAGE), strict=True):
            cache.put(ref, content[at : at + 4 * PAGE])
        return FileReader(reader.entry, cache, drop_behind=holders), cache, content

    (forgotten, forgotten_cache, _), (kept, kept_cache, _) = reader_of(3), reader_of(4)
    recorder = Recorder(errno.ENOENT, failing=frozenset({3}))
    stores = PageStores(recorder, threads=1)

    async def main() -> None:
        stores.watch(1, 3, forgotten)
        stores.watch(2, 4, kept)
        await _until(lambda: not _cached(kept_cache, list(kept.entry.chunks)))

    stores.start()
    try:
        trio.run(main)
    finally:
        assert stores.stop()
    assert sorted((inode, offset) for inode, offset, _ in recorder.stores) == [
        (3, 0),
        (3, 4 * PAGE),
        (4, 0),
        (4, 4 * PAGE),
    ]
    assert _cached(forgotten_cache, list(forgotten.entry.chunks)) == [0, 1]


def test_a_kernel_without_stores_is_asked_once() -> None:
    reader, cache, content = _reader([4 * PAGE, 4 * PAGE])
    for ref, at in zip(reader.entry.chunks, (0, 4 * PAGE), strict=True):
        cache.put(ref, content[at : at + 4 * PAGE])
    refused = Recorder(errno.ENOSYS)
    stores = PageStores(refused, threads=1)

    async def main() -> None:
        stores.watch(1, 9, reader)
        refused.wait_for(1)
        await _until(lambda: not stores.running)
        stores.watch(2, 8, reader)  # nothing is queued once stopped
        stores.landed(reader.entry.chunks[1], content[4 * PAGE :])

    stores.start()
    try:
        trio.run(main)
    finally:
        assert stores.stop()
    assert len(refused.stores) == 1


def test_a_defect_in_the_storing_thread_ends_the_stores_not_the_daemon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader, cache, content = _reader([4 * PAGE])
    cache.put(reader.entry.chunks[0], content)

    def broken(inode: int, offset: int, data: object) -> None:
        raise TypeError("a defect")

    stores = PageStores(broken)

    async def main() -> None:
        stores.watch(1, 9, reader)
        await _until(lambda: not stores.running)

    stores.start()
    try:
        trio.run(main)
    finally:
        assert stores.stop()
    assert "stores of pages into the kernel stopped" in caplog.text


def test_two_chunks_are_stored_at_once() -> None:
    """Each store lets go of the GIL while the kernel copies the pages: a second chunk's is
    made while the first's is under way (with one storing thread the barrier times out). The
    tests above that depend on the order of the stores use one thread."""
    reader, cache, content = _reader([4 * PAGE, 4 * PAGE])
    for ref, at in zip(reader.entry.chunks, (0, 4 * PAGE), strict=True):
        cache.put(ref, content[at : at + 4 * PAGE])
    both = threading.Barrier(2, timeout=10)
    made: list[tuple[int, int]] = []

    def store(inode: int, offset: int, data: object) -> None:
        both.wait()  # BrokenBarrierError (the store fails) unless the other one is under way
        made.append((inode, offset))

    assert STORE_THREADS >= 2
    stores = PageStores(store)

    async def main() -> None:
        stores.watch(1, 5, reader)
        await _until(lambda: len(made) == 2)

    stores.start()
    try:
        trio.run(main)
    finally:
        assert stores.stop()
    assert sorted(made) == [(5, 0), (5, 4 * PAGE)]
    assert stores.stored == 8 * PAGE
