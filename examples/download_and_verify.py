"""Example 3: fetch the best model, verify it, and trace it back to its data.

    python examples/download_and_verify.py [STORE_DIR]

No run is needed to read: ``artfs.Api`` finds the version by alias, ``file()`` downloads a
single-file artifact, ``verify()`` re-hashes what is on disk, and ``logged_by()`` /
``used_artifacts()`` walk the lineage. A tampered copy makes ``verify()`` fail. Runs the
training example first if the store has no model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import train_model
from _common import PROJECT, has, store_dir

import artfs


def main(home: Path) -> None:
    if not has(home, "digit-classifier:best"):
        train_model.main(home)
    api = artfs.Api(home=home)
    model = api.artifact(f"{PROJECT}/digit-classifier:best", type="model")
    with tempfile.TemporaryDirectory(prefix="best-model-") as scratch:
        check(model, Path(scratch))


def check(model: artfs.Artifact, root: Path) -> None:
    path = Path(model.file(root))
    model.verify(root)
    print(f"{model.qualified_name} -> {path} ({path.stat().st_size} bytes), verified")

    producer = model.logged_by()
    assert producer is not None
    inputs = [a.qualified_name for a in producer.used_artifacts()]
    print(f"produced by run {producer.id} ({producer.job_type}) from {', '.join(inputs)}")

    path.write_text(path.read_text() + " ")
    try:
        model.verify(root)
    except artfs.ArtifactMismatch as exc:
        print(f"tampered copy refused: {exc}")
    else:
        raise SystemExit("verify() accepted a tampered file")


if __name__ == "__main__":
    main(store_dir())
