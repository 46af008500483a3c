"""W&B's links and model helpers: ``link_artifact``, ``link_model``, ``log_model``,
``use_model``.

A link makes a logged version a member of another collection, typically in a registry:
W&B's ``wandb-registry-NAME/COLLECTION`` or a portfolio ``[entity/]project/collection``
(``link_model`` defaults to W&B's ``model-registry`` project). In artfs a registry is an
ordinary project, so ``artfs ls``, the mount and ``Api().artifact("wandb-registry-model/prod:
latest")`` show a linked version like any other. The member is a version of its own (its own
number and aliases) holding the same files: the store keeps their chunks once, nothing is
copied. Linking the same content again is the same member. Lineage shows the link as the
linking run logging the member, and using the source when another run logged it.
"""

from __future__ import annotations

import os
from pathlib import Path

from artfs.lineage import Lineage
from artfs.sdk.artifact import Artifact
from artfs.store import Store

MODEL_REGISTRY = "model-registry"


def link(
    store: Store, run_id: str, source: Artifact, target_path: str, aliases: list[str] | None
) -> Artifact:
    """Make logged ``source`` a member of ``target_path`` (``[entity/]project/collection``)
    as run ``run_id``; returns the member."""
    member = source._link(target_path, aliases, run_id)
    if source._logged().logged_by != run_id:  # a run linking what it logged uses nothing new
        Lineage(store).use(run_id, source._logged())
    return member


def default_model_name(run_id: str, path: str | os.PathLike[str]) -> str:
    """W&B's name for a model logged without one: ``run-ID-BASENAME``."""
    return f"run-{run_id}-{Path(path).name}"
