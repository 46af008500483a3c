"""The Python SDK: W&B's artifact API (``init``, ``Run``, ``Artifact``, ``Api``) on artfs,
with the module-level calls of ``wandb`` (``log``, ``finish``, ``log_artifact``, ...)."""

from artfs.sdk.api import Api, ArtifactCollection
from artfs.sdk.artifact import Artifact, ArtifactManifestEntry, PublicRun
from artfs.sdk.run import Run, current
from artfs.sdk.session import (
    Settings,
    define_metric,
    finish,
    init,
    link_model,
    log,
    log_artifact,
    log_model,
    login,
    module_attribute,
    use_artifact,
    use_model,
)

__all__ = [
    "Api",
    "Artifact",
    "ArtifactCollection",
    "ArtifactManifestEntry",
    "PublicRun",
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
    "module_attribute",
    "use_artifact",
    "use_model",
]
