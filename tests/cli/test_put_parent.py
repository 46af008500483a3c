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
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from artfs.names import ArtifactName
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


def put_at_once(home: Path, src: Path, ref: str) -> tuple[str, set[str]]:
    """:func:`put_reading` in this process: the put starts within milliseconds of the
    caller's last write (a command's interpreter start took over 2 s on a loaded machine,
    past the racy window)."""
    before = atimes(src)
    time.sleep(0.02)
    with Store.open(home) as store:
        record = store.put(src, ArtifactName.parse(ref)).record
    return record.ref, {path for path, ns in atimes(src).items() if ns != before[path]}


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


def test_files_written_just_before_a_put_are_read_by_the_next(
    run_cli: Any, src: Path, home: Path
) -> None:
    """Racy git: within the clock granularity of a put's start, a file could change again
    without its size or times changing, so the put does not vouch for it."""
    put_reading(run_cli, src, "p/a")
    fresh = src / "d0" / "f5.bin"
    fresh.write_bytes(b"new content")
    ref, read = put_at_once(home, src, "p/a")
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


# --- every kind of change gives the version (and the tree) of a full read -------------------


def version_of(home: Path, ref: str) -> tuple[str, str | None, int, int, list[FileEntry]]:
    """What makes a version: digest, root tree, size, file count and every entry."""
    with Store.open(home) as store:
        record = store.resolve(ref)
        return record.digest, record.tree, record.size, record.files, store.entries(record)


def assert_as_full_read(
    run_cli: Any, src: Path, home: Path, ref: str, tmp_path: Path, *, created: bool = True
) -> None:
    """``ref`` is what a full read of ``src`` gives: a --rehash put into a copy of the store
    finds the same version, and when the put just made ``ref`` (``created``), a --rehash
    put into a fresh store makes the same digest, tree (page for page: the same root id) and
    entries."""
    copy = tmp_path / f"copy-{time.monotonic_ns()}"
    shutil.copytree(home, copy)
    assert run_cli("put", src, "p/a", "--rehash", home=copy, check=True).last_line == ref
    if created:
        fresh = tmp_path / f"fresh-{time.monotonic_ns()}"
        full = run_cli("put", src, "p/a", home=fresh, check=True).last_line
        assert version_of(home, ref) == version_of(fresh, full)


def _write_at(path: Path, data: bytes, *, append: bool = False) -> None:
    """``data`` at the end of ``path`` (``append``) or over its first bytes."""
    with path.open("ab" if append else "r+b") as f:
        f.write(data)


def _rewrite_keeping_mtime(path: Path, data: bytes) -> None:
    """New content of the same size with the old mtime put back: only the ctime tells."""
    st = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _replace_by_rename(path: Path, data: bytes) -> None:
    """Another inode under the same name, with the same size and mtime."""
    st = path.stat()
    new = path.with_name(".new")
    new.write_bytes(data)
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(new, path)


def _file_to_dir(src: Path) -> None:
    (src / "d0" / "f7.bin").unlink()
    (src / "d0" / "f7.bin").mkdir()
    (src / "d0" / "f7.bin" / "inner").write_bytes(b"now a directory")


def _dir_to_file(src: Path) -> None:
    subprocess.run(["rm", "-r", src / "d2"], check=True)
    (src / "d2").write_bytes(b"now a file")


def _add_dir(src: Path) -> None:
    (src / "d3" / "sub").mkdir(parents=True)
    (src / "d3" / "sub" / "a").write_bytes(b"a")
    (src / "d3" / "b").write_bytes(b"bb")


