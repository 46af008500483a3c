"""``artfs.Api``: read access to everything in a store, with W&B's public API signatures.

Paths take W&B's forms with the entity optional (:mod:`artfs.sdk.paths`); a bare artifact
name is looked up in ``overrides["project"]``. ``run``/``runs`` look at each running run first
(:mod:`artfs.run_ends`), so a run whose process died is reported ``crashed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artfs import porcelain
from artfs.errors import NotFound, TypeMismatch
from artfs.names import ArtifactName
from artfs.sdk import paths
from artfs.sdk.artifact import Artifact, PublicRun
from artfs.sdk.filters import matches, order_key
from artfs.store import Store, default_home
from artfs.stores import open_store


@dataclass
class ArtifactCollection:
    """One artifact name of a project with all its versions (W&B's collection)."""

    project: str
    name: str
    type: str
    _store: Store = field(repr=False, compare=False)

    @property
    def entity(self) -> str | None:
        """The store's entity (``artfs config entity``), if it has one."""
        return self._store.entity()

    def artifacts(self, per_page: int = 50) -> list[Artifact]:
        """Every version, oldest first."""
        return [
            Artifact._from_record(self._store, r)
            for r in porcelain.versions(self._store, ArtifactName(self.project, self.name))
        ]

    versions = artifacts

    @property
    def aliases(self) -> list[str]:
        """Every alias held by a version of the collection."""
        return sorted({a for v in self.artifacts() for a in v.aliases})

    def is_sequence(self) -> bool:
        return True

    def delete(self) -> None:
        """Delete the collection with every version (W&B's ``ArtifactCollection.delete``)."""
        porcelain.delete(self._store, ArtifactName(self.project, self.name), force=True)


class Api:
    def __init__(
        self,
        overrides: dict[str, Any] | None = None,
        timeout: int | None = None,
        api_key: str | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
    ) -> None:
        self._store = open_store(Path(home) if home is not None else default_home())
        self._overrides = dict(overrides or {})
        paths.check_entity(self._store, self._overrides.get("entity"))

    @property
    def default_project(self) -> str | None:
        return self._overrides.get("project") or os.environ.get("WANDB_PROJECT")

    # --- artifacts --------------------------------------------------------------------------

    def artifact(self, name: str, type: str | None = None) -> Artifact:
        """The version ``[entity/]project/name[:vN|:alias]`` (latest without a selector)."""
        ref = paths.artifact_ref(self._store, name, self.default_project)
        record = self._store.resolve(ref)
        if type is not None and record.type != type:
            raise TypeMismatch(f"{record.ref} is of type {record.type!r}, not {type!r}")
        return Artifact._from_record(self._store, record)

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        try:
            self.artifact(name, type)
        except (NotFound, TypeMismatch):
            return False
        return True

    def artifacts(
        self, type_name: str, name: str, per_page: int = 50, tags: list[str] | None = None
    ) -> list[Artifact]:
        """Every version of the collection ``[entity/]project/name`` of type ``type_name``,
        oldest first (only those carrying every tag in ``tags``)."""
        collection = self.artifact_collection(type_name, name)
        found = collection.artifacts()
        if tags:
            found = [a for a in found if set(tags) <= set(a.tags)]
        return found

    artifact_versions = artifacts

    def artifact_collection(self, type_name: str, name: str) -> ArtifactCollection:
        """The collection ``[entity/]project/name``; NotFound unless it has type ``type_name``."""
        project, base = paths.collection_name(self._store, name, self.default_project)
        known = self._store.artifact(ArtifactName(project, base))
        if known is None:
            raise NotFound(f"no artifact {project}/{base}: see 'artfs ls {project}'")
        if known.type != type_name:
            raise NotFound(
                f"{project}/{base} is of type {known.type!r}, not {type_name!r}: "
                f"pass type_name={known.type!r}"
            )
        return ArtifactCollection(project, base, known.type, self._store)

    def artifact_collection_exists(self, name: str, type: str) -> bool:
        try:
            self.artifact_collection(type, name)
        except NotFound:
            return False
        return True

    def artifact_collections(
        self, project_name: str, type_name: str | None = None, per_page: int = 50
    ) -> list[ArtifactCollection]:
        """The collections of ``[entity/]project`` (of type ``type_name`` when given)."""
        project = paths.project_path(self._store, project_name)
        return [
            ArtifactCollection(a.project, a.name, a.type, self._store)
            for a, _ in self._store.artifacts(project)
            if type_name is None or a.type == type_name
        ]

    def artifact_types(self, project: str | None = None) -> list[str]:
        """The artifact types used in ``[entity/]project``."""
        name = project or self.default_project
        if name is None:
            raise NotFound("name a project: artifact_types(project='proj')")
        return sorted({c.type for c in self.artifact_collections(name)})

    def projects(self, entity: str | None = None, per_page: int = 200) -> list[str]:
        paths.check_entity(self._store, entity)
        return porcelain.projects(self._store)

    # --- runs -------------------------------------------------------------------------------

    def run(self, path: str = "") -> PublicRun:
        """A run by ``[entity/]project/run_id`` or just its id, read back (W&B's public
        ``Run``; the live run of ``init`` extends it)."""
        run_id = paths.run_path(self._store, path)
        return PublicRun(self._store, porcelain.run(self._store, run_id))

    def runs(
        self,
        path: str | None = None,
        filters: dict[str, Any] | None = None,
        order: str = "+created_at",
        per_page: int = 50,
        include_sweeps: bool = True,
    ) -> list[PublicRun]:
        """The runs of ``[entity/]project`` (every project without a path) that match W&B's
        MongoDB-style ``filters`` (see :mod:`artfs.sdk.filters`), in ``order``."""
        project = paths.project_path(self._store, path) if path else self.default_project
        runs = [PublicRun(self._store, r) for r in porcelain.runs(self._store, project)]
        if filters:
            runs = [r for r in runs if matches(r, filters)]
        key, reverse = order_key(order)
        return sorted(runs, key=key, reverse=reverse)
