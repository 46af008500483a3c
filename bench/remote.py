"""Reading from a remote: a mount of a clone, chunks fetched lazily from an object store.

A real S3 server (SeaweedFS, ``weed mini`` on 127.0.0.1, as the tests use) holds the mixed set
pushed from a local store. Each run clones the remote into a fresh store (index only, empty
chunk cache), mounts it and reads every file cold; the same read through a mount of the local
store in the same run is the baseline. Then the clone is remounted (a fresh daemon, the page
cache dropped) and read again: the second pass should be served by the local chunk cache.

Reported: throughput of the cold remote read vs the local one, bytes fetched from the remote
vs bytes read (read amplification; below 1 when compression saves more than the coalesced
ranges waste), GETs per 100 MiB read, the cache hit rate on the second pass and its speed.
The fetch and cache counts are the ones the daemon logs when it unmounts.

Then versions as trees on the remote (issue 16): 100,000 files of 1-4 KiB in directories of
250 (``bench.trees``), pushed, one byte appended to one file, pushed again. Reported: the bytes
the second push uploaded (every new object's size, from the listing of the remote), against
what an artfs from before trees uploaded for it (the same new chunk plus a record listing every
file and chunk location, encoded here by the old record format, which this artfs still reads);
and the time of a clone of the remote into a fresh store plus the first listing of that
version (its top directory and one of its directories, pages fetched on demand).
"""

from __future__ import annotations

import os
import random
import re
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from artfs.objectstore import S3ObjectStore
from artfs.remote.layout import RemoteVersion
from artfs.store import catalog
from artfs.stores import open_store
from bench.common import artfs, drop_caches, timed
from bench.dataset import make_mixed
from bench.mount import list_files, read_all
from bench.trees import make_files
from tests.remote.seaweed import S3Server, running_server

RUNS = 3
Report = Callable[..., None]
_COUNTS = re.compile(
    r"remote reads: (\d+) chunks in (\d+) GETs, (\d+) bytes; cache (\d+) hits, (\d+) misses"
)


@dataclass
class Counts:
    chunks: int
    gets: int
    bytes: int
    hits: int
    misses: int


@contextmanager
def _mounted(home: Path, mountpoint: Path) -> Iterator[Path]:
    mountpoint.mkdir(exist_ok=True)
    artfs(home, "mount", mountpoint)
    try:
        yield mountpoint / "bench" / "mixed" / "v0"
    finally:
        artfs(home, "umount", mountpoint)


def _cold_read(home: Path, mountpoint: Path) -> tuple[float, int]:
    """Seconds and bytes of reading every file of the version right after mounting."""
    with _mounted(home, mountpoint) as root:
        paths = list_files(root)
        drop_caches()
        read = 0

        def read_every_file() -> None:
            nonlocal read
            read = read_all(paths)

        return timed(read_every_file), read


def _last_counts(home: Path) -> Counts:
    """The counts of the daemon that unmounted last (from its log)."""
    logs = sorted((home / "logs").glob("artfsd-*.log"), key=lambda p: p.stat().st_mtime)
    found = _COUNTS.findall(logs[-1].read_text()) if logs else []
    if not found:
        raise RuntimeError(f"no remote read counts in the daemon log under {home / 'logs'}")
    return Counts(*(int(n) for n in found[-1]))


def _objects(server: S3Server, prefix: str) -> dict[str, int]:
    store: S3ObjectStore = server.store(prefix)
    return {info.key: info.size for info in store.list("")}


def _old_record_bytes(home: Path, ref: str) -> int:
    """The record an artfs from before trees wrote for ``ref``: every file and chunk location
    (the chunk locations are those of the pushing store's remote)."""
    with open_store(home) as store:
        record = store.resolve(ref)
        entries = store.entries(record)
        where = store.remote_locations({c.chunk_id for e in entries for c in e.chunks})
    return len(RemoteVersion(record, entries, where).encode())


def _first_listing(home: Path, ref: str) -> int:
    """List the top directory of ``ref`` and its first directory, as ``ls`` through a mount
    asks the store; the entries seen."""
    with open_store(home) as store:
        record = store.resolve(ref)
        with store.index.read() as txn:
            top = list(catalog.list_dir(txn, record))
            inner = list(catalog.list_dir(txn, record, top[0].path))
    return len(top) + len(inner)


