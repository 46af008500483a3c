"""Random sequences of edits in a based staging, through a real mount, against a model.

Each sequence starts from a small random version, bases the artifact's staging on it
(``.artfs-base``) and takes random steps: write, append, truncate, rename of files and of
directories, unlink, mkdir, rmdir, reset (``artfs stage --reset``) and commit
(``.artfs-commit``). The model is path -> bytes plus the set of directories. After every step
the staging view equals the model; after every commit the version made (read through the
mount's ``vN`` and with ``artfs get``) holds exactly the model's files, and staging goes on
from it. Seeded (``random.Random(seed)``), so a failure names a sequence that replays.
"""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.mount.mountutil import ARTFS, Mount, Mounts, put

pytestmark = pytest.mark.mount

NAMES = ["a", "b", "c.txt", "d", "e.bin"]
STAGED_TIMEOUT = 0.25  # the kernel's cache of staged entries (artfs.fs.staging_files), plus


@dataclass
class Model:
    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    def children(self, directory: str) -> list[str]:
        prefix = f"{directory}/" if directory else ""
        found = {p for p in [*self.files, *self.dirs] if p.startswith(prefix)}
        return sorted(p for p in found if "/" not in p[len(prefix) :])


def observed(root: Path) -> Model:
    """What the directory ``root`` shows: its files' contents and its directories."""
    seen = Model()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames:
            seen.dirs.add(os.path.normpath(os.path.join(rel, name)))
        for name in filenames:
            path = os.path.normpath(os.path.join(rel, name))
            seen.files[path] = (Path(dirpath) / name).read_bytes()
    return seen


@dataclass
class Sequence:
    """One random sequence on artifact ``proj/<name>`` of a mounted store."""

    mnt: Mount
    name: str
    rng: random.Random
    model: Model
    log: list[str] = field(default_factory=list)
    base: str = "v0"  # the version staging is based on

    @property
    def staging(self) -> Path:
        return self.mnt.path / "proj" / self.name / "staging"

    def step(self) -> None:
        ops = [self.write, self.append, self.truncate, self.rename_file, self.rename_dir]
        ops += [self.unlink, self.mkdir, self.rmdir, self.write, self.append]
        roll = self.rng.random()
        if roll < 0.06:
            self.commit()
        elif roll < 0.09:
            self.reset()
        else:
            self.rng.choice(ops)()

    # --- picking paths ----------------------------------------------------------------------

    def some_dir(self) -> str:
        return self.rng.choice(["", *sorted(self.model.dirs)])

    def some_file(self) -> str | None:
        return self.rng.choice(sorted(self.model.files)) if self.model.files else None

    def new_path(self) -> str | None:
        """A path in an existing directory where nothing is."""
        parent = self.some_dir()
        name = self.rng.choice(NAMES)
        path = f"{parent}/{name}" if parent else name
        return None if path in self.model.files or path in self.model.dirs else path

    def data(self) -> bytes:
        size = self.rng.choice([0, 1, 7, 100, 3000, 70_000])
        return self.rng.randbytes(size)

    # --- the edits ------------------------------------------------------------------------

    def write(self) -> None:
        path = self.rng.choice([self.some_file(), self.new_path()])
        if path is None:
            return
        data = self.data()
        self.log.append(f"write {path} {len(data)}")
        (self.staging / path).write_bytes(data)
        self.model.files[path] = data

    def append(self) -> None:
        path = self.some_file()
        if path is None:
            return
        data = self.data()
        self.log.append(f"append {path} {len(data)}")
        with open(self.staging / path, "ab") as f:
            f.write(data)
        self.model.files[path] += data

    def truncate(self) -> None:
        path = self.some_file()
        if path is None:
            return
        size = self.rng.randrange(len(self.model.files[path]) + 10)
        self.log.append(f"truncate {path} {size}")
        os.truncate(self.staging / path, size)
        old = self.model.files[path]
        self.model.files[path] = old[:size] + b"\0" * max(0, size - len(old))

    def rename_file(self) -> None:
        source = self.some_file()
        target = self.rng.choice([self.some_file(), self.new_path()])
        if source is None or target is None or source == target:
            return
        self.log.append(f"rename {source} {target}")
        os.rename(self.staging / source, self.staging / target)
        self.model.files[target] = self.model.files.pop(source)

    def rename_dir(self) -> None:
        if not self.model.dirs:
            return
        source = self.rng.choice(sorted(self.model.dirs))
        target = self.new_path()
        if target is None or target == source or target.startswith(source + "/"):
            return
        self.log.append(f"rename-dir {source} {target}")
        os.rename(self.staging / source, self.staging / target)
        self.model.files = {_moved(p, source, target): d for p, d in self.model.files.items()}
        self.model.dirs = {_moved(p, source, target) for p in self.model.dirs}

    def unlink(self) -> None:
        path = self.some_file()
        if path is None:
            return
        self.log.append(f"unlink {path}")
        os.unlink(self.staging / path)
        del self.model.files[path]

    def mkdir(self) -> None:
        path = self.new_path()
        if path is None:
            return
        self.log.append(f"mkdir {path}")
        os.mkdir(self.staging / path)
        self.model.dirs.add(path)

    def rmdir(self) -> None:
        if not self.model.dirs:
            return
        path = self.rng.choice(sorted(self.model.dirs))
        self.log.append(f"rmdir {path}")
        if self.model.children(path):
            with pytest.raises(OSError) as caught:
                os.rmdir(self.staging / path)
            assert caught.value.errno == errno.ENOTEMPTY
            return
        os.rmdir(self.staging / path)
        self.model.dirs.discard(path)

    def reset(self) -> None:
        self.log.append("reset")
        artfs(self.mnt.home, "stage", f"proj/{self.name}", "--reset")
        time.sleep(STAGED_TIMEOUT)  # changed behind the mount's back: the kernel's cache ages
        # Back to the base: the version the last commit made or, when its files were those of
        # an existing version (the digest counts files, not empty directories), that one.
        self.model = observed(self.mnt.path / "proj" / self.name / self.base)

    def commit(self) -> None:
        self.log.append("commit")
        control = self.staging / ".artfs-commit"
        control.write_text("\n")
        result = json.loads(control.read_text())
        assert "ref" in result, result
        version = self.mnt.path / "proj" / self.name / result["ref"].rpartition(":")[2]
        committed = observed(version)
        assert committed.files == self.model.files, self.log
        got = self.mnt.home.parent / f"got-{self.name}-{len(self.log)}"
        artfs(self.mnt.home, "get", result["ref"], str(got))
        assert observed(got).files == self.model.files, self.log
        assert (self.staging / ".artfs-base").read_text() == result["ref"] + "\n"
        self.model = committed  # staging goes on from the version made (its empty dirs too)
        self.base = result["ref"].rpartition(":")[2]

    def check(self) -> None:
        seen = observed(self.staging)
        assert (seen.files, seen.dirs) == (self.model.files, self.model.dirs), self.log


