"""The FUSE session: mounting, serving requests on the trio loop, stopping, unmounting.

pyfuse3 serves the kernel's requests from a few trio tasks, each taking one request, running its
handler and coming back for the next. Before it reads a request, a task awaits the FUSE device
becoming readable (pyfuse3's ``_wait_fuse_readable``): a trio lock, then ``wait_readable``,
which parks the task until trio's next pass over epoll even when the kernel has requests
queued. So every request paid a pass of the scheduler: a lock hand-over, an ``epoll_wait``, two
task switches. With readers that keep requests queued (a DataLoader's worker processes), that
was a quarter of a warm small-file epoch's time on the null filesystem of ``bench/ceiling.py``
(docs/perf.md, "Sixth pass").

:func:`mount` puts :class:`QueuedTaker` in its place: it first asks the device without waiting
(``poll`` with no timeout) and takes a request that is there at once; only an empty device goes
to pyfuse3's own wait, which keeps pyfuse3's count of idle tasks and its checks for the end of
the session. After ``QUEUED_RUN`` requests taken without waiting, every task goes through
pyfuse3's wait until one comes back from it, which takes a pass of the scheduler: worker
threads' results, timers and signals still get the loop.

``_wait_fuse_readable`` is not public. pyfuse3 looks it up in its module each time a task
waits, which is what lets it be replaced. Under a pyfuse3 release other than the one checked
(``CHECKED_PYFUSE3``), or where the device's descriptor is not found, requests take pyfuse3's
own path and the daemon's log says so.
"""

from __future__ import annotations

import logging
import os
import select
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyfuse3

log = logging.getLogger("artfsd")

# Requests taken without waiting between two passes of trio's scheduler, by all tasks
# together. At ~20-60 us a request, the loop's other work (threads' results, timers, signals)
# waits at most a millisecond or two.
QUEUED_RUN = 32
FUSE_DEVICE = os.makedev(10, 229)  # /dev/fuse: misc character device 229
_PYFUSE3_WAIT = "_wait_fuse_readable"
# The pyfuse3 release whose request loop (``_session_loop`` and ``_wait_fuse_readable`` in its
# internal.pxi) was read for what QueuedTaker relies on: the wait is looked up in the module
# each time, one task at a time waits (a lock), and a task reads as soon as its wait returns.
CHECKED_PYFUSE3 = "3.5."

Wait = Callable[[], Awaitable[bool]]


class QueuedTaker:
    """What pyfuse3's request loop awaits before reading the FUSE device: True when a request
    may be read now without blocking, False when the session is over.

    ``fd``: the FUSE device; ``wait``: pyfuse3's own wait (parks until the device is readable,
    False once the session ended); ``run``: requests taken without waiting between two passes
    of trio's scheduler, by all tasks together."""

    def __init__(self, fd: int, wait: Wait, run: int = QUEUED_RUN) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        self._poll = poller.poll
        self.wait = wait
        self._run = run
        self._taken = 0  # taken without waiting since a task last came back from the wait
        self.taken_ever = 0  # taken without waiting, by any task

    async def __call__(self) -> bool:
        if self._taken < self._run and self._poll(0):
            self._taken += 1
            self.taken_ever += 1
            return True
        before = self.taken_ever
        while await self.wait():
            # Only now has trio's scheduler had a pass: until then every task comes here
            # (the run is the loop's, not one task's).
            self._taken = 0
            # The request this task woke for may have gone to another task's look above in
            # the meantime (pyfuse3 reads the device blocking: read only a request that is
            # there). Only such a look takes one while this task waits: pyfuse3's wait lets
            # one task at a time wait, and it reads as soon as it wakes.
            if self.taken_ever == before or self._poll(0):
                return True
            before = self.taken_ever
        return False


def mount(ops: pyfuse3.Operations, mountpoint: Path, options: set[str]) -> bool:
    """Mount ``ops`` at ``mountpoint`` (``RuntimeError`` if libfuse cannot; it logged why) and
    take queued requests without waiting (:class:`QueuedTaker`). False if that could not be
    set up and requests take pyfuse3's own path (logged)."""
    pyfuse3.init(ops, str(mountpoint), options)
    return take_queued_requests()


def take_queued_requests() -> bool:
    """Put a :class:`QueuedTaker` in pyfuse3's request loop, once its session is open; False
    (logged) where that cannot be done and pyfuse3's own wait stays."""
    _restore_wait()  # a taker of an earlier session in this process asks a closed descriptor
    wait = getattr(pyfuse3, _PYFUSE3_WAIT, None)
    why = None
    if wait is None:
        why = f"pyfuse3 has no {_PYFUSE3_WAIT}"
    elif not pyfuse3.__version__.startswith(CHECKED_PYFUSE3):
        why = f"pyfuse3 {pyfuse3.__version__}'s request loop is not the one checked"
    else:
        try:
            fd = device_fd()
            if fd is None:
                why = "its FUSE device was not found among this process's descriptors"
            else:
                setattr(pyfuse3, _PYFUSE3_WAIT, QueuedTaker(fd, wait))
        except OSError as exc:
            why = f"looking for its FUSE device failed: {exc.strerror}"
    if why is not None:
        log.info("FUSE requests wait for trio's scheduler each (%s)", why)
        return False
    log.info("FUSE requests are taken as they queue")
    return True


def _restore_wait() -> int:
    """Put pyfuse3's own wait back; the requests the taker took without waiting."""
    wait = getattr(pyfuse3, _PYFUSE3_WAIT, None)
    if not isinstance(wait, QueuedTaker):
        return 0
    setattr(pyfuse3, _PYFUSE3_WAIT, wait.wait)
    return wait.taken_ever


def device_fd() -> int | None:
    """This process's one open FUSE device (pyfuse3 does not say which descriptor it is)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            info = os.fstat(int(name))
        except OSError:  # the listing's own descriptor, closed by now
            continue
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == FUSE_DEVICE:
            found.append(int(name))
    return found[0] if len(found) == 1 else None


async def serve() -> None:
    """Serve requests until the session ends (:func:`stop`, or an unmount)."""
    await pyfuse3.main(min_tasks=4, max_tasks=64)


def stop() -> None:
    """End the session: :func:`serve` returns once the requests being handled are answered."""
    pyfuse3.terminate()


def abort(dev: int) -> bool:
    """End the FUSE connection of the mount on device ``dev`` at once (fusectl's ``abort``):
    every request it holds fails, and what waits on one (a page's lock) goes on. Best effort:
    the mount's owner or root may, where ``/sys/fs/fuse/connections`` is mounted; whether it
    was done."""
    knob = Path(f"/sys/fs/fuse/connections/{os.minor(dev)}/abort")
    try:
        knob.write_text("1\n")
    except OSError as exc:
        log.warning("cannot abort the FUSE connection (%s: %s)", knob, exc.strerror)
        return False
    return True


def unmount() -> None:
    """Unmount and close the session (its device too); the log says how many requests were
    taken as they queued."""
    taken = _restore_wait()
    pyfuse3.close(unmount=True)
    if taken:
        log.info("%d FUSE requests were taken as they queued", taken)
