"""Store formats: a store written by artfs before trees (format 1, the fixture) is upgraded in
place on first open, all at once or not at all; a store of a newer format is refused."""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import lmdb
import pytest

from artfs import views
from artfs.errors import StoreError
from artfs.names import ArtifactName, Ref
from artfs.store import Store, backfill, catalog, upgrade
from artfs.store import runs as runs_table
from artfs.store.gc import collect
from artfs.store.hashing import ChunkId
from artfs.store.index import LEGACY_FILES, Index, Table
from artfs.store.packs import pack_name
from artfs.store.verify import verify
from artfs.ui.reads import open_readonly
from tests.helpers import ARTFS
from tests.store.fixtures.make_format1_store import entry_row

FIXTURE = Path(__file__).parent / "fixtures" / "store-format1.tar.gz"
# The tables artfs opened before format 2, in its order (artfs/store/index.py at 8bb88ae).
FORMAT1_TABLES = [
    b"chunks",
    b"projects",
    b"artifacts",
    b"versions",
    b"files",
    b"aliases",
    b"alias-times",
    b"digests",
    b"runs",
    b"usage",
    b"meta",
    b"remote-chunks",
]


def unpack(where: Path) -> tuple[Path, dict[str, Any]]:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(where, filter="data")
    home = where / "home"
    return home, json.loads((home / "expected.json").read_text())


def entries_json(store: Store, ref: str) -> list[list[Any]]:
    return [entry_row(e) for e in store.entries(store.resolve(ref))]


def check_upgraded(home: Path, expected: dict[str, Any]) -> None:
    """The store at ``home`` opens and holds exactly what the old artfs wrote."""
    with Store.open(home) as store:
        for ref, want in expected.items():
            record = store.resolve(ref)
            assert record.tree is not None
            assert record.digest == want["digest"]
            assert record.aliases == want["aliases"]
            assert entries_json(store, ref) == want["entries"]
        assert verify(store, [store.resolve(ref) for ref in expected]) == []
        with store.index.read() as txn:  # the tombstone of demo/data:v2 stays, without a tree
            tomb = catalog.get_version(txn, Ref.parse("demo/data:v2").artifact, 2)
            assert tomb is not None
            assert (tomb.state, tomb.tree) == (catalog.DELETED, None)
            assert upgrade.stored_format(txn) == upgrade.FORMAT


def test_a_format1_store_is_upgraded_on_first_open(tmp_path: Path) -> None:
    home, expected = unpack(tmp_path)
    check_upgraded(home, expected)
    with Store.open(home) as store:
        data = b"".join(store.iter_file(store.files(store.resolve("demo/data:v0"))[-1]))
        assert data.startswith(b"0,")  # train/part-0.csv, three chunks from the old packs
        records = [store.resolve(ref) for ref in expected]
        assert verify(store, records) == []
        collect(store)  # gc marks through the new trees and keeps everything
        assert verify(store, records) == []
        assert entries_json(store, "demo/wide:v0") == expected["demo/wide:v0"]["entries"]
        with store.index.write() as txn:
            assert list(txn.legacy_scan(LEGACY_FILES)) == []


def test_an_artfs_older_than_format_2_refuses_the_upgraded_store(tmp_path: Path) -> None:
    home, expected = unpack(tmp_path)
    check_upgraded(home, expected)
    # What an older artfs does first: open each of its tables (create=True), as its
    # Index.open did; the files table is now a plain record, so that fails.
    env = lmdb.open(str(home / "index"), max_dbs=len(FORMAT1_TABLES) + 2, map_size=1 << 30)
    try:
        with pytest.raises(lmdb.IncompatibleError):
            for name in FORMAT1_TABLES:
                env.open_db(name, create=True)
    finally:
        env.close()
    check_upgraded(home, expected)  # and nothing changed


