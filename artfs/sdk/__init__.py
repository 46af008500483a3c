"""The Python SDK: W&B's artifact API (``init``, ``Run``, ``Artifact``, ``Api``) on artfs."""

from artfs.sdk.api import Api, ArtifactCollection
from artfs.sdk.artifact import Artifact, ArtifactManifestEntry
from artfs.sdk.run import Run, current, init

__all__ = [
    "Api",
    "Artifact",
    "ArtifactCollection",
    "ArtifactManifestEntry",
    "Run",
    "current",
    "init",
]
