"""The chunks of a file read at random handed to the kernel's page cache as they load.

A file read at random is planned whole once its reader is seen to read across it (see
``FileReader.plan``): the chunk loader brings every chunk into the chunk cache while the reader
reads. Left there, each of the reader's page faults that missed the kernel's page cache still
cost a FUSE read answered by this daemon, and a serial reader makes those one after another:
a 200 MiB file read through ``mmap`` at random took the load's time and then ~260 such reads.
:class:`PageStores` puts each chunk's pages into the kernel's page cache as the chunk lands
(FUSE_NOTIFY_STORE), so that the reader's later faults are served by the kernel as a native
file's are: ~300 reads a pass became 24-37 (docs/perf.md, "Twenty-sixth pass").

Once a chunk's pages and the pages it shares with its neighbours are stored, the chunk leaves
the chunk cache (``FileReader.drop_stored``), as a sequential reader drops what it has passed:
the kernel holds those pages now, and the chunk's place in the loader's arena takes the next
chunk instead of fresh memory.

The stores run in threads of their own (``STORE_THREADS``), each taking the next chunk
landed. A store of a page waits for the page's lock, which the kernel holds while a read of
that page waits for this daemon: on the event loop, or in a worker thread a read might need,
it could wait for ever; here it waits until the event loop answers that read. So the threads
are stopped while the loop still answers reads (at a signal, before the session stops taking
requests; at an unmount the kernel has ended every read).

Only with the chunk loader process (its answers say when a chunk lands: chunks of up to
64 KiB, a file's tail often, and chunks the daemon's own threads load are not stored, and
their neighbours stay cached), and only for a version file's handle that reads through the
page cache (not one opened ``O_DIRECT``). One handle per inode at a time: the inode's pages
are one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from artfs.errors import CorruptData
from artfs.fs.reader import Chunk, FileReader, ReadBuffer
from artfs.store.manifest import ChunkRef

log = logging.getLogger("artfsd")

# How long a stop waits for the stores under way (which wait only while a read of the same
# pages waits for the event loop's answer).
STOP_SECONDS = 2.0
# Threads making the stores. Each store copies its pages into the kernel's page cache with the
# GIL let go: on the 2-core VM of issue 17's thirty-third pass, two stored a 200 MiB file read
# at random through mmap 11-14% faster than one (the pass 0.860 and 0.893 of the time, 12 and
# 16 rounds), with pread and a 16 MB file as fast (1.000, 1.016); three were no faster (0.915).
STORE_THREADS = 2

Store = Callable[[int, int, ReadBuffer], None]  # inode, offset, bytes (pyfuse3.notify_store)


@dataclass(frozen=True)
class _Watched:
    """A file whose pages are being stored: through handle ``fh``'s reader."""

    fh: int
    reader: FileReader
    stored: bytearray  # 1 for each chunk whose pages were all stored (by a storing thread)


