"""Hostile input, generated: names, refs, aliases and paths from arbitrary text, and trees with
arbitrary file names. Always a clear error (InvalidName/InputError) or a correct result; nothing
is ever written outside the store. ``./dev stress`` runs thousands of cases.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artfs.errors import InputError, InvalidName
from artfs.names import (
    NAME_RE,
    ArtifactName,
    Ref,
    check_alias,
    check_name,
    check_path,
    parse_version,
)
from artfs.store import Store
from artfs.store.export import materialize

QUICK = settings(max_examples=50, deadline=None)
STRESS = settings(max_examples=3000, deadline=None)

texts = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["latest", "staging", "v3", "v0", "..", ".", "/", "a/../b", "a\0b", "x" * 300]),
    st.from_regex(r"[A-Za-z0-9._/:-]{0,40}", fullmatch=True),
)


def _names(text: str) -> None:
    for check in (check_name, check_alias, check_path):
        try:
            value = check(text)
        except InvalidName as exc:
            assert str(exc), "an error must say what is wrong"
            continue
        assert value == text
        if check is not check_path:
            assert NAME_RE.fullmatch(text)
        if check is check_alias:
            assert text not in ("latest", "staging") and parse_version(text) is None
        if check is check_path:
            parts = text.split("/")
            assert not text.startswith("/") and "\0" not in text
            assert all(p not in ("", ".", "..") for p in parts)
    for parse in (Ref.parse, ArtifactName.parse):
        with contextlib.suppress(InvalidName):
            parse(text)


@QUICK
@given(texts)
def test_names_refs_and_paths_are_accepted_or_refused_clearly(text: str) -> None:
    _names(text)


@pytest.mark.slow
@STRESS
@given(texts)
def test_names_refs_and_paths_stress(text: str) -> None:
    _names(text)


# File names a Linux filesystem accepts: no '/', no NUL, at most 255 bytes.
file_names = st.text(
    alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 255)
trees = st.dictionaries(
    st.lists(file_names, min_size=1, max_size=3).map(tuple),
    st.binary(max_size=300),
    min_size=1,
    max_size=6,
)


def _round_trip(base: Path, tree: dict[tuple[str, ...], bytes]) -> None:
    shutil.rmtree(base, ignore_errors=True)
    src, home, out = base / "src", base / "home", base / "out"
    written: dict[str, bytes] = {}
    for parts, content in tree.items():
        path = src.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue  # the generated tree uses one name as both file and directory
        written["/".join(parts)] = content
    outside_before = set(os.listdir(base))
    with Store.open(home) as store:
        try:
            result = store.put(src, ArtifactName("proj", "data"))
        except InputError:
            return
        materialize(store, result.record, out)
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    expected = {
        p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()
    }
    assert got == expected
    assert set(os.listdir(base)) == outside_before | {"home", "out"}


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60, deadline=None
)
@given(trees)
def test_arbitrary_file_names_round_trip_and_stay_inside(
    tmp_path: Path, tree: dict[tuple[str, ...], bytes]
) -> None:
    _round_trip(tmp_path / "case", tree)


@pytest.mark.slow
@pytest.mark.timeout(600)  # 1,500 store round trips
@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=1500, deadline=None
)
@given(trees)
def test_arbitrary_file_names_stress(tmp_path: Path, tree: dict[tuple[str, ...], bytes]) -> None:
    _round_trip(tmp_path / "case", tree)