def test_a_store_of_a_newer_format_is_refused_with_one_line(tmp_path: Path, home: Path) -> None:
    newer = str(upgrade.FORMAT + 1)
    with Store.open(home) as store, store.index.write() as txn:
        txn.put(Table.META, b"format", newer.encode())
    with pytest.raises(StoreError, match=f"has format {newer}, newer than this artfs reads"):
        Store.open(home)
    done = subprocess.run([str(ARTFS), "--home", str(home), "ls"], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert f"format {newer}" in done.stderr and "upgrade artfs" in done.stderr
    index = Index.open(home / "index")
    try:
        with index.read() as txn:
            assert txn.get(Table.META, b"format") == newer.encode()  # untouched
    finally:
        index.close()


def test_a_read_only_opener_does_not_upgrade(tmp_path: Path) -> None:
    home, expected = unpack(tmp_path)
    with pytest.raises(
        StoreError,
        match=f"has format 1, older than this artfs's {upgrade.FORMAT}: run 'artfs upgrade'",
    ):
        open_readonly(home)
    check_upgraded(home, expected)
    open_readonly(home).close()


def test_artfs_upgrade_upgrades_once_and_then_says_so(tmp_path: Path) -> None:
    home, expected = unpack(tmp_path)
    first = subprocess.run(
        [str(ARTFS), "--home", str(home), "upgrade"], capture_output=True, text=True, check=True
    )
    assert first.stdout.strip() == f"upgraded the store at {home} from format 1 to {upgrade.FORMAT}"
    again = subprocess.run(
        [str(ARTFS), "--home", str(home), "upgrade"], capture_output=True, text=True, check=True
    )
    assert (
        again.stdout.strip() == f"the store at {home} has format {upgrade.FORMAT}, this artfs's own"
    )
    check_upgraded(home, expected)


def test_artfs_upgrade_of_no_store_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "nothing-here"
    done = subprocess.run(
        [str(ARTFS), "--home", str(home), "upgrade"], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"artfs: error: no artfs store at {home}: give --home (or ARTFS_HOME) of one, "
        "or store something first (artfs put PATH PROJECT/NAME)"
    ]
    assert not home.exists()


def test_a_new_store_starts_at_the_current_format(store: Store) -> None:
    with store.index.read() as txn:
        assert upgrade.stored_format(txn) == upgrade.FORMAT


_OPEN = """
import sys, time
from artfs.store import Store
print("go", flush=True)
start = time.perf_counter()
Store.open(sys.argv[1]).close()
print(time.perf_counter() - start, flush=True)
"""


def _open_in_child(home: Path, kill_after: float | None) -> float | None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _OPEN, str(home)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    with proc.stdout:
        assert proc.stdout.readline() == "go\n"
        if kill_after is None:
            took = float(proc.stdout.readline())
            assert proc.wait() == 0
            return took
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return None


def _state(home: Path, files: int) -> str:
    """'old' (format 1, all ``files`` records there) or 'new' (the current format, trees
    only)."""
    index = Index.open(home / "index")
    try:
        with index.read() as txn:
            found = upgrade.stored_format(txn)
            legacy = sum(1 for _ in txn.legacy_scan(LEGACY_FILES))
            records = [catalog.VersionRecord.decode(v) for _, v in txn.scan(Table.VERSIONS)]
            pages = txn.count(Table.TREES)
    finally:
        index.close()
    named = sum(r.tree is not None for r in records)
    if (found, legacy, named, pages) == (1, files, 0, 0):
        return "old"
    assert (found, legacy, named) == (upgrade.FORMAT, 0, 4) and pages > 0, (found, legacy, named)
    return "new"


def test_a_kill_during_the_upgrade_leaves_the_old_or_the_new_format(tmp_path: Path) -> None:
    home, expected = unpack(tmp_path / "calibrate")
    took = _open_in_child(home, None)
    assert took is not None
    files = sum(len(v["entries"]) for v in expected.values())
    rng = random.Random(16)
    seen = {"old": 0, "new": 0}
    # Kill instants are drawn up to ``window``, which grows after a kill that came too early
    # (old format left) and shrinks after one that came too late (new): on a loaded machine
    # the draws gather around the instant the upgrade commits, whatever it takes there.
    window = took * 1.2
    for round_ in range(24):
        home, _ = unpack(tmp_path / f"round-{round_}")
        _open_in_child(home, rng.uniform(0, window))
        state = _state(home, files)
        seen[state] += 1
        window *= 1.3 if state == "old" else 0.8
        check_upgraded(home, expected)  # either way, the next open gives the whole store
    print(f"upgrade took {took * 1000:.1f} ms in the child; kills left {seen}")
    assert seen["old"] and seen["new"]


def test_a_format2_store_keeps_what_each_run_opened(home: Path, tmp_path: Path) -> None:
    """Format 2 kept a usage key per file a run opened; the upgrade makes them values of the
    (version, run) key, so a file opened before it does not count again after, and the
    usage table keeps its edges."""
    from artfs.lineage import Lineage, UsageEvent

    record, runs = _opens(home, tmp_path, 2)
    opened = _as_format2(home)
    assert len(opened) == 4
    index = Index.open(home / "index", readonly=True)
    try:
        with index.read() as txn:  # the keys as format 2 wrote them
            key = b"f" + b"proj/data\0" + (0).to_bytes(4, "big") + runs[0].id.encode()
            assert txn.get(Table.USAGE, key + (1).to_bytes(8, "big")) == b""
    finally:
        index.close()

    with Store.open(home) as store:
        lineage = Lineage(store)
        with store.index.read() as txn:
            assert upgrade.stored_format(txn) == upgrade.FORMAT
            assert list(txn.scan(Table.USAGE, b"f")) == []
            assert sorted(txn.scan(Table.OPENED)) == sorted(opened)
        again = [
            UsageEvent(runs[0].id, record.key, time.time(), file=n.to_bytes(8, "big"))
            for n in (1, 2, 3)
        ]
        lineage.record_usage(again, publish=False)
        files = {run.id: usage.files for run, usage in lineage.consumers(record)}
    assert files == {runs[0].id: 4, runs[1].id: 2}


def _as_format2(home: Path, *, format_: int = 2) -> list[tuple[bytes, bytes]]:
    """Put the store at ``home`` back to format 2: each file a run opened a usage key of its
    own (``b"f"`` + version key + run id + file), as that format kept them, and no ``opened``
    table. With ``format_=3`` only the keys (what a format-2 daemon writes into a store
    upgraded under it)."""
    with Store.open(home) as store, store.index.write() as txn:
        opened = list(txn.scan(Table.OPENED))
        for key, _ in opened:
            txn.delete(Table.OPENED, key)
        for key, file in opened:
            txn.put(Table.USAGE, b"f" + key + file, b"")
        txn.put(Table.META, b"format", str(format_).encode())
    if format_ == 2:
        env = lmdb.open(str(home / "index"), max_dbs=len(Table) + 2, map_size=1 << 30)
        try:
            with env.begin(write=True) as txn:
                txn.drop(env.open_db(Table.OPENED.value, txn=txn, dupsort=True), delete=True)
        finally:
            env.close()
    return opened


def _opens(home: Path, tmp_path: Path, files: int) -> tuple[Any, list[Any]]:
    """A version of proj/data with two runs that each opened ``files`` of its files: the
    version's record and the runs."""
    from artfs.lineage import Lineage, UsageEvent

    with Store.open(home) as store:
        source = tmp_path / "src"
        source.mkdir()
        (source / "a.txt").write_bytes(b"a")
        record = store.put(source, Ref.parse("proj/data").artifact).record
        lineage = Lineage(store)
        runs = [lineage.create_run("proj", "train") for _ in range(2)]
        events = [
            UsageEvent(run.id, record.key, time.time(), file=n.to_bytes(8, "big"))
            for run in runs
            for n in range(files)
        ]
        lineage.record_usage(events, publish=False)
    return record, runs


def test_an_older_daemons_opened_files_in_an_upgraded_store_are_moved(
    home: Path, tmp_path: Path
) -> None:
    """A format-2 daemon still mounted when its store was upgraded keeps writing a key per
    file opened; the next open for writing moves them, so they count once."""
    from artfs.lineage import Lineage, UsageEvent

    record, runs = _opens(home, tmp_path, 2)
    opened = _as_format2(home, format_=3)
    with Store.open(home) as store:
        with store.index.read() as txn:
            assert list(txn.keys(Table.USAGE, b"f")) == []
            assert sorted(txn.scan(Table.OPENED)) == sorted(opened)
        lineage = Lineage(store)
        event = UsageEvent(runs[0].id, record.key, time.time(), file=(1).to_bytes(8, "big"))
        lineage.record_usage([event], publish=False)
        assert {run.id: usage.files for run, usage in lineage.consumers(record)} == {
            run.id: 2 for run in runs
        }


def test_the_move_of_opened_files_goes_in_batches(home: Path, tmp_path: Path) -> None:
    """Batches smaller than the keys there, a (version, run) split across two of them: every
    file lands once, under its own version and run."""
    from artfs.lineage import Lineage, UsageEvent

    with Store.open(home) as store:
        records = []
        for n in range(2):
            source = tmp_path / f"src{n}"
            source.mkdir()
            (source / "a.txt").write_bytes(b"%d" % n)
            records.append(store.put(source, Ref.parse("proj/data").artifact).record)
        lineage = Lineage(store)
        runs = [lineage.create_run("proj", "train") for _ in range(2)]
        events = [
            UsageEvent(run.id, record.key, time.time(), file=n.to_bytes(8, "big"))
            for record in records
            for run in runs
            for n in range(3)
        ]
        lineage.record_usage(events, publish=False)
    opened = _as_format2(home)
    assert len(opened) == 12
    index = Index.open(home / "index")
    try:
        with index.write() as txn:
            assert runs_table.move_opened_files(txn, batch=5) == 12
            assert list(txn.keys(Table.USAGE, b"f")) == []
            assert sorted(txn.scan(Table.OPENED)) == sorted(opened)
    finally:
        index.close()


def test_a_read_only_opener_reads_a_format2_store_as_it_is(home: Path, tmp_path: Path) -> None:
    """Format 3 changed only what a run's opens write: the UI's read-only opener reads a
    format-2 store (its opened files usage keys, no ``opened`` table) without asking for an
    upgrade, and leaves it at format 2."""
    _opens(home, tmp_path, 2)
    assert len(_as_format2(home)) == 4
    reader = open_readonly(home)
    try:
        assert [r.ref for r in reader.versions(Ref.parse("proj/data").artifact)] == ["proj/data:v0"]
    finally:
        reader.close()
    index = Index.open(home / "index", readonly=True)
    try:
        with index.read() as txn:
            assert upgrade.stored_format(txn) == 2
    finally:
        index.close()


_COMPACT_COPY = """
import sys, lmdb
env = lmdb.open(sys.argv[1], max_dbs=64, map_size=1 << 30)
env.copy(sys.argv[2], compact=True)
env.close()
copy = lmdb.open(sys.argv[2], max_dbs=64, map_size=1 << 30, readonly=True)
print(copy.stat()["entries"])
"""


def test_a_store_whose_runs_opened_many_files_can_be_compacted(home: Path, tmp_path: Path) -> None:
    """`mdb_copy -c` (LMDB's compacting copy, which docs/architecture.md points to for giving
    freed pages back) works on the ``opened`` table, holding more than a page of values under
    a key: with MDB_DUPFIXED it crashed LMDB 0.9.36 (a child process, so a crash fails the
    test)."""
    _opens(home, tmp_path, 2_000)
    copy = tmp_path / "copy"
    copy.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _COMPACT_COPY, str(home / "index"), str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    index = Index.open(copy, readonly=True)
    try:
        with index.read() as txn:
            assert sum(1 for _ in txn.scan(Table.OPENED)) == 4_000
    finally:
        index.close()


def put_noise_without_block_digests(
    home: Path, make_tree: Any, tmp_path: Path
) -> tuple[dict[bytes, bytes], int]:
    """A version of random bytes (large raw chunks) and zeros (zstd) put, then its chunks'
    block digests deleted, as an artfs before them left them: the rows the put had written,
    and the raw bytes of their chunks."""
    noise = random.Random(11).randbytes(3 << 20)
    with Store.open(home) as store:
        tree = make_tree(tmp_path / "src", {"noise.bin": noise, "zeros.bin": bytes(2 << 20)})
        store.put(tree, ArtifactName("proj", "weights"))
        with store.index.write() as txn:
            rows = dict(txn.scan(Table.CHUNK_BLOCKS))
            for key in rows:
                txn.delete(Table.CHUNK_BLOCKS, key)
        raw = 0
        for key in rows:
            loc = store.chunk_location(ChunkId(key))
            assert loc is not None
            raw += loc.raw_length
    assert len(rows) >= 3  # chunks of 256 KiB or more, stored raw
    return rows, raw


def block_rows_of(home: Path) -> dict[bytes, bytes]:
    with Store.open(home) as store, store.index.read() as txn:
        return dict(txn.scan(Table.CHUNK_BLOCKS))


def test_artfs_upgrade_gives_large_raw_chunks_their_block_digests(
    home: Path, make_tree: Any, tmp_path: Path, run_cli: Any
) -> None:
    """Chunks stored before artfs wrote block digests get them from `artfs upgrade`, the
    same rows a put writes, once; verify then checks them."""
    rows, raw = put_noise_without_block_digests(home, make_tree, tmp_path)
    current = f"the store at {home} has format {upgrade.FORMAT}, this artfs's own"
    code, out, err = run_cli("upgrade")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        current,
        f"wrote the block digests of {len(rows)} large raw chunks stored without them "
        f"({views.human_size(raw)} read and verified)",
    ]
    assert block_rows_of(home) == rows
    code, out, _ = run_cli("upgrade")
    assert (code, out.splitlines()) == (0, [current])  # nothing left to do
    with Store.open(home) as store:
        assert verify(store, [store.resolve(Ref.parse("proj/weights:v0"))]) == []


