"""``Artifact`` as a draft: adding, replacing and removing files before a run logs it."""

from __future__ import annotations

from pathlib import Path

import pytest

import artfs
from artfs import Artifact, DuplicateEntry, InputError, NotFound, NotLogged


def test_a_draft_has_w_and_b_s_attributes() -> None:
    art = Artifact("mnist", "dataset", description="digits", metadata={"rows": 10})
    assert (art.name, art.type, art.description, art.metadata) == (
        "mnist",
        "dataset",
        "digits",
        {"rows": 10},
    )
    assert (art.aliases, art.tags, art.state, art.created_at, art.size) == (
        [],
        [],
        "PENDING",
        None,
        0,
    )
    art.aliases.append("best")  # aliases and tags are plain mutable lists
    art.tags.append("raw")
    assert (art.aliases, art.tags) == (["best"], ["raw"])
    with pytest.raises(NotLogged, match="mnist"):
        _ = art.version
    with pytest.raises(NotLogged):
        _ = art.digest


def test_a_bad_name_or_type_is_refused() -> None:
    with pytest.raises(artfs.InvalidName, match="artifact name"):
        Artifact("a b", "dataset")
    with pytest.raises(artfs.InvalidName, match="type"):
        Artifact("ok", "")


def test_names_staging_keeps_for_itself_are_refused(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"12345")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".artfs-wh.x").touch()
    art = Artifact("model", "model")
    with pytest.raises(artfs.InvalidName, match="staging keeps names"):
        art.add_file(tmp_path / "w.bin", name=".artfs-commit")
    with (
        pytest.raises(artfs.InvalidName, match="staging keeps names"),
        art.new_file(".artfs-wh.y") as f,
    ):
        f.write("x")
    with pytest.raises(artfs.InputError, match="staging keeps names"):
        art.add_dir(tmp_path / "d")
    assert art.manifest == {}


def test_add_file_names_the_entry_after_the_file_or_name(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"12345")
    art = Artifact("model", "model")
    entry = art.add_file(tmp_path / "w.bin")
    assert (entry.path, entry.size) == ("w.bin", 5)
    art.add_file(str(tmp_path / "w.bin"), name="weights/final.bin")
    assert sorted(art.manifest) == ["w.bin", "weights/final.bin"]
    assert art.get_entry("weights/final.bin").size == 5
    assert art.size == 10


def test_adding_the_same_content_twice_is_fine_different_content_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    (tmp_path / "b").write_text("one")
    (tmp_path / "c").write_text("two")
    art = Artifact("x", "dataset")
    art.add_file(tmp_path / "a", name="f.txt")
    art.add_file(tmp_path / "b", name="f.txt")
    with pytest.raises(DuplicateEntry, match=r"'f.txt'.*overwrite=True"):
        art.add_file(tmp_path / "c", name="f.txt")
    assert art.get_entry("f.txt").local_path == str(tmp_path / "b")
    art.add_file(tmp_path / "c", name="f.txt", overwrite=True)
    assert art.get_entry("f.txt").local_path == str(tmp_path / "c")
    assert list(art.manifest) == ["f.txt"]


def test_add_file_of_a_missing_path_or_a_directory_is_an_input_error(tmp_path: Path) -> None:
    art = Artifact("x", "dataset")
    with pytest.raises(InputError, match=r"nope\.txt"):
        art.add_file(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="add_dir"):
        art.add_file(tmp_path)
    assert art.files() == []


def test_add_dir_adds_every_file_optionally_under_a_name(data_dir: Path) -> None:
    art = Artifact("x", "dataset")
    art.add_dir(data_dir)
    art.add_dir(data_dir, name="copy")
    assert sorted(art.manifest) == [
        "copy/images/0.png",
        "copy/test.csv",
        "copy/train.csv",
        "images/0.png",
        "test.csv",
        "train.csv",
    ]


def test_add_dir_conflicting_with_a_file_changes_nothing(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("different")
    art = Artifact("x", "dataset")
    art.add_file(tmp_path / "other.csv", name="test.csv")
    with pytest.raises(DuplicateEntry, match=r"test\.csv"):
        art.add_dir(data_dir)
    assert list(art.manifest) == ["test.csv"]


def test_add_dir_of_a_missing_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        Artifact("x", "dataset").add_dir(tmp_path / "missing")


def test_new_file_joins_the_artifact_when_closed(home: Path) -> None:
    art = Artifact("x", "dataset")
    with art.new_file("notes/readme.txt", mode="w", encoding="utf-8") as f:
        f.write("héllo")
        assert "notes/readme.txt" not in art.manifest
    assert art.get_entry("notes/readme.txt").size == len("héllo".encode())
    with pytest.raises(DuplicateEntry, match=r"notes/readme.txt"), art.new_file("notes/readme.txt"):
        pass
    with artfs.init(project="proj", home=home) as run:
        run.log_artifact(art)
    assert art.get_entry("notes/readme.txt").size == 6


def test_new_file_in_binary_mode(tmp_path: Path) -> None:
    art = Artifact("x", "dataset")
    with art.new_file("w.bin", mode="xb") as f:
        f.write(b"\0\1")
    assert art.get_entry("w.bin").size == 2


def test_remove_drops_a_file_or_a_whole_directory(data_dir: Path) -> None:
    art = Artifact("x", "dataset")
    art.add_dir(data_dir)
    art.remove("train.csv")
    art.remove("images")
    assert list(art.manifest) == ["test.csv"]
    with pytest.raises(NotFound, match=r"nothing\.txt"):
        art.remove("nothing.txt")


def test_a_removed_directory_is_not_logged(data_dir: Path, home: Path) -> None:
    art = Artifact("x", "dataset")
    art.add_dir(data_dir)
    art.remove("images")
    with artfs.init(project="proj", home=home) as run:
        run.log_artifact(art)
    assert sorted(e.path for e in art.files()) == ["test.csv", "train.csv"]
    assert not (Path(art.download(home.parent / "out")) / "images").exists()


def test_get_entry_of_an_unknown_path_is_not_found() -> None:
    with pytest.raises(NotFound, match="ghost"):
        Artifact("x", "dataset").get_entry("ghost")
