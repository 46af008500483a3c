"""``artfs.init`` with W&B's keyword arguments, and the module-level calls that act on the
process's current run (``artfs.log``, ``artfs.finish``, ``artfs.log_artifact``, ...), so a
W&B script runs with ``import artfs as wandb``.

What W&B's arguments mean here (docs/sdk.md has the whole table):

- ``project`` (default ``$WANDB_PROJECT``, else ``uncategorized``), ``name``, ``job_type``,
  ``group``, ``tags``, ``notes``, ``config`` are recorded on the run; ``entity`` too, after a
  check against the store's entity (:mod:`artfs.sdk.paths`).
- ``mode``: ``online`` and ``offline`` both record in the local store (artfs is local first);
  ``disabled`` records nothing (``log_artifact`` leaves the artifact a draft) but still reads
  artifacts from the store.
- ``id`` (8 lowercase letters or digits, as ``wandb.util.generate_id()`` makes) with
  ``resume``: ``"allow"``/``True``/``"auto"`` continue a run of that id if there is one,
  ``"must"`` requires it, ``"never"``/``None`` refuse it. A continued run is running again and
  its history goes on from its last step.
- ``reinit``: while a run is active, ``False`` (the default) returns it, ``True`` or
  ``"finish_previous"`` finishes it first, ``"create_new"`` starts another beside it.
- ``dir`` is where the run keeps local files (``run.dir``); the store is ``home`` (default
  ``$ARTFS_HOME``). Arguments about W&B's servers and UI are accepted and have no effect.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artfs import procinfo
from artfs.errors import UnsupportedError, UsageError
from artfs.lineage import RUN_ID_ALPHABET, RUN_ID_LENGTH, RUNNING, Lineage, RunRecord, new_run_id
from artfs.names import check_name
from artfs.run_metrics import RunMetrics, plain
from artfs.sdk import ending, paths
from artfs.sdk.artifact import Artifact
from artfs.sdk.metric_defs import Metric
from artfs.sdk.metrics import History, Summary, as_mapping
from artfs.sdk.run import Run, _register_with_mounts, _set_current, current
from artfs.store import Store, default_home
from artfs.stores import open_store

MODES = ("online", "offline", "disabled", "shared")
DEFAULT_PROJECT = "uncategorized"
MAX_TAG_LENGTH = 64


def init(
    project: str | None = None,
    job_type: str | None = None,
    name: str | None = None,
    config: Any = None,
    home: str | os.PathLike[str] | None = None,
    *,
    entity: str | None = None,
    group: str | None = None,
    tags: Sequence[str] | None = None,
    notes: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    mode: str | None = None,
    id: str | None = None,
    resume: bool | str | None = None,
    reinit: bool | str | None = None,
    config_exclude_keys: Sequence[str] | None = None,
    config_include_keys: Sequence[str] | None = None,
    allow_val_change: bool | None = None,
    resume_from: str | None = None,
    fork_from: str | None = None,
    **ignored: Any,
) -> Run:
    """Start a run recorded in the store at ``home`` (default ``$ARTFS_HOME``); W&B's
    arguments as described in the module docstring. ``ignored`` takes W&B's arguments about its
    servers and UI (``save_code``, ``settings``, ``anonymous``, ``sync_tensorboard``, ...)."""
    if resume_from is not None or fork_from is not None:
        raise UnsupportedError(
            "resume_from and fork_from rewind a run on W&B's servers; artfs does not: "
            "start a new run, or continue one with id= and resume='allow'"
        )
    active = current()
    if active is not None and reinit in (None, False, "default", "return_previous"):
        return active
    if active is not None and reinit in (True, "finish_previous"):
        active.finish()
    mode = mode or os.environ.get("WANDB_MODE") or "online"
    if mode not in MODES:
        raise UsageError(f"invalid mode {mode!r}: use one of {', '.join(MODES)}")
    store = open_store(Path(home) if home is not None else default_home())
    settings = RunSettings(
        project=check_name(
            project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT, "project name"
        ),
        entity=paths.check_entity(store, entity or os.environ.get("WANDB_ENTITY")),
        config=_filter(as_mapping(config or {}), config_include_keys, config_exclude_keys),
        job_type=job_type or os.environ.get("WANDB_JOB_TYPE") or "job",
        name=name or os.environ.get("WANDB_NAME"),
        group=group or os.environ.get("WANDB_RUN_GROUP"),
        tags=[_check_tag(t) for t in tags or ()],
        notes=notes or os.environ.get("WANDB_NOTES"),
        dir=None if dir is None else str(dir),
        allow_val_change=bool(allow_val_change),
    )
    run_id = id or os.environ.get("WANDB_RUN_ID")
    resume = resume if resume is not None else os.environ.get("WANDB_RESUME")
    if mode == "disabled":
        run = _disabled_run(store, settings, run_id)
    else:
        run = _active_run(store, settings, _start_record(store, settings, run_id, resume))
    _set_current(run)
    return run


@dataclass(frozen=True)
class RunSettings:
    """What ``init`` was asked for, defaults and environment applied."""

    project: str
    entity: str | None
    config: dict[str, Any]
    job_type: str
    name: str | None
    group: str | None
    tags: list[str]
    notes: str | None
    dir: str | None
    allow_val_change: bool


def _active_run(store: Store, settings: RunSettings, record: RunRecord) -> Run:
    """The Run of a recorded run, its history going on from its last step (a resumed run),
    ended with the process unless finished first, and registered with every mount."""
    metrics = RunMetrics(store)
    last = metrics.rows(record.id, last=1)
    step = last[0]["_step"] + 1 if last else 0
    summary = Summary(metrics.summary(record.id))
    history = History(metrics, record.id, summary, step, time.time())
    run = Run(
        store,
        record,
        history=history,
        allow_val_change=settings.allow_val_change,
        run_dir=settings.dir,
    )
    ending.watch(run)
    _register_with_mounts(record.id, store.store_id)
    return run


def _filter(
    config: dict[str, Any], include: Sequence[str] | None, exclude: Sequence[str] | None
) -> dict[str, Any]:
    if include:
        config = {k: v for k, v in config.items() if k in include}
    if exclude:
        config = {k: v for k, v in config.items() if k not in exclude}
    return {str(k): plain(v, f"config.{k}") for k, v in config.items()}


def _check_tag(tag: str) -> str:
    """W&B's run tag rule: 1 to 64 characters."""
    if not isinstance(tag, str) or not 0 < len(tag.strip()) <= MAX_TAG_LENGTH:
        raise UsageError(f"invalid run tag {tag!r}: tags are 1 to {MAX_TAG_LENGTH} characters")
    return tag.strip()


