"""W&B's ``wandb.init`` and module-level calls, ported with only the import changed.

Each test is a W&B documentation workflow written as a W&B user writes it (``import artfs as
wandb``); the store comes from ``ARTFS_HOME`` as it would on a user's machine.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import artfs as wandb


@pytest.fixture(autouse=True)
def store_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ARTFS_HOME", str(home))
    for name in ("WANDB_PROJECT", "WANDB_ENTITY", "WANDB_MODE", "WANDB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    yield home


def test_init_with_w_and_b_keyword_arguments_records_them() -> None:
    run = wandb.init(
        entity="my-team",
        project="mnist",
        name="baseline",
        job_type="train",
        group="sweep-1",
        tags=["baseline", "cnn v2"],
        notes="first try",
        config={"lr": 0.01, "epochs": 3},
    )
    assert wandb.run is run
    assert (run.entity, run.project, run.name, run.job_type) == (
        "my-team",
        "mnist",
        "baseline",
        "train",
    )
    assert (run.group, run.tags, run.notes) == ("sweep-1", ("baseline", "cnn v2"), "first try")
    assert run.path == f"my-team/mnist/{run.id}"
    wandb.finish()
    assert wandb.run is None
    past = wandb.Api().run(f"my-team/mnist/{run.id}")
    assert (past.entity, past.group, list(past.tags), past.notes) == (
        "my-team",
        "sweep-1",
        ["baseline", "cnn v2"],
        "first try",
    )
    assert past.config == {"lr": 0.01, "epochs": 3}
    assert past.state == "finished"


def test_config_takes_attribute_and_item_access_and_update_and_is_saved() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args([])
    run = wandb.init(project="mnist", config=args)
    wandb.config.lr = 0.1
    wandb.config["dropout"] = 0.5
    wandb.config.update({"optimizer": "adam"})
    assert wandb.config.batch_size == 32 and run.config["lr"] == 0.1
    with pytest.raises(wandb.errors.UsageError, match="allow_val_change"):
        wandb.config.update({"lr": 0.2})
    wandb.config.update({"lr": 0.2}, allow_val_change=True)
    wandb.finish()
    assert wandb.Api().run(f"mnist/{run.id}").config == {
        "batch_size": 32,
        "lr": 0.2,
        "dropout": 0.5,
        "optimizer": "adam",
    }


def test_config_values_are_kept_as_json_and_objects_are_refused() -> None:
    class Scalar:  # what numpy.float32(0.5) looks like to artfs: .item() and ndim 0
        ndim = 0

        def item(self) -> float:
            return 0.5

    with wandb.init(project="mnist", config={"lr": Scalar(), "layers": (64, 32)}) as run:
        assert run.config == {"lr": 0.5, "layers": [64, 32]}
    with pytest.raises(wandb.errors.UnsupportedError, match=r"config\.model"):
        wandb.init(project="mnist", config={"model": object()})
    assert wandb.Api().run(run.id).config == {"lr": 0.5, "layers": [64, 32]}


def test_module_level_calls_before_init_say_to_call_init() -> None:
    assert wandb.run is None
    with pytest.raises(wandb.errors.UsageError, match=r"init\(\)"):
        wandb.log({"loss": 1.0})
    with pytest.raises(wandb.errors.UsageError, match=r"init\(\)"):
        _ = wandb.config.lr
    with pytest.raises(wandb.errors.UsageError, match=r"init\(\)"):
        wandb.log_artifact("nothing")
    wandb.finish()  # no run: nothing to do, as in W&B
    assert wandb.login() is True


def test_log_artifact_and_use_artifact_at_module_level(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    wandb.init(project="mnist", job_type="upload")
    artifact = wandb.Artifact("raw", type="dataset")
    artifact.add_file(str(tmp_path / "data.csv"))
    wandb.log_artifact(artifact, aliases=["first"])
    wandb.finish()

    run = wandb.init(project="mnist", job_type="train")
    used = wandb.use_artifact("raw:first")
    assert used.version == "v0"
    assert [a.qualified_name for a in run.used_artifacts()] == ["mnist/raw:v0"]
    wandb.finish()


def test_entity_paths_are_accepted_and_checked_against_the_store_entity(
    tmp_path: Path, home: Path, run_cli: Any
) -> None:
    (tmp_path / "m.bin").write_bytes(b"weights")
    with wandb.init(entity="anyone", project="proj") as run:
        run.log_artifact(str(tmp_path / "m.bin"), name="model", type="model")
    api = wandb.Api()
    assert api.artifact("anyone/proj/model:latest").version == "v0"
    assert api.artifact("someone-else/proj/model:v0").version == "v0"  # the store names none
    assert [c.name for c in api.artifact_collections("anyone/proj")] == ["model"]
    wandb.Api()._store.close()

    assert run_cli("config", "entity", "my-team", check=True).stdout == "entity = my-team\n"
    api = wandb.Api()
    assert api.artifact("my-team/proj/model:v0").type == "model"
    with pytest.raises(wandb.errors.CommError, match="not this store's entity 'my-team'"):
        api.artifact("other/proj/model:v0")
    with pytest.raises(wandb.errors.CommError, match="my-team"):
        wandb.init(entity="other", project="proj")
    assert wandb.run is None


def test_a_bad_path_is_a_usage_error_naming_the_form() -> None:
    with pytest.raises(wandb.errors.UsageError, match=r"\[ENTITY/\]PROJECT/NAME"):
        wandb.Api().artifact("a/b/c/d:v0")


def test_not_found_is_caught_as_w_and_b_s_comm_error() -> None:
    api = wandb.Api()
    try:
        api.artifact("proj/missing:latest")
    except wandb.errors.CommError as exc:
        assert "proj" in str(exc)
    else:
        pytest.fail("no CommError")
    assert issubclass(wandb.errors.UsageError, wandb.Error)


def test_disabled_mode_records_nothing_but_the_script_runs(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    run = wandb.init(project="proj", mode="disabled", config={"lr": 1})
    wandb.log({"loss": 0.5})
    assert wandb.summary["loss"] == 0.5 and wandb.config.lr == 1
    art = wandb.Artifact("d", type="dataset")
    art.add_file(str(tmp_path / "f.txt"))
    assert wandb.log_artifact(art).state == "PENDING"
    wandb.finish()
    assert run.disabled
    assert wandb.Api().runs("proj") == []


def test_offline_mode_records_locally_and_a_bad_mode_is_refused() -> None:
    with wandb.init(project="proj", mode="offline") as run:
        pass
    assert wandb.Api().run(run.id).state == "finished"
    with pytest.raises(wandb.errors.UsageError, match="invalid mode"):
        wandb.init(project="proj", mode="sometimes")


def test_id_and_resume_continue_a_run_and_its_history() -> None:
    run_id = wandb.util.generate_id()
    first = wandb.init(project="proj", id=run_id, resume="allow")
    wandb.log({"loss": 1.0})
    wandb.log({"loss": 0.8})
    first.finish()
    with pytest.raises(wandb.errors.UsageError, match="resume='allow'"):
        wandb.init(project="proj", id=run_id)
    again = wandb.init(project="proj", id=run_id, resume="must")
    assert again.id == run_id and again.state == "running"
    wandb.log({"loss": 0.5})
    again.finish()
    rows = wandb.Api().run(run_id).history(pandas=False)
    assert [(r["_step"], r["loss"]) for r in rows] == [(0, 1.0), (1, 0.8), (2, 0.5)]
    with pytest.raises(wandb.errors.UsageError, match="no run"):
        wandb.init(project="proj", id=wandb.util.generate_id(), resume="must")
    with pytest.raises(wandb.errors.UsageError, match="8 lowercase"):
        wandb.init(project="proj", id="My_Run")


def test_reinit_returns_finishes_or_keeps_the_active_run() -> None:
    first = wandb.init(project="proj")
    assert wandb.init(project="proj") is first  # W&B's default: the active run
    second = wandb.init(project="proj", reinit=True)
    assert second is not first and first.state == "finished"
    third = wandb.init(project="proj", reinit="create_new")
    assert wandb.run is third and second.state == "running"
    second.finish()
    third.finish()


def test_w_and_b_client_settings_are_accepted_and_change_nothing() -> None:
    settings = wandb.Settings(start_method="thread", console="off")
    with wandb.init(project="proj", settings=settings, save_code=True, anonymous="allow") as run:
        assert run.state == "running"
    assert wandb.Api().run(run.id).state == "finished"


def test_project_defaults_like_w_and_b(monkeypatch: pytest.MonkeyPatch) -> None:
    with wandb.init() as run:
        assert run.project == "uncategorized"
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    with wandb.init() as run:
        assert run.project == "from-env"