def run_trees(workdir: Path, report: Report, server: S3Server) -> None:
    """Bytes a one-file change uploads at 100,000 files; clone + first listing of it."""
    data, home = workdir / "trees-data", workdir / "trees-home"
    make_files(data, random.Random(16))
    url = server.url("bench-trees")
    artfs(home, "put", data, "bench/trees")
    artfs(home, "remote", "add", "origin", url, "--endpoint", server.endpoint)
    artfs(home, "push", "bench/trees:v0")
    before = _objects(server, "bench-trees")
    changed = sorted((data / "shard-0007").iterdir())[3]
    with changed.open("ab") as out:
        out.write(b"\x01")
    artfs(home, "put", data, "bench/trees")
    artfs(home, "push", "bench/trees:v1")
    after = _objects(server, "bench-trees")
    uploaded = sum(size for key, size in after.items() if before.get(key) != size)
    new_chunk = changed.stat().st_size  # an upper bound: stored raw when it does not compress
    report(
        "remote: bytes uploaded for a one-file change at 100,000 files",
        uploaded / 1024,
        "KiB",
        f"target <= 256 KiB + the file's chunks ({new_chunk} B)",
    )
    old = _old_record_bytes(home, "bench/trees:v1") + new_chunk
    report("remote: the same before trees (a record of every file)", old / 1024, "KiB")
    times = []
    for n in range(RUNS):
        clone = workdir / f"trees-clone-{n}"

        def clone_and_list(home: Path = clone) -> None:
            artfs(home, "clone", url, "--endpoint", server.endpoint)
            assert _first_listing(home, "bench/trees:v1") == 400 + 250

        times.append(timed(clone_and_list))
    report(
        "remote: clone + first listing of a 100,000-file version (2 versions)",
        statistics.median(times),
        "s",
    )


def run(workdir: Path, report: Report) -> None:
    native = workdir / "native"
    make_mixed(native)
    mnt = workdir / "mnt"
    local = workdir / "local"
    with running_server(workdir / "s3") as server:
        os.environ.update(server.env)
        url = server.url("bench")
        artfs(local, "put", native, "bench/mixed")
        artfs(local, "remote", "add", "origin", url, "--endpoint", server.endpoint)
        artfs(local, "push", "--all")
        run_trees(workdir, report, server)

        local_times, remote_times, second_times = [], [], []
        first: list[Counts] = []
        second: list[Counts] = []
        read_bytes = 0
        for n in range(RUNS):
            seconds, read_bytes = _cold_read(local, mnt)
            local_times.append(seconds)
            clone = workdir / f"clone-{n}"
            artfs(clone, "clone", url, "--endpoint", server.endpoint)
            seconds, _ = _cold_read(clone, mnt)
            remote_times.append(seconds)
            first.append(_last_counts(clone))
            seconds, _ = _cold_read(clone, mnt)
            second_times.append(seconds)
            second.append(_last_counts(clone))
            # Not deleted here: deleting its cache's files would slow the next cold read's
            # cache writes on this VM's ext4 (see bench/run.py); run.py deletes it later.

    local_s = statistics.median(local_times)
    mib = read_bytes / (1 << 20)
    remote_s = statistics.median(remote_times)
    report("remote: cold read of the whole set, MiB/s", mib / remote_s, "MiB/s")
    report("remote: local store cold read, same run, MiB/s", mib / local_s, "MiB/s")
    report(
        "remote: cold read throughput vs the local store",
        local_s / remote_s,
        "x",
    )
    report(
        "remote: bytes fetched / bytes read (first pass)",
        statistics.median(c.bytes for c in first) / read_bytes,
        "ratio",
    )
    report(
        "remote: GETs per 100 MiB read (first pass)",
        statistics.median(c.gets for c in first) / mib * 100,
        "GETs",
    )
    report(
        "remote: cache hit rate on the second pass",
        statistics.median(c.hits / max(1, c.hits + c.misses) for c in second),
        "ratio",
    )
    report(
        "remote: bytes fetched on the second pass",
        statistics.median(c.bytes for c in second),
        "bytes",
    )
    report(
        "remote: second pass (from the cache) throughput vs the local store",
        local_s / statistics.median(second_times),
        "x",
    )