def _check_id(run_id: str) -> str:
    if len(run_id) != RUN_ID_LENGTH or any(c not in RUN_ID_ALPHABET for c in run_id):
        raise UsageError(
            f"invalid run id {run_id!r}: artfs run ids are {RUN_ID_LENGTH} lowercase letters "
            "or digits; make one with wandb.util.generate_id() (artfs.util.generate_id())"
        )
    return run_id


def _start_record(
    store: Store, settings: RunSettings, run_id: str | None, resume: bool | str | None
) -> RunRecord:
    lineage = Lineage(store)
    if resume not in (None, False, True, "allow", "must", "never", "auto"):
        raise UsageError(f"invalid resume {resume!r}: use 'allow', 'must', 'never' or 'auto'")
    existing = lineage.find_run(_check_id(run_id)) if run_id else None
    if resume == "must" and existing is None:
        raise UsageError(
            f"no run {run_id!r} to resume (resume='must'): check the id, or use resume='allow'"
        )
    if existing is not None:
        if resume in (None, False, "never"):
            raise UsageError(
                f"run {run_id!r} exists already: pass resume='allow' to continue it, "
                "or leave id out for a new run"
            )
        return _resume(lineage, existing, settings)
    me = procinfo.facts(os.getpid())
    return lineage.create_run(
        settings.project,
        settings.job_type,
        name=settings.name,
        config=settings.config,
        command=me.command,
        run_id=run_id,
        pid=me.pid,
        proc_start=me.proc_start,
        container=me.container,
        entity=settings.entity,
        group=settings.group,
        tags=settings.tags,
        notes=settings.notes,
    )


