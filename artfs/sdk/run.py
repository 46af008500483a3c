"""``artfs.init`` and ``Run``: one job, what it logged and what it used.

``init`` records a run in the store (project, job type, name, config, host, user, command line,
pid and process start time, container) and returns it; ``log_artifact`` stores a version with
``logged_by`` set to the run, ``use_artifact`` records the usage edge run -> version. A run used
as a context manager finishes with exit code 1 when its block raised.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

from artfs import procinfo
from artfs.errors import NotFound, TypeMismatch
from artfs.lineage import Lineage, RunRecord
from artfs.names import ArtifactName, Ref, check_name
from artfs.sdk.artifact import Artifact
from artfs.store import Store, default_home
from artfs.stores import open_store

MOUNT_FSTYPE = "fuse.artfs"


class Run:
    def __init__(self, store: Store, record: RunRecord, *, active: bool) -> None:
        self._store = store
        self._record = record
        self._active = active

    @classmethod
    def _from_record(cls, store: Store, record: RunRecord) -> Run:
        return cls(store, record, active=False)

    @classmethod
    def _load(cls, store: Store, run_id: str) -> Run:
        return cls._from_record(store, Lineage(store).run(run_id))

    # --- what W&B's Run exposes -------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def project(self) -> str:
        return self._record.project

    @property
    def job_type(self) -> str:
        return self._record.job_type

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def config(self) -> dict[str, Any]:
        return self._record.config

    @property
    def state(self) -> str:
        return self._record.state

    @property
    def record(self) -> RunRecord:
        return self._record

    def __repr__(self) -> str:
        return f"<Run {self.project}/{self.id} {self.name} ({self.state})>"

    # --- artifacts --------------------------------------------------------------------------

    def log_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Artifact:
        """Log a new version (or report the identical existing one); ``latest`` follows it."""
        if isinstance(artifact_or_path, Artifact):
            artifact = artifact_or_path
        else:
            path = Path(artifact_or_path)
            artifact = Artifact(name or path.name, type or "unspecified")
            if path.is_dir():
                artifact.add_dir(path)
            else:
                artifact.add_file(path)
        project = artifact.project or self.project
        return artifact._log(self._store, project, self.id, aliases, tags)

    def use_artifact(self, artifact_or_name: Artifact | str, type: str | None = None) -> Artifact:
        """The logged version named ``name:alias``, ``name:v3`` or ``project/name:v3`` (a
        bare ``name`` means latest, in this run's project); records run -> version."""
        if isinstance(artifact_or_name, Artifact):
            record = artifact_or_name._logged()
        else:
            record = self._store.resolve(_ref(artifact_or_name, self.project))
        if type is not None and record.type != type:
            raise TypeMismatch(
                f"{record.ref} is of type {record.type!r}, not {type!r}: pass type={record.type!r}"
            )
        Lineage(self._store).use(self.id, record)
        return Artifact._from_record(self._store, record)

    def logged_artifacts(self) -> list[Artifact]:
        return [
            Artifact._from_record(self._store, r) for r in Lineage(self._store).outputs(self.id)
        ]

    def used_artifacts(self) -> list[Artifact]:
        return [Artifact._from_record(self._store, r) for r in Lineage(self._store).inputs(self.id)]

    def mount_path(self, ref: str, mountpoint: str | os.PathLike[str] | None = None) -> Path:
        """Where version ``ref`` is visible under a running ``artfs mount``, so a data loader
        reads it lazily instead of downloading it. Records the usage like ``use_artifact``."""
        record = self.use_artifact(ref)._logged()
        base = Path(mountpoint) if mountpoint is not None else find_mount(record.project)
        path = base / record.project / record.name / record.version
        if not path.is_dir():
            raise NotFound(
                f"{record.ref} is not visible under {base}: is it a mount of this store?"
            )
        return path

    # --- lifetime ---------------------------------------------------------------------------

    def finish(self, exit_code: int = 0) -> None:
        if self._active:
            self._record = Lineage(self._store).finish_run(self.id, exit_code)
            self._active = False
            _set_current(None)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.finish(0 if exc_type is None else 1)


_current: Run | None = None


def _set_current(run: Run | None) -> None:
    global _current
    _current = run


def current() -> Run | None:
    """The run started by ``init`` in this process and not finished yet."""
    return _current


def init(
    project: str,
    job_type: str = "job",
    name: str | None = None,
    config: dict[str, Any] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> Run:
    """Start a run: recorded in the store at ``home`` (default ``$ARTFS_HOME``)."""
    check_name(project, "project name")
    store = open_store(Path(home) if home is not None else default_home())
    me = procinfo.facts(os.getpid())
    record = Lineage(store).create_run(
        project,
        job_type,
        name=name,
        config=config,
        command=me.command,
        pid=me.pid,
        proc_start=me.proc_start,
        container=me.container,
    )
    run = Run(store, record, active=True)
    _set_current(run)
    _register_with_mounts(record.id)
    return run


def _register_with_mounts(run_id: str) -> None:
    """Tell every artfs mount this process's run, so reads through the mount are attributed
    to it (works from containers: the daemon records the pid it sees). No mount: nothing."""
    try:
        with open("/proc/self/mounts") as mounts:
            points = [
                f[1].replace("\\040", " ")
                for f in (line.split() for line in mounts)
                if len(f) > 2 and f[2] == MOUNT_FSTYPE
            ]
    except OSError:
        return
    for point in points:
        try:
            with open(os.path.join(point, ".artfs-register"), "w") as register:
                register.write(run_id + "\n")
        except OSError:
            continue  # an older daemon, or a mount of another store: reads stay implicit


def _ref(text: str, project: str) -> Ref:
    base, _, _ = text.partition(":")
    return Ref.parse(text if "/" in base else f"{project}/{text}")


def find_mount(project: str) -> Path:
    """The first artfs mount (``$ARTFS_MOUNT`` first) that shows ``project``."""
    candidates = []
    if os.environ.get("ARTFS_MOUNT"):
        candidates.append(Path(os.environ["ARTFS_MOUNT"]))
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2 and fields[2] == MOUNT_FSTYPE:
                    candidates.append(Path(fields[1].replace("\\040", " ")))
    except OSError:
        pass
    for base in candidates:
        if (base / project).is_dir():
            return base
    raise NotFound(
        f"no artfs mount shows project {project!r}: run 'artfs mount MOUNTPOINT' "
        "or pass mountpoint="
    )


__all__ = ["ArtifactName", "Run", "current", "find_mount", "init"]
