"""artfs: versioned, deduplicated ML artifacts you can mount.

The W&B-shaped SDK::

    import artfs

    with artfs.init(project="mnist", job_type="train") as run:
        data = run.use_artifact("mnist-data:latest")
        ...
        model = artfs.Artifact("classifier", type="model")
        model.add_file("model.pt")
        run.log_artifact(model, aliases=["best"])
"""

from artfs.errors import (
    AliasesHeld,
    ArtfsError,
    ArtifactFinalized,
    ArtifactMismatch,
    Conflict,
    CorruptData,
    DuplicateEntry,
    InputError,
    InvalidName,
    NotASingleFile,
    NotFound,
    NotLogged,
    ReferenceChanged,
    ReferenceMissing,
    StoreError,
    TypeMismatch,
)
from artfs.sdk import Api, Artifact, ArtifactCollection, ArtifactManifestEntry, Run, current, init

__version__ = "0.1.0"

__all__ = [
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
    "InputError",
    "InvalidName",
    "NotASingleFile",
    "NotFound",
    "NotLogged",
    "ReferenceChanged",
    "ReferenceMissing",
    "Run",
    "StoreError",
    "TypeMismatch",
    "__version__",
    "current",
    "init",
]
