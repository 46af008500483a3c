"""The chunk-loader process: its shared arena, its loads, the daemon's reads through it."""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import mmap
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyfuse3
import pytest
import trio
from artfsd.main import loader_ready
from artfsd.operations import ArtfsOperations

from artfs import mounts
from artfs.fs import direct
from artfs.fs.chunkloader import (
    _PAYLOAD_BYTES,
    ARENA_UNIT,
    DECODERS,
    REPLY,
    ChunkArena,
    LoaderProcess,
    Request,
    _Pack,
    _Packs,
    _Worker,
    place_of,
)
from artfs.fs.direct import Residency, filesystem_type, reads_past_cache
from artfs.fs.reader import ChunkCache
from artfs.names import ArtifactName
from artfs.store import Store, codec
from artfs.store.chunking import MAX_CHUNK
from artfs.store.chunkstore import ChunkLocation
from artfs.store.codec import Codec
from artfs.store.hashing import chunk_id
from artfs.store.manifest import ChunkRef, FileEntry
from artfs.store.packs import pack_name
from artfs.vfs import NEXT_FILE_BYTES, ROOT_INODE, Vfs
from tests.mount.mountutil import StartMount, eventually, put
from tests.mount.test_read_path import CTX

MIB = 1 << 20
DATA, OTHER = "proj/data/v0/data.bin", "proj/data/v0/other.bin"

# --- the arena --------------------------------------------------------------------------------


def test_the_arena_hands_out_first_fit_and_merges_what_is_freed() -> None:
    arena = ChunkArena.create(8 * ARENA_UNIT)
    one, two, three = arena.alloc(1), arena.alloc(ARENA_UNIT + 1), arena.alloc(3 * ARENA_UNIT)
    assert (one, two, three) == (0, ARENA_UNIT, 3 * ARENA_UNIT)
    assert arena.used == 6 * ARENA_UNIT
    assert arena.alloc(3 * ARENA_UNIT) is None  # two units are left
    arena.free(ARENA_UNIT)
    assert arena.alloc(3 * ARENA_UNIT) is None  # two free runs of two, apart
    arena.free(0)  # merges with the run after it: three units from 0
    assert arena.alloc(3 * ARENA_UNIT) == 0
    arena.free(0)
    arena.free(3 * ARENA_UNIT)  # merges with the runs on both sides
    assert arena.used == 0
    assert arena.alloc(8 * ARENA_UNIT) == 0


def test_a_chunk_s_place_is_freed_with_its_last_view_and_views_are_read_only() -> None:
    arena = ChunkArena.create(4 * ARENA_UNIT)
    at = arena.alloc(5)
    assert at is not None
    arena.writable(at, 5)[:] = b"hello"
    view = arena.chunk(at, 5)
    piece = view[1:3]
    del view
    assert arena.used == ARENA_UNIT  # the slice still holds it
    assert bytes(piece) == b"el"
    with pytest.raises(TypeError):
        piece[0] = 0
    del piece
    assert arena.used == 0


def test_a_place_the_cache_dropped_is_not_handed_out_while_a_slice_of_it_lives() -> None:
    arena = ChunkArena.create(2 * ARENA_UNIT)
    cache = ChunkCache(lambda ref: b"", 64 * MIB)
    ref = ChunkRef(b"a" * 32, 5)
    at = arena.alloc(5)
    assert at is not None
    arena.writable(at, 5)[:] = b"first"
    cache.put(ref, arena.chunk(at, 5))
    cached = cache.peek(ref)
    assert cached is not None
    kept = memoryview(cached)[1:4]  # a reply being sent, say
    del cached
    cache.discard(ref)
    again = arena.alloc(5)
    assert again is not None and again != at
    arena.writable(again, 5)[:] = b"xxxxx"
    assert bytes(kept) == b"irs"
    del kept
    assert arena.alloc(5) == at  # freed with the slice


def test_freed_places_past_the_resident_part_give_their_pages_back() -> None:
    arena = ChunkArena.create(4 * ARENA_UNIT, resident=ARENA_UNIT)
    low, high = arena.alloc(ARENA_UNIT), arena.alloc(2 * ARENA_UNIT)
    assert (low, high) == (0, ARENA_UNIT)
    arena.writable(0, 3 * ARENA_UNIT)[:] = b"x" * (3 * ARENA_UNIT)
    arena.free(low)
    arena.free(high)
    assert arena.writable(0, ARENA_UNIT) == b"x" * ARENA_UNIT  # kept: written again cheaply
    assert arena.writable(ARENA_UNIT, 2 * ARENA_UNIT) == bytes(2 * ARENA_UNIT)  # given back


# --- the cache's claims -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settled", "expected", "loaded"), [(b"abc", b"abc", 0), (None, b"own", 1)]
)
def test_a_claimed_chunk_is_waited_for_and_loaded_by_the_waiter_if_settled_empty(
    settled: bytes | None, expected: bytes, loaded: int
) -> None:
    ref = ChunkRef(b"c" * 32, 3)
    loads: list[ChunkRef] = []

    def load(chunk: ChunkRef) -> bytes:
        loads.append(chunk)
        return b"own"

    cache = ChunkCache(load, 64 * MIB)
    assert cache.claim(ref)
    assert ref in cache and not cache.claim(ref)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(cache.get(ref)))
    waiter.start()
    time.sleep(0.05)
    assert not got  # it waits for the claim
    cache.settle(ref, settled)
    waiter.join(timeout=5)
    assert got == [expected] and len(loads) == loaded
    assert cache.peek(ref) == expected


