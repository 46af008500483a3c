"""Time to live, garbage collection, verification and corruption: never wrong bytes."""

import random
import time
from pathlib import Path
from typing import Any

import pytest

from artfs.errors import CorruptData, NotFound
from artfs.names import ArtifactName, Ref
from artfs.store import Store
from artfs.store.export import materialize
from artfs.store.gc import collect
from artfs.store.repository import EditRequest
from artfs.store.verify import verify

ART = ArtifactName("proj", "data")


def packs_size(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "packs").iterdir())


def all_records(store: Store) -> list[Any]:
    return [r for p in store.projects() for _, vs in store.artifacts(p) for r in vs]


def read_all(store: Store, record: Any) -> dict[str, bytes]:
    return {e.path: b"".join(store.iter_file(e)) for e in store.files(record)}


def test_ttl_expiry_spares_versions_with_a_custom_alias(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    store.put(make_tree(tmp_path / "a", {"f": "zero"}), ART, ttl_seconds=3600)
    store.put(make_tree(tmp_path / "b", {"f": "one"}), ART, ttl_seconds=3600, aliases=["keep"])
    store.put(make_tree(tmp_path / "c", {"f": "two"}), ART, ttl_seconds=3600)
    store.put(make_tree(tmp_path / "d", {"f": "three"}), ART)
    assert store.expire(now=time.time()) == ([], [])
    deleted, kept = store.expire(now=time.time() + 7200)
    assert deleted == ["proj/data:v0", "proj/data:v2"]
    assert kept == ["proj/data:v1"]
    assert [r.version for r in store.versions(ART)] == ["v1", "v3"]


def test_ttl_does_not_protect_latest(store: Store, tmp_path: Path, make_tree: Any) -> None:
    store.put(make_tree(tmp_path / "a", {"f": "only"}), ART, ttl_seconds=1)
    assert store.expire(now=time.time() + 10) == (["proj/data:v0"], [])
    with pytest.raises(NotFound, match="no versions"):
        store.resolve("proj/data")


def test_gc_expires_versions_and_reclaims_their_bytes(
    store: Store, home: Path, tmp_path: Path, make_tree: Any
) -> None:
    big = random.Random(1).randbytes(3 << 20)
    store.put(make_tree(tmp_path / "a", {"big": big}), ART, ttl_seconds=3600)
    live = store.put(make_tree(tmp_path / "b", {"small": "stays"}), ART).record
    store.edit(Ref.parse("proj/data:v0"), EditRequest(ttl_seconds=0))
    before = packs_size(home)
    report = collect(store)
    assert report.expired == ["proj/data:v0"]
    assert before - packs_size(home) >= len(big)
    assert report.bytes_before - report.bytes_after >= len(big)
    assert read_all(store, live) == {"small": b"stays"}
    assert verify(store, all_records(store)) == []


def test_gc_reclaims_deleted_versions_and_keeps_live_data(
    store: Store, home: Path, tmp_path: Path, make_tree: Any
) -> None:
    shared = random.Random(2).randbytes(1 << 20)
    gone = random.Random(3).randbytes(2 << 20)
    store.put(make_tree(tmp_path / "a", {"shared": shared, "gone": gone}), ART)
    keep = store.put(make_tree(tmp_path / "b", {"shared": shared, "new": "x" * 1000}), ART).record
    other = store.put(make_tree(tmp_path / "c", {"copy": gone}), ArtifactName("p2", "o")).record
    store.delete_version(Ref.parse("proj/data:v0"))
    report = collect(store)
    # "gone" is still referenced by another artifact: nothing big may go yet.
    assert report.bytes_before - report.bytes_after < 100_000
    assert read_all(store, other) == {"copy": gone}
    store.delete_artifact(ArtifactName("p2", "o"))
    before = packs_size(home)
    report = collect(store)
    assert report.chunks_removed >= 1
    assert before - packs_size(home) >= len(gone)
    assert read_all(store, keep) == {"shared": shared, "new": b"x" * 1000}
    assert verify(store, all_records(store)) == []
    # A second gc finds nothing more to do.
    assert collect(store).chunks_removed == 0


def test_gc_merges_small_packs_and_data_stays_readable(
    store: Store, home: Path, tmp_path: Path, make_tree: Any
) -> None:
    contents = {}
    for i in range(5):
        contents[i] = random.Random(i).randbytes(50_000 + i)
        store.put(make_tree(tmp_path / f"s{i}", {"f": contents[i]}), ART)
    assert len(store.chunks.pack_ids()) == 5
    report = collect(store)
    assert report.packs_rewritten == 5
    assert len(store.chunks.pack_ids()) == 1
    for record in store.versions(ART):
        assert read_all(store, record) == {"f": contents[record.number]}
    assert verify(store, all_records(store)) == []


def test_gc_drops_packs_nobody_references(
    store: Store, home: Path, tmp_path: Path, make_tree: Any
) -> None:
    record = store.put(make_tree(tmp_path / "a", {"f": "kept"}), ART).record
    orphan = store.chunks.writer()  # what a killed put leaves behind
    orphan.add(b"\x01" * 32, 0, b"orphan bytes" * 1000, 12_000)  # type: ignore[arg-type]
    orphan.commit()
    assert len(store.chunks.pack_ids()) == 2
    report = collect(store)
    assert report.packs_removed + report.packs_rewritten >= 1
    assert len(store.chunks.pack_ids()) == 1
    assert read_all(store, record) == {"f": b"kept"}


def _flip(home: Path, store: Store, entry: Any, at: int = 10) -> None:
    loc = store.chunk_location(entry.chunks[0].chunk_id)
    assert loc is not None
    path = home / "packs" / f"{loc.pack_id:016x}.pack"
    with open(path, "r+b") as f:
        f.seek(loc.offset + at)
        byte = f.read(1)
        f.seek(loc.offset + at)
        f.write(bytes([byte[0] ^ 0x40]))


def test_verify_names_the_file_with_a_flipped_byte(
    store: Store, home: Path, tmp_path: Path, make_tree: Any
) -> None:
    spec = {
        "good.bin": random.Random(4).randbytes(100_000),
        "bad.bin": random.Random(5).randbytes(100_000),
        "text.csv": "a,b,c\n" * 20_000,
    }
    record = store.put(make_tree(tmp_path / "src", spec), ART).record
    assert verify(store, [record]) == []
    entry = next(e for e in store.files(record) if e.path == "bad.bin")
    _flip(home, store, entry)
    problems = verify(store, [record])
    assert [(p.ref, p.path) for p in problems] == [("proj/data:v0", "bad.bin")]
    with pytest.raises(CorruptData, match=r"bad\.bin"):
        b"".join(store.iter_file(entry))
    with pytest.raises(CorruptData, match=r"bad\.bin"):
        materialize(store, record, tmp_path / "dest")
    assert not (tmp_path / "dest" / "bad.bin").exists()
    assert not list((tmp_path / "dest").glob(".*artfs-tmp"))


def test_a_chunk_shared_by_two_versions_is_reported_for_both(
    store: Store, home: Path, tmp_path: Path, make_tree: Any
) -> None:
    shared = random.Random(6).randbytes(50_000)
    v0 = store.put(make_tree(tmp_path / "a", {"s": shared}), ART).record
    v1 = store.put(make_tree(tmp_path / "b", {"s": shared, "t": "t"}), ART).record
    _flip(home, store, store.files(v0)[0])
    problems = verify(store, [v0, v1])
    assert sorted((p.ref, p.path) for p in problems) == [
        ("proj/data:v0", "s"),
        ("proj/data:v1", "s"),
    ]


@pytest.mark.parametrize("kind", ["raw", "zstd"])
def test_reads_never_return_wrong_bytes(
    store: Store, home: Path, tmp_path: Path, make_tree: Any, kind: str
) -> None:
    data = random.Random(8).randbytes(40_000) if kind == "raw" else b"label,0.5\n" * 8000
    record = store.put(make_tree(tmp_path / "src", {"f": data}), ART).record
    (entry,) = store.files(record)
    loc = store.chunk_location(entry.chunks[0].chunk_id)
    assert loc is not None and loc.codec == (0 if kind == "raw" else 1)
    for at in sorted({0, 1, 5, loc.stored_length // 2, loc.stored_length - 1}):
        _flip(home, store, entry, at)
        with pytest.raises(CorruptData, match="f: "):
            b"".join(store.iter_file(entry))
        _flip(home, store, entry, at)  # put it back
        assert b"".join(store.iter_file(entry)) == data


def test_a_missing_pack_is_corrupt_data_naming_the_file(
    store: Store, home: Path, tmp_path: Path, make_tree: Any
) -> None:
    record = store.put(make_tree(tmp_path / "src", {"lost.txt": "gone soon"}), ART).record
    store.close()
    for pack in (home / "packs").iterdir():
        pack.unlink()
    with Store.open(home) as reopened:
        problems = verify(reopened, [record])
        assert [p.path for p in problems] == ["lost.txt"]
        assert "missing" in problems[0].reason


def test_readers_in_another_process_survive_gc_compaction(
    store: Store, home: Path, tmp_path: Path, make_tree: Any, artfs_cli: Any
) -> None:
    """gc in another process rewrites and deletes packs while this process reads: a reader
    with a pack already open keeps reading it, a fresh lookup finds the new pack."""
    contents = {}
    for i in range(4):
        contents[i] = random.Random(10 + i).randbytes(60_000)
        store.put(make_tree(tmp_path / f"s{i}", {"f": contents[i]}), ART)
    records = store.versions(ART)
    old_packs = set(store.chunks.pack_ids())
    # Open two of the packs in this process before gc runs.
    assert read_all(store, records[0]) == {"f": contents[0]}
    assert read_all(store, records[1]) == {"f": contents[1]}
    result = artfs_cli("gc", home=home, check=True)
    assert "4 packs compacted" in result.stdout
    assert not old_packs & set(store.chunks.pack_ids())
    for record in records:
        assert read_all(store, record) == {"f": contents[record.number]}
    assert verify(store, records) == []
