"""Random sequences of staging edits made the way the mount makes them (whole-file writes,
whiteouts, directory removals, directory renames by redirect), checked against a model of
path -> bytes: what staging shows after every edit (through the format API), and every
committed version, equal the model."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from artfs.names import ArtifactName
from artfs.store import Store, staging
from artfs.store.hashing import file_digest
from artfs.store.ingest import scan
from artfs.store.overlay import resolve
from tests.helpers import make_tree
from tests.store.stagingutil import shown

ART = ArtifactName("proj", "data")
NAMES = ["a", "b", "c.txt", "d"]


class Editor:
    """Edits an upper directory as the mount's copy-on-write view would, and a model."""

    def __init__(self, store: Store, upper: Path, model: dict[str, bytes]) -> None:
        self.store, self.upper, self.model = store, upper, model

    def dirs(self) -> set[str]:
        return {p.rpartition("/")[0] for p in self.model} - {""} | {
            "/".join(p.split("/")[:i]) for p in self.model for i in range(1, p.count("/"))
        }

    def _shows(self, path: str) -> bool:
        return os.path.lexists(self.upper / path) or (
            staging.base_entry(self.store, ART, path) is not None
        )

    def _hide(self, path: str) -> None:
        """Remove ``path`` from the upper directory and white it out if the base shows it."""
        parent = path.rpartition("/")[0]
        in_base = staging.base_entry(self.store, ART, path) is not None
        target = self.upper / path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif os.path.lexists(target):
            target.unlink()
        if in_base:
            (self.upper / parent).mkdir(parents=True, exist_ok=True)
            staging.add_whiteout(self.upper / parent, path.rpartition("/")[2])

    def write(self, path: str, data: bytes) -> None:
        parent, _, name = path.rpartition("/")
        (self.upper / parent).mkdir(parents=True, exist_ok=True)
        staging.remove_whiteout(self.upper / parent, name)
        (self.upper / path).write_bytes(data)
        self.model[path] = bytes(file_digest(data))

    def delete(self, path: str) -> None:
        self._hide(path)
        for p in [p for p in self.model if p == path or p.startswith(path + "/")]:
            del self.model[p]

    def rename_dir(self, old: str, new: str) -> None:
        found = resolve(self.upper, old)
        assert found is not None
        source = found[0].path
        in_base = staging.base_entry(self.store, ART, old) is not None
        (self.upper / new).parent.mkdir(parents=True, exist_ok=True)
        if (self.upper / old).is_dir():
            os.rename(self.upper / old, self.upper / new)
        else:
            (self.upper / new).mkdir()
        marked = staging.REDIRECT in os.listdir(self.upper / new)
        opaque = staging.OPAQUE in os.listdir(self.upper / new)
        if source is not None and not marked and not opaque:
            staging.set_redirect(self.upper / new, source)
        if in_base:
            staging.add_whiteout(self.upper / old.rpartition("/")[0], old.rpartition("/")[2])
        for p in [p for p in self.model if p.startswith(old + "/")]:
            self.model[new + p[len(old) :]] = self.model.pop(p)


def _step(editor: Editor, rng: random.Random, counter: int) -> None:
    files, dirs = sorted(editor.model), sorted(editor.dirs())
    kind = rng.choice(["write", "write", "delete", "rmdir", "rename"])
    if kind == "delete" and files:
        editor.delete(rng.choice(files))
    elif kind == "rmdir" and dirs:
        editor.delete(rng.choice(dirs))
    elif kind == "rename" and dirs:
        old = rng.choice(dirs)
        new = f"{rng.choice([*dirs, ''])}/r{counter}".lstrip("/")
        if not new.startswith(old + "/") and not editor._shows(new):
            editor.rename_dir(old, new)
    else:
        parent = rng.choice([*dirs, "", f"n{counter}"])
        path = f"{parent}/{rng.choice(NAMES)}".lstrip("/")
        taken = editor.dirs() | set(editor.model)
        ancestors = {path.rsplit("/", i)[0] for i in range(1, path.count("/") + 1)}
        if path in editor.model or (path not in taken and not ancestors & set(editor.model)):
            editor.write(path, rng.randbytes(rng.randrange(1, 300)))


@pytest.mark.parametrize("seed", range(6))
def test_random_edits_and_commits_match_the_model(store: Store, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    spec = {f"{d}/{n}": rng.randbytes(50) for d in ("x", "x/y", "z") for n in NAMES[:3]}
    record = store.commit(scan(make_tree(tmp_path / "v0", spec)), ART).record
    staging.set_base(store, ART, record)
    upper = staging.ensure(store, ART)
    editor = Editor(store, upper, {p: bytes(file_digest(v)) for p, v in spec.items()})
    for counter in range(60):
        _step(editor, rng, counter)
        assert shown(store, ART, upper) == editor.model, f"step {counter}"
        if counter % 10 == 9 and editor.model:
            result = staging.commit(store, ART)
            stored = {e.path: bytes(e.digest) for e in store.files(result.record)}
            assert stored == editor.model, f"commit after step {counter}"
            assert shown(store, ART, upper) == editor.model and not any(upper.iterdir())
