"""The reads the UI does itself, against the store's own answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from artfs.errors import NotFound, StoreError
from artfs.names import ArtifactName, Ref
from artfs.store import Store
from artfs.ui import open_readonly, reads
from tests.ui.uiutil import write_tree


def test_project_artifacts_equals_store_artifacts(home: Path, tmp_path: Path) -> None:
    """Versions, deleted ones left out, aliases (moved, on an older version) and latest."""
    with Store.open(home) as store:
        for name in ("a", "b", "ab"):
            for v in range(3):
                source = write_tree(tmp_path / f"{name}{v}", {"f": f"{name} {v}".encode()})
                store.put(source, ArtifactName("p", name), aliases=["prod"] if v < 2 else [])
        store.put(write_tree(tmp_path / "q", {"f": b"q"}), ArtifactName("p2", "a"))
        store.delete_version(Ref.parse("p/a:v2"), force=True)
        store.delete_version(Ref.parse("p/b:v0"), force=True)
        store.set_alias(Ref.parse("p/ab:v0"), "first")
        expected = {p: store.artifacts(p) for p in ("p", "p2")}
    readonly = open_readonly(home)
    try:
        assert {p: reads.project_artifacts(readonly, p) for p in ("p", "p2")} == expected
        with pytest.raises(NotFound, match="project 'nope' does not exist"):
            reads.project_artifacts(readonly, "nope")
    finally:
        readonly.close()
    by_name = {a.name: vs for a, vs in expected["p"]}
    assert [v.number for v in by_name["a"]] == [0, 1]
    assert by_name["a"][-1].aliases == ["latest", "prod"]
    assert by_name["ab"][0].aliases == ["first"]


def test_readonly_store_refuses_writes(home: Path, tmp_path: Path) -> None:
    with Store.open(home) as store:
        store.put(write_tree(tmp_path / "s", {"f": b"x"}), ArtifactName("p", "a"))
    readonly = open_readonly(home)
    try:
        with pytest.raises(StoreError, match="read-only environment"):
            readonly.create_project("other")
        assert readonly.projects() == ["p"]
    finally:
        readonly.close()


def test_a_deleted_version_keeps_its_lineage_page(home: Path, tmp_path: Path) -> None:
    from artfs.lineage import Lineage
    from artfs.ui import create_app

    with Store.open(home) as store:
        lineage = Lineage(store)
        old = store.put(write_tree(tmp_path / "d0", {"f": b"0"}), ArtifactName("p", "d")).record
        store.put(write_tree(tmp_path / "d1", {"f": b"1"}), ArtifactName("p", "d"))
        run = lineage.create_run("p", "train")
        lineage.use(run.id, old)
        store.delete_version(Ref.parse("p/d:v0"))
    readonly = open_readonly(home)
    try:
        client = create_app(readonly).test_client()
        assert client.get("/v/p/d/v0").status_code == 404  # its files are gone
        graph = client.get("/api/lineage/p/d/v0").json
        root = next(n for n in graph["nodes"] if n["id"] == graph["root"])
        assert root["deleted"] and graph["edges"][0]["to"] == f"run:{run.id}"
        html = client.get("/lineage/p/d/v0").get_data(as_text=True)
        assert "v0 (deleted)" in html
        assert 'href="/lineage/p/d/v0"' in html  # its node links to this page, not a 404
    finally:
        readonly.close()


def test_a_store_an_older_artfs_made_opens_read_only(home: Path, tmp_path: Path) -> None:
    """A table newer than the store (alias-times, made by the first writer to open it) is
    empty to the read-only UI, not a failure to open: `artfs ui` may be the first to look."""
    import lmdb  # only to take the table away again, as an older artfs left the store

    with Store.open(home) as store:
        store.put(write_tree(tmp_path / "s", {"f": b"x"}), ArtifactName("p", "a"), aliases=["best"])
    env = lmdb.open(str(home / "index"), max_dbs=32)
    try:
        with env.begin(write=True) as txn:
            txn.drop(env.open_db(b"alias-times", txn=txn), delete=True)
    finally:
        env.close()
    readonly = open_readonly(home)
    try:
        record = reads.resolve(readonly, ArtifactName("p", "a"), "best")
        assert record.version == "v0" and "best" in record.aliases
    finally:
        readonly.close()
