"""Daemon CPU per FUSE operation: artfsd beside the null filesystem of ``bench/ceiling.py``.

    python -m bench.opcost WORKDIR [--runs N] [--base SRC] [--profile FILE]
    python -m bench.opcost WORKDIR [--scaling | --in-process]

Makes the mixed set of ``bench/dataset.py`` in ``WORKDIR`` (kept for later runs), stores it,
and runs the steps below on fresh servers after dropping the page cache, reading each server's
CPU time (user + system, ``/proc/PID/stat``) before and after each step; a figure is that CPU
divided by the files of the step, the median of ``--runs`` rounds, each round running every
server once in turn (so that a change in the machine's load hits all of them alike). The
steps over the 6,000 small files, in order, each on what the one before left cached:

- ``lookup``: ``stat`` of every file by path (a LOOKUP each, its directory's first included);
- ``cold file``: open, read to the end, close (OPEN, READ, RELEASE; the chunk loaded);
- ``open+release, warm``: the same again (pages cached, ``keep_cache``: no READ is sent);
- ``read + load``: ``cold file`` minus ``open+release, warm``;
- ``readdir entry``: a fresh server, ``os.scandir`` + ``stat`` of each directory's entries
  (READDIRPLUS: the entries come with their attributes, no LOOKUP), per entry.

``--base SRC`` adds artfsd run from another checkout's sources (started in ``SRC``, with
``SRC/daemon`` on ``PYTHONPATH``, so both packages come from there; e.g. made with
``git archive REV artfs daemon | tar -x -C SRC``): before and after a change in the same
rounds. ``--profile FILE`` then runs one more artfsd under cProfile over
lookup and cold file and writes its stats there (``python -m pstats FILE``). ``--scaling``
only times a cold read of the large files and of the small files (two reader threads) with
artfsd on one core and on two (``taskset``). ``--in-process`` only times the handlers alone
(a ``Vfs`` called directly: no kernel, no pyfuse3), with lineage recording on and off.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from artfs.store import Store
from artfs.vfs import ROOT_INODE, Vfs
from bench.common import drop_caches, timed
from bench.dataset import make_mixed
from bench.mount import REPO, Files, _open_close, _parallel_small, read_all

STEPS = ("lookup", "cold file", "open+release, warm", "read + load", "readdir entry")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads, dead ones included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _server(
    command: list[str], mountpoint: Path, env: dict[str, str] | None = None, cwd: Path = REPO
) -> Iterator[subprocess.Popen[bytes]]:
    """A FUSE server in the foreground, serving once it printed its ready line; unmounted
    after, whatever happened. ``python -m`` imports from ``cwd`` first."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().decode().strip().lower() != "ready":
            raise RuntimeError(f"{command[:4]} did not mount {mountpoint}")
        yield proc
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass(frozen=True)
class Server:
    """One server to measure: its command, where it mounts, the small files' directory
    root under the mount, and its environment (None: ours)."""

    name: str
    command: list[str]
    mountpoint: Path
    root: Path
    env: dict[str, str] | None = None
    cwd: Path = REPO  # where its sources are imported from first


def _artfsd(home: Path, mountpoint: Path, profile: Path | None) -> list[str]:
    command = [sys.executable]
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
    step("cold file", lambda: read_all(paths))
    step("open+release, warm", lambda: _open_close(paths))
    found["read + load"] = found["cold file"] - found["open+release, warm"]
    return found


def _readdir(pid: int, root: Path, small: list[Path]) -> float:
    directories = sorted({(root / p).parent for p in small})
    before = cpu_seconds(pid)
    for directory in directories:
        for entry in os.scandir(directory):
            entry.stat()
    return cpu_seconds(pid) - before


def measure(servers: list[Server], small: list[Path], runs: int) -> dict[str, dict[str, float]]:
    """Microseconds of each server's CPU per file of each step, medians of ``runs`` rounds."""
    samples: dict[str, dict[str, list[float]]] = {
        server.name: {name: [] for name in STEPS} for server in servers
    }
    for _ in range(runs):
        for server in servers:
            got = samples[server.name]
            drop_caches()
            with _server(server.command, server.mountpoint, server.env, server.cwd) as proc:
                for name, seconds in _steps(proc.pid, server.root, small).items():
                    got[name].append(seconds)
            drop_caches()
            with _server(server.command, server.mountpoint, server.env, server.cwd) as proc:
                got["readdir entry"].append(_readdir(proc.pid, server.root, small))
    return {
        server: {name: statistics.median(v) / len(small) * 1e6 for name, v in steps.items()}
        for server, steps in samples.items()
    }


