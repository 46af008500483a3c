"""What a version costs in the index: 100,000 files of 1-4 KiB in 400 directories, then
one-file changes (one byte appended), each committed by ``artfs put``.

Figures per one-file version: the tree pages it added (bytes of keys and values), the growth
of the LMDB pages every table occupies, and of the index file on disk. Before trees (store
format 1) each version cost ~143 bytes per file, changed or not: 14.3 MB here.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from artfs.names import Ref
from artfs.store import Store, catalog, trees
from artfs.store.index import Table
from artfs.store.statcache import RACY_NS
from bench.common import artfs, du

FILES = 100_000
PER_DIR = 250
EDITS = 3
Report = Callable[..., None]


def make_files(root: Path, rng: random.Random) -> int:
    total = 0
    for d in range(FILES // PER_DIR):
        folder = root / f"shard-{d:04d}"
        folder.mkdir(parents=True)
        for i in range(PER_DIR):
            data = rng.randbytes(rng.randint(1 << 10, 4 << 10))
            (folder / f"sample-{i:05d}.bin").write_bytes(data)
            total += len(data)
    return total


def index_state(home: Path) -> tuple[set[bytes], int, int]:
    """(tree page ids, their key + value bytes, LMDB bytes used by every table)."""
    with Store.open(home) as store, store.index.read() as txn:
        pages = {key: len(key) + len(value) for key, value in txn.scan(Table.TREES)}
        used = sum(txn.used_bytes(table) for table in Table)
    return set(pages), sum(pages.values()), used


def run(workdir: Path, report: Report) -> None:
    rng = random.Random(16)
    data, home = workdir / "data", workdir / "home"
    raw = make_files(data, rng)
    report("dataset: files of 1-4 KiB in dirs of 250", FILES, "files", f"{raw / 1e6:.0f} MB")
    time.sleep(RACY_NS / 1e9 + 0.1)  # else the first put records none of them (bench/reput.py)
    started = time.perf_counter()
    artfs(home, "put", data, "bench/trees")
    report(f"put of {FILES:,} files", time.perf_counter() - started, "s")
    pages, page_bytes, used = index_state(home)
    index_du = du(home / "index")
    report("v0: tree pages", page_bytes / 1e6, "MB", f"{len(pages)} pages")
    report("v0: tree bytes per file", page_bytes / FILES, "B", "format 1: ~143")
    added, grown, disk, times = [], [], [], []
    for edit in range(EDITS):
        target = data / f"shard-{rng.randrange(FILES // PER_DIR):04d}" / f"sample-{edit:05d}.bin"
        with open(target, "ab") as f:
            f.write(b"!")
        started = time.perf_counter()
        artfs(home, "put", data, "bench/trees")
        times.append(time.perf_counter() - started)
        now_pages, now_bytes, now_used = index_state(home)
        added.append(now_bytes - page_bytes)
        grown.append(now_used - used)
        disk.append(du(home / "index") - index_du)
        pages, page_bytes, used, index_du = now_pages, now_bytes, now_used, du(home / "index")
    report("one-file put: tree pages added per version", statistics.median(added) / 1024, "KiB")
    report(
        "one-file put: LMDB pages used, growth per version",
        statistics.median(grown) / 1024,
        "KiB",
        "target <= 256",
    )
    report(
        "one-file put: index file growth per version (du)", statistics.median(disk) / 1024, "KiB"
    )
    report("one-file put time (a put with a parent)", statistics.median(times), "s")
    _reads(home, report)


def _reads(home: Path, report: Report) -> None:
    with Store.open(home) as store:
        old = store.resolve(Ref.parse("bench/trees:v0"))
        new = store.resolve(Ref.parse("bench/trees:latest"))
        with store.index.read() as txn:
            started = time.perf_counter()
            walked = sum(1 for _ in catalog.walk(txn, new))
            report(
                "walk of the version (warm page cache)",
                time.perf_counter() - started,
                "s",
                f"{walked} entries",
            )
            started = time.perf_counter()
            listed = sum(1 for _ in catalog.list_dir(txn, new, "shard-0007"))
            report(
                "list_dir of a 250-entry directory (warm)",
                (time.perf_counter() - started) * 1e3,
                "ms",
                f"{listed}",
            )
            old_root, new_root = catalog.root_tree(old), catalog.root_tree(new)
            assert old_root is not None and new_root is not None
            started = time.perf_counter()
            changed = list(trees.diff(catalog.pages(txn), old_root, new_root))
            report(
                "tree diff of v0 and the last version",
                (time.perf_counter() - started) * 1e3,
                "ms",
                f"{len(changed)} paths",
            )
