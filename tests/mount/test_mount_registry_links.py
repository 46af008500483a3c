"""A version linked into a W&B-style registry reads through the mount like any version."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

import artfs as wandb
from tests.mount.mountutil import Mount

pytestmark = pytest.mark.mount


def test_a_registry_member_is_a_directory_of_the_mount(
    tmp_path: Path, start_mount: Callable[..., Mount]
) -> None:
    home = tmp_path / "home"
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights" * 10_000)
    with wandb.init(project="training", home=home) as run:
        model = run.log_artifact(str(weights), name="clf", type="model")
        run.link_artifact(model, "wandb-registry-model/production", aliases=["prod"])
    run._store.close()  # the daemon opens the store itself

    mnt = start_mount(home)
    member = mnt.path / "wandb-registry-model" / "production"
    assert sorted(os.listdir(member)) == ["latest", "prod", "staging", "v0"]
    assert os.readlink(member / "prod") == "v0"
    assert (member / "prod" / "model.pt").read_bytes() == weights.read_bytes()
    assert (mnt.path / "training" / "clf" / "v0" / "model.pt").read_bytes() == weights.read_bytes()
