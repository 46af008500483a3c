"""``artfs run -- CMD``: run a command as a recorded run.

The command runs with ``ARTFS_RUN_ID`` in its environment, so everything it (and its children)
reads through the mount or logs with ``artfs put``/``artfs commit`` is attributed to the run.
SIGINT and SIGTERM are passed on to the command; the run ends with the command's exit status
(128 + N when a signal N ended it), which is also ``artfs run``'s own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from typing import Any

from artfs import procinfo
from artfs.errors import InputError
from artfs.lineage import Lineage, RunRecord
from artfs.porcelain import RUN_ID_ENV


def check_command(argv: list[str]) -> None:
    """Refuse a command that cannot be run, before the store is opened and a run is made for
    it (one that fails to start all the same ends its run with status 127)."""
    if not argv:
        raise InputError(
            "nothing to run: give the command after '--', e.g. artfs run -- python train.py"
        )
    if shutil.which(argv[0]) is None:
        raise InputError(
            f"{argv[0]}: no such command (not an executable file, nor found on PATH): "
            "check its name"
        )


def run_command(
    lineage: Lineage,
    argv: list[str],
    *,
    project: str,
    job_type: str,
    name: str | None,
    config: dict[str, Any] | None,
) -> tuple[RunRecord, int]:
    """Run ``argv`` (see :func:`check_command`) as a new run of ``lineage``; the run's
    record and the command's exit status."""
    me = procinfo.facts(os.getpid())
    record = lineage.create_run(
        project,
        job_type,
        name=name,
        config=config,
        command=argv,
        pid=me.pid,
        proc_start=me.proc_start,
        container=me.container,
    )
    try:
        child = subprocess.Popen(argv, env={**os.environ, RUN_ID_ENV: record.id})
    except OSError as exc:
        lineage.finish_run(record.id, 127)
        raise InputError(f"{argv[0]}: cannot run it ({exc.strerror})") from None
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        status = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    code = 128 - status if status < 0 else status
    return lineage.finish_run(record.id, code), code
