"""This process's mount table, read from ``/proc/self/mountinfo``: the one parser behind the
daemon's check of its mountpoint, the SDK's search for artfs mounts and the choice of reading
packs past the page cache (:func:`artfs.fs.direct.filesystem_type`).

The kernel escapes a space, tab, newline and backslash in a mount point, type or source as
``\\`` and three octal digits; bytes that are not UTF-8 are kept as ``os.fsdecode`` keeps a
path's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
ARTFS_FSTYPE = "fuse.artfs"  # what an artfs mount's type reads (FUSE's "fuse." and its subtype)


@dataclass(frozen=True, slots=True)
class Mount:
    point: str  # where it is mounted, escapes undone
    fstype: str  # "ext4", "fuse.artfs", ...
    source: str  # "/dev/vda1", "artfs" (a FUSE mount's fsname), ...


def mount_table() -> list[Mount]:
    """The mounts of ``MOUNTINFO``, in its order: of two on one point, the later is the one
    seen there. Empty when it cannot be read; a line of another format is passed over."""
    try:
        # Lines end at a newline only: a mount point may hold a form feed or a carriage
        # return as they are (only a space, tab, newline and backslash are escaped).
        lines = os.fsdecode(MOUNTINFO.read_bytes()).split("\n")
    except OSError:
        return []
    mounts = []
    for line in lines:
        fields = line.split(" ")
        try:
            # Optional fields (shared:1, master:2) come between the fifth and the separator.
            after = fields.index("-", 6) + 1
            point, fstype, source = fields[4], fields[after], fields[after + 1]
        except (ValueError, IndexError):
            continue
        mounts.append(Mount(_unescape(point), _unescape(fstype), _unescape(source)))
    return mounts


def mount_at(path: str | os.PathLike[str], table: list[Mount] | None = None) -> Mount | None:
    """The mount seen at ``path`` (of two on one point, the later) in ``table`` (default: the
    mount table read now), None when nothing is mounted there or the table cannot be read.
    ``path`` is made absolute, not resolved: a dead FUSE mount cannot be looked into."""
    target = os.path.abspath(path)
    found = None
    for mount in mount_table() if table is None else table:
        if mount.point == target:
            found = mount
    return found


def _unescape(field: str) -> str:
    """A mountinfo field with its octal escapes (``\\040`` for a space) undone."""
    if "\\" not in field:  # most fields: no pattern match
        return field
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)


__all__ = ["ARTFS_FSTYPE", "MOUNTINFO", "Mount", "mount_at", "mount_table"]
