"""Read workloads through the mount, each as a ratio to the same reads of the native copy.

The mixed set is stored in a fresh store and mounted; every workload runs against the mounted
version and against the native directory in the same run, the median of ``RUNS``. "Cold" means
``sync; echo 3 > /proc/sys/vm/drop_caches`` before each pass, for both sides (it also drops the
kernel's cached FUSE inodes and pages, not the daemon's own chunk cache, which is emptied by
remounting: a cold pass on the mount runs on a fresh daemon).
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from bench.common import drop_caches
from bench.dataset import make_mixed

RUNS = 3
READ_SIZE = 1 << 20
RANDOM_READS = 2000
Report = Callable[..., None]


def list_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def read_all(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            while chunk := os.read(fd, READ_SIZE):
                total += len(chunk)
        finally:
            os.close(fd)
    return total


def _walk(root: Path) -> int:
    count = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(dirpath, name))
            count += 1
    return count


def _parallel_small(paths: list[Path]) -> None:
    halves = [paths[0::2], paths[1::2]]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(read_all, halves))


def _random_preads(path: Path, seed: int) -> None:
    size = path.stat().st_size
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(RANDOM_READS):
            os.pread(fd, 4096, rng.randrange(0, size - 4096) & ~4095)
    finally:
        os.close(fd)


def _open_close(paths: list[Path]) -> None:
    for path in paths:
        os.close(os.open(path, os.O_RDONLY))


@contextmanager
def _mounted(home: Path, mountpoint: Path) -> Iterator[None]:
    mountpoint.mkdir(exist_ok=True)
    artfs = str(Path(sys.executable).parent / "artfs")
    subprocess.run([artfs, "--home", str(home), "-q", "mount", str(mountpoint)], check=True)
    try:
        yield
    finally:
        done = subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
        if done.returncode != 0:
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        time.sleep(0.2)  # let the daemon exit before the next mount


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class Side:
    """One side of a comparison: the native tree, or the mounted version (remounted for cold)."""

    def __init__(self, name: str, root: Path, remount: Callable[[], object] | None) -> None:
        self.name, self.root, self._remount = name, root, remount

    def cold(self, fn: Callable[[], object]) -> float:
        times = []
        for _ in range(RUNS):
            if self._remount:
                self._remount()
            drop_caches()
            times.append(_timed(fn))
        return statistics.median(times)

    def warm(self, fn: Callable[[], object]) -> float:
        fn()
        return statistics.median(_timed(fn) for _ in range(RUNS))


def run(workdir: Path, report: Report) -> None:
    native = workdir / "native"
    size = make_mixed(native)
    home, mnt = workdir / "home", workdir / "mnt"
    artfs = str(Path(sys.executable).parent / "artfs")
    subprocess.run(
        [artfs, "--home", str(home), "-q", "put", str(native), "bench/mixed"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    state: dict[str, object] = {}

    def remount() -> None:
        mount = state.pop("mount", None)
        if mount is not None:
            mount.__exit__(None, None, None)  # type: ignore[attr-defined]
        mount = _mounted(home, mnt)
        mount.__enter__()
        state["mount"] = mount

    remount()
    try:
        _measure(native, mnt / "bench" / "mixed" / "v0", size, remount, report)
    finally:
        mount = state.pop("mount", None)
        if mount is not None:
            mount.__exit__(None, None, None)  # type: ignore[attr-defined]
    _recording_cost(native, home, workdir / "mnt-lineage", report)


def _measure(
    native: Path, version: Path, size: int, remount: Callable[[], None], report: Report
) -> None:
    sides = {"native": Side("native", native, None), "mount": Side("mount", version, remount)}
    rel = [p.relative_to(native) for p in list_files(native)]
    large = [r for r in rel if r.parts[0] in ("checkpoints", "tables")]
    small = [r for r in rel if r.parts[0] in ("images", "labels")]
    ckpt = Path("checkpoints/model-0.f32")

    def on(side: Side, paths: list[Path]) -> list[Path]:
        return [side.root / p for p in paths]

    results: dict[str, dict[str, float]] = {}
    for name, side in sides.items():
        got = results[name] = {}
        got["walk"] = side.cold(lambda s=side: _walk(s.root))
        got["cold_all"] = side.cold(lambda s=side: read_all(on(s, rel)))
        got["cold_large"] = side.cold(lambda s=side: read_all(on(s, large)))
        got["warm_all"] = side.warm(lambda s=side: read_all(on(s, rel)))
        got["warm_large"] = side.warm(lambda s=side: read_all(on(s, large)))
        got["small"] = side.cold(lambda s=side: _parallel_small(on(s, small)))
        got["random"] = side.cold(lambda s=side: _random_preads(s.root / ckpt, 1))
        got["open"] = side.warm(lambda s=side: _open_close(on(s, small)))
    nat, mnt = results["native"], results["mount"]
    large_bytes = sum((native / p).stat().st_size for p in large)
    mb = 1 << 20
    report(
        "mount: metadata walk (find+stat), time vs native", mnt["walk"] / nat["walk"], "x", "<= 2.0"
    )
    report(
        "mount: cold read, whole set, vs native", nat["cold_all"] / mnt["cold_all"], "x", ">= 0.45"
    )
    report("mount: cold read, whole set", size / mb / mnt["cold_all"], "MiB/s")
    report(
        "mount: cold read, large files, vs native",
        nat["cold_large"] / mnt["cold_large"],
        "x",
        ">= 1.0",
    )
    report("mount: cold read, large files", large_bytes / mb / mnt["cold_large"], "MiB/s")
    report(
        "mount: warm re-read, large files, vs native",
        nat["warm_large"] / mnt["warm_large"],
        "x",
        ">= 0.9",
    )
    report(
        "mount: warm re-read, whole set, vs native",
        nat["warm_all"] / mnt["warm_all"],
        "x",
        ">= 0.3",
    )
    report("mount: small files, 2 readers, vs native", nat["small"] / mnt["small"], "x", ">= 0.35")
    report("mount: small files, 2 readers", len(small) / mnt["small"], "files/s")
    report(
        "mount: cold 4 KiB random preads, vs native", nat["random"] / mnt["random"], "x", ">= 0.3"
    )
    report("mount: open+close per file", mnt["open"] / len(small) * 1e6, "us")
    report("native: open+close per file", nat["open"] / len(small) * 1e6, "us")


# --- lineage recording on vs off ----------------------------------------------------------------

RECORDING_ROUNDS = 7


@contextmanager
def _daemon(home: Path, mountpoint: Path, *options: str) -> Iterator[None]:
    """artfsd in the foreground with ``options`` (``artfs mount`` passes none through)."""
    mountpoint.mkdir(exist_ok=True)
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "artfsd", str(mountpoint), "--home", str(home)]
    proc = subprocess.Popen(
        [*command, "--ready-fd", str(write_end), *options],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as ready:
            if ready.readline().strip() != "READY":
                raise RuntimeError(f"artfsd {' '.join(options)} did not mount {mountpoint}")
        yield
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
        proc.wait(timeout=30)


def _recording_cost(native: Path, home: Path, mountpoint: Path, report: Report) -> None:
    """Read speed with usage recording on vs off: the same warm reads through a daemon with
    and without ``--no-lineage``, interleaved, medians of ``RECORDING_ROUNDS``. Warm reads are
    the worst case: the page cache serves the bytes, so the per-open cost is all there is."""
    rel = [p.relative_to(native) for p in list_files(native)]
    small = [r for r in rel if r.parts[0] in ("images", "labels")]
    version = mountpoint / "bench" / "mixed" / "v0"
    times: dict[str, dict[str, list[float]]] = {"on": {}, "off": {}}
    for _ in range(RECORDING_ROUNDS):
        for mode, options in (("on", ()), ("off", ("--no-lineage",))):
            with _daemon(home, mountpoint, *options):
                paths = [version / p for p in rel]
                small_paths = [version / p for p in small]
                read_all(paths)  # warm the page cache and the daemon
                got = times[mode]
                got.setdefault("all", []).append(_timed(lambda p=paths: read_all(p)))  # type: ignore[misc]
                got.setdefault("open", []).append(
                    _timed(lambda p=small_paths: _open_close(p))  # type: ignore[misc]
                )
    on = {k: statistics.median(v) for k, v in times["on"].items()}
    off = {k: statistics.median(v) for k, v in times["off"].items()}
    report(
        "mount: warm whole-set read, recording on vs off (time)",
        on["all"] / off["all"],
        "x",
        "<= 1.05",
    )
    report("mount: open+close per file, recording on", on["open"] / len(small) * 1e6, "us")
    report("mount: open+close per file, recording off", off["open"] / len(small) * 1e6, "us")
