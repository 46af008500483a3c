"""The daemon killed with SIGKILL under concurrent readers and a writer in staging.

Readers (threads in this process and separate processes) read version files through the mount
at random offsets and compare every byte with the expected content; a writer appends to a
file in staging and fsyncs every few blocks. The daemon is killed mid-flight. Readers must get
errors (ENOTCONN, EIO), never wrong bytes; the mount comes back on the same path; the staged
file holds at least everything fsynced before the kill, byte for byte; staging commits again.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from artfs.names import ArtifactName
from artfs.store import Store
from artfs.store.verify import verify
from tests.helpers import make_tree, random_bytes
from tests.mount.mountutil import Mount, StartMount, put

pytestmark = pytest.mark.mount

# Errors a reader may see from a mount whose daemon died.
DEAD_MOUNT_ERRORS = {errno.ENOTCONN, errno.EIO, errno.ECONNABORTED}
BLOCK = 64 << 10

READER = r"""
import errno, json, os, random, sys, time
mnt, src, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
names = sorted(os.listdir(src))
rng = random.Random(os.getpid())
ok = wrong = 0
errors = {}
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    name = rng.choice(names)
    expected = open(os.path.join(src, name), "rb").read()
    try:
        fd = os.open(os.path.join(mnt, name), os.O_RDONLY)
        try:
            for _ in range(8):
                off = rng.randrange(len(expected))
                got = os.pread(fd, 1 << 17, off)
                # A read cut short by the daemon's death returns the bytes it got: a correct
                # prefix is no wrong byte (an empty one is: every offset is inside the file).
                if got and got == expected[off : off + len(got)]:
                    ok += 1
                else:
                    wrong += 1
        finally:
            os.close(fd)
    except OSError as exc:
        errors[exc.errno] = errors.get(exc.errno, 0) + 1
        time.sleep(0.01)
print(json.dumps({"ok": ok, "wrong": wrong, "errors": errors}))
"""


def _journal_block(index: int) -> bytes:
    return index.to_bytes(8, "big") * (BLOCK // 8)


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = 0
        self.wrong = 0
        self.errors: Counter[int] = Counter()
        self.fsynced = 0  # bytes of the journal known durable

    def add(self, ok: int = 0, wrong: int = 0, errors: dict[int, int] | None = None) -> None:
        with self.lock:
            self.ok += ok
            self.wrong += wrong
            self.errors.update(errors or {})


def _thread_reader(
    version: Path, files: dict[str, bytes], stop: threading.Event, tally: Tally
) -> None:
    rng = random.Random(threading.get_ident())
    while not stop.is_set():
        name = rng.choice(sorted(files))
        expected = files[name]
        try:
            with open(version / name, "rb", buffering=0) as handle:
                for _ in range(8):
                    off = rng.randrange(len(expected))
                    handle.seek(off)
                    got = handle.read(1 << 17)
                    # A read cut short by the daemon's death returns the bytes it got: a
                    # correct prefix is no wrong byte (an empty one is: the file is longer).
                    right = bool(got) and got == expected[off : off + len(got)]
                    tally.add(ok=right, wrong=not right)
        except OSError as exc:
            tally.add(errors={exc.errno or 0: 1})
            time.sleep(0.01)


def _writer(journal: Path, stop: threading.Event, tally: Tally) -> None:
    try:
        with open(journal, "wb", buffering=0) as out:
            index = 0
            while not stop.is_set():
                out.write(_journal_block(index))
                index += 1
                if index % 4 == 0:
                    os.fsync(out.fileno())
                    tally.fsynced = index * BLOCK
    except OSError as exc:
        tally.add(errors={exc.errno or 0: 1})


def _one_kill(
    mnt: Mount, src: Path, files: dict[str, bytes], rng: random.Random, round_: int
) -> tuple[Tally, dict[str, object]]:
    version = mnt.path / "proj" / "data" / "v0"
    journal = mnt.path / "proj" / "data" / "staging" / f"journal-{round_}.bin"
    stop = threading.Event()
    tally = Tally()
    threads = [
        threading.Thread(target=_thread_reader, args=(version, files, stop, tally))
        for _ in range(2)
    ]
    threads.append(threading.Thread(target=_writer, args=(journal, stop, tally)))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(version), str(src), "3"], stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    # Killed 0.8-1.6 s in, while the reader processes (3 s) read too, and not before the
    # mount has served a read and the writer's fsync (a loaded machine may take longer).
    kill_at = started + rng.uniform(0.8, 1.6)
    while not (tally.ok and tally.fsynced):
        assert time.monotonic() < started + 60, f"no read and fsync in 60 s: {tally.errors}"
        time.sleep(0.01)
    time.sleep(max(0.0, kill_at - time.monotonic()))
    mnt.proc.send_signal(signal.SIGKILL)
    mnt.proc.wait(timeout=10)
    time.sleep(0.5)  # readers and the writer meet the dead mount
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    for proc in procs:
        out, _ = proc.communicate(timeout=30)
        found = json.loads(out)
        tally.add(found["ok"], found["wrong"], {int(k): v for k, v in found["errors"].items()})
    return tally, {"journal": journal.name}


def _kill_rounds(tmp_path: Path, start_mount: StartMount, rounds: int) -> dict[str, int]:
    home = tmp_path / "home"
    spec = {f"f{i}.bin": random_bytes((3 << 20) + i * 4099, i) for i in range(6)}
    spec.update({f"small{i}.bin": random_bytes(20_000 + i, 100 + i) for i in range(10)})
    src = make_tree(tmp_path / "src", spec)
    put(home, src, "proj/data")
    files = {name: (src / name).read_bytes() for name in spec}
    rng = random.Random(rounds)
    mnt = start_mount(home)
    figures = {
        "rounds": 0,
        "reads_ok": 0,
        "wrong_bytes": 0,
        "reader_errors": 0,
        "fsynced_bytes_kept": 0,
    }
    for round_ in range(rounds):
        tally, info = _one_kill(mnt, src, files, rng, round_)
        assert tally.wrong == 0, "a reader got wrong bytes"
        assert tally.ok > 0 and tally.errors, (tally.ok, tally.errors)
        assert set(tally.errors) <= DEAD_MOUNT_ERRORS, tally.errors
        mnt = start_mount(home, mnt.path)  # recovers the stale mount on the same path
        journal = mnt.path / "proj" / "data" / "staging" / str(info["journal"])
        data = journal.read_bytes()
        assert len(data) >= tally.fsynced > 0
        blocks = tally.fsynced // BLOCK
        assert data[: tally.fsynced] == b"".join(_journal_block(i) for i in range(blocks))
        for name, expected in files.items():
            assert (mnt.path / "proj" / "data" / "v0" / name).read_bytes() == expected
        figures["rounds"] += 1
        figures["reads_ok"] += tally.ok
        figures["reader_errors"] += sum(tally.errors.values())
        figures["fsynced_bytes_kept"] += tally.fsynced
    control = mnt.path / "proj" / "data" / "staging" / ".artfs-commit"
    control.write_text("{}")
    assert json.loads(control.read_text())["ref"] == "proj/data:v1"
    with Store.open(home) as store:
        assert verify(store, store.versions(ArtifactName("proj", "data"))) == []
    print(f"\ndaemon killed: {figures}")
    return figures


def test_daemon_killed_under_readers_and_a_writer(tmp_path: Path, start_mount: StartMount) -> None:
    _kill_rounds(tmp_path, start_mount, 2)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_daemon_killed_20_times(tmp_path: Path, start_mount: StartMount) -> None:
    _kill_rounds(tmp_path, start_mount, 20)
