"""Reading a pack past the page cache: what the chunk loader needs to decide when to, and to
do it.

- :func:`reads_past_cache` says whether a directory's filesystem is one where ``O_DIRECT``
  reads go to the disk and the page cache can be asked about a file: a local block
  filesystem. Not overlayfs (``cachestat`` looks at the overlay's own, empty, mapping, so
  every chunk would count as not cached), not a network filesystem (switching an inode
  between direct and cached reads flushes and locks it), not tmpfs (there is no disk).
- :class:`Residency` asks whether a range of a file is all in the page cache, with the
  ``cachestat`` system call (Linux 6.5), which reads nothing and maps nothing.
- :func:`aligned_buffer` is page-aligned memory for ``O_DIRECT`` reads, its pages in place.
- :class:`PackRanges` reads byte ranges of packs past the page cache (a chunk's blocks).
- :func:`populate` puts a mapping's pages in place with ``MADV_POPULATE_READ`` or
  ``MADV_POPULATE_WRITE`` (Linux 5.14), which Python 3.11's ``mmap`` module has no names for.
- :func:`map_code` maps every page of the compiled libraries a process decodes and hashes
  with, so that a cold read does not wait for the disk to fault their code in.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import mmap
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from artfs.mounts import mount_table

# Reads past the page cache start and end on multiples of this: the largest logical block of
# the disks in use (4Kn). A filesystem that wants another alignment refuses the read
# (EINVAL), and the loader reads its packs through the page cache from then on.
DIRECT_ALIGN = 4096
_DIRECT_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs"})
# cachestat's number is 451 in the x86, arm64, powerpc, s390, riscv and generic tables alike;
# alpha and mips number it otherwise, and are left without it.
_SYS_CACHESTAT = None if os.uname().machine.startswith(("alpha", "mips")) else 451
MADV_POPULATE_READ = 22
MADV_POPULATE_WRITE = 23
_POPULATE_STEP = 4 << 20


def _libc_function(name: str, restype: type, argtypes: tuple[type, ...] | None = None) -> Any:
    """libc's function ``name``, setting errno for ``ctypes.get_errno``; None without it (not
    Linux's libc)."""
    try:
        call = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    call.restype = restype
    if argtypes is not None:
        call.argtypes = argtypes
    return call


_SYSCALL = _libc_function("syscall", ctypes.c_long) if _SYS_CACHESTAT is not None else None
# For memory no ``mmap`` object owns (a library's code).
_MADVISE = _libc_function("madvise", ctypes.c_int, (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int))
_cachestat_missing = _SYSCALL is None  # set for good once the kernel says ENOSYS


