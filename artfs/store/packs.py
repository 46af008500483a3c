"""Pack files: the local chunk store.

A pack is an append-only file of chunk records, so that a folder of 100,000 small files
becomes a few pack files and not 100,000 chunk files::

    pack   := MAGIC record*
    record := b"CK" codec:u8 chunk_id:32 raw_length:u32 stored_length:u32 payload

Records are self-describing, so a pack can be walked without the index (gc, rebuilds). Writers
share nothing: each commit appends to packs it creates itself, so a pack is never appended to by
two processes and a crash leaves whole packs (or a torn tail of one) that no index entry points
at; gc deletes those and merges small packs, so many small commits do not leave many small
files behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import secrets
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from artfs.errors import CorruptData
from artfs.store.chunkstore import ChunkLocation
from artfs.store.hashing import ChunkId

MAGIC = b"ARTFSPK\x01"
RECORD = struct.Struct("<2sB32sII")
RECORD_TAG = b"CK"
# Packs grow to this size before a writer starts a new one: few enough files for a large
# store, small enough that gc rewrites a bounded amount when it compacts one.
TARGET_PACK_SIZE = 256 << 20
# Records are gathered in memory and written in batches of this size (fewer syscalls).
_WRITE_BATCH = 4 << 20


def record_header(chunk_id: ChunkId, codec: int, raw_length: int, stored_length: int) -> bytes:
    return RECORD.pack(RECORD_TAG, codec, chunk_id, raw_length, stored_length)


def iter_records(
    read_at: Callable[[int, int], bytes], size: int, pack_id: int
) -> Iterator[tuple[ChunkId, ChunkLocation]]:
    """Walk the records of a pack of ``size`` bytes through ``read_at(offset, length)``.

    Stops quietly at a torn tail (a crash mid-append); raises CorruptData on a bad header.
    """
    if read_at(0, len(MAGIC)) != MAGIC:
        raise CorruptData(f"pack {pack_id:016x} does not start with the pack magic")
    offset = len(MAGIC)
    while offset + RECORD.size <= size:
        tag, codec, chunk_id, raw_length, stored_length = RECORD.unpack(
            read_at(offset, RECORD.size)
        )
        if tag != RECORD_TAG:
            raise CorruptData(f"pack {pack_id:016x}: bad record header at offset {offset}")
        payload = offset + RECORD.size
        if payload + stored_length > size:
            return
        loc = ChunkLocation(pack_id, payload, stored_length, raw_length, codec)
        yield ChunkId(chunk_id), loc
        offset = payload + stored_length


def pack_name(pack_id: int) -> str:
    return f"{pack_id:016x}.pack"


# How many pack descriptors a process keeps open besides the pinned ones. Enough for a store
# of 64 GB of full packs; stores of many small packs (many small commits before a gc) reuse
# descriptors in LRU order instead of hitting RLIMIT_NOFILE (1024 soft by default).
MAX_OPEN_PACKS = 256
# Cached descriptors of packs that gc unlinked are closed at most this often (one fstat per
# cached descriptor), so a mounted store gives the space of deleted packs back.
UNLINKED_SWEEP_SECONDS = 5.0
# A cached read (read_cached) that finds its chunk's bytes on disk asks the kernel to start
# reading the aligned window of the pack that holds them: a dataset's small files sit together
# in its packs, so its neighbours are what a reader of many small files wants next, in
# whatever order. The kernel's own read-ahead (128 KiB here) grows only for sequential reads,
# and a random epoch over the bench's 6,000 small files waited on ~1,000 separate disk reads.
MISS_WINDOW_BYTES = 1 << 20
# The window is advised in pieces of this size: the kernel cuts one WILLNEED request to the
# device's largest I/O or the file's read-ahead, whichever is larger (128 KiB by default).
_ADVICE_PIECE_BYTES = 128 << 10


class _OpenPack:
    """A descriptor of one pack: ``users`` reads in flight, ``pins`` handles holding it."""

    __slots__ = ("dropped", "fd", "pins", "users")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 0
        self.pins = 0
        self.dropped = False  # evicted or unlinked: closed once no read uses it


def _unlinked(pack: _OpenPack) -> bool:
    """Whether gc deleted the pack ``pack`` is a descriptor of (it still reads)."""
    return os.fstat(pack.fd).st_nlink == 0


class LocalPackStore:
    """Chunk store on pack files under ``root``.

    Descriptors are cached in an LRU of at most ``max_open`` (closed once no read is using
    them). A pinned pack (:meth:`pin`) keeps its descriptor outside that bound until it is
    unpinned, also after gc unlinked the file: an open file of the mount keeps reading the
    locations it resolved at open time.
    """

    def __init__(self, root: Path, max_open: int = MAX_OPEN_PACKS) -> None:
        self.root = root
        self.max_open = max_open
        self._cached: OrderedDict[int, _OpenPack] = OrderedDict()
        self._pinned: dict[int, _OpenPack] = {}
        self._lock = threading.Lock()
        self._next_sweep = time.monotonic() + UNLINKED_SWEEP_SECONDS

    @classmethod
    def open(cls, root: Path, max_open: int | None = None) -> LocalPackStore:
        """``max_open`` defaults to ``MAX_OPEN_PACKS``, or a quarter of the soft
        RLIMIT_NOFILE when that is lower (the rest is for LMDB, sockets, staged files)."""
        root.mkdir(parents=True, exist_ok=True)
        if max_open is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            max_open = MAX_OPEN_PACKS if soft == resource.RLIM_INFINITY else soft // 4
            max_open = max(1, min(MAX_OPEN_PACKS, max_open))
        return cls(root, max_open)

    def path(self, pack_id: int) -> Path:
        return self.root / pack_name(pack_id)

    def writer(self) -> PackWriter:
        return PackWriter(self)

    @property
    def open_count(self) -> int:
        """Descriptors held: the cached ones and the pinned ones."""
        return len(self._cached) + len(self._pinned)

    def _open_fd(self, pack_id: int) -> int:
        """Lock held."""
        path = self.path(pack_id)
        try:
            try:
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno != errno.EMFILE or not self._cached:
                    raise
                # Out of descriptors (a low limit, or many pinned packs): give back half
                # of the cache and try once more.
                for _ in range((len(self._cached) + 1) // 2):
                    self._drop(self._cached.popitem(last=False)[1])
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise CorruptData(f"pack {pack_name(pack_id)} is missing") from None

    def _acquire(self, pack_id: int) -> _OpenPack:
        """The open pack, counted as used by one read (call :meth:`_done` after). Lock held."""
        pack = self._pinned.get(pack_id)
        if pack is None:
            pack = self._cached.get(pack_id)
            if pack is None:
                pack = self._cached[pack_id] = _OpenPack(self._open_fd(pack_id))
                self._evict()
            else:
                self._cached.move_to_end(pack_id)
        pack.users += 1
        return pack

    def _done(self, pack: _OpenPack) -> None:
        with self._lock:
            pack.users -= 1
            self._close_if_unused(pack)

    @staticmethod
    def _close_if_unused(pack: _OpenPack) -> None:
        if pack.dropped and pack.users == 0 and pack.pins == 0 and pack.fd >= 0:
            os.close(pack.fd)
            pack.fd = -1

    def _drop(self, pack: _OpenPack) -> None:
        pack.dropped = True
        self._close_if_unused(pack)

    def _evict(self) -> None:
        while len(self._cached) > self.max_open:
            _, pack = self._cached.popitem(last=False)
            self._drop(pack)

    def _sweep_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + UNLINKED_SWEEP_SECONDS
            self._drop_unlinked()

    def _drop_unlinked(self) -> int:
        gone = [pid for pid, pack in self._cached.items() if _unlinked(pack)]
        for pack_id in gone:
            self._drop(self._cached.pop(pack_id))
        return len(gone)

    def drop_unlinked(self) -> int:
        """Close cached descriptors of packs gc unlinked (so their space is freed); pinned
        ones stay until unpinned. Returns how many were dropped."""
        with self._lock:
            self._next_sweep = time.monotonic() + UNLINKED_SWEEP_SECONDS
            return self._drop_unlinked()

    def read(self, location: ChunkLocation) -> bytes:
        with self._lock:
            self._sweep_due()
            pack = self._acquire(location.pack_id)
        try:
            data = os.pread(pack.fd, location.stored_length, location.offset)
        finally:
            self._done(pack)
        if len(data) != location.stored_length:
            raise CorruptData(f"pack {pack_name(location.pack_id)} is truncated")
        return data

    def read_cached(self, location: ChunkLocation) -> bytes | None:
        """The stored bytes at ``location`` if the page cache holds all of them, else None;
        never waits for the disk (``preadv2`` with ``RWF_NOWAIT``), so the daemon's event loop
        may call it.

        A miss also has the kernel start reading the ``MISS_WINDOW_BYTES`` of the pack that
        hold the first byte not cached (``POSIX_FADV_WILLNEED``), so the chunks stored beside
        it are cached by the time they are asked for. That does not wait for the reads, but
        allocates the window's pages (~0.2 ms here for a window not read yet, and it may wait
        for memory as any allocation does): measured, a random epoch over the bench's small
        files gained more from advising at the first miss, here, than from advising later in
        the worker thread's read."""
        with self._lock:
            self._sweep_due()
            pack = self._acquire(location.pack_id)
        buffer = bytearray(location.stored_length)
        try:
            try:
                got = os.preadv(pack.fd, [buffer], location.offset, os.RWF_NOWAIT)
            except BlockingIOError:  # its first page is on disk
                got = 0
            except OSError:  # EOPNOTSUPP: no RWF_NOWAIT here
                return None
            if got == location.stored_length:
                return bytes(buffer)
            self._advise_window(pack, location.offset + got)  # a short read: the rest is on disk
            return None
        finally:
            self._done(pack)

    @staticmethod
    def _advise_window(pack: _OpenPack, offset: int) -> None:
        """Start the kernel reading the ``MISS_WINDOW_BYTES`` of ``pack`` that hold
        ``offset``; only advice."""
        start = offset & -MISS_WINDOW_BYTES
        for piece in range(start, start + MISS_WINDOW_BYTES, _ADVICE_PIECE_BYTES):
            with contextlib.suppress(OSError):
                os.posix_fadvise(pack.fd, piece, _ADVICE_PIECE_BYTES, os.POSIX_FADV_WILLNEED)

    def pin(self, pack_id: int, linked: bool = False) -> None:
        """Hold pack ``pack_id`` open until a matching :meth:`unpin`, even if it is deleted.

        CorruptData if the pack does not exist (any more); given ``linked``, also when a
        descriptor this store holds is of a pack gc has deleted since (it still reads, but a
        caller resolving a location anew must not keep the deleted pack's space in use)."""
        with self._lock:
            pinned = self._pinned.get(pack_id)
            pack = pinned or self._cached.get(pack_id)
            if linked and pack is not None and _unlinked(pack):
                if pinned is None:
                    self._drop(self._cached.pop(pack_id))
                raise CorruptData(f"pack {pack_id:016x} was deleted")
            if pinned is None:
                pinned = self._cached.pop(pack_id, None) or _OpenPack(self._open_fd(pack_id))
                self._pinned[pack_id] = pinned
            pinned.pins += 1

    def unpin(self, pack_id: int) -> None:
        with self._lock:
            pack = self._pinned.get(pack_id)
            if pack is None:
                return
            pack.pins -= 1
            if pack.pins > 0:
                return
            del self._pinned[pack_id]
            if pack.dropped:
                self._close_if_unused(pack)
            else:
                # Back into the LRU; the next sweep closes it if gc unlinked the pack.
                self._cached[pack_id] = pack
                self._evict()

    def pack_ids(self) -> list[int]:
        ids = []
        for entry in os.scandir(self.root):
            stem, dot, ext = entry.name.partition(".")
            if dot and ext == "pack" and len(stem) == 16:
                ids.append(int(stem, 16))
        return sorted(ids)

    def pack_size(self, pack_id: int) -> int:
        return self.path(pack_id).stat().st_size

    def records(self, pack_id: int) -> Iterator[tuple[ChunkId, ChunkLocation]]:
        fd = os.open(self.path(pack_id), os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            yield from iter_records(lambda off, n: os.pread(fd, n, off), size, pack_id)
        finally:
            os.close(fd)

    def delete_pack(self, pack_id: int) -> None:
        self.forget(pack_id)
        self.path(pack_id).unlink(missing_ok=True)
        _fsync_dir(self.root)

    def forget(self, pack_id: int) -> None:
        """Drop a cached descriptor so the next read re-opens the pack (after a rewrite);
        a pinned one stays with its pins."""
        with self._lock:
            pack = self._cached.pop(pack_id, None)
            if pack is not None:
                self._drop(pack)

    def close(self) -> None:
        with self._lock:
            for pack in [*self._cached.values(), *self._pinned.values()]:
                if pack.fd >= 0:
                    os.close(pack.fd)
                    pack.fd = -1
            self._cached.clear()
            self._pinned.clear()


class PackWriter:
    """Appends chunks for one commit to packs it creates (one at a time, each up to the target)."""

    def __init__(self, store: LocalPackStore) -> None:
        self._store = store
        self._fd = -1
        self._pack_id = 0
        self._end = 0
        self._buffer = bytearray()
        # Batches are written by one background thread so the kernel copy overlaps with
        # chunking and hashing (pwrite of 84 MB took 0.2 s of a 0.6 s put when inline).
        self._io = ThreadPoolExecutor(1, thread_name_prefix="artfs-packio")
        self._inflight: Future[int] | None = None
        # (fd, pack_id) of the packs still open; ``created`` outlives commit so that a commit
        # whose index transaction failed can still remove the packs nobody references.
        self._touched: list[tuple[int, int]] = []
        self.created: list[int] = []

    def _new_pack(self) -> None:
        pack_id = secrets.randbits(64)
        fd = os.open(
            self._store.path(pack_id), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
        )
        os.write(fd, MAGIC)
        self._use(fd, pack_id)

    def _use(self, fd: int, pack_id: int) -> None:
        self._fd, self._pack_id, self._end = fd, pack_id, len(MAGIC)
        self._touched.append((fd, pack_id))
        self.created.append(pack_id)

    def add(self, chunk_id: ChunkId, codec: int, payload: bytes, raw_length: int) -> ChunkLocation:
        if self._fd < 0 or self._end >= TARGET_PACK_SIZE:
            self._flush()
            self._new_pack()
        header = record_header(chunk_id, codec, raw_length, len(payload))
        loc = ChunkLocation(self._pack_id, self._end + len(header), len(payload), raw_length, codec)
        self._buffer += header
        self._buffer += payload
        self._end += len(header) + len(payload)
        if len(self._buffer) >= _WRITE_BATCH:
            self._flush()
        return loc

    def _flush(self) -> None:
        if self._buffer:
            self._wait()
            batch, self._buffer = self._buffer, bytearray()
            self._inflight = self._io.submit(_pwrite_all, self._fd, batch, self._end - len(batch))

    def _wait(self) -> None:
        if self._inflight is not None:
            written, self._inflight = self._inflight.result(), None
            del written

    def commit(self) -> None:
        self._flush()
        self._wait()
        for fd, _ in self._touched:
            os.fsync(fd)
        if self._touched:
            _fsync_dir(self._store.root)
        self._release()

    def abort(self) -> None:
        """Remove every pack this writer created; safe before or after :meth:`commit`, as
        long as no index entry was made to point into them."""
        self._buffer.clear()
        with contextlib.suppress(OSError):
            self._wait()
        self._release()
        for pack_id in self.created:
            # Best effort: a pack left behind is unreferenced, and gc reclaims it.
            with contextlib.suppress(OSError):
                self._store.path(pack_id).unlink(missing_ok=True)
        self.created.clear()

    def _release(self) -> None:
        self._io.shutdown(wait=True)
        for fd, _ in self._touched:
            os.close(fd)
        self._touched.clear()
        self._fd = -1


def _pwrite_all(fd: int, data: bytearray, offset: int) -> int:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
    return len(data)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
