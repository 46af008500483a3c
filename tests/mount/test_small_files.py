"""Small files: a handle holds the content it verified (never the shared chunk cache) and
keeps reading after its version is deleted and collected; the first open of an inode reads
that content with no pack pinned when its pack bytes are in the page cache, and gives it to
the kernel's page cache when no other small file is open (checked without a kernel, and on a
real mount with mincore); every opening process is recorded."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyfuse3
import trio
from artfsd.operations import ArtfsOperations

from artfs.lineage import Lineage
from artfs.names import Ref
from artfs.store import Store
from artfs.store.gc import collect
from artfs.vfs import Vfs
from tests.mount.mountutil import StartMount, put, resident_pages
from tests.mount.test_listings import walk_to
from tests.mount.test_read_path import skip_without_nowait_reads

CONTENT = random.Random(5).randbytes(20_000)  # one raw chunk (random bytes do not compress)


class _Ctx:
    uid, gid, pid, umask = os.getuid(), os.getgid(), 0, 0o022


CTX: pyfuse3.RequestContext = _Ctx()  # type: ignore[assignment]


def stored(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(CONTENT)
    home = tmp_path / "home"
    put(home, src, "p/small")
    for pack in (home / "packs").iterdir():
        pack.read_bytes()  # its pages in the page cache, as after any earlier read
    return home


def stored_in_two_packs(tmp_path: Path) -> Path:
    """:func:`stored`, and another small version in a pack of its own, which gc merges with
    the first."""
    home = stored(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.txt").write_text("a second small pack")
    put(home, other, "p/other")
    return home


def opened_as_the_kernel_keeps_it(ops: ArtfsOperations, ino: int) -> None:
    """Open and release ``ino`` through the daemon's handlers: from then on the kernel has its
    pages (given to it, or read), so a reopen sends no read."""
    info = trio.run(ops.open, ino, os.O_RDONLY, CTX)
    trio.run(ops.release, info.fh)


def test_a_small_file_first_open_holds_its_content_with_no_pack_pinned(tmp_path: Path) -> None:
    """Its pack bytes in the page cache, the inode's first open reads and verifies the chunk
    into the handle: no pin, an index get instead, and the handle reads after its version is
    deleted and collected."""
    home = stored(tmp_path)
    skip_without_nowait_reads(next(p for p in (home / "packs").iterdir() if p.stat().st_size))
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        pin_chunks = store.pin_chunks

        def refused(refs: object) -> object:
            raise AssertionError("a small file's first open pinned its pack")

        store.pin_chunks = refused  # type: ignore[method-assign,assignment]
        ino = walk_to(ops.vfs, "p/small/v0/a.bin")
        info = trio.run(ops.open, ino, os.O_RDONLY, CTX)
        assert bytes(ops.vfs.reader(info.fh).held or b"") == CONTENT
        assert not store.chunks._pinned and ops.vfs.cache.size == 0  # type: ignore[attr-defined]
        store.pin_chunks = pin_chunks  # type: ignore[method-assign]
        store.delete(Ref.parse("p/small:v0"), force=True)
        collect(store)
        assert not any(p.stat().st_size for p in (home / "packs").iterdir())  # nothing left
        got = trio.run(ops.read, info.fh, 0, 1 << 17)
        tail = trio.run(ops.read, info.fh, 19_990, 4096)
        # Also the reader's own read, which the daemon's worker threads use: from what it holds.
        assert bytes(ops.vfs.reader(info.fh).read(0, 1 << 17)) == CONTENT
        trio.run(ops.release, info.fh)
        assert bytes(got) == CONTENT and bytes(tail) == CONTENT[19_990:]
        assert ops.vfs.open_files == 0


def test_a_small_file_whose_pack_gc_moved_is_looked_up_again_at_its_next_first_open(
    tmp_path: Path,
) -> None:
    """The location a first open found is kept on the node; once gc has merged the pack away
    and the kernel forgot the inode, the next first open finds the chunk's new place, holds
    the content and keeps the new location."""
    home = stored_in_two_packs(tmp_path)
    skip_without_nowait_reads(next(p for p in (home / "packs").iterdir() if p.stat().st_size))
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        ino = walk_to(ops.vfs, "p/small/v0/a.bin")
        opened_as_the_kernel_keeps_it(ops, ino)
        node = ops.vfs.node(ino)
        old = node.known_location
        assert old is not None
        assert collect(store).packs_rewritten == 2  # the two small packs merged
        store.chunks.drop_unlinked()  # the deleted pack's cached descriptor closed
        ops.vfs.forget(ino, node.lookups)  # the kernel dropped the inode and its pages
        ino = walk_to(ops.vfs, "p/small/v0/a.bin")
        assert ops.vfs.node(ino) is node and node.known_location == old  # kept, now stale
        for pack in (p for p in (home / "packs").iterdir() if p.stat().st_size):
            pack.read_bytes()  # the merged pack's pages in the page cache
        info = trio.run(ops.open, ino, os.O_RDONLY, CTX)
        assert bytes(ops.vfs.reader(info.fh).held or b"") == CONTENT
        assert not store.chunks._pinned  # type: ignore[attr-defined]
        new = ops.vfs.node(ino).known_location
        assert new is not None and new.pack_id != old.pack_id
        trio.run(ops.release, info.fh)


def test_a_small_file_opened_off_disk_pins_its_pack_for_its_read(tmp_path: Path) -> None:
    """Its pack bytes on disk, the first open pins the pack and reads nothing (the event loop
    does not wait for the disk); the read loads it, also after the version is deleted and
    collected.

    The page cache's miss is the store's answer made certain: evicting the pack's pages does
    not make it so, as a read with ``RWF_NOWAIT`` that misses starts the kernel's read-ahead
    and, on a fast disk, may find the pages read by the time it looks again."""
    home = stored(tmp_path)
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        ino = walk_to(ops.vfs, "p/small/v0/a.bin")
        asked: list[object] = []

        def on_disk(location: object) -> None:
            asked.append(location)

        store.chunks.read_cached = on_disk  # type: ignore[method-assign]
        info = trio.run(ops.open, ino, os.O_RDONLY, CTX)
        assert asked, "the first open did not ask the page cache"
        assert ops.vfs.reader(info.fh).held is None and store.chunks._pinned  # type: ignore[attr-defined]
        store.delete(Ref.parse("p/small:v0"), force=True)
        collect(store)
        assert not any(p.stat().st_size for p in (home / "packs").iterdir())  # nothing left
        got = trio.run(ops.read, info.fh, 0, 1 << 17)
        trio.run(ops.release, info.fh)
        assert bytes(got) == CONTENT
        assert ops.vfs.open_files == 0 and not store.chunks._pinned  # type: ignore[attr-defined]


def test_a_reopened_small_file_reads_after_its_version_is_deleted_and_collected(
    tmp_path: Path,
) -> None:
    """A reopen whose pages the kernel kept reads nothing at open: its pack is pinned, and a
    read that comes anyway (the kernel dropped the pages) loads it from there."""
    home = stored(tmp_path)
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        ino = walk_to(ops.vfs, "p/small/v0/a.bin")
        opened_as_the_kernel_keeps_it(ops, ino)
        info = trio.run(ops.open, ino, os.O_RDONLY, CTX)
        assert ops.vfs.reader(info.fh).held is None  # nothing read: its pack is pinned
        store.delete(Ref.parse("p/small:v0"), force=True)
        collect(store)
        assert not any(p.stat().st_size for p in (home / "packs").iterdir())  # nothing left
        got = trio.run(ops.read, info.fh, 0, 1 << 17)
        tail = trio.run(ops.read, info.fh, 19_990, 4096)
        assert ops.vfs.reader(info.fh).held is not None
        trio.run(ops.release, info.fh)
        assert bytes(got) == CONTENT and bytes(tail) == CONTENT[19_990:]
        assert ops.vfs.open_files == 0


def test_small_file_content_is_held_by_its_handle_not_the_chunk_cache(tmp_path: Path) -> None:
    """The first open verifies the chunk into the handle, and every read is a slice of it; the
    shared cache stays empty, and a reopen whose pages the kernel kept reads no content."""
    home = stored(tmp_path)
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        loads: list[object] = []

        def counting(load: Callable[..., object]) -> Callable[..., object]:
            def counted(ref: object, *rest: object) -> object:
                loads.append(ref)
                return load(ref, *rest)

            return counted

        store.read_cached_unpinned = counting(store.read_cached_unpinned)  # type: ignore[method-assign,assignment]
        store.read_pinned_cached = counting(store.read_pinned_cached)  # type: ignore[method-assign,assignment]
        ino = walk_to(ops.vfs, "p/small/v0/a.bin")
        info = trio.run(ops.open, ino, os.O_RDONLY, CTX)
        assert len(loads) == 1
        parts = [trio.run(ops.read, info.fh, off, 8192) for off in range(0, 20_000, 8192)]
        assert b"".join(bytes(p) for p in parts) == CONTENT
        assert len(loads) == 1 and ops.vfs.cache.size == 0
        trio.run(ops.release, info.fh)
        again = trio.run(ops.open, ino, os.O_RDONLY, CTX)
        trio.run(ops.release, again.fh)
        assert len(loads) == 1 and ops.vfs.open_files == 0


def test_a_damaged_small_file_is_refused_by_its_read(tmp_path: Path) -> None:
    """A held chunk is verified: a flipped byte in the pack fails the read (EIO), in the
    worker thread the refused inline load leaves it to, and nothing is held or cached."""
    home = stored(tmp_path)
    (pack,) = (p for p in (home / "packs").iterdir() if p.stat().st_size)
    data = bytearray(pack.read_bytes())
    at = data.find(CONTENT[:64])
    assert at >= 0
    data[at + 100] ^= 0xFF
    pack.write_bytes(data)
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        ino = walk_to(ops.vfs, "p/small/v0/a.bin")
        info = trio.run(ops.open, ino, os.O_RDONLY, CTX)

        async def read() -> int:
            async with trio.open_nursery() as nursery:
                ops.nursery = nursery
                try:
                    await ops.read(info.fh, 0, 1 << 17)
                except pyfuse3.FUSEError as exc:
                    return exc.errno
                finally:
                    ops.nursery = None
            return 0

        assert trio.run(read) == errno.EIO
        assert ops.vfs.reader(info.fh).held is None and ops.vfs.cache.size == 0
        trio.run(ops.release, info.fh)


def test_every_process_opening_a_small_file_is_recorded_once_per_file(
    tmp_path: Path,
) -> None:
    """The second process is recorded as its own run however little its open reads (none of
    the content); reopening by the first moves its last access only."""
    home = stored(tmp_path)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)  # another process group
    try:
        with Store.open(home) as store:
            vfs = Vfs.create(store)
            assert vfs.recorder is not None
            try:
                ino = walk_to(vfs, "p/small/v0/a.bin")
                vfs.release(vfs.open(ino, os.O_RDONLY, os.getpid()))
                vfs.recorder.flush(vfs.recorder.take())
                (first,) = Lineage(store).usages()
                time.sleep(0.01)
                for pid in (os.getpid(), os.getpid(), other.pid):
                    vfs.release(vfs.open(ino, os.O_RDONLY, pid))
                vfs.recorder.flush(vfs.recorder.take())
                usages = {u.run_id: u for u in Lineage(store).usages()}
            finally:
                vfs.recorder.close()
    finally:
        other.kill()
        other.wait()
    assert len(usages) == 2 and all(u.files == 1 for u in usages.values())
    again = usages[first.run_id]
    assert again.first == first.first and again.last > first.last


def test_a_small_file_is_given_to_the_kernel_at_its_first_open_only(tmp_path: Path) -> None:
    """Its content, verified, for the kernel's page cache (no read will come): at the inode's
    first open, when no other small file is open (a pending read of it would deadlock the
    store; several readers at once are faster with reads), and not O_DIRECT."""
    home = stored(tmp_path)
    (tmp_path / "src" / "b.txt").write_text("another small file")
    put(home, tmp_path / "src", "p/small")  # v1: a.bin and b.txt
    with Store.open(home) as store:
        vfs = Vfs.create(store, lineage=False)
        ino = walk_to(vfs, "p/small/v1/a.bin")
        direct = vfs.open(ino, os.O_RDONLY | os.O_DIRECT)
        assert vfs.content_for_kernel(ino, direct, os.O_RDONLY | os.O_DIRECT) is None
        vfs.release(direct)
        other = walk_to(vfs, "p/small/v1/b.txt")
        held = vfs.open(other, os.O_RDONLY)
        fh = vfs.open(ino, os.O_RDONLY)
        assert vfs.content_for_kernel(ino, fh, os.O_RDONLY) is None  # b.txt is open
        vfs.release(held)
        vfs.release(fh)
        fh = vfs.open(ino, os.O_RDONLY)
        assert vfs.content_for_kernel(ino, fh, os.O_RDONLY) is None  # its first open was
        vfs.release(fh)
        vfs.forget(ino, 1)  # the kernel dropped the inode, and its pages with it
        ino = walk_to(vfs, "p/small/v1/a.bin")
        fh = vfs.open(ino, os.O_RDONLY)
        given = vfs.content_for_kernel(ino, fh, os.O_RDONLY)
        assert given is not None and bytes(given) == CONTENT
        vfs.release(fh)
    with Store.open(home) as store:  # a new mount: the kernel has nothing of it
        vfs = Vfs.create(store, lineage=False)
        ino = walk_to(vfs, "p/small/v1/a.bin")
        fh = vfs.open(ino, os.O_RDONLY)
        given = vfs.content_for_kernel(ino, fh, os.O_RDONLY)
        assert given is not None and bytes(given) == CONTENT
        assert vfs.cache.size == 0
        second = vfs.open(ino, os.O_RDONLY)
        assert vfs.content_for_kernel(ino, second, os.O_RDONLY) is None
        vfs.release(second)
        vfs.release(fh)
        assert vfs.open_files == 0


def test_a_reopened_small_file_pins_its_pack_with_no_index_read(tmp_path: Path) -> None:
    """The location its first open found pins the pack again. Once gc has moved the chunk
    (two small packs merged), a reopen looks it up again, although a handle still holds the
    deleted pack open, and reads the new pack: the old one's space can be freed."""
    home = stored_in_two_packs(tmp_path)
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        vfs = ops.vfs
        lookups: list[object] = []
        pin_chunks = store.pin_chunks

        def counted(refs: object) -> object:
            lookups.append(refs)
            return pin_chunks(refs)  # type: ignore[arg-type]

        store.pin_chunks = counted  # type: ignore[method-assign,assignment]
        ino = walk_to(vfs, "p/small/v0/a.bin")

        def content(fh: int) -> bytes:
            held = vfs.reader(fh).load_own()
            assert held is not None
            return bytes(held)

        opened_as_the_kernel_keeps_it(ops, ino)  # its location found with no pin
        first = vfs.open(ino, os.O_RDONLY)
        (old_pack,) = vfs._pins[first].packs
        for _ in range(2):
            fh = vfs.open(ino, os.O_RDONLY)
            assert content(fh) == CONTENT
            vfs.release(fh)
        assert lookups == []
        assert collect(store).packs_rewritten == 2  # the two small packs merged
        fh = vfs.open(ino, os.O_RDONLY)
        (new_pack,) = vfs._pins[fh].packs
        assert len(lookups) == 1 and new_pack != old_pack
        assert content(fh) == CONTENT and content(first) == CONTENT
        vfs.release(fh)
        vfs.release(first)
        store.chunks.drop_unlinked()
        chunks = store.chunks
        assert old_pack not in chunks._pinned and old_pack not in chunks._cached  # type: ignore[attr-defined]
        assert vfs.open_files == 0 and not chunks._pinned  # type: ignore[attr-defined]


