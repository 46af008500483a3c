"""Read workloads through the mount, each as a ratio to the same reads of the native copy.

The mixed set is stored in a fresh store and mounted; every workload runs against the mounted
version, the native directory and the null filesystem of ``bench/ceiling.py`` (the native tree
served from memory by the least a pyfuse3 filesystem can do, restarted for cold passes like the
daemon), in rounds that run it once on each of the three in turn: the median of ``ROUNDS``
rounds (see :func:`_measure`). "Cold" means ``sync; echo 3 > /proc/sys/vm/drop_caches`` before
each pass, for every side (it also drops the kernel's cached FUSE inodes and pages, not the
daemon's own chunk cache, which is emptied by remounting: a cold pass on the mount runs on a
fresh daemon). The drop does not evict pages a process has mapped: artfs's daemon holds its
index so from its start (``artfsd --index-mb``), as the null filesystem holds its whole tree in
its memory, while the native side's metadata is dropped; the rows with ``--index-mb 0`` show
the cold walk and ``du -s`` with the index read as used.

The ``null pyfuse3 fs`` rows are the most any pyfuse3 mount reaches here (its time is a floor,
its speed a ceiling), and the ``artfs / null pyfuse3 fs`` rows say how much of the gap to
native is artfs's own. The rows with the index not held and with the whole store in the page
cache are measured on artfs alone after those rounds, against the null filesystem's times
from them.

Besides whole-set, large-file, small-file and random reads, the workloads are what users run:
a DataLoader-shaped epoch (``EPOCH_WORKERS`` processes reading the small files in a random
order, cold and warm), ``ls -lR`` (cold and warm) and ``du -s`` of the version, and random
4 KiB reads through ``mmap`` of a checkpoint. That checkpoint (16 MB) is one the daemon loads
whole at a random reader's first read, as it does every file within one read-ahead window
(32 MiB); the last rows read a file beyond every such bound, a 200 MiB raw ``weights.npy``
stored beside the set, as ``numpy.load(mmap_mode="r")`` of a large array reads it: the same
random reads through ``mmap`` and ``pread``, cold, against the same file natively and on the
null filesystem (see :func:`_large_random`).
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import multiprocessing
import os
import random
import re
import select
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

from artfsd.main import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD

from artfs.names import ArtifactName, Ref
from artfs.store import Store, catalog
from artfs.store.manifest import ChunkRef
from bench.common import drop_caches, timed
from bench.dataset import make_mixed

RUNS = 3
# Rounds of each interleaved workload (see _measure), each running it once on every side: a
# cold pass of the walk or of mmap takes 30-60 ms, and single passes on this shared VM spread
# by +-30%.
ROUNDS = 5
READ_SIZE = 1 << 20
RANDOM_READS = 2000
EPOCH_WORKERS = 2  # DataLoader-shaped epochs: worker processes
MMAP_READS = 20_000  # page-sized reads through a mapping: of the largest checkpoint, the large file
Report = Callable[..., None]
REPO = Path(__file__).resolve().parent.parent  # where ``python -m bench.ceiling`` runs
STOP_SECONDS = 10.0  # a FUSE server's time to exit before SIGTERM, then SIGKILL
READY_SECONDS = 60.0  # the null filesystem reads the whole tree into memory before mounting


class Pass(NamedTuple):
    """One cold pass: its seconds, and the CPU seconds it took (see :func:`_cold_cpu`)."""

    seconds: float
    cpu: float


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


def _epoch(paths: list[Path], seed: int) -> None:
    """One DataLoader-shaped epoch: the files in a random order, dealt round-robin to
    ``EPOCH_WORKERS`` forked worker processes (as a sampler deals indexes to a DataLoader's
    workers), each opening and reading whole files; plain multiprocessing, no torch."""
    order = list(paths)
    random.Random(seed).shuffle(order)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=read_all, args=(order[n::EPOCH_WORKERS],))
        for n in range(EPOCH_WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"an epoch worker failed (exit code {worker.exitcode})")


def _mmap_reads(path: Path, seed: int) -> None:
    """Random 4 KiB reads through a read-only mapping (numpy.load(mmap_mode="r")'s access)."""
    rng = random.Random(seed)
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        pages = len(mapped) // 4096
        for _ in range(MMAP_READS):
            start = rng.randrange(pages) * 4096
            mapped[start : start + 4096]


def _tool(*command: str | Path) -> None:
    """A command-line tool over the tree, its output discarded (``ls -lR``, ``du -s``)."""
    subprocess.run([str(c) for c in command], check=True, stdout=subprocess.DEVNULL)


def _put(home: Path, source: Path, name: str) -> None:
    """``artfs put`` of the directory ``source`` as artifact ``name`` in the store at ``home``."""
    artfs = str(Path(sys.executable).parent / "artfs")
    command = [artfs, "--home", str(home), "-q", "put", str(source), name]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def _open_close(paths: list[Path]) -> None:
    for path in paths:
        os.close(os.open(path, os.O_RDONLY))


def _unmount(mountpoint: Path) -> None:
    """``fusermount3 -u``, and lazily (``-z``) if the mount is still busy."""
    done = subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
    if done.returncode != 0:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)


@contextmanager
def _mounted(home: Path, mountpoint: Path) -> Iterator[None]:
    mountpoint.mkdir(exist_ok=True)
    artfs = str(Path(sys.executable).parent / "artfs")
    subprocess.run([artfs, "--home", str(home), "-q", "mount", str(mountpoint)], check=True)
    try:
        yield
    finally:
        _unmount(mountpoint)
        time.sleep(0.2)  # let the daemon exit before the next mount


