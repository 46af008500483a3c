"""Which run a process belongs to, and the usage edges the daemon records for it.

Pure (no pyfuse3). The daemon calls :meth:`UsageRecorder.note_open` on every ``open()`` of a
file inside a version; it must stay cheap, so:

- a process's run is resolved once and cached by pid, checked against the process's identity
  (pid, start time): a pidfd tells without a syscall per ``/proc`` file whether the cached
  process is still alive, asked at most once a millisecond per process while its opens come
  from one user (``LIVENESS_RECHECK_SECONDS`` says when a reused pid could inherit a run);
- the event loop only notes an open (:meth:`note_open`: the cached run found, the open
  appended to a list); every half second, and at unmount, the daemon records the notes a step
  at a time (:meth:`record_noted`: a few dict and set operations on each run's
  :class:`_RunOpens`; a reopen of a file the run was seen opening, a set check and a time),
  :meth:`take` swaps each run's batch out, and
  :meth:`flush` (called by the daemon from a worker thread) writes new run records first,
  then groups the batch into edges and writes it in one transaction. Recorded one at a time
  at each open, a cold epoch's first opens cost the event loop ~1.75 us each (what noting
  them saves: docs/perf.md, "Thirty-fourth pass");
- in a remote-backed store, the runs and edges just written are then handed to a
  :class:`~artfs.lineage.BackgroundPublisher`, which uploads them from its own thread (a slow
  or unreachable remote delays neither reads nor the next flush; failures are retried then).

Resolution order for a pid (pids as the daemon sees them, so a container's processes resolve
by their host pids):

1. a registration made through ``MNT/.artfs-register`` by the process or an ancestor
   (pid and start time -> run id; it works across pid namespaces), of a run this store holds;
2. ``ARTFS_RUN_ID`` in the environment of the process or of its nearest ancestor having it
   (only that variable is read); for a process of a user who may not write the store, only
   an unknown id (made an external run) or an external run's, never a run the store's writers
   made, whose lineage another user's reads would otherwise forge;
3. an implicit run for the process group, keyed by (group leader pid, its start time): the
   forked workers of a data loader or the members of a shell pipeline share one run.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pwd
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from artfs import procinfo
from artfs.errors import NotFound
from artfs.lineage import (
    BackgroundPublisher,
    Lineage,
    OpenedFiles,
    RunRecord,
    check_run_id,
    new_run_id,
)
from artfs.procinfo import ProcStat, proc_stat

log = logging.getLogger(__name__)

RUN_ID_ENV = b"ARTFS_RUN_ID="
IMPLICIT = "implicit"
EXTERNAL = "external"
PROC = "/proc"
# At unmount, how long the last lineage upload may hold the daemon up (a remote that is gone
# must not keep a mount from going away; what did not go is published by 'artfs push --all').
PUBLISH_WAIT_SECONDS = 5.0
# Files a run was seen opening, remembered so that a repeat open (a second epoch) costs the
# index nothing: writing a batch of 200,000 opens took 0.2-0.35 s as edge updates only,
# 1.0-1.7 s with a file key each. The node's own file id each, in a set per version (its
# slot while the node lives, ~85 bytes once the node is forgotten, measured); forgotten all
# at once when full (the index still counts each file once; it just does the work again).
_SEEN_FILES = 200_000
# One open: (version key, 8 bytes naming the file), the same object for every open of a node.
FileUsage = tuple[bytes, bytes]
# How long a cached pid counts as the process it was resolved for before the kernel is asked
# again (its pidfd polled, 0.45 us here: most of a reopen's recording), as long as the opens
# come from the user of its last check; another user's open asks at once. The kernel hands
# out pids and thread ids in turn: one freed now comes back only after every other free one
# of its namespace was taken, thousands of forks later (pid_max is 32,768 or more), unless the
# namespace is nearly full of live processes or a checkpoint restore picks its pids (clone3's
# set_tid). Then a process of the same user could have up to a millisecond of its opens
# counted for the run of the exited process it took the pid of; one of another user cannot
# (with a pidfd: the /proc fallback tells processes apart by start time in clock ticks).
LIVENESS_RECHECK_SECONDS = 0.001
# Noted opens the daemon records at a time, answering requests between two steps: ~1 ms here
# (~1 us a note in a daemon reading a cold epoch), where a half second's notes at once held
# every request up for 4-6 ms. Once the notes waiting reach NOTED_LIMIT (the daemon's takes
# fell behind: a flush waiting for the index's writer, say; a cold epoch notes ~10,000 opens
# a second here), a note that finds them there records the oldest RECORD_STEP first.
RECORD_STEP = 1024
NOTED_LIMIT = 65_536


_TGID = b"\nTgid:"


def thread_group(pid: int) -> int:
    """The process (thread-group) id of ``pid``, which may be a thread id (FUSE sees threads)."""
    try:
        status = procinfo.read_proc(f"{PROC}/{pid}/status")
    except OSError:
        return pid
    # Never the first line (that is Name:, whose newlines the kernel escapes).
    at = status.find(_TGID)
    if at < 0:
        return pid
    end = status.find(b"\n", at + 1)
    return int(status[at + len(_TGID) : end if end >= 0 else len(status)])


def env_run_id(pid: int) -> str | None:
    """``ARTFS_RUN_ID`` from the process's environment; nothing else of it is kept."""
    try:
        raw = procinfo.read_proc(f"{PROC}/{pid}/environ")
    except OSError:
        return None
    # The first variable that starts with it, found without splitting every variable apart.
    if raw.startswith(RUN_ID_ENV):
        start = len(RUN_ID_ENV)
    else:
        found = raw.find(b"\0" + RUN_ID_ENV)
        if found < 0:
            return None
        start = found + 1 + len(RUN_ID_ENV)
    end = raw.find(b"\0", start)
    return raw[start : end if end >= 0 else len(raw)].decode("ascii", "replace")