def _moved(path: str, source: str, target: str) -> str:
    if path == source:
        return target
    return target + path[len(source) :] if path.startswith(source + "/") else path


def artfs(home: Path, *args: str) -> str:
    env = {**os.environ, "ARTFS_HOME": str(home)}
    done = subprocess.run([str(ARTFS), "-q", *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def start_tree(rng: random.Random, root: Path) -> None:
    """A small random tree of files and directories: the base version."""
    for _ in range(rng.randrange(1, 12)):
        parts = [rng.choice(NAMES) for _ in range(rng.randrange(1, 4))]
        path = root.joinpath(*parts)
        if any(p.is_file() for p in [path, *path.parents]) or path.is_dir():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.choice([1, 50, 5000])))


@pytest.fixture(scope="module")
def mounted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mount, Path]]:
    work = tmp_path_factory.mktemp("property")
    home = work / "home"
    (work / "empty").mkdir()
    (work / "empty" / "seed").write_bytes(b"seed")
    put(home, work / "empty", "proj/seed")  # a store with a project
    mounts = Mounts(work)
    try:
        yield mounts.start(home), work
    finally:
        mounts.close(show_logs=True)


def run_sequence(mounted: tuple[Mount, Path], seed: int, steps: int) -> None:
    mnt, work = mounted
    rng = random.Random(seed)
    name = f"s{seed}"
    source = work / f"src-{seed}"
    source.mkdir()
    start_tree(rng, source)
    put(mnt.home, source, f"proj/{name}")
    staging = mnt.path / "proj" / name / "staging"
    (staging / ".artfs-base").write_text("v0\n")
    sequence = Sequence(mnt, name, rng, observed(source))
    sequence.check()
    for _ in range(steps):
        sequence.step()
        sequence.check()
    sequence.commit()


@pytest.mark.parametrize("seed", range(30))
def test_random_edits_in_a_based_staging(mounted: tuple[Mount, Path], seed: int) -> None:
    run_sequence(mounted, seed, 40)


@pytest.mark.slow
@pytest.mark.timeout(600)  # ~30 s alone; several minutes on a machine shared with other jobs
@pytest.mark.parametrize("seed", range(1000, 1020))
def test_long_random_edits_in_a_based_staging(mounted: tuple[Mount, Path], seed: int) -> None:
    run_sequence(mounted, seed, 400)
