"""The daemon reads the store's index into memory at start and keeps it there (``--index-mb``)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from artfs.store import Store
from tests.mount.mountutil import Mount, StartMount, put, resident_pages, unmount_and_stop

KIB = 1 << 10


def index_file(home: Path) -> Path:
    return home / "index" / "data.mdb"


def drop_clean_pages(path: Path) -> None:
    """Ask the kernel to drop ``path``'s clean pages, as dropping every clean cache of the
    machine would (both leave pages a process maps), without taking the page cache from
    under tests running beside this one."""
    with path.open("rb") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def index_mappings(mount: Mount) -> list[int]:
    """The sizes of the daemon's mappings of its index file (LMDB's own maps 1 TiB)."""
    index = os.path.realpath(index_file(mount.home))
    sizes = []
    for line in Path(f"/proc/{mount.proc.pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == index:
            start, end = (int(part, 16) for part in fields[0].split("-"))
            sizes.append(end - start)
    return sizes


def page_rounded(size: int) -> int:
    return -(-size // mmap.PAGESIZE) * mmap.PAGESIZE


@pytest.fixture
def many_files_home(tmp_path: Path) -> Path:
    """A store whose index is over 1 MiB: a version of 6,000 files, each a chunk of its own."""
    src = tmp_path / "src"
    for d in range(30):
        (src / f"d{d:02}").mkdir(parents=True)
        for f in range(200):
            (src / f"d{d:02}" / f"f{f:03}.bin").write_bytes(f"{d} {f}\n".encode() * 40)
    put(tmp_path / "home", src, "proj/data")
    return tmp_path / "home"


def test_the_index_is_held_whole_or_not_at_all(many_files_home: Path) -> None:
    size = index_file(many_files_home).stat().st_size
    with Store.open(many_files_home) as store:
        mapping = store.index.hold_in_memory(size)
        assert mapping is not None
        try:
            assert len(mapping) == size
            assert mapping[:] == index_file(many_files_home).read_bytes()
        finally:
            mapping.close()
        assert store.index.hold_in_memory(size - 1) is None  # larger than the limit
        assert store.index.hold_in_memory(0) is None


def test_the_daemon_maps_its_whole_index_unless_told_not_to(
    many_files_home: Path, start_mount: StartMount
) -> None:
    size = index_file(many_files_home).stat().st_size
    holding = start_mount(many_files_home)
    assert "held in memory" in holding.log_text()
    assert page_rounded(size) in index_mappings(holding)
    assert (holding.path / "proj/data/v0/d29/f199.bin").read_bytes() == b"29 199\n" * 40
    unmount_and_stop(holding)

    too_small = start_mount(many_files_home, None, "--index-mb", "1")  # the index is larger
    assert "larger than --index-mb" in too_small.log_text()
    assert page_rounded(size) not in index_mappings(too_small)
    unmount_and_stop(too_small)

    off = start_mount(many_files_home, None, "--index-mb", "0")
    assert page_rounded(size) not in index_mappings(off)
    assert (off.path / "proj/data/v0/d29/f199.bin").read_bytes() == b"29 199\n" * 40


def test_a_mount_keeps_its_index_in_memory_when_the_kernel_drops_clean_pages(
    many_files_home: Path, start_mount: StartMount
) -> None:
    index = index_file(many_files_home)
    assert index.stat().st_size > 1024 * KIB  # far more than the daemon's own first looks touch
    scratch = many_files_home.parent / "scratch"  # beside the store, on its filesystem
    scratch.write_bytes(bytes(1 << 16))
    drop_clean_pages(scratch)
    if any(resident_pages(scratch)):
        pytest.skip(f"{scratch.parent}'s filesystem keeps pages it is told to drop (tmpfs)")
    holding = start_mount(many_files_home)
    drop_clean_pages(index)
    assert all(resident_pages(index))
    assert (holding.path / "proj/data/v0/d29/f199.bin").read_bytes() == b"29 199\n" * 40
    unmount_and_stop(holding)

    not_holding = start_mount(many_files_home, None, "--index-mb", "0")
    drop_clean_pages(index)
    pages = resident_pages(index)
    assert sum(pages) < len(pages) // 2  # read as used, and evictable
    assert (not_holding.path / "proj/data/v0/d29/f199.bin").read_bytes() == b"29 199\n" * 40