def ancestry(pid: int) -> list[ProcStat]:
    """The process and its ancestors, nearest first (stops at pid 1 or a vanished parent)."""
    chain: list[ProcStat] = []
    seen: set[int] = set()
    current: int = thread_group(pid)
    while current > 0 and current not in seen:
        seen.add(current)
        found = proc_stat(current)
        if found is None:
            break
        chain.append(found)
        current = found.ppid
    return chain


# pidfd_open's flag for a pidfd of one thread (Linux 6.9), readable once that thread exits:
# FUSE names the thread that opened, and without it a reader thread that is not its process's
# leader was checked by reading /proc at each open (13 us, against 0.3 us for the poll).
PIDFD_THREAD = os.O_EXCL


def _pidfd_open(pid: int) -> int:
    """A pidfd of ``pid``, a process or (on Linux 6.9 and later) a thread."""
    try:
        return os.pidfd_open(pid)
    except OSError:  # a thread that is not its process's leader (older kernels: EINVAL)
        return os.pidfd_open(pid, PIDFD_THREAD)


class _Liveness:
    """Whether the process a cache entry was made for is still the one with that pid."""

    def __init__(self, pid: int, start: int) -> None:
        self.pid, self.start = pid, start
        self._poll: select.poll | None = None
        self._fd = -1
        with contextlib.suppress(OSError):
            self._fd = _pidfd_open(pid)
            found = proc_stat(pid)
            if found is None or found.start != start:  # reused between stat and pidfd_open
                os.close(self._fd)
                self._fd = -1
                return
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)

    def alive(self) -> bool:
        if self._poll is not None:
            return not self._poll.poll(0)  # a pidfd is readable once its process exited
        found = proc_stat(self.pid)
        return found is not None and found.start == self.start

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._poll = None


class _RunOpens:
    """One run's opens since the last :meth:`UsageRecorder.take`, and the files it was seen
    opening since the seen files were last forgotten."""

    __slots__ = ("first", "last", "new", "run_id", "seen")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.seen: dict[bytes, set[bytes]] = {}  # version key -> files opened
        self.new: list[FileUsage] = []  # first opens, in order
        self.first: dict[bytes, float] = {}  # version key -> its first first-open
        self.last: dict[bytes, float] = {}  # version key -> its latest open of any file

    def swap(self) -> _Taken | None:
        """The batch so far (None if empty), leaving an empty one: O(1), on the event loop."""
        if not self.last:
            return None
        taken = _Taken(self.run_id, self.new, self.first, self.last)
        self.new, self.first, self.last = [], {}, {}
        return taken


