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
import os
import secrets
import struct
import threading
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


class LocalPackStore:
    """Chunk store on pack files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, root: Path) -> LocalPackStore:
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    def path(self, pack_id: int) -> Path:
        return self.root / pack_name(pack_id)

    def writer(self) -> PackWriter:
        return PackWriter(self)

    def _fd(self, pack_id: int) -> int:
        with self._lock:
            fd = self._fds.get(pack_id)
            if fd is None:
                try:
                    fd = os.open(self.path(pack_id), os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    raise CorruptData(f"pack {pack_name(pack_id)} is missing") from None
                self._fds[pack_id] = fd
            return fd

    def read(self, location: ChunkLocation) -> bytes:
        fd = self._fd(location.pack_id)
        data = os.pread(fd, location.stored_length, location.offset)
        if len(data) != location.stored_length:
            raise CorruptData(f"pack {pack_name(location.pack_id)} is truncated")
        return data

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
        with self._lock:
            fd = self._fds.pop(pack_id, None)
        if fd is not None:
            os.close(fd)
        self.path(pack_id).unlink(missing_ok=True)
        _fsync_dir(self.root)

    def forget(self, pack_id: int) -> None:
        """Drop a cached descriptor so the next read re-opens the pack (after a rewrite)."""
        with self._lock:
            fd = self._fds.pop(pack_id, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


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
