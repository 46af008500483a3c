"""Helpers shared by the benchmark sections: timing medians, commands, sizes."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ARTFS = str(Path(sys.executable).parent / "artfs")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_time(
    fn: Callable[[], object], runs: int, setup: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(runs):
        if setup:
            setup()
        times.append(timed(fn))
    return statistics.median(times)


def sh(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return done.stdout


def artfs(home: Path, *args: str | os.PathLike[str]) -> str:
    return sh(ARTFS, "--home", home, "--quiet", *args)


def du(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (what the store really costs)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def drop_caches() -> None:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        print("  (cannot drop the page cache: cold figures are warm)", flush=True)
