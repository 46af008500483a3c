"""Random reads through a real mount: page faults of a mapping and preads at random offsets,
which the daemon answers while it loads the rest of the file ahead (see FileReader.plan)."""

from __future__ import annotations

import errno
import mmap
import os
import random
from pathlib import Path

import pytest

from artfs.names import ArtifactName, Ref
from artfs.store import Store, catalog
from tests.mount.mountutil import StartMount, put

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
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.f32").write_bytes(content)
    put(tmp_path / "home", src, "proj/ckpt")
    return tmp_path / "home", content


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


def _damage_chunk(home: Path, path: str, index: int) -> tuple[int, int]:
    """Flip a stored byte of chunk ``index`` of ``path`` in proj/ckpt v0; the chunk's range in
    the file (start, end)."""
    with Store.open(home) as store:
        with store.index.read() as txn:
            record = catalog.resolve(txn, Ref(ArtifactName("proj", "ckpt"), "v0"))
            entry = catalog.lookup(txn, record, path)
        assert entry is not None and len(entry.chunks) > index + 2
        location = store.chunk_location(entry.chunks[index].chunk_id)
        assert location is not None
        pack = store.chunks.path(location.pack_id)  # type: ignore[attr-defined]
        start = sum(ref.length for ref in entry.chunks[:index])
        end = start + entry.chunks[index].length
    at = location.offset + location.stored_length // 2
    with open(pack, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
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
