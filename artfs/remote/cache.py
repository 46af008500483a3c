"""The local chunk cache of a remote-backed store: content-addressed files on local disk.

Chunks fetched from the remote are kept here, stored as fetched (compressed), one file per
chunk under ``DIR/chunks/<first two hex digits>/<chunk id>``. ``DIR`` is ``$ARTFS_CACHE_DIR``,
else ``HOME/cache``. Every process using the store (the daemon, CLI commands, the SDK) shares it:

- an entry appears only whole: it is written to ``DIR/tmp/``, then renamed into place, so a
  killed process leaves at worst a temporary file (removed by the next prune). Entries are not
  fsynced: one fsync per chunk made a cold read of thousands of small files several times
  slower, and an entry a power cut left empty or torn fails its hash check below like any
  damaged entry (a cache is allowed to forget);
- every entry is decompressed and hashed against its id when read; a damaged one is deleted and
  reported as a miss, so the caller fetches the chunk again and bad bytes are never returned. A
  dictionary-coded entry is decoded with the dictionary the reader looks up (the store's, which
  may come through this cache too);
- the cache is bounded by ``max_bytes`` (``$ARTFS_CACHE_MAX``, default 10 GiB) and a free-space
  floor on its filesystem (``$ARTFS_CACHE_MIN_FREE``, default the smaller of 1 GiB and 5 % of
  the filesystem); least recently used entries go first (an entry's mtime is its last use);
- a reader never blocks on another process: an entry deleted while open keeps reading, one
  deleted before the open is a miss.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from artfs.errors import InvalidName, StoreError
from artfs.store import codec
from artfs.store.hashing import ChunkId

DEFAULT_MAX_BYTES = 10 << 30
# The free-space floor: 5 % of the cache's filesystem, at most 1 GiB.
FREE_FRACTION = 0.05
FREE_BYTES_CAP = 1 << 30
# A prune brings the cache down to this fraction of its limit, so that inserts after it do not
# each trigger another scan of the directory.
PRUNE_TO = 0.9
# The size of the cache is rescanned at most this often (other processes insert too).
RESCAN_SECONDS = 30.0
# A hit refreshes an entry's mtime (its LRU position) at most this often.
TOUCH_SECONDS = 60.0
# Temporary files older than this were left by a crashed writer.
STALE_TMP_SECONDS = 3600.0

_HEADER = struct.Struct(">4sBQ")  # magic, codec, raw length
_MAGIC = b"AFC1"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``10G``, ``512MiB``, ``1.5g``, ``4096`` -> bytes (binary units); InvalidName otherwise."""
    match = _SIZE.match(text)
    if match is None:
        raise InvalidName(f"invalid size {text!r}: use a number and a unit, e.g. 10G or 512M")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def limits_from_env() -> tuple[int | None, int | None]:
    """``$ARTFS_CACHE_MAX`` and ``$ARTFS_CACHE_MIN_FREE`` in bytes (None: unset, the default);
    StoreError naming a bad one (a setting of the machine, not a name the user typed)."""
    found: list[int | None] = []
    for variable in ("ARTFS_CACHE_MAX", "ARTFS_CACHE_MIN_FREE"):
        value = os.environ.get(variable)
        try:
            found.append(parse_size(value) if value else None)
        except InvalidName:
            raise StoreError(
                f"{variable}={value!r} is not a size: set it to a number and a unit "
                "(e.g. 10G or 512M) or unset it"
            ) from None
    return found[0], found[1]


@dataclass(frozen=True)
class CacheUsage:
    directory: Path
    entries: int
    bytes: int
    max_bytes: int
    min_free_bytes: int
    free_bytes: int  # free space on the cache's filesystem


@dataclass(frozen=True)
class PruneResult:
    removed: int
    freed_bytes: int
    usage: CacheUsage


