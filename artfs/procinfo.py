"""Facts about a process, read from ``/proc``: what a run record says about who ran it.

Used by the SDK for the calling process and by the daemon for processes that open files
through the mount. A process is identified by (pid, start time): the start time (clock ticks
since boot, field 22 of ``/proc/PID/stat``) changes when a pid is reused.
"""

from __future__ import annotations

import os
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


def daemons_serving(point: str) -> list[int]:
    """The pids of the artfs daemons serving the mount at ``point`` (a path from the mount
    table), known by their command line: the mountpoint right after ``-m artfsd`` (as ``artfs
    mount`` starts it) or after the ``artfsd`` script (as the systemd units do), resolved as
    the kernel names it."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = read_proc(f"{entry.path}/cmdline").split(b"\0")
        except OSError:
            continue
        for at, word in enumerate(argv[:-1]):
            module = word == b"artfsd" and at > 0 and argv[at - 1] == b"-m"
            if module or word.endswith(b"/artfsd"):
                if os.path.realpath(os.fsdecode(argv[at + 1])) == point:
                    found.append(int(entry.name))
                break
    return found
