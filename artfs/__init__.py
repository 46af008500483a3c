"""artfs: versioned, deduplicated ML artifacts you can mount.

The W&B-shaped SDK::

    import artfs  # or, for a W&B script: import artfs as wandb

    with artfs.init(project="mnist", job_type="train") as run:
        data = run.use_artifact("mnist-data:latest")
        ...
        model = artfs.Artifact("classifier", type="model")
        model.add_file("model.pt")
        run.log_artifact(model, aliases=["best"])
"""

from typing import TYPE_CHECKING, Any

from artfs import errors
from artfs.errors import (
    AliasesHeld,
    ArtfsError,
    ArtifactFinalized,
    ArtifactMismatch,
    Conflict,
    CorruptData,
    DuplicateEntry,
    Error,
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
        Settings,
        current,
        define_metric,
        finish,
        init,
        link_model,
        log,
        log_artifact,
        log_model,
        login,
        use_artifact,
        use_model,
    )

__version__ = "0.1.0"

_SDK_NAMES = frozenset(
    {
        "Api",
        "Artifact",
        "ArtifactCollection",
        "ArtifactManifestEntry",
        "Run",
        "Settings",
        "current",
        "define_metric",
        "finish",
        "init",
        "link_model",
        "log",
        "log_artifact",
        "log_model",
        "login",
        "use_artifact",
        "use_model",
    }
)
# W&B's module attributes that follow the current run: None / a placeholder before init.
_RUN_STATE = frozenset({"config", "run", "summary"})


def __getattr__(name: str) -> Any:
    # The SDK loads on first use: the CLI and the daemon import artfs.* modules without
    # paying for the SDK (and the lineage module it brings) at every start.
    if name in _SDK_NAMES:
        from artfs import sdk

        return getattr(sdk, name)
    if name in _RUN_STATE:
        from artfs import sdk

        return sdk.module_attribute(name)
    if name == "util":
        import artfs.util

        return artfs.util
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
    "Error",
    "InputError",
    "InvalidName",
    "NotASingleFile",
    "NotFound",
    "NotLogged",
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
