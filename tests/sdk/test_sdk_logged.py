"""A logged ``Artifact``: reading its files, its lineage, editing what may change, deleting."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import artfs
from artfs import (
    AliasesHeld,
    Api,
    Artifact,
    ArtifactFinalized,
    ArtifactMismatch,
    NotASingleFile,
    NotFound,
)
from tests.helpers import packs_bytes, random_bytes, read_tree


@pytest.fixture
def logged(run: artfs.Run, data_dir: Path) -> Artifact:
    art = Artifact("mnist", "dataset", description="digits", metadata={"rows": 2})
    art.add_dir(data_dir)
    return run.log_artifact(art, aliases=["best"], tags=["raw"])


def test_a_logged_artifact_has_its_version_attributes(logged: Artifact, data_dir: Path) -> None:
    assert (logged.name, logged.version, logged.qualified_name, logged.project) == (
        "mnist:v0",
        "v0",
        "proj/mnist:v0",
        "proj",
    )
    assert (logged.type, logged.description, logged.metadata) == ("dataset", "digits", {"rows": 2})
    assert logged.state == "COMMITTED"
    assert len(logged.digest) == 64
    assert logged.size == sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    assert logged.created_at is not None and logged.created_at.endswith("+00:00")
    entry = logged.get_entry("train.csv")
    assert (entry.path, entry.size, entry.ref) == ("train.csv", 8, None)
    assert len(entry.digest) == 64
    assert sorted(logged.manifest) == ["images/0.png", "test.csv", "train.csv"]
    assert [e.path for e in logged.files()] == ["images/0.png", "test.csv", "train.csv"]


def test_download_defaults_to_artifacts_name_version_under_the_cwd(
    logged: Artifact, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = logged.download()
    assert root == os.path.join("artifacts", "mnist:v0")
    assert read_tree(tmp_path / root) == read_tree(data_dir)
    logged.verify()  # the same default root


def test_download_again_leaves_correct_files_alone_and_repairs_the_rest(
    logged: Artifact, tmp_path: Path
) -> None:
    root = Path(logged.download(tmp_path / "out"))
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*.csv")}
    (root / "test.csv").write_text("damaged")
    (root / "images" / "0.png").unlink()
    logged.download(root)
    assert (root / "train.csv").stat().st_ino == before[root / "train.csv"][0]
    assert (root / "train.csv").stat().st_mtime_ns == before[root / "train.csv"][1]
    assert (root / "test.csv").read_text() == "a,b\n3,4\n"
    assert (root / "images" / "0.png").read_bytes() == b"\x89PNG0"


def test_download_with_a_path_prefix(logged: Artifact, tmp_path: Path) -> None:
    root = Path(logged.download(tmp_path / "out", path_prefix="images/"))
    assert [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()] == [
        "images/0.png"
    ]
    with pytest.raises(NotFound, match="nothing/"):
        logged.download(tmp_path / "out", path_prefix="nothing/")


def test_one_entry_downloads_on_its_own(logged: Artifact, tmp_path: Path) -> None:
    path = logged.get_path("test.csv").download(tmp_path / "one")
    assert Path(path).read_text() == "a,b\n3,4\n"
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["test.csv"]


def test_checkout_removes_files_not_in_the_version(logged: Artifact, tmp_path: Path) -> None:
    root = tmp_path / "work"
    (root / "stale" / "deep").mkdir(parents=True)
    (root / "stale" / "deep" / "old.txt").write_text("old")
    (root / "images" / "1.png").parent.mkdir(parents=True)
    (root / "images" / "1.png").write_text("extra")
    (root / "test.csv").write_text("changed")
    logged.checkout(root)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "images",
        "images/0.png",
        "test.csv",
        "train.csv",
    ]
    logged.verify(root)


def test_verify_names_a_changed_missing_or_extra_file(logged: Artifact, tmp_path: Path) -> None:
    root = Path(logged.download(tmp_path / "out"))
    logged.verify(root)
    (root / "test.csv").write_text("a,b\n3,5\n")  # same size, different content
    with pytest.raises(ArtifactMismatch, match=r"test\.csv: content differs"):
        logged.verify(root)
    (root / "test.csv").unlink()
    with pytest.raises(ArtifactMismatch, match=r"test\.csv: missing"):
        logged.verify(root)
    logged.download(root)
    (root / "images" / "extra.png").write_text("x")
    with pytest.raises(ArtifactMismatch, match=r"extra\.png: not part of proj/mnist:v0"):
        logged.verify(root)
    with pytest.raises(ArtifactMismatch, match="missing"):
        logged.verify(tmp_path / "never-downloaded")


def test_file_returns_the_one_file_of_a_single_file_artifact(
    run: artfs.Run, logged: Artifact, tmp_path: Path
) -> None:
    (tmp_path / "model.pt").write_bytes(b"weights")
    model = run.log_artifact(tmp_path / "model.pt", name="clf", type="model")
    path = model.file(tmp_path / "dl")
    assert Path(path) == tmp_path / "dl" / "model.pt"
    assert Path(path).read_bytes() == b"weights"
    with pytest.raises(NotASingleFile, match=r"proj/mnist:v0 holds 3 files"):
        logged.file(tmp_path / "dl2")
    assert not (tmp_path / "dl2").exists()


def test_lineage_of_a_logged_artifact(home: Path, logged: Artifact, run: artfs.Run) -> None:
    by = logged.logged_by()
    assert by is not None and by.id == run.id
    assert logged.used_by() == []
    with artfs.init(project="proj", job_type="train", home=home) as reader:
        reader.use_artifact("mnist:best")
    assert [r.id for r in logged.used_by()] == [reader.id]


# --- new_draft --------------------------------------------------------------------------------


def test_new_draft_logs_the_next_version_and_stores_only_what_changed(
    home: Path, run: artfs.Run, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(random_bytes(4 << 20, seed=1))
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    first = Artifact("ds", "dataset")
    first.add_file(big)
    first.add_file(tmp_path / "labels.txt")
    run.log_artifact(first)
    before = packs_bytes(home)

    draft = first.new_draft()
    assert (draft.state, draft.name, draft.type) == ("PENDING", "ds", "dataset")
    assert sorted(draft.manifest) == ["big.bin", "labels.txt"]
    (tmp_path / "more.txt").write_text("bird\n" * 100)
    draft.add_file(tmp_path / "more.txt", name="labels.txt", overwrite=True)
    draft.remove("big.bin")
    draft.add_file(big, name="copy/big.bin")  # same bytes under a new name: nothing stored
    with pytest.raises(ArtifactFinalized):
        first.add_file(tmp_path / "more.txt")
    second = run.log_artifact(draft)

    assert second.version == "v1"
    assert sorted(e.path for e in second.files()) == ["copy/big.bin", "labels.txt"]
    assert packs_bytes(home) - before < 4096
    assert first.version == "v0"
    assert second.get_entry("copy/big.bin").digest == first.get_entry("big.bin").digest


def test_new_draft_of_a_draft_is_refused() -> None:
    with pytest.raises(artfs.NotLogged):
        Artifact("x", "dataset").new_draft()


def test_an_unchanged_new_draft_reports_the_same_version(logged: Artifact, run: artfs.Run) -> None:
    again = run.log_artifact(logged.new_draft())
    assert again.version == "v0"


# --- save -------------------------------------------------------------------------------------


def test_save_persists_description_metadata_aliases_and_tags(logged: Artifact, home: Path) -> None:
    logged.description = "handwritten digits"
    logged.metadata["source"] = "nist"
    logged.aliases.remove("best")
    logged.aliases.append("prod")
    logged.tags = ["clean"]
    logged.save()
    fresh = Api(home=home).artifact("proj/mnist:v0")
    assert fresh.description == "handwritten digits"
    assert fresh.metadata == {"rows": 2, "source": "nist"}
    assert sorted(fresh.aliases) == ["latest", "prod"]
    assert fresh.tags == ["clean"]
    assert sorted(logged.aliases) == ["latest", "prod"]
    with pytest.raises(NotFound):
        Api(home=home).artifact("proj/mnist:best")


def test_save_moves_an_alias_from_another_version(
    logged: Artifact, run: artfs.Run, data_dir: Path, home: Path
) -> None:
    (data_dir / "new.csv").write_text("1")
    second = run.log_artifact(data_dir, name="mnist", type="dataset")
    second.aliases.append("best")
    second.save()
    assert Api(home=home).artifact("proj/mnist:best").version == "v1"
    assert Api(home=home).artifact("proj/mnist:v0").aliases == []


@pytest.mark.parametrize(
    "edit",
    [
        lambda a, p: a.add_file(p / "train.csv"),
        lambda a, p: a.add_dir(p),
        lambda a, p: a.add_reference((p / "train.csv").as_uri()),
        lambda a, p: a.remove("train.csv"),
        lambda a, p: a.new_file("new.txt").__enter__(),
    ],
    ids=["add_file", "add_dir", "add_reference", "remove", "new_file"],
)
def test_the_files_of_a_logged_version_cannot_change(
    logged: Artifact, data_dir: Path, edit: Any, catalog_state: Any
) -> None:
    before = catalog_state()
    with pytest.raises(ArtifactFinalized, match=r"proj/mnist:v0.*new_draft\(\)"):
        edit(logged, data_dir)
    assert catalog_state() == before
    assert sorted(logged.manifest) == ["images/0.png", "test.csv", "train.csv"]


# --- delete -----------------------------------------------------------------------------------


def test_delete_refuses_a_version_holding_aliases_unless_told(
    logged: Artifact, home: Path, store_state: Any
) -> None:
    before = store_state()
    with pytest.raises(AliasesHeld, match=r"proj/mnist:v0.*best.*delete_aliases=True"):
        logged.delete()
    assert store_state() == before
    logged.delete(delete_aliases=True)
    assert logged.state == "DELETED"
    assert not Api(home=home).artifact_exists("proj/mnist:v0")
    assert not Api(home=home).artifact_exists("proj/mnist:best")


def test_delete_of_a_version_with_only_latest(run: artfs.Run, data_dir: Path, home: Path) -> None:
    first = run.log_artifact(data_dir, name="mnist", type="dataset")
    (data_dir / "x").write_text("x")
    second = run.log_artifact(data_dir, name="mnist", type="dataset")
    second.delete()
    assert [a.version for a in Api(home=home).artifacts("dataset", "proj/mnist")] == ["v0"]
    assert Api(home=home).artifact("proj/mnist:latest").digest == first.digest