# --- the loader process -----------------------------------------------------------------------


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[Store, FileEntry, bytes]]:
    """A store holding data.bin, of raw (random) and zstd (text) chunks, and other.bin (raw),
    open: data.bin's entry and content."""
    src = tmp_path / "src"
    src.mkdir()
    content = random.Random(5).randbytes(3 * MIB) + b"label,row\n" * 300_000
    (src / "data.bin").write_bytes(content)
    (src / "other.bin").write_bytes(random.Random(6).randbytes(5 * MIB))
    put(tmp_path / "home", src, "proj/data")
    with Store.open(tmp_path / "home") as store:
        entry = store.files(store.resolve("proj/data:v0"))[0]
        assert entry.path == "data.bin"
        yield store, entry, content


def started(store: Store, arena_bytes: int = 16 * MIB) -> LoaderProcess:
    loader = LoaderProcess.start(store.pack_directory, arena_bytes, 2)
    assert loader.wait_ready(30)
    loader.sock.settimeout(30)
    return loader


def load_all(
    loader: LoaderProcess, requests: list[tuple[ChunkRef, ChunkLocation]]
) -> list[tuple[int, bool]]:
    """Send each request (tags 1...), and the loader's answers by tag: (where the chunk
    starts in the arena, verified)."""
    places = []
    for tag, (ref, loc) in enumerate(requests, 1):
        size, skip = place_of(loc.codec, loc.offset, ref.length)
        at = loader.arena.alloc(size)
        assert at is not None
        places.append(at + skip)
        loader.sock.sendall(loader.request(tag, ref, loc, at))
    answers = {}
    for _ in requests:
        tag, ok = REPLY.unpack(loader.sock.recv(REPLY.size, socket.MSG_WAITALL))
        answers[tag] = bool(ok)
    return [(places[tag - 1], answers[tag]) for tag in range(1, len(requests) + 1)]


def chunks_of(store: Store, entry: FileEntry) -> list[tuple[ChunkRef, ChunkLocation, int]]:
    """Each chunk, where it is stored, and where it starts in the file."""
    out, offset = [], 0
    for ref in entry.chunks:
        loc = store.chunk_location(ref.chunk_id)
        assert loc is not None
        out.append((ref, loc, offset))
        offset += ref.length
    return out


def test_the_loader_writes_each_chunk_verified_into_the_arena(
    stored: tuple[Store, FileEntry, bytes],
) -> None:
    store, entry, content = stored
    chunks = chunks_of(store, entry)
    assert {loc.codec for _, loc, _ in chunks} == {Codec.RAW, Codec.ZSTD}
    loader = started(store)
    try:
        answers = load_all(loader, [(ref, loc) for ref, loc, _ in chunks])
        for (ref, _, offset), (at, ok) in zip(chunks, answers, strict=True):
            assert ok
            assert loader.arena.writable(at, ref.length) == content[offset : offset + ref.length]
    finally:
        loader.stop()
    assert loader.process.returncode == 0  # it ends when its socket closes


def nothing_waits() -> bool:
    return False