@contextmanager
def _ceiling_mounted(source: Path, mountpoint: Path, log: Path) -> Iterator[None]:
    """The null filesystem of ``bench/ceiling.py`` serving ``source`` at ``mountpoint``.

    Whatever happens, it is unmounted and its process ended; its stderr goes to ``log``, whose
    end is in the error if it does not come up."""
    mountpoint.mkdir(exist_ok=True)
    # Absolute, as the mount table names it (see _server_processes).
    command = [
        sys.executable,
        "-m",
        "bench.ceiling",
        str(source.absolute()),
        str(mountpoint.absolute()),
    ]
    with open(log, "ab") as stderr:
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert proc.stdout is not None
        started, _, _ = select.select([proc.stdout], [], [], READY_SECONDS)
        if not started or proc.stdout.readline().strip() != "ready":
            raise RuntimeError(
                f"bench.ceiling did not mount {mountpoint}:\n{log.read_text()[-2000:]}"
            )
        yield
    finally:
        _unmount(mountpoint)
        _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Wait for a FUSE server to exit after its unmount; SIGTERM, then SIGKILL, if it does not."""
    try:
        proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


class Remounter:
    """A mount made afresh on each call (a cold server); mounted on entry, and the last one is
    unmounted on exit whatever happened."""

    def __init__(self, mount: Callable[[], AbstractContextManager[None]]) -> None:
        self._mount = mount
        self._current = ExitStack()
        self.mounted = False

    def __call__(self) -> None:
        self.unmount()
        self._current.enter_context(self._mount())
        self.mounted = True

    def ensure(self) -> None:
        """Mounted, afresh if it was not."""
        if not self.mounted:
            self()

    def unmount(self) -> None:
        try:
            self._current.close()
        finally:
            self.mounted = False

    def __enter__(self) -> Remounter:
        self()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unmount()


class Side:
    """One side of a comparison: the native tree, or a mount (remounted for cold)."""

    def __init__(self, name: str, root: Path, remount: Callable[[], object] | None) -> None:
        self.name, self.root, self._remount = name, root, remount

    @property
    def is_mount(self) -> bool:
        """Whether this side is a mount (remounted for each cold pass)."""
        return self._remount is not None

    def unmount(self) -> None:
        """A mount side unmounted (its next cold pass mounts it afresh)."""
        if isinstance(self._remount, Remounter):
            self._remount.unmount()

    def cold(
        self,
        fn: Callable[[], object],
        runs: int = RUNS,
        prepare: Callable[[], object] | None = None,
    ) -> float:
        """Median time of ``fn`` on a fresh mount after dropping the caches (and then running
        ``prepare``, untimed, if given)."""
        times = []
        for _ in range(runs):
            if self._remount:
                self._remount()
            drop_caches()
            if prepare is not None:
                prepare()
            times.append(timed(fn))
        return statistics.median(times)

    def warm(self, fn: Callable[[], object]) -> float:
        fn()
        return statistics.median(timed(fn) for _ in range(RUNS))


@dataclass(frozen=True)
class Files:
    """The mixed set's files, relative to its root, in the groups the workloads read (or the
    large file of :func:`_large_random` alone, as its ``checkpoint``)."""

    everything: list[Path]
    large: list[Path]
    small: list[Path]
    checkpoint: Path
    size: int  # bytes of the whole set
    large_size: int

    @classmethod
    def of(cls, root: Path, size: int) -> Files:
        everything = [p.relative_to(root) for p in list_files(root)]
        large = [r for r in everything if r.parts[0] in ("checkpoints", "tables")]
        small = [r for r in everything if r.parts[0] in ("images", "labels")]
        large_size = sum((root / p).stat().st_size for p in large)
        checkpoint = Path("checkpoints/model-0.f32")
        return cls(everything, large, small, checkpoint, size, large_size)


Times = dict[str, float]  # workload -> seconds, a median
# An untimed pause before each warm pass of the interleaved workloads (see _measure): longer
# than the daemon's flush period of recorded opens (USAGE_FLUSH_SECONDS, 0.5 s).
SETTLE_SECONDS = 0.6


@dataclass(frozen=True)
class Workload:
    """One workload: its name in :data:`Times`, whether a run is cold (a fresh mount and the
    caches dropped before it) or warm (after one untimed run), and what it does on a side."""

    name: str
    cold: bool
    run: Callable[[Side, Files], object]


def _on(side: Side, paths: list[Path]) -> list[Path]:
    return [side.root / p for p in paths]


WORKLOADS = (
    Workload("walk", True, lambda side, files: _walk(side.root)),
    Workload("cold_all", True, lambda side, files: read_all(_on(side, files.everything))),
    Workload("cold_large", True, lambda side, files: read_all(_on(side, files.large))),
    Workload("warm_all", False, lambda side, files: read_all(_on(side, files.everything))),
    Workload("warm_large", False, lambda side, files: read_all(_on(side, files.large))),
    Workload("small", True, lambda side, files: _parallel_small(_on(side, files.small))),
    Workload("random", True, lambda side, files: _random_preads(side.root / files.checkpoint, 1)),
    Workload("open", False, lambda side, files: _open_close(_on(side, files.small))),
    Workload("epoch_cold", True, lambda side, files: _epoch(_on(side, files.small), 7)),
    Workload("epoch_warm", False, lambda side, files: _epoch(_on(side, files.small), 7)),
    Workload("ls_cold", True, lambda side, files: _tool("ls", "-lR", side.root)),
    Workload("ls_warm", False, lambda side, files: _tool("ls", "-lR", side.root)),
    Workload("du_cold", True, lambda side, files: _tool("du", "-s", side.root)),
    Workload("mmap", True, lambda side, files: _mmap_reads(side.root / files.checkpoint, 2)),
)


def _measure(
    sides: list[Side],
    files: Files,
    mounts: dict[str, Remounter],
    workloads: Sequence[Workload] = WORKLOADS,
    cpu: dict[str, dict[str, list[Pass]]] | None = None,
) -> dict[str, Times]:
    """Every workload (of ``workloads``) on every side, interleaved: each workload runs
    ``ROUNDS`` rounds, and a round runs it once on each side in turn (a warm workload runs once
    untimed on each side first); per side, the median of its rounds. ``mounts``: the
    remounters of the sides that are mounts, by side name. Given ``cpu``, each cold pass on a
    mount is also accounted (:func:`_cold_cpu`) into ``cpu[side][workload]``: the reader's CPU
    is this thread's, so only workloads that read in it (``mmap``, ``random``) are whole.

    The sides used to be measured one after the other, each in a block of several minutes, and
    a ratio between two sides then compared two states of this shared machine: the null
    filesystem's own rows against native moved by up to 1.4x between two runs of the bench,
    and a row of artfs against it measured 0.69 in one run where the two, interleaved on fresh
    mounts, gave 0.82 (docs/perf.md, "Fifteenth pass"). Interleaved, a drift of the host moves
    every side alike.

    No pass pays for another side's work. A cold pass runs with only its own side mounted:
    dropping the caches evicts the inodes every FUSE mount holds, and the kernel's ``FORGET``s
    of them (thousands, which artfs's daemon handles in Python) would land in the pass timed
    next. A warm pass, with every mount kept, starts ``SETTLE_SECONDS`` after the last one
    (untimed), once artfs has flushed the opens it recorded (every 0.5 s, an LMDB commit)."""
    times: dict[str, Times] = {side.name: {} for side in sides}
    for workload in workloads:
        runs: dict[str, list[float]] = {side.name: [] for side in sides}
        if not workload.cold:
            for mount in mounts.values():
                mount.ensure()
            for side in sides:
                workload.run(side, files)
        for _ in range(ROUNDS):
            for side in sides:
                work = partial(workload.run, side, files)
                if workload.cold:
                    for name, mount in mounts.items():
                        if name != side.name:
                            mount.unmount()
                    if cpu is not None and side.is_mount:
                        done = _cold_cpu(side, work)
                        cpu.setdefault(side.name, {}).setdefault(workload.name, []).append(done)
                        runs[side.name].append(done.seconds)
                    else:
                        runs[side.name].append(side.cold(work, runs=1))
                else:
                    time.sleep(SETTLE_SECONDS)
                    runs[side.name].append(timed(work))
        for side in sides:
            times[side.name][workload.name] = statistics.median(runs[side.name])
    return times


def _read_in(paths: list[Path]) -> Callable[[], None]:
    """Read ``paths`` whole into the page cache (what a pass runs after the caches are dropped
    to take their reads off the disk out of it)."""

    def read_in() -> None:
        for path in paths:
            with open(path, "rb") as file:
                while file.read(1 << 22):
                    pass

    return read_in


def _index_not_held(home: Path, mountpoint: Path) -> Times:
    """The cold walk and ``du -s`` again, on daemons that leave the index on the disk until
    it is used (``--index-mb 0``), as every daemon did before issue 17's sixteenth pass: its
    first look at the index after the caches are dropped waits for the disk. The bench's own
    daemons hold the index in memory from their start, which a drop of the clean caches does
    not evict, as the null filesystem holds its tree (docs/perf.md, "Sixteenth pass")."""
    with Remounter(lambda: _daemon(home, mountpoint, "--index-mb", "0")) as remount:
        side = Side("artfs, index not held", mountpoint / "bench" / "mixed" / "v0", remount)
        return {
            "walk": side.cold(lambda: _walk(side.root)),
            "du_cold": side.cold(lambda: _tool("du", "-s", side.root)),
        }


def _store_cached(side: Side, home: Path, files: Files) -> Times:
    """The cold large files and ``mmap`` again, with the store's index and packs read into
    the page cache once the caches are dropped: artfs must read a file's bytes off the disk
    (and the bench's disk reads ~1.1 GB/s, the store floor's rate), the null filesystem
    serves them from its memory; this is what is left without those reads (docs/perf.md,
    "Thirteenth pass"). Each pass still runs on a fresh daemon."""
    read_store = _read_in([home / "index" / "data.mdb", *sorted((home / "packs").iterdir())])
    large = [side.root / p for p in files.large]
    checkpoint = side.root / files.checkpoint
    return {
        "cold_large": side.cold(lambda: read_all(large), prepare=read_store),
        "mmap": side.cold(lambda: _mmap_reads(checkpoint, 2), prepare=read_store),
    }


@dataclass(frozen=True)
class Comparison:
    """One workload as a ratio to the same workload on a reference side (native, or the null
    filesystem): a speed ratio (reference time / time, higher is faster), or for the walk a
    time ratio (time / reference time, lower is faster)."""

    workload: str
    label: str
    target: str  # for the artfs mount vs native
    by_time: bool = False

    def ratio(self, times: Times, reference: Times) -> float:
        if self.by_time:
            return times[self.workload] / reference[self.workload]
        return reference[self.workload] / times[self.workload]

    def versus(self, reference: str) -> str:
        return f"{self.label}, {'time ' if self.by_time else ''}vs {reference}"


COMPARISONS = (
    Comparison("walk", "metadata walk (find+stat)", "<= 2.0", by_time=True),
    Comparison("cold_all", "cold read, whole set", ">= 0.45"),
    Comparison("cold_large", "cold read, large files", ">= 1.0"),
    Comparison("warm_large", "warm re-read, large files", ">= 0.9"),
    Comparison("warm_all", "warm re-read, whole set", ">= 0.3"),
    Comparison("small", "small files, 2 readers", ">= 0.35"),
    Comparison("random", "cold 4 KiB random preads", ">= 0.3"),
    Comparison("epoch_cold", f"DataLoader-shaped epoch, {EPOCH_WORKERS} procs, cold", ""),
    Comparison("epoch_warm", f"DataLoader-shaped epoch, {EPOCH_WORKERS} procs, warm", ""),
    Comparison("ls_cold", "ls -lR, cold", "", by_time=True),
    Comparison("ls_warm", "ls -lR, warm", "", by_time=True),
    Comparison("du_cold", "du -s, cold", "", by_time=True),
    Comparison("mmap", "cold 4 KiB random reads through mmap", ""),
)
NULL_FS = "null pyfuse3 fs"
SPEED_TARGET = ">= 0.77"  # issue 17's 1.3x, as a speed ratio
# Rows of the interleaved set whose target is on whichever bounds them, the store's floor or
# the null filesystem: set where both are measured (_decode_floor; the 200 MiB file's rows in
# _large_random are set the same way).
BOUNDED = frozenset({"cold_large"})


def _bound_targets(floor: float, null: float) -> tuple[str, str]:
    """The targets of a row against the store's floor and against the null filesystem, from
    their seconds, decided in each run. The issue holds a read to the null filesystem, or
    "instead" to the floor where verifying and decoding every byte bound it; we read that as
    the slower of the two. The mount does both jobs, so its time is at least the slower one's:
    the target always goes on the row with the higher ratio, and 1.3x the faster one can ask
    the mount to be faster than what bounds it, where the two differ by more than 1.3x
    (docs/perf.md, "Thirty-third pass")."""
    return (SPEED_TARGET, "") if floor >= null else ("", SPEED_TARGET)


def _rates(files: Files) -> dict[str, tuple[float, str]]:
    """Workloads also reported as a rate: (amount, unit per second)."""
    mib = 1 << 20
    return {
        "cold_all": (files.size / mib, "MiB/s"),
        "cold_large": (files.large_size / mib, "MiB/s"),
        "small": (len(files.small), "files/s"),
        "epoch_cold": (len(files.small), "files/s"),
        "epoch_warm": (len(files.small), "files/s"),
    }


def _report_side(
    prefix: str, times: Times, native: Times, files: Files, report: Report, targets: bool
) -> None:
    """A side's rows against native, each followed by its rate where it has one."""
    rates = _rates(files)
    for comparison in COMPARISONS:
        target = comparison.target if targets else ""
        name = f"{prefix}: {comparison.versus('native')}"
        report(name, comparison.ratio(times, native), "x", target)
        if comparison.workload in rates:
            amount, unit = rates[comparison.workload]
            report(f"{prefix}: {comparison.label}", amount / times[comparison.workload], unit)
    report(f"{prefix}: open+close per file", times["open"] / len(files.small) * 1e6, "us")


def _report_artfs_vs_null(
    artfs: Times, not_held: Times, store_cached: Times, null: Times, report: Report
) -> None:
    """How far artfs is from the null filesystem, in the direction of its rows against native
    (the ``BOUNDED`` rows without a target: :func:`_decode_floor` puts theirs on the row
    against the floor or on its own row against the null filesystem); then the cold walk
    and ``du`` with the index not held in memory (:func:`_index_not_held`), and the cold large
    files and ``mmap`` with the whole store in the page cache (:func:`_store_cached`)."""
    prefix = f"artfs / {NULL_FS}"
    for comparison in COMPARISONS:
        kind, target = ("time", "<= 1.3") if comparison.by_time else ("speed", SPEED_TARGET)
        if comparison.workload in BOUNDED:
            target = ""  # see _decode_floor
        name = f"{prefix}: {comparison.label}, {kind}"
        report(name, comparison.ratio(artfs, null), "x", target)
    report(f"{prefix}: open+close per file, time", artfs["open"] / null["open"], "x")
    for comparison in COMPARISONS:
        if comparison.workload in not_held:
            name = f"{prefix}: {comparison.label}, the index not held (--index-mb 0), time"
            report(name, comparison.ratio(not_held, null), "x")
    for comparison in COMPARISONS:
        if comparison.workload in store_cached:
            name = f"{prefix}: {comparison.label}, the store in the page cache, speed"
            report(name, comparison.ratio(store_cached, null), "x")


def run(workdir: Path, report: Report) -> None:
    if os.environ.get("ARTFS_RUN_ID"):
        # The daemon reads it from /proc (this process's and its ancestors' environments as
        # they started), so every recording round would be one run, recorded from round two.
        sys.exit("bench: ARTFS_RUN_ID is set: unset it and run the bench again")
    native = workdir / "native"
    files = Files.of(native, make_mixed(native))
    home, mnt, null_mnt = workdir / "home", workdir / "mnt", workdir / "mnt-null"
    _put(home, native, "bench/mixed")
    log = workdir / "ceiling.log"
    with (
        Remounter(lambda: _mounted(home, mnt)) as remount,
        Remounter(lambda: _ceiling_mounted(native, null_mnt, log)) as null_remount,
    ):
        side = Side("artfs", mnt / "bench" / "mixed" / "v0", remount)
        null = Side("null", null_mnt, null_remount)
        mounts = {"artfs": remount, "null": null_remount}
        times = _measure([Side("native", native, None), side, null], files, mounts)
        # The artfs-only rows below, one mount at a time: no other mount's FORGETs.
        null_remount.unmount()
        remount.unmount()
        not_held = _index_not_held(home, workdir / "mnt-not-held")
        store_cached = _store_cached(side, home, files)
    _report_side("mount", times["artfs"], times["native"], files, report, targets=True)
    report("native: open+close per file", times["native"]["open"] / len(files.small) * 1e6, "us")
    _report_side(NULL_FS, times["null"], times["native"], files, report, targets=False)
    _report_artfs_vs_null(times["artfs"], not_held, store_cached, times["null"], report)
    # The null filesystem is mounted by its first pass, after the floor's pairs (see there).
    null_remount = Remounter(lambda: _ceiling_mounted(native, null_mnt, log))
    with Remounter(lambda: _mounted(home, mnt)) as remount, ExitStack() as later:
        later.callback(null_remount.unmount)
        mount = Side("mount", mnt / "bench" / "mixed" / "v0", remount)
        _decode_floor(home, files, mount, Side("null", null_mnt, null_remount), report)
        _folio_rows(files.checkpoint, {NULL_FS: null_mnt, "native": native}, report)
    _recording_cost(native, home, workdir / "mnt-lineage", report)
    _large_random(workdir, report)


# --- the per-byte floor of cold reads -----------------------------------------------------------

FLOOR_THREADS = 2  # both cores of the bench machine
# Pairs of a cold mount pass and a floor pass (and the floor in a new process after each): the
# row is the target's, and three pairs let the floor alone move by 1.3x between two runs of the
# same code (sixteenth pass). As many cold passes on the null filesystem follow them.
FLOOR_PAIRS = 7


def _keep_freed_memory() -> None:
    """Have this process's allocator keep what the floor frees between its passes (chunk
    buffers from the heap, the heap not trimmed), so that every pass after the first writes
    into memory already touched, as the loader writes into its arena. Left to glibc's
    defaults, that depended on what the process had done before: run alone, each floor pass
    took 4,600-6,800 page faults; inside the bench, after its other rows, 1-3 (docs/perf.md,
    "Twenty-third pass")."""
    libc = ctypes.CDLL(None)
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(M_TRIM_THRESHOLD, 128 << 20)


def _decode_floor(home: Path, files: Files, mount: Side, null: Side, report: Report) -> None:
    """What reading, decompressing and verifying the large files' chunks costs without FUSE:
    ``Store.read_chunk`` (an index get, a pack read, zstd, BLAKE3) over every chunk in
    ``FLOOR_THREADS`` threads, after dropping the page cache. A cold read of large files
    through the mount cannot beat this; the row after it says how close the mount comes.

    Each pass of the floor follows a cold read of the large files through a fresh ``mount``
    (medians of ``FLOOR_PAIRS`` pairs): this machine's load moves both alike, where a floor
    measured minutes after the mount's own row compared two different machines (0.26 and 0.46
    of it in two runs of the same code).

    The floor runs twice per pass: in this long-lived process, whose allocator hands the
    chunks memory that earlier passes already touched (:func:`_keep_freed_memory`), and in a
    new process, whose chunk memory is all fresh, as the fresh daemon's of a cold pass is (a
    first touch of a page costs ~0.4 ms per MiB here, more than reading it from the page
    cache: see docs/perf.md, "Seventh pass"). The target stays on the first.

    After the rounds, ``FLOOR_PAIRS`` cold reads of the same files through the ``null``
    filesystem, which holds them in memory: what passing the bytes through FUSE costs with
    nothing to decode. The row's target is against the slower of the two references
    (:func:`_bound_targets`): the floor in all but one of the thirty-third pass's runs (the
    null filesystem 13-30% faster), the null filesystem in that one (4% slower).

    The CPU of each pass (every thread of the FUSE server and its children, and the reader; of
    the floor, its threads) says what the cores allow: a pass cannot take less than its CPU
    over the machine's cores, so the mount reaches at most ``floor seconds x cores / mount
    CPU`` of the floor's speed (:func:`_cores_rows`; docs/perf.md, "Thirty-second pass")."""
    _keep_freed_memory()
    paths = [p.as_posix() for p in files.large]
    refs = _large_chunks(home, paths)
    mount_passes, floor_passes, fresh_times = [], [], []
    with Store.open(home) as store, ThreadPoolExecutor(FLOOR_THREADS) as pool:
        for _ in range(FLOOR_PAIRS):
            mount_passes.append(_cold_cpu(mount, lambda: read_all(_on(mount, files.large))))
            floor_passes.append(_floor_timed(store, pool, refs))
            fresh_times.append(_fresh_floor(home, paths))
    # Apart from the pairs: the null filesystem reads the whole tree as it starts, and a floor
    # pass after that read ran at 1,283 MiB/s where one right after the packs were read ran at
    # 1,516 (medians of 6; likely, below the dropped page cache, the VM's disk keeps what was
    # read last). Each pass of a pair comes right after the packs were read (docs/perf.md,
    # "Thirty-second pass").
    mount.unmount()  # a cold pass runs with only its own side mounted (see _measure)
    null_passes = [
        _cold_cpu(null, lambda: read_all(_on(null, files.large))) for _ in range(FLOOR_PAIRS)
    ]
    mount_time, floor = _median_pass(mount_passes).seconds, _median_pass(floor_passes)
    null_time = _median_pass(null_passes).seconds
    fresh = statistics.median(fresh_times)
    mib = files.large_size / (1 << 20)
    name = f"store read+zstd+BLAKE3 floor, large files, {FLOOR_THREADS} threads"
    report(name, mib / floor.seconds, "MiB/s")
    report("mount: cold read, large files, beside that floor", mib / mount_time, "MiB/s")
    report(f"{NULL_FS}: cold read, large files, after the pairs", mib / null_time, "MiB/s")
    floor_target, null_target = _bound_targets(floor.seconds, null_time)
    floor_row = "mount: cold read, large files / that floor, speed"
    report(floor_row, floor.seconds / mount_time, "x", floor_target)
    null_row = f"mount: cold read, large files / the {NULL_FS} after the pairs, speed"
    report(null_row, null_time / mount_time, "x", null_target)
    report(f"{name}, a fresh process each pass", mib / fresh, "MiB/s")
    fresh_row = "mount: cold read, large files / the fresh-process floor, speed"
    report(fresh_row, fresh / mount_time, "x")
    _floor_cpu_rows("large files", floor, report)
    _cores_rows("cold read, large files", floor, mount_passes, null_passes, report)


# /proc/kpageflags: the page is the first, or a later, page of a folio of more than one page.
KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL = 1 << 15, 1 << 16
PAGE_PRESENT = 1 << 63  # /proc/self/pagemap: the page is mapped, and its frame is in the bits
PFN_MASK = (1 << 55) - 1  # below: zero unless this process has CAP_SYS_ADMIN


def _folio_rows(path: Path, roots: dict[str, Path], report: Report) -> None:
    """The share of ``path``'s pages that the kernel put into its page cache as parts of
    large folios (more than 4 KiB in one piece) when it was read cold, under each of
    ``roots``. A FUSE file's pages are each inserted, charged and listed on their own where
    the kernel keeps them in 4 KiB folios, about half of what a cold read through any FUSE
    mount costs its reader here (docs/perf.md, "Thirty-eighth pass"); a local filesystem's
    large folios show what the same kernel does without FUSE."""
    drop_caches()
    for name, root in roots.items():
        share = _large_folio_share(root / path)
        if share is None:
            print(f"  ({name}: no page frames to read here: its folio row is left out)")
        else:
            report(f"{name}: {path.name} cold, pages in large folios", share * 100, "%")


def _large_folio_share(path: Path) -> float | None:
    """Read ``path`` whole with ``read``, map it, and return the share of its pages that
    belong to a folio of more than one page; None where that cannot be told (a file of less
    than a page, or frames this process may not read, see :func:`_share_in_large_folios`)."""
    with open(path, "rb") as file:
        while file.read(READ_SIZE):
            pass
        pages = os.fstat(file.fileno()).st_size // mmap.PAGESIZE
        if not pages:
            return None
        # Private and writable only so that ctypes gives its address; never written, so
        # every page mapped is the page cache's own.
        mapping = mmap.mmap(
            file.fileno(),
            pages * mmap.PAGESIZE,
            flags=mmap.MAP_PRIVATE,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
        )
    with mapping:
        view = (ctypes.c_char * len(mapping)).from_buffer(mapping)
        try:
            for page in range(pages):  # fault every page in
                view[page * mmap.PAGESIZE]
            # Read while the pages are mapped: their frames cannot change meanwhile.
            return _share_in_large_folios(ctypes.addressof(view) // mmap.PAGESIZE, pages)
        finally:
            del view  # the mapping closes only with no view of it left


def _share_in_large_folios(first: int, pages: int) -> float | None:
    """Of this process's ``pages`` mapped pages from virtual page ``first``, the share whose
    frame is part of a large folio (``/proc/self/pagemap``, then ``/proc/kpageflags``); None
    if the frames cannot be read: a kernel without those files, or a process without
    CAP_SYS_ADMIN, whose frame numbers read as zero."""
    try:
        with (
            open("/proc/self/pagemap", "rb", buffering=0) as pagemap,
            open("/proc/kpageflags", "rb", buffering=0) as kpageflags,
        ):
            raw = os.pread(pagemap.fileno(), pages * 8, first * 8)
            entries = struct.unpack(f"{len(raw) // 8}Q", raw)
            frames = [entry & PFN_MASK for entry in entries if entry & PAGE_PRESENT]
            if not frames or not all(frames):
                return None
            large = 0
            for frame in frames:
                (flags,) = struct.unpack("Q", os.pread(kpageflags.fileno(), 8, frame * 8))
                large += bool(flags & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL))
    except OSError:
        return None
    return large / len(frames)


def _floor_cpu_rows(name: str, floor: Pass, report: Report) -> None:
    """The CPU a pass of the floor of ``name`` (its seconds and CPU seconds: ``floor``), and
    the cores it kept busy."""
    report(f"store floor, {name}: CPU a pass", floor.cpu * 1e3, "ms")
    report(f"store floor, {name}: cores busy", floor.cpu / floor.seconds, "cores")


def _cores_rows(row: str, floor: Pass, mount: list[Pass], null: list[Pass], report: Report) -> None:
    """What the cores allow ``row`` against its floor (``floor``: the median seconds and CPU
    seconds of its passes): the CPU a pass of the null filesystem and of the mount (medians of
    their passes, :func:`_cold_cpu`); the mount's minus the floor's and the null filesystem's
    together (a difference of three separate totals, to compare with them, not a share of
    them); the most the mount's CPU allows against the floor, spread over every core all the
    time; and the cores the mount kept busy."""
    mount_pass, null_cpu = _median_pass(mount), _median_pass(null).cpu
    cores = len(os.sched_getaffinity(0))
    report(f"{NULL_FS}: {row}: CPU a pass, server and reader", null_cpu * 1e3, "ms")
    report(f"mount: {row}: CPU a pass, daemon, loader, reader", mount_pass.cpu * 1e3, "ms")
    less = (mount_pass.cpu - floor.cpu - null_cpu) * 1e3
    report(f"mount: {row}: CPU a pass minus the floor's and the {NULL_FS}'s", less, "ms")
    most = floor.seconds * cores / mount_pass.cpu
    report(f"mount: {row} / that floor, the most its CPU allows on {cores} cores", most, "x")
    report(f"mount: {row}: cores busy", mount_pass.cpu / mount_pass.seconds, "cores")


def _median_pass(passes: list[Pass]) -> Pass:
    """The median seconds and the median CPU seconds of ``passes``."""
    return Pass(
        statistics.median(p.seconds for p in passes), statistics.median(p.cpu for p in passes)
    )


def _cold_cpu(side: Side, fn: Callable[[], object]) -> Pass:
    """A cold pass of ``fn`` (reading in this thread) on the mount ``side`` (:meth:`Side.cold`,
    one pass), and the CPU it took: of every thread of the side's FUSE server and its children
    (artfs's chunk loader), and of this thread, the reader. A server thread that ends during the
    pass is not counted; none does in these passes."""
    servers: set[int] = set()
    before: dict[str, int] = {}
    reader = 0.0

    def start() -> None:  # mounted afresh, the caches dropped; untimed, and no FUSE request
        nonlocal reader
        servers.update(_server_processes(_mountpoint_of(side.root)))
        if not servers:
            raise RuntimeError(f"no process serves {side.root}")
        before.update(_thread_cpu(servers))
        reader = time.thread_time()

    seconds = side.cold(fn, runs=1, prepare=start)
    reader = time.thread_time() - reader
    after = _thread_cpu(servers)
    return Pass(seconds, sum(ns - before.get(t, 0) for t, ns in after.items()) / 1e9 + reader)


def _mountpoint_of(path: Path) -> Path:
    """The mount point ``path`` lies under (the longest in ``/proc/self/mountinfo``, its
    octal escapes undone): found without a request to a FUSE server."""
    target, best = path.absolute(), Path("/")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        field = line.split(" ")[4]
        point = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field))
        if target.is_relative_to(point) and len(point.parts) > len(best.parts):
            best = point
    return best


