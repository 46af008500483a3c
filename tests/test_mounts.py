"""``artfs.mounts``: the one parser of ``/proc/self/mountinfo``, read alike by the daemon's
check of its mountpoint, the SDK's search for artfs mounts and the pack reads' choice of
filesystem (a mount point with a space, a tab or a backslash included)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from artfsd.mountpoint import is_artfs_mount, mount_entry

from artfs import mounts
from artfs.fs.direct import filesystem_type
from artfs.mounts import Mount, mount_table
from artfs.sdk import run


def test_every_reader_of_the_mount_table_sees_the_same_mounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "mountinfo"
    table.write_bytes(
        b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        b"40 22 0:50 / /mnt/my\\040data\\011x rw,nosuid shared:7 - fuse.artfs artfs rw\n"
        b"41 22 0:51 / /mnt/back\\134slash rw - fuse.artfs artfs rw,user_id=0\n"
        b"42 22 0:52 / /mnt/other rw - fuse.sshfs host:/my\\040home rw\n"
        b"43 22 0:53 / /mnt/caf\xe9 rw - fuse.artfs artfs rw\n"
        b"not a line of the format\n"
    )
    monkeypatch.setattr(mounts, "MOUNTINFO", table)
    artfs_points = ["/mnt/my data\tx", "/mnt/back\\slash", os.fsdecode(b"/mnt/caf\xe9")]
    assert mount_table()[3] == Mount("/mnt/other", "fuse.sshfs", "host:/my home")
    assert [m.point for m in mount_table() if m.fstype == "fuse.artfs"] == artfs_points
    assert run._artfs_mounts() == artfs_points  # the SDK registers a run with each of them
    assert mount_entry(Path("/mnt/my data\tx")) == ("fuse.artfs", "artfs")
    assert is_artfs_mount(Path("/mnt/back\\slash"))
    assert not is_artfs_mount(Path("/mnt/other")) and mount_entry(Path("/mnt")) is None
    assert filesystem_type(Path("/mnt/my data\tx/p/v0")) == "fuse.artfs"
    assert filesystem_type(Path("/srv/data")) == "ext4"


def test_a_mount_table_that_cannot_be_read_holds_no_mounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mounts, "MOUNTINFO", tmp_path / "gone")
    assert mount_table() == []
    assert run._artfs_mounts() == [] and mount_entry(Path("/")) is None
    assert filesystem_type(Path("/")) is None


def test_this_process_s_own_table_is_read() -> None:
    assert any(m.point == "/" for m in mount_table())
    assert any(m.fstype == "proc" and m.point == "/proc" for m in mount_table())
