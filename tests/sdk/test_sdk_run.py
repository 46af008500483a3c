"""``artfs.init`` and ``Run``: recording, finishing, logging and using artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import artfs
import artfs.sdk.run as run_module
from artfs import Api, Artifact, NotFound, TypeMismatch
from artfs.errors import UsageError
from artfs.fs.staging_files import STORE_FILE
from artfs.store import Store


def test_init_records_a_run_with_what_w_and_b_exposes(home: Path) -> None:
    run = artfs.init(project="proj", job_type="train", name="first", config={"lr": 0.1}, home=home)
    assert len(run.id) == 8
    assert (run.project, run.job_type, run.name, run.config) == (
        "proj",
        "train",
        "first",
        {"lr": 0.1},
    )
    assert run.state == "running"
    assert artfs.current() is run
    run.finish()
    assert run.state == "finished"
    assert artfs.current() is None
    past = Api(home=home).run(run.id)
    assert (past.id, past.name, past.config, past.state) == (
        run.id,
        "first",
        {"lr": 0.1},
        "finished",
    )
    assert past.record.exit_code == 0


def test_a_run_without_a_name_gets_one_from_its_job_type(home: Path) -> None:
    with artfs.init(project="proj", job_type="eval", home=home) as run:
        assert run.name == f"eval-{run.id}"


def test_the_context_manager_finishes_with_exit_code_1_when_the_block_raises(home: Path) -> None:
    with pytest.raises(RuntimeError), artfs.init(project="proj", home=home) as run:
        raise RuntimeError("boom")
    past = Api(home=home).run(run.id)
    assert (past.state, past.record.exit_code) == ("failed", 1)
    assert artfs.current() is None


def test_finish_with_an_exit_code_and_twice(home: Path) -> None:
    run = artfs.init(project="proj", home=home)
    run.finish(exit_code=3)
    run.finish()  # a second finish changes nothing
    past = Api(home=home).run(f"proj/{run.id}")
    assert (past.state, past.record.exit_code) == ("failed", 3)


def test_init_refuses_a_bad_project_name(home: Path) -> None:
    with pytest.raises(artfs.InvalidName, match="project"):
        artfs.init(project="no/slashes", home=home)


# --- log_artifact -----------------------------------------------------------------------------


def test_log_artifact_creates_v0_with_latest_and_the_given_aliases_and_tags(
    run: artfs.Run, data_dir: Path
) -> None:
    art = Artifact("mnist", "dataset")
    art.add_dir(data_dir)
    logged = run.log_artifact(art, aliases=["best"], tags=["raw"])
    assert logged is art  # W&B returns the same object, now logged
    assert (art.name, art.version, art.qualified_name) == ("mnist:v0", "v0", "proj/mnist:v0")
    assert sorted(art.aliases) == ["best", "latest"]
    assert art.tags == ["raw"]
    assert art.state == "COMMITTED"


def test_logging_identical_content_reports_the_existing_version(
    run: artfs.Run, data_dir: Path, api: Api
) -> None:
    first = Artifact("mnist", "dataset")
    first.add_dir(data_dir)
    run.log_artifact(first)
    again = Artifact("mnist", "dataset")
    again.add_dir(data_dir)
    run.log_artifact(again, aliases=["same"])
    assert again.version == "v0"
    assert again.digest == first.digest
    assert "same" in again.aliases
    assert [a.version for a in api.artifacts("dataset", "proj/mnist")] == ["v0"]


def test_changed_content_becomes_the_next_version_and_latest_moves(
    run: artfs.Run, data_dir: Path, api: Api
) -> None:
    run.log_artifact(data_dir, name="mnist", type="dataset")
    (data_dir / "train.csv").write_text("a,b\n9,9\n")
    second = run.log_artifact(data_dir, name="mnist", type="dataset")
    assert second.version == "v1"
    assert api.artifact("proj/mnist:v0").aliases == []
    assert api.artifact("proj/mnist").version == "v1"


def test_log_artifact_takes_a_file_or_directory_path(run: artfs.Run, data_dir: Path) -> None:
    from_dir = run.log_artifact(data_dir, type="dataset")
    assert from_dir.name == "data:v0"
    assert sorted(e.path for e in from_dir.files()) == ["images/0.png", "test.csv", "train.csv"]
    from_file = run.log_artifact(data_dir / "train.csv", name="train", type="table")
    assert (from_file.name, from_file.type) == ("train:v0", "table")
    assert [e.path for e in from_file.files()] == ["train.csv"]
    untyped = run.log_artifact(data_dir / "test.csv")
    assert untyped.type == "unspecified"


def test_logged_artifacts_are_attributed_to_the_run(run: artfs.Run, data_dir: Path) -> None:
    logged = run.log_artifact(data_dir, name="mnist", type="dataset")
    by = logged.logged_by()
    assert by is not None and by.id == run.id
    assert [a.qualified_name for a in run.logged_artifacts()] == ["proj/mnist:v0"]


# --- use_artifact -----------------------------------------------------------------------------


@pytest.fixture
def two_versions(run: artfs.Run, data_dir: Path) -> Any:
    run.log_artifact(data_dir, name="mnist", type="dataset", aliases=["first"])
    (data_dir / "extra.txt").write_text("more")
    run.log_artifact(data_dir, name="mnist", type="dataset")
    run.finish()


@pytest.mark.usefixtures("two_versions")
@pytest.mark.parametrize(
    ("ref", "version"),
    [
        ("mnist", "v1"),
        ("mnist:latest", "v1"),
        ("mnist:first", "v0"),
        ("mnist:v0", "v0"),
        ("proj/mnist:v1", "v1"),
        ("proj/mnist:first", "v0"),
    ],
)
def test_use_artifact_resolves_names_aliases_and_versions(
    home: Path, ref: str, version: str
) -> None:
    with artfs.init(project="proj", job_type="train", home=home) as run:
        used = run.use_artifact(ref)
        assert used.version == version
        assert used.type == "dataset"


@pytest.mark.usefixtures("two_versions")
def test_use_artifact_records_the_usage_edge_both_ways(home: Path) -> None:
    with artfs.init(project="other", job_type="train", home=home) as run:
        used = run.use_artifact("proj/mnist:v0", type="dataset")
        assert [r.id for r in used.used_by()] == [run.id]
        assert [a.qualified_name for a in run.used_artifacts()] == ["proj/mnist:v0"]
    assert Api(home=home).artifact("proj/mnist:v1").used_by() == []


@pytest.mark.usefixtures("two_versions")
def test_use_artifact_accepts_a_logged_artifact_object(home: Path) -> None:
    logged = Api(home=home).artifact("proj/mnist:v1")
    with artfs.init(project="proj", home=home) as run:
        assert run.use_artifact(logged).version == "v1"
        assert [r.id for r in logged.used_by()] == [run.id]


@pytest.mark.usefixtures("two_versions")
def test_use_artifact_with_the_wrong_type_records_nothing(home: Path) -> None:
    with artfs.init(project="proj", home=home) as run:
        with pytest.raises(TypeMismatch, match=r"proj/mnist:v1.*'dataset'.*'model'"):
            run.use_artifact("mnist:latest", type="model")
        assert run.used_artifacts() == []


@pytest.mark.usefixtures("two_versions")
@pytest.mark.parametrize("ref", ["mnist:nope", "mnist:v7", "missing:latest", "elsewhere/mnist"])
def test_use_artifact_of_something_unknown_is_not_found(home: Path, ref: str) -> None:
    with artfs.init(project="proj", home=home) as run:
        with pytest.raises(NotFound):
            run.use_artifact(ref)
        assert run.used_artifacts() == []


def test_a_run_read_back_logs_and_uses_artifacts_as_w_and_b_public_run_does(
    home: Path, data_dir: Path
) -> None:
    with artfs.init(project="proj", job_type="prep", home=home) as run:
        pass
    past = Api(home=home).run(run.id)
    logged = past.log_artifact(data_dir, name="mnist", type="dataset")
    by = logged.logged_by()
    assert by is not None and (by.id, by.job_type) == (run.id, "prep")
    assert past.use_artifact("mnist:latest", type="dataset").version == "v0"
    assert [r.id for r in logged.used_by()] == [run.id]
    assert [a.qualified_name for a in by.used_artifacts()] == ["proj/mnist:v0"]
    assert type(by) is type(past) is artfs.PublicRun  # the public API's run, either way
    assert isinstance(run, artfs.PublicRun) and not isinstance(past, artfs.Run)


# --- mount_path (the tree a running ``artfs mount`` shows; a plain directory stands in) -------


@pytest.mark.usefixtures("two_versions")
def test_mount_path_names_the_version_under_the_mount_and_records_the_use(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mnt = tmp_path / "mnt"
    (mnt / "proj" / "mnist" / "v0").mkdir(parents=True)
    with Store.open(home) as store:
        store_id = store.store_id
    with artfs.init(project="proj", job_type="train", home=home) as run:
        assert run.mount_path("mnist:first", mountpoint=mnt) == mnt / "proj" / "mnist" / "v0"
        assert [a.version for a in run.used_artifacts()] == ["v0"]
        monkeypatch.setenv("ARTFS_MOUNT", str(mnt))
        assert run.mount_path("proj/mnist:v0") == mnt / "proj" / "mnist" / "v0"
        with pytest.raises(NotFound, match=r"proj/mnist:v1 is not visible"):
            run.mount_path("mnist:latest")
        monkeypatch.delenv("ARTFS_MOUNT")
        # The mount table as the SDK reads it: another store's mount shows proj/mnist:v0 too,
        # and is passed over; so is one that shows no store (an older daemon, a dead mount).
        other, unknown, ours = (tmp_path / n for n in ("other", "unknown", "ours"))
        for base in (other, unknown, ours):
            (base / "proj" / "mnist" / "v0").mkdir(parents=True)
        (other / STORE_FILE).write_text("0" * 32 + "\n")
        monkeypatch.setattr(run_module, "_artfs_mounts", lambda: [str(other), str(unknown)])
        with pytest.raises(NotFound, match="no artfs mount of this store shows project 'proj'"):
            run.mount_path("mnist:latest")
        assert [a.version for a in run.used_artifacts()] == ["v0"]  # v1 not found: not used
        (ours / STORE_FILE).write_text(store_id + "\n")
        monkeypatch.setattr(run_module, "_artfs_mounts", lambda: [str(other), str(ours)])
        assert run.mount_path("mnist:v0") == ours / "proj" / "mnist" / "v0"
        # Named by the caller, another store's mount is an error, not a read of its files.
        with pytest.raises(UsageError, match=rf"the mountpoint given \({other}\) is a mount of"):
            run.mount_path("mnist:v0", mountpoint=other)
        monkeypatch.setenv("ARTFS_MOUNT", str(other))
        with pytest.raises(UsageError, match=r"\$ARTFS_MOUNT \(.*\) is a mount of store 0+, not"):
            run.mount_path("mnist:v0")
