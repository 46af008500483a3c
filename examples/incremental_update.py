"""Example 4: add data to the dataset without re-uploading what did not change.

    python examples/incremental_update.py [STORE_DIR]

An "update" run starts from the newest version with ``new_draft()``, adds a new split and
replaces the class list, and logs the draft: the result is the next version, and the store
grows only by the new bytes (the unchanged splits are shared with the previous version).
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import log_dataset
from _common import PROJECT, has, store_dir

import artfs


def pack_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "packs").iterdir())


def main(home: Path) -> artfs.Artifact:
    if not has(home, "digits"):
        log_dataset.main(home)
    with tempfile.TemporaryDirectory(prefix="digits-extra-") as scratch:
        return update(home, Path(scratch) / "test.csv")


def update(home: Path, extra: Path) -> artfs.Artifact:
    before = pack_bytes(home)
    rng = random.Random(1)
    log_dataset.write_rows(
        extra, [(*(rng.randrange(256) for _ in range(8)), rng.randrange(10)) for _ in range(40)]
    )
    with artfs.init(project=PROJECT, job_type="update", home=home) as run:
        previous = run.use_artifact("digits:latest", type="dataset")
        draft = previous.new_draft()
        draft.add_file(extra)
        draft.remove("classes.json")
        with draft.new_file("classes.json", mode="w") as f:
            f.write('["zero","one","two","three","four","five","six","seven","eight","nine"]')
        draft.metadata["rows"] = previous.metadata["rows"] + 40
        current = run.log_artifact(draft)
    old = {e.path: e.digest for e in previous.files()}
    new = {e.path: e.digest for e in current.files()}
    print(f"{previous.qualified_name} -> {current.qualified_name}")
    print(f"added: {', '.join(sorted(new.keys() - old.keys()))}")
    print(f"changed: {', '.join(sorted(p for p in old.keys() & new.keys() if old[p] != new[p]))}")
    print(f"unchanged: {', '.join(sorted(p for p in old.keys() & new.keys() if old[p] == new[p]))}")
    print(f"store grew by {pack_bytes(home) - before} bytes for {current.size} bytes of files")
    return current


if __name__ == "__main__":
    main(store_dir())