class PageStores:
    """Pages of watched files handed to the kernel as their chunks land.

    :meth:`watch`, :meth:`landed` and :meth:`forget` are the event loop's; the stores are made
    by ``threads`` threads of this object's own, started by :meth:`start` and ended by
    :meth:`stop`, in the order the chunks were queued but not one after another: two chunks
    may be stored at once, and a page two chunks share by both."""

    def __init__(self, store: Store, threads: int = STORE_THREADS) -> None:
        self._store = store  # pyfuse3.notify_store, or a test's
        self._thread_count = threads
        self._files: dict[int, _Watched] = {}  # inode -> the file watched
        # chunk id -> the (inode, chunk index) places waiting for it
        self._wanted: dict[bytes, list[tuple[int, int]]] = {}
        self._work: queue.SimpleQueue[tuple[int, int, Chunk] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._counted = threading.Lock()  # for ``stored``, which the threads add to
        self._loop: trio.lowlevel.TrioToken | None = None  # where chunks are dropped
        self._stopping = False
        self.stored = 0  # bytes handed to the kernel (for tests)

    @property
    def running(self) -> bool:
        """Whether stores are made: started, not stopped, and the kernel takes them."""
        return any(thread.is_alive() for thread in self._threads) and not self._stopping

    def start(self) -> None:
        """Start the storing threads (once pyfuse3 has mounted: a store needs its session)."""
        self._threads = [
            threading.Thread(target=self._run, name=f"artfs-page-stores-{n}", daemon=True)
            for n in range(self._thread_count)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """Make no more stores and wait up to ``timeout`` seconds in all for those under way,
        in a worker thread while the event loop still answers reads; False if one still
        waits."""
        self._stopping = True
        for _ in self._threads:
            self._work.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def watch(self, fh: int, inode: int, reader: FileReader) -> None:
        """Hand ``reader``'s file (open as ``fh`` through the page cache of ``inode``) to the
        kernel chunk by chunk: those cached now at once, the rest as they land. Once per
        inode while its handle is open; O(chunks)."""
        if not self.running or inode in self._files:
            return
        if self._loop is None:
            self._loop = trio.lowlevel.current_trio_token()
        self._files[inode] = _Watched(fh, reader, bytearray(len(reader.entry.chunks)))
        for index, ref in enumerate(reader.entry.chunks):
            data = reader.chunk_bytes(index)
            if data is not None:
                self._work.put((inode, index, data))
            else:
                self._wanted.setdefault(ref.chunk_id, []).append((inode, index))

    def landed(self, ref: ChunkRef, data: Chunk) -> None:
        """``ref`` was loaded and cached (its verified bytes ``data``)."""
        places = self._wanted.pop(ref.chunk_id, None)
        if places is not None and self.running:
            for inode, index in places:
                self._work.put((inode, index, data))

    def forget(self, fh: int, inode: int | None) -> None:
        """Handle ``fh`` of ``inode`` was released: nothing more is stored through it.
        O(chunks)."""
        if inode is None:
            return
        watched = self._files.get(inode)
        if watched is None or watched.fh != fh:
            return
        del self._files[inode]
        for ref in watched.reader.entry.chunks:
            places = self._wanted.get(ref.chunk_id)
            if places is None:
                continue
            places[:] = [place for place in places if place[0] != inode]
            if not places:
                del self._wanted[ref.chunk_id]

    def _drop(self, inode: int, watched: _Watched, index: int) -> None:
        """On the event loop: drop chunk ``index`` of a file still watched through the same
        handle (after a release its reader's file no longer counts as holding its chunks)."""
        if self._files.get(inode) is watched:
            watched.reader.drop_stored(index)

    def _run(self) -> None:
        """A storing thread: each queued chunk's pages, until stopped. A defect ends the
        stores (logged), not the daemon."""
        try:
            while (work := self._work.get()) is not None:
                if not self._stopping:
                    self._store_chunk(*work)
                del work
        except Exception:
            log.exception("stores of pages into the kernel stopped")
        self._stopping = True
        with contextlib.suppress(queue.Empty):
            while self._work.get_nowait() is not None:
                pass  # dropped: the views queued keep their places in the arena
            self._work.put(None)  # another thread's end: it is that thread's to take

    def _store_chunk(self, inode: int, index: int, data: Chunk) -> None:
        watched = self._files.get(inode)
        if watched is None:
            return  # released meanwhile
        try:
            pages = watched.reader.pages_of(index, data)
        except CorruptData:  # its chunks are shorter than its entry: reads say so
            return
        for offset, buffer in pages:
            if self._stopping or not self._put(inode, offset, buffer):
                return  # the chunk stays cached: the kernel may not have its pages
        self._drop_done(inode, watched, index)

    def _put(self, inode: int, offset: int, buffer: ReadBuffer) -> bool:
        """One store; whether the kernel took it (ENOSYS: none is made again, but for one
        another thread has under way)."""
        try:
            self._store(inode, offset, buffer)
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                log.info("the kernel does not take stores of pages: reads fetch them")
                self._stopping = True
            # else (ENOENT: the kernel forgot the inode) a read of those pages comes here
            return False
        with self._counted:
            self.stored += len(buffer)
        return True

    def _drop_done(self, inode: int, watched: _Watched, index: int) -> None:
        """Chunk ``index``'s pages were stored: drop each chunk whose own pages and whose
        neighbours' are stored now (their shared pages were stored with the second of them)."""
        stored = watched.stored
        stored[index] = 1
        last = len(stored) - 1
        assert self._loop is not None
        for near in range(max(index - 1, 0), min(index + 1, last) + 1):
            if stored[near] and stored[max(near - 1, 0)] and stored[min(near + 1, last)]:
                with contextlib.suppress(trio.RunFinishedError):  # the daemon is stopping
                    self._loop.run_sync_soon(self._drop, inode, watched, near)


__all__ = ["PageStores"]
