"""``artfs.Api``: read access to everything in a store, shaped like W&B's public API."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from artfs.errors import NotFound, TypeMismatch
from artfs.lineage import Lineage
from artfs.names import ArtifactName, Ref, check_name
from artfs.sdk.artifact import Artifact
from artfs.sdk.run import Run
from artfs.store import Store, default_home
from artfs.stores import open_store


@dataclass
class ArtifactCollection:
    """One artifact name of a project with all its versions (W&B's collection)."""

    project: str
    name: str
    type: str
    _store: Store = field(repr=False, compare=False)

    def versions(self) -> list[Artifact]:
        return [
            Artifact._from_record(self._store, r)
            for r in self._store.versions(ArtifactName(self.project, self.name))
        ]


class Api:
    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self._store = open_store(Path(home) if home is not None else default_home())

    def artifact(self, name: str, type: str | None = None) -> Artifact:
        """The version ``project/name[:vN|:alias]``."""
        record = self._store.resolve(Ref.parse(name))
        if type is not None and record.type != type:
            raise TypeMismatch(f"{record.ref} is of type {record.type!r}, not {type!r}")
        return Artifact._from_record(self._store, record)

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        try:
            self.artifact(name, type)
        except (NotFound, TypeMismatch):
            return False
        return True

    def artifacts(self, project: str, name: str) -> list[Artifact]:
        """Every version of ``project/name``, oldest first."""
        records = self._store.versions(ArtifactName(check_name(project, "project"), name))
        return [Artifact._from_record(self._store, r) for r in records]

    def artifact_collections(
        self, project: str, type_name: str | None = None
    ) -> list[ArtifactCollection]:
        return [
            ArtifactCollection(a.project, a.name, a.type, self._store)
            for a, _ in self._store.artifacts(project)
            if type_name is None or a.type == type_name
        ]

    def runs(self, project: str) -> list[Run]:
        return [Run._from_record(self._store, r) for r in Lineage(self._store).runs(project)]

    def run(self, run_id: str) -> Run:
        """A run by id; ``project/run_id`` (W&B's path form) is accepted too."""
        return Run._load(self._store, run_id.rpartition("/")[2])
