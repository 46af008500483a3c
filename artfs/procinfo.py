"""Facts about a process, read from ``/proc``: what a run record says about who ran it.

Used by the SDK for the calling process and by the daemon for processes that open files
through the mount; ``artfs umount`` finds a mount's daemon here to wait for its exit. A
process is identified by (pid, start time): the start time (clock ticks since boot, field 22
of ``/proc/PID/stat``) changes when a pid is reused.
"""

from __future__ import annotations

import os
import select
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessFacts:
    pid: int
    proc_start: int | None
    command: list[str]
    uid: int | None
    container: str | None


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` that artfs uses: the parent, the process group and the
    session (for resolving a process's run), and the start time (its identity with the pid)."""

    pid: int
    ppid: int
    pgrp: int
    session: int
    start: int


_READ_BYTES = 64 << 10


def read_proc(path: str) -> bytes:
    """The whole of a small ``/proc`` file (OSError when it cannot be read), with descriptor
    reads: a Python file object costs ~12 us here against ~8, and the daemon reads ~20 of
    these files at the first open by each new process (docs/lineage.md, "Which run a process
    belongs to"). One read that comes back short is the whole file for the files artfs reads:
    stat, status and cgroup are made whole at once and copied as far as the read asks, and
    environ and cmdline are copied page by page until the read is filled or they end. That
    does not hold for files of many records, such as maps or mountinfo."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _READ_BYTES)
        if len(data) < _READ_BYTES:
            return data
        parts = [data]
        while part := os.read(fd, _READ_BYTES):
            parts.append(part)
        return b"".join(parts)
    finally:
        os.close(fd)


def proc_stat(pid: int, proc: str = "/proc") -> ProcStat | None:
    """``PID``'s stat line parsed, from the proc filesystem at ``proc``; None when the process
    is gone (or the file cannot be read)."""
    try:
        data = read_proc(f"{proc}/{pid}/stat")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return ProcStat(pid, int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when it is gone."""
    stat = proc_stat(pid)
    return None if stat is None else stat.start


def command_line(pid: int) -> list[str]:
    try:
        raw = read_proc(f"/proc/{pid}/cmdline")
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def container_id(pid: int) -> str | None:
    """The cgroup path of the process when it is not the root cgroup (a container, a unit)."""
    try:
        lines = read_proc(f"/proc/{pid}/cgroup").decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        path = line.split(":", 2)[-1]
        if path not in ("", "/"):
            return path
    return None


def uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def facts(pid: int) -> ProcessFacts:
    return ProcessFacts(pid, start_time(pid), command_line(pid), uid_of(pid), container_id(pid))


def daemon_pidfds(point: str) -> list[int]:
    """A pidfd of each artfs daemon serving the mount at ``point`` (absolute, as the mount
    table names it) from this process's mount namespace, for the caller to wait on and close.

    A daemon is known by its command line: the mountpoint right after ``-m artfsd`` (as
    ``artfs mount`` starts it) or after the ``artfsd`` script (as the systemd units do), made
    absolute from the daemon's working directory; nothing is looked up in a mount (one whose
    daemon hangs would hang the caller). A process whose command line or namespace cannot be
    read (another user's, unless the caller is root) is passed over, and so is a pid reused
    while its pidfd was being opened."""
    own = _mount_namespace("self")
    found = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit() or not _serves(entry.name, point, own):
                continue
            try:
                fd = os.pidfd_open(int(entry.name))
            except OSError:  # exited meanwhile
                continue
            if _serves(entry.name, point, own):  # the pidfd is of that daemon, not a new pid
                found.append(fd)
            else:
                os.close(fd)
    return found


def _mount_namespace(pid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _serves(pid: str, point: str, namespace: str | None) -> bool:
    """Whether process ``pid`` is an artfs daemon of ``point`` in mount namespace
    ``namespace`` (see :func:`daemon_pidfds`)."""
    try:
        argv = read_proc(f"/proc/{pid}/cmdline").split(b"\0")
    except OSError:
        return False
    for at, word in enumerate(argv[:-1]):
        module = word == b"artfsd" and at > 0 and argv[at - 1] == b"-m"
        if module or word.endswith(b"/artfsd"):
            given = os.fsdecode(argv[at + 1])
            break
    else:
        return False
    if not given or namespace is None or _mount_namespace(pid) != namespace:
        return False
    if not os.path.isabs(given):
        try:
            given = os.path.join(os.readlink(f"/proc/{pid}/cwd"), given)
        except OSError:
            return False
    return os.path.normpath(given) == point


def wait_exited(pidfds: list[int], seconds: float) -> bool:
    """Wait up to ``seconds`` for the processes of ``pidfds`` to exit (a pidfd turns readable
    then); whether they all did."""
    deadline = time.monotonic() + seconds
    for fd in pidfds:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return False
    return True