def open_packs(loader: LoaderProcess, store: Store) -> list[Path]:
    """The packs the loader process holds open."""
    held = []
    for fd in Path(f"/proc/{loader.process.pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed between the listing and this look
            target = Path(os.readlink(fd).removesuffix(" (deleted)"))
            if target.parent == store.pack_directory:
                held.append(target)
    return held


def test_many_loads_at_once_are_each_answered_and_the_packs_closed_once_idle(
    stored: tuple[Store, FileEntry, bytes],
) -> None:
    """Both workers take requests off the socket and finish loads at the same moments: each
    request is answered once, verified, the loader stays up (a worker that failed would end
    it), and once it has nothing left to do it holds no pack open."""
    store, entry, content = stored
    chunks = chunks_of(store, entry)
    rounds = 10
    loader = started(store, rounds * 8 * MIB)
    try:
        answers = load_all(loader, [(ref, loc) for _ in range(rounds) for ref, loc, _ in chunks])
        assert len(answers) == rounds * len(chunks)
        for (ref, _, offset), (at, ok) in zip(itertools.cycle(chunks), answers):
            assert ok
            assert loader.arena.writable(at, ref.length) == content[offset : offset + ref.length]
        assert loader.process.poll() is None
        assert open_packs(loader, store) == []
    finally:
        loader.stop()
    assert loader.process.returncode == 0


def test_a_payload_larger_than_a_worker_s_buffer_still_loads(tmp_path: Path) -> None:
    """A worker's zstd buffer is made before the loader is ready, as large as the store's
    largest chunk; a stored payload above that (no chunk this store's chunker makes) still
    loads, into a buffer grown for it."""
    assert _PAYLOAD_BYTES >= MAX_CHUNK
    rng = random.Random(12)
    data = b"".join(rng.randbytes(2048) + bytes(1024) for _ in range(3 * MIB // 1024))
    coding, payload = codec.encode(data)
    assert coding == Codec.ZSTD and len(payload) > _PAYLOAD_BYTES
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / pack_name(7)).write_bytes(bytes(100) + payload)
    ref = ChunkRef(chunk_id(data), len(data))
    loader = LoaderProcess.start(packs, 32 * MIB, 2)
    assert loader.wait_ready(30)
    loader.sock.settimeout(30)
    try:
        [(at, ok)] = load_all(
            loader, [(ref, ChunkLocation(7, 100, len(payload), len(data), Codec.ZSTD))]
        )
        assert ok and loader.arena.writable(at, len(data)) == data
    finally:
        loader.stop()


def test_damaged_chunks_and_a_missing_pack_are_refused_and_the_next_loads(
    stored: tuple[Store, FileEntry, bytes],
) -> None:
    store, entry, content = stored
    chunks = chunks_of(store, entry)
    raw = next(c for c in chunks if c[1].codec == Codec.RAW)
    packed = next(c for c in chunks if c[1].codec == Codec.ZSTD)
    good = next(c for c in chunks if c not in (raw, packed))
    for _, loc, _ in (raw, packed):
        with open(store.pack_directory / pack_name(loc.pack_id), "r+b") as pack:
            pack.seek(loc.offset + loc.stored_length // 2)
            byte = pack.read(1)
            pack.seek(-1, os.SEEK_CUR)
            pack.write(bytes([byte[0] ^ 1]))
    ref, loc, _ = raw
    gone = ChunkLocation(loc.pack_id + 999, 0, loc.stored_length, loc.raw_length, loc.codec)
    loader = started(store)
    try:
        requests = [raw[:2], packed[:2], (ref, gone), good[:2]]
        answers = load_all(loader, requests)
        assert [ok for _, ok in answers] == [False, False, False, True]
        second, _, offset = good
        at = answers[3][0]
        assert loader.arena.writable(at, second.length) == content[offset : offset + second.length]
    finally:
        loader.stop()


# --- reads past the page cache -------------------------------------------------------------


@pytest.fixture
def pack_file(tmp_path: Path) -> tuple[Path, list[tuple[Request, bytes]]]:
    """A pack on disk (written, synced) with a raw and a zstd chunk at offsets and lengths
    that are not whole blocks, and the loader's request for each with its bytes."""
    rng = random.Random(18)
    raw = rng.randbytes(300_001)
    text = b"".join(b"row %d,%d\n" % (i, rng.randrange(1000)) for i in range(40_000))
    coding, payload = codec.encode(text)
    assert coding == Codec.ZSTD
    packs = tmp_path / "packs"
    packs.mkdir()
    path = packs / pack_name(3)
    with open(path, "wb") as out:
        out.write(bytes(1234) + raw + payload + bytes(77))
        out.flush()
        os.fsync(out.fileno())
    requests: list[tuple[Request, bytes]] = [
        ((1, 3, 1234, len(raw), len(raw), Codec.RAW, 0, chunk_id(raw)), raw),
        (
            (2, 3, 1234 + len(raw), len(payload), len(text), Codec.ZSTD, MIB, chunk_id(text)),
            text,
        ),
    ]
    return path, requests


@pytest.fixture
def cold_pack(pack_file: tuple[Path, list[tuple[Request, bytes]]]) -> Path:
    """The pack with its pages out of the page cache; where reads past the cache are not
    used (the test directory on another kind of filesystem), the test is skipped."""
    path = pack_file[0]
    if not reads_past_cache(path.parent):
        pytest.skip(f"{path.parent} is on {filesystem_type(path.parent)}: loads read buffered")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if cached_pages(path) is not False:
        pytest.skip(f"the page cache kept {path}'s pages through POSIX_FADV_DONTNEED")
    return path


def cached_pages(path: Path, offset: int = 0, length: int | None = None) -> bool | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        return Residency().cached(fd, offset, path.stat().st_size if length is None else length)
    finally:
        os.close(fd)


def load_in_worker(path: Path, requests: list[tuple[Request, bytes]]) -> list[bool]:
    """Each request loaded by a loader's worker in this process, which then closes its
    packs: what each load answered, after checking the arena holds each verified chunk."""
    arena = mmap.mmap(-1, 4 * MIB)
    packs = _Packs(path.parent)
    worker = _Worker(packs, arena)
    answers = []
    packs.begin()
    try:
        for request, data in requests:
            answers.append(worker.load(request))
            at = request[6] + place_of(request[5], request[2], request[4])[1]
            if answers[-1]:
                assert arena[at : at + len(data)] == data
    finally:
        packs.end(nothing_waits)
    return answers


def test_chunks_not_in_the_page_cache_are_read_past_it_and_leave_it_as_it_was(
    pack_file: tuple[Path, list[tuple[Request, bytes]]], cold_pack: Path
) -> None:
    """The mount's decoded pages are what the kernel keeps; a cold load leaves no copy of
    the pack's bytes beside them."""
    requests = pack_file[1]
    assert load_in_worker(cold_pack, requests) == [True, True]
    for request, _ in requests:
        assert cached_pages(cold_pack, request[2], request[3]) is False


def test_chunks_already_in_the_page_cache_are_read_from_it(
    pack_file: tuple[Path, list[tuple[Request, bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, requests = pack_file
    if not reads_past_cache(path.parent):
        pytest.skip(f"{path.parent} is on {filesystem_type(path.parent)}: every load is buffered")
    path.read_bytes()
    assert cached_pages(path) is True

    def refused(*args: object) -> None:
        raise AssertionError("a cached chunk was read past the page cache")

    monkeypatch.setattr(_Worker, "_read_direct", refused)
    assert load_in_worker(path, requests) == [True, True]


def test_a_pack_whose_filesystem_refuses_the_alignment_is_read_buffered(
    pack_file: tuple[Path, list[tuple[Request, bytes]]],
    cold_pack: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    direct_fds: set[int] = set()
    refusals = 0
    preadv, open_direct = os.preadv, _Packs.direct_fd

    def noted(self: _Packs, pack: _Pack) -> int:
        fd = open_direct(self, pack)
        direct_fds.add(fd)
        return fd

    def alignment_refused(fd: int, buffers: list[memoryview], offset: int) -> int:
        nonlocal refusals
        if fd in direct_fds:
            refusals += 1
            raise OSError(errno.EINVAL, "Invalid argument")
        return preadv(fd, buffers, offset)

    monkeypatch.setattr(_Packs, "direct_fd", noted)
    monkeypatch.setattr(os, "preadv", alignment_refused)
    # Every chunk counts as not cached: the first load's buffered read brought the second's in.
    monkeypatch.setattr(Residency, "cached", lambda *args: False)
    assert load_in_worker(cold_pack, pack_file[1]) == [True, True]
    assert refusals == 1  # the first load tried it; the second read buffered at once


def test_a_pack_given_up_after_gc_deleted_it_closes_each_descriptor_once(
    pack_file: tuple[Path, list[tuple[Request, bytes]]], cold_pack: Path
) -> None:
    """One worker finds the pack deleted and retires it while another, still reading it
    directly, is refused and gives up its direct descriptor: each closes once, and the
    loader goes on (a second close would end it)."""
    packs = _Packs(cold_pack.parent)
    packs.begin()
    first = packs.fds(3)
    assert packs.direct_fd(first) >= 0
    content = cold_pack.read_bytes()
    cold_pack.unlink()
    cold_pack.write_bytes(content)  # a new file by the name (the old one has no links)
    second = packs.fds(3)
    assert second is not first
    assert packs.direct_fd(second) >= 0
    opened = [first.buffered, first.direct, second.buffered, second.direct]
    packs.no_direct(first)
    packs.end(nothing_waits)  # raised EBADF when the retired descriptor was listed twice
    for fd in opened:
        assert isinstance(fd, int)
        with pytest.raises(OSError) as closed:
            os.fstat(fd)
        assert closed.value.errno == errno.EBADF


def test_the_packs_close_once_the_last_load_ends_with_none_waiting(
    pack_file: tuple[Path, list[tuple[Request, bytes]]],
) -> None:
    """Whether work waits is asked only of the load that ends last, so a load taken between
    that question and the close cannot leave the packs open with no worker loading."""
    packs = _Packs(pack_file[0].parent)
    asked: list[bool] = []

    def waits(answer: bool) -> Callable[[], bool]:
        return lambda: asked.append(answer) or answer

    packs.begin()
    packs.begin()
    held = packs.fds(3).buffered
    packs.end(waits(False))  # the other worker still loads: not asked, nothing closed
    packs.end(waits(True))  # the last, with a request waiting: kept for it
    assert asked == [True]
    os.fstat(held)
    packs.begin()
    assert packs.fds(3).buffered == held
    packs.end(waits(False))
    assert asked == [True, False]
    with pytest.raises(OSError) as closed:
        os.fstat(held)
    assert closed.value.errno == errno.EBADF


def test_a_chunk_past_the_pack_s_end_is_refused_both_ways(
    pack_file: tuple[Path, list[tuple[Request, bytes]]],
    cold_pack: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    size = cold_pack.stat().st_size
    (first, data), (second, text) = pack_file[1]
    past = [
        ((*first[:2], size - 100, *first[3:]), data),  # raw, reaching past the end
        ((*second[:2], size - 10, *second[3:]), text),  # zstd, the same
    ]
    assert load_in_worker(cold_pack, past) == [False, False]
    monkeypatch.setattr(Residency, "cached", lambda *args: None)  # as if it could not say
    assert load_in_worker(cold_pack, past) == [False, False]
    packs = _Packs(cold_pack.parent)
    worker = _Worker(packs, mmap.mmap(-1, 4 * MIB))
    packs.begin()
    try:  # refused for being short, not only for their hashes
        for verdict in (False, None):
            monkeypatch.setattr(Residency, "cached", lambda *args, v=verdict: v)
            assert worker._read(3, size - 100, 300_001) is None
            assert worker._read(3, size - 300, 300) is not None  # the end itself reads
    finally:
        packs.end(nothing_waits)


def test_packs_are_read_past_the_cache_only_on_local_block_filesystems(tmp_path: Path) -> None:
    assert filesystem_type(Path("/proc/self")) == "proc"
    shm = Path("/dev/shm")
    if filesystem_type(shm) == "tmpfs":
        assert not reads_past_cache(shm)
        assert not _Packs(shm).past_cache
    kind = filesystem_type(tmp_path)
    assert kind is not None
    assert reads_past_cache(tmp_path) == (
        kind in ("ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs")
        and cached_pages(tmp_path) is not None
    )


def test_the_mount_table_is_read_when_the_mount_s_tree_is_made_not_at_its_first_open(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How packs are read (past the page cache or not) is decided once, as the daemon makes
    its Vfs: a cold mount's first open does not read and search the mount table."""
    source = tmp_path / "checkpoint"
    source.mkdir()
    content = random.Random(3).randbytes(3 * MIB)  # not small: its reader asks pack_ranges
    (source / "weights.bin").write_bytes(content)
    store.put(source, ArtifactName("p", "w"))
    asked: list[Path] = []
    real = direct.filesystem_type

    def counted(path: Path) -> str | None:
        asked.append(path)
        return real(path)

    monkeypatch.setattr(direct, "filesystem_type", counted)
    direct.pack_ranges.cache_clear()  # as in a new daemon
    vfs = Vfs.create(store, lineage=False)
    assert asked == [store.pack_directory]
    ino = ROOT_INODE
    for name in (b"p", b"w", b"v0", b"weights.bin"):
        ino = vfs.lookup(ino, name).ino
    fh = vfs.open(ino, os.O_RDONLY)
    try:
        assert bytes(vfs.reader(fh).read(MIB, 4096)) == content[MIB : MIB + 4096]
    finally:
        vfs.release(fh)
    assert asked == [store.pack_directory]


def test_a_raw_chunk_s_place_spans_its_whole_blocks_and_a_zstd_chunk_s_its_length() -> None:
    """A read past the page cache of a raw chunk lands in its place as the blocks come."""
    assert place_of(Codec.RAW, 1234, 300_001) == (303_104, 1234)  # 74 blocks from 0
    assert place_of(Codec.RAW, 8192, 4096) == (4096, 0)
    assert place_of(Codec.RAW, 8191, 2) == (8192, 4095)  # one byte in each of two blocks
    assert place_of(Codec.ZSTD, 1234, 300_001) == (300_001, 0)


def test_a_raw_chunk_read_past_the_cache_writes_only_its_own_place(tmp_path: Path) -> None:
    """A 64 KiB chunk stored 100 bytes into a block spans 17 blocks: its place takes two arena
    units, the blocks land in it, and the bytes after the place are left alone."""
    if not reads_past_cache(tmp_path):
        pytest.skip(f"{tmp_path} is on {filesystem_type(tmp_path)}: every load is buffered")
    data = random.Random(65).randbytes(ARENA_UNIT)
    path = tmp_path / pack_name(5)
    with open(path, "wb") as out:
        out.write(bytes(100) + data + b"\xee" * 3 * ARENA_UNIT)
        out.flush()
        os.fsync(out.fileno())
        os.posix_fadvise(out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    size, skip = place_of(Codec.RAW, 100, len(data))
    assert (size, skip) == (17 * 4096, 100) and size > ARENA_UNIT
    arena = mmap.mmap(-1, 4 * ARENA_UNIT)
    arena[size : 4 * ARENA_UNIT] = b"\x55" * (4 * ARENA_UNIT - size)
    packs = _Packs(tmp_path)
    packs.begin()
    try:
        request = (1, 5, 100, len(data), len(data), Codec.RAW, 0, chunk_id(data))
        assert _Worker(packs, arena).load(request)
    finally:
        packs.end(nothing_waits)
    assert arena[skip : skip + len(data)] == data
    assert arena[size : 4 * ARENA_UNIT] == b"\x55" * (4 * ARENA_UNIT - size)
    assert cached_pages(path, 100, len(data)) is False  # it was read past the cache


def code_mappings(smaps: str, module_file: str) -> list[tuple[int, int]]:
    """(size, resident) in KiB of each readable mapping of ``module_file`` in ``smaps`` (a
    process's ``/proc/PID/smaps``)."""
    found: list[list[int]] = []
    current: list[int] | None = None
    for line in smaps.splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            fields = line.split(maxsplit=5)
            mapped = fields[1].startswith("r") and len(fields) == 6 and fields[5] == module_file
            current = [] if mapped else None
            if current is not None:
                found.append(current)
        elif current is not None and line.split()[0] in ("Size:", "Rss:"):
            current.append(int(line.split()[1]))
    return [(size, rss) for size, rss in found]


def decoders_in_place(pid: int) -> None:
    """Assert that every page process ``pid`` maps of zstd's and BLAKE3's compiled code is
    resident."""
    smaps = Path(f"/proc/{pid}/smaps").read_text()
    files = direct.code_files(DECODERS)
    assert len(files) == 2  # zstd's and BLAKE3's compiled modules
    for name in files:
        mappings = code_mappings(smaps, name)
        assert mappings and all(rss == size for size, rss in mappings), name


needs_populate = pytest.mark.skipif(
    tuple(int(part) for part in re.findall(r"\d+", os.uname().release)[:2]) < (5, 14),
    reason="MADV_POPULATE_READ came in Linux 5.14",
)


@needs_populate
def test_map_code_puts_every_page_of_the_decoder_and_hasher_in_place() -> None:
    # In a fresh process, whose imports ran only a little of each library's code.
    script = (
        "import json\n"
        "from artfs.fs import chunkloader\n"
        "smaps = lambda: open('/proc/self/smaps').read()\n"
        "before = smaps()\n"
        "covered = chunkloader.map_decoders()\n"
        "print(json.dumps([before, smaps(), covered]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    before, after, covered = json.loads(done.stdout)
    files = direct.code_files(DECODERS)
    assert len(files) == 2
    mapped_before = [code_mappings(before, name) for name in files]
    mapped_after = [code_mappings(after, name) for name in files]
    assert all(mapped_before) and all(mapped_after)
    # The imports left pages of the code to come as it first runs...
    assert any(rss < size for mappings in mapped_before for size, rss in mappings)
    # ...map_code left none, and says how much it covered.
    assert all(rss == size for mappings in mapped_after for size, rss in mappings)
    assert covered == sum(size for mappings in mapped_after for size, _ in mappings) * 1024


@needs_populate
def test_the_loader_has_its_decoder_and_hasher_in_place_once_ready(
    stored: tuple[Store, FileEntry, bytes],
) -> None:
    store, _, _ = stored
    loader = started(store)
    try:
        decoders_in_place(loader.process.pid)
    finally:
        loader.stop()


def test_the_filesystem_of_a_path_is_its_innermost_mount_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = "/artfs-no-such-dir"
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_bytes(
        "\n".join(
            [
                "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw",
                f"30 22 8:2 / {top}/data rw shared:5 master:2 - xfs /dev/vdb rw",
                f"31 22 0:40 / {top}/data2 rw - nfs4 server:/x rw",
                f"32 30 0:41 / {top}/data/my\\040packs rw - overlay overlay rw",
                f"33 22 8:3 / {top}/stack rw - ext4 /dev/vdc rw",
                f"34 33 0:42 / {top}/stack rw - tmpfs tmpfs rw",
            ]
        ).encode()
        + b"\n35 22 0:43 / /caf\xe9 rw - btrfs /dev/vdd rw\n"  # not UTF-8: still read
    )
    monkeypatch.setattr(mounts, "MOUNTINFO", mountinfo)
    kinds = {
        f"{top}/data/a": "xfs",  # optional fields before the separator
        f"{top}/data2/b": "nfs4",  # not /data's, though it starts with its name
        f"{top}/data/my packs/c": "overlay",  # an escaped space in the mount point
        f"{top}/stack/d": "tmpfs",  # the later of two mounts on one point
        f"{top}/elsewhere": "ext4",
    }
    for path, kind in kinds.items():
        assert filesystem_type(Path(path)) == kind, path
    monkeypatch.setattr(mounts, "MOUNTINFO", tmp_path / "gone")
    assert filesystem_type(Path(top)) is None


# --- reads through the loader, in the event loop (no kernel) ---------------------------------


@dataclass
class Through:
    """What :func:`read_through_loader` saw."""

    got: list[bytes | int]  # each file's bytes, or the errno its read failed with
    in_threads: int  # chunks the daemon's own threads loaded
    by_loader: int  # bytes of chunks the loader answered verified
    alive: bool  # whether loads still went to the loader at the end
    # one_by_one: each file's chunks in the daemon's cache as it was opened (the loads sent
    # then given time to land)
    cached_at_open: list[int] = field(default_factory=list)


def read_through_loader(
    store: Store,
    paths: list[str],
    *,
    cache_bytes: int = 64 * MIB,
    arena_bytes: int = 128 * MIB,
    kill_loader: bool = False,
    one_by_one: bool = False,
) -> Through:
    """Files read front to back by the daemon's operations with a loader process, in turns of
    1 MiB each; ``one_by_one``: each opened, read to its end and released before the next is
    opened. ``kill_loader``: kill the loader once it is ready, before the first read."""
    vfs = Vfs.create(store, cache_bytes=cache_bytes, lineage=False)
    ops = ArtfsOperations(vfs)
    loader = LoaderProcess.start(store.pack_directory, arena_bytes, 2)
    assert loader.wait_ready(30)
    ops.use_loader(loader, 2)
    assert ops.loads is not None
    loads = ops.loads
    seen = Through([], 0, 0, True)
    read_pinned, chunk = store.read_pinned, loader.arena.chunk

    def counted(*args: object, **kwargs: object) -> bytes:
        seen.in_threads += 1
        return read_pinned(*args, **kwargs)  # type: ignore[arg-type]

    def answered(at: int, length: int, skip: int = 0) -> memoryview:
        seen.by_loader += length
        return chunk(at, length, skip)

    async def landed() -> None:
        """Every load sent to the loader answered (the read-ahead no read waited for)."""
        with trio.fail_after(30):
            while loads.alive and loads._sent:
                await trio.sleep(0.01)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ops.nursery = nursery
            nursery.start_soon(loads.serve)
            if kill_loader:
                loader.process.kill()
                with trio.fail_after(30):
                    while loads.alive:
                        await trio.sleep(0.01)
            if one_by_one:
                for path in paths:
                    ino = await _lookup(ops, path)
                    await landed()  # what the last file's reads sent
                    chunks = vfs.node(ino).entry.chunks  # type: ignore[union-attr]
                    seen.cached_at_open.append(sum(ref in vfs.cache for ref in chunks))
                    fh = (await ops.open(ino, os.O_RDONLY, CTX)).fh
                    seen.got.append(await _read_to_end(ops, fh))
                    await ops.release(fh)
                await landed()
                seen.alive = loads.alive
                nursery.cancel_scope.cancel()
                return
            handles = [
                (await ops.open(await _lookup(ops, path), os.O_RDONLY, CTX)).fh for path in paths
            ]
            got: list[bytearray | int] = [bytearray() for _ in paths]
            reading = set(range(len(paths)))
            while reading:
                for index in sorted(reading):
                    done = got[index]
                    assert isinstance(done, bytearray)
                    try:
                        piece = await ops.read(handles[index], len(done), MIB)
                    except pyfuse3.FUSEError as exc:
                        got[index] = exc.errno
                        piece = b""
                    if not piece:
                        reading.discard(index)
                    elif isinstance(done, bytearray):
                        done += piece
            for fh in handles:
                await ops.release(fh)
            await landed()
            seen.got = [part if isinstance(part, int) else bytes(part) for part in got]
            seen.alive = loads.alive
            nursery.cancel_scope.cancel()

    store.read_pinned = counted  # type: ignore[method-assign]
    loader.arena.chunk = answered  # type: ignore[method-assign]
    try:
        trio.run(main)
    finally:
        del store.read_pinned
        loader.stop()
    return seen


async def _read_to_end(ops: ArtfsOperations, fh: int) -> bytes | int:
    """Handle ``fh``'s bytes read 1 MiB at a time, or the errno a read failed with."""
    done = bytearray()
    while True:
        try:
            piece = await ops.read(fh, len(done), MIB)
        except pyfuse3.FUSEError as exc:
            return exc.errno
        if not piece:
            return bytes(done)
        done += piece


async def _lookup(ops: ArtfsOperations, path: str) -> int:
    ino = 1
    for part in path.split("/"):
        ino = (await ops.lookup(ino, part.encode(), CTX)).st_ino
    return ino


def first_chunks(entry: FileEntry, size: int) -> tuple[ChunkRef, ...]:
    """``entry``'s chunks from the first up to the one that reaches ``size`` bytes (all of
    them if the file is smaller)."""
    ends = itertools.accumulate(ref.length for ref in entry.chunks)
    return entry.chunks[: next((i for i, end in enumerate(ends, 1) if end >= size), None)]


def test_reads_through_the_loader_are_exact_and_no_chunk_loads_in_a_thread(
    stored: tuple[Store, FileEntry, bytes],
) -> None:
    """data.bin read to its end also loads the start of other.bin, the file after it (all of
    it: 5 MiB, less than ``NEXT_FILE_BYTES``)."""
    store, _, content = stored
    seen = read_through_loader(store, [DATA])
    assert seen.got == [content]
    other = store.files(store.resolve("proj/data:v0"))[1]
    started = sum(ref.length for ref in first_chunks(other, NEXT_FILE_BYTES))
    assert seen.in_threads == 0 and seen.by_loader == len(content) + started and seen.alive


@pytest.mark.parametrize(
    ("start", "cache_mib", "loaded"),
    [
        (NEXT_FILE_BYTES, 64, NEXT_FILE_BYTES),  # the daemon's own: all of other.bin (5 MiB)
        (2 * MIB, 64, 2 * MIB),  # a smaller start: the chunks holding its first 2 MiB
        (NEXT_FILE_BYTES, 16, 4 * MIB),  # a small cache: a quarter of it
    ],
)
def test_a_file_read_to_its_end_has_the_start_of_the_next_loaded_before_its_open(
    stored: tuple[Store, FileEntry, bytes],
    monkeypatch: pytest.MonkeyPatch,
    start: int,
    cache_mib: int,
    loaded: int,
) -> None:
    """With ``NEXT_FILE_BYTES`` at ``start`` and a chunk cache of ``cache_mib``, the chunks
    holding the first ``loaded`` bytes of other.bin are cached when it opens (its chunks are
    all above INLINE_LOAD_BYTES: every one goes to the loader)."""
    monkeypatch.setattr("artfs.vfs.NEXT_FILE_BYTES", start)
    store, _, content = stored
    other = store.files(store.resolve("proj/data:v0"))[1]
    assert 0 < len(first_chunks(other, 4 * MIB)) < len(other.chunks)  # 2 or 4 MiB: a start
    seen = read_through_loader(store, [DATA, OTHER], one_by_one=True, cache_bytes=cache_mib * MIB)
    assert seen.got == [content, random.Random(6).randbytes(5 * MIB)]
    assert seen.cached_at_open == [0, len(first_chunks(other, loaded))]
    assert seen.in_threads == 0 and seen.by_loader == len(content) + other.size and seen.alive


def test_a_full_arena_sends_loads_to_threads_and_freed_places_are_reused_exactly(
    stored: tuple[Store, FileEntry, bytes],
) -> None:
    """Two files read in turns through an arena of two maximal chunks and a cache of one:
    places are freed and written again while the other file's views live on."""
    store, _, content = stored
    seen = read_through_loader(
        store, [DATA, OTHER], cache_bytes=MAX_CHUNK, arena_bytes=2 * MAX_CHUNK
    )
    assert seen.got == [content, random.Random(6).randbytes(5 * MIB)]
    assert seen.by_loader > 2 * MAX_CHUNK  # places were written again
    assert seen.in_threads > 0 and seen.alive  # and some loads found the arena full


def test_a_chunk_the_loader_refuses_is_loaded_by_the_daemon_which_says_eio(
    stored: tuple[Store, FileEntry, bytes],
) -> None:
    store, _, _ = stored
    for pack in store.pack_directory.iterdir():
        with open(pack, "r+b") as f:
            f.seek(2 * MIB)
            byte = f.read(1)
            f.seek(2 * MIB)
            f.write(bytes([byte[0] ^ 1]))
    seen = read_through_loader(store, [DATA])
    assert seen.got == [errno.EIO]
    assert seen.in_threads == 1 and seen.alive  # the refused chunk, again in a thread


def test_reads_go_on_in_threads_once_the_loader_is_gone(
    stored: tuple[Store, FileEntry, bytes],
) -> None:
    store, entry, content = stored
    seen = read_through_loader(store, [DATA], kill_loader=True)
    assert seen.got == [content]
    assert seen.in_threads == len(entry.chunks) and seen.by_loader == 0 and not seen.alive


def test_a_stopping_daemon_leaves_no_thread_waiting_for_a_load_the_loader_never_answers(
    stored: tuple[Store, FileEntry, bytes],
) -> None:
    """The loader stalls (SIGSTOP) with a read waiting for its chunk and a worker thread
    waiting for the same chunk; the daemon stops (its nursery cancelled): the thread loads
    the chunk itself, and the nursery ends."""
    store, entry, content = stored
    ops = ArtfsOperations(Vfs.create(store, cache_bytes=64 * MIB, lineage=False))
    loader = LoaderProcess.start(store.pack_directory, 128 * MIB, 2)
    assert loader.wait_ready(30)
    ops.use_loader(loader, 2)
    assert ops.loads is not None
    loads, first = ops.loads, entry.chunks[0]
    got: list[object] = []

    async def main() -> None:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                ops.nursery = nursery
                nursery.start_soon(loads.serve)
                info = await ops.open(await _lookup(ops, DATA), os.O_RDONLY, CTX)
                loader.process.send_signal(signal.SIGSTOP)
                nursery.start_soon(ops.read, info.fh, 0, MIB)
                while first not in ops.vfs.cache:  # the read's load is claimed and sent
                    await trio.sleep(0.01)
                wait = lambda: got.append(ops.vfs.cache.get(first))  # noqa: E731
                nursery.start_soon(trio.to_thread.run_sync, wait)
                await trio.sleep(0.2)
                assert not got  # the thread waits for the loader's answer
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        loader.kill()
    assert got == [content[: first.length]]


# --- a real mount -----------------------------------------------------------------------------


def loader_pid(daemon: int) -> int | None:
    children = Path(f"/proc/{daemon}/task/{daemon}/children").read_text().split()
    return int(children[0]) if children else None


def bytes_read(pid: int) -> int:
    found = re.search(r"^rchar: (\d+)$", Path(f"/proc/{pid}/io").read_text(), re.M)
    assert found is not None
    return int(found.group(1))


@pytest.fixture
def big_home(tmp_path: Path) -> tuple[Path, bytes]:
    src = tmp_path / "src"
    src.mkdir()
    content = random.Random(8).randbytes(6 * MIB)
    (src / "weights.f32").write_bytes(content)
    put(tmp_path / "home", src, "proj/model")
    return tmp_path / "home", content


def test_a_mounted_file_is_loaded_by_the_loader_process(
    big_home: tuple[Path, bytes], start_mount: StartMount
) -> None:
    home, content = big_home
    mount = start_mount(home)
    assert "chunk loader (pid" in mount.log_text()  # it is ready before the mount is
    pid = loader_pid(mount.proc.pid)
    assert pid is not None
    before = bytes_read(pid)
    assert (mount.path / "proj/model/v0/weights.f32").read_bytes() == content
    assert bytes_read(pid) - before >= len(content)  # raw chunks: the loader read them all


def test_no_loader_process_with_loaders_0_and_reads_are_exact(
    big_home: tuple[Path, bytes], start_mount: StartMount
) -> None:
    home, content = big_home
    mount = start_mount(home, None, "--loaders", "0")
    assert (mount.path / "proj/model/v0/weights.f32").read_bytes() == content
    assert loader_pid(mount.proc.pid) is None


@needs_populate
@pytest.mark.parametrize("loaders", ["2", "0"])
def test_the_daemon_has_its_decoder_and_hasher_in_place_once_mounted(
    big_home: tuple[Path, bytes], start_mount: StartMount, loaders: str
) -> None:
    # It decodes too: small files on its event loop, and every chunk with --loaders 0.
    home, content = big_home
    mount = start_mount(home, None, "--loaders", loaders)
    decoders_in_place(mount.proc.pid)
    assert (mount.path / "proj/model/v0/weights.f32").read_bytes() == content


def test_the_loader_exits_when_the_daemon_is_killed(
    big_home: tuple[Path, bytes], start_mount: StartMount
) -> None:
    home, _ = big_home
    mount = start_mount(home)
    pid = loader_pid(mount.proc.pid)
    assert pid is not None
    mount.proc.send_signal(signal.SIGKILL)
    mount.proc.wait(timeout=10)

    def gone() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        except FileNotFoundError:
            return True

    eventually(gone, within=10)


def test_a_loader_that_dies_or_stalls_before_it_is_ready_is_not_used(
    stored: tuple[Store, FileEntry, bytes],
) -> None:
    store, _, _ = stored
    dead = LoaderProcess.start(store.pack_directory, 16 * MIB, 2)
    dead.process.kill()
    stalled = LoaderProcess.start(store.pack_directory, 16 * MIB, 2)
    stalled.process.send_signal(signal.SIGSTOP)
    for loader in (dead, stalled):
        assert not loader_ready(loader, timeout=1.0)
        assert loader.process.returncode is not None and loader.sock.fileno() == -1