def _server_processes(mountpoint: Path) -> set[int]:
    """The FUSE server of ``mountpoint`` (the process whose command line names it, as both
    artfs's daemon and the null filesystem are given it; the newest, if the server of an
    earlier mount there is still exiting) and its children."""
    started, parents = {}, {}  # pid -> start time (ticks after boot), pid -> parent
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # it exited meanwhile
            continue
        parents[int(entry)] = int(fields[1])
        if os.fsencode(mountpoint) in argv:
            started[int(entry)] = int(fields[19])
    if not started:
        return set()
    server = max(started, key=started.__getitem__)
    return {server} | {pid for pid, parent in parents.items() if parent == server}


def _thread_cpu(pids: set[int]) -> dict[str, int]:
    """CPU time so far of every thread of ``pids`` (``pid/tid`` -> nanoseconds, from
    ``schedstat``, where ``stat`` counts in ticks of 10 ms, a sixth of a pass); a process or
    thread gone meanwhile is left out."""
    used = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    used[f"{pid}/{task.name}"] = int((task / "schedstat").read_text().split()[0])
    return used


def _fresh_floor(home: Path, paths: list[str]) -> float:
    """One pass of the floor in a new process (see :func:`_floor_pass`): its seconds."""
    command = [sys.executable, "-m", "bench.mount", "floor-pass", str(home), *paths]
    done = subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.PIPE, text=True)
    return float(done.stdout.split()[-1])  # after what drop_caches may have printed


