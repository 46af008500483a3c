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
    # The SDK's names are those artfs.sdk exports (its __all__, the one list of them); at run
    # time __getattr__ below loads them on first use.
    from artfs.sdk import *  # noqa: F403

__version__ = "0.1.0"

# W&B's module attributes that follow the current run: None / a placeholder before init.
_RUN_STATE = frozenset({"config", "run", "summary"})


def __getattr__(name: str) -> Any:
    # The SDK loads on first use: the CLI and the daemon import artfs.* modules without
    # paying for the SDK (and the lineage module it brings) at every start.
    if name in _RUN_STATE:
        from artfs import sdk

        return sdk.module_attribute(name)
    if name in __all__:  # a public name not defined here: one of the SDK's
        from artfs import sdk

        return getattr(sdk, name)
    if name == "util":
        import artfs.util

        return artfs.util
    raise AttributeError(f"module 'artfs' has no attribute {name!r}")


# The public API, pinned by tests/sdk/test_sdk_api.py; the SDK's names in it come from the
# star import above for type checkers and from __getattr__ at run time (ruff cannot tell).
__all__ = [  # noqa: F405
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
