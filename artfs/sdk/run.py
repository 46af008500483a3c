"""``Run``: one job, what it logged and what it used (``artfs.init`` starts one).

A run is recorded in the store (project, job type, name, config, host, user, command line,
pid and process start time, container, and W&B's entity, group, tags and notes);
``log_artifact`` stores a version with ``logged_by`` set to the run, ``use_artifact`` records
the usage edge run -> version, ``log`` keeps the run's history and ``summary`` its last values
(see :mod:`artfs.sdk.metrics`). A run used as a context manager finishes with exit code 1 when
its block raised. A run read back (``Api().run``, ``Artifact.logged_by``) is a
:class:`~artfs.sdk.artifact.PublicRun`, which this live run extends.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from artfs.errors import NotFound, UsageError
from artfs.fs.staging_files import REGISTER_FILE, STORE_FILE
from artfs.lineage import CRASHED, FAILED, FINISHED, Lineage, RunRecord
from artfs.mounts import ARTFS_FSTYPE, mount_table
from artfs.names import ArtifactName, Ref
from artfs.sdk import links, metric_defs, paths
from artfs.sdk.artifact import Artifact, PublicRun
from artfs.sdk.distributed import Pending
from artfs.sdk.metric_defs import Metric
from artfs.sdk.metrics import Config, History
from artfs.store import Store


class Run(PublicRun):
    """The live run of this process: what a run read back offers (:class:`PublicRun`) and
    what only the process running it does: log, define metrics, log distributed artifacts,
    link, finish."""

    def __init__(
        self,
        store: Store,
        record: RunRecord,
        *,
        history: History,
        disabled: bool = False,
        allow_val_change: bool = False,
        run_dir: str | None = None,
    ) -> None:
        save = None if disabled else self._save_config
        config = Config(record.config, save, allow_val_change)
        super().__init__(store, record, config=config, summary=history.summary)
        self._active = True
        self._disabled = disabled
        self._history = history
        self._dir = run_dir

    @property
    def dir(self) -> str:
        """Where the run keeps local files (W&B's ``dir``; the working directory by default)."""
        return self._dir or super().dir

    def update(self) -> None:
        """An active run saves its config and summary as they change; once finished,
        ``update()`` saves edits as on a run read back."""
        if not self._active:
            super().update()

    @property
    def step(self) -> int:
        return self._history.step

    @property
    def disabled(self) -> bool:
        return self._disabled

    # --- metrics ----------------------------------------------------------------------------

    def log(
        self, data: dict[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """Add ``data`` to the run's history (W&B's ``log``; see :mod:`artfs.sdk.metrics`)."""
        self._history.log(data, step=step, commit=commit)

    def define_metric(
        self,
        name: str,
        step_metric: str | None = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
    ) -> Metric:
        """How key ``name`` (or a prefix ending in ``*``) is summarised; the chart settings
        are recorded and have no effect (see :mod:`artfs.sdk.metric_defs`)."""
        metric = metric_defs.parse(name, step_metric, step_sync, hidden, summary, goal)
        return self._history.definitions.add(metric)

    def _rows(self, last: int | None, keys: list[str] | None) -> list[dict[str, Any]]:
        self._history.flush()
        return super()._rows(last, keys)

    # --- artifacts --------------------------------------------------------------------------

    def upsert_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
        distributed_id: str | None = None,
    ) -> Artifact:
        """Add files to the pending version of a distributed artifact (W&B's distributed
        runs; see :mod:`artfs.sdk.distributed`). ``distributed_id`` defaults to the run's
        group. The artifact stays a draft; ``finish_artifact`` commits the version."""
        artifact = self._draft_of(artifact_or_path, name, type)
        if not self._disabled:
            self._pending(artifact, distributed_id).add(self.id, artifact)
        return artifact

    def finish_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
        distributed_id: str | None = None,
    ) -> Artifact:
        """Commit the pending version of a distributed artifact, with this artifact's own
        files, description, metadata and aliases; once, whichever run calls it."""
        artifact = self._draft_of(artifact_or_path, name, type)
        if self._disabled:
            return artifact
        return self._pending(artifact, distributed_id).finish(self.id, artifact, aliases)

    def _pending(self, artifact: Artifact, distributed_id: str | None) -> Pending:
        distributed_id = distributed_id or self.group
        if not distributed_id:
            raise UsageError(
                f"{artifact.name}: pass distributed_id= (or start the runs with group=) so "
                "the runs add to the same version"
            )
        art = ArtifactName(artifact.project or self.project, artifact._name)
        return Pending(self._store, art, distributed_id)

    # --- links and models -------------------------------------------------------------------

    def link_artifact(
        self, artifact: Artifact, target_path: str, aliases: list[str] | None = None
    ) -> Artifact | None:
        """Make the logged ``artifact`` a member of ``target_path`` (a registry collection
        ``wandb-registry-NAME/COLLECTION`` or ``[entity/]project/collection``) with its own
        version number and ``aliases``; see :mod:`artfs.sdk.links`."""
        if self._disabled:
            return None
        return links.link(self._store, self.id, artifact, target_path, aliases)

    def log_model(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        aliases: list[str] | None = None,
    ) -> Artifact:
        """Log ``path`` (a file or directory) as an artifact of type ``model``."""
        model_name = name or links.default_model_name(self.id, path)
        return self.log_artifact(path, name=model_name, type="model", aliases=aliases)

    def use_model(self, name: str) -> str:
        """Use the model artifact ``name`` and download it; returns the local path (the file
        of a one-file model, else its directory)."""
        model = self.use_artifact(name)
        files = model.files()
        root = model.download()
        return str(Path(root) / files[0].path) if len(files) == 1 else root

    def link_model(
        self,
        path: str | os.PathLike[str],
        registered_model_name: str,
        name: str | None = None,
        aliases: list[str] | None = None,
    ) -> Artifact | None:
        """Log ``path`` as a model (or find the identical version) and link it to
        ``model-registry/REGISTERED_MODEL_NAME``, W&B's model registry path."""
        model = self.log_model(path, name)
        target = f"{links.MODEL_REGISTRY}/{registered_model_name}"
        return self.link_artifact(model, target, aliases)

    def mount_path(self, ref: str, mountpoint: str | os.PathLike[str] | None = None) -> Path:
        """Where version ``ref`` is visible under a running ``artfs mount``, so a data loader
        reads it lazily instead of downloading it. Records the usage like ``use_artifact``,
        once the mount is found (a ref no mount shows records nothing)."""
        record = self._store.resolve(paths.artifact_ref(self._store, ref, self.project))
        store_id = self._store.store_id
        if mountpoint is None:
            base = find_mount(record.project, store_id)
        else:
            base = Path(mountpoint)
            _check_store(base, store_id, "the mountpoint given")
        path = base / record.project / record.name / record.version
        if not path.is_dir():
            raise NotFound(
                f"{record.ref} is not visible under {base}: is it a mount of this store?"
            )
        self.use_artifact(record.ref)  # the version found, even if an alias moved since
        return path

    # --- lifetime ---------------------------------------------------------------------------

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """End the run: ``finished`` with exit code 0 (the default), else ``failed``. Its
        history and summary are written first. A second call changes nothing."""
        self._end(0 if exit_code is None else exit_code, crashed=False)

    def _end(self, exit_code: int, *, crashed: bool) -> None:
        if not self._active:
            return
        self._active = False
        if not self._disabled:
            self._history.flush(final=True)
        if crashed and not self._disabled:
            self._record = Lineage(self._store).update_run(self.id, _ended(exit_code, CRASHED))
        elif not self._disabled:
            self._record = Lineage(self._store).finish_run(self.id, exit_code)
        else:
            self._record.state = FINISHED if exit_code == 0 else FAILED
        if _current is self:
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


def _ended(exit_code: int, state: str) -> Callable[[RunRecord], None]:
    def change(record: RunRecord) -> None:
        record.ended, record.exit_code, record.state = time.time(), exit_code, state

    return change


_current: Run | None = None


def _set_current(run: Run | None) -> None:
    global _current
    _current = run


def current() -> Run | None:
    """The run started by ``init`` in this process and not finished yet."""
    return _current


def _register_with_mounts(run_id: str, store_id: str) -> None:
    """Tell every artfs mount of this run's store (``MNT/.artfs-store`` is ``store_id``) this
    process's run, so reads through it are attributed to the run (works from containers: the
    daemon records the pid it sees). A mount of another store, or one that does not show its
    store's id (an older daemon), learns nothing of this run. No mount: nothing."""
    for point in _artfs_mounts():
        if _store_shown(Path(point)) != store_id:
            continue
        try:
            with open(os.path.join(point, REGISTER_FILE), "w") as register:
                register.write(run_id + "\n")
        except OSError:
            continue  # not ours to read, or the daemon refused (EACCES): reads stay implicit


def _artfs_mounts() -> list[str]:
    """The mountpoints of every artfs mount in this process's mount namespace."""
    return [mount.point for mount in mount_table() if mount.fstype == ARTFS_FSTYPE]


def _store_shown(base: Path) -> str | None:
    """The id of the store mounted at ``base`` (``MNT/.artfs-store``); None where nothing
    shows one (a plain directory, an older daemon, a mount whose daemon died)."""
    try:
        return (base / STORE_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _check_store(base: Path, store_id: str, named_by: str) -> None:
    """UsageError if ``base`` (``named_by`` the caller: "$ARTFS_MOUNT", ...) is a mount of a
    store other than ``store_id``: its versions are another store's, whatever their names."""
    shown = _store_shown(base)
    if shown is not None and shown != store_id:
        raise UsageError(
            f"{named_by} ({base}) is a mount of store {shown}, not of this run's store "
            f"{store_id}: give a mount of this run's store (artfs --home HOME mount MOUNTPOINT)"
        )


def find_mount(project: str, store_id: str) -> Path:
    """The mount of store ``store_id`` that shows ``project``: ``$ARTFS_MOUNT`` first (a
    mount of another store there is an error), then each artfs mount in this process's mount
    table whose ``MNT/.artfs-store`` is ``store_id`` (one of another store, or one that shows
    no store, is passed over, as :func:`_register_with_mounts` passes it over), each looked at
    only once those before it did not show the project."""
    chosen = os.environ.get("ARTFS_MOUNT")
    if chosen:
        _check_store(Path(chosen), store_id, "$ARTFS_MOUNT")
    candidates = itertools.chain(
        [Path(chosen)] if chosen else [],
        (Path(point) for point in _artfs_mounts() if _store_shown(Path(point)) == store_id),
    )
    for base in candidates:
        try:
            if (base / project).is_dir():
                return base
        except OSError:  # a mount whose daemon died (ENOTCONN) shows nothing
            continue
    raise NotFound(
        f"no artfs mount of this store shows project {project!r}: run 'artfs --home HOME "
        "mount MOUNTPOINT' for this run's store, or pass mountpoint="
    )


__all__ = ["ArtifactName", "Ref", "Run", "current", "find_mount"]
