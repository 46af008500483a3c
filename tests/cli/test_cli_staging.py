"""``artfs commit`` of a staging directory, without a mount: what the store layer promises."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from artfs.stores import open_store


def _staging(home: Path, name: str = "model") -> Path:
    """A staging directory as the mount or ``artfs stage`` would leave it: in a store."""
    open_store(home).close()
    path = home / "staging" / "proj" / name
    path.mkdir(parents=True)
    return path


def test_commit_stores_staging_as_the_next_version_and_empties_it(home: Path, run_cli: Any) -> None:
    staged = _staging(home)
    (staged / "weights.bin").write_bytes(b"w" * 1000)
    (staged / "cfg").mkdir()
    (staged / "cfg" / "a.json").write_text("{}")
    assert [a["name"] for a in run_cli("ls", "proj", "--json", check=True).json()] == ["model"]
    result = run_cli("commit", "proj/model", "--type", "model", "--alias", "best", check=True)
    assert result.last_line == "proj/model:v0"
    assert list(staged.iterdir()) == []
    info = run_cli("info", "proj/model:best", "--json", check=True).json()
    assert (info["type"], info["files"]) == ("model", 2)
    (staged / "weights.bin").write_bytes(b"w" * 1000)
    (staged / "cfg").mkdir()
    (staged / "cfg" / "a.json").write_text("{}")
    again = run_cli("commit", "proj/model", check=True)
    assert again.last_line == "proj/model:v0" and "unchanged" in again.stderr


def test_commit_refusals_leave_staging_and_store_as_they_were(
    home: Path, run_cli: Any, tmp_path: Path, store_state: Any
) -> None:
    staged = _staging(home)
    code, _, err = run_cli("commit", "proj/model")
    assert code == 1 and "is empty" in err
    (staged / "ok.txt").write_text("fine")
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    os.symlink(outside, staged / "link.txt")
    before = store_state()
    code, _, err = run_cli("commit", "proj/model")
    assert code == 1 and "outside the tree" in err and err.count("\n") == 1
    assert store_state() == before and sorted(p.name for p in staged.iterdir()) == [
        "link.txt",
        "ok.txt",
    ]
    (staged / "link.txt").unlink()
    os.symlink("../../v0/meta.json", staged / "rel.txt")  # out of staging, into ARTFS_HOME
    code, _, err = run_cli("commit", "proj/model")
    assert code == 1 and "a symlink to '../../v0/meta.json', outside the tree" in err
    assert str(home) not in err  # only paths as the user sees them through the mount
    (staged / "rel.txt").unlink()
    (staged / os.fsdecode(b"not-utf8-\xff")).write_text("x")
    code, _, err = run_cli("commit", "proj/model")
    assert code == 1 and "not valid UTF-8" in err and err.count("\n") == 1
    assert str(home) not in err
    (staged / os.fsdecode(b"not-utf8-\xff")).unlink()
    os.mkfifo(staged / "pipe")
    code, _, err = run_cli("commit", "proj/model")
    assert code == 1 and "special file" in err
    (staged / "pipe").unlink()
    code, _, err = run_cli("commit", "proj/model", "--alias", "latest")
    assert code == 2 and "reserved" in err
    assert store_state() == before


def test_a_file_open_for_writing_blocks_the_commit_unless_forced(home: Path, run_cli: Any) -> None:
    staged = _staging(home)
    (staged / "done.txt").write_text("complete")
    with open(staged / "half.bin", "wb") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_SH)  # what the mount holds for a writer
        writer.write(b"partial")
        writer.flush()
        code, _, err = run_cli("commit", "proj/model")
        assert code == 1 and "proj/model/staging/half.bin is still open for writing" in err
        assert run_cli("commit", "proj/model", "--force", check=True).last_line == "proj/model:v0"


def test_a_name_made_during_a_commit_stays_in_staging(tmp_path: Path) -> None:
    """The clear after a commit removes a file only at a path the version holds: a rename or a
    new hard link made while the commit ran (same file, size and mtime) is not in the version,
    so it stays for the next commit instead of vanishing. (The race, made deterministic by
    changing staging between the scan and the clear.)"""
    from artfs.store import staging as staging_mod
    from artfs.store.ingest import scan

    staged = tmp_path / "staging"
    staged.mkdir()
    for name in ("a", "b", "c"):
        (staged / name).write_text(name)
    others = staging_mod._links_and_dirs(staged)
    tree = scan(staged, confine=True)
    os.rename(staged / "a", staged / "renamed")
    os.link(staged / "b", staged / "linked")
    staging_mod._clear(staged, tree.files, others)
    assert sorted(p.name for p in staged.iterdir()) == ["linked", "renamed"]
