"""Versions, aliases, types and deletes, through the Store facade on a real index."""

import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from artfs.errors import Conflict, InvalidName, NotFound
from artfs.names import ArtifactName, Ref
from artfs.store import Store, catalog
from artfs.store.index import Table
from artfs.store.repository import EditRequest

ART = ArtifactName("proj", "data")
_COUNTER = itertools.count()


def _put(store: Store, tmp_path: Path, content: bytes, art: ArtifactName = ART, **kw: Any):  # type: ignore[no-untyped-def]
    src = tmp_path / f"src-{next(_COUNTER)}"
    src.mkdir()
    (src / "file.txt").write_bytes(content)
    return store.put(src, art, **kw)


def _aliases(store: Store, art: ArtifactName = ART) -> dict[str, list[str]]:
    return {r.version: r.aliases for r in store.versions(art)}


def test_versions_count_from_v0_and_latest_is_the_newest(store: Store, tmp_path: Path) -> None:
    refs = [_put(store, tmp_path, bytes([i]) * 10).record.ref for i in range(3)]
    assert refs == ["proj/data:v0", "proj/data:v1", "proj/data:v2"]
    assert _aliases(store) == {"v0": [], "v1": [], "v2": ["latest"]}
    assert store.resolve("proj/data").number == 2
    assert store.resolve("proj/data:latest").number == 2


def test_latest_moves_back_when_the_newest_is_deleted(store: Store, tmp_path: Path) -> None:
    for i in range(2):
        _put(store, tmp_path, bytes([i]) * 10)
    store.delete_version(Ref.parse("proj/data:v1"))
    assert store.resolve("proj/data").version == "v0"
    assert _aliases(store) == {"v0": ["latest"]}
    with pytest.raises(NotFound, match="v1"):
        store.resolve("proj/data:v1")


def test_version_numbers_are_never_reused(store: Store, tmp_path: Path) -> None:
    for i in range(2):
        _put(store, tmp_path, bytes([i]) * 10)
    store.delete_version(Ref.parse("proj/data:v1"))
    assert _put(store, tmp_path, b"third").record.version == "v2"
    store.delete_artifact(ART)
    with pytest.raises(NotFound):
        store.versions(ART)
    assert _put(store, tmp_path, b"after delete").record.version == "v3"


def test_a_custom_alias_is_unique_and_moves(store: Store, tmp_path: Path) -> None:
    _put(store, tmp_path, b"zero", aliases=["best", "prod"])
    _put(store, tmp_path, b"one", aliases=["best"])
    assert _aliases(store) == {"v0": ["prod"], "v1": ["latest", "best"]}
    store.set_alias(Ref.parse("proj/data:v0"), "best")
    assert _aliases(store) == {"v0": ["best", "prod"], "v1": ["latest"]}
    assert store.resolve("proj/data:best").number == 0
    store.remove_alias(ART, "best")
    with pytest.raises(NotFound, match="best"):
        store.resolve("proj/data:best")


def test_alias_on_a_missing_version_is_refused(store: Store, tmp_path: Path) -> None:
    _put(store, tmp_path, b"zero")
    with pytest.raises(NotFound, match="v5"):
        store.set_alias(Ref.parse("proj/data:v5"), "best")
    assert _aliases(store) == {"v0": ["latest"]}


@pytest.mark.parametrize("alias", ["latest", "staging", "v1"])
def test_reserved_aliases_cannot_be_set(store: Store, tmp_path: Path, alias: str) -> None:
    _put(store, tmp_path, b"zero")
    with pytest.raises(InvalidName):
        store.set_alias(Ref.parse("proj/data:v0"), alias)
    with pytest.raises(InvalidName):
        _put(store, tmp_path, b"one", aliases=[alias])
    assert _aliases(store) == {"v0": ["latest"]}


def test_type_is_fixed_at_the_first_version(store: Store, tmp_path: Path) -> None:
    _put(store, tmp_path, b"weights", type_="model")
    before = store.chunks.pack_ids()
    with pytest.raises(Conflict, match="model"):
        _put(store, tmp_path, b"other weights", type_="dataset")
    assert store.chunks.pack_ids() == before
    assert [r.version for r in store.versions(ART)] == ["v0"]
    assert _put(store, tmp_path, b"more weights", type_="model").record.type == "model"


def test_identical_content_reports_the_existing_version(store: Store, tmp_path: Path) -> None:
    first = _put(store, tmp_path, b"same")
    _put(store, tmp_path, b"different")
    packs = store.chunks.pack_ids()
    again = _put(store, tmp_path, b"same", aliases=["best"])
    assert not again.created
    assert again.new_bytes == 0
    assert again.record.ref == first.record.ref
    assert store.chunks.pack_ids() == packs
    assert _aliases(store) == {"v0": ["best"], "v1": ["latest"]}


def test_content_deleted_then_put_again_is_a_new_version(store: Store, tmp_path: Path) -> None:
    _put(store, tmp_path, b"same")
    store.delete_version(Ref.parse("proj/data:v0"))
    result = _put(store, tmp_path, b"same")
    assert result.created
    assert result.record.version == "v1"
    assert store.read_chunk(store.files(result.record)[0].chunks[0]) == b"same"


def test_delete_refuses_a_version_with_custom_aliases(store: Store, tmp_path: Path) -> None:
    _put(store, tmp_path, b"zero", aliases=["best"])
    _put(store, tmp_path, b"one")
    with pytest.raises(Conflict, match="best"):
        store.delete_version(Ref.parse("proj/data:v0"))
    assert _aliases(store) == {"v0": ["best"], "v1": ["latest"]}
    store.delete_version(Ref.parse("proj/data:v0"), force=True)
    assert _aliases(store) == {"v1": ["latest"]}
    with pytest.raises(NotFound):
        store.resolve("proj/data:best")


