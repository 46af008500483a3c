"""``artfs.Api``, the public names, and bad input that must leave the store as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import artfs
from artfs import Api, Artifact, InvalidName, NotFound, TypeMismatch

PUBLIC = [
    "AliasesHeld",
    "Api",
    "ArtfsError",
    "Artifact",
    "ArtifactCollection",
    "ArtifactFinalized",
    "ArtifactManifestEntry",
    "ArtifactMismatch",
    "Conflict",
    "CorruptData",
    "DuplicateEntry",
    "Error",
    "InputError",
    "InvalidName",
    "NotASingleFile",
    "NotFound",
    "NotLogged",
    "PublicRun",
    "ReferenceChanged",
    "ReferenceMissing",
    "Run",
    "Settings",
    "StoreError",
    "TypeMismatch",
    "__version__",
    "config",
    "current",
    "define_metric",
    "errors",
    "finish",
    "init",
    "link_model",
    "log",
    "log_artifact",
    "log_model",
    "login",
    "run",
    "summary",
    "use_artifact",
    "use_model",
]


def test_the_public_api_is_pinned_and_sorted() -> None:
    assert artfs.__all__ == PUBLIC
    assert sorted(artfs.__all__) == artfs.__all__
    for name in PUBLIC:
        # W&B's wandb.run is None until init; every other name is there from the import on.
        assert (getattr(artfs, name) is None) == (name == "run"), name


def test_artfs_exports_what_the_sdk_exports() -> None:
    """artfs.sdk's __all__ is the list of SDK names; artfs re-exports each (lazily)."""
    import artfs.sdk

    sdk_names = set(artfs.sdk.__all__) - {"module_attribute"}  # artfs's own helper
    assert sdk_names <= set(artfs.__all__)
    for name in sdk_names:
        assert getattr(artfs, name) is getattr(artfs.sdk, name), name
    with pytest.raises(AttributeError, match="no attribute 'module_attribute'"):
        _ = artfs.module_attribute  # type: ignore[attr-defined]


def test_every_sdk_error_is_an_artfs_error() -> None:
    for name in PUBLIC:
        value = getattr(artfs, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, artfs.ArtfsError), name


@pytest.fixture
def populated(home: Path, tmp_path: Path, make_tree: Any) -> dict[str, str]:
    """proj/mnist v0..v1 (dataset), proj/clf v0 (model, from the train run), other/x v0."""
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    with artfs.init(project="proj", job_type="prep", home=home) as prep:
        prep.log_artifact(src, name="mnist", type="dataset", aliases=["first"])
        (src / "b.txt").write_text("b")
        prep.log_artifact(src, name="mnist", type="dataset")
    with artfs.init(project="proj", job_type="train", home=home) as train:
        train.use_artifact("mnist:first")
        train.use_artifact("mnist:v1")
        train.log_artifact(src / "a.txt", name="clf", type="model")
    with artfs.init(project="other", job_type="misc", home=home) as misc:
        misc.log_artifact(src / "b.txt", name="x", type="dataset")
    return {"prep": prep.id, "train": train.id, "misc": misc.id}


def test_artifact_by_ref_alias_and_version(populated: Any, home: Path) -> None:
    api = Api(home=home)
    assert api.artifact("proj/mnist").version == "v1"
    assert api.artifact("proj/mnist:latest").version == "v1"
    assert api.artifact("proj/mnist:first").version == "v0"
    assert api.artifact("proj/mnist:v0", type="dataset").qualified_name == "proj/mnist:v0"
    with pytest.raises(TypeMismatch, match="'model'"):
        api.artifact("proj/mnist:v0", type="model")
    with pytest.raises(NotFound):
        api.artifact("proj/mnist:v9")
    with pytest.raises(InvalidName):
        api.artifact("no-project-part")


def test_artifact_exists(populated: Any, home: Path) -> None:
    api = Api(home=home)
    assert api.artifact_exists("proj/mnist:first")
    assert api.artifact_exists("proj/clf", type="model")
    assert not api.artifact_exists("proj/clf", type="dataset")
    assert not api.artifact_exists("proj/mnist:nope")
    assert not api.artifact_exists("nowhere/mnist")