def _floor_pass(home: Path, paths: list[str]) -> float:
    """The seconds of :func:`_floor_timed` over the chunks of ``paths``, in ``FLOOR_THREADS``
    threads."""
    refs = _large_chunks(home, paths)
    with Store.open(home) as store, ThreadPoolExecutor(FLOOR_THREADS) as pool:
        return _floor_timed(store, pool, refs).seconds


def _floor_timed(store: Store, pool: ThreadPoolExecutor, refs: list[ChunkRef]) -> Pass:
    """The page cache dropped, then the seconds ``Store.read_chunk`` of every one of ``refs``
    took in ``pool``, and the CPU seconds of this process's threads meanwhile."""
    drop_caches()
    cpu = time.process_time()
    seconds = timed(lambda: list(pool.map(store.read_chunk, refs)))
    return Pass(seconds, time.process_time() - cpu)


def _large_chunks(home: Path, paths: list[str], name: str = "mixed") -> list[ChunkRef]:
    """The chunks of the files at ``paths`` of ``bench/<name>`` v0 (by default the mixed
    set), in that order."""
    with Store.open(home) as store, store.index.read() as txn:
        record = catalog.resolve(txn, Ref(ArtifactName("bench", name), "v0"))
        refs: list[ChunkRef] = []
        for path in paths:
            entry = catalog.lookup(txn, record, path)
            assert entry is not None
            refs += entry.chunks
    return refs


