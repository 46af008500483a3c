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

# Not a directory on any host: filesystem_type resolves symlinks on the real filesystem.
TOP = "/artfs-no-such-dir"


def test_every_reader_of_the_mount_table_sees_the_same_mounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "mountinfo"
    lines = [
        b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw",
        b"40 22 0:50 / T/my\\040data\\011x rw,nosuid shared:7 - fuse.artfs artfs rw",
        b"41 22 0:51 / T/back\\134slash rw - fuse.artfs artfs rw,user_id=0",
        b"42 22 0:52 / T/new\\012line\x0cfeed rw - fuse.artfs artfs rw",
        b"43 22 0:53 / T/other rw - fuse.sshfs host:/my\\040home rw",
        b"44 22 0:54 / T/caf\xe9 rw - fuse.artfs artfs rw",
        b"45 22 0:55 / T/stack rw - fuse.artfs artfs rw",
        b"46 45 0:56 / T/stack rw - tmpfs tmpfs rw",  # over it: the one seen there
        b"not a line of the format",
    ]
    table.write_bytes(b"\n".join(lines).replace(b" T/", b" " + TOP.encode() + b"/") + b"\n")
    monkeypatch.setattr(mounts, "MOUNTINFO", table)
    points = ["my data\tx", "back\\slash", "new\nline\x0cfeed", os.fsdecode(b"caf\xe9"), "stack"]
    artfs_points = [f"{TOP}/{point}" for point in points]
    assert len(mount_table()) == 8
    assert Mount(f"{TOP}/other", "fuse.sshfs", "host:/my home") in mount_table()
    assert [m.point for m in mount_table() if m.fstype == "fuse.artfs"] == artfs_points
    assert run._artfs_mounts() == artfs_points  # the SDK registers a run with each of them
    assert mount_entry(Path(f"{TOP}/my data\tx")) == ("fuse.artfs", "artfs")
    assert is_artfs_mount(Path(f"{TOP}/back\\slash"))
    assert is_artfs_mount(Path(f"{TOP}/new\nline\x0cfeed"))
    assert mount_entry(Path(f"{TOP}/stack")) == ("tmpfs", "tmpfs")
    assert not is_artfs_mount(Path(f"{TOP}/stack"))
    assert not is_artfs_mount(Path(f"{TOP}/other")) and mount_entry(Path(TOP)) is None
    assert filesystem_type(Path(f"{TOP}/my data\tx/p/v0")) == "fuse.artfs"
    assert filesystem_type(Path(f"{TOP}/elsewhere")) == "ext4"


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
