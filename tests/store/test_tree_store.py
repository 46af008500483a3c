"""Trees in a real store: what a commit writes, what reads see, what gc keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from artfs.errors import CorruptData
from artfs.names import ArtifactName, Ref
from artfs.store import Store, catalog, trees
from artfs.store.export import diff
from artfs.store.gc import collect
from artfs.store.index import Table
from artfs.store.verify import verify

ART = ArtifactName("proj", "data")


def tree_pages(store: Store) -> set[bytes]:
    with store.index.read() as txn:
        return {key for key, _ in txn.scan(Table.TREES)}


def dataset(dirs: int = 12, per_dir: int = 150) -> dict[str, str]:
    return {f"d{d:02d}/f{i:04d}.txt": f"{d}-{i}" for d in range(dirs) for i in range(per_dir)}


def test_a_one_file_change_writes_the_pages_on_its_path_only(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    src = make_tree(tmp_path / "src", dataset())
    store.put(src, ART)
    before = tree_pages(store)
    (src / "d05" / "f0042.txt").write_text("changed")
    store.put(src, ART)
    new = tree_pages(store) - before
    # d05's leaf page and its index page (150 entries: two or three leaves), the root page
    assert 1 <= len(new) <= 3
    store.put(src, ART, aliases=["same"])
    assert tree_pages(store) - before == new  # identical content: no version, no page


def test_reads_go_through_the_trees(store: Store, tmp_path: Path, make_tree: Any) -> None:
    files = dataset(dirs=2, per_dir=700)
    record = store.put(make_tree(tmp_path / "src", files), ART).record
    with store.index.read() as txn:
        assert catalog.lookup(txn, record, "d01/f0500.txt") is not None
        assert catalog.lookup(txn, record, "d01/f0500.txt/x") is None
        names = [e.name for e in catalog.list_dir(txn, record, "d01", after="f0697.txt")]
        assert names == ["f0698.txt", "f0699.txt"]
        assert [e.path for e in catalog.list_dir(txn, record)] == ["d00", "d01"]
    assert len(store.files(record)) == 1400


def test_gc_keeps_shared_pages_and_drops_the_rest(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    src = make_tree(tmp_path / "src", dataset())
    store.put(src, ART)
    v0_pages = tree_pages(store)
    (src / "d03" / "f0001.txt").write_text("new")
    v1 = store.put(src, ART).record
    v1_pages = tree_pages(store)
    store.delete(Ref.parse("proj/data:v0"))
    collect(store)
    kept = tree_pages(store)
    assert kept < v1_pages
    assert v0_pages & kept  # the unchanged directories stay, shared with v1
    assert verify(store, [store.resolve("proj/data:v1")]) == []
    with store.index.read() as txn:
        assert len(list(catalog.walk(txn, v1))) == 12 * 151
    store.delete(Ref.parse("proj/data:v1"))
    collect(store)
    assert tree_pages(store) == set()


def test_diff_compares_trees(store: Store, tmp_path: Path, make_tree: Any) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d/x": "x", "d/y": "y", "e": "e"})
    old = store.put(src, ART).record
    (src / "a.txt").write_text("A")
    (src / "d" / "x").unlink()
    (src / "d" / "z").write_text("z")
    (src / "d" / "y").chmod(0o600)  # attributes only: not a change of content
    (src / "e").unlink()
    (src / "e").mkdir()
    (src / "e" / "f").write_text("f")
    new = store.put(src, ART).record
    found = diff(store, old, new)
    assert (found.added, found.removed, found.changed) == (["d/z", "e/f"], ["d/x", "e"], ["a.txt"])
    same = diff(store, new, new)
    assert (same.added, same.removed, same.changed) == ([], [], [])


def test_a_missing_tree_page_is_an_error_never_a_shorter_version(
    store: Store, tmp_path: Path, make_tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = store.put(make_tree(tmp_path / "src", dataset(dirs=3, per_dir=20)), ART).record
    monkeypatch.setattr(catalog, "PAGE_CACHE", trees.PageCache())  # nothing decoded yet
    with store.index.write() as txn:
        root = catalog.root_tree(record)
        assert root is not None
        sub = trees.find(catalog.pages(txn), root, b"d01")
        assert sub is not None
        txn.delete(Table.TREES, trees.decode_entry("d01", sub)[1] or b"")
    monkeypatch.setattr(catalog, "PAGE_CACHE", trees.PageCache())
    with pytest.raises(CorruptData, match=r"tree page \w+ is missing from the index"):
        store.files(record)
    assert verify(store, [record]) != []
