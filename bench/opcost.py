"""Daemon CPU per FUSE operation: artfsd beside the null filesystem of ``bench/ceiling.py``.

    python -m bench.opcost WORKDIR [--runs N] [--profile FILE] [--cpus LIST]

Makes the mixed set of ``bench/dataset.py`` in ``WORKDIR`` (kept for later runs), stores it,
and runs each step below on a fresh server (artfsd, then the null filesystem) after dropping
the page cache, reading the server's CPU time (user + system, ``/proc/PID/stat``) before and
after each step; each figure is that CPU divided by the requests the step makes, the median of
``--runs`` fresh servers. The steps over the 6,000 small files, in order, each on what the
one before left cached in the kernel:

- ``lookup``: ``stat`` of every file by path (one LOOKUP each, its directory's first included);
- ``open+release``: ``open`` + ``close`` of every file (entries cached: OPEN and RELEASE);
- ``first read``: open, read to the end, close, of every file; minus ``open+release``;
- ``open+release, warm``: the same again (pages cached, ``keep_cache``: no READ reaches it);
- ``readdir entry``: a fresh server, ``os.scandir`` + ``stat`` of each directory's entries
  (READDIRPLUS: the entries come with their attributes, no LOOKUP), per entry.

``--profile FILE`` runs one more artfsd under cProfile over the cold small-file read (lookup,
open, read, release of every file) and writes its stats there (``python -m pstats FILE``).
``--cpus`` pins the servers (``taskset -c``), e.g. ``0`` for one core. ``--scaling`` only
times a cold read of the large files and of the small files (two reader threads) with artfsd
on one core and on two.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import drop_caches, timed
from bench.dataset import make_mixed
from bench.mount import REPO, Files, _open_close, _parallel_small, read_all

STEPS = ("lookup", "open+release", "first read", "open+release, warm", "readdir entry")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads, dead ones included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _server(command: list[str], mountpoint: Path, ready: str) -> Iterator[subprocess.Popen[bytes]]:
    """A FUSE server in the foreground, serving once it printed ``ready``; unmounted after."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().decode().strip() != ready:
            raise RuntimeError(f"{command[:4]} did not mount {mountpoint}")
        yield proc
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()


def _artfsd(home: Path, mountpoint: Path, prefix: list[str], profile: Path | None) -> list[str]:
    command = [*prefix, sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    return [*command, "-m", "artfsd", str(mountpoint), "--home", str(home), "--ready-fd", "1"]


def _steps(pid: int, root: Path, small: list[Path]) -> dict[str, float]:
    """CPU seconds of the server per step (see the module's docstring)."""
    paths = [root / p for p in small]
    found: dict[str, float] = {}

    def step(name: str, fn: Callable[[], object]) -> None:
        before = cpu_seconds(pid)
        fn()
        found[name] = cpu_seconds(pid) - before

    os.stat(root)
    step("lookup", lambda: [os.stat(p) for p in paths])
    step("open+release", lambda: _open_close(paths))
    step("first read", lambda: read_all(paths))
    step("open+release, warm", lambda: _open_close(paths))
    found["first read"] -= found["open+release"]
    return found


def _readdir(pid: int, root: Path, small: list[Path]) -> float:
    directories = sorted({(root / p).parent for p in small})
    before = cpu_seconds(pid)
    for directory in directories:
        for entry in os.scandir(directory):
            entry.stat()
    return cpu_seconds(pid) - before


def measure(
    command: list[str], mountpoint: Path, root: Path, small: list[Path], runs: int
) -> dict[str, float]:
    """Microseconds of server CPU per request of each step, medians of ``runs``."""
    samples: dict[str, list[float]] = {name: [] for name in STEPS}
    for _ in range(runs):
        drop_caches()
        with _server(command, mountpoint, "ready" if "bench.ceiling" in command else "READY") as p:
            for name, seconds in _steps(p.pid, root, small).items():
                samples[name].append(seconds)
        drop_caches()
        with _server(command, mountpoint, "ready" if "bench.ceiling" in command else "READY") as p:
            samples["readdir entry"].append(_readdir(p.pid, root, small))
    return {name: statistics.median(v) / len(small) * 1e6 for name, v in samples.items()}


def scaling(command: list[str], mountpoint: Path, root: Path, native: Path, runs: int) -> None:
    """Wall time of a cold read of the large files and of the small files by two readers,
    the server on one core and on two (``taskset``), medians of ``runs`` fresh servers."""
    files = Files.of(native, 0)
    workloads = {
        "cold read, large files": lambda: read_all([root / p for p in files.large]),
        "cold small files, 2 readers": lambda: _parallel_small([root / p for p in files.small]),
    }
    for cpus in ("0", "0,1"):
        for name, fn in workloads.items():
            times = []
            for _ in range(runs):
                drop_caches()
                with _server(["taskset", "-c", cpus, *command], mountpoint, "READY"):
                    times.append(timed(fn))
            print(f"server on cpus {cpus:<4} {name:<30} {statistics.median(times) * 1e3:8.1f} ms")


def prepare(workdir: Path) -> tuple[Path, Path, list[Path]]:
    """(native tree, store, small files relative to the tree), made once per ``workdir``."""
    native, home = workdir / "native", workdir / "home"
    if not native.exists():
        make_mixed(native)
    if not (home / "packs").exists() and not (home / "index").exists():
        artfs = str(Path(sys.executable).parent / "artfs")
        subprocess.run(
            [artfs, "--home", str(home), "-q", "put", str(native), "bench/mixed"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return native, home, Files.of(native, 0).small


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.opcost", description=__doc__)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--cpus", help="taskset -c list for the servers")
    parser.add_argument("--scaling", action="store_true", help="artfsd on 1 vs 2 cores only")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    native, home, small = prepare(workdir)
    if args.scaling:
        version = workdir / "mnt" / "bench" / "mixed" / "v0"
        command = _artfsd(home, workdir / "mnt", [], None)
        scaling(command, workdir / "mnt", version, native, args.runs)
        return
    prefix = ["taskset", "-c", args.cpus] if args.cpus else []
    version = workdir / "mnt" / "bench" / "mixed" / "v0"
    artfs = measure(
        _artfsd(home, workdir / "mnt", prefix, None), workdir / "mnt", version, small, args.runs
    )
    null_cmd = [*prefix, sys.executable, "-m", "bench.ceiling", str(native), str(workdir / "nul")]
    null = measure(null_cmd, workdir / "nul", workdir / "nul", small, args.runs)
    print(f"{'step (us of server CPU per file)':<40} {'artfsd':>8} {'null fs':>8} {'artfs own':>9}")
    for name in STEPS:
        print(f"{name:<40} {artfs[name]:8.1f} {null[name]:8.1f} {artfs[name] - null[name]:9.1f}")
    if args.profile is not None:
        drop_caches()
        command = _artfsd(home, workdir / "mnt", prefix, args.profile.resolve())
        with _server(command, workdir / "mnt", "READY"):
            read_all([version / p for p in small])
        print(f"profile of a cold small-file read: {args.profile}")


if __name__ == "__main__":
    main()
