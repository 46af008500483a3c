"""The chunks of a file read at random handed to the kernel's page cache as they load.

A file read at random is planned whole once its reader is seen to read across it (see
``FileReader.plan``): the chunk loader brings every chunk into the chunk cache while the reader
reads. Left there, each of the reader's page faults that misses the kernel's page cache still
costs a FUSE read answered by this daemon, and a serial reader makes those one after another
while the load runs: a 200 MiB file read through ``mmap`` at random took the load's time plus
~300 such reads after it. :class:`PageStores` puts each chunk's pages into the kernel's page
cache as the chunk lands (FUSE_NOTIFY_STORE), so that the reader's later faults are served by
the kernel as a native file's would be: ~300 reads became ~90 (docs/mount.md, "Twenty-sixth
pass").

The stores run in a thread of their own. A store of a page waits for the page's lock, which
the kernel holds while a read of that page waits for this daemon: on the event loop, or in a
worker thread a read might need, it could wait for ever. Here it waits only until the event
loop answers that read.

Once a chunk's pages and the pages it shares with its neighbours are stored, the chunk leaves
the chunk cache (``FileReader.drop_stored``), as a sequential reader drops what it has passed:
the kernel holds those pages now, and the chunk's place in the loader's arena takes the next
chunk instead of new memory.

Only with the chunk loader process (its answers say when a chunk lands), and only for a
version file's handle that reads through the page cache (not one opened ``O_DIRECT``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import trio

from artfs.errors import CorruptData
from artfs.fs.reader import Chunk, FileReader, ReadBuffer
from artfs.store.manifest import ChunkRef

log = logging.getLogger("artfsd")

# How long the daemon's shutdown waits for a store under way (one waits only while a read of
# the same pages waits for an answer).
STOP_SECONDS = 2.0

Store = Callable[[int, int, ReadBuffer], None]  # inode, offset, bytes (pyfuse3.notify_store)


@dataclass(frozen=True)
class _Watched:
    inode: int
    reader: FileReader
    stored: bytearray  # 1 for each chunk whose pages were stored (the storing thread's)


class PageStores:
    """Pages of watched files handed to the kernel as their chunks land.

    :meth:`watch`, :meth:`landed` and :meth:`forget` are the event loop's; the stores are made
    by a thread of this object's own, started by :meth:`start` and ended by :meth:`stop`."""

    def __init__(self, store: Store) -> None:
        self._store = store  # pyfuse3.notify_store, or a test's
        self._files: dict[int, _Watched] = {}  # handle -> its inode and reader
        # chunk id -> the (handle, chunk index) places waiting for it
        self._wanted: dict[bytes, list[tuple[int, int]]] = {}
        self._work: queue.SimpleQueue[tuple[int, int, Chunk] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: trio.lowlevel.TrioToken | None = None  # where chunks are dropped
        self._stopping = False
        self.stored = 0  # bytes handed to the kernel (for tests and the log)

    @property
    def running(self) -> bool:
        """Whether stores are made: started, not stopped, and the kernel takes them."""
        return self._thread is not None and not self._stopping

    def start(self) -> None:
        """Start the storing thread (once pyfuse3 has mounted: a store needs its session)."""
        self._thread = threading.Thread(target=self._run, name="artfs-page-stores", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """Make no more stores and wait up to ``timeout`` seconds for one under way; False if
        it is still waiting (for a page a read that will not be answered holds)."""
        self._stopping = True
        self._files.clear()
        self._wanted.clear()
        if self._thread is None:
            return True
        self._work.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def watch(self, fh: int, inode: int, reader: FileReader) -> None:
        """Hand ``reader``'s file (open as ``fh`` through the page cache of ``inode``) to the
        kernel chunk by chunk: those cached now at once, the rest as they land. Once per
        handle; O(chunks)."""
        if not self.running or fh in self._files:
            return
        if self._loop is None:
            self._loop = trio.lowlevel.current_trio_token()
        self._files[fh] = _Watched(inode, reader, bytearray(len(reader.entry.chunks)))
        for index, ref in enumerate(reader.entry.chunks):
            data = reader.chunk_bytes(index)
            if data is not None:
                self._work.put((fh, index, data))
            else:
                self._wanted.setdefault(ref.chunk_id, []).append((fh, index))

    def landed(self, ref: ChunkRef, data: Chunk) -> None:
        """``ref`` was loaded and cached (its verified bytes ``data``)."""
        places = self._wanted.pop(ref.chunk_id, None)
        if places is not None:
            for fh, index in places:
                self._work.put((fh, index, data))

    def forget(self, fh: int) -> None:
        """Handle ``fh`` was released: nothing more is stored for it. O(chunks)."""
        watched = self._files.pop(fh, None)
        if watched is None:
            return
        for ref in watched.reader.entry.chunks:
            places = self._wanted.get(ref.chunk_id)
            if places is None:
                continue
            places[:] = [place for place in places if place[0] != fh]
            if not places:
                del self._wanted[ref.chunk_id]

    def _run(self) -> None:
        while (work := self._work.get()) is not None:
            fh, index, data = work
            watched = self._files.get(fh)
            if watched is None or self._stopping:
                continue  # released meanwhile
            try:
                pages = watched.reader.pages_of(index, data)
            except CorruptData:  # its chunks are shorter than its entry: reads say so
                continue
            for offset, buffer in pages:
                if not self._put(watched.inode, offset, buffer):
                    return
            self._drop_done(watched, index)

    def _drop_done(self, watched: _Watched, index: int) -> None:
        """Chunk ``index``'s pages were stored: drop each chunk whose own pages and whose
        neighbours' are stored now (their shared pages were stored with the second of them)."""
        stored = watched.stored
        stored[index] = 1
        last = len(stored) - 1
        for near in range(max(index - 1, 0), min(index + 1, last) + 1):
            if stored[near] and stored[max(near - 1, 0)] and stored[min(near + 1, last)]:
                assert self._loop is not None
                with contextlib.suppress(trio.RunFinishedError):  # the daemon is stopping
                    self._loop.run_sync_soon(watched.reader.drop_stored, near)

    def _put(self, inode: int, offset: int, buffer: ReadBuffer) -> bool:
        """One store; False when the kernel cannot take any (ENOSYS: none is made again)."""
        try:
            self._store(inode, offset, buffer)
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                log.info("the kernel does not take stores of pages: reads fetch them")
                self._stopping = True
                return False
            # ENOENT: the kernel forgot the inode; a read of those pages comes here
            return True
        self.stored += len(buffer)
        return True


__all__ = ["PageStores"]
