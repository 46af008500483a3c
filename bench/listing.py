"""Large versions through the mount: walks, ``ls -l`` of a huge directory, diff, daemon memory.

Two stored datasets: ``bench/files``, 100,000 files of 1-4 KiB in 400 directories of 250
(``bench/trees.py``'s set), and ``bench/wide``, one directory of 100,000 empty files. Each is
read three ways in the same run, medians of ``RUNS``: the native copy, the artfs mount (a
foreground ``artfsd``) and the null filesystem of ``bench/ceiling.py`` serving the native copy
from memory (a pyfuse3 filesystem doing the least it can: its time is the floor of any pyfuse3
mount here). "Cold" means a fresh server and ``echo 3 > /proc/sys/vm/drop_caches`` before each
pass (the native side only drops the caches); "warm" a second pass on the same server.

Rows: the ``find``+``stat`` walk of ``bench/files`` (``os.walk`` and an ``lstat`` per file),
cold and warm, as a time ratio to native (issue 16's targets: warm <= 3x, cold <= 4x) and to
the null filesystem; ``ls -lU`` of the 100,000-entry directory, cold and warm, the same
ratios; the wall time of ``artfs diff`` between a version and a one-file change of it; the
daemon's peak resident memory (``VmHWM``) after the walks, and after the ``ls -lU`` passes.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

from artfs.store.statcache import RACY_NS
from bench.common import artfs, median_time
from bench.mount import Side, _tool, _walk
from bench.opcost import _artfsd, _server
from bench.trees import FILES, make_files

RUNS = 3
WIDE = 100_000  # entries of the one large directory
NULL_FS = "null pyfuse3 fs"
Report = Callable[..., None]
Times = dict[str, float]  # workload -> seconds, median of RUNS


def _make_wide(root: Path) -> None:
    root.mkdir(parents=True)
    for i in range(WIDE):
        (root / f"entry-{i:06d}").touch()


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident set (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


class Server:
    """A FUSE server started afresh on each call (a cold server), the last one stopped on
    exit whatever happened; ``pid`` is the running one's."""

    def __init__(self, start: Callable[[], AbstractContextManager[object]]) -> None:
        self._start = start
        self._current = ExitStack()
        self.pid = 0

    def __call__(self) -> None:
        self._current.close()
        proc = self._current.enter_context(self._start())
        self.pid = getattr(proc, "pid", 0)

    def __enter__(self) -> Server:
        self()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._current.close()


def _measure(files: Path, wide: Path, server: Server | None, rss: Times) -> Times:
    """Every workload on one side (``server``: None for native), in the same order on each;
    the server's peak RSS is noted in ``rss`` after the walks and after the ``ls -lU`` passes
    (each kind on a server of its own: the last cold pass starts one)."""
    walk = Side("walk", files, server)
    listing = Side("ls", wide, server)
    found = {
        "walk_cold": walk.cold(lambda: _walk(files)),
        "walk_warm": walk.warm(lambda: _walk(files)),
    }
    if server is not None:
        rss["walks"] = peak_rss_mib(server.pid)
    found["ls_cold"] = listing.cold(lambda: _tool("ls", "-lU", wide))
    found["ls_warm"] = listing.warm(lambda: _tool("ls", "-lU", wide))
    if server is not None:
        rss["ls"] = peak_rss_mib(server.pid)
    return found


ROWS = (
    ("walk_cold", f"find+stat walk of {FILES:,} files, cold", "<= 4.0"),
    ("walk_warm", f"find+stat walk of {FILES:,} files, warm", "<= 3.0"),
    ("ls_cold", f"ls -lU of a {WIDE:,}-entry directory, cold", ""),
    ("ls_warm", f"ls -lU of a {WIDE:,}-entry directory, warm", ""),
)


def _report(times: dict[str, Times], report: Report) -> None:
    for workload, label, target in ROWS:
        native, mount, null = (times[s][workload] for s in ("native", "artfs", "null"))
        report(f"native: {label}", native, "s")
        report(f"mount: {label}, time vs native", mount / native, "x", target)
        report(f"{NULL_FS}: {label}, time vs native", null / native, "x")
        report(f"artfs / {NULL_FS}: {label}, time", mount / null, "x", "<= 1.3")


def _stored(workdir: Path) -> tuple[Path, Path]:
    """(native root, store): both datasets made and put, and a one-file change of
    ``bench/files`` put as its v1."""
    native, home = workdir / "native", workdir / "home"
    rng = random.Random(16)
    make_files(native / "files", rng)
    _make_wide(native / "wide")
    time.sleep(RACY_NS / 1e9 + 0.1)  # else the first put records none of them (bench/reput.py)
    artfs(home, "put", native / "files", "bench/files")
    artfs(home, "put", native / "wide", "bench/wide")
    with open(native / "files" / "shard-0007" / "sample-00042.bin", "ab") as changed:
        changed.write(b"!")
    artfs(home, "put", native / "files", "bench/files")
    return native, home


def _servers(workdir: Path, native: Path, home: Path) -> Iterator[tuple[str, Server, Path]]:
    """(side, its server, where it serves the native root's content)."""
    mnt, null_mnt = workdir / "mnt", workdir / "mnt-null"
    command = _artfsd(home, mnt, None)
    yield "artfs", Server(lambda: _server(command, mnt)), mnt / "bench"
    null = [sys.executable, "-m", "bench.ceiling", str(native), str(null_mnt)]
    yield "null", Server(lambda: _server(null, null_mnt)), null_mnt


def run(workdir: Path, report: Report) -> None:
    native, home = _stored(workdir)
    report("dataset: files of 1-4 KiB in dirs of 250", FILES, "files", f"+ one dir of {WIDE:,}")
    rss: dict[str, Times] = {"native": {}, "artfs": {}, "null": {}}
    times = {"native": _measure(native / "files", native / "wide", None, rss["native"])}
    for side, server, root in _servers(workdir, native, home):
        with server:
            if side == "artfs":
                times[side] = _measure(root / "files/v0", root / "wide/v0", server, rss[side])
            else:
                times[side] = _measure(root / "files", root / "wide", server, rss[side])
    _report(times, report)
    report("artfsd peak RSS (VmHWM) after the walks", rss["artfs"]["walks"], "MiB")
    report("artfsd peak RSS (VmHWM) after the ls -lU passes", rss["artfs"]["ls"], "MiB")
    report(f"{NULL_FS} peak RSS (both trees in memory)", rss["null"]["ls"], "MiB")
    diff = median_time(lambda: artfs(home, "diff", "bench/files:v0", "bench/files:v1"), RUNS)
    report("artfs diff of a one-file change (CLI wall time)", diff, "s")
    report("machine load (1-minute average) at the end", os.getloadavg()[0], "", "noise")