def scaling(server: Server, native: Path, runs: int) -> None:
    """Wall time of a cold read of the large files and of the small files by two readers,
    the server on one core and on two (``taskset``), medians of ``runs`` fresh servers."""
    files = Files.of(native, 0)
    root = server.root
    workloads = {
        "cold read, large files": lambda: read_all([root / p for p in files.large]),
        "cold small files, 2 readers": lambda: _parallel_small([root / p for p in files.small]),
    }
    for cpus in ("0", "0,1"):
        for name, fn in workloads.items():
            times = []
            for _ in range(runs):
                drop_caches()
                with _server(["taskset", "-c", cpus, *server.command], server.mountpoint):
                    times.append(timed(fn))
            print(f"server on cpus {cpus:<4} {name:<30} {statistics.median(times) * 1e3:8.1f} ms")


def in_process(home: Path, small: list[Path]) -> None:
    """The handlers alone, called on a :class:`Vfs` with no kernel and no pyfuse3: CPU time
    (``time.process_time``) per call over the small files of ``images/``, packs in the page
    cache; "again" figures are the best of 5 passes."""
    names = [p.name.encode() for p in small if p.parts[0] == "images"]
    per_file = 1e6 / len(names)
    with Store.open(home) as store:
        for pack in (home / "packs").iterdir():
            pack.read_bytes()
        for lineage in (True, False):
            vfs = Vfs.create(store, lineage=lineage)
            directory = _images(vfs)
            inos = [vfs.lookup(directory, name).ino for name in names]
            pass_ = functools.partial(_open_read_release, vfs, inos)
            first = _cpu(pass_)
            again = min(_cpu(pass_) for _ in range(5))
            lineage_on = f"lineage {'on' if lineage else 'off'}"
            for label, cpu in (
                (f"first open + release, {lineage_on}", first),
                (f"reopen (the kernel kept the pages) + release, {lineage_on}", again),
            ):
                print(f"{label:<60} {cpu * per_file:8.1f} us")
        vfs = Vfs.create(store, lineage=False)
        directory = _images(vfs)
        first = _cpu(lambda: [vfs.lookup(directory, name) for name in names])
        again = min(_cpu(lambda: [vfs.lookup(directory, name) for name in names]) for _ in range(5))
        print(
            f"{'lookup, first in its listing (reading it included)':<60} {first * per_file:8.1f} us"
        )
        print(f"{'lookup, again':<60} {again * per_file:8.1f} us")


def _images(vfs: Vfs) -> int:
    directory = ROOT_INODE
    for part in ("bench", "mixed", "v0", "images"):
        directory = vfs.lookup(directory, part.encode()).ino
    return directory


def _open_read_release(vfs: Vfs, inos: Sequence[int]) -> None:
    """What the daemon's handlers do for one small file read whole, by this process: its
    first open gives the kernel its content (or the read loads it), a reopen reads nothing."""
    content_for_kernel = getattr(vfs, "content_for_kernel", None)  # --base sources may lack it
    for ino in inos:
        reopen = getattr(vfs.node(ino), "in_kernel", False)
        fh = vfs.open(ino, os.O_RDONLY, os.getpid())
        if content_for_kernel is not None:  # asked at every open, as the daemon does
            content_for_kernel(ino, fh, os.O_RDONLY)
        reader = vfs.reader(fh)
        # The read the kernel sends: none for a reopen, none for content it was given.
        if not reopen and getattr(reader, "held", None) is None:  # --base: no held files
            reader.read(0, 1 << 17)
        vfs.release(fh)


def _cpu(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


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
    parser.add_argument("--base", type=Path, help="sources of artfsd to compare with")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--in-process", action="store_true", help="handlers alone, no kernel")
    parser.add_argument("--scaling", action="store_true", help="artfsd on 1 vs 2 cores only")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    native, home, small = prepare(workdir)
    mnt = workdir / "mnt"
    version = mnt / "bench" / "mixed" / "v0"
    artfsd = Server("artfsd", _artfsd(home, mnt, None), mnt, version)
    if args.in_process:
        in_process(home, small)
        return
    if args.scaling:
        scaling(artfsd, native, args.runs)
        return
    servers = [artfsd]
    if args.base is not None:
        src = args.base.resolve()
        env = {**os.environ, "PYTHONPATH": str(src / "daemon")}
        servers.insert(0, Server("before", artfsd.command, mnt, version, env, src))
    null_mnt = workdir / "nul"
    null = [sys.executable, "-m", "bench.ceiling", str(native), str(null_mnt)]
    servers.append(Server("null fs", null, null_mnt, null_mnt))
    found = measure(servers, small, args.runs)
    print(f"{'us of server CPU per file':<24}" + "".join(f"{s.name:>10}" for s in servers))
    for name in STEPS:
        print(f"{name:<24}" + "".join(f"{found[s.name][name]:10.1f}" for s in servers))
    if args.profile is not None:
        drop_caches()
        with _server(_artfsd(home, mnt, args.profile.resolve()), mnt):
            paths = [version / p for p in small]
            for path in paths:
                os.stat(path)
            read_all(paths)
        print(f"profile of lookup and cold file: {args.profile}")


if __name__ == "__main__":
    main()
