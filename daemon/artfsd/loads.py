"""The event loop's side of the chunk-loader process (see :mod:`artfs.fs.chunkloader`).

Reads of chunks above ``INLINE_LOAD_BYTES`` and their read-ahead are sent to the loader as
requests written to its socket, with no worker-thread hop; one task reads its answers and puts
each verified chunk (a view of the shared arena) into the chunk cache, where reads and the
kernel's next requests find it. A load the loader cannot do (a chunk held only on a remote or
coded with a dictionary, an arena with no room, a loader that died) is left to the daemon's own
worker threads, as every load was before; smaller chunks stay with the event loop and the
threads as they were (each takes a whole 64 KiB unit of the arena).
"""

from __future__ import annotations

import enum
import itertools
import logging
from collections import deque
from collections.abc import Callable

import trio

from artfs.fs.chunkloader import REPLY, LoaderProcess, loadable, place_of
from artfs.fs.reader import INLINE_LOAD_BYTES, Chunk, ChunkCache, FileReader, ReadBuffer
from artfs.store.chunkstore import ChunkLocation
from artfs.store.manifest import ChunkRef

log = logging.getLogger("artfsd")

# Read-ahead chunks sent to the loader and not answered yet, per loader worker: enough that a
# worker never waits for the daemon to send its next request, few enough that a read's own
# chunk, sent after them, does not wait long behind them (the loader takes requests in the
# order they came). With two workers 1, 2, 4 and 8 measured the same ("Eleventh pass"); with
# three, 4 read 2-5% above 2 in the paired ratio to the floor in each of three interleaved sets
# (and in a fourth with a two-stage loader not kept), near what such sets tell apart; 6 and
# 8, one set each, were no better (docs/perf.md, "Twenty-fourth pass").
_AHEAD_PER_WORKER = 4


class _Sent(enum.Enum):
    LOADING = enum.auto()  # sent now, or cached or loading already (here or in a thread)
    SMALL = enum.auto()  # at most INLINE_LOAD_BYTES: the event loop's, or a thread's
    NOT_HERE = enum.auto()  # the loader cannot load it now: the daemon's threads must


