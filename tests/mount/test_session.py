"""artfsd's FUSE request loop: a queued request is taken without a pass of trio's scheduler,
every run of them ends with one, and the session still ends when it should."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import trio
from artfsd.session import QueuedTaker, device_fd

from tests.mount.mountutil import FUSE_MISSING, StartMount, put, sample_tree, unmount_and_stop


class Device:
    """A pipe standing in for the FUSE device: readable while it holds a request (a byte)."""

    def __init__(self) -> None:
        self.fd, self._writer = os.pipe()

    def queue(self) -> None:
        os.write(self._writer, b"r")

    def take(self) -> None:
        assert os.read(self.fd, 1) == b"r"

    def close(self) -> None:
        os.close(self.fd)
        os.close(self._writer)


@pytest.fixture
def device() -> Iterator[Device]:
    made = Device()
    yield made
    made.close()


def test_queued_requests_are_taken_at_once_and_each_run_ends_with_a_wait(device: Device) -> None:
    device.queue()  # never read: the device stays readable, as with readers keeping it busy
    waits = 0

    async def wait() -> bool:
        nonlocal waits
        waits += 1
        return True

    taker = QueuedTaker(device.fd, wait, run=3)

    async def take(count: int) -> list[tuple[bool, int]]:
        return [(await taker(), waits) for _ in range(count)]

    # Three taken without waiting, the fourth through the wait (trio's loop gets its turn).
    assert trio.run(take, 8) == [
        (True, 0), (True, 0), (True, 0), (True, 1),
        (True, 1), (True, 1), (True, 1), (True, 2),
    ]  # fmt: skip


def test_a_wake_for_a_request_another_task_took_meanwhile_waits_again(device: Device) -> None:
    waits = 0

    async def wait() -> bool:
        nonlocal waits
        waits += 1
        if waits == 1:  # while this task waits, another one takes the request it woke for
            device.queue()
            assert await taker() is True  # taken without waiting...
            device.take()  # ...and read by that task
        elif waits == 2:
            device.queue()
        return True

    taker = QueuedTaker(device.fd, wait)
    assert trio.run(taker) is True
    assert waits == 2


def test_a_wake_is_trusted_when_no_request_was_taken_meanwhile(device: Device) -> None:
    """pyfuse3 lets one task wait at a time and it reads as soon as it wakes, so only a
    request taken without waiting can go between a wake and its read: with none taken, the
    device is not asked again (it would only say the same)."""
    waits = 0

    async def wait() -> bool:
        nonlocal waits
        waits += 1
        return waits < 3  # (bounds the test if the device were asked and said "empty")

    assert trio.run(QueuedTaker(device.fd, wait)) is True  # the pipe is empty: not asked
    assert waits == 1


def test_the_end_of_the_session_ends_the_wait(device: Device) -> None:
    async def ended() -> bool:
        return False

    assert trio.run(QueuedTaker(device.fd, ended)) is False


def test_a_run_is_the_loops_not_one_tasks(device: Device) -> None:
    """Eight tasks take requests from a device that always has one, as pyfuse3's do (its wait:
    one task at a time, behind a lock); a ninth task notes how many were taken each time
    trio's scheduler gives it a turn. However many tasks, the loop gets a turn after about
    ``run`` requests: a run counted per task would let each task take its own."""
    device.queue()
    run, taken, gaps = 4, 0, []
    lock = trio.Lock()

    async def wait() -> bool:  # pyfuse3's: a lock, then a park until epoll says readable
        async with lock:
            await trio.lowlevel.checkpoint()
        return True

    taker = QueuedTaker(device.fd, wait, run=run)

    async def serve() -> None:
        nonlocal taken
        while taken < 2000:
            await taker()
            taken += 1  # a handler that never awaits: the worst case

    async def watch() -> None:
        seen = 0
        while taken < 2000:
            await trio.lowlevel.checkpoint()
            gaps.append(taken - seen)
            seen = taken

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(serve)
            nursery.start_soon(watch)

    trio.run(main)
    assert max(gaps) <= 2 * (run + 1), gaps


def test_the_one_fuse_device_open_is_found() -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("needs /dev/fuse")
    assert device_fd() is None  # none open in this process yet
    first = os.open("/dev/fuse", os.O_RDWR)  # a connection not mounted yet: nothing to undo
    try:
        assert device_fd() == first
        second = os.open("/dev/fuse", os.O_RDWR)
        try:
            assert device_fd() is None  # which one is the session's? Not guessed
        finally:
            os.close(second)
    finally:
        os.close(first)


@pytest.mark.mount
@pytest.mark.skipif(FUSE_MISSING, reason="needs /dev/fuse and fusermount3")
def test_the_daemon_takes_queued_requests_and_serves_busy_readers(
    tmp_path: Path, start_mount: StartMount
) -> None:
    """Eight threads keep requests queued (stat, open, read of small files) while two read
    the 5 MiB file, whose chunks load in worker threads: every read returns the stored bytes,
    and the daemon took requests without waiting (it counts them when it unmounts)."""
    files = sample_tree(tmp_path / "src")
    put(tmp_path / "home", tmp_path / "src", "proj/busy")
    mnt = start_mount(tmp_path / "home")
    root = mnt.path / "proj" / "busy" / "v0"
    small = [name for name, content in files.items() if len(content) < 100_000]

    def small_reads(_: int) -> bool:
        for _ in range(30):
            for name in small:
                os.stat(root / name)
                if (root / name).read_bytes() != files[name]:
                    return False
        return True

    def large_read(_: int) -> str:
        return hashlib.sha256((root / "data" / "random.bin").read_bytes()).hexdigest()

    with ThreadPoolExecutor(10) as pool:
        busy = [pool.submit(small_reads, i) for i in range(8)]
        large = [pool.submit(large_read, i) for i in range(2)]
        assert all(done.result() for done in busy)
        expected = hashlib.sha256(files["data/random.bin"]).hexdigest()
        assert [done.result() for done in large] == [expected] * 2
    unmount_and_stop(mnt)
    log = mnt.log_text()
    assert "FUSE requests are taken as they queue" in log
    counted = re.search(r"(\d+) FUSE requests were taken as they queued", log)
    assert counted is not None and int(counted.group(1)) > 0, log
