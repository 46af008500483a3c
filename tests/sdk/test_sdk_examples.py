"""The ported W&B examples under examples/ run as scripts and do what they print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from artfs import Api

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROJECT = "digits-demo"


def run_example(name: str, *args: str | Path, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
    env["TMPDIR"] = str(tmp_path)  # scratch and default stores stay inside the test's dir
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_four_examples_in_order_on_one_store(tmp_path: Path, home: Path) -> None:
    out = run_example("log_dataset", home, tmp_path=tmp_path)
    assert re.search(rf"logged {PROJECT}/digits:v0: classes.json, train.csv, val.csv", out)
    assert "aliases: latest raw" in out

    out = run_example("train_model", home, tmp_path=tmp_path)
    assert f"uses {PROJECT}/digits:v0" in out
    assert "aliases: best candidate latest" in out

    out = run_example("download_and_verify", home, tmp_path=tmp_path)
    assert f"{PROJECT}/digit-classifier:v0 ->" in out and "verified" in out
    assert f"(train) from {PROJECT}/digits:v0" in out
    assert "tampered copy refused" in out and "content differs" in out

    out = run_example("incremental_update", home, tmp_path=tmp_path)
    assert f"{PROJECT}/digits:v0 -> {PROJECT}/digits:v1" in out
    assert "added: test.csv" in out and "changed: classes.json" in out
    assert "unchanged: train.csv, val.csv" in out
    grew = int(re.search(r"store grew by (\d+) bytes", out).group(1))  # type: ignore[union-attr]
    assert grew < 2000  # the unchanged splits (over 5 kB) were not stored again

    api = Api(home=home)
    model = api.artifact(f"{PROJECT}/digit-classifier:best", type="model")
    trainer = model.logged_by()
    assert trainer is not None and trainer.job_type == "train"
    assert [a.qualified_name for a in trainer.used_artifacts()] == [f"{PROJECT}/digits:v0"]
    assert sorted(r.job_type for r in api.artifact(f"{PROJECT}/digits:v0").used_by()) == [
        "train",
        "update",
    ]
    assert api.artifact(f"{PROJECT}/digits:latest").metadata["rows"] == 240
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # no scratch left behind


@pytest.mark.parametrize("name", ["train_model", "download_and_verify", "incremental_update"])
def test_each_example_runs_alone_on_a_temporary_store(name: str, tmp_path: Path) -> None:
    out = run_example(name, tmp_path=tmp_path)
    store = re.search(r"store: (\S+) \(temporary", out)
    assert store is not None and Path(store.group(1)).parent == tmp_path
    assert Api(home=store.group(1)).artifact_exists(f"{PROJECT}/digits:v0")