class ChunkLoads:
    """Loads sent to the loader process, and the answers taken back into ``cache``.

    ``fallback(fh, reader)`` is called for a file whose queued read-ahead holds a chunk the
    loader cannot load: the daemon's loader tasks take that file's queue over. ``landed(ref,
    chunk)``, if given, is told of every chunk loaded and cached (see artfsd.pagestores)."""

    def __init__(
        self,
        loader: LoaderProcess,
        cache: ChunkCache,
        workers: int,
        fallback: Callable[[int, FileReader], None],
        landed: Callable[[ChunkRef, Chunk], None] | None = None,
    ) -> None:
        self._loader = loader
        self._arena = loader.arena
        self._cache = cache
        self._fallback = fallback
        self._landed = landed  # told of each chunk loaded and cached
        self._depth = workers * _AHEAD_PER_WORKER
        self._tags = itertools.count(1)
        # tag -> the chunk, its place in the arena and how far into it the chunk starts
        # (chunkloader.place_of), whether it is read-ahead, its answer came
        self._sent: dict[int, tuple[ChunkRef, int, int, bool, trio.Event]] = {}
        self._loading: dict[bytes, trio.Event] = {}  # chunk id -> its answer came
        self._queued: dict[int, FileReader] = {}  # files with read-ahead to send, by handle
        # The start of the file a reader likely opens next (see follow), sent after every
        # queued read-ahead.
        self._next_file: deque[tuple[ChunkRef, ChunkLocation]] = deque()
        self._ahead = 0  # read-ahead requests among those sent
        self._full_said = False  # the arena's first "no room" was logged
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
                if self._send(reader, ref, ahead=False) is not _Sent.LOADING:
                    return None
                event = self._loading.get(ref.chunk_id)
                if event is None:  # cached meanwhile, or loading in a worker thread
                    return None
            waits.append(event)
        for event in waits:
            await event.wait()
        # None if a chunk failed to verify there (the worker thread's load says why), the
        # cache had no room for it, or the loader stopped.
        return reader.read_cached(off, size, scratch)

    def read_ahead(self, fh: int, reader: FileReader, off: int, size: int) -> None:
        """A read of ``size`` bytes at ``off`` planned read-ahead: send the chunks it needs
        itself first, then what ``reader`` queued ahead, as far as the loader's depth allows.
        Sent after the read-ahead, a file's first chunk waited behind the loads of the next
        four: 5-8 ms for each large file's first read (docs/perf.md, "Eleventh pass")."""
        for ref in reader.missing(off, size):
            if ref.chunk_id in self._loading:
                continue
            if self._send(reader, ref, ahead=False) is not _Sent.LOADING:
                break  # the read loads it on the event loop or in a worker thread
        self._queued[fh] = reader
        self._pump()

    def follow(self, chunks: list[tuple[ChunkRef, ChunkLocation]]) -> None:
        """Load ``chunks`` (``Vfs.next_file_chunks``: the start of the file a reader that
        reached its file's end likely opens next) once every file's queued read-ahead is sent:
        the loader would otherwise have nothing to do between the last chunk of one file and
        the first read of the next (docs/perf.md, "Twenty-second pass"). Given any, they
        replace what an earlier reader queued so and had not sent yet."""
        if chunks and self.alive:
            self._next_file = deque(chunks)
            self._pump()

    def forget(self, fh: int) -> None:
        """Handle ``fh`` was released: send nothing more for it."""
        self._queued.pop(fh, None)

    def _pump(self) -> None:
        """Send queued read-ahead, files in the order they queued, then the next file's
        chunks (see :meth:`follow`), up to the depth."""
        for fh, reader in list(self._queued.items()):
            while self.alive and self._ahead < self._depth:
                ref = reader.next_ahead()
                if ref is None:
                    del self._queued[fh]
                    break
                sent = self._send(reader, ref, ahead=True)
                if sent is _Sent.NOT_HERE:
                    reader.put_back(ref)
                    if self.alive:  # else _stop handed every queued file to the threads
                        del self._queued[fh]
                        self._fallback(fh, reader)
                    break
                # SMALL: a small last chunk is left to the read that wants it
            if not self.alive or self._ahead >= self._depth:
                return
        while self._next_file and self.alive and self._ahead < self._depth:
            ref, loc = self._next_file.popleft()
            self._send_to(ref, loc, ahead=True)

    def _send(self, reader: FileReader, ref: ChunkRef, *, ahead: bool) -> _Sent:
        return self._send_to(ref, reader.location(ref), ahead=ahead)

    def _send_to(self, ref: ChunkRef, loc: ChunkLocation | None, *, ahead: bool) -> _Sent:
        if not self.alive:
            return _Sent.NOT_HERE
        if ref.length <= INLINE_LOAD_BYTES:
            return _Sent.SMALL
        if not loadable(ref, loc):
            return _Sent.NOT_HERE
        assert loc is not None
        if not self._cache.claim(ref):
            return _Sent.LOADING  # cached after all, or a worker thread has it
        size, skip = place_of(loc.codec, loc.offset, ref.length)
        at = self._arena.alloc(size)
        if at is None:
            self._cache.settle(ref, None)
            if not self._full_said:
                self._full_said = True
                log.info("the chunk arena is full: loads go to worker threads until it is not")
            return _Sent.NOT_HERE
        tag = next(self._tags)
        if not self._write(tag, ref, loc, at):
            return _Sent.NOT_HERE
        event = trio.Event()
        self._sent[tag] = (ref, at, skip, ahead, event)
        self._loading[ref.chunk_id] = event
        self._ahead += ahead
        return _Sent.LOADING

    def _write(self, tag: int, ref: ChunkRef, loc: ChunkLocation, at: int) -> bool:
        """Send the request to load claimed ``ref`` into ``at``; False, with the claim settled
        empty and the loader stopped, when the socket does not take it whole."""
        try:
            request = self._loader.request(tag, ref, loc, at)
        except BaseException:
            self._arena.free(at)
            self._cache.settle(ref, None)
            raise
        try:
            sent = self._loader.sock.send(request)
        except BlockingIOError:  # thousands of requests unread: the loader has stalled
            sent, why = 0, "it stopped taking requests"
        except OSError as exc:
            sent, why = 0, f"its socket failed: {exc}"
        else:
            why = "its socket took part of a request"
        if sent == len(request):
            return True
        if not sent:  # else the loader may yet write there: the place is never handed out
            self._arena.free(at)
        self._cache.settle(ref, None)
        self._stop(why)
        return False

    # --- answers ----------------------------------------------------------------------------

    async def serve(self) -> None:
        """Take the loader's answers until it ends (then every load is the daemon's again),
        or until cancelled (the daemon is stopping): either way no claim is left open."""
        sock = trio.socket.from_stdlib_socket(self._loader.sock)
        pending = bytearray()
        try:
            while self.alive:
                try:
                    data = await sock.recv(64 << 10)
                except OSError as exc:
                    self._stop(f"its socket failed: {exc}")
                    return
                if not data:
                    self._stop("it closed its socket (it exited, or failed)")
                    return
                pending += data
                whole = len(pending) - len(pending) % REPLY.size
                for tag, ok in REPLY.iter_unpack(pending[:whole]):
                    self._answer(tag, bool(ok))
                del pending[:whole]
                self._pump()
        finally:
            self._stop("the daemon is stopping", quiet=True)

    def _answer(self, tag: int, ok: bool) -> None:
        sent = self._sent.pop(tag, None)
        if sent is None:  # not asked for (a defect of the loader): ignored
            return
        ref, at, skip, ahead, event = sent
        self._ahead -= ahead
        del self._loading[ref.chunk_id]
        chunk = None
        try:
            if ok:
                chunk = self._arena.chunk(at, ref.length, skip)
            else:
                self._arena.free(at)
        finally:
            self._cache.settle(ref, chunk)
            event.set()
        if chunk is not None and self._landed is not None:
            self._landed(ref, chunk)

    def _stop(self, why: str, *, quiet: bool = False) -> None:
        """Loads go to the daemon's threads from now on: those the loader had not answered
        are settled without bytes (their readers load them in worker threads). ``quiet``:
        the daemon is stopping, and the loader with it."""
        if not self.alive:
            return
        self.alive = False
        self._next_file.clear()
        if not quiet:
            log.warning("the chunk loader stopped (%s): chunks load in the daemon's threads", why)
            # If it lives on it must not write into the arena: killed (and reaped), and the
            # places of the loads it had not answered are never handed out again.
            self._loader.process.kill()
            self._loader.process.wait()
        for ref, _, _, _, event in self._sent.values():
            self._cache.settle(ref, None)
            event.set()
        self._sent.clear()
        self._loading.clear()
        queued, self._queued = self._queued, {}
        if not quiet:
            for fh, reader in queued.items():
                self._fallback(fh, reader)
