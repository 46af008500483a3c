"""Small files read whole at open, without a kernel: what the handle holds is verified, keeps
reading after its version is deleted and collected, and every opening process is recorded."""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

import pyfuse3
import trio
from artfsd.operations import ArtfsOperations

from artfs.lineage import Lineage
from artfs.names import Ref
from artfs.store import Store
from artfs.store.gc import collect
from artfs.vfs import Vfs
from tests.mount.mountutil import put
from tests.mount.test_listings import walk_to

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


def test_small_file_held_at_open_reads_after_its_version_is_deleted_and_collected(
    tmp_path: Path,
) -> None:
    home = stored(tmp_path)
    with Store.open(home) as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        ino = walk_to(ops.vfs, "p/small/v0/a.bin")
        info = trio.run(ops.open, ino, os.O_RDONLY, CTX)
        assert ops.vfs.reader(info.fh).held is not None  # read, verified and held at open
        store.delete(Ref.parse("p/small:v0"), force=True)
        collect(store)
        assert not any(p.stat().st_size for p in (home / "packs").iterdir())  # nothing left
        got = trio.run(ops.read, info.fh, 0, 1 << 17)
        tail = trio.run(ops.read, info.fh, 19_990, 4096)
        trio.run(ops.release, info.fh)
        assert bytes(got) == CONTENT and bytes(tail) == CONTENT[19_990:]
        assert ops.vfs.open_files == 0


def test_every_process_opening_a_cached_small_file_is_recorded_once_per_file(
    tmp_path: Path,
) -> None:
    """The second process finds the file's chunk cached (no index or pack read at all) and is
    still recorded as its own run; reopening by the first moves its last access only."""
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
                    fh = vfs.open(ino, os.O_RDONLY, pid)
                    assert vfs.reader(fh).held is not None
                    vfs.release(fh)
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
