"""The daemon reads the store's index into memory at start and keeps it there (``--index-mb``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from artfs.store import Store
from tests.mount.mountutil import StartMount, put

KIB = 1 << 10


def index_file(home: Path) -> Path:
    return home / "index" / "data.mdb"


def resident_bytes(path: Path) -> int:
    """How much of ``path`` is in the page cache (util-linux's ``fincore``)."""
    done = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout.split()[0])


def drop_clean_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


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
        held = store.index.hold_in_memory(size)
        assert held is not None
        try:
            assert len(held) == size
            assert held[:] == index_file(many_files_home).read_bytes()
        finally:
            held.close()
        assert store.index.hold_in_memory(size - 1) is None  # larger than the limit
        assert store.index.hold_in_memory(0) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping the page cache needs root")
def test_a_mount_keeps_its_index_in_memory_when_clean_caches_are_dropped(
    many_files_home: Path, start_mount: StartMount
) -> None:
    index = index_file(many_files_home)
    size = index.stat().st_size
    assert size > 512 * KIB  # far more than the daemon's own first looks touch
    held = start_mount(many_files_home)
    assert "held in memory" in held.log_text()
    drop_clean_caches()
    assert resident_bytes(index) == size
    assert (held.path / "proj/data/v0/d29/f199.bin").read_bytes() == b"29 199\n" * 40

    subprocess.run(["fusermount3", "-u", str(held.path)], check=True)
    held.proc.wait(timeout=10)
    not_held = start_mount(many_files_home, None, "--index-mb", "0")
    drop_clean_caches()
    assert resident_bytes(index) < size // 2  # read as used, and evictable
    assert (not_held.path / "proj/data/v0/d29/f199.bin").read_bytes() == b"29 199\n" * 40