EDITS: dict[str, tuple[Any, set[str]]] = {
    "grown": (lambda s: _write_at(s / "d0" / "f8.bin", b"+", append=True), {"d0/f8.bin"}),
    "same size, new mtime": (
        lambda s: (s / "d1" / "f3.bin").write_bytes(bytes(1300)),
        {"d1/f3.bin"},
    ),
    "ctime only": (
        lambda s: _rewrite_keeping_mtime(s / "d2" / "f4.bin", bytes(1400)),
        {"d2/f4.bin"},
    ),
    "chmod only": (lambda s: os.chmod(s / "d0" / "f2.bin", 0o600), {"d0/f2.bin"}),
    "inode only": (
        lambda s: _replace_by_rename(s / "d1" / "f5.bin", bytes(1500)),
        {"d1/f5.bin"},
    ),
    "deleted file": (lambda s: (s / "d2" / "f6.bin").unlink(), set()),
    "new file": (lambda s: (s / "d2" / "new.bin").write_bytes(b"new"), {"d2/new.bin"}),
    "deleted directory": (
        lambda s: subprocess.run(["rm", "-r", s / "d1"], check=True),
        set(),
    ),
    "added directory": (_add_dir, {"d3/sub/a", "d3/b"}),
    "empty directory": (lambda s: (s / "d0" / "empty").mkdir(), set()),
    "file turned into a directory": (_file_to_dir, {"d0/f7.bin/inner"}),
    "directory turned into a file": (_dir_to_file, {"d2"}),
    "big file, one byte in place": (lambda s: _write_at(s / "big.bin", b"x"), {"big.bin"}),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_every_kind_of_change_gives_the_version_of_a_full_read(
    run_cli: Any, src: Path, home: Path, tmp_path: Path, edit: str
) -> None:
    change, expected_read = EDITS[edit]
    put_reading(run_cli, src, "p/a")
    change(src)
    ref, read = put_reading(run_cli, src, "p/a")
    assert read == expected_read
    same = edit in ("chmod only", "empty directory")  # the digest leaves modes and dirs out
    assert ref == ("p/a:v0" if same else "p/a:v1")
    assert_as_full_read(run_cli, src, home, ref, tmp_path, created=not same)
    # The record that put wrote is as true: a change elsewhere, on top. The files the
    # edit wrote may have been racy for that put (if it started within 2 s of the edit),
    # and then they are read again.
    _outwait_racy_window()
    _write_at(src / "big.bin", b"!", append=True)
    ref, read = put_reading(run_cli, src, "p/a")
    assert ref == ("p/a:v1" if same else "p/a:v2")
    assert {"big.bin"} <= read <= {"big.bin"} | expected_read
    assert_as_full_read(run_cli, src, home, ref, tmp_path)


def test_content_back_to_an_older_version_then_changed_again(
    run_cli: Any, src: Path, home: Path, tmp_path: Path
) -> None:
    """A put that comes back to an existing version whose tree is not what the source now
    makes (the file rewritten: same bytes, new times) keeps its base and distrusts the
    directories it rewrote; what follows is still the version of a full read."""
    put_reading(run_cli, src, "p/a")
    target = src / "d0" / "f4.bin"
    original = target.read_bytes()
    target.write_bytes(b"changed")
    assert put_reading(run_cli, src, "p/a") == ("p/a:v1", {"d0/f4.bin"})
    target.write_bytes(original)
    _outwait_racy_window()
    assert put_reading(run_cli, src, "p/a") == ("p/a:v0", {"d0/f4.bin"})  # same digest
    assert put_reading(run_cli, src, "p/a") == ("p/a:v0", set())
    (src / "d1" / "f0.bin").write_bytes(b"elsewhere")
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v2", {"d1/f0.bin"})
    assert_as_full_read(run_cli, src, home, ref, tmp_path)


def test_a_deleted_base_version_makes_the_put_read_what_gc_removed(
    run_cli: Any, src: Path, home: Path, tmp_path: Path
) -> None:
    """The version a record is based on is deleted and collected: the put falls back to
    the record file by file, reads the files whose chunks are gone, and builds the tree."""
    put_reading(run_cli, src, "p/a")
    (src / "d0" / "f8.bin").write_bytes(b"only in v1")
    _outwait_racy_window()
    assert put_reading(run_cli, src, "p/a")[0] == "p/a:v1"
    run_cli("rm", "p/a:v1", check=True)
    run_cli("gc", check=True)
    (src / "d2" / "f2.bin").write_bytes(b"and a change")
    ref, read = put_reading(run_cli, src, "p/a")
    assert ref == "p/a:v2"
    assert read == {"d0/f8.bin", "d2/f2.bin"}  # f8's chunk went with v1
    assert_as_full_read(run_cli, src, home, ref, tmp_path)
    run_cli("verify", ref, check=True)


def test_a_put_with_a_parent_never_takes_a_stale_digest(
    run_cli: Any, src: Path, home: Path
) -> None:
    """Content changed behind size and mtime (both put back) is read: the bytes a get
    returns are the new ones."""
    put_reading(run_cli, src, "p/a")
    target = src / "d1" / "f9.bin"
    new = bytes(reversed(target.read_bytes()))
    _rewrite_keeping_mtime(target, new)
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v1", {"d1/f9.bin"})
    out = home.parent / "out"
    run_cli("get", ref, out, check=True)
    assert (out / "d1" / "f9.bin").read_bytes() == new


def test_a_racy_file_deleted_before_the_next_put_is_gone_from_its_version(
    run_cli: Any, src: Path, home: Path, tmp_path: Path
) -> None:
    """A file left out of the record (written just before the put) and then deleted leaves
    its directory's listing as recorded, and the source root has no entry of its own whose
    times would tell: the put must still not take the version that had the file."""
    put_reading(run_cli, src, "p/a")
    (src / "racy.bin").write_bytes(b"written just before the put")
    assert put_at_once(home, src, "p/a") == ("p/a:v1", {"racy.bin"})
    (src / "racy.bin").unlink()
    _outwait_racy_window()
    ref, read = put_reading(run_cli, src, "p/a")
    assert (ref, read) == ("p/a:v0", set())
    assert_as_full_read(run_cli, src, home, ref, tmp_path, created=False)
    (src / "d0" / "f3.bin").write_bytes(b"then a change")
    ref, _ = put_reading(run_cli, src, "p/a")
    assert ref == "p/a:v2"
    assert_as_full_read(run_cli, src, home, ref, tmp_path)
