"""The W&B script of the README's SDK section runs with only the import changed, in its own
interpreter (so the run ends with the script, as the README says)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import artfs

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_script() -> str:
    """The ``diff`` block of the SDK section, as the file after the change."""
    section = README.read_text().split("## The Python SDK", 1)[1]
    block = re.search(r"```diff\n(.*?)```", section, re.S)
    assert block is not None
    lines = [line[1:] for line in block.group(1).splitlines() if not line.startswith("-")]
    return "\n".join(lines) + "\n"


def test_the_readme_script_runs_with_only_the_import_changed(home: Path, tmp_path: Path) -> None:
    script = readme_script()
    assert script.startswith("import artfs as wandb\n")
    data = tmp_path / "mnist"
    data.mkdir()
    (data / "train.csv").write_text("x,y\n1,2\n")
    with artfs.init(project="mnist", job_type="upload", home=home) as run:
        run.log_artifact(data, name="mnist-data", type="dataset")
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.pt").write_bytes(b"weights")
    (work / "script.py").write_text(
        "def train_one_epoch(root, lr):\n    return lr / 2\n\n" + script
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTFS_", "WANDB_"))}
    env["ARTFS_HOME"] = str(home)
    proc = subprocess.run(
        [sys.executable, "script.py"], cwd=work, capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr

    api = artfs.Api(home=home)
    (trainer,) = api.runs("my-team/mnist", filters={"jobType": "train"})
    assert (trainer.state, trainer.entity, trainer.summary["loss"]) == ("finished", "my-team", 0.05)
    assert len(trainer.history(pandas=False)) == 3
    assert [a.qualified_name for a in trainer.used_artifacts()] == ["mnist/mnist-data:v0"]
    member = api.artifact("wandb-registry-model/mnist-classifier:production")
    assert member.metadata == {"loss": 0.05}
    assert (work / "artifacts" / "mnist-data:v0" / "train.csv").exists()