def test_artifacts_lists_every_version_oldest_first(populated: Any, home: Path) -> None:
    api = Api(home=home)
    assert [a.name for a in api.artifacts("dataset", "proj/mnist")] == ["mnist:v0", "mnist:v1"]
    with pytest.raises(NotFound):
        api.artifacts("dataset", "proj/ghost")


def test_artifact_collections_with_a_type_filter(populated: Any, home: Path) -> None:
    api = Api(home=home)
    found = {(c.name, c.type) for c in api.artifact_collections("proj")}
    assert found == {("mnist", "dataset"), ("clf", "model")}
    models = api.artifact_collections("proj", type_name="model")
    assert [(c.project, c.name) for c in models] == [("proj", "clf")]
    assert [a.version for a in models[0].versions()] == ["v0"]
    assert api.artifact_collections("proj", type_name="code") == []
    with pytest.raises(NotFound, match="nowhere"):
        api.artifact_collections("nowhere")


def test_runs_and_run_with_their_artifacts(populated: dict[str, str], home: Path) -> None:
    api = Api(home=home)
    assert [r.id for r in api.runs("proj")] == [populated["prep"], populated["train"]]
    assert [r.id for r in api.runs("other")] == [populated["misc"]]
    train = api.run(populated["train"])
    assert train.job_type == "train"
    assert [a.qualified_name for a in train.logged_artifacts()] == ["proj/clf:v0"]
    assert sorted(a.qualified_name for a in train.used_artifacts()) == [
        "proj/mnist:v0",
        "proj/mnist:v1",
    ]
    prep = api.run(f"proj/{populated['prep']}")
    assert sorted(a.qualified_name for a in prep.logged_artifacts()) == [
        "proj/mnist:v0",
        "proj/mnist:v1",
    ]
    assert prep.used_artifacts() == []
    with pytest.raises(NotFound):
        api.run("zzzzzzzz")
    with pytest.raises(NotFound):
        api.run("not-a-run-id")


# --- bad input leaves nothing half-logged -----------------------------------------------------


def test_logging_under_a_different_type_changes_nothing(
    populated: Any, home: Path, tmp_path: Path, store_state: Any
) -> None:
    (tmp_path / "new.txt").write_text("new")
    art = Artifact("mnist", "model")
    art.add_file(tmp_path / "new.txt")
    with artfs.init(project="proj", home=home) as run:
        before = store_state()  # artfs ls --json at every level, packs and the index file
        with pytest.raises(TypeMismatch, match=r"proj/mnist.*'dataset'.*type="):
            run.log_artifact(art, aliases=["best"])
        assert store_state() == before
    assert art.state == "PENDING"
    assert art.aliases == []  # the failed call did not leave its aliases on the draft


def test_a_bad_alias_is_refused_before_anything_is_stored(
    run: artfs.Run, tmp_path: Path, catalog_state: Any
) -> None:
    (tmp_path / "f").write_bytes(b"x" * 10000)
    before = catalog_state()
    for alias in ["v3", "latest!", "has space"]:
        with pytest.raises(InvalidName):
            run.log_artifact(tmp_path / "f", name="f", type="dataset", aliases=[alias])
    assert catalog_state() == before


def test_a_file_that_vanished_after_add_file_is_an_input_error(
    run: artfs.Run, tmp_path: Path, store_state: Any
) -> None:
    (tmp_path / "keep").write_text("keep" * 1000)
    (tmp_path / "gone").write_text("gone")
    art = Artifact("x", "dataset")
    art.add_file(tmp_path / "keep")
    art.add_file(tmp_path / "gone")
    (tmp_path / "gone").unlink()
    before = store_state()
    with pytest.raises(artfs.InputError, match="gone"):
        run.log_artifact(art)
    assert store_state() == before
    assert art.state == "PENDING"


def test_a_collection_prints_without_store_internals(populated: Any, home: Path) -> None:
    [models] = Api(home=home).artifact_collections("proj", type_name="model")
    assert repr(models) == "ArtifactCollection(project='proj', name='clf', type='model')"
