"""W&B's documented artifact workflows (construct, new version, incremental, download and use,
update, TTL, delete), ported with only the import changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import artfs as wandb
from artfs.sdk.artifact import ArtifactTTL


@pytest.fixture(autouse=True)
def store_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ARTFS_HOME", str(home))
    yield home


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "train.csv").write_text("x,y\n1,2\n")
    (root / "images" / "0.png").write_bytes(b"\x89PNG0")
    return root


def test_construct_log_wait_and_use(data: Path, tmp_path: Path) -> None:
    run = wandb.init(project="artifacts-example", job_type="add-dataset")
    artifact = wandb.Artifact(name="example_artifact", type="dataset")
    artifact.add_dir(local_path=str(data))
    artifact.add_file(local_path=str(data / "train.csv"), name="copy/train.csv")
    run.log_artifact(artifact)
    assert artifact.wait() is artifact
    assert (artifact.version, artifact.file_count, artifact.is_draft()) == ("v0", 3, False)
    run.finish()

    run = wandb.init(project="artifacts-example", job_type="train")
    used = run.use_artifact("example_artifact:latest")
    root = used.download(root=str(tmp_path / "dl"))
    assert (Path(root) / "copy" / "train.csv").read_text() == "x,y\n1,2\n"
    run.finish()


def test_wait_on_a_draft_says_to_log_it() -> None:
    with pytest.raises(wandb.errors.UsageError, match="log it"):
        wandb.Artifact("d", type="dataset").wait()


def test_add_takes_paths_and_uris_and_refuses_media_objects(data: Path) -> None:
    artifact = wandb.Artifact("mixed", type="dataset")
    artifact.add(str(data / "train.csv"), name="t.csv")
    artifact.add(str(data / "images"), name="imgs")
    artifact.add(data.as_uri() + "/train.csv", name="ref.csv")
    assert sorted(e.path for e in artifact.files()) == ["imgs/0.png", "ref.csv", "t.csv"]

    class Table:  # stands in for wandb.Table
        pass

    with pytest.raises(wandb.errors.UnsupportedError, match=r"Table.*add that"):
        artifact.add(Table(), "table")


def test_new_version_incremental_with_new_draft_and_with_incremental_true(data: Path) -> None:
    with wandb.init(project="proj") as run:
        run.log_artifact(str(data), name="ds", type="dataset")
    with wandb.init(project="proj") as run:
        draft = run.use_artifact("ds:latest").new_draft()
        (data / "extra.txt").write_text("more")
        draft.add_file(str(data / "extra.txt"))
        draft.remove(draft.get_entry("images/0.png"))  # W&B takes an entry or a path
        run.log_artifact(draft)
        assert sorted(e.path for e in draft.files()) == ["extra.txt", "train.csv"]

        (data / "val.csv").write_text("x,y\n5,6\n")
        increment = wandb.Artifact("ds", type="dataset", incremental=True)
        increment.add_file(str(data / "val.csv"))
        run.log_artifact(increment)
        assert increment.version == "v2"
        assert sorted(e.path for e in increment.files()) == ["extra.txt", "train.csv", "val.csv"]


def test_update_description_metadata_and_aliases_as_an_editable_list(data: Path) -> None:
    with wandb.init(project="proj") as run:
        run.log_artifact(str(data), name="ds", type="dataset", aliases=["candidate"])
    artifact = wandb.Api().artifact("proj/ds:latest")
    artifact.description = "the training set"
    artifact.metadata["rows"] = 1
    artifact.aliases.append("best")
    artifact.aliases.remove("candidate")
    artifact.save()
    again = wandb.Api().artifact("proj/ds:best")
    assert again.description == "the training set" and again.metadata == {"rows": 1}
    assert sorted(again.aliases) == ["best", "latest"]
    assert not wandb.Api().artifact_exists("proj/ds:candidate")


def test_ttl_on_a_draft_and_on_a_logged_version(data: Path) -> None:
    with wandb.init(project="proj") as run:
        artifact = wandb.Artifact("ds", type="dataset")
        artifact.add_dir(str(data))
        artifact.ttl = timedelta(days=30)
        run.log_artifact(artifact)
    logged = wandb.Api().artifact("proj/ds:v0")
    assert logged.ttl == timedelta(days=30)
    logged.ttl = None
    logged.save()
    assert wandb.Api().artifact("proj/ds:v0").ttl is None
    logged.ttl = timedelta(days=7)
    logged.save()
    assert wandb.Api().artifact("proj/ds:v0").ttl == timedelta(days=7)
    logged.ttl = ArtifactTTL.INHERIT  # no team policy here: no TTL
    logged.save()
    assert wandb.Api().artifact("proj/ds:v0").ttl is None
    with pytest.raises(wandb.errors.UsageError, match="timedelta"):
        logged.ttl = 30  # type: ignore[assignment]


def test_delete_a_version_and_a_collection(data: Path) -> None:
    with wandb.init(project="proj") as run:
        run.log_artifact(str(data), name="ds", type="dataset", aliases=["best"])
        (data / "n.txt").write_text("n")
        run.log_artifact(str(data), name="ds", type="dataset")
    api = wandb.Api()
    with pytest.raises(wandb.errors.CommError, match="delete_aliases=True"):
        api.artifact("proj/ds:v0").delete()
    api.artifact("proj/ds:v0").delete(delete_aliases=True)
    assert [a.version for a in api.artifacts("dataset", "proj/ds")] == ["v1"]
    api.artifact_collection("dataset", "proj/ds").delete()
    assert not api.artifact_collection_exists("proj/ds", type="dataset")
