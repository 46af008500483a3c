"""W&B's distributed runs (``upsert_artifact`` from several runs, then ``finish_artifact``)
and registry links (``link_artifact``, ``link_model``, ``log_model``, ``use_model``), ported
with only the import changed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import artfs as wandb


@pytest.fixture(autouse=True)
def store_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ARTFS_HOME", str(home))
    yield home


WORKER = """
import sys
import artfs as wandb

worker, files = int(sys.argv[1]), int(sys.argv[2])
with wandb.init(project="proj", group="shard-job", job_type="worker") as run:
    artifact = wandb.Artifact("shards", type="dataset")
    for n in range(files):
        with artifact.new_file(f"worker{worker}/part{n}.txt") as f:
            f.write(f"{worker}:{n}")
    run.upsert_artifact(artifact)  # distributed_id defaults to the group
    print(run.id)
"""


def start_workers(
    home: Path, tmp_path: Path, count: int, files: int
) -> list[subprocess.Popen[str]]:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["ARTFS_HOME"] = str(home)
    env["TMPDIR"] = str(tmp_path)
    return [
        subprocess.Popen(
            [sys.executable, str(script), str(w), str(files)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(count)
    ]


def test_concurrent_upserts_from_several_processes_make_one_version(
    home: Path, tmp_path: Path
) -> None:
    workers = start_workers(home, tmp_path, count=4, files=5)
    worker_ids = []
    for proc in workers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        worker_ids.append(out.strip())

    with wandb.init(project="proj", group="shard-job", job_type="finish") as run:
        artifact = wandb.Artifact("shards", type="dataset", metadata={"workers": 4})
        with artifact.new_file("index.txt") as f:
            f.write("4 workers")
        run.finish_artifact(artifact, aliases=["complete"])
        assert artifact.version == "v0"
        again = run.finish_artifact(wandb.Artifact("shards", type="dataset"))
        assert again.version == "v0"  # committed once, whoever calls it

    logged = wandb.Api().artifact("proj/shards:complete")
    paths = sorted(e.path for e in logged.files())
    assert len(paths) == 21 and "index.txt" in paths and "worker3/part4.txt" in paths
    assert logged.metadata == {"workers": 4}
    assert [a.version for a in wandb.Api().artifacts("dataset", "proj/shards")] == ["v0"]

    by = logged.logged_by()
    assert by is not None and by.id == run.id
    for worker_id in worker_ids:
        contributor = wandb.Api().run(worker_id)
        assert [a.qualified_name for a in contributor.logged_artifacts()] == ["proj/shards:v0"]
    from artfs.lineage import Lineage, build_graph

    store = wandb.Api()._store
    graph = build_graph(Lineage(store), logged._logged(), "up")
    producers = {n["run_id"] for n in graph.nodes.values() if n["kind"] == "run"}
    assert producers == {run.id, *worker_ids}


def test_finish_without_upserts_and_without_an_id_say_what_to_do(tmp_path: Path) -> None:
    with wandb.init(project="proj") as run:
        with pytest.raises(wandb.errors.UsageError, match="distributed_id="):
            run.upsert_artifact(wandb.Artifact("x", type="dataset"))
        with pytest.raises(wandb.errors.UsageError, match="upsert_artifact first"):
            run.finish_artifact(wandb.Artifact("x", type="dataset"), distributed_id="d1")


def test_upserts_of_another_type_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    with wandb.init(project="proj") as run:
        run.upsert_artifact(str(tmp_path / "a"), name="x", type="dataset", distributed_id="d")
        with pytest.raises(wandb.errors.CommError, match="type='dataset'"):
            run.upsert_artifact(str(tmp_path / "a"), name="x", type="model", distributed_id="d")


def test_link_artifact_into_a_registry_collection(tmp_path: Path, run_cli: Any) -> None:
    (tmp_path / "model.pt").write_bytes(b"weights" * 1000)
    with wandb.init(project="training") as trainer:
        model = trainer.log_artifact(str(tmp_path / "model.pt"), name="clf", type="model")
    with wandb.init(project="training", job_type="promote") as run:
        chosen = run.use_artifact("clf:latest")
        member = run.link_artifact(chosen, "wandb-registry-model/production", aliases=["prod"])
        assert member is not None and member.qualified_name == "wandb-registry-model/production:v0"
        again = run.link_artifact(chosen, "wandb-registry-model/production")
        assert again is not None and again.version == "v0"  # the same content: the same member

    api = wandb.Api()
    linked = api.artifact("wandb-registry-model/production:prod")
    assert linked.digest == model.digest and linked.type == "model"
    assert api.artifact("my-team/wandb-registry-model/production:latest").version == "v0"
    by = linked.logged_by()
    assert by is not None and by.id == run.id  # lineage: clf:v0 -> promote run -> member
    assert [r.id for r in api.artifact("training/clf:v0").used_by()] == [run.id]
    api._store.close()
    listing = run_cli("ls", "wandb-registry-model", check=True).stdout
    assert "production" in listing


def test_a_run_linking_what_it_logged_records_no_use_of_it(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"w")
    with wandb.init(project="training") as run:
        model = run.log_artifact(str(tmp_path / "model.pt"), name="clf", type="model")
        run.link_artifact(model, "wandb-registry-model/production")
        assert [a.qualified_name for a in run.logged_artifacts()] == [
            "training/clf:v0",
            "wandb-registry-model/production:v0",
        ]
        assert run.used_artifacts() == []


def test_log_model_use_model_and_link_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # use_model downloads below ./artifacts, as W&B does
    (tmp_path / "model.pt").write_bytes(b"w")
    with wandb.init(project="proj") as run:
        logged = wandb.log_model(str(tmp_path / "model.pt"), aliases=["best"])
        assert (logged.name, logged.type) == (f"run-{run.id}-model.pt:v0", "model")
        member = wandb.link_model(
            str(tmp_path / "model.pt"), "mnist-classifier", aliases=["staging-ok"]
        )
        assert member is not None and member.qualified_name == "model-registry/mnist-classifier:v0"
    with wandb.init(project="proj", job_type="eval"):
        path = wandb.use_model(f"run-{run.id}-model.pt:best")
        assert Path(path).read_bytes() == b"w"


def test_artifact_link_without_a_run_and_the_identical_member(tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"m")
    with wandb.init(project="proj") as run:
        run.log_artifact(str(tmp_path / "m.bin"), name="m", type="model")
    source = wandb.Api().artifact("proj/m:latest")
    member = source.link("wandb-registry-model/m-prod", aliases=["prod"])
    assert member.qualified_name == "wandb-registry-model/m-prod:v0"
    assert wandb.Api().artifact("wandb-registry-model/m-prod:prod").digest == source.digest


def test_log_model_of_a_reference_uri(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w" * 10)
    with wandb.init(project="proj") as run:
        model = run.log_model((tmp_path / "weights.bin").as_uri(), name="ext-model")
        assert [(e.path, e.ref is not None) for e in model.files()] == [("weights.bin", True)]
