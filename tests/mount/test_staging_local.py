"""Staging behaves like a local filesystem (issue 13), through a real mount: a commit empties
staging whatever it held, hard links, fallocate, statfs, symlink times, device numbers, open
flags, alias times and distinct-file counts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mountutil import ARTFS, Mount

from artfs.store import Store

pytestmark = pytest.mark.mount


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARTFS_HOME": str(home)}
    return subprocess.run([str(ARTFS), *args], capture_output=True, text=True, env=env)


def files_of(home: Path, ref: str) -> dict[str, bytes]:
    with Store.open(home) as store:
        resolved = store.resolve(ref)
        return {e.path: b"".join(store.iter_file(e)) for e in store.files(resolved) if not e.is_dir}


def tree(root: Path) -> list[str]:
    """Every path under ``root`` (not following symlinks), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            found.append(os.path.normpath(os.path.join(rel, name)))
    return sorted(found)


# --- 1. a commit leaves staging in its after-commit state -----------------------------------


def make_mixed_staging(staging: Path) -> None:
    (staging / "a.txt").write_text("hi\n")
    os.symlink("a.txt", staging / "link")
    (staging / "d").mkdir()
    os.symlink("../a.txt", staging / "d" / "up")
    (staging / "empty" / "deeper").mkdir(parents=True)
    (staging / "dirlink").symlink_to("d")


@pytest.mark.parametrize("how", ["cli", "control file"])
def test_commit_empties_staging_of_symlinks_and_empty_dirs(
    mnt: Mount, home: Path, how: str
) -> None:
    staging = mnt.path / "proj" / "s" / "staging"
    (mnt.path / "proj" / "s").mkdir()
    make_mixed_staging(staging)

    def commit() -> None:
        if how == "cli":
            done = cli(home, "commit", "proj/s")
            assert done.returncode == 0, done.stderr
        else:
            (staging / ".artfs-commit").write_text("{}")

    commit()
    assert tree(staging) == []
    assert tree(home / "staging" / "proj" / "s") == []
    v0 = files_of(home, "proj/s:v0")
    assert v0 == {"a.txt": b"hi\n", "link": b"hi\n", "d/up": b"hi\n", "dirlink/up": b"hi\n"}
    # The same again: the second commit works and leaves staging empty too.
    make_mixed_staging(staging)
    (staging / "b.txt").write_text("new\n")
    commit()
    assert tree(staging) == []
    assert files_of(home, "proj/s:v1")["b.txt"] == b"new\n"


def test_commit_errors_name_the_path_as_the_user_sees_it(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "s" / "staging"
    (mnt.path / "proj" / "s").mkdir()
    (staging / "d").mkdir()
    os.symlink("../gone.txt", staging / "d" / "up")
    done = cli(home, "commit", "proj/s")
    assert done.returncode != 0
    assert "proj/s/staging/d/up" in done.stderr
    assert str(home) not in done.stderr and "\n" not in done.stderr.strip()
    control = staging / ".artfs-commit"
    with pytest.raises(OSError):
        control.write_text("{}")
    error = control.read_text()
    assert "proj/s/staging/d/up" in error and str(home) not in error
    assert tree(staging) == ["d", "d/up"]


def test_commit_after_a_refused_fifo_empties_staging(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "s" / "staging"
    (mnt.path / "proj" / "s").mkdir()
    (staging / "x").mkdir()
    (staging / "x" / "f.txt").write_text("f")
    os.mkfifo(staging / "x" / "pipe")
    done = cli(home, "commit", "proj/s")
    assert done.returncode != 0 and "proj/s/staging/x/pipe" in done.stderr
    os.unlink(staging / "x" / "pipe")
    done = cli(home, "commit", "proj/s")
    assert done.returncode == 0, done.stderr
    assert tree(staging) == []
