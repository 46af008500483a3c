"""Names, refs and paths inside a version (artfs.names): what is allowed and what is refused."""

import pytest

from artfs.errors import ArtfsError, InvalidName
from artfs.names import (
    ArtifactName,
    Ref,
    check_alias,
    check_name,
    check_path,
    check_stored_path,
    parse_version,
)


@pytest.mark.parametrize("name", ["a", "mnist", "MNIST-v2", "a.b_c-d", "0day", "x" * 128])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "-lead", ".hidden", "_x", "has space", "a/b", "a:b", "é", "x" * 129, "a\0b"]
)
def test_invalid_names_are_refused_naming_the_bad_part(name: str) -> None:
    with pytest.raises(InvalidName) as exc:
        check_name(name, "project name")
    assert "project name" in str(exc.value)
    assert repr(name) in str(exc.value)


def test_invalid_name_is_a_user_error() -> None:
    assert issubclass(InvalidName, ArtfsError)


@pytest.mark.parametrize("alias", ["best", "prod", "v", "va", "v1a", "version3", "Latest"])
def test_valid_aliases(alias: str) -> None:
    assert check_alias(alias) == alias


@pytest.mark.parametrize("alias", ["latest", "staging", "v0", "v3", "v42", "", "a b", "-x"])
def test_reserved_and_version_shaped_aliases_are_refused(alias: str) -> None:
    with pytest.raises(InvalidName, match="alias"):
        check_alias(alias)


@pytest.mark.parametrize(
    ("text", "expected"), [("v0", 0), ("v3", 3), ("v123", 123), ("v", None), ("3", None)]
)
def test_parse_version(text: str, expected: int | None) -> None:
    assert parse_version(text) == expected


def test_ref_without_selector_means_latest() -> None:
    ref = Ref.parse("proj/mnist")
    assert ref.artifact == ArtifactName("proj", "mnist")
    assert ref.selector == "latest"
    assert ref.version is None
    assert str(ref) == "proj/mnist:latest"


def test_ref_with_version_and_alias() -> None:
    assert Ref.parse("proj/mnist:v3").version == 3
    alias = Ref.parse("proj/mnist:best")
    assert alias.version is None
    assert alias.selector == "best"


@pytest.mark.parametrize(
    "text",
    ["mnist", "proj/", "/mnist", "proj/mnist:", "proj/mnist:a b", "a/b/c", "proj/mn ist", "p:x/y"],
)
def test_bad_refs_are_refused(text: str) -> None:
    with pytest.raises(InvalidName):
        Ref.parse(text)


@pytest.mark.parametrize("text", ["proj/mnist:v1", "proj", "proj/a/b"])
def test_artifact_names_take_no_selector(text: str) -> None:
    with pytest.raises(InvalidName):
        ArtifactName.parse(text)


@pytest.mark.parametrize(
    "path", ["a", "a/b/c.txt", "dir.with.dots/x", "...", "a..b", "é/ü", "x" * 255 + "/y"]
)
def test_valid_paths(path: str) -> None:
    assert check_path(path) == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/abs", "relative"),
        ("a/../b", "'..'"),
        ("..", "'..'"),
        ("./a", "'.'"),
        ("a//b", "empty"),
        ("a/", "empty"),
        ("a\0b", "NUL"),
        ("x" * 256, "255 bytes"),
        ("é" * 128, "255 bytes"),  # 256 bytes in UTF-8, 128 characters
    ],
)
def test_bad_paths_are_refused_saying_why(path: str, why: str) -> None:
    with pytest.raises(InvalidName, match="invalid path") as exc:
        check_path(path)
    assert why in str(exc.value)


@pytest.mark.parametrize(
    "path",
    [".artfs-wh.a", "d/.artfs-wh.a", "d/.artfs-wh..opaque/x", ".artfs-commit", ".artfs-base"],
)
def test_names_staging_keeps_are_refused_in_a_new_version(path: str) -> None:
    check_path(path)  # a path as such
    with pytest.raises(InvalidName, match="staging keeps names") as exc:
        check_stored_path(path)
    assert "rename it" in str(exc.value)


@pytest.mark.parametrize("path", ["d/.artfs-commit", "d/.artfs-base", ".artfs-x", "a.artfs-wh.b"])
def test_names_like_them_elsewhere_may_be_stored(path: str) -> None:
    assert check_stored_path(path) == path