def test_a_small_file_that_cannot_be_loaded_at_open_is_left_to_its_read(
    tmp_path: Path,
) -> None:
    """A load failing at open (a read error, a dictionary that cannot be had) gives the kernel
    nothing and keeps the handle, its pack pinned, whose read says why; nothing leaks."""
    home = stored(tmp_path)
    with Store.open(home) as store:
        vfs = Vfs.create(store, lineage=False)

        def failing(location: object) -> bytes:
            raise OSError(errno.EIO, "Input/output error")

        store.chunks.read_cached = failing  # type: ignore[method-assign,assignment]
        ino = walk_to(vfs, "p/small/v0/a.bin")
        fh = vfs.open(ino, os.O_RDONLY)
        assert vfs.content_for_kernel(ino, fh, os.O_RDONLY) is None
        assert vfs.open_files == 1 and store.chunks._pinned  # type: ignore[attr-defined]
        vfs.release(fh)
        assert vfs.open_files == 0
        assert not store.chunks._pinned  # type: ignore[attr-defined]


def test_a_mounted_small_file_is_in_the_page_cache_once_opened(
    tmp_path: Path, start_mount: StartMount
) -> None:
    """Opening it is enough for the kernel to have every page, before any read; what it reads
    is the file. A larger file's open puts nothing there, nor does a small file's while another
    small file is open (its read loads it)."""
    home = stored(tmp_path)
    big = random.Random(6).randbytes(300_000)
    (tmp_path / "src" / "a.bin").unlink()
    (tmp_path / "src" / "b.bin").write_bytes(big)
    (tmp_path / "src" / "c.bin").write_bytes(CONTENT[::-1])
    put(home, tmp_path / "src", "p/big")
    for pack in (home / "packs").iterdir():
        pack.read_bytes()
    mount = start_mount(home)
    small = mount.path / "p/small/v0/a.bin"
    assert resident_pages(small) == [True] * 5
    assert small.read_bytes() == CONTENT
    large = mount.path / "p/big/v0/b.bin"
    assert not any(resident_pages(large))
    assert large.read_bytes() == big
    with small.open("rb"):  # a reopen: the daemon has it open again
        other = mount.path / "p/big/v0/c.bin"
        assert not any(resident_pages(other))
        assert other.read_bytes() == CONTENT[::-1]
