"""W&B's public API (``wandb.Api``) with its signatures, ported with only the import changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import artfs as wandb


@pytest.fixture(autouse=True)
def store_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ARTFS_HOME", str(home))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    yield home


@pytest.fixture
def logged(tmp_path: Path) -> dict[str, str]:
    """proj/mnist v0, v1 (dataset, v0 tagged raw), proj/clf v0 (model, alias best), from runs
    with config and summaries."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    ids = {}
    with wandb.init(project="proj", job_type="prep", group="g1", tags=["data"]) as run:
        run.log_artifact(str(src), name="mnist", type="dataset", tags=["raw"])
        (src / "b.txt").write_text("b")
        run.log_artifact(str(src), name="mnist", type="dataset")
        ids["prep"] = run.id
    with wandb.init(project="proj", job_type="train", config={"lr": 0.1}) as run:
        run.use_artifact("mnist:v0")
        run.log({"acc": 0.9})
        model = wandb.Artifact("clf", type="model")
        model.add_file(str(src / "a.txt"))
        run.log_artifact(model, aliases=["best"])
        ids["train"] = run.id
    with wandb.init(project="proj", job_type="train", config={"lr": 0.01}) as run:
        run.log({"acc": 0.7})
        ids["train2"] = run.id
    return ids


@pytest.mark.usefixtures("logged")
def test_artifact_and_exists_with_type_and_every_path_form() -> None:
    api = wandb.Api()
    assert api.artifact("proj/mnist:v0", type="dataset").version == "v0"
    assert api.artifact("my-team/proj/clf:best").type == "model"
    assert wandb.Api(overrides={"project": "proj"}).artifact("mnist").version == "v1"
    assert api.artifact_exists("proj/clf:best", type="model")
    assert not api.artifact_exists("proj/clf:best", type="dataset")
    assert not api.artifact_exists("proj/clf:nope")


@pytest.mark.usefixtures("logged")
def test_artifacts_and_artifact_versions_take_type_name_then_name() -> None:
    api = wandb.Api()
    assert [a.version for a in api.artifacts("dataset", "proj/mnist")] == ["v0", "v1"]
    assert [a.version for a in api.artifacts("dataset", "team/proj/mnist", tags=["raw"])] == ["v0"]
    assert [a.version for a in api.artifact_versions("dataset", "proj/mnist")] == ["v0", "v1"]
    with pytest.raises(wandb.errors.CommError, match="not 'model'"):
        api.artifacts("model", "proj/mnist")


@pytest.mark.usefixtures("logged")
def test_artifact_collection_and_collections() -> None:
    api = wandb.Api()
    collection = api.artifact_collection("model", "proj/clf")
    assert (collection.name, collection.type, collection.aliases) == (
        "clf",
        "model",
        ["best", "latest"],
    )
    assert [a.version for a in collection.artifacts()] == ["v0"]
    assert api.artifact_collection_exists("proj/mnist", type="dataset")
    assert not api.artifact_collection_exists("proj/ghost", type="dataset")
    names = {c.name for c in api.artifact_collections(project_name="proj", type_name="dataset")}
    assert names == {"mnist"}
    assert api.artifact_types("proj") == ["dataset", "model"]


def test_run_by_path_and_runs_with_filters_and_order(logged: dict[str, str]) -> None:
    api = wandb.Api()
    assert api.run(f"team/proj/{logged['train']}").config == {"lr": 0.1}
    assert api.run(f"team/proj/runs/{logged['train']}").id == logged["train"]
    trains = api.runs("proj", filters={"jobType": "train"})
    assert {r.id for r in trains} == {logged["train"], logged["train2"]}
    assert [r.id for r in api.runs("team/proj", filters={"config.lr": {"$gte": 0.05}})] == [
        logged["train"]
    ]
    assert [r.id for r in api.runs("proj", filters={"summary_metrics.acc": {"$lt": 0.8}})] == [
        logged["train2"]
    ]
    assert [r.id for r in api.runs("proj", filters={"tags": {"$in": ["data"]}})] == [logged["prep"]]
    either = {"$or": [{"group": "g1"}, {"config.lr": 0.01}]}
    assert {r.id for r in api.runs("proj", filters=either)} == {logged["prep"], logged["train2"]}
    assert [r.id for r in api.runs("proj", filters={"state": "finished"}, order="-created_at")] == [
        logged["train2"],
        logged["train"],
        logged["prep"],
    ]
    best_first = api.runs("proj", order="-summary_metrics.acc")
    assert [r.id for r in best_first][:2] == [logged["train"], logged["train2"]]
    with pytest.raises(wandb.errors.UsageError, match="cannot filter runs on 'colour'"):
        api.runs("proj", filters={"colour": "red"})


def test_lineage_through_the_api(logged: dict[str, str]) -> None:
    api = wandb.Api()
    model = api.artifact("proj/clf:best")
    producer = model.logged_by()
    assert producer is not None and producer.id == logged["train"]
    assert [a.qualified_name for a in producer.used_artifacts()] == ["proj/mnist:v0"]
    assert [r.id for r in api.artifact("proj/mnist:v0").used_by()] == [logged["train"]]
