"""Advisory file locks shared by every process using one store.

The store lock keeps gc apart from commits: a commit holds it shared from the moment it decides
a chunk is already stored (and so will not write it again) until its index transaction lands;
gc holds it exclusively while it decides which chunks are garbage and deletes them. Commits
run side by side; gc waits for running commits and they wait for it. ``flock`` has no writer
preference, so a turnstile lock in front of it keeps a steady stream of commits from starving
gc: a commit passes through the turnstile (shared, released at once) before taking the store
lock, and gc holds the turnstile exclusively while it waits. ``flock`` locks vanish with the
process, so a killed commit never leaves the store locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, *, exclusive: bool) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)
