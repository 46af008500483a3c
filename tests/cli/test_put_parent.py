"""``artfs put`` with a parent: files unchanged since the last put of the same source are not
read, and the version is the one a full read makes (issue 16, item 3).

What was read is observed from outside, on real files: the source lives on a tmpfs mounted
with ``strictatime``, where every ``read`` of a file moves its atime and nothing else does
(``stat`` and ``open`` leave it, and a moved atime does not touch the ctime that put compares).
So "this put read no file" is "no atime moved", with no hook in the code under test.
"""

from __future__ import annotations

import functools
import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from artfs.store import Store
from artfs.store.index import Table
from artfs.store.manifest import FileEntry
from artfs.store.statcache import MAX_SOURCES, RACY_NS
from tests.helpers import run_cli_here

BIG = 3_000_000  # several content-defined chunks


@pytest.fixture
def run_cli(home: Path) -> Any:
    """``artfs`` run in this process (``run_cli_here``): what put reads is the same there, and
    each call saves a Python start; the first test goes through the console script."""
    return functools.partial(run_cli_here, home=home)


@pytest.fixture
def src(tmp_path: Path) -> Iterator[Path]:
    """A source tree on a strictatime tmpfs, older than the racy window of a put."""
    root = tmp_path / "src"
    root.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "strictatime,size=64m", "tmpfs", root], check=True
    )
    try:
        rng = random.Random(7)
        for d in range(3):
            (root / f"d{d}").mkdir()
            for f in range(20):
                (root / f"d{d}" / f"f{f}.bin").write_bytes(rng.randbytes(1000 + f * 100))
        (root / "big.bin").write_bytes(rng.randbytes(BIG))
        (root / "empty").write_bytes(b"")
        os.symlink("d0/f1.bin", root / "link.bin")
        _outwait_racy_window()
        yield root
    finally:
        subprocess.run(["umount", root], check=True)


def _outwait_racy_window() -> None:
    """Files written before now count as settled for a put that starts after this."""
    time.sleep(RACY_NS / 1e9 + 0.1)


def atimes(root: Path) -> dict[str, int]:
    """Path -> atime of every file of ``root``, a directory or one file."""
    if root.is_file():
        return {root.name: root.stat().st_atime_ns}
    return {str(p.relative_to(root)): p.stat().st_atime_ns for p in root.rglob("*") if p.is_file()}


def put_reading(run_cli: Any, src: Path, ref: str, *args: str) -> tuple[str, set[str]]:
    """Put ``src`` and return the resulting ref and the files the put read."""
    before = atimes(src)
    time.sleep(0.02)  # tmpfs times tick with the kernel's coarse clock (a jiffy)
    result = run_cli("put", src, ref, *args, check=True)
    after = atimes(src)
    return result.last_line, {path for path, ns in after.items() if ns != before[path]}


def files_of(home: Path, ref: str) -> list[FileEntry]:
    with Store.open(home) as store:
        return store.files(store.resolve(ref))


ALL = {f"d{d}/f{f}.bin" for d in range(3) for f in range(20)} | {"big.bin", "link.bin", "empty"}


def test_unchanged_reput_reads_no_file(artfs_cli: Any, src: Path, home: Path) -> None:
    console_script = functools.partial(artfs_cli, home=home)  # this one through the real CLI
    ref, read = put_reading(console_script, src, "p/a")
    assert (ref, read) == ("p/a:v0", ALL)
    ref, read = put_reading(console_script, src, "p/a")
    assert (ref, read) == ("p/a:v0", set())


def test_a_changed_file_is_read_and_gives_the_version_of_a_full_read(
    run_cli: Any, src: Path, home: Path, tmp_path: Path
) -> None:
    put_reading(run_cli, src, "p/a")
    target = src / "d1" / "f3.bin"
    target.write_bytes(bytes(len(target.read_bytes())))  # same size, new mtime and ctime
    with (src / "big.bin").open("r+b") as big:
        big.write(b"x")  # one byte of a large file, in place
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v1", {"d1/f3.bin", "big.bin"})
    full = tmp_path / "full"
    assert run_cli("put", src, "p/a", home=full, check=True).last_line == "p/a:v0"
    assert files_of(home, "p/a:v1") == files_of(full, "p/a:v0")
    assert (
        run_cli("info", "p/a:v1", "--json", check=True).json()["digest"]
        == run_cli("info", "p/a:v0", "--json", home=full, check=True).json()["digest"]
    )
    out = tmp_path / "out"
    run_cli("get", "p/a:v1", out, check=True)
    assert (out / "d1" / "f3.bin").read_bytes() == target.read_bytes()
    assert (out / "big.bin").read_bytes() == (src / "big.bin").read_bytes()


