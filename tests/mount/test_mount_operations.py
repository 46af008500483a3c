"""The operations layer called directly, with a fake request context: no kernel involved."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyfuse3
import pytest
import trio
from artfsd.operations import ArtfsOperations, Replies, errno_for

from artfs.errors import CorruptData, NotFound
from artfs.fs.errors import ReadOnly
from artfs.store import Store
from artfs.vfs import ROOT_INODE, ChunkCache, Vfs
from tests.mount.mountutil import MTIME_NS, put, sample_tree

T = TypeVar("T")


@dataclass
class FakeContext:
    uid: int = os.getuid()
    gid: int = os.getgid()
    pid: int = os.getpid()
    umask: int = 0o022


CTX: Any = FakeContext()


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[ArtfsOperations]:
    src = tmp_path / "src"
    sample_tree(src)
    put(tmp_path / "home", src, "proj/mnist", aliases=["best"])
    with Store.open(tmp_path / "home") as store:
        yield ArtfsOperations(Vfs.create(store, cache_bytes=8 << 20))


def run(call: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await call()

    return trio.run(main)


def lookup_path(ops: ArtfsOperations, path: str) -> pyfuse3.EntryAttributes:
    ino = ROOT_INODE
    attr = None
    for part in path.split("/"):
        attr = run(lambda p=part, i=ino: ops.lookup(i, p.encode(), CTX))  # type: ignore[misc]
        ino = attr.st_ino
    assert attr is not None
    return attr


def fuse_errno(call: Callable[[], Awaitable[object]]) -> int:
    with pytest.raises(pyfuse3.FUSEError) as caught:
        run(call)
    return caught.value.errno


def test_lookup_getattr_and_stable_inodes(ops: ArtfsOperations) -> None:
    attr = lookup_path(ops, "proj/mnist/v0/run.sh")
    assert stat.S_IMODE(attr.st_mode) == 0o555 and attr.st_mtime_ns == MTIME_NS
    again = run(lambda: ops.getattr(attr.st_ino, CTX))
    assert again.st_ino == attr.st_ino and again.st_size == attr.st_size
    assert lookup_path(ops, "proj/mnist/v0/run.sh").st_ino == attr.st_ino
    assert attr.attr_timeout > 60  # immutable
    assert lookup_path(ops, "proj/mnist").entry_timeout <= 1  # mutable


def test_version_nodes_reuse_their_reply_and_mutable_ones_are_made_fresh(
    ops: ArtfsOperations,
) -> None:
    file = lookup_path(ops, "proj/mnist/v0/run.sh")
    fields = ("st_ino", "st_mode", "st_nlink", "st_size", "st_mtime_ns", "st_uid", "st_gid")
    shown = [getattr(file, f) for f in fields] + [file.entry_timeout, file.attr_timeout]
    stat = run(lambda: ops.getattr(file.st_ino, CTX))
    assert [getattr(stat, f) for f in fields] + [stat.entry_timeout, stat.attr_timeout] == shown
    assert run(lambda: ops.getattr(file.st_ino, CTX)) is stat  # immutable: made once
    artifact = lookup_path(ops, "proj/mnist")
    again = run(lambda: ops.getattr(artifact.st_ino, CTX))
    assert again is not artifact and again.st_ino == artifact.st_ino  # may change: fresh
    replies = Replies(limit=2)
    attrs = [ops.vfs.getattr(lookup_path(ops, f"proj/mnist/v0/{n}").st_ino) for n in NAMES]
    made = [replies.of(attr) for attr in attrs]
    assert len(replies) <= 2 and [r.st_ino for r in made] == [a.ino for a in attrs]


NAMES = ("README.md", "run.sh", "empty.bin")


def test_forgotten_nodes_leave_the_table_and_come_back_with_the_same_inode(
    ops: ArtfsOperations,
) -> None:
    attr = lookup_path(ops, "proj/mnist/v0/README.md")
    before = ops.vfs.node_count
    run(lambda: ops.forget([(attr.st_ino, 1)]))
    assert ops.vfs.node_count == before - 1
    assert fuse_errno(lambda: ops.getattr(attr.st_ino, CTX)) == errno.ENOENT
    assert lookup_path(ops, "proj/mnist/v0/README.md").st_ino == attr.st_ino


def test_open_read_release(ops: ArtfsOperations, tmp_path: Path) -> None:
    expected = (tmp_path / "src" / "data" / "random.bin").read_bytes()
    attr = lookup_path(ops, "proj/mnist/v0/data/random.bin")
    info = run(lambda: ops.open(attr.st_ino, os.O_RDONLY, CTX))
    assert info.keep_cache
    got = bytearray()
    while len(got) < len(expected) + 1:
        offset = len(got)
        piece = run(lambda o=offset: ops.read(info.fh, o, 128 << 10))  # type: ignore[misc]
        if not piece:
            break
        got += piece
    assert bytes(got) == expected
    middle = len(expected) // 2
    assert run(lambda: ops.read(info.fh, middle, 4096)) == expected[middle : middle + 4096]
    run(lambda: ops.release(info.fh))
    assert fuse_errno(lambda: ops.read(info.fh, 0, 10)) == errno.ENOENT


def test_every_change_is_erofs(ops: ArtfsOperations) -> None:
    attr = lookup_path(ops, "proj/mnist/v0/README.md")
    ino, parent = attr.st_ino, lookup_path(ops, "proj/mnist/v0").st_ino
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC):
        assert fuse_errno(lambda f=flags: ops.open(ino, f, CTX)) == errno.EROFS  # type: ignore[misc]
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: ops.unlink(parent, b"README.md", CTX),
        lambda: ops.rename(parent, b"README.md", parent, b"x", 0, CTX),
        lambda: ops.mkdir(parent, b"d", 0o755, CTX),
        lambda: ops.create(parent, b"n", 0o644, os.O_WRONLY, CTX),
        lambda: ops.setattr(ino, pyfuse3.EntryAttributes(), pyfuse3.SetattrFields(), None, CTX),
        lambda: ops.setxattr(ino, b"user.x", b"1", CTX),
        lambda: ops.rmdir(parent, b"empty_dir", CTX),
        lambda: ops.symlink(parent, b"l", b"t", CTX),
    ]
    for call in calls:
        assert fuse_errno(call) == errno.EROFS


def test_changes_by_a_user_who_may_not_write_the_store_are_eacces(ops: ArtfsOperations) -> None:
    home = ops.vfs.store.home
    stranger: Any = FakeContext(uid=54321, gid=54321)
    run(lambda: ops.mkdir(ROOT_INODE, b"shared", 0o777, CTX))  # the daemon's user may
    project = lookup_path(ops, "proj").st_ino
    staging = lookup_path(ops, "proj/mnist/staging").st_ino
    register = lookup_path(ops, ".artfs-register").st_ino
    control = lookup_path(ops, "proj/mnist/staging/.artfs-commit").st_ino
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: ops.open(register, os.O_WRONLY, stranger),
        lambda: ops.open(control, os.O_WRONLY | os.O_TRUNC, stranger),
        lambda: ops.mkdir(ROOT_INODE, b"newproj", 0o755, stranger),
        lambda: ops.mkdir(project, b"newart", 0o755, stranger),
        lambda: ops.create(staging, b"f", 0o644, os.O_WRONLY, stranger),
        lambda: ops.mkdir(staging, b"d", 0o755, stranger),
        lambda: ops.symlink(staging, b"l", b"t", stranger),
        lambda: ops.mknod(staging, b"p", stat.S_IFIFO | 0o644, 0, stranger),
        lambda: ops.setattr(
            staging, pyfuse3.EntryAttributes(), pyfuse3.SetattrFields(), None, stranger
        ),
    ]
    for call in calls:
        assert fuse_errno(call) == errno.EACCES
    assert ops.vfs.store.projects() == ["proj", "shared"]
    assert not (home / "staging" / "proj" / "mnist").exists()
    # Reading stays open to them.
    info = run(lambda: ops.open(control, os.O_RDONLY, stranger))
    run(lambda: ops.release(info.fh))
    if os.geteuid() == 0:  # the owner of ARTFS_HOME may, whoever runs the daemon
        os.chown(home, 54321, 54321)
        run(lambda: ops.mkdir(ROOT_INODE, b"newproj", 0o755, stranger))
        assert ops.vfs.store.projects() == ["newproj", "proj", "shared"]


def test_unknown_names_enoent_files_enotdir(ops: ArtfsOperations) -> None:
    root = ROOT_INODE
    assert fuse_errno(lambda: ops.lookup(root, b"nope", CTX)) == errno.ENOENT
    art = lookup_path(ops, "proj/mnist").st_ino
    for name in (b"v7", b"v00", b"nosuchalias", b".", b".."):
        assert fuse_errno(lambda n=name: ops.lookup(art, n, CTX)) == errno.ENOENT  # type: ignore[misc]
    readme = lookup_path(ops, "proj/mnist/v0/README.md").st_ino
    assert fuse_errno(lambda: ops.lookup(readme, b"x", CTX)) == errno.ENOTDIR
    assert fuse_errno(lambda: ops.opendir(readme, CTX)) == errno.ENOTDIR
    assert fuse_errno(lambda: ops.readlink(readme, CTX)) == errno.EINVAL
    v0 = lookup_path(ops, "proj/mnist/v0").st_ino
    assert fuse_errno(lambda: ops.open(v0, os.O_RDONLY, CTX)) == errno.EISDIR


def test_symlinks_and_xattrs(ops: ArtfsOperations) -> None:
    best = lookup_path(ops, "proj/mnist/best").st_ino
    assert run(lambda: ops.readlink(best, CTX)) == b"v0"
    v0 = lookup_path(ops, "proj/mnist/v0").st_ino
    names = run(lambda: ops.listxattr(v0, CTX))
    assert b"user.artfs.ref" in names and b"user.artfs.description" in names
    assert run(lambda: ops.getxattr(v0, b"user.artfs.aliases", CTX)) == b"latest,best"
    assert fuse_errno(lambda: ops.getxattr(v0, b"user.nope", CTX)) == errno.ENODATA


def test_readdir_streams_and_resumes_without_repeats(ops: ArtfsOperations) -> None:
    vfs = ops.vfs
    data = lookup_path(ops, "proj/mnist/v0")
    fh = vfs.opendir(data.st_ino)
    first = []
    for entry in vfs.readdir(fh, 0):
        first.append(entry)
        if len(first) == 3:
            break
    rest = [e.name for e in vfs.readdir(fh, first[-2].next_id)]  # resume after the second
    names = [e.name for e in first[:2]] + rest
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(
        [b"README.md", b"run.sh", b"empty.bin", b"nested", b"data", b"empty_dir", b"with space"]
    )
    vfs.releasedir(fh)


def test_corrupt_chunk_is_eio_never_wrong_bytes(ops: ArtfsOperations, tmp_path: Path) -> None:
    attr = lookup_path(ops, "proj/mnist/v0/data/random.bin")
    for pack in (tmp_path / "home" / "packs").iterdir():
        with open(pack, "r+b") as f:
            f.seek(4096)
            byte = f.read(1)
            f.seek(4096)
            f.write(bytes([byte[0] ^ 0xFF]))
    info = run(lambda: ops.open(attr.st_ino, os.O_RDONLY, CTX))
    assert fuse_errno(lambda: ops.read(info.fh, 0, 4096)) == errno.EIO


def test_errno_mapping() -> None:
    assert errno_for(NotFound("x")) == errno.ENOENT
    assert errno_for(ReadOnly("x")) == errno.EROFS
    assert errno_for(CorruptData("x")) == errno.EIO
    assert errno_for(ValueError("bug")) == errno.EIO


def test_chunk_cache_stays_within_budget_and_loads_once() -> None:
    from artfs.store.hashing import ChunkId
    from artfs.store.manifest import ChunkRef

    loads: list[bytes] = []

    def load(ref: ChunkRef) -> bytes:
        loads.append(ref.chunk_id)
        return bytes(ref.length)

    cache = ChunkCache(load, budget_bytes=10_000)
    refs = [ChunkRef(ChunkId(bytes([i]) * 32), 3000) for i in range(5)]
    for ref in refs:
        cache.get(ref)
    assert cache.size <= 10_000
    cache.get(refs[-1])
    assert len(loads) == 5
    assert cache.peek(refs[0]) is None and cache.peek(refs[-1]) is not None


def test_chunk_cache_threads_wanting_one_chunk_share_one_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Single flight: threads asking for a chunk that is loading wait for that load (its
    bytes, or its error) instead of loading it again."""
    import threading
    import time

    from artfs.store.hashing import ChunkId
    from artfs.store.manifest import ChunkRef

    release = threading.Event()
    waiting: list[int] = []

    class CountedEvent(threading.Event):  # the cache's waiters block on these
        def wait(self, timeout: float | None = None) -> bool:
            waiting.append(1)
            return super().wait(timeout)

    loads: list[bytes] = []

    def load(ref: ChunkRef) -> bytes:
        loads.append(ref.chunk_id)
        release.wait(10)
        if ref.chunk_id[0] == 2:
            raise CorruptData("bad chunk")
        return bytes([ref.chunk_id[0]]) * ref.length

    cache = ChunkCache(load, budget_bytes=1 << 20)
    good, bad = (ChunkRef(ChunkId(bytes([i]) * 32), 1000) for i in (1, 2))
    got: list[object] = []

    def want(ref: ChunkRef) -> None:
        try:
            got.append(cache.get(ref))
        except CorruptData as exc:
            got.append(exc)

    # A Thread makes the Event its start() waits on when it is made: make them before the
    # patch, so that only the cache's Events count.
    threads = [threading.Thread(target=want, args=(ref,)) for ref in (good, bad) * 4]
    monkeypatch.setattr(threading, "Event", CountedEvent)
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(waiting) < 6:  # two loads started, three threads waiting on each
        assert time.monotonic() < deadline, (loads, waiting)
        time.sleep(0.005)
    release.set()
    for thread in threads:
        thread.join(10)
    assert sorted(loads) == [good.chunk_id, bad.chunk_id]
    assert got.count(b"\x01" * 1000) == 4
    assert sum(isinstance(g, CorruptData) for g in got) == 4
    assert len(waiting) == 6  # every other thread waited for a load, none loaded again
