"""W&B's metrics around artifacts: ``log``, ``summary`` and the run's history, ported with
only the import changed, and what ``artfs runs show`` prints of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import artfs as wandb
from artfs.store import history


@pytest.fixture(autouse=True)
def store_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ARTFS_HOME", str(home))
    yield home


def test_log_without_steps_writes_one_row_per_call_and_summary_keeps_the_last() -> None:
    run = wandb.init(project="mnist", config={"epochs": 3})
    for epoch in range(3):
        wandb.log({"epoch": epoch, "loss": 1.0 / (epoch + 1)})
    wandb.finish()
    past = wandb.Api().run(run.id)
    rows = past.history(pandas=False)
    assert [(r["_step"], r["epoch"], r["loss"]) for r in rows] == [
        (0, 0, 1.0),
        (1, 1, 0.5),
        (2, 2, 1.0 / 3),
    ]
    assert all(r["_timestamp"] >= past.start_time and r["_runtime"] >= 0 for r in rows)
    assert past.summary["loss"] == 1.0 / 3 and past.summary["epoch"] == 2


def test_commit_false_and_explicit_steps_follow_w_and_b_s_rules() -> None:
    run = wandb.init(project="mnist")
    wandb.log({"loss": 0.9}, commit=False)
    wandb.log({"acc": 0.1})  # joins the pending row
    wandb.log({"loss": 0.5}, step=5)
    wandb.log({"acc": 0.6}, step=5)  # same step: same row
    wandb.log({"loss": 0.4}, step=3)  # below the current step: ignored
    wandb.log({"loss": 0.3}, step=7)
    run.finish()  # writes the row of step 7
    rows = wandb.Api().run(run.id).history(pandas=False)
    kept = [{k: v for k, v in r.items() if k not in ("_timestamp", "_runtime")} for r in rows]
    assert kept == [
        {"_step": 0, "loss": 0.9, "acc": 0.1},
        {"_step": 5, "loss": 0.5, "acc": 0.6},
        {"_step": 7, "loss": 0.3},
    ]


def test_summary_can_be_set_and_a_later_log_of_the_key_replaces_it() -> None:
    run = wandb.init(project="mnist")
    wandb.log({"acc": 0.7})
    run.summary["best_acc"] = 0.9
    wandb.summary.update({"note": "kept"})
    wandb.log({"acc": 0.8})
    run.summary["acc"] = 0.75
    run.finish()
    summary = wandb.Api().run(run.id).summary
    assert summary == {"acc": 0.75, "best_acc": 0.9, "note": "kept"}
    assert summary.best_acc == 0.9  # W&B's attribute access


def test_metrics_around_artifacts_a_training_script(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("x,y\n1,2\n")
    with wandb.init(project="mnist", job_type="train", config={"lr": 0.01}) as run:
        data = run.use_artifact(run.log_artifact(str(tmp_path / "train.csv"), type="dataset"))
        for step in range(4):
            run.log({"loss": 1.0 - step / 10}, step=step)
        model = wandb.Artifact("clf", type="model", metadata={"loss": run.summary["loss"]})
        with model.new_file("weights.txt") as f:
            f.write("w")
        run.log_artifact(model, aliases=["best"])
    assert data.version == "v0"
    logged = wandb.Api().artifact("mnist/clf:best")
    assert logged.metadata == {"loss": 0.7}
    trainer = logged.logged_by()
    assert trainer is not None and trainer.summary["loss"] == 0.7
    assert [r["loss"] for r in trainer.scan_history(keys=["loss"], min_step=2)] == [0.8, 0.7]


def test_media_objects_and_tensors_are_refused_with_what_to_do() -> None:
    class Image:  # stands in for wandb.Image, which artfs does not provide
        pass

    wandb.init(project="mnist")
    with pytest.raises(wandb.errors.UnsupportedError, match=r"Image.*artifact files"):
        wandb.log({"sample": Image()})
    wandb.log({"loss": float("nan")})  # not JSON, kept as text
    assert wandb.summary["loss"] == "nan"
    wandb.finish()


def test_history_is_bounded_and_the_summary_follows_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(history, "MAX_ROWS", 5)
    run = wandb.init(project="mnist")
    for step in range(8):
        wandb.log({"loss": step})
    run.finish()
    past = wandb.Api().run(run.id)
    assert [r["loss"] for r in past.history(pandas=False)] == [0, 1, 2, 3, 4]
    assert past.summary["loss"] == 7


def test_runs_show_prints_config_summary_and_the_last_rows(home: Path, run_cli: Any) -> None:
    run = wandb.init(project="mnist", config={"lr": 0.1}, tags=["cnn"])
    for step in range(12):
        wandb.log({"loss": step})
    run.finish()
    wandb.Api()._store.close()  # the CLI opens the store in its own process

    out = run_cli("runs", "show", run.id, check=True).stdout
    assert 'config:    {"lr": 0.1}' in out
    assert 'summary:   {"loss": 11}' in out
    assert "history:   12 rows, the last 10:" in out
    shown = [line for line in out.splitlines() if line.startswith("  {")]
    assert len(shown) == 10 and '"loss": 11' in shown[-1] and '"_step": 2,' in shown[0]

    data = run_cli("runs", "show", run.id, "--json", check=True).json()
    assert data["config"] == {"lr": 0.1} and data["summary"] == {"loss": 11}
    assert [r["loss"] for r in data["history"]] == list(range(12))
    assert data["history_rows"] == 12 and data["tags"] == ["cnn"]


def test_a_finished_run_s_summary_and_config_are_edited_through_the_public_api() -> None:
    with wandb.init(project="mnist", config={"lr": 0.1}) as run:
        wandb.log({"acc": 0.8})
    past = wandb.Api().run(f"mnist/{run.id}")
    past.summary["best_acc"] = 0.9
    past.summary.update()  # W&B's way of saving it
    past.config["lr"] = 0.2
    past.update()
    again = wandb.Api().run(run.id)
    assert again.summary == {"acc": 0.8, "best_acc": 0.9}
    assert again.config == {"lr": 0.2}
    assert len(again.history(pandas=False)) == 1  # the history is untouched


def test_log_from_several_threads_keeps_every_row_whole() -> None:
    import threading

    run = wandb.init(project="mnist")

    def worker(n: int) -> None:
        for i in range(200):
            wandb.log({"worker": n, "i": i})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.finish()
    rows = wandb.Api().run(run.id).history(samples=10_000, pandas=False)
    assert len(rows) == 800 and [r["_step"] for r in rows] == list(range(800))
    assert sorted((r["worker"], r["i"]) for r in rows) == [
        (n, i) for n in range(4) for i in range(200)
    ]


def test_define_metric_summaries_like_w_and_b_s_docs() -> None:
    run = wandb.init(project="mnist")
    wandb.define_metric("epoch")
    wandb.define_metric("val/*", step_metric="epoch")  # a chart axis: recorded, no effect
    wandb.define_metric("loss", summary="min")
    wandb.define_metric("loss", summary="min,max")  # the later definition wins
    wandb.define_metric("acc", summary="best", goal="maximize")
    wandb.define_metric("lr", summary="none")
    wandb.define_metric("val/acc", summary="mean")
    for epoch, (loss, acc) in enumerate([(0.9, 0.5), (0.4, 0.8), (0.6, 0.7)]):
        wandb.log({"epoch": epoch, "loss": loss, "acc": acc, "lr": 0.1, "val/acc": acc})
    run.finish()
    summary = wandb.Api().run(run.id).summary
    assert summary["loss"] == {"min": 0.4, "max": 0.9}
    assert summary["acc"] == {"best": 0.8}
    assert summary["val/acc"] == {"mean": pytest.approx(2.0 / 3)}
    assert summary["epoch"] == 2 and "lr" not in summary
    rows = wandb.Api().run(run.id).history(pandas=False)
    assert [r["loss"] for r in rows] == [0.9, 0.4, 0.6]  # the history keeps every value


def test_define_metric_refuses_what_w_and_b_refuses() -> None:
    wandb.init(project="mnist")
    with pytest.raises(wandb.errors.UsageError, match="goal"):
        wandb.define_metric("acc", summary="best")
    with pytest.raises(wandb.errors.UsageError, match="unknown summary 'median'"):
        wandb.define_metric("acc", summary="median")
    wandb.finish()