@dataclass(frozen=True)
class _Taken:
    run_id: str
    new: list[FileUsage]
    first: dict[bytes, float]
    last: dict[bytes, float]

    def opened_files(self) -> list[OpenedFiles]:
        """One entry per version: every open sets its version's ``last``, so each is there."""
        by_version = {
            key: OpenedFiles(self.run_id, key, self.first.get(key, at), at)
            for key, at in self.last.items()
        }
        for key, file in self.new:
            by_version[key].files.append(file)
        return list(by_version.values())


class UsageBatch:
    """What :meth:`UsageRecorder.take` hands to :meth:`UsageRecorder.flush`: each run's
    batch as swapped out; grouping it into edges is the flush's (worker thread's) work."""

    def __init__(self, taken: list[_Taken]) -> None:
        self._taken = taken

    def __len__(self) -> int:
        """The opens it records: first opens, plus one per edge only reopened."""
        return sum(len(t.new) + len(t.last.keys() - t.first.keys()) for t in self._taken)

    def opened_files(self) -> list[OpenedFiles]:
        return [opens for taken in self._taken for opens in taken.opened_files()]


class _Cached:
    """A resolved process: its run's batch, and the check that the pid is still that process
    (asked at most once per ``LIVENESS_RECHECK_SECONDS`` while its opens come from ``uid``,
    see :meth:`current`)."""

    __slots__ = ("liveness", "recheck_at", "run", "uid")

    def __init__(self, run: _RunOpens, liveness: _Liveness, uid: int) -> None:
        self.run = run
        self.liveness = liveness
        self.uid = uid
        self.recheck_at = time.monotonic() + LIVENESS_RECHECK_SECONDS

    def current(self, now: float, uid: int) -> bool:
        """Whether the pid is still the process this was made for, asked of the kernel at
        monotonic time ``now`` by an open of user ``uid`` (the caller asks only once
        ``recheck_at`` has passed or the user differs: before that it is)."""
        if not self.liveness.alive():
            return False
        self.recheck_at = now + LIVENESS_RECHECK_SECONDS
        self.uid = uid  # the same process, its user changed (setuid)
        return True