def blocks(offset: int, length: int) -> tuple[int, int]:
    """(bytes, skip) of the whole ``DIRECT_ALIGN`` blocks that ``length`` bytes at ``offset``
    span, and where in the first of them those bytes start."""
    skip = offset % DIRECT_ALIGN
    return -(-(skip + length) // DIRECT_ALIGN) * DIRECT_ALIGN, skip


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem ``path`` is on (``ext4``, ``overlay``, ...): that of the
    mount with the longest mount point holding it (the later of two on one point); None when
    the mount table cannot be read."""
    target = os.path.realpath(path)
    longest, found = -1, None
    for mount in mount_table():
        point = mount.point
        inside = point == "/" or target == point or target.startswith(point + "/")
        if inside and len(point) >= longest:
            longest, found = len(point), mount.fstype
    return found


def reads_past_cache(directory: Path) -> bool:
    """Whether packs in ``directory`` are read past the page cache when not cached: on a
    local block filesystem, with a kernel that says what is cached (asked once about the
    directory itself: a kernel without ``cachestat``, or a filter refusing it, says no)."""
    if filesystem_type(directory) not in _DIRECT_FILESYSTEMS:
        return False
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        return Residency().cached(fd, 0, 1) is not None
    finally:
        os.close(fd)


class _CachestatRange(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_uint64), ("length", ctypes.c_uint64)]


class _Cachestat(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in ("cache", "dirty", "writeback", "evicted", "recently_evicted")
    ]


class Residency:
    """Whether ranges of files are all in the page cache. One per thread: it reuses its
    arguments to the kernel."""

    def __init__(self) -> None:
        self._range = _CachestatRange()
        self._stat = _Cachestat()
        self._args = (ctypes.byref(self._range), ctypes.byref(self._stat), 0)

    def cached(self, fd: int, offset: int, length: int) -> bool | None:
        """Whether every page of ``length`` bytes at ``offset`` of ``fd`` is in the page
        cache (dirty ones count); None when the kernel does not say: it has no
        ``cachestat``, or refuses it for this file (``EPERM``: a file this process may
        neither write nor owns, on kernels that ask that)."""
        global _cachestat_missing
        if _cachestat_missing or _SYSCALL is None:
            return None
        self._range.offset, self._range.length = offset, length
        if _SYSCALL(_SYS_CACHESTAT, fd, *self._args) != 0:
            if ctypes.get_errno() == errno.ENOSYS:
                _cachestat_missing = True
            return None
        pages = (offset + length - 1) // mmap.PAGESIZE - offset // mmap.PAGESIZE + 1
        return bool(self._stat.cache >= pages)


def populate(memory: mmap.mmap, length: int, advice: int) -> bool:
    """Put the first ``length`` bytes of ``memory`` in place now, ``advice`` being
    ``MADV_POPULATE_READ`` (mapped as they are) or ``MADV_POPULATE_WRITE`` (written); False
    when the kernel cannot (before 5.14), and then the pages come as they are first used."""
    end = min(length, len(memory))
    try:
        for at in range(0, end, _POPULATE_STEP):
            memory.madvise(advice, at, min(_POPULATE_STEP, end - at))
    except OSError:
        return False
    return True


def code_files(modules: Iterable[str]) -> list[str]:
    """The files of the compiled ``modules`` (names in ``sys.modules``) this process has
    loaded, as the kernel names them; a module not loaded, or not compiled, is passed over."""
    files = (getattr(sys.modules.get(name), "__file__", None) for name in modules)
    return [os.path.realpath(name) for name in files if name and not name.endswith(".py")]


def map_code(modules: Iterable[str]) -> int:
    """Map in now every page this process has mapped of the compiled ``modules`` (see
    :func:`code_files`) with ``MADV_POPULATE_READ``, best effort, and return how many bytes
    that covered (0 with a kernel before 5.14).

    A library's code comes into a process page by page as it first runs, and a page no
    process maps is dropped with the rest of the page cache: after the caches were dropped,
    a fresh chunk loader's first decodes waited for the disk at seven pages of zstd's
    decoder (docs/perf.md, "Thirty-seventh pass"). Mapped pages are not dropped with it
    (memory pressure may still reclaim them)."""
    wanted = {os.fsencode(name) for name in code_files(modules)}
    if _MADVISE is None or not wanted:
        return 0
    try:
        with open("/proc/self/maps", "rb") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return 0
    covered = 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[5] not in wanted or not fields[1].startswith(b"r"):
            continue
        start, end = (int(at, 16) for at in fields[0].split(b"-"))
        if _MADVISE(start, end - start, MADV_POPULATE_READ) == 0:
            covered += end - start
        elif ctypes.get_errno() == errno.EINVAL:
            return covered  # a kernel without MADV_POPULATE_READ: so for every mapping
    return covered


def aligned_buffer(length: int) -> mmap.mmap:
    """``length`` bytes of page-aligned private memory, every page of it in place (written
    now, so that no read into it faults)."""
    buffer = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE)
    if not populate(buffer, length, MADV_POPULATE_WRITE):  # a byte written in each page
        for at in range(0, length, mmap.PAGESIZE):
            buffer[at] = 0
    return buffer


class PackRanges:
    """Byte ranges of the packs in ``directory``, for reads of a chunk's blocks
    (``FileReader.read_blocks``): past the page cache where the filesystem takes ``O_DIRECT``,
    else through it with the kernel's read-ahead off. A buffered read of 64 KiB had this
    disk read 8 MiB ahead into the cache (docs/perf.md, "Twenty-fifth pass"). Each read
    opens the pack for itself (~10 us here, against ~100 us for the read): nothing is held
    open, and a pack gc deleted since is not found (the caller then loads whole chunks from
    the packs it pinned). Any number of threads may read at once: each has its own buffer."""

    def __init__(self, directory: Path, direct: bool) -> None:
        self._directory = directory
        self._direct = direct  # until the filesystem refuses O_DIRECT
        self._local = threading.local()

    @classmethod
    def open(cls, directory: Path) -> PackRanges:
        """Past the cache on a local block filesystem only (see :func:`reads_past_cache`)."""
        return cls(directory, filesystem_type(directory) in _DIRECT_FILESYSTEMS)

    def read(self, pack: str, offset: int, length: int) -> bytes:
        """``length`` bytes of pack file ``pack`` from ``offset`` (fewer at its end)."""
        path = self._directory / pack
        if self._direct:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._direct = False
            else:
                try:
                    data = self._read_direct(fd, offset, length)
                finally:
                    os.close(fd)
                if data is not None:
                    return data
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def _read_direct(self, fd: int, offset: int, length: int) -> bytes | None:
        """The bytes, read in the whole blocks they span into this thread's buffer; None
        when the filesystem refuses the alignment (then every read is buffered)."""
        span, skip = blocks(offset, length)
        buffer: mmap.mmap | None = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) < span:
            buffer = self._local.buffer = aligned_buffer(span)
        view = memoryview(buffer)
        try:
            got = os.preadv(fd, [view[:span]], offset - skip)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._direct = False
            return None
        return bytes(view[skip : max(skip, min(got, skip + length))])


@functools.cache
def pack_ranges(directory: Path) -> PackRanges:
    """The one :class:`PackRanges` of a pack directory in this process."""
    return PackRanges.open(directory)


__all__ = [
    "DIRECT_ALIGN",
    "MADV_POPULATE_READ",
    "MADV_POPULATE_WRITE",
    "PackRanges",
    "Residency",
    "aligned_buffer",
    "blocks",
    "code_files",
    "filesystem_type",
    "map_code",
    "pack_ranges",
    "populate",
    "reads_past_cache",
]