# --- lineage recording on vs off ----------------------------------------------------------------

# Seven rounds put the same code at 1.03-1.18 in five runs (sixteenth pass), where 14
# interleaved rounds outside the bench gave 0.99 and 1.01 (docs/perf.md); twelve, as ratios of
# the two daemons' medians, 0.955-1.052 over the runs since the thirty-fourth pass.
RECORDING_ROUNDS = 16  # even: each daemon goes first in half of them
# Warm reads timed per daemon, the best one kept: with one, 11 rounds put the same code at
# 0.905-1.088 in three runs of the nineteenth pass (open + close per file: 0.96-1.03).
RECORDING_REPEATS = 3


@contextmanager
def _daemon(home: Path, mountpoint: Path, *options: str) -> Iterator[None]:
    """artfsd in the foreground with ``options`` (``artfs mount`` passes none through)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
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
    """Read speed with usage recording on vs off, through a daemon with and without
    ``--no-lineage``, interleaved (each first in every other round), over
    ``RECORDING_ROUNDS``; the target is on the median of the rounds' ratios (each round's two
    daemons ran back to back, so what drifts across rounds, the machine's other load and its
    memory, falls on both halves of a ratio alike, as in every interleaved set of
    docs/perf.md), and the ratio of the two daemons' medians is shown beside it:

    - a cold epoch over the small files right after the mount: each daemon makes the bench's
      process group a new implicit run, so every open is its run's first of that file, which
      records the most (the file in the run's batch; the flushes that fall inside the epoch
      write them, the last one lands after it);
    - warm reads, each daemon's best of ``RECORDING_REPEATS``: the page cache serves the
      bytes and every open is a reopen, so the per-open cost is all there is."""
    rel = [p.relative_to(native) for p in list_files(native)]
    small = [r for r in rel if r.parts[0] in ("images", "labels")]
    times: dict[str, dict[str, list[float]]] = {"on": {}, "off": {}}
    modes: list[tuple[str, tuple[str, ...]]] = [("on", ()), ("off", ("--no-lineage",))]
    for round_ in range(RECORDING_ROUNDS):
        # Each daemon goes first in every other round: what a daemon's start or exit leaves
        # the next one (the machine settling, memory given back) falls on both alike.
        for mode, options in modes if round_ % 2 == 0 else modes[::-1]:
            # A fresh directory per mount: a mountpoint left behind must stay empty, and an
            # SDK elsewhere on the machine may write into it during an unmount.
            where = mountpoint / f"{round_}-{mode}"
            version = where / "bench" / "mixed" / "v0"
            with _daemon(home, where, *options):
                paths = [version / p for p in rel]
                small_paths = [version / p for p in small]
                got = times[mode]
                drop_caches()
                got.setdefault("epoch", []).append(
                    timed(lambda p=small_paths, r=round_: _epoch(p, r))  # type: ignore[misc]
                )
                read_all(paths)  # warm the page cache and the daemon
                got.setdefault("all", []).append(
                    min(timed(lambda p=paths: read_all(p)) for _ in range(RECORDING_REPEATS))  # type: ignore[misc]
                )
                got.setdefault("open", []).append(
                    min(
                        timed(lambda p=small_paths: _open_close(p))  # type: ignore[misc]
                        for _ in range(RECORDING_REPEATS)
                    )
                )
    on = {k: statistics.median(v) for k, v in times["on"].items()}
    off = {k: statistics.median(v) for k, v in times["off"].items()}
    paired = {
        k: statistics.median(a / b for a, b in zip(times["on"][k], times["off"][k], strict=True))
        for k in on
    }
    for key, what in (("epoch", "cold epoch, a run's first opens"), ("all", "warm whole-set read")):
        report(f"mount: {what}, recording on vs off (time)", paired[key], "x", "<= 1.05")
        report(
            f"mount: {what}, recording on vs off (time, ratio of medians)",
            on[key] / off[key],
            "x",
        )
    report("mount: open+close per file, recording on", on["open"] / len(small) * 1e6, "us")
    report("mount: open+close per file, recording off", off["open"] / len(small) * 1e6, "us")


# --- random reads of a large file ----------------------------------------------------------------

# Above what the daemon loads whole at a random reader's first or second read
# (RANDOM_READAHEAD_BYTES of artfs.fs.reader, 64 MiB, and at most a quarter of its chunk cache),
# at the size the issue names: a 200 MiB array read through numpy.load(mmap_mode="r").
LARGE_RANDOM_BYTES = 200 << 20
LARGE_RANDOM_SEED = 17
LARGE_PIECE_BYTES = 4 << 20  # written a piece at a time: no 200 MiB buffer in the bench
LARGE_FILE = Path("weights.npy")  # raw bytes, no .npy header: only the reads are numpy's
LARGE_WORKLOADS = tuple(w for w in WORKLOADS if w.name in ("mmap", "random"))
_LARGE = f"{LARGE_RANDOM_BYTES >> 20} MiB file"
LARGE_COMPARISONS = (
    Comparison("mmap", f"cold 4 KiB random reads through mmap, {_LARGE}", ""),
    Comparison("random", f"cold 4 KiB random preads, {_LARGE}", ""),
)


def _write_random(path: Path, size: int, seed: int) -> None:
    """``size`` bytes of ``random.Random(seed)`` at ``path``, ``LARGE_PIECE_BYTES`` at a time;
    nothing if a file of that size is already there (from an earlier run in this directory)."""
    if path.is_file() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(path, "wb") as file:
        for start in range(0, size, LARGE_PIECE_BYTES):
            file.write(rng.randbytes(min(LARGE_PIECE_BYTES, size - start)))


def _large_random(workdir: Path, report: Report) -> None:
    """The ``mmap`` and ``random`` workloads again, on a file above the bounds within which the
    daemon loads a file read at random whole at its first or second read: natively, on the
    mount and on the null filesystem, cold.

    The rows above read the mixed set's 16 MB checkpoint, which the daemon plans whole at a
    random reader's first read (a file within one read-ahead window): its page faults and
    preads find their chunks loaded or on the way. A model's weights or an array read through
    ``numpy.load(mmap_mode="r")`` is often larger; such a file is planned whole only once its
    reader's seeks have spread over it or three in a row have landed in new chunks
    (``CHUNKS_PER_SEEK_TO_PLAN_WHOLE`` and ``NEW_CHUNK_SEEKS_TO_PLAN_WHOLE`` of
    artfs.fs.reader), its first reads each waiting for their own chunks. This one is
    ``LARGE_RANDOM_BYTES`` of pseudo-random bytes (as incompressible as trained float weights
    nearly are), written beside the mixed set rather than in it, so that the set's rows keep
    their figures, and stored as ``bench/weights`` in the section's store: the same mount
    serves its ``v0``.

    Both workloads are :data:`WORKLOADS`' own, measured as the set's are (:func:`_measure`:
    interleaved rounds, each cold pass on a fresh mount with only its own side mounted). The
    null filesystem holds the whole file in its memory, so its rows are what these reads reach
    with nothing to load; each side's time is reported too, in ms, to be quoted. These reads
    come to every 64 KiB block of the file, so the daemon reads and verifies all of it: the
    store's floor for that (``Store.read_chunk`` of its chunks in ``FLOOR_THREADS`` threads,
    cold, medians of ``ROUNDS`` passes after the rounds) is the last rows' reference, as it is
    for the cold read of the large files (:func:`_decode_floor`). Each row's target is against
    the slower of the floor and the null filesystem (:func:`_bound_targets`): on this machine
    the null filesystem in every run so far, at 1.6-2.5 times the floor's time."""
    native = workdir / "native-large"
    _write_random(native / LARGE_FILE, LARGE_RANDOM_BYTES, LARGE_RANDOM_SEED)
    home, mnt, null_mnt = workdir / "home", workdir / "mnt", workdir / "mnt-null-large"
    _put(home, native, "bench/weights")
    size = LARGE_RANDOM_BYTES
    files = Files([LARGE_FILE], [LARGE_FILE], [], LARGE_FILE, size, size)
    log = workdir / "ceiling.log"
    with (
        Remounter(lambda: _mounted(home, mnt)) as remount,
        Remounter(lambda: _ceiling_mounted(native, null_mnt, log)) as null_remount,
    ):
        sides = [
            Side("native", native, None),
            Side("artfs", mnt / "bench" / "weights" / "v0", remount),
            Side("null", null_mnt, null_remount),
        ]
        mounts = {"artfs": remount, "null": null_remount}
        cpu: dict[str, dict[str, list[Pass]]] = {}
        times = _measure(sides, files, mounts, LARGE_WORKLOADS, cpu)
    for comparison in LARGE_COMPARISONS:
        versus = comparison.versus("native")
        mount_vs_native = comparison.ratio(times["artfs"], times["native"])
        report(f"mount: {versus}", mount_vs_native, "x", comparison.target)
        report(f"{NULL_FS}: {versus}", comparison.ratio(times["null"], times["native"]), "x")
        for prefix, side in (("native", "native"), ("mount", "artfs"), (NULL_FS, "null")):
            report(f"{prefix}: {comparison.label}", times[side][comparison.workload] * 1e3, "ms")
    # Reads at random that come to every block of the file have the daemon read and verify
    # all of it: what that costs alone, with both cores, is their floor too (see _decode_floor).
    refs = _large_chunks(home, [LARGE_FILE.as_posix()], name="weights")
    with Store.open(home) as store, ThreadPoolExecutor(FLOOR_THREADS) as pool:
        floor = _median_pass([_floor_timed(store, pool, refs) for _ in range(ROUNDS)])
    report(f"store read+BLAKE3 floor, {_LARGE}, {FLOOR_THREADS} threads", floor.seconds * 1e3, "ms")
    _floor_cpu_rows(_LARGE, floor, report)
    for comparison in LARGE_COMPARISONS:
        seconds = times["artfs"][comparison.workload]
        null_seconds = times["null"][comparison.workload]
        floor_target, null_target = _bound_targets(floor.seconds, null_seconds)
        name = f"artfs / {NULL_FS}: {comparison.label}, speed"
        report(name, comparison.ratio(times["artfs"], times["null"]), "x", null_target)
        name = f"mount: {comparison.label} / that floor, speed"
        report(name, floor.seconds / seconds, "x", floor_target)
        artfs, null = cpu["artfs"][comparison.workload], cpu["null"][comparison.workload]
        _cores_rows(comparison.label, floor, artfs, null, report)


if __name__ == "__main__":
    # python -m bench.mount floor-pass HOME PATH...: one fresh-process pass of the floor.
    if len(sys.argv) < 4 or sys.argv[1] != "floor-pass":
        sys.exit("usage: python -m bench.mount floor-pass HOME PATH...")
    print(_floor_pass(Path(sys.argv[2]), sys.argv[3:]))