class DiskChunkCache:
    """One cache directory (see the module docstring). Thread-safe; shared by processes."""

    def __init__(self, root: Path, max_bytes: int, min_free_bytes: int | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._min_free = min_free_bytes
        self.hits = 0
        self.misses = 0
        self.dropped = 0  # damaged entries found and deleted
        self._lock = threading.Lock()
        self._usage: int | None = None  # bytes, as of the last scan plus our inserts since
        self._scanned_at = 0.0

    @classmethod
    def open(cls, home: Path) -> DiskChunkCache:
        """The cache of the store at ``home``, configured from the environment."""
        root = Path(os.environ.get("ARTFS_CACHE_DIR") or home / "cache")
        max_bytes, min_free = limits_from_env()
        cache = cls(root, DEFAULT_MAX_BYTES if max_bytes is None else max_bytes, min_free)
        try:
            (root / "chunks").mkdir(parents=True, exist_ok=True)
            (root / "tmp").mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot use {root} as the chunk cache: {exc.strerror}") from None
        return cache

    def _path(self, cid: ChunkId) -> Path:
        name = cid.hex()
        return self.root / "chunks" / name[:2] / name

    # --- reading ------------------------------------------------------------------------------

    def contains(self, cid: ChunkId) -> bool:
        return self._path(cid).exists()

    def get(self, cid: ChunkId, dictionaries: codec.Dictionaries | None = None) -> bytes | None:
        """The chunk's verified bytes, or None (a miss) when absent or damaged. A
        dictionary-coded entry is decoded with its dictionary from ``dictionaries`` (one whose
        dictionary cannot be had is dropped as damaged; an error reaching the remote for it
        propagates and drops nothing)."""
        path = self._path(cid)
        try:
            with open(path, "rb") as file:
                stored = file.read()
                info = os.fstat(file.fileno())
        except OSError:  # absent, or unreadable (a cache another user made): a miss
            self._count(hit=False)
            return None
        raw = _decode(cid, stored, dictionaries)
        if raw is None:
            self._drop(path, info.st_ino)
            self._count(hit=False)
            return None
        if time.time() - info.st_mtime > TOUCH_SECONDS:
            with contextlib.suppress(OSError):
                os.utime(path)
        self._count(hit=True)
        return raw

    def _count(self, *, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def _drop(self, path: Path, inode: int) -> None:
        """Delete a damaged entry, unless another process replaced it in the meantime."""
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        with self._lock:
            self.dropped += 1

    # --- writing ------------------------------------------------------------------------------

    def put(self, cid: ChunkId, codec_id: int, payload: bytes, raw_length: int) -> bool:
        """Keep a verified chunk (as stored: ``payload`` in ``codec_id``). False when it was
        not kept: above the free-space floor even with the cache emptied, or a write error
        (a full disk must never fail the read that fetched the chunk)."""
        path = self._path(cid)
        if path.exists():
            return True  # another thread or process kept it meanwhile (same content)
        size = _HEADER.size + len(payload)
        try:
            if not self._make_room(size):
                return False
        except OSError:  # a cache directory we cannot write to: read without keeping
            return False
        tmp = self.root / "tmp" / f"{cid.hex()}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, _HEADER.pack(_MAGIC, codec_id, raw_length))
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            path.parent.mkdir(exist_ok=True)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return False
        with self._lock:
            if self._usage is not None:
                self._usage += size
        return True

    def _make_room(self, size: int) -> bool:
        """Prune when this insert would pass the size limit or the free-space floor."""
        now = time.monotonic()
        with self._lock:
            usage = self._usage
            stale = usage is None or now - self._scanned_at > RESCAN_SECONDS
        if stale:
            usage = self._rescan()
        assert usage is not None
        free, floor = self._free_space()
        if usage + size <= self.max_bytes and free - size >= floor:
            return True
        if size > self.max_bytes or free + usage - size < floor:
            return False  # would not fit even in an emptied cache: keep the others
        target = min(int(self.max_bytes * PRUNE_TO), self.max_bytes - size)
        self.prune(target, extra_free=size)
        free, floor = self._free_space()
        return free - size >= floor and size <= self.max_bytes

    def _rescan(self) -> int:
        total = sum(size for _, _, size in self._entries())
        with self._lock:
            self._usage = total
            self._scanned_at = time.monotonic()
        return total

    def _free_space(self) -> tuple[int, int]:
        """Free bytes on the cache's filesystem and the floor to keep."""
        stat = os.statvfs(self.root)
        free = stat.f_bavail * stat.f_frsize
        if self._min_free is not None:
            return free, self._min_free
        return free, min(FREE_BYTES_CAP, int(stat.f_blocks * stat.f_frsize * FREE_FRACTION))

    # --- housekeeping -------------------------------------------------------------------------

    def _entries(self) -> Iterator[tuple[Path, float, int]]:
        """Every entry as (path, mtime, size); entries deleted during the scan are skipped."""
        chunks = self.root / "chunks"
        with contextlib.suppress(FileNotFoundError), os.scandir(chunks) as fanout:
            for sub in fanout:
                if not sub.is_dir(follow_symlinks=False):
                    continue
                with contextlib.suppress(FileNotFoundError), os.scandir(sub.path) as files:
                    for entry in files:
                        try:
                            info = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        yield Path(entry.path), info.st_mtime, info.st_size

    def prune(self, max_bytes: int | None = None, *, extra_free: int = 0) -> PruneResult:
        """Delete least recently used entries until the cache holds at most ``max_bytes``
        (default: its limit) and the free-space floor (plus ``extra_free``) is kept; also
        temporary files left by crashed writers. One process prunes at a time."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        removed = freed = 0
        with self._prune_lock():
            self._remove_stale_tmp()
            entries = sorted(self._entries(), key=lambda e: e[1])
            total = sum(size for _, _, size in entries)
            free, floor = self._free_space()
            for path, _, size in entries:
                if total <= limit and free >= floor + extra_free:
                    break
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed += 1
                    freed += size
                    free += size
                total -= size
            with self._lock:
                self._usage = total
                self._scanned_at = time.monotonic()
        return PruneResult(removed, freed, self.usage())

    @contextlib.contextmanager
    def _prune_lock(self) -> Iterator[None]:
        fd = os.open(self.root / "prune.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root / "tmp") as files:
            for entry in files:
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)

    def usage(self) -> CacheUsage:
        entries = list(self._entries())
        free, floor = self._free_space()
        total = sum(size for _, _, size in entries)
        return CacheUsage(self.root, len(entries), total, self.max_bytes, floor, free)


def _decode(cid: ChunkId, stored: bytes, dictionaries: codec.Dictionaries | None) -> bytes | None:
    """The raw bytes of an entry if it is sound (header, codec, hash), else None."""
    if len(stored) < _HEADER.size:
        return None
    magic, codec_id, raw_length = _HEADER.unpack_from(stored)
    if magic != _MAGIC:
        return None
    return codec.verified(cid, codec_id, stored[_HEADER.size :], raw_length, dictionaries)
