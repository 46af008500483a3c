"""The usage recorder without a kernel: what a batch of opens leaves in the index, across
flushes, versions, runs and reader threads."""

from __future__ import annotations

import os
import pwd
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from artfs import usage as usage_module
from artfs.lineage import Lineage, Usage
from artfs.names import ArtifactName
from artfs.procinfo import ProcStat
from artfs.store import Store
from artfs.store.catalog import version_key
from artfs.usage import UsageRecorder

V0 = version_key(ArtifactName("proj", "data"), 0)
V1 = version_key(ArtifactName("proj", "data"), 1)


def _file(version_key: bytes, n: int) -> tuple[bytes, bytes]:
    return (version_key, n.to_bytes(8, "big"))


@pytest.fixture
def recorder(store: Store) -> Iterator[UsageRecorder]:
    found = UsageRecorder(Lineage(store))
    yield found
    found.close()


def _edges(recorder: UsageRecorder) -> dict[bytes, Usage]:
    recorder.flush(recorder.take())
    return {u.version_key: u for u in recorder.lineage.usages()}


def test_each_file_counts_once_per_run_across_flushes_and_versions(
    recorder: UsageRecorder,
) -> None:
    pid = os.getpid()
    for n in (1, 2, 3, 1, 2):
        recorder.opened(pid, "proj", _file(V0, n))
    recorder.opened(pid, "proj", _file(V1, 1))
    first = _edges(recorder)
    assert {k: u.files for k, u in first.items()} == {V0: 3, V1: 1}
    assert len(recorder.take()) == 0  # nothing recorded since
    time.sleep(0.01)
    recorder.opened(pid, "proj", _file(V0, 3))  # a reopen: moves the last access only
    recorder.opened(pid, "proj", _file(V0, 4))  # a new file of the same version
    again = _edges(recorder)
    assert again[V0].files == 4 and again[V0].first == first[V0].first
    assert again[V0].last > first[V0].last
    assert again[V1] == first[V1]


@contextmanager
def _noting_recorder(store: Store) -> Iterator[tuple[UsageRecorder, list[int]]]:
    """A recorder whose notes are file numbers of V0, and the numbers it named usages for."""
    named: list[int] = []

    def usage_of(n: int) -> tuple[bytes, bytes]:
        named.append(n)
        return _file(V0, n)

    recorder = UsageRecorder(Lineage(store), usage_of=usage_of)
    try:
        yield recorder, named
    finally:
        recorder.close()


def test_noted_opens_are_recorded_at_take_between_the_first_note_and_the_take(
    store: Store,
) -> None:
    """The event loop's path: a note finds the run, the take records it; the edge's first
    open is no later than the first note and its last access no earlier than the last."""
    with _noting_recorder(store) as (recorder, named):
        pid = os.getpid()
        before = time.time()
        for n in (1, 2, 3, 1):
            recorder.note_open(pid, "proj", n)
        noted = time.time()
        assert named == []  # nothing worked out until the take
        time.sleep(0.01)
        [edge] = _edges(recorder).values()
        assert named == [1, 2, 3, 1]
        assert edge.files == 3 and edge.run_id == recorder.run_for(pid, "proj")
        assert before <= edge.first <= noted < edge.last


def test_noted_opens_are_recorded_a_step_at_a_time_the_oldest_first(store: Store) -> None:
    """The daemon records a step of notes, answers requests, records the next: what is
    noted between two steps waits behind the older ones."""
    with _noting_recorder(store) as (recorder, named):
        pid = os.getpid()
        for n in range(5):
            recorder.note_open(pid, "proj", n)
        assert recorder.record_noted(2) and named == [0, 1]
        recorder.note_open(pid, "proj", 5)
        assert recorder.record_noted(2) and named == [0, 1, 2, 3]
        assert not recorder.record_noted(2) and named == [0, 1, 2, 3, 4, 5]
        assert _edges(recorder)[V0].files == 6


def test_a_process_gone_before_the_take_keeps_the_run_its_note_found(
    recorder: UsageRecorder,
) -> None:
    """A short-lived reader (``cat``) exits long before the take: its run was resolved when
    its open was noted, from its process group, not afterwards from a pid with no process."""
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        recorder.note_open(child.pid, "proj", _file(V0, 1))
        run = recorder.run_for(child.pid, "proj")
    finally:
        child.kill()
        child.wait()
    recorder.sweep()  # the exited process is forgotten before its open is recorded
    [edge] = _edges(recorder).values()
    assert edge.run_id == run != recorder.run_for(os.getpid(), "proj")
    found = recorder.lineage.find_run(run)
    assert found is not None and found.pid == child.pid


