"""Commit of a staging based on a version (artfs.store.delta): the upper directory written by
hand (files and markers), a real store; every version compared file by file with what it must
hold, read back through the store."""

from __future__ import annotations

from pathlib import Path

from artfs.names import ArtifactName, Ref
from artfs.store import Store, gc, staging, trees
from artfs.store.catalog import VersionRecord
from artfs.store.ingest import scan
from artfs.store.verify import verify
from tests.helpers import make_tree

ART = ArtifactName("proj", "data")
BASE = {
    "a.txt": b"A",
    "d/x.txt": b"X",
    "d/y.txt": b"Y",
    "d/sub/z.txt": b"Z",
    "e/w.txt": b"W",
    "e/deep/v.txt": b"V",
}


def _based(store: Store, tmp_path: Path, files: dict[str, bytes] = BASE) -> Path:
    record = store.commit(scan(make_tree(tmp_path / "base", files)), ART).record
    staging.set_base(store, ART, record)
    return staging.ensure(store, ART)


def _content(store: Store, record: VersionRecord) -> dict[str, bytes]:
    return {e.path: b"".join(store.iter_file(e)) for e in store.files(record)}


def _expect(store: Store, tmp_path: Path, record: VersionRecord, files: dict[str, bytes]) -> None:
    """``record`` holds exactly ``files``, and has the digest a put of them from scratch has."""
    assert _content(store, record) == files
    assert (record.files, record.size) == (len(files), sum(map(len, files.values())))
    where = tmp_path / f"expected-{record.number}"
    with Store.open(where / "home") as scratch:
        fresh = scratch.commit(scan(make_tree(where / "files", files)), ART).record
    assert fresh.digest == record.digest


def _upper_left(upper: Path) -> list[str]:
    return sorted(str(p.relative_to(upper)) for p in upper.rglob("*"))


def test_adds_modifies_and_deletes(store: Store, tmp_path: Path) -> None:
    upper = _based(store, tmp_path)
    make_tree(upper, {"a.txt": "A2", "n/new.txt": "N", "d/sub/extra.bin": b"\0" * 5000})
    staging.add_whiteout(upper / "d", "y.txt")
    staging.add_whiteout(upper, "e")
    result = staging.commit(store, ART)
    assert result.created and result.record.number == 1
    expected = {
        "a.txt": b"A2",
        "d/x.txt": b"X",
        "d/sub/z.txt": b"Z",
        "d/sub/extra.bin": b"\0" * 5000,
        "n/new.txt": b"N",
    }
    _expect(store, tmp_path, result.record, expected)
    dirs = {e.path for e in store.entries(result.record) if e.is_dir}
    assert dirs == {"d", "d/sub", "n"}
    # Afterwards: upper empty, the base names the new version, its pages are whole.
    assert _upper_left(upper) == []
    base = staging.base_of(store, ART)
    assert base is not None and base.version == 1 and base.markers_tree is None
    assert base.tree.hex() == result.record.tree and verify(store, store.versions(ART)) == []


def test_opaque_directory_replaces_the_base_directory(store: Store, tmp_path: Path) -> None:
    upper = _based(store, tmp_path)
    make_tree(upper, {"d/q.txt": "Q", "d/sub/z.txt": "Z2"})
    staging.make_opaque(upper / "d")
    result = staging.commit(store, ART)
    expected = {k: v for k, v in BASE.items() if not k.startswith("d/")}
    _expect(store, tmp_path, result.record, expected | {"d/q.txt": b"Q", "d/sub/z.txt": b"Z2"})


def test_opaque_root_and_a_directory_made_over_a_whiteout(store: Store, tmp_path: Path) -> None:
    upper = _based(store, tmp_path)
    make_tree(upper, {"e/only.txt": "O"})
    staging.add_whiteout(upper, "e")  # a whiteout with a directory of that name: opaque
    result = staging.commit(store, ART)
    expected = {k: v for k, v in BASE.items() if not k.startswith("e/")}
    _expect(store, tmp_path, result.record, expected | {"e/only.txt": b"O"})
    make_tree(upper, {"solo.txt": "S"})
    staging.make_opaque(upper)
    again = staging.commit(store, ART)
    _expect(store, tmp_path, again.record, {"solo.txt": b"S"})


