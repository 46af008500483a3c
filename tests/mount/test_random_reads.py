"""Random reads through a real mount: page faults of a mapping and preads at random offsets,
which the daemon answers while it loads the rest of the file ahead (see FileReader.plan), or
in verified blocks when the file is not loaded whole (see FileReader.read_blocks)."""

from __future__ import annotations

import errno
import mmap
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from artfs.names import ArtifactName, Ref
from artfs.store import Store, catalog
from artfs.store.hashing import BLOCK_SIZE
from tests.mount.mountutil import StartMount, put, resident_pages

MIB = 1 << 20
PAGE = 4096


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[Path, bytes]:
    """A store holding proj/ckpt v0 with weights.f32: 12 MiB of float-like bytes (several
    chunks, some zstd, some raw) and its content."""
    rng = random.Random(5)
    content = b"".join(
        rng.randbytes(MIB) if n % 2 else bytes(rng.randrange(4)) * MIB for n in range(12)
    )
    return _stored(tmp_path, "proj/ckpt", "weights.f32", content), content


def _stored(tmp_path: Path, ref: str, name: str, content: bytes) -> Path:
    """The home of a store holding ``ref`` v0, one file ``name`` of ``content``."""
    src = tmp_path / "src"
    src.mkdir()
    (src / name).write_bytes(content)
    put(tmp_path / "home", src, ref)
    return tmp_path / "home"


