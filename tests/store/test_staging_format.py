"""The incremental staging format (artfs.store.staging, artfs.store.overlay): the base record,
the markers, and how a staging path resolves to the base through them. Real store, real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from artfs.errors import CorruptData
from artfs.names import ArtifactName, Ref
from artfs.store import Store, staging
from artfs.store.ingest import scan
from tests.helpers import make_tree

ART = ArtifactName("proj", "data")


def _base(store: Store, tmp_path: Path) -> Path:
    """A version v0 of proj/data, staging based on it; returns the (empty) upper directory."""
    src = make_tree(
        tmp_path / "src",
        {
            "a.txt": "A",
            "d/x.txt": "X",
            "d/y.txt": "Y",
            "d/sub/z.txt": "Z",
            "e/w.txt": "W",
        },
    )
    record = store.commit(scan(src), ART).record
    staging.set_base(store, ART, record)
    return staging.ensure(store, ART)


def test_reserved_names_and_whiteouts() -> None:
    assert staging.is_reserved(".artfs-wh.x") and staging.is_reserved(staging.OPAQUE)
    assert staging.is_reserved(staging.REDIRECT)
    assert not staging.is_reserved(".artfs-base") and not staging.is_reserved("a.artfs-wh.")
    assert staging.whiteout_name("f.txt") == ".artfs-wh.f.txt"
    assert staging.MARKER_PREFIX == ".artfs-wh." and staging.BASES_DIR == ".bases"


def test_base_record_round_trip_atomic_and_removable(store: Store, tmp_path: Path) -> None:
    assert staging.base_of(store, ART) is None
    _base(store, tmp_path)
    record = store.resolve(Ref(ART, "v0"))
    base = staging.base_of(store, ART)
    assert base is not None and (base.artifact, base.version, base.digest) == (
        ART,
        0,
        record.digest,
    )
    assert base.tree.hex() == record.tree and base.ref == "proj/data:v0"
    stored = store.home / "staging" / ".bases" / "proj--data.json"
    assert stored.is_file() and [p.name for p in stored.parent.iterdir()] == [stored.name]
    assert staging.projects_with_staging(store) == ["proj"]  # .bases is no project
    staging.set_base(store, ART, None)
    assert staging.base_of(store, ART) is None and not stored.exists()


def test_a_damaged_base_record_is_one_clear_error(store: Store, tmp_path: Path) -> None:
    _base(store, tmp_path)
    (store.home / "staging" / ".bases" / "proj--data.json").write_text("{not json")
    with pytest.raises(CorruptData, match=r"proj--data\.json.*artfs stage proj/data --reset"):
        staging.base_of(store, ART)


def test_base_entry_resolves_through_whiteouts_opaque_and_redirects(
    store: Store, tmp_path: Path
) -> None:
    upper = _base(store, tmp_path)
    entry = staging.base_entry(store, ART, "d/sub/z.txt")
    assert entry is not None and entry.path == "d/sub/z.txt" and entry.size == 1
    assert staging.base_entry(store, ART, "d").is_dir  # type: ignore[union-attr]
    assert staging.base_entry(store, ART, "nope") is None
    staging.add_whiteout(upper, "a.txt")
    assert staging.base_entry(store, ART, "a.txt") is None
    staging.remove_whiteout(upper, "a.txt")
    assert staging.base_entry(store, ART, "a.txt") is not None
    # d renamed to r: r redirects to d, d is whited out.
    (upper / "r").mkdir()
    staging.set_redirect(upper / "r", "d")
    staging.add_whiteout(upper, "d")
    assert staging.base_entry(store, ART, "d/x.txt") is None
    moved = staging.base_entry(store, ART, "r/sub/z.txt")
    assert moved is not None and moved.path == "r/sub/z.txt"
    # e replaced by a new directory: nothing of the base below it shows.
    (upper / "e").mkdir()
    staging.make_opaque(upper / "e")
    assert staging.base_entry(store, ART, "e/w.txt") is None
    # Below a file of the upper directory there is nothing.
    (upper / "f").write_text("file")
    assert staging.base_entry(store, ART, "f/x") is None


def test_base_listing_hides_whiteouts_and_upper_names(store: Store, tmp_path: Path) -> None:
    upper = _base(store, tmp_path)
    assert [e.path for e in staging.base_listing(store, ART, "")] == ["a.txt", "d", "e"]
    (upper / "d").mkdir()
    (upper / "d" / "x.txt").write_text("new X")
    staging.add_whiteout(upper / "d", "y.txt")
    assert [e.path for e in staging.base_listing(store, ART, "d")] == ["d/sub"]
    assert [e.path for e in staging.base_listing(store, ART, "d/sub")] == ["d/sub/z.txt"]
    (upper / "r").mkdir()
    staging.set_redirect(upper / "r", "d")
    # A redirected directory shows its target's entries, under its own path and markers.
    assert [e.path for e in staging.base_listing(store, ART, "r")] == [
        "r/sub",
        "r/x.txt",
        "r/y.txt",
    ]
    assert [e.path for e in staging.base_listing(store, ART, "", after="a.txt", limit=1)] == ["e"]
    staging.make_opaque(upper)
    assert staging.base_listing(store, ART, "") == []
    staging.set_base(store, ART, None)
    os.unlink(upper / staging.OPAQUE)
    assert (
        staging.base_listing(store, ART, "") == []
        and staging.base_entry(store, ART, "a.txt") is None
    )


def test_a_deleted_version_cannot_become_a_base(store: Store, tmp_path: Path) -> None:
    _base(store, tmp_path)
    record = store.delete_version(Ref(ART, "v0"))
    with pytest.raises(Exception, match="deleted"):
        staging.set_base(store, ART, record)


def test_base_path_follows_redirects_and_never_symlinks(store: Store, tmp_path: Path) -> None:
    upper = _base(store, tmp_path)
    assert staging.base_path(store, ART, "d/sub/z.txt") == "d/sub/z.txt"
    (upper / "r").mkdir()
    staging.set_redirect(upper / "r", "/d/")
    staging.add_whiteout(upper, "d")
    assert staging.base_path(store, ART, "r/sub/z.txt") == "d/sub/z.txt"
    assert staging.base_path(store, ART, "r") == "d"
    assert staging.base_path(store, ART, "d/x.txt") is None
    # A symlink in the upper directory to a directory that holds markers: not followed.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    staging.make_opaque(elsewhere)
    staging.set_redirect(elsewhere, "e")
    os.symlink(elsewhere, upper / "link")
    assert staging.base_path(store, ART, "link") is None  # a symlink shows no base
    assert staging.base_listing(store, ART, "link") == []
    assert staging.record_path(store, ART).name == "proj--data.json"
