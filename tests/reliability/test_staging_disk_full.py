"""Writes into staging through the mount until the store's disk is full.

The store lives on a 32 MiB tmpfs mounted by the test (root only). The writer must get ENOSPC;
nothing else breaks: versions still read correctly, a commit on the full disk fails cleanly
(no version, staging as it was), and once space is freed a commit of what fits lands.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from artfs.names import ArtifactName
from artfs.store import Store
from artfs.store.verify import verify
from tests.helpers import make_tree, random_bytes
from tests.mount.mountutil import StartMount, put

pytestmark = pytest.mark.mount


def _fill(path: Path) -> tuple[int, int]:
    """Write incompressible MiBs into ``path`` until the disk is full: (bytes written, errno)."""
    written = 0
    block = random_bytes(1 << 20, 5)
    try:
        with open(path, "wb", buffering=0) as out:
            while written < 1 << 30:
                written += out.write(block)
                os.fsync(out.fileno())
    except OSError as exc:
        return written, exc.errno or 0
    return written, 0


def test_staging_write_until_enospc(
    tmp_path: Path, small_tmpfs: Callable[[str], Path], start_mount: StartMount
) -> None:
    home = small_tmpfs("32m") / "home"
    v0 = random_bytes(2 << 20, 1)
    put(home, make_tree(tmp_path / "src", {"v0.bin": v0}), "proj/data")
    mnt = start_mount(home)
    art = mnt.path / "proj" / "data"
    staging = art / "staging"
    (staging / "small.txt").write_bytes(b"fits\n")

    written, err = _fill(staging / "big.bin")
    assert err == errno.ENOSPC, os.strerror(err)
    print(f"\nstaging disk full: ENOSPC after {written >> 20} MiB written")
    assert written > 10 << 20

    # Nothing else broke: versions read, listings and statfs answer.
    assert (art / "v0" / "v0.bin").read_bytes() == v0
    assert sorted(os.listdir(staging)) == ["big.bin", "small.txt"]
    assert os.statvfs(mnt.path).f_bsize > 0

    # A commit on the full disk fails cleanly: no version, staging as it was.
    control = staging / ".artfs-commit"
    with pytest.raises(OSError) as caught:
        control.write_text("{}")
    assert caught.value.errno in (errno.ENOSPC, errno.EIO), caught.value
    assert "space" in json.loads(control.read_text())["error"].lower()
    assert sorted(os.listdir(staging)) == ["big.bin", "small.txt"]
    with Store.open(home) as store:
        assert [r.number for r in store.versions(ArtifactName("proj", "data"))] == [0]

    # Free space: keep the first 4 MiB of big.bin; a commit of what fits lands.
    os.truncate(staging / "big.bin", 4 << 20)
    expected = (staging / "big.bin").read_bytes()
    control.write_text("{}")
    assert json.loads(control.read_text()) == {"ref": "proj/data:v1", "created": True}
    assert (art / "v1" / "big.bin").read_bytes() == expected
    assert (art / "v1" / "small.txt").read_bytes() == b"fits\n"
    with Store.open(home) as store:
        assert verify(store, store.versions(ArtifactName("proj", "data"))) == []
    # Staging takes writes again.
    (staging / "again.txt").write_bytes(b"ok\n")
    assert (staging / "again.txt").read_bytes() == b"ok\n"
