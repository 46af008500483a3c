"""artfs.porcelain in one process: the operations the CLI and the SDK share, with no printing.

The CLI round trips (tests/cli) and the SDK tests (tests/sdk) cover the same operations through
their callers; these pin what the porcelain itself promises: listings that show artifacts only
being staged, the current run taken from ARTFS_RUN_ID, usage recorded by get, and nothing
said to ``warn`` by a store without a remote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from artfs import porcelain
from artfs.errors import NotFound
from artfs.names import ArtifactName, Ref
from artfs.store import Store, staging

MNIST = ArtifactName("proj", "mnist")
FILES = {"a.csv": "1,2\n", "sub/b.txt": "bee"}


def _put(store: Store, source: Path, **options: Any) -> Any:
    return porcelain.put(store, porcelain.source_tree(str(source)), MNIST, **options)


def test_put_then_get_gives_back_the_files(store: Store, tmp_path: Path, make_tree: Any) -> None:
    result = _put(store, make_tree(tmp_path / "src", FILES), aliases=["best"])
    assert result.created and result.record.ref == "proj/mnist:v0"
    record = store.resolve(Ref(MNIST, "best"))
    assert porcelain.get_size(store, record) == 7
    assert porcelain.get_size(store, record, "sub/") == 3
    written = porcelain.get(store, record, tmp_path / "out")
    assert sorted(e.path for e in written) == ["a.csv", "sub/b.txt"]
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "bee"
    again = _put(store, tmp_path / "src")
    assert not again.created and again.record.ref == "proj/mnist:v0"


def test_get_records_the_run_that_used_the_version(
    store: Store, tmp_path: Path, make_tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _put(store, make_tree(tmp_path / "src", FILES)).record
    assert porcelain.current_run(store, "proj") is None
    run_id = "a1b2c3d4"
    monkeypatch.setenv(porcelain.RUN_ID_ENV, run_id)
    assert porcelain.current_run(store, "proj") == run_id  # recorded on first sight
    porcelain.get(store, record, tmp_path / "out", used_by=run_id)
    assert [run.id for run, _ in porcelain.consumers(store, record)] == [run_id]
    assert [r.id for r in porcelain.runs(store, "proj")] == [run_id]
    details = porcelain.run_details(store, run_id)
    assert [r.ref for r in details.inputs] == ["proj/mnist:v0"] and details.outputs == []


def test_listings_show_artifacts_only_being_staged(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    _put(store, make_tree(tmp_path / "src", FILES))
    staging.ensure(store, ArtifactName("proj", "draft"))
    staging.ensure(store, ArtifactName("other", "fresh"))
    heard: list[str] = []
    # As the mount lists them: also a project whose only artifact is being staged.
    assert porcelain.projects(store, refresh=True, warn=heard.append) == ["other", "proj"]
    listed = porcelain.artifacts(store, "proj", refresh=True, warn=heard.append)
    assert [(a.name, a.type, len(a.versions)) for a in listed] == [
        ("mnist", "dataset", 1),
        ("draft", None, 0),
    ]
    # A project whose only artifact is being staged is listed; one with nothing is not.
    assert [a.name for a in porcelain.artifacts(store, "other")] == ["fresh"]
    with pytest.raises(NotFound):
        porcelain.artifacts(store, "nothing")
    assert porcelain.versions(store, ArtifactName("proj", "draft")) == []
    assert [r.version for r in porcelain.versions(store, MNIST, refresh=True)] == ["v0"]
    assert heard == []  # no default remote: nothing refreshed, nothing to warn about


def test_commit_stores_the_staging_directory_logged_by_the_current_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged = staging.ensure(store, MNIST)
    (staged / "weights.bin").write_bytes(b"\x00\x01")
    monkeypatch.setenv(porcelain.RUN_ID_ENV, "feedbeef")
    result = porcelain.commit(store, MNIST, aliases=["best"])
    assert result.record.logged_by == "feedbeef"
    assert "best" in result.record.aliases
    assert [r.ref for r in porcelain.run_details(store, "feedbeef").outputs] == ["proj/mnist:v0"]


def test_delete_of_a_whole_artifact_in_a_local_store(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    _put(store, make_tree(tmp_path / "src", FILES))
    _put(store, make_tree(tmp_path / "src", {"c.txt": "sea"}))
    deletion = porcelain.delete(store, MNIST, force=True)
    assert sorted(r.ref for r in deletion.records) == ["proj/mnist:v0", "proj/mnist:v1"]
    assert deletion.remote is None
    with pytest.raises(NotFound):
        store.resolve(Ref(MNIST))
