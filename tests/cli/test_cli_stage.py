"""``artfs stage`` and ``artfs commit`` of a based staging, through the real console script;
the upper directory (HOME/staging/proj/data) is written by hand, as the mount would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from artfs.store import Store
from tests.helpers import make_tree, read_tree


def _v0(home: Path, tmp_path: Path, run_cli: Any) -> Path:
    src = make_tree(tmp_path / "src", {"a.txt": "A", "c.txt": "C", "d/x.txt": "X"})
    assert run_cli("put", src, "proj/data", check=True).last_line == "proj/data:v0"
    out = run_cli("stage", "proj/data", "--from", "proj/data:v0", check=True)
    assert out.last_line == "proj/data: staging based on proj/data:v0"
    return home / "staging" / "proj" / "data"


def test_stage_lists_changes_and_commit_stores_them(
    home: Path, tmp_path: Path, run_cli: Any
) -> None:
    upper = _v0(home, tmp_path, run_cli)
    make_tree(upper, {"a.txt": "A2", "b/new.txt": "B", "d/x.txt": "X"})
    (upper / ".artfs-wh.c.txt").touch()
    listed = run_cli("stage", "proj/data", check=True)
    assert listed.stdout.splitlines() == ["+ b/new.txt", "- c.txt", "M a.txt"]
    assert "against proj/data:v0" in listed.stderr
    data = run_cli("stage", "proj/data", "--json", check=True).json()
    assert data == {
        "artifact": "proj/data",
        "base": "proj/data:v0",
        "added": ["b/new.txt"],
        "removed": ["c.txt"],
        "changed": ["a.txt"],
    }
    assert run_cli("commit", "proj/data", check=True).last_line == "proj/data:v1"
    run_cli("get", "proj/data:v1", tmp_path / "out", check=True)
    assert read_tree(tmp_path / "out") == {
        "a.txt": b"A2",
        "b": None,
        "b/new.txt": b"B",
        "d": None,
        "d/x.txt": b"X",
    }
    assert list(upper.iterdir()) == []
    after = run_cli("stage", "proj/data", "--json", check=True).json()
    assert after["base"] == "proj/data:v1" and after["added"] == after["changed"] == []
    diff = run_cli("diff", "proj/data:v0", "proj/data:v1", check=True)
    assert diff.stdout.splitlines() == listed.stdout.splitlines()


def test_from_is_refused_while_staging_holds_changes(
    home: Path, tmp_path: Path, run_cli: Any, store_state: Any
) -> None:
    upper = _v0(home, tmp_path, run_cli)
    (upper / "a.txt").write_text("mine")
    before = store_state()
    code, out, err = run_cli("stage", "proj/data", "--from", "proj/data:v0")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "holds changes" in err and "--reset --from" in err
    assert store_state() == before and (upper / "a.txt").read_text() == "mine"
    code, _, err = run_cli("stage", "proj/data", "--empty")
    assert code == 2 and "--empty goes with --reset" in err and err.count("\n") == 1
    code, _, err = run_cli("stage", "proj/data", "--reset", "--from", "proj/data:v9")
    assert code == 1 and "no version v9" in err and err.count("\n") == 1
    assert (upper / "a.txt").read_text() == "mine"  # a bad ref discards nothing
    code, _, err = run_cli("stage", "proj/nope", "--from", "proj/data:v0:x")
    assert code == 2 and err.count("\n") == 1
    assert store_state() == before


def test_staging_based_on_another_artifact_s_version_commits_a_version_of_its_own(
    home: Path, tmp_path: Path, run_cli: Any
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "A", "d/x.txt": "X"})
    assert run_cli("put", src, "proj/raw", "--type", "model", check=True).last_line == "proj/raw:v0"
    out = run_cli("stage", "proj/clean", "--from", "proj/raw:v0", check=True)
    assert out.last_line == "proj/clean: staging based on proj/raw:v0"
    upper = home / "staging" / "proj" / "clean"
    make_tree(upper, {"b.txt": "B"})
    (upper / ".artfs-wh.a.txt").touch()
    assert run_cli("stage", "proj/clean", check=True).stdout.splitlines() == ["+ b.txt", "- a.txt"]
    assert run_cli("commit", "proj/clean", check=True).last_line == "proj/clean:v0"
    run_cli("get", "proj/clean:v0", tmp_path / "out", check=True)
    assert read_tree(tmp_path / "out") == {"b.txt": b"B", "d": None, "d/x.txt": b"X"}
    # A new artifact of its own type (the default: the base's is not taken), and the base as
    # it was.
    info = run_cli("info", "proj/clean:v0", "--json", check=True).json()
    assert info["type"] == "dataset"
    raw = run_cli("files", "proj/raw:v0", "--json", check=True).json()
    assert sorted(f["path"] for f in raw) == ["a.txt", "d/x.txt"]
    after = run_cli("stage", "proj/clean", "--json", check=True).json()
    assert after["base"] == "proj/clean:v0"


def test_reset_keeps_the_base_and_empty_drops_it(home: Path, tmp_path: Path, run_cli: Any) -> None:
    upper = _v0(home, tmp_path, run_cli)
    make_tree(upper, {"a.txt": "changed", "sub/f": "F"})
    out = run_cli("stage", "proj/data", "--reset", check=True)
    assert out.last_line == "proj/data: staging based on proj/data:v0"
    assert upper.is_dir() and list(upper.iterdir()) == []
    (upper / "z").write_text("Z")
    out = run_cli("stage", "proj/data", "--reset", "--empty", "--json", check=True)
    assert out.json() == {"artifact": "proj/data", "base": None} and list(upper.iterdir()) == []
    (upper / "only.txt").write_text("1")
    assert run_cli("stage", "proj/data", check=True).stdout.splitlines() == ["+ only.txt"]
    assert run_cli("commit", "proj/data", check=True).last_line == "proj/data:v1"
    files = run_cli("files", "proj/data:v1", "--json", check=True).json()
    assert [f["path"] for f in files] == ["only.txt"]


def test_a_base_deleted_with_rm_survives_gc(home: Path, tmp_path: Path, run_cli: Any) -> None:
    upper = _v0(home, tmp_path, run_cli)
    run_cli("rm", "proj/data:v0", check=True)
    run_cli("gc", check=True)
    (upper / "a.txt").write_text("A3")
    assert run_cli("stage", "proj/data", check=True).stdout.splitlines() == ["M a.txt"]
    assert run_cli("commit", "proj/data", check=True).last_line == "proj/data:v1"
    run_cli("get", "proj/data:v1", tmp_path / "out", check=True)
    assert read_tree(tmp_path / "out") == {
        "a.txt": b"A3",
        "c.txt": b"C",
        "d": None,
        "d/x.txt": b"X",
    }
    assert run_cli("verify", check=True).returncode == 0


def test_rm_all_removes_an_artifact_that_has_only_an_empty_staging(
    home: Path, tmp_path: Path, run_cli: Any
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "A"})
    run_cli("put", src, "proj/data", check=True)
    (home / "staging" / "proj" / "typo").mkdir(parents=True)  # as `mkdir MNT/proj/typo` does
    run_cli("stage", "newproj/x", "--from", "proj/data:v0", check=True)  # a based staging
    assert [a["name"] for a in run_cli("ls", "proj", "--json").json()] == ["data", "typo"]
    assert run_cli("rm", "proj/typo", "--all", check=True).last_line == (
        "deleted proj/typo (no versions; its empty staging)"
    )
    assert [a["name"] for a in run_cli("ls", "proj", "--json").json()] == ["data"]
    run_cli("rm", "newproj/x", "--all", check=True)
    assert not (home / "staging" / "newproj").exists()  # the project went with it
    assert "newproj" not in run_cli("ls", "--json", check=True).json()
    code, _, err = run_cli("stage", "newproj/x")  # nothing of it is left to show
    assert code == 1 and "newproj/x has no versions and no staging" in err
    code, _, err = run_cli("rm", "proj/typo", "--all")  # gone: as for any unknown artifact
    assert code != 0 and "proj/typo does not exist" in err


def test_rm_all_refuses_an_unversioned_staging_that_holds_files(
    home: Path, tmp_path: Path, run_cli: Any, store_state: Any
) -> None:
    run_cli("put", make_tree(tmp_path / "src", {"a.txt": "A"}), "proj/data", check=True)
    upper = home / "staging" / "proj" / "draft"
    make_tree(upper, {"w.bin": "written, never committed"})
    before = store_state()
    code, out, err = run_cli("rm", "proj/draft", "--all")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "never committed" in err and "artfs stage proj/draft --reset --empty" in err
    assert store_state() == before and (upper / "w.bin").read_text() == "written, never committed"


def test_a_project_made_by_mkdir_is_listed_and_removed_while_it_holds_nothing(
    home: Path, tmp_path: Path, run_cli: Any
) -> None:
    run_cli("put", make_tree(tmp_path / "src", {"a.txt": "A"}), "proj/data", check=True)
    with Store.open(home) as store:
        store.create_project("typoproj")  # what `mkdir MNT/typoproj` does
    (home / "staging" / "dirproj").mkdir(parents=True)  # left by an artifact's staging
    run_cli("stage", "stagep/x", "--from", "proj/data:v0", check=True)
    listed = ["dirproj", "proj", "stagep", "typoproj"]
    assert run_cli("ls", "--json", check=True).json() == listed
    assert run_cli("ls", "typoproj", "--json", check=True).json() == []
    assert run_cli("ls", "dirproj", "--json", check=True).json() == []
    assert [a["name"] for a in run_cli("ls", "stagep", "--json", check=True).json()] == ["x"]
    for empty in ("typoproj", "dirproj"):
        removed = run_cli("rm", empty, check=True)
        assert removed.last_line == f"deleted project {empty} (it held nothing)"
    assert run_cli("ls", "--json", check=True).json() == ["proj", "stagep"]
    for held in ("proj", "stagep"):  # a version, or an artifact being staged
        code, _, err = run_cli("rm", held)
        assert code == 1 and f"project {held} holds artifacts" in err and err.count("\n") == 1
    code, _, err = run_cli("rm", "proj", "--all")
    assert code == 2 and "takes no option" in err
    assert run_cli("ls", "--json", check=True).json() == ["proj", "stagep"]
