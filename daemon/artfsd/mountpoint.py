"""Checking a mountpoint before mounting, recovering a stale one, and unmounting.

Every refusal is an :class:`~artfs.errors.ArtfsError` whose one-line message says what to do.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

from artfs.errors import InputError, MountError
from artfs.mounts import ARTFS_FSTYPE, mount_at

FSNAME = "artfs"


def check_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        raise MountError(
            "/dev/fuse is missing: load the fuse module (modprobe fuse), or in a container "
            "pass --device /dev/fuse --cap-add SYS_ADMIN"
        )
    if fusermount() is None:
        raise MountError(
            "fusermount3 is missing: install the fuse3 package (apt-get install fuse3)"
        )


def fusermount() -> str | None:
    return shutil.which("fusermount3") or (
        "/usr/bin/fusermount3" if os.path.exists("/usr/bin/fusermount3") else None
    )


def mount_entry(path: Path) -> tuple[str, str] | None:
    """(fstype, source) of the mount at ``path`` (of two, the later: the one seen); None when
    nothing is mounted there, or the mount table cannot be read."""
    found = mount_at(path)
    return None if found is None else (found.fstype, found.source)


def is_artfs_mount(path: Path) -> bool:
    entry = mount_entry(path)
    return entry is not None and entry[0] == ARTFS_FSTYPE


def prepare(path: Path) -> Path:
    """Check ``path`` can take a new mount, recovering a dead artfs daemon's stale mount."""
    check_fuse()
    path = Path(os.path.abspath(path))
    try:
        # statfs always reaches the daemon (stat may be answered from the kernel's cache), so
        # a mount whose daemon died shows up here as "Transport endpoint is not connected".
        os.statvfs(path)
    except FileNotFoundError:
        raise InputError(f"mountpoint {path} does not exist: create it with mkdir -p") from None
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise InputError(f"cannot use mountpoint {path}: {exc.strerror}") from None
        unmount(path, lazy=True)
    if is_artfs_mount(path):
        raise InputError(f"{path} is already an artfs mount: 'artfs umount {path}' first")
    if not path.is_dir():
        raise InputError(f"mountpoint {path} is not a directory")
    if any(os.scandir(path)):
        raise InputError(f"mountpoint {path} is not empty: use an empty directory")
    if not os.access(path, os.W_OK):
        raise InputError(f"mountpoint {path} is not writable by you: FUSE needs that")
    return path


def unmount(path: Path, *, lazy: bool = False) -> None:
    """Unmount with fusermount3 (works for the owner and for root)."""
    tool = fusermount()
    if tool is None:
        raise MountError(
            "fusermount3 is missing: install the fuse3 package (apt-get install fuse3)"
        )
    command = [tool, "-u", *(["-z"] if lazy else []), str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise MountError(f"cannot unmount {path}: {reason}")