def test_a_damaged_chunk_gets_no_block_digests_and_upgrade_says_so(
    home: Path, make_tree: Any, tmp_path: Path, run_cli: Any
) -> None:
    """A chunk whose bytes no longer hash to its id gets no digests to vouch for them: the
    others get theirs, and `artfs upgrade` exits 1 with one line saying what to run."""
    rows, _ = put_noise_without_block_digests(home, make_tree, tmp_path)
    damaged = sorted(rows)[0]
    with Store.open(home) as store:
        loc = store.chunk_location(ChunkId(damaged))
        assert loc is not None
        with open(store.pack_directory / pack_name(loc.pack_id), "r+b") as pack:
            pack.seek(loc.offset + loc.stored_length // 2)
            byte = pack.read(1)
            pack.seek(-1, os.SEEK_CUR)
            pack.write(bytes([byte[0] ^ 0xFF]))
    code, _, err = run_cli("upgrade")
    assert code == 1
    assert err.strip().splitlines() == [
        "artfs: error: 1 chunk could not be read or failed verification and got no block "
        "digests: 'artfs verify' names the files they are in ('artfs gc' removes those no "
        "version uses)"
    ]
    assert block_rows_of(home) == {k: v for k, v in rows.items() if k != damaged}


def test_the_backfill_goes_in_batches_and_writes_no_row_for_a_chunk_gone_meanwhile(
    home: Path, make_tree: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of ``BATCH_BYTES`` (here one chunk each), each read under the commit lock and
    written in its own transaction; a chunk the index dropped between its read and its
    batch's write gets no row."""
    rows, _ = put_noise_without_block_digests(home, make_tree, tmp_path)
    monkeypatch.setattr(backfill, "BATCH_BYTES", 1)
    first = min(rows)  # the chunk table is scanned in key order
    writes: list[int] = []
    with Store.open(home) as store:

        def gone_after_first_read(_: int) -> None:
            # The batch is read under the commit lock: a gc (which takes it exclusively)
            # cannot move or delete its chunks meanwhile.
            with open(home / "store.lock", "rb") as lock, pytest.raises(BlockingIOError):
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with store.index.read() as txn:
                writes.append(sum(1 for _ in txn.scan(Table.CHUNK_BLOCKS)))
            if len(writes) == 1:
                with store.index.write() as txn:
                    txn.delete(Table.CHUNKS, first)

        assert backfill.lacking_bytes(store) > 0
        report = backfill.backfill(store, gone_after_first_read)
    assert (report.chunks, report.unsound) == (len(rows) - 1, [])
    assert writes == [0, 0, *range(1, len(rows) - 1)]  # one row written per batch
    assert block_rows_of(home) == {k: v for k, v in rows.items() if k != first}
