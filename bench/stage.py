"""Incremental staging: ``artfs commit`` of three changes (one file modified, one added, one
deleted) on a staging based on a version of 100,000 files of 1-4 KiB in 400 directories.

The changes are written into the upper directory as the mount writes them (a full copy of the
modified file, a whiteout for the deleted one). Figures: the commit's wall time (the CLI,
start-up included), against ``artfs put`` of the same three changes in the same run (which
lists and stats every file); the part of it spent walking the new tree for the version
digest; and how much the index grows per such commit.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from artfs.names import ArtifactName, Ref
from artfs.store import Store, catalog, staging, trees
from artfs.store.hashing import TreeId, version_digest
from artfs.store.index import Table
from bench.common import artfs
from bench.trees import FILES, PER_DIR, index_state, make_files

RUNS = 5
Report = Callable[..., None]
ART = ArtifactName("bench", "stage")


def _three_changes(upper: Path, data: Path, rng: random.Random, run: int) -> None:
    """Modify, add and delete one file each, in the upper directory and in ``data`` alike."""
    shard = f"shard-{rng.randrange(FILES // PER_DIR):04d}"
    modified = data / shard / f"sample-{run:05d}.bin"
    content = modified.read_bytes() + b"!"
    modified.write_bytes(content)
    (upper / shard).mkdir(exist_ok=True)
    (upper / shard / modified.name).write_bytes(content)
    added = f"added-{run}.bin"
    (data / shard / added).write_bytes(rng.randbytes(2048))
    (upper / shard / added).write_bytes((data / shard / added).read_bytes())
    gone = data / shard / f"sample-{100 + run:05d}.bin"
    gone.unlink()
    staging.add_whiteout(upper / shard, gone.name)


def run(workdir: Path, report: Report) -> None:
    rng = random.Random(2)
    data, home = workdir / "data", workdir / "home"
    make_files(data, rng)
    artfs(home, "put", data, str(ART))
    artfs(home, "stage", str(ART), "--from", f"{ART}:v0")
    upper = home / "staging" / ART.project / ART.name
    times, puts, grown, added = [], [], [], []
    for number in range(RUNS):
        _three_changes(upper, data, rng, number)
        _, page_bytes, used = index_state(home)
        started = time.perf_counter()
        artfs(home, "commit", str(ART))
        times.append(time.perf_counter() - started)
        _, now_bytes, now_used = index_state(home)
        added.append(now_bytes - page_bytes)
        grown.append(now_used - used)
        # The same content again by a put: identical, so no new version, but every file is
        # listed and stat'ed (and read, unless unchanged since the last put of data).
        started = time.perf_counter()
        artfs(home, "put", data, str(ART))
        puts.append(time.perf_counter() - started)
    commit, put = statistics.median(times), statistics.median(puts)
    report(f"incremental commit of 3 changes (CLI, {FILES:,} files)", commit, "s", "target <= 1.0")
    report("  artfs put of the same content (identical, no version)", put, "s")
    report("  ratio commit / put", commit / put, "x")
    report(
        "incremental commit: LMDB pages used, growth per version",
        statistics.median(grown) / 1024,
        "KiB",
        "target <= 256",
    )
    report(
        "incremental commit: tree pages added per version", statistics.median(added) / 1024, "KiB"
    )
    _digest_walk(home, report)


def _digest_walk(home: Path, report: Report) -> None:
    """What the version digest costs: every leaf page of the new tree read once."""
    with Store.open(home) as store, store.index.read() as txn:
        record = store.resolve(Ref(ART))
        root = catalog.root_tree(record)
        assert root is not None

        def stored(page: TreeId) -> bytes:
            data = txn.get(Table.TREES, page)
            assert data is not None
            return data

        started = time.perf_counter()
        listed = [(path, digest) for path, digest, _ in trees.file_digests(stored, root)]
        walked = time.perf_counter()
        digest = version_digest(listed)
        done = time.perf_counter()
        report("  of which: version digest, walk of the new tree's pages", walked - started, "s")
        report("  of which: version digest, sort and hash", done - walked, "s")
        assert digest.hex() == record.digest and len(listed) == record.files
