"""Helpers for the mount tests: starting, waiting for, and always stopping daemons; sample data."""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from artfsd.mountpoint import mount_entry

from artfs.names import ArtifactName
from artfs.store import Store

FUSE_MISSING = not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None
DAEMON = [sys.executable, "-m", "artfsd"]
ARTFS = Path(sys.executable).parent / "artfs"


@dataclass
class Mount:
    path: Path
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"


def is_mount(path: Path) -> bool:
    return mount_entry(path) is not None


def wait_mounted(
    proc: subprocess.Popen[bytes], ready_fd: int, path: Path, log: Path, timeout: float
) -> None:
    """Poll until the daemon says the mount answers (its --ready-fd line) and ``path`` is a
    mount; fail fast with the log if the daemon dies first. A stale mount left by a killed
    daemon at the same path looks mounted too, so the daemon's own word is waited for."""
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        if select.select([ready_fd], [], [], 0.02)[0]:
            line = os.read(ready_fd, 4096)
            break
        if proc.poll() is not None:
            break
    os.close(ready_fd)
    if line.strip() == b"READY" and is_mount(path):
        return
    if proc.poll() is not None or line:
        proc.wait(timeout=5)
        pytest.fail(f"artfsd failed ({line!r}, status {proc.returncode}):\n{log.read_text()}")
    pytest.fail(f"artfsd did not mount {path} within {timeout} s:\n{log.read_text()}")


def unmount_and_stop(mount: Mount) -> None:
    """Unmount (politely, then lazily) and make sure the daemon process is gone."""
    if is_mount(mount.path):
        done = subprocess.run(["fusermount3", "-u", str(mount.path)], capture_output=True)
        if done.returncode != 0 and is_mount(mount.path):
            subprocess.run(["fusermount3", "-u", "-z", str(mount.path)], capture_output=True)
    stop_process(mount.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=5)


class Mounts:
    """Starts daemons on request and, in :meth:`close`, unmounts and stops every one."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.made: list[Mount] = []

    def start(self, home: Path, path: Path | None = None, *extra: str) -> Mount:
        if FUSE_MISSING:
            pytest.skip("needs /dev/fuse and fusermount3")
        path = path or self.workdir / f"mnt{len(self.made)}"
        with contextlib.suppress(FileExistsError):
            path.mkdir()  # not exist_ok: its stat fails on a dead daemon's stale mount
        log = self.workdir / f"artfsd{len(self.made)}.log"
        read_end, write_end = os.pipe()
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [*DAEMON, str(path), "--home", str(home), "--ready-fd", str(write_end), *extra],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                pass_fds=(write_end,),
            )
        os.close(write_end)
        mount = Mount(path, home, proc, log)
        self.made.append(mount)
        wait_mounted(proc, read_end, path, log, timeout=15)
        return mount

    def close(self, *, show_logs: bool) -> None:
        for mount in reversed(self.made):
            unmount_and_stop(mount)
            if show_logs:
                print(f"--- daemon log {mount.log} ---\n{mount.log_text()}")


# --- data --------------------------------------------------------------------------------------

MTIME_NS = 1_600_000_000_123_456_789


StartMount = Callable[..., Mount]
"""What the ``start_mount`` fixture yields: ``start_mount(home, mountpoint=None, *daemon_args)``."""


def sample_tree(root: Path) -> dict[str, bytes]:
    """A small tree with every kind of entry the mount shows; returns path -> content."""
    rng = random.Random(7)
    files = {
        "README.md": b"# sample\n",
        "run.sh": b"#!/bin/sh\necho hi\n",
        "empty.bin": b"",
        "nested/deeper/deepest.txt": b"deep\n" * 100,
        "with space/na\u00efve \u2603.txt": b"snow" * 10,
        "data/random.bin": rng.randbytes(5 << 20),
        "data/text.csv": "".join(
            f"{i},{i * 0.5:.3f},label_{i % 7}\n" for i in range(120_000)
        ).encode(),
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, 0o755 if rel == "run.sh" else 0o644)
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
    (root / "empty_dir").mkdir()
    return {k: v for k, v in files.items()}


def put(home: Path, source: Path, ref: str, **options: Any) -> int:
    """Commit ``source`` as the next version of ``ref`` through the store API; its number."""
    with Store.open(home) as store:
        return store.put(source, ArtifactName.parse(ref), **options).record.number


def resident_pages(path: Path, offset: int = 0, length: int | None = None) -> list[bool]:
    """Which pages of ``path``'s bytes at ``offset`` (all to its end if ``length`` is None) are
    in the page cache: mincore of a mapping, a look that, unlike a read, brings nothing in
    and starts no read-ahead. mincore tells only the owner of a file (or one who may write it)
    the truth, and others that every page is there: the tests run as the files' owner."""
    start = offset - offset % mmap.PAGESIZE
    span = (path.stat().st_size if length is None else offset + length) - start
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, span, mmap.PROT_READ, mmap.MAP_SHARED, fd, start)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            flags = ctypes.create_string_buffer(-(-span // mmap.PAGESIZE))
            assert libc.mincore(address, span, flags) == 0, os.strerror(ctypes.get_errno())
            return [bool(flag & 1) for flag in flags.raw]
        finally:
            libc.munmap(address, span)
    finally:
        os.close(fd)


def errno_of(call: Callable[[], object]) -> int:
    """The errno ``call()`` fails with (the test fails if it succeeds)."""
    with pytest.raises(OSError) as caught:
        call()
    assert caught.value.errno is not None
    return caught.value.errno


# How long a test waits for usage and run records to be in the index: the daemon writes them
# every half second, in a worker thread whose commit syncs the index, which on a machine
# loaded by the tests running beside it has taken more than a second.
RECORDED_WITHIN = 10.0


def eventually(check: Callable[[], bool], within: float) -> float:
    """Seconds until ``check()`` held; fails the test after ``within`` seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            pytest.fail(f"not true within {within} s")
        time.sleep(0.05)
    return time.monotonic() - start
