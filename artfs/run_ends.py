"""Runs whose process died without a word (SIGKILL, the OOM killer) are found ``crashed``.

A running run records its pid and the process's start time (``/proc/PID/stat``). When the
run was started on this host and no process with that pid and start time exists any more,
nothing can still finish it: the next look at it (``artfs runs``, ``Api().run``) records it
``crashed``, with its end time the moment it was found. Runs of other hosts, of containers
(another pid namespace), implicit runs of the daemon (their end is not an event) and external
runs without a pid are left as they are. A container usually has a hostname of its own; one
sharing the host's name but not its pid namespace would be misjudged (not a case artfs meets).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

from artfs import procinfo
from artfs.errors import ArtfsError
from artfs.lineage import CRASHED, RUNNING, Lineage, RunRecord


def is_gone(record: RunRecord, host: str | None = None) -> bool:
    """Whether ``record`` is running but its process is known to be dead."""
    if record.state != RUNNING or record.implicit or record.pid is None:
        return False
    if record.proc_start is None or record.host != (host or socket.gethostname()):
        return False
    return procinfo.start_time(record.pid) != record.proc_start


def settle(lineage: Lineage, records: Sequence[RunRecord]) -> list[RunRecord]:
    """``records`` with every dead running run recorded as crashed."""
    host = socket.gethostname()
    settled = []
    for record in records:
        if is_gone(record, host):
            try:
                record = lineage.update_run(record.id, _crash)
            except ArtfsError:  # a store this user may only read: report it, record nothing
                _crash(record)
        settled.append(record)
    return settled


def _crash(record: RunRecord) -> None:
    if record.state == RUNNING:  # it may have finished since it was read
        record.state = CRASHED
        record.ended = time.time()
        record.exit_code = None
