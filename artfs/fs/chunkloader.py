"""Chunk loads in a process of their own, decoded into memory the daemon shares.

A cold read of large files is mostly per-byte work: reading chunks from packs, decoding zstd and
hashing with BLAKE3. Both libraries release the GIL, but the threads doing that work in the
daemon still need it between their calls, and the event loop holds it to reply (pyfuse3 copies
each 1 MiB reply into the kernel without releasing it): measured over one pass, the loader
threads waited 40 ms for the GIL where the pass took 84 (docs/perf.md, issue 17, "Tenth
pass"; what the loader changed: "Eleventh pass"). The loader process has no event loop: its
workers wait only for each other.

- :class:`ChunkArena` is a memfd both processes map: the daemon allocates a chunk's place in it,
  the loader writes the verified chunk there, and the daemon's chunk cache and its replies use
  a read-only view of it. The place is freed when the last view of it is gone (a finalizer on
  the object the views come from), so no reply or worker thread can see it rewritten.
- :class:`LoaderProcess` starts the loader (``python -m artfs.fs.chunkloader``) with one end of
  a socket pair and the arena's descriptor; the daemon sends a fixed-size request per chunk
  (where it is stored, how it is coded, its id, where to write it) and the loader answers each
  with the request's tag and whether the chunk verified. A chunk that did not verify (damaged,
  or its pack gone) is not written anywhere the daemon reads; the daemon loads it again itself,
  which says why it fails.
- :class:`_Loader` is the loader's side: it writes the arena's first ``PREPARED_BYTES`` (so the
  memory a cold read loads into is in place before it starts), says it is ready with a reply of
  tag 0 (the daemon mounts once it has), then ``workers`` threads take the requests off the
  socket in the order they came, each loading and answering the one it took.

On a local block filesystem, a chunk whose pack bytes the kernel says are not all in the page
cache is read past it (``O_DIRECT``; :mod:`artfs.fs.direct`): the mount's decoded pages are
what the kernel should keep, not a second copy of the stored bytes, and a cold load then
reads only the 4 KiB blocks the chunk spans, and keeps none of them (Btrfs still reads a
compressed extent through the cache). A chunk whose bytes are cached (a pack just written),
and every chunk where the kernel cannot say or the filesystem is another kind, is read
through the cache.

The loader opens packs by path (read only), one pair of descriptors per pack for all its
workers, and closes them whenever it runs out of work, so it keeps a pack gc deleted at most
until then. A chunk pinned by an open file whose pack gc has deleted is not found there: the
daemon's own load, from the descriptor it pinned, serves it.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import errno
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path

from artfs.errors import ArtfsError
from artfs.fs import direct
from artfs.store import codec, hashing
from artfs.store.chunkstore import ChunkLocation
from artfs.store.hashing import chunk_id
from artfs.store.manifest import ChunkRef
from artfs.store.packs import pack_name

# tag, pack id, offset in the pack, stored length, raw length, codec, offset in the arena, id
REQUEST = struct.Struct("<QQQIIBQ32s")
Request = tuple[int, int, int, int, int, int, int, bytes]  # REQUEST's fields
# tag, 1 when the chunk verified and is in the arena
REPLY = struct.Struct("<QB")
READY_TAG = 0  # the loader's first reply: it takes requests (theirs count from 1)
# The arena is handed out in units of this size; a chunk takes whole units.
ARENA_UNIT = 64 << 10
# The loader writes this much of the arena's start before it takes requests (first fit hands
# out the start first): a sequential reader's read-ahead window (32 MiB), what it keeps behind
# it (4 MiB) and a margin. Fresh memory costs this VM 0.6-0.8 ms per MiB to fault in (48 MiB
# of MADV_POPULATE_WRITE: 27-40 ms), which a cold read otherwise paid for every MiB up to what
# drop-behind frees (docs/perf.md, "Eleventh pass"). Near the end of a file of 32 MiB or more,
# the next file's start loaded ahead (``artfs.vfs.NEXT_FILE_BYTES``, 16 MiB) can pass it by a
# few MiB, which fault in once, as first written.
PREPARED_BYTES = 48 << 20
# Each worker's buffer for a zstd chunk's stored bytes, written before the loader is ready: the
# store's largest chunk (``artfs.store.chunking.MAX_CHUNK``, not imported: that loads the
# chunker), whose zstd payload is smaller still (else it is stored raw). Grown as chunks came,
# each worker faulted in its buffer anew at every larger chunk, ~1,000 page faults over the
# first cold read of the bench's large files (docs/perf.md, "Seventeenth pass").
_PAYLOAD_BYTES = 4 << 20
_PR_SET_PDEATHSIG = 1


class ChunkArena:
    """Memory shared with the loader process, handed out to chunks first fit in
    ``ARENA_UNIT`` units. Its pages come into being as they are first written, and those past
    its first ``resident`` bytes go again when their chunk is freed: it costs at most
    ``resident`` bytes plus the chunks held past them.

    :meth:`alloc` and :meth:`free` are the daemon's event loop's; a view's finalizer (which
    may run in any thread, or in the middle of them when the garbage collector runs) only
    queues its place, which the next of them frees."""

    def __init__(self, fd: int, memory: mmap.mmap, resident: int) -> None:
        self.fd = fd
        self.size = len(memory)
        self.resident = resident
        self._memory = memory
        units = self.size // ARENA_UNIT
        self._free_starts = [0] if units else []  # sorted starts (in units) of free runs
        self._free: dict[int, int] = {0: units} if units else {}  # start -> units
        self._used: dict[int, int] = {}  # start -> units
        self._released: deque[int] = deque()  # places whose last view is gone

    @classmethod
    def create(cls, size: int, resident: int | None = None) -> ChunkArena:
        """An arena of ``size`` bytes (rounded down to whole units) in a new memfd, whose
        pages past its first ``resident`` bytes (default: all of them) are given back to the
        kernel when the chunks there are freed (see :meth:`_release`)."""
        size -= size % ARENA_UNIT
        fd = os.memfd_create("artfs-chunks", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            memory = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, memory, size if resident is None else resident)

    def map_prepared(self, length: int) -> None:
        """Map the first ``length`` bytes, which the loader has written, into this process
        now (``MADV_POPULATE_READ``): its RSS shows them from the start instead of growing
        into them as chunks placed there are replied from, and replies fault no page in."""
        direct.populate(self._memory, length, direct.MADV_POPULATE_READ)  # else as read

    def close_fd(self) -> None:
        """Close the memfd (the mapping stays): once the loader has it, nothing else needs
        it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @property
    def used(self) -> int:
        """Bytes handed out and not freed yet."""
        self._collect()
        return sum(self._used.values()) * ARENA_UNIT

    def alloc(self, length: int) -> int | None:
        """Where ``length`` bytes may go (a byte offset), or None when no free run is long
        enough."""
        self._collect()
        units = max(1, -(-length // ARENA_UNIT))
        for index, start in enumerate(self._free_starts):
            run = self._free[start]
            if run < units:
                continue
            del self._free[start]
            if run > units:
                self._free[start + units] = run - units
                self._free_starts[index] = start + units
            else:
                del self._free_starts[index]
            self._used[start] = units
            return start * ARENA_UNIT
        return None

    def free(self, at: int) -> None:
        """Give back the place :meth:`alloc` returned at ``at``."""
        self._collect()
        self._release(at)

    def _collect(self) -> None:
        while self._released:
            self._release(self._released.popleft())

    def _release(self, at: int) -> None:
        """Free ``at``'s units, merged with the free runs beside them. Those past the first
        ``resident`` bytes have their pages given back (``MADV_REMOVE``, for both processes):
        first fit keeps chunks low, but runs too short for a large chunk push it higher, and
        without this the pages ever written there stayed for the rest of the mount (the soak
        test saw the daemon grow by 35 MB in 20 s with a 32 MiB cache)."""
        start = at // ARENA_UNIT
        units = self._used.pop(start)
        low, high = max(at, self.resident), (start + units) * ARENA_UNIT
        if low < high:
            with contextlib.suppress(OSError):  # only memory: the pages stay if it fails
                self._memory.madvise(mmap.MADV_REMOVE, low, high - low)
        index = bisect.bisect_left(self._free_starts, start)
        if index < len(self._free_starts) and self._free_starts[index] == start + units:
            units += self._free.pop(start + units)
            del self._free_starts[index]
        if index > 0:
            before = self._free_starts[index - 1]
            if before + self._free[before] == start:
                self._free[before] += units
                return
        self._free[start] = units
        self._free_starts.insert(index, start)

    def chunk(self, at: int, length: int, skip: int = 0) -> memoryview:
        """A read-only view of ``length`` bytes ``skip`` bytes into the place at ``at``, which
        owns the place from now on: it is freed once this view and every view cut from it
        are gone."""
        # Typed by whole units, so there are as many ctypes array types as unit counts (65
        # for the largest chunk, a raw one straddling blocks), not one per chunk length.
        units = self._used[at // ARENA_UNIT]
        owner = (ctypes.c_ubyte * (units * ARENA_UNIT)).from_buffer(self._memory, at)
        weakref.finalize(owner, self._released.append, at)
        return memoryview(owner).cast("B")[skip : skip + length].toreadonly()

    def writable(self, at: int, length: int) -> memoryview:
        """A view to write a chunk into (the loader's side, and tests)."""
        return memoryview(self._memory)[at : at + length]


class LoaderProcess:
    """The daemon's handle on a running loader process: its socket (non-blocking once the
    event loop adopts it) and the arena it writes into."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket, arena: ChunkArena):
        self.process = process
        self.sock = sock
        self.arena = arena

    @classmethod
    def start(
        cls, packs: Path, arena_bytes: int, workers: int, resident_bytes: int | None = None
    ) -> LoaderProcess:
        """Start a loader of ``packs`` (a store's pack directory) with ``workers`` threads and
        an arena of ``arena_bytes``, of which the first ``resident_bytes`` (default: all)
        stay in memory once written (see :meth:`ChunkArena.create`); the loader writes up to
        ``PREPARED_BYTES`` of them before it says it is ready. It exits when the daemon
        closes its socket or dies."""
        arena = ChunkArena.create(arena_bytes, resident_bytes)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        command = [
            sys.executable,
            "-P",
            "-m",
            "artfs.fs.chunkloader",
            str(theirs.fileno()),
            str(arena.fd),
            str(packs),
            str(workers),
            str(min(PREPARED_BYTES, arena.resident)),
        ]
        try:
            process = subprocess.Popen(
                command, pass_fds=(theirs.fileno(), arena.fd), stdin=subprocess.DEVNULL
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            arena.close_fd()  # the mapping stays; the loader has its own descriptor
        return cls(process, ours, arena)

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the loader's first reply (it is ready); False
        when it does not come (the loader died, or is that slow)."""
        self.sock.settimeout(timeout)
        try:
            hello = self.sock.recv(REPLY.size, socket.MSG_WAITALL)
        except OSError:  # TimeoutError too
            return False
        finally:
            self.sock.settimeout(None)
        if len(hello) != REPLY.size or REPLY.unpack(hello) != (READY_TAG, 1):
            return False
        self.arena.map_prepared(min(PREPARED_BYTES, self.arena.resident))
        return True

    @staticmethod
    def request(tag: int, ref: ChunkRef, loc: ChunkLocation, at: int) -> bytes:
        """The request to load ``ref``, stored at ``loc``, into the place at ``at``; the
        answer names ``tag``."""
        return REQUEST.pack(
            tag,
            loc.pack_id,
            loc.offset,
            loc.stored_length,
            loc.raw_length,
            loc.codec,
            at,
            ref.chunk_id,
        )

    def stop(self) -> None:
        """Close the socket (the loader finishes what it has and exits) and reap it."""
        self.sock.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """End the loader now, and reap it."""
        self.sock.close()
        self.process.kill()
        self.process.wait()


def loadable(ref: ChunkRef, loc: ChunkLocation | None) -> bool:
    """Whether the loader can load ``ref`` stored at ``loc`` (None: not in this store's
    packs): raw or plain zstd; chunks coded with a dictionary stay with the daemon."""
    return (
        loc is not None
        and loc.raw_length == ref.length
        and loc.codec in (codec.Codec.RAW, codec.Codec.ZSTD)
    )


def place_of(coding: int, offset: int, length: int) -> tuple[int, int]:
    """(bytes, skip) of the place in the arena for a chunk of ``length`` bytes coded
    ``coding`` and stored at ``offset`` of its pack, and how far into it the chunk starts. A
    raw chunk's place holds the whole ``DIRECT_ALIGN`` blocks its stored bytes span, so that
    a read past the page cache lands in it as it is, and the chunk starts where its first
    byte falls in its block; a zstd chunk is decoded into a place of its own length."""
    return direct.blocks(offset, length) if coding == codec.Codec.RAW else (length, 0)


# --- the loader process -----------------------------------------------------------------------


class _Pack:
    """One pack's descriptors in the loader: ``buffered`` (through the page cache), and
    ``direct`` (``O_DIRECT``, past it), opened at its first use: None until then, -1 when it
    is not to be used (the filesystem refused it or its alignment, or the pack was retired)."""

    def __init__(self, buffered: int) -> None:
        self.buffered = buffered
        self.direct: int | None = None


class _Packs:
    """The loader's open packs, one pair of descriptors per pack for all its workers (the
    kernel's read-ahead of a pack follows one descriptor's reads: two workers reading
    alternate chunks through descriptors of their own would each look like a reader skipping
    every other chunk). They are closed whenever no worker is loading and none has work
    waiting, and one whose pack gc deleted is not used again: the loader keeps a deleted
    pack's space at most until it is next idle.

    ``past_cache``: whether chunks not in the page cache are read past it (see
    :func:`artfs.fs.direct.reads_past_cache`)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self.past_cache = direct.reads_past_cache(root)
        self._packs: dict[int, _Pack] = {}
        self._lock = threading.Lock()
        self._busy = 0  # workers loading
        self._retired: list[int] = []  # descriptors set aside, closed when idle

    def begin(self) -> None:
        with self._lock:
            self._busy += 1

    def end(self, work_waits: Callable[[], bool]) -> None:
        """A worker's load ended; ``work_waits()``: whether another load waits to be taken,
        asked only once no worker is loading (so a load that begins after it was asked finds
        the packs closed and opens them again, and none can be missed)."""
        with self._lock:
            self._busy -= 1
            if not self._busy and not work_waits():
                for pack in self._packs.values():
                    self._retire(pack)
                for fd in self._retired:
                    os.close(fd)
                self._packs.clear()
                self._retired.clear()

    def fds(self, pack_id: int) -> _Pack:
        """The descriptors of ``pack_id``, for a worker between :meth:`begin` and :meth:`end`.
        A pack whose file gc deleted (no links left) has its descriptors set aside, to be
        closed with the rest, and is opened anew (which fails: the daemon's pinned descriptor
        reads it)."""
        with self._lock:
            pack = self._packs.get(pack_id)
            if pack is not None and os.fstat(pack.buffered).st_nlink == 0:
                self._retire(self._packs.pop(pack_id))
                pack = None
            if pack is None:
                fd = os.open(self._root / pack_name(pack_id), os.O_RDONLY)
                pack = self._packs[pack_id] = _Pack(fd)
            return pack

    def direct_fd(self, pack: _Pack) -> int:
        """``pack``'s ``O_DIRECT`` descriptor, opened now if it is not yet: the same file as
        its buffered one (reopened through ``/proc/self/fd``, so even a pack gc deleted
        meanwhile); -1 for none."""
        with self._lock:
            if pack.direct is None:
                try:
                    reopened = f"/proc/self/fd/{pack.buffered}"
                    pack.direct = os.open(reopened, os.O_RDONLY | os.O_DIRECT)
                except OSError:  # no O_DIRECT here, or no descriptor left: read buffered
                    pack.direct = -1
            return pack.direct

    def no_direct(self, pack: _Pack) -> None:
        """``pack``'s filesystem refused a direct read (it wants an alignment that
        ``DIRECT_ALIGN`` is not): every pack, all in that one directory, is read through the
        page cache from now on. The descriptor is closed when the loader is next idle, as
        another worker may be reading through it."""
        with self._lock:
            self.past_cache = False
            self._retire_direct(pack)

    def _retire(self, pack: _Pack) -> None:
        self._retired.append(pack.buffered)
        self._retire_direct(pack)

    def _retire_direct(self, pack: _Pack) -> None:
        if pack.direct is not None and pack.direct >= 0:
            self._retired.append(pack.direct)
        pack.direct = -1  # and a worker still holding the pack opens no other


class _Worker:
    """One loading thread and its buffer: page-aligned for reads past the page cache, and
    holding a zstd chunk's stored bytes; every page of it is in place when this is made."""

    def __init__(self, packs: _Packs, arena: mmap.mmap) -> None:
        self._packs = packs
        self._arena = memoryview(arena)
        self._residency = direct.Residency()
        self._buffer = direct.aligned_buffer(_PAYLOAD_BYTES + 2 * direct.DIRECT_ALIGN)

    def load(self, request: Request) -> bool:
        """Read, decode and verify one chunk into its place in the arena (see
        :func:`place_of`); whether it verified."""
        _, pack_id, offset, stored, raw, coding, at, cid = request
        size, _ = place_of(coding, offset, raw)
        if at < 0 or at + size > len(self._arena):
            return False
        place = self._arena[at : at + size]
        if coding == codec.Codec.RAW:  # read into its place, where it stays
            if stored != raw or (out := self._read(pack_id, offset, stored, place)) is None:
                return False
        else:
            out = place
            payload = self._read(pack_id, offset, stored)
            if payload is None or codec.decode_into(coding, payload, out) != raw:
                return False
        return chunk_id(out) == cid

    def _read(
        self, pack_id: int, offset: int, length: int, place: memoryview | None = None
    ) -> memoryview | None:
        """The ``length`` bytes at ``offset`` of pack ``pack_id``, read into ``place`` (a raw
        chunk's place in the arena, see :func:`place_of`) or else this worker's buffer, where
        they start ``offset % DIRECT_ALIGN`` bytes in; None when the pack is shorter.

        Where packs are read past the page cache (:attr:`_Packs.past_cache`), bytes the
        kernel says are not all cached are read with ``O_DIRECT``, in the whole blocks they
        span: the disk's bytes come straight into place, no cache pages are filled or kept
        beside the decoded pages the kernel caches for the mount, and nothing past the
        chunk's last block is read (docs/perf.md, "Eighteenth pass"). Other bytes are read
        through the cache."""
        span, skip = direct.blocks(offset, length)
        region = place if place is not None else self._scratch(span)
        wanted = region[skip : skip + length]
        pack = self._packs.fds(pack_id)
        if (
            self._packs.past_cache
            and pack.direct != -1
            and self._residency.cached(pack.buffered, offset, length) is False
        ):
            fd = self._packs.direct_fd(pack)
            if fd >= 0 and self._read_direct(pack, fd, region[:span], offset - skip, skip + length):
                return wanted
        return wanted if os.preadv(pack.buffered, [wanted], offset) == length else None

    def _read_direct(
        self, pack: _Pack, fd: int, blocks: memoryview, offset: int, needed: int
    ) -> bool:
        """Whether ``blocks`` (whole ``DIRECT_ALIGN`` blocks, from the block-aligned
        ``offset``) were read through ``fd``, ``pack``'s direct descriptor, up to at least
        ``needed`` bytes. False when the filesystem refuses the alignment (the packs are read
        buffered from then on, :meth:`_Packs.no_direct`) or the read comes back short (the
        buffered read then says whether the pack is shorter)."""
        try:
            return os.preadv(fd, [blocks], offset) >= needed
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._packs.no_direct(pack)
            return False

    def _scratch(self, length: int) -> memoryview:
        """The buffer's first ``length`` bytes, the buffer grown first if it is shorter."""
        if len(self._buffer) < length:
            self._buffer = direct.aligned_buffer(length)
        return memoryview(self._buffer)[:length]


def prepare(arena: mmap.mmap, length: int) -> None:
    """Fault in the arena's first ``length`` bytes (a kernel without MADV_POPULATE_WRITE:
    they come in as chunks are written)."""
    direct.populate(arena, length, direct.MADV_POPULATE_WRITE)


DECODERS = (*codec.COMPILED, *hashing.COMPILED)  # the compiled modules a load runs


def map_decoders() -> int:
    """Map in every page of zstd's and BLAKE3's compiled code now (``direct.map_code``), so
    that no load waits for the disk to fault it in; the bytes covered."""
    return direct.map_code(DECODERS)


class _Loader:
    """The loader process at work: ``workers`` threads, each taking the next request off the
    socket (one at a time, under a lock), loading it and answering it. Without a thread
    between the socket and the workers, a request wakes the worker that waits for it, not a
    thread that wakes a worker (docs/perf.md, "Thirty-fifth pass")."""

    def __init__(self, sock: socket.socket, arena: mmap.mmap, packs: Path) -> None:
        self._sock = sock
        self._arena = arena
        self._packs = _Packs(packs)
        self._take_lock = threading.Lock()
        self._reply_lock = threading.Lock()

    def serve(self, workers: int, prepared: int) -> None:
        """Load chunks as the socket asks until it closes (say ready first, once the first
        ``prepared`` bytes of the arena are written)."""
        prepare(self._arena, prepared)
        map_decoders()
        crew = [_Worker(self._packs, self._arena) for _ in range(workers)]
        self._sock.sendall(REPLY.pack(READY_TAG, 1))
        threads = [
            threading.Thread(target=self._work_on, args=(worker,), daemon=True) for worker in crew
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _take(self) -> Request | None:
        """The next request, or None once the daemon closed its end (then every worker's
        next take is None too); ConnectionError if the daemon reset it."""
        with self._take_lock:
            data = b""
            while len(data) < REQUEST.size:
                more = self._sock.recv(REQUEST.size - len(data), socket.MSG_WAITALL)
                if not more:
                    return None
                data += more
        return REQUEST.unpack(data)

    def _waiting(self) -> bool:
        """Whether a request waits to be taken (or the socket ended: the loader is ending
        anyway): a look that takes nothing off the socket, which any worker may make while
        another waits in :meth:`_take` (the socket has no timeout, so the look never
        waits)."""
        try:
            self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:  # the daemon reset it: no request will come
            pass
        return True

    def _work_on(self, worker: _Worker) -> None:
        """A worker thread. One that fails outside a load ends the loader (its socket closes,
        and the daemon loads every chunk itself): left alone, the request it had taken would
        never be answered, and whoever waits for that chunk would wait for ever."""
        try:
            self._load_requests(worker)
        except ConnectionError:  # the daemon stopped: the socket ends the loader
            pass
        except BaseException:
            traceback.print_exc()
            os._exit(1)

    def _load_requests(self, worker: _Worker) -> None:
        while (request := self._take()) is not None:
            self._packs.begin()
            try:
                ok = worker.load(request)
            except (OSError, ArtfsError, ValueError):
                ok = False  # the daemon loads it again itself, and says why it fails
            except Exception:  # a defect: into the daemon's log, and the daemon loads it
                traceback.print_exc()
                ok = False
            finally:
                self._packs.end(self._waiting)
            with self._reply_lock:
                self._sock.sendall(REPLY.pack(request[0], int(ok)))


def main(argv: list[str]) -> None:
    sock_fd, arena_fd, packs = int(argv[0]), int(argv[1]), Path(argv[2])
    workers, prepared = int(argv[3]), int(argv[4])
    with contextlib.suppress(OSError, AttributeError):  # not Linux's libc: the socket still ends
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon's ^C is the daemon's to handle
    sock = socket.socket(fileno=sock_fd)
    arena = mmap.mmap(arena_fd, os.fstat(arena_fd).st_size, flags=mmap.MAP_SHARED)
    os.close(arena_fd)
    with contextlib.suppress(ConnectionError):  # the daemon is gone
        _Loader(sock, arena, packs).serve(workers, prepared)


if __name__ == "__main__":
    main(sys.argv[1:])


__all__ = [
    "ARENA_UNIT",
    "DECODERS",
    "PREPARED_BYTES",
    "READY_TAG",
    "REPLY",
    "REQUEST",
    "ChunkArena",
    "LoaderProcess",
    "loadable",
    "map_decoders",
    "place_of",
]