def test_redirect_renames_a_directory_in_one_graft(store: Store, tmp_path: Path) -> None:
    upper = _based(store, tmp_path)
    (upper / "r").mkdir()
    staging.set_redirect(upper / "r", "d")
    staging.add_whiteout(upper, "d")
    (upper / "r" / "x.txt").write_text("X2")
    staging.add_whiteout(upper / "r", "y.txt")
    # A directory below the renamed one renamed too, into a new directory.
    (upper / "n" / "moved").mkdir(parents=True)
    staging.set_redirect(upper / "n" / "moved", "e/deep")
    (upper / "e").mkdir()
    staging.add_whiteout(upper / "e", "deep")
    result = staging.commit(store, ART)
    expected = {
        "a.txt": b"A",
        "r/x.txt": b"X2",
        "r/sub/z.txt": b"Z",
        "e/w.txt": b"W",
        "n/moved/v.txt": b"V",
    }
    _expect(store, tmp_path, result.record, expected)
    assert _upper_left(upper) == []
    # The next commit goes on from it: the base now has r.
    (upper / "r").mkdir()
    (upper / "r" / "sub").mkdir()
    staging.add_whiteout(upper / "r" / "sub", "z.txt")
    nxt = staging.commit(store, ART)
    _expect(store, tmp_path, nxt.record, {k: v for k, v in expected.items() if k != "r/sub/z.txt"})


def test_copy_up_temporaries_are_neither_changes_nor_removed(store: Store, tmp_path: Path) -> None:
    upper = _based(store, tmp_path)
    (upper / "d").mkdir()
    temp = upper / "d" / f"{staging.COPY_UP}123.1"
    temp.write_text("half a copy")
    (upper / "d" / "x.txt").write_text("X2")
    result = staging.commit(store, ART)
    _expect(store, tmp_path, result.record, BASE | {"d/x.txt": b"X2"})
    assert _upper_left(upper) == ["d", f"d/{temp.name}"]


def test_identical_content_is_no_new_version(store: Store, tmp_path: Path) -> None:
    upper = _based(store, tmp_path)
    result = staging.commit(store, ART)  # nothing written: the base itself
    assert not result.created and result.record.number == 0
    make_tree(upper, {"a.txt": "A", "d/x.txt": "X"})  # rewritten with the same bytes
    staging.add_whiteout(upper, "not-in-base")
    again = staging.commit(store, ART)
    assert not again.created and again.record.number == 0
    assert _upper_left(upper) == [] and [r.number for r in store.versions(ART)] == [0]
    base = staging.base_of(store, ART)
    assert base is not None and base.version == 0


def test_a_staging_without_base_commits_as_before(store: Store, tmp_path: Path) -> None:
    _based(store, tmp_path)
    staging.set_base(store, ART, None)
    upper = staging.ensure(store, ART)
    make_tree(upper, {"only.txt": "1"})
    result = staging.commit(store, ART)
    _expect(store, tmp_path, result.record, {"only.txt": b"1"})
    assert staging.base_of(store, ART) is None


def test_gc_keeps_the_pages_and_chunks_of_a_deleted_base(store: Store, tmp_path: Path) -> None:
    big = {f"f{i:03}.bin": bytes([i]) * 3000 for i in range(200)}
    upper = _based(store, tmp_path, big)
    store.delete_version(Ref(ART, "v0"))
    gc.collect(store)
    entry = staging.base_entry(store, ART, "f150.bin")
    assert entry is not None and b"".join(store.iter_file(entry)) == bytes([150]) * 3000
    assert len(staging.base_listing(store, ART, "")) == 200
    (upper / "f000.bin").write_text("changed")
    result = staging.commit(store, ART)
    assert result.created and result.record.number == 1
    _expect(store, tmp_path, result.record, big | {"f000.bin": b"changed"})
    # Without the base record, what only it kept is collected.
    staging.set_base(store, ART, None)
    store.delete_version(Ref(ART, "v1"))
    report = gc.collect(store)
    assert report.chunks_removed >= 200


def test_update_grafts_match_a_build_from_scratch() -> None:
    pages: dict[trees.TreeId, bytes] = {}
    put, get = pages.setdefault, pages.__getitem__
    from artfs.store.manifest import FileEntry, Kind

    def file(path: str, byte: int) -> FileEntry:
        return FileEntry(path, Kind.FILE, 0o644, 1, 0, bytes([byte]) * 32)  # type: ignore[arg-type]

    def folder(path: str) -> FileEntry:
        return FileEntry(path, Kind.DIR, 0o755, 0, 0)

    old = [folder("a"), *(file(f"a/{i:04}", i % 200) for i in range(600)), file("b", 1)]
    root = trees.build(put, old)
    sub = trees.resolve_dir(trees.Pages(get), root, "a")
    assert sub is not None
    moved = trees.update(get, put, root, {"a": None, "c": folder("c")}, {"c": sub})
    renamed = [folder("c"), *(file("c" + e.path[1:], e.digest[0]) for e in old[1:-1]), old[-1]]
    assert moved == trees.build(put, renamed)
    emptied = trees.update(get, put, root, {"a/new": file("a/new", 7)}, {"a": trees.EMPTY_TREE})
    assert emptied == trees.build(put, [folder("a"), file("a/new", 7), old[-1]])
