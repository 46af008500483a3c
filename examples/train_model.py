"""Example 2: use the dataset in a training run and log the model it produces.

    python examples/train_model.py [STORE_DIR]

The "train" run declares its input with ``use_artifact`` (so the store knows which data the
model came from), downloads it, fits a trivial model (the most frequent label), and logs the
model with the aliases ``best`` and ``candidate``. Logs the dataset first if the store has
none.
"""

from __future__ import annotations

import collections
import json
import tempfile
from pathlib import Path

import log_dataset
from _common import PROJECT, has, store_dir

import artfs


def fit(train_csv: Path) -> dict[str, int]:
    labels = [int(line.rsplit(",", 1)[1]) for line in train_csv.read_text().splitlines()]
    label, count = collections.Counter(labels).most_common(1)[0]
    return {"predict": label, "seen": len(labels), "hits": count}


def main(home: Path) -> artfs.Artifact:
    if not has(home, "digits"):
        log_dataset.main(home)
    with (
        artfs.init(project=PROJECT, job_type="train", config={"epochs": 1}, home=home) as run,
        tempfile.TemporaryDirectory(prefix="train-") as scratch,
    ):
        data = run.use_artifact("digits:latest", type="dataset")
        root = Path(data.download(Path(scratch) / "data"))
        print(f"run {run.id} uses {data.qualified_name}, downloaded to {root}")
        params = fit(root / "train.csv")
        out = Path(scratch) / "model.json"
        out.write_text(json.dumps(params))
        model = artfs.Artifact(
            "digit-classifier",
            type="model",
            metadata={"accuracy": round(params["hits"] / params["seen"], 3)},
        )
        model.add_file(out)
        run.log_artifact(model, aliases=["best", "candidate"])
    print(f"logged {model.qualified_name} aliases: {' '.join(sorted(model.aliases))}")
    print(f"accuracy: {model.metadata['accuracy']}")
    return model


if __name__ == "__main__":
    main(store_dir())