def _resume(lineage: Lineage, existing: RunRecord, settings: RunSettings) -> RunRecord:
    """The record of a continued run: running again in this process, config merged."""
    if existing.project != settings.project:
        raise UsageError(
            f"run {existing.id} is in project {existing.project!r}, not {settings.project!r}: "
            f"pass project={existing.project!r} to resume it"
        )
    me = procinfo.facts(os.getpid())

    def change(record: RunRecord) -> None:
        record.state, record.ended, record.exit_code = RUNNING, None, None
        record.pid, record.proc_start, record.container = me.pid, me.proc_start, me.container
        record.config = {**record.config, **settings.config}
        record.tags = sorted({*record.tags, *settings.tags})
        record.entity = record.entity or settings.entity

    return lineage.update_run(existing.id, change)


def _disabled_run(store: Store, settings: RunSettings, run_id: str | None) -> Run:
    """A run that records nothing (W&B's ``mode="disabled"``): config, log and summary work
    in memory, artifacts are read from the store but nothing is written to it."""
    record = RunRecord(
        id=run_id or new_run_id(),
        project=settings.project,
        job_type=settings.job_type,
        name=settings.name or "disabled",
        config=settings.config,
        entity=settings.entity,
        group=settings.group,
        tags=settings.tags,
        notes=settings.notes,
        started=time.time(),
    )
    history = History(None, record.id, Summary(), 0, record.started)
    return Run(
        store,
        record,
        history=history,
        disabled=True,
        run_dir=settings.dir,
    )


# --- the module-level calls (wandb.log, wandb.finish, ...) ----------------------------------


def _active(call: str) -> Run:
    run = current()
    if run is None:
        raise UsageError(f"call artfs.init() (wandb.init()) before artfs.{call}()")
    return run


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """``run.log`` of the current run."""
    _active("log").log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run; nothing when there is none (as in W&B)."""
    run = current()
    if run is not None:
        run.finish(exit_code)


def log_artifact(
    artifact_or_path: Artifact | str | os.PathLike[str],
    name: str | None = None,
    type: str | None = None,
    aliases: list[str] | None = None,
    tags: list[str] | None = None,
) -> Artifact:
    return _active("log_artifact").log_artifact(artifact_or_path, name, type, aliases, tags)


def use_artifact(
    artifact_or_name: Artifact | str,
    type: str | None = None,
    aliases: list[str] | None = None,
    use_as: str | None = None,
) -> Artifact:
    return _active("use_artifact").use_artifact(artifact_or_name, type, aliases, use_as)


def define_metric(
    name: str,
    step_metric: str | None = None,
    step_sync: bool | None = None,
    hidden: bool | None = None,
    summary: str | None = None,
    goal: str | None = None,
    overwrite: bool | None = None,
) -> Metric:
    return _active("define_metric").define_metric(
        name, step_metric, step_sync, hidden, summary, goal, overwrite
    )


def log_model(
    path: str | os.PathLike[str], name: str | None = None, aliases: list[str] | None = None
) -> Artifact:
    return _active("log_model").log_model(path, name, aliases)


def use_model(name: str) -> str:
    return _active("use_model").use_model(name)


def link_model(
    path: str | os.PathLike[str],
    registered_model_name: str,
    name: str | None = None,
    aliases: list[str] | None = None,
) -> Artifact | None:
    return _active("link_model").link_model(path, registered_model_name, name, aliases)


class Settings:
    """W&B's ``wandb.Settings(...)`` for ``init(settings=...)``: accepted and kept, with no
    effect (they tune W&B's client and server connection)."""

    def __init__(self, **settings: Any) -> None:
        self.__dict__.update(settings)

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


def login(*args: Any, **kwargs: Any) -> bool:
    """W&B's ``login``: artfs has no accounts and no keys, so there is nothing to do."""
    return True


class _PreInit:
    """What ``artfs.config`` and ``artfs.summary`` are before ``init`` (W&B's placeholder):
    any use says to call ``init`` first."""

    _name: str

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise UsageError(f"call artfs.init() (wandb.init()) before using artfs.{self._name}")

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):  # protocol probes (copy, pickle, inspect) get the usual answer
            raise AttributeError(key)
        return self._refuse()

    __setattr__ = __getitem__ = __setitem__ = _refuse

    def __repr__(self) -> str:
        return f"<artfs.{self._name} before init()>"


def module_attribute(name: str) -> Any:
    """``artfs.run``, ``artfs.config``, ``artfs.summary``: of the current run."""
    run = current()
    if name == "run":
        return run
    if run is None:
        return _PreInit(name)
    return run.config if name == "config" else run.summary


__all__ = [
    "Settings",
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
]