class UsageRecorder:
    """Resolves runs for pids and batches usage events; one per daemon."""

    def __init__(
        self,
        lineage: Lineage,
        may_write: Callable[[int], bool] | None = None,
        usage_of: Callable[[Any], FileUsage] | None = None,
    ) -> None:
        """``may_write(uid)``: whether that user may write the store (None: everyone may);
        ``usage_of(file)``: the usage of what :meth:`note_open` was given (None: that is the
        usage itself)."""
        self.lineage = lineage
        self._may_write = may_write
        self._usage_of = usage_of
        # Opens noted and not recorded yet (the run, the file as note_open was given it), and
        # the wall time of the first noted since none was waiting.
        self._noted: list[tuple[_RunOpens, Any]] = []
        self._noted_since = 0.0
        self._recording: list[tuple[_RunOpens, Any]] = []  # the notes record_noted is at
        self._unrecorded = 0  # notes dropped since take() (usage_of failed): logged there
        self._cache: dict[int, _Cached] = {}
        self._registered: dict[tuple[int, int], str] = {}  # (pid, start) -> run id
        self._groups: dict[tuple[int, int], str] = {}  # (leader pid, start) -> implicit run
        self._new_runs: dict[str, RunRecord] = {}  # made here, not written yet
        self._runs: dict[str, _RunOpens] = {}  # every run seen opening since files forgotten
        self._seen_count = 0  # files in the runs' seen sets
        self._pending: list[_RunOpens] = []  # the runs with opens since take()
        self._lock = threading.Lock()  # _new_runs is also written by commit threads
        self._host = socket.gethostname()
        self._outbox = BackgroundPublisher(lineage)
        # uid -> user name, looked up once per daemon: each look-up reads the user database
        # (/etc/passwd, ~1 ms when it is not in the page cache) on a run's first open.
        self._user_names: dict[int, str] = {}

    def prepare(self) -> None:
        """Look the daemon's own user up now (the daemon calls this before it mounts): the
        C library loads its user-database modules at the first look-up, ~1 ms here, which
        the first reader's open paid otherwise, and a reader running as the same user then
        needs none."""
        self._user_name(os.getuid())

    def _user_name(self, uid: int | None) -> str:
        """The name of user ``uid`` (its number if it has none, "" if unknown); a user
        renamed while the daemon runs keeps its old name in the runs it records."""
        if uid is None:
            return ""
        name = self._user_names.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._user_names[uid] = name
        return name

    # --- the open() path ----------------------------------------------------------------

    def opened(self, pid: int, project: str, usage: FileUsage, uid: int = -1) -> None:
        """Record now that ``pid`` (of user ``uid``, -1: unknown) opened a file of a version:
        ``usage`` is (version key, 8 bytes naming the file)."""
        now = time.time()
        self._count_open(self._run_of(pid, project, uid), usage, now, now)

    def note_open(self, pid: int, project: str, file: Any, uid: int = -1) -> None:
        """What :meth:`opened` does, for the event loop: the process's run is found now (a
        process that exits at once still counts for its run); the open is recorded by
        :meth:`record_noted` (or :meth:`take`), as first made at the time of the first open
        noted since no note was waiting, and last made at the time it is recorded: the span
        of its edge holds it."""
        run = self._run_of(pid, project, uid)
        if len(self._noted) >= NOTED_LIMIT:
            self.record_noted(RECORD_STEP)
        if not self._noted:
            self._noted_since = time.time()
        self._noted.append((run, file))

    def _run_of(self, pid: int, project: str, uid: int) -> _RunOpens:
        """The run of ``pid``'s opens: a dict get and a clock read when its process is cached
        and current (its liveness asked again only once per ``LIVENESS_RECHECK_SECONDS``, or
        when another user opens), else resolved afresh."""
        cached = self._cache.get(pid)
        tick = time.monotonic()
        if cached is None or (
            (tick >= cached.recheck_at or uid != cached.uid) and not cached.current(tick, uid)
        ):
            cached = self._cache_process(pid, project, uid)
        return cached.run

    def record_noted(self, limit: int | None = None) -> bool:
        """Record the opens noted (the ``limit`` noted first, None: all); whether any are
        still to record. :meth:`take` records them all; the daemon records them
        ``RECORD_STEP`` at a time first, answering requests between steps. A note that cannot
        be recorded (``usage_of`` failed) is dropped, the others recorded: the first since
        the last :meth:`take` is logged with its traceback, the take says how many more."""
        noted = self._noted
        if limit is None or limit >= len(noted):
            self._noted = []
        else:
            self._noted = noted[limit:]
            noted = noted[:limit]
        first, now = self._noted_since, time.time()
        usage_of = self._usage_of
        self._recording = noted  # their runs are held while they are (see _forget_seen)
        try:
            for run, file in noted:
                try:
                    self._count_open(run, file if usage_of is None else usage_of(file), first, now)
                except Exception:
                    self._unrecorded += 1
                    if self._unrecorded == 1:
                        log.exception("an open noted for run %s was not recorded", run.run_id)
        finally:
            self._recording = []
        return bool(self._noted)

    def _count_open(self, run: _RunOpens, usage: FileUsage, first: float, last: float) -> None:
        """Record an open of ``usage`` by ``run`` (first opened at ``first`` if it is the
        version's first, accessed at ``last``). Reopening a file the run was seen opening (a
        second epoch) only moves the last access of its edge: a dict get and a set check;
        nothing is appended."""
        if not run.last:
            self._pending.append(run)
        version_key, file = usage
        run.last[version_key] = last
        files = run.seen.get(version_key)
        if files is None or self._seen_count >= _SEEN_FILES:
            if not self._first_open(run, usage):
                return
        elif file in files:
            return
        else:
            # A first open of a version this run opened before (the common one): no new set.
            files.add(file)
            self._seen_count += 1
            run.new.append(usage)
        # The earliest first open: one recorded at once (opened) may come before noted ones
        # made earlier.
        known = run.first.get(version_key)
        if known is None or first < known:
            run.first[version_key] = first

    def _first_open(self, run: _RunOpens, usage: FileUsage) -> bool:
        """A first open that starts a version's seen files, or finds the seen files full;
        whether it is new to the run (not a reopen of a file still seen)."""
        if self._seen_count >= _SEEN_FILES:
            if usage[1] in run.seen.get(usage[0], ()):
                return False  # a reopen: counted when first opened
            self._forget_seen()
        run.seen.setdefault(usage[0], set()).add(usage[1])
        self._seen_count += 1
        run.new.append(usage)
        return True

    def _forget_seen(self) -> None:
        """Empty every run's seen files; forget the runs no process is cached for that have
        nothing to flush or to record (a run's batch lives until :meth:`take`)."""
        held = {id(cached.run) for cached in self._cache.values()}
        held.update(id(run) for run, _ in itertools.chain(self._noted, self._recording))
        for run_id, run in list(self._runs.items()):
            run.seen.clear()
            if id(run) not in held and not run.last:
                del self._runs[run_id]
        self._seen_count = 0

    def run_for(self, pid: int, project: str) -> str:
        cached = self._cache.get(pid)
        tick = time.monotonic()
        if cached is None or not cached.current(tick, cached.uid):
            cached = self._cache_process(pid, project)
        return cached.run.run_id

    def _cache_process(self, pid: int, project: str, uid: int = -1) -> _Cached:
        """Resolve ``pid``'s run afresh (not cached, or the pid is another process now);
        ``uid``: the user its opens come from (-1: unknown)."""
        stale = self._cache.pop(pid, None)
        if stale is not None:
            stale.liveness.close()
        run_id, start = self._resolve(pid, project)
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _RunOpens(run_id)
        cached = self._cache[pid] = _Cached(run, _Liveness(pid, start), uid)
        return cached

    def _resolve(self, pid: int, project: str) -> tuple[str, int]:
        chain = ancestry(pid)
        # A process's own stat heads its ancestry; a thread (FUSE names the thread that
        # opened) has one of its own, with its own start time.
        own = chain[0] if chain and chain[0].pid == pid else proc_stat(pid)
        start = own.start if own is not None else 0
        for proc in chain:
            found = self._registered.get((proc.pid, proc.start))
            if found is not None:
                return found, start
        for proc in chain:
            from_env = env_run_id(proc.pid)
            if from_env:
                with contextlib.suppress(Exception):
                    run_id = check_run_id(from_env)
                    if not self._may_name(pid, run_id):
                        break  # another user's run: this process gets its implicit run
                    return self._known(run_id, project, proc.pid), start
        return self._implicit(own or (chain[0] if chain else None), project, chain), start

    def _may_name(self, pid: int, run_id: str) -> bool:
        """Whether process ``pid`` may attribute its reads to ``run_id`` by its environment:
        a store writer may name any run; anyone else an unknown id or an external run only
        (as a registration, which only writers may make, could)."""
        uid = procinfo.uid_of(pid)
        if self._may_write is None or (uid is not None and self._may_write(uid)):
            return True
        with self._lock:
            record = self._new_runs.get(run_id)
        if record is None:
            record = self.lineage.find_run(run_id)
        return record is None or record.job_type == EXTERNAL

    def _known(self, run_id: str, project: str, pid: int) -> str:
        """``run_id`` named by a registration or an environment; recorded as an external run
        the first time it is seen (a container's ``-e ARTFS_RUN_ID=...``)."""
        with self._lock:
            if run_id in self._new_runs:
                return run_id
        if self.lineage.find_run(run_id) is None:
            self._add(self._record(run_id, project, EXTERNAL, pid))
        return run_id

    def _implicit(self, proc: ProcStat | None, project: str, chain: list[ProcStat]) -> str:
        """The implicit run of ``proc``'s process group, its leader's stat taken from
        ``chain`` (the ancestry just read) when it is there."""
        leader = proc.pgrp if proc is not None else 0
        leader_stat = next((p for p in chain if p.pid == leader), None)
        if leader_stat is None and leader > 0:
            leader_stat = proc_stat(leader)
        key = (leader, leader_stat.start if leader_stat is not None else 0)
        found = self._groups.get(key)
        if found is None:
            record = self._record(new_run_id(), project, IMPLICIT, leader)
            record.implicit = True
            self._add(record)
            found = self._groups[key] = record.id
        return found

    def _record(self, run_id: str, project: str, job_type: str, pid: int) -> RunRecord:
        facts = procinfo.facts(pid) if pid > 0 else None
        command = facts.command if facts is not None else []
        cwd = ""
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"{PROC}/{pid}/cwd")
        return RunRecord(
            id=run_id,
            project=project,
            job_type=job_type,
            name=f"{job_type}-{run_id}",
            host=self._host,
            user=self._user_name(facts.uid if facts is not None else None),
            command=command,
            cwd=cwd,
            container=facts.container if facts is not None else None,
            pid=pid or None,
            proc_start=facts.proc_start if facts is not None else None,
            started=time.time(),
            implicit=job_type == IMPLICIT,
        )

    def _add(self, record: RunRecord) -> None:
        with self._lock:
            self._new_runs[record.id] = record

    # --- registrations ------------------------------------------------------------------

    def register(self, pid: int, run_id: str) -> None:
        """Make ``run_id`` the run of process ``pid`` (a thread's process) and its descendants.

        The run must already be in this store (``artfs.init`` records it before registering,
        the daemon's own runs count too): a registration naming any other id is refused with
        :class:`NotFound` and records nothing, so a run of another store never lands here."""
        check_run_id(run_id)
        if not self._holds(run_id):
            raise NotFound(f"run {run_id} is not in this store: register it with its own store")
        tgid = thread_group(pid)
        found = proc_stat(tgid)
        if found is None:
            return
        self._registered[(tgid, found.start)] = run_id
        for cached in self._cache.values():
            cached.liveness.close()
        self._cache.clear()  # a process resolved before registering resolves again

    def _holds(self, run_id: str) -> bool:
        with self._lock:
            if run_id in self._new_runs:
                return True
        return self.lineage.find_run(run_id) is not None

    def session_of(self, pid: int) -> int | None:
        found = proc_stat(pid)
        return None if found is None else found.session

    # --- background ---------------------------------------------------------------------

    def take(self) -> UsageBatch:
        """The opens recorded since the last call (on the event loop: no lock needed; records
        what was noted, then swaps out the batch of each run that opened since)."""
        self.record_noted()
        if self._unrecorded > 1:
            log.error("%d more noted opens were not recorded", self._unrecorded - 1)
        self._unrecorded = 0
        pending, self._pending = self._pending, []
        return UsageBatch([t for run in pending if (t := run.swap()) is not None])

    def flush(self, batch: UsageBatch) -> None:
        """Write new run records, then ``batch`` (blocking: run it in a worker thread)."""
        self.persist_runs()
        opened = batch.opened_files()
        usages = self.lineage.record_opens(opened, publish=False) if opened else []
        self._outbox.submit([], usages)  # also retries what could not be published before

    def persist_runs(self) -> None:
        with self._lock:
            records = list(self._new_runs.values())
        if records:
            self.lineage.add_runs(records, publish=False)
            with self._lock:
                for record in records:
                    self._new_runs.pop(record.id, None)
            self._outbox.submit(records, [])

    def sweep(self) -> None:
        """Forget cached processes that exited and registrations of dead processes."""
        for pid, cached in list(self._cache.items()):
            if not cached.liveness.alive():
                cached.liveness.close()
                del self._cache[pid]
        for pid, start in list(self._registered):
            found = proc_stat(pid)
            if found is None or found.start != start:
                del self._registered[(pid, start)]
        # A process group's implicit run is keyed by its leader and the leader's start time:
        # once that leader is gone no new lookup produces the key again (members already
        # resolved stay in the cache). Keys without a start (the leader was gone before the
        # first lookup) stay: later members of the group still share that run.
        for leader, start in list(self._groups):
            if start == 0:
                continue
            found = proc_stat(leader)
            if found is None or found.start != start:
                del self._groups[(leader, start)]

    @property
    def cached_processes(self) -> int:
        return len(self._cache)

    @property
    def known_groups(self) -> int:
        return len(self._groups)

    def close(self) -> None:
        for cached in self._cache.values():
            cached.liveness.close()
        self._cache.clear()
        self._outbox.close(PUBLISH_WAIT_SECONDS)


__all__ = ["FileUsage", "UsageBatch", "UsageRecorder", "ancestry", "env_run_id"]