def test_touch_only_rereads_and_gives_the_same_version(run_cli: Any, src: Path) -> None:
    put_reading(run_cli, src, "p/a")
    os.utime(src / "d2" / "f7.bin")
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v0", {"d2/f7.bin"})


def test_rehash_reads_everything(run_cli: Any, src: Path) -> None:
    put_reading(run_cli, src, "p/a")
    ref, read = put_reading(run_cli, src, "p/a", "--rehash")
    assert (ref, read) == ("p/a:v0", ALL)
    ref, read = put_reading(run_cli, src, "p/a")  # --rehash wrote a record too
    assert (ref, read) == ("p/a:v0", set())


def test_files_written_just_before_a_put_are_read_by_the_next(run_cli: Any, src: Path) -> None:
    """Racy git: within the clock granularity of a put's start, a file could change again
    without its size or times changing, so the put does not vouch for it."""
    put_reading(run_cli, src, "p/a")
    fresh = src / "d0" / "f5.bin"
    fresh.write_bytes(b"new content")
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v1", {"d0/f5.bin"})
    _outwait_racy_window()
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v1", {"d0/f5.bin"})
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v1", set())


def test_files_whose_chunks_gc_collected_are_read_again(
    run_cli: Any, src: Path, home: Path, tmp_path: Path
) -> None:
    put_reading(run_cli, src, "p/a")
    run_cli("rm", "p/a:v0", check=True)
    run_cli("gc", check=True)
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v1", ALL - {"empty"})  # an empty file names no chunk
    run_cli("verify", "p/a:v1", check=True)
    out = tmp_path / "out"
    run_cli("get", "p/a:v1", out, check=True)
    assert (out / "big.bin").read_bytes() == (src / "big.bin").read_bytes()


def test_the_record_is_per_artifact_and_dropped_with_it(run_cli: Any, src: Path) -> None:
    put_reading(run_cli, src, "p/a")
    assert put_reading(run_cli, src, "p/b") == ("p/b:v0", ALL)
    run_cli("rm", "p/a", "--all", check=True)
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v1", ALL)  # numbers continue after the tombstone


def test_a_removed_file_leaves_the_version_and_the_record(run_cli: Any, src: Path) -> None:
    put_reading(run_cli, src, "p/a")
    (src / "d0" / "f9.bin").unlink()
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v1", set())
    listed = {f["path"] for f in run_cli("files", "p/a:v1", "--json", check=True).json()}
    assert listed == ALL - {"d0/f9.bin"}


def test_an_artifact_keeps_the_records_of_its_last_sources(run_cli: Any, src: Path) -> None:
    """A put from a new directory each time (a CI checkout) does not grow the index for
    ever: the source recorded longest ago goes beyond MAX_SOURCES."""
    sources = [src / "d0", src / "d1", src / "d2", src, src / "big.bin"]
    assert len(sources) == MAX_SOURCES + 1
    for source in sources:
        _, read = put_reading(run_cli, source, "p/a")
        assert read  # a new source is read whole
    _, read = put_reading(run_cli, src / "big.bin", "p/a")
    assert read == set()
    _, read = put_reading(run_cli, src / "d0", "p/a")
    assert read == {f"f{f}.bin" for f in range(20)}  # forgotten: read again


def test_a_record_that_cannot_be_decoded_is_replaced(run_cli: Any, src: Path, home: Path) -> None:
    """The record is a cache: one written by another format (or damaged past its CRC) makes
    the put read everything and write it anew, never fail."""
    put_reading(run_cli, src, "p/a")
    with Store.open(home) as store, store.index.write() as txn:
        keys = [key for key, value in txn.scan(Table.STAT_CACHE) if len(value) > 16 * 4]
        assert keys
        for key in keys:
            txn.put(Table.STAT_CACHE, key, b"\x07not a record")
    assert put_reading(run_cli, src, "p/a") == ("p/a:v0", ALL)
    assert put_reading(run_cli, src, "p/a") == ("p/a:v0", set())