def test_the_newest_version_can_be_deleted_without_force(store: Store, tmp_path: Path) -> None:
    _put(store, tmp_path, b"zero")
    store.delete_version(Ref.parse("proj/data"))
    with pytest.raises(NotFound, match="no versions"):
        store.resolve("proj/data")


def test_record_fields_and_edit(store: Store, tmp_path: Path) -> None:
    result = _put(
        store,
        tmp_path,
        b"abc",
        description="first cut",
        metadata={"epochs": 3},
        tags=["b", "a", "b"],
    )
    record = result.record
    assert (record.description, record.metadata, record.tags) == (
        "first cut",
        {"epochs": 3},
        ["a", "b"],
    )
    assert (record.files, record.size, record.type, record.expires) == (1, 3, "dataset", None)
    edited = store.edit(
        Ref.parse("proj/data:v0"),
        EditRequest(
            description="better",
            metadata={"k": "v"},
            add_tags=["c"],
            remove_tags=["a"],
            ttl_seconds=60,
        ),
    )
    assert (edited.description, edited.metadata, edited.tags) == ("better", {"k": "v"}, ["b", "c"])
    assert edited.expires == pytest.approx(record.created + 60)
    assert store.resolve("proj/data:v0").description == "better"
    cleared = store.edit(Ref.parse("proj/data:v0"), EditRequest(clear_ttl=True))
    assert cleared.expires is None
    assert cleared.digest == record.digest
    assert [e.path for e in store.files(cleared)] == ["file.txt"]


def test_unknown_things_are_not_found(store: Store, tmp_path: Path) -> None:
    _put(store, tmp_path, b"x")
    with pytest.raises(NotFound, match="project 'nope'"):
        store.resolve("nope/data")
    with pytest.raises(NotFound, match="proj/other"):
        store.resolve("proj/other")
    with pytest.raises(NotFound, match="alias 'gone'"):
        store.resolve("proj/data:gone")
    with pytest.raises(NotFound, match="alias 'gone'"):
        store.remove_alias(ART, "gone")
    with pytest.raises(NotFound):
        store.artifacts("nope")


def test_projects_and_artifacts_are_listed(store: Store, tmp_path: Path) -> None:
    _put(store, tmp_path, b"1", ArtifactName("p1", "a"))
    _put(store, tmp_path, b"2", ArtifactName("p1", "b"), type_="model")
    _put(store, tmp_path, b"3", ArtifactName("p2", "a"))
    assert store.projects() == ["p1", "p2"]
    found = [(a.name, a.type, [v.version for v in vs]) for a, vs in store.artifacts("p1")]
    assert found == [("a", "dataset", ["v0"]), ("b", "model", ["v0"])]
    # "p1/a" and "p1/ab" must not be mixed up by prefix scans
    _put(store, tmp_path, b"4", ArtifactName("p1", "ab"))
    assert [r.ref for r in store.versions(ArtifactName("p1", "a"))] == ["p1/a:v0"]


def test_alias_set_time_with_fallback_for_older_records(store: Store, tmp_path: Path) -> None:
    v0 = _put(store, tmp_path, b"zero").record
    v1 = _put(store, tmp_path, b"one").record
    before = time.time_ns()
    store.set_alias(Ref.parse("proj/data:v0"), "best")
    with store.index.read() as txn:
        number, set_ns = catalog.alias_target(txn, ART, "best")  # type: ignore[misc]
        assert number == 0 and before <= set_ns <= time.time_ns()
        assert catalog.alias_target(txn, ART, "latest") == (1, int(v1.created * 1e9))
        assert catalog.alias_target(txn, ART, "nope") is None
    key = catalog.artifact_key(ART) + b"\0best"
    with store.index.write() as txn:  # a record written before set times were kept
        txn.delete(Table.ALIAS_TIMES, key)
    with store.index.read() as txn:
        assert catalog.alias_target(txn, ART, "best") == (0, int(v0.created * 1e9))
    store.set_alias(Ref.parse("proj/data:v0"), "best")
    with store.index.write() as txn:  # an older artfs moves it: the value only
        txn.put(Table.ALIASES, key, (1).to_bytes(4, "big"))
    with store.index.read() as txn:
        assert catalog.alias_target(txn, ART, "best") == (1, int(v1.created * 1e9))
    store.remove_alias(ART, "best")
    with store.index.read() as txn:
        assert txn.get(Table.ALIAS_TIMES, key) is None


def test_deleting_a_version_drops_its_opened_file_keys(store: Store, tmp_path: Path) -> None:
    """The keys counting distinct files opened go with the version's files (one per run and
    file read, they would otherwise outlive it for ever); the edge keeps its count."""
    from artfs.lineage import Lineage, UsageEvent

    old = _put(store, tmp_path, b"zero").record
    kept = _put(store, tmp_path, b"one").record
    lineage = Lineage(store)
    run = lineage.create_run("proj", "train")
    events = [
        UsageEvent(run.id, record.key, time.time(), file=n.to_bytes(8, "big"))
        for record in (old, kept)
        for n in range(3)
    ]
    lineage.record_usage(events, publish=False)

    def file_keys(record: Any) -> int:
        with store.index.read() as txn:
            return len(list(txn.scan(Table.OPENED, record.key)))

    assert (file_keys(old), file_keys(kept)) == (3, 3)
    store.delete_version(Ref.parse(old.ref))
    assert (file_keys(old), file_keys(kept)) == (0, 3)
    [(_, usage)] = lineage.consumers(old)
    assert usage.files == 3
