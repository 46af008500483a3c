"""The event loop's side of the loader process (see :mod:`artfs.fs.chunkloader`).

Reads of large chunks and their read-ahead are sent to the loader as requests written to its
socket, with no worker-thread hop; one task reads its answers and puts each verified chunk (a
view of the shared arena) into the chunk cache, where reads and the kernel's next requests find
it. A load the loader cannot do (a chunk held only on a remote or coded with a dictionary, an
arena with no room, a loader that died) is left to the daemon's own worker threads, as every
load was before.
"""

from __future__ import annotations

import enum
import itertools
import logging
from collections.abc import Callable

import trio

from artfs.fs.chunkloader import REPLY, LoaderProcess, loadable
from artfs.fs.reader import ChunkCache, FileReader, ReadBuffer
from artfs.store.manifest import ChunkRef

log = logging.getLogger("artfsd")

# Read-ahead chunks sent to the loader and not answered yet, per loader worker: enough that a
# worker never waits for the next request, few enough that a read's own chunk, sent after
# them, does not wait long behind them (the loader takes requests in the order they came).
_AHEAD_PER_WORKER = 2


class _Sent(enum.Enum):
    LOADING = enum.auto()  # sent, or already loading in a worker thread
    NOT_HERE = enum.auto()  # the loader cannot load it: the daemon's threads must


class ChunkLoads:
    """Loads sent to the loader process, and the answers taken back into ``cache``.

    ``fallback(fh, reader)`` is called for a file whose queued read-ahead holds a chunk the
    loader cannot load: the daemon's loader tasks take that file's queue over."""

    def __init__(
        self,
        loader: LoaderProcess,
        cache: ChunkCache,
        workers: int,
        fallback: Callable[[int, FileReader], None],
    ) -> None:
        self._loader = loader
        self._arena = loader.arena
        self._cache = cache
        self._fallback = fallback
        self._depth = workers * _AHEAD_PER_WORKER
        self._tags = itertools.count(1)
        # tag -> the chunk, its place in the arena, whether it is read-ahead, its answer came
        self._sent: dict[int, tuple[ChunkRef, int, bool, trio.Event]] = {}
        self._loading: dict[bytes, trio.Event] = {}  # chunk id -> its answer came
        self._queued: dict[int, FileReader] = {}  # files with read-ahead to send, by handle
        self._ahead = 0  # read-ahead requests among those sent
        self.alive = True  # loads go to the loader (it said it was ready, and has not died)

    # --- reads ------------------------------------------------------------------------------

    async def read(
        self, reader: FileReader, off: int, size: int, scratch: bytearray
    ) -> ReadBuffer | None:
        """A read's bytes once the loader has loaded the chunks it lacks; None when any of
        them is not the loader's to load (the caller loads it in a worker thread)."""
        if not self.alive:
            return None
        waits = []
        for ref in reader.missing(off, size):
            event = self._loading.get(ref.chunk_id)
            if event is None:
                sent = self._send(reader, ref, ahead=False)
                if sent is not _Sent.LOADING:
                    return None
                event = self._loading.get(ref.chunk_id)
                if event is None:  # loading in a worker thread: wait for it there
                    return None
            waits.append(event)
        for event in waits:
            await event.wait()
        # None if a chunk failed to verify there (the worker thread's load says why) or the
        # cache had no room for it.
        return reader.read_cached(off, size, scratch)

    def read_ahead(self, fh: int, reader: FileReader, off: int, size: int) -> None:
        """A read of ``size`` bytes at ``off`` planned read-ahead: send the chunks it needs
        itself first (unless they are small enough to load on the event loop), then what
        ``reader`` queued ahead, as far as the loader's depth allows. Sent after the
        read-ahead, a file's first chunk waited behind the loads of the next four: 5-8 ms
        for each large file's first read (issue 17, "Eleventh pass")."""
        if not reader.cheap(off, size):
            for ref in reader.missing(off, size):
                if ref.chunk_id in self._loading:
                    continue
                if self._send(reader, ref, ahead=False) is _Sent.NOT_HERE:
                    break  # the read loads it in a worker thread
        self._queued[fh] = reader
        self._pump()

    def forget(self, fh: int) -> None:
        """Handle ``fh`` was released: send nothing more for it."""
        self._queued.pop(fh, None)

    def _pump(self) -> None:
        for fh, reader in list(self._queued.items()):
            while self._ahead < self._depth:
                ref = reader.next_ahead()
                if ref is None:
                    del self._queued[fh]
                    break
                if self._send(reader, ref, ahead=True) is _Sent.NOT_HERE:
                    reader.put_back(ref)
                    del self._queued[fh]
                    self._fallback(fh, reader)
                    break
            else:
                return

    def _send(self, reader: FileReader, ref: ChunkRef, *, ahead: bool) -> _Sent:
        if not self.alive:
            return _Sent.NOT_HERE
        loc = reader.location(ref)
        if loc is None or not loadable(ref, loc):
            return _Sent.NOT_HERE
        if not self._cache.claim(ref):
            return _Sent.LOADING  # cached after all, or a worker thread has it
        at = self._arena.alloc(ref.length)
        if at is None:
            self._cache.settle(ref, None)
            return _Sent.NOT_HERE
        tag = next(self._tags)
        request = self._loader.request(tag, ref, loc, at)
        try:
            sent = self._loader.sock.send(request)
        except OSError:
            sent = 0
        if sent != len(request):  # a full socket (never with these few requests) or a dead one
            self._arena.free(at)
            self._cache.settle(ref, None)
            if sent:
                self._stop("its socket took part of a request")
            return _Sent.NOT_HERE
        event = trio.Event()
        self._sent[tag] = (ref, at, ahead, event)
        self._loading[ref.chunk_id] = event
        self._ahead += ahead
        return _Sent.LOADING

    # --- answers ----------------------------------------------------------------------------

    async def serve(self) -> None:
        """Take the loader's answers until it ends (then every load is the daemon's again)."""
        sock = trio.socket.from_stdlib_socket(self._loader.sock)
        pending = bytearray()
        while True:
            try:
                data = await sock.recv(64 << 10)
            except OSError as exc:
                data = b""
                log.warning("the chunk loader's socket failed: %s", exc)
            if not data:
                self._stop(f"it exited ({self._loader.process.poll()})")
                return
            pending += data
            whole = len(pending) - len(pending) % REPLY.size
            for tag, ok in REPLY.iter_unpack(pending[:whole]):
                self._answer(tag, bool(ok))
            del pending[:whole]
            self._pump()

    def _answer(self, tag: int, ok: bool) -> None:
        ref, at, ahead, event = self._sent.pop(tag)
        self._ahead -= ahead
        del self._loading[ref.chunk_id]
        if ok:
            chunk = self._arena.chunk(at, ref.length)
        else:
            self._arena.free(at)
            chunk = None
        self._cache.settle(ref, chunk)
        event.set()

    def _stop(self, why: str) -> None:
        """The loader is gone: every load is the daemon's from now on; loads it had not
        answered are settled without bytes (their readers load them in worker threads)."""
        if not self.alive:
            return
        self.alive = False
        log.warning("the chunk loader stopped (%s): chunks load in the daemon's threads", why)
        # If it lives on it must not write into the arena: killed, and the places of the loads
        # it had not answered are never handed out again.
        self._loader.process.kill()
        for ref, _, _, event in self._sent.values():
            self._cache.settle(ref, None)
            event.set()
        self._sent.clear()
        self._loading.clear()
        for fh, reader in self._queued.items():
            self._fallback(fh, reader)
        self._queued.clear()
