"""Example 1: build a dataset artifact from local files and log it.

    python examples/log_dataset.py [STORE_DIR]

A "preprocess" run writes a small synthetic digits table (split into train and validation
files), describes it, and logs it as ``digits-demo/digits``; the first version is ``v0`` and
gets ``latest`` plus the alias ``raw``.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from _common import PROJECT, store_dir

import artfs


def write_rows(path: Path, rows: list[tuple[int, ...]]) -> None:
    path.write_text("".join(",".join(map(str, row)) + "\n" for row in rows))


def make_raw_data(where: Path, seed: int = 0) -> Path:
    """A tiny stand-in for MNIST: 8 pixel values and a label per row."""
    rng = random.Random(seed)
    rows = [(*(rng.randrange(256) for _ in range(8)), rng.randrange(10)) for _ in range(200)]
    (where / "splits").mkdir(parents=True)
    write_rows(where / "splits" / "train.csv", rows[:160])
    write_rows(where / "splits" / "val.csv", rows[160:])
    return where


def main(home: Path) -> artfs.Artifact:
    with tempfile.TemporaryDirectory(prefix="digits-raw-") as scratch:
        return log(home, make_raw_data(Path(scratch)))


def log(home: Path, work: Path) -> artfs.Artifact:
    with artfs.init(project=PROJECT, job_type="preprocess", home=home) as run:
        dataset = artfs.Artifact(
            "digits",
            type="dataset",
            description="200 synthetic 8-pixel digits, split 160/40",
            metadata={"rows": 200, "pixels": 8, "classes": 10},
        )
        dataset.add_dir(work / "splits")
        # A file can also be written straight into the artifact.
        with dataset.new_file("classes.json", mode="w") as f:
            json.dump(list(range(10)), f)
        run.log_artifact(dataset, aliases=["raw"])
    files = ", ".join(e.path for e in dataset.files())
    print(f"run {run.id} logged {dataset.qualified_name}: {files} ({dataset.size} bytes)")
    print(f"aliases: {' '.join(sorted(dataset.aliases))}")
    return dataset


if __name__ == "__main__":
    main(store_dir())