def test_random_page_faults_of_a_mapping_read_exact_bytes(
    checkpoint: tuple[Path, bytes], start_mount: StartMount
) -> None:
    home, content = checkpoint
    mount = start_mount(home)
    path = mount.path / "proj" / "ckpt" / "v0" / "weights.f32"
    rng = random.Random(9)
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        assert len(mapped) == len(content)
        for _ in range(2000):
            start = rng.randrange(len(content) // PAGE) * PAGE
            assert mapped[start : start + PAGE] == content[start : start + PAGE]


def _damage_chunk(
    home: Path, path: str, index: int, name: str = "ckpt", at: int | None = None
) -> tuple[int, int]:
    """Flip a stored byte of chunk ``index`` of ``path`` in proj/``name`` v0 (``at`` bytes
    into it, else in its middle); the chunk's range in the file (start, end)."""
    with Store.open(home) as store:
        with store.index.read() as txn:
            record = catalog.resolve(txn, Ref(ArtifactName("proj", name), "v0"))
            entry = catalog.lookup(txn, record, path)
        assert entry is not None and len(entry.chunks) > index + 2
        location = store.chunk_location(entry.chunks[index].chunk_id)
        assert location is not None
        pack = store.chunks.path(location.pack_id)  # type: ignore[attr-defined]
        start = sum(ref.length for ref in entry.chunks[:index])
        end = start + entry.chunks[index].length
    where = location.offset + (location.stored_length // 2 if at is None else at)
    with open(pack, "r+b") as f:
        f.seek(where)
        byte = f.read(1)
        f.seek(where)
        f.write(bytes([byte[0] ^ 0x40]))
    return start, end


def test_random_reads_of_a_damaged_chunk_fail_while_read_ahead_loads_the_rest(
    checkpoint: tuple[Path, bytes], start_mount: StartMount
) -> None:
    """Read-ahead of a file read at random verifies what it loads like any read: the damaged
    chunk is never served (EIO for every read in it, also after the read-ahead tried it),
    reads elsewhere are exact, and the daemon says why."""
    home, content = checkpoint
    bad_start, bad_end = _damage_chunk(home, "weights.f32", 2)
    mount = start_mount(home)
    path = mount.path / "proj" / "ckpt" / "v0" / "weights.f32"
    rng = random.Random(4)
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(400):
            start = rng.randrange(len(content) // PAGE) * PAGE
            try:
                got = os.pread(fd, PAGE, start)
            except OSError as exc:
                # The kernel may ask for more than the page (read-around): a read reaching
                # into the damaged chunk fails whole.
                assert exc.errno == errno.EIO
                assert bad_start - 2 * MIB <= start < bad_end + 2 * MIB
                continue
            assert got == content[start : start + PAGE]
            assert not bad_start <= start < bad_end, "bytes of the damaged chunk were served"
        inside = (bad_start + bad_end) // 2 // PAGE * PAGE
        with pytest.raises(OSError) as caught:
            os.pread(fd, PAGE, inside)
        assert caught.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert "corrupt" in mount.log_text() or "does not match" in mount.log_text()


@pytest.fixture
def large_raw(tmp_path: Path) -> tuple[Path, bytes]:
    """A store holding proj/big v0 with weights.bin: 24 MiB of incompressible bytes, stored
    as raw chunks with block digests."""
    content = random.Random(11).randbytes(24 * MIB)
    return _stored(tmp_path, "proj/big", "weights.bin", content), content


def test_through_the_mount_a_damaged_block_fails_only_the_reads_in_it(
    large_raw: tuple[Path, bytes], start_mount: StartMount
) -> None:
    """With a 16 MiB chunk cache the 24 MiB file is never loaded whole, so reads at random
    take their blocks (every raw chunk, of at least 256 KiB, has digests): a read in the
    damaged block fails (EIO), one elsewhere in the same chunk is served exact, which a
    whole chunk's check could not do."""
    home, content = large_raw
    start, end = _damage_chunk(home, "weights.bin", 4, name="big", at=BLOCK_SIZE + 10)
    mount = start_mount(home, None, "--cache-mb", "16")
    fd = os.open(mount.path / "proj" / "big" / "v0" / "weights.bin", os.O_RDONLY)
    try:
        rng = random.Random(2)
        for _ in range(60):  # reads at random, away from the damaged chunk: exact
            at = rng.randrange(len(content) // PAGE) * PAGE
            if start - MIB <= at < end + MIB:
                continue
            assert os.pread(fd, PAGE, at) == content[at : at + PAGE]
        last = end - PAGE  # the damaged chunk's last page: its block is sound
        assert os.pread(fd, PAGE, last) == content[last : last + PAGE]
        with pytest.raises(OSError) as caught:
            os.pread(fd, PAGE, start + BLOCK_SIZE)
        assert caught.value.errno == errno.EIO
    finally:
        os.close(fd)


def test_a_file_read_at_random_reaches_the_kernel_s_page_cache_whole_and_exact(
    tmp_path: Path, start_mount: StartMount
) -> None:
    """With a 16 MiB chunk cache a 12 MiB file is planned whole at its second seek, and each
    chunk's pages are handed to the kernel as the chunk loads (see artfsd.pagestores): after
    two page faults the whole file comes to be in the page cache, though nothing read it,
    and every byte the kernel then serves from there is the file's."""
    rng = random.Random(12)
    # Raw chunks and zstd ones; the last page is partial.
    content = b"".join(rng.randbytes(MIB) if n % 3 else bytes([n]) * MIB for n in range(12))
    content = content[:-100]
    home = _stored(tmp_path, "proj/ckpt", "weights.f32", content)
    mount = start_mount(home, None, "--cache-mb", "16")
    path = mount.path / "proj" / "ckpt" / "v0" / "weights.f32"
    with _faulted(path, content, (7 * MIB + 5 * PAGE, 2 * MIB + 3 * PAGE)) as mapped:
        _wait_resident(path)  # though nothing read it
        assert mapped[:] == content
    assert "Traceback" not in mount.log_text()


@contextmanager
def _faulted(path: Path, content: bytes, offsets: tuple[int, ...]) -> Iterator[mmap.mmap]:
    """A mapping of ``path`` (open while the block runs: a release ends the file's loads and
    stores), page faults at ``offsets`` of it made and checked against ``content``."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        for at in offsets:
            assert mapped[at : at + PAGE] == content[at : at + PAGE]
        yield mapped


def _wait_resident(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not all(resident := resident_pages(path)):
        assert time.monotonic() < deadline, (
            f"{resident.count(False)} of {len(resident)} pages never reached the kernel"
        )
        time.sleep(0.05)


def test_a_handle_opened_o_direct_leaves_the_page_cache_alone(
    tmp_path: Path, start_mount: StartMount
) -> None:
    """A reader past the page cache is served by the daemon at every read: its file's pages
    are not handed to the kernel. Stores are made in the order files are read across, so
    once a file read at random after it is in the page cache whole, any store of the first
    would have been made."""
    rng = random.Random(13)
    direct, buffered = rng.randbytes(12 * MIB), rng.randbytes(6 * MIB)
    src = tmp_path / "src"
    src.mkdir()
    (src / "direct.f32").write_bytes(direct)
    (src / "buffered.f32").write_bytes(buffered)
    put(tmp_path / "home", src, "proj/ckpt")
    mount = start_mount(tmp_path / "home", None, "--cache-mb", "16")
    version = mount.path / "proj" / "ckpt" / "v0"
    fd = os.open(version / "direct.f32", os.O_RDONLY | os.O_DIRECT)
    buffer = mmap.mmap(-1, PAGE)
    try:  # open all along: a release would end any stores of its file
        for at in (7 * MIB, 2 * MIB, 9 * MIB, 4 * MIB):
            assert os.preadv(fd, [buffer], at) == PAGE
            assert buffer[:] == direct[at : at + PAGE]
        with _faulted(version / "buffered.f32", buffered, (5 * MIB, MIB + 7 * PAGE)):
            _wait_resident(version / "buffered.f32")
        assert not any(resident_pages(version / "direct.f32"))
    finally:
        os.close(fd)
        buffer.close()


def test_sigterm_while_a_file_read_at_random_goes_to_the_kernel_unmounts(
    tmp_path: Path, start_mount: StartMount
) -> None:
    """The daemon stops its stores of pages while it still answers reads: a signal in the
    middle of them ends it cleanly, and the reader gets its bytes or an error, not a hang."""
    content = random.Random(14).randbytes(12 * MIB)
    home = _stored(tmp_path, "proj/ckpt", "weights.f32", content)
    mount = start_mount(home, None, "--cache-mb", "16")
    path = mount.path / "proj" / "ckpt" / "v0" / "weights.f32"
    faults = (
        "import mmap, random, sys\n"
        "f = open(sys.argv[1], 'rb'); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
        "m[7 << 20]; m[2 << 20]; print('reading', flush=True)\n"
        "r = random.Random(1)\n"
        "for _ in range(200_000): m[r.randrange(len(m))]\n"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", faults, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline() == b"reading\n"
        mount.proc.send_signal(signal.SIGTERM)
        assert mount.proc.wait(timeout=20) == 0, mount.log_text()
        reader.wait(timeout=20)  # done, or ended by SIGBUS once the mount went
    finally:
        reader.kill()
        reader.wait()
        for stream in (reader.stdout, reader.stderr):
            if stream is not None:
                stream.close()
    assert "Traceback" not in mount.log_text()