def test_notes_past_the_limit_are_recorded_a_step_at_a_time_without_a_take(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no take (a daemon whose takes fell behind) the notes held stay bounded: a note
    that finds the limit reached records a step of the oldest first; none is lost."""
    monkeypatch.setattr(usage_module, "NOTED_LIMIT", 4)
    monkeypatch.setattr(usage_module, "RECORD_STEP", 2)
    with _noting_recorder(store) as (recorder, named):
        for n in range(10):
            recorder.note_open(os.getpid(), "proj", n)
        assert named == list(range(6))  # the fifth, seventh and ninth notes recorded two each
        assert _edges(recorder)[V0].files == 10


def test_each_list_of_notes_dates_its_first_opens_from_its_own_first_note(
    store: Store,
) -> None:
    """Once every note is recorded, the next note starts the time its list's first opens
    carry: a version first opened after a take is not dated back to before it."""
    recorder = UsageRecorder(Lineage(store), usage_of=lambda n: _file(V0 if n < 100 else V1, n))
    try:
        pid = os.getpid()
        recorder.note_open(pid, "proj", 1)
        recorder.flush(recorder.take())
        taken = time.time()
        time.sleep(0.01)
        recorder.note_open(pid, "proj", 101)
        assert _edges(recorder)[V1].first >= taken
    finally:
        recorder.close()


@pytest.mark.parametrize("seen_full", [False, True])
def test_an_open_recorded_at_once_does_not_date_a_noted_one_later(
    store: Store, monkeypatch: pytest.MonkeyPatch, seen_full: bool
) -> None:
    """A base file read through a based staging is recorded at once (``opened``); a version
    file's open noted before it, of the same version, still dates the edge's first open. The
    same with the seen files full, where every first open forgets them first."""
    with _noting_recorder(store) as (recorder, _):
        pid = os.getpid()
        if seen_full:
            monkeypatch.setattr(usage_module, "_SEEN_FILES", 1)
            recorder.opened(pid, "proj", _file(V1, 5))
        before = time.time()
        recorder.note_open(pid, "proj", 1)
        noted = time.time()
        time.sleep(0.01)
        recorder.opened(pid, "proj", _file(V0, 2))
        edge = _edges(recorder)[V0]
        assert edge.files == 2 and before <= edge.first <= noted


def test_a_run_with_notes_waiting_is_kept_when_the_seen_files_are_forgotten(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose process exited (and was swept) is held by the notes it left: forgetting
    the seen files must not drop it and leave its notes to a second object for one run."""
    monkeypatch.setattr(usage_module, "_SEEN_FILES", 2)
    with _noting_recorder(store) as (recorder, _):
        child = subprocess.Popen(["sleep", "30"], start_new_session=True)
        try:
            recorder.note_open(child.pid, "proj", 1)
            run_id = recorder.run_for(child.pid, "proj")
        finally:
            child.kill()
            child.wait()
        recorder.sweep()
        runs = recorder._runs
        waiting = runs[run_id]
        for n in range(3):  # the third forgets the seen files
            recorder.opened(os.getpid(), "proj", _file(V1, n))
        assert runs.get(run_id) is waiting
        assert _edges(recorder)[V0].run_id == run_id


def test_a_note_that_cannot_be_named_is_logged_and_the_others_recorded(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    def usage_of(n: int) -> tuple[bytes, bytes]:
        if n < 0:
            raise AssertionError(f"no usage name for {n}")
        return _file(V0, n)

    recorder = UsageRecorder(Lineage(store), usage_of=usage_of)
    try:
        for n in (1, -1, 2, -2, 3):
            recorder.note_open(os.getpid(), "proj", n)
        assert _edges(recorder)[V0].files == 3
    finally:
        recorder.close()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors[0].startswith("an open noted for run") and "1 more noted opens" in errors[1]


def test_reopens_after_the_seen_files_are_forgotten_still_count_once(
    recorder: UsageRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder remembers a bounded number of files; past it, the index is what keeps a
    reopened file from being counted twice."""
    monkeypatch.setattr(usage_module, "_SEEN_FILES", 2)
    pid = os.getpid()
    for _ in range(3):
        for n in range(5):
            recorder.opened(pid, "proj", _file(V0, n))
        assert _edges(recorder)[V0].files == 5


@contextmanager
def parked_thread() -> Iterator[int]:
    """A thread of this process waiting until the block ends; its thread id."""
    tid = 0
    started, done = threading.Event(), threading.Event()

    def park() -> None:
        nonlocal tid
        tid = threading.get_native_id()
        started.set()
        done.wait(30)

    thread = threading.Thread(target=park)
    thread.start()
    started.wait(30)
    try:
        yield tid
    finally:
        done.set()
        thread.join()


def test_a_reader_thread_is_recorded_as_its_process_without_reading_proc_again(
    recorder: UsageRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FUSE names the thread that opened; a reopen by a cached thread is checked with a poll
    of its thread pidfd, not by reading /proc, and its exit is noticed."""
    with parked_thread() as tid:
        assert tid != os.getpid()
        recorder.opened(tid, "proj", _file(V0, 1))
        reads: list[int] = []
        real_stat = usage_module.proc_stat

        def counted(pid: int) -> ProcStat | None:
            reads.append(pid)
            return real_stat(pid)

        monkeypatch.setattr(usage_module, "proc_stat", counted)
        for n in range(1, 50):
            recorder.opened(tid, "proj", _file(V0, n))
        assert reads == []
        assert recorder.run_for(tid, "proj") == recorder.run_for(os.getpid(), "proj")
    deadline = time.monotonic() + 10  # join() returns before the kernel's thread is gone
    while recorder.cached_processes > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
        recorder.sweep()  # the thread exited: its cached entry goes
    assert recorder.cached_processes == 1  # this process's own
    assert _edges(recorder)[V0].files == 49


class _Clock:
    """Stands in for the ``time`` module in artfs.usage: monotonic time moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()


def test_a_cached_process_is_asked_whether_it_lives_once_a_recheck_interval_per_user(
    recorder: UsageRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reopens within LIVENESS_RECHECK_SECONDS of the last check poll no pidfd; the first
    after it does, and so does at once an open by another user of the same pid. A pid whose
    process exited is resolved afresh at its first open after the interval, not before."""
    clock = _Clock()
    monkeypatch.setattr(usage_module, "time", clock)
    polls: list[int] = []
    real_alive = usage_module._Liveness.alive

    def counted(self: usage_module._Liveness) -> bool:
        polls.append(self.pid)
        return real_alive(self)

    monkeypatch.setattr(usage_module._Liveness, "alive", counted)
    pid, uid, step = os.getpid(), os.getuid(), usage_module.LIVENESS_RECHECK_SECONDS
    for n in range(50):
        recorder.opened(pid, "proj", _file(V0, n), uid)
    clock.now += step / 2
    recorder.opened(pid, "proj", _file(V0, 1), uid)
    assert polls == []
    clock.now += step
    recorder.opened(pid, "proj", _file(V0, 2), uid)
    assert polls == [pid]
    recorder.opened(pid, "proj", _file(V0, 3), uid + 1)  # another user: asked at once
    assert polls == [pid, pid]
    assert recorder.run_for(pid, "proj")  # run_for asks every time, within the interval too
    assert polls == [pid, pid, pid]

    child = subprocess.Popen(["sleep", "30"])
    try:
        recorder.opened(child.pid, "proj", _file(V1, 1), uid)
    finally:
        child.kill()
        child.wait()
    resolved: list[int] = []
    real_resolve = recorder._resolve

    def counted_resolve(pid: int, project: str) -> tuple[str, int]:
        resolved.append(pid)
        return real_resolve(pid, project)

    monkeypatch.setattr(recorder, "_resolve", counted_resolve)
    recorder.opened(child.pid, "proj", _file(V1, 2), uid)
    assert resolved == []  # within the interval, by the same user: the cached process stands
    recorder.opened(child.pid, "proj", _file(V1, 3), uid + 1)
    assert resolved == [child.pid]  # by another user: asked at once, and it exited
    clock.now += step
    recorder.opened(child.pid, "proj", _file(V1, 4), uid + 1)
    assert resolved == [child.pid, child.pid]  # the interval passed: asked again, still gone


def test_batches_swap_out_whole_and_count_their_opens(recorder: UsageRecorder) -> None:
    pid = os.getpid()
    for n in range(4):
        recorder.opened(pid, "proj", _file(V0, n))
    batch = recorder.take()
    assert len(batch) == 4
    recorder.opened(pid, "proj", _file(V0, 1))  # after the take: the next batch's
    recorder.flush(batch)
    assert len(recorder.take()) == 1  # one edge reopened
    [edge] = recorder.lineage.usages()
    assert edge.files == 4


def test_each_user_is_looked_up_once_and_named_in_every_run(
    recorder: UsageRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes of two process groups make two implicit runs; the user database is read
    for the first only (a read of /etc/passwd off the disk cost a run's first open ~1 ms)."""
    looked_up: list[int] = []
    real = usage_module.pwd.getpwuid

    def counted(uid: int) -> pwd.struct_passwd:
        looked_up.append(uid)
        return real(uid)

    monkeypatch.setattr(usage_module.pwd, "getpwuid", counted)
    leaders = [subprocess.Popen(["sleep", "30"], start_new_session=True) for _ in range(2)]
    try:
        runs = {recorder.run_for(proc.pid, "proj") for proc in leaders}
        for proc in leaders:
            recorder.opened(proc.pid, "proj", _file(V0, 1))
    finally:
        for proc in leaders:
            proc.kill()
            proc.wait()
    assert len(runs) == 2
    assert looked_up == [os.getuid()]
    recorder.flush(recorder.take())
    me = real(os.getuid()).pw_name
    assert [recorder.lineage.find_run(run).user for run in sorted(runs)] == [me, me]


def test_the_run_id_is_the_first_environment_variable_that_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_module, "PROC", str(tmp_path))
    environs = {
        1: b"ARTFS_RUN_ID=first\0HOME=/root\0ARTFS_RUN_ID=second\0",
        2: b"HOME=/root\0ARTFS_RUN_ID=middle\0PATH=/bin\0",
        3: b"HOME=/root\0ARTFS_RUN_ID=last",  # no NUL after the last variable
        4: b"HOME=/root\0MY_ARTFS_RUN_ID=no\0ARTFS_RUN_IDS=no\0",
        5: b"",
    }
    for pid, environ in environs.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "environ").write_bytes(environ)
    found = [usage_module.env_run_id(pid) for pid in environs]
    assert found == ["first", "middle", "last", None, None]
    assert usage_module.env_run_id(99) is None  # no such process


def test_a_thread_s_process_is_read_from_its_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with parked_thread() as tid:
        assert tid != os.getpid() and usage_module.thread_group(tid) == os.getpid()
    assert usage_module.thread_group(os.getpid()) == os.getpid()
    monkeypatch.setattr(usage_module, "PROC", str(tmp_path))
    statuses = {
        7: b"Name:\tx\nState:\tS\nTgid:\t5\nNgid:\t0\n",
        8: b"Name:\tx\nState:\tS\nTgid:\t6",  # the last line, with no newline
        9: b"Name:\tx\nState:\tS\n",  # no Tgid line: taken as its own process
    }
    for pid, status in statuses.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "status").write_bytes(status)
    assert [usage_module.thread_group(pid) for pid in statuses] == [5, 6, 9]
    assert usage_module.thread_group(10) == 10  # gone: taken as its own process


def test_a_process_group_s_members_share_its_leader_s_run_whoever_their_parent(
    recorder: UsageRecorder,
) -> None:
    """A process in another process's group but not below it (a pipeline's second command)
    finds the group's run through the leader's own stat, which its ancestry does not hold."""
    leader = subprocess.Popen(["sleep", "30"], process_group=0)
    member = subprocess.Popen(["sleep", "30"], process_group=leader.pid)
    try:
        assert os.getpgid(member.pid) == leader.pid
        assert leader.pid not in [p.pid for p in usage_module.ancestry(member.pid)]
        assert recorder.run_for(member.pid, "proj") == recorder.run_for(leader.pid, "proj")
        assert recorder.run_for(member.pid, "proj") != recorder.run_for(os.getpid(), "proj")
    finally:
        for child in (member, leader):
            child.kill()
            child.wait()
