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

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from artfs.sdk import (
        Api,
        Artifact,
        ArtifactCollection,
        ArtifactManifestEntry,
        Run,
        current,
        init,
    )

__version__ = "0.1.0"

_SDK_NAMES = frozenset(
    {"Api", "Artifact", "ArtifactCollection", "ArtifactManifestEntry", "Run", "current", "init"}
)


def __getattr__(name: str) -> Any:
    # The SDK loads on first use: the CLI and the daemon import artfs.* modules without
    # paying for the SDK (and the lineage module it brings) at every start.
    if name in _SDK_NAMES:
        from artfs import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'artfs' has no attribute {name!r}")


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
