"""``RunData``: what the store holds of one run, read back: its record (id, project, job type,
name, entity, group, tags, notes, state...), config, summary and history.

It is W&B's public ``Run`` (what ``Api().run`` returns) without the run's artifacts, which
:class:`artfs.sdk.artifact.PublicRun` adds beside ``Artifact``: the two build each other
(``logged_by``, ``logged_artifacts``), so they share a module, and this part needs neither.
The live run of ``artfs.init`` (:class:`artfs.sdk.run.Run`) extends them with logging.
"""

from __future__ import annotations

import os
from typing import Any

from artfs.lineage import Lineage, RunRecord
from artfs.run_metrics import RunMetrics
from artfs.sdk.metrics import Config, Summary
from artfs.store import Store


class RunData:
    def __init__(
        self,
        store: Store,
        record: RunRecord,
        *,
        config: Config | None = None,
        summary: Summary | None = None,
    ) -> None:
        """A run read back is edited freely and saved by ``update()`` (W&B's public API);
        a live run passes the ``config`` and ``summary`` it saves as they change."""
        self._store = store
        self._record = record
        self._config = Config(record.config, None, True) if config is None else config
        self._summary = summary

    # --- what W&B's Run exposes -------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def entity(self) -> str | None:
        return self._record.entity

    @property
    def project(self) -> str:
        return self._record.project

    @property
    def path(self) -> str:
        """W&B's run path ``entity/project/id`` (``project/id`` without an entity)."""
        parts = [self._record.entity, self._record.project, self._record.id]
        return "/".join(p for p in parts if p)

    @property
    def job_type(self) -> str:
        return self._record.job_type

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def group(self) -> str | None:
        return self._record.group

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._record.tags)

    @property
    def notes(self) -> str | None:
        return self._record.notes

    @property
    def dir(self) -> str:
        """Where the run kept local files (W&B's ``dir``; its working directory)."""
        return self._record.cwd or os.getcwd()

    @property
    def config(self) -> Config:
        return self._config

    @property
    def summary(self) -> Summary:
        """The last logged values (or what was set); read from the store for a past run."""
        if self._summary is None:
            metrics = RunMetrics(self._store)
            self._summary = Summary(metrics.summary(self.id), self._save_summary)
        return self._summary

    def _save_summary(self, summary: dict[str, Any]) -> None:
        RunMetrics(self._store).record(self.id, [], summary)

    def update(self) -> None:
        """Save edits to the config and summary (W&B's public ``Run.update``)."""
        self._save_config(dict(self._config))
        self._save_summary(dict(self.summary))

    def _save_config(self, config: dict[str, Any]) -> None:
        def change(record: RunRecord) -> None:
            record.config = config

        # Not published at each change: a remote learns the config with the finished run.
        self._record = Lineage(self._store).update_run(self.id, change, publish=False)

    @property
    def disabled(self) -> bool:
        """Whether nothing the run does is recorded (``init(mode="disabled")``)."""
        return False

    @property
    def offline(self) -> bool:
        return False

    @property
    def url(self) -> None:
        """W&B's run page; artfs has none ('artfs runs show ID' prints the run)."""
        return None

    @property
    def start_time(self) -> float:
        return self._record.started

    @property
    def state(self) -> str:
        return self._record.state

    @property
    def record(self) -> RunRecord:
        return self._record

    def __repr__(self) -> str:
        return f"<Run {self.project}/{self.id} {self.name} ({self.state})>"

    # --- history ----------------------------------------------------------------------------

    def history(
        self, samples: int = 500, keys: list[str] | None = None, pandas: bool = True
    ) -> Any:
        """The last ``samples`` rows (W&B's public ``Run.history``): a pandas DataFrame when
        pandas is installed and ``pandas`` is true, else a list of dicts."""
        rows = self._rows(last=samples, keys=keys)
        if pandas:
            try:
                import pandas as pd  # type: ignore[import-untyped,unused-ignore]
            except ImportError:
                return rows
            return pd.DataFrame(rows)
        return rows

    def scan_history(
        self,
        keys: list[str] | None = None,
        page_size: int = 1000,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every stored row (W&B's ``scan_history``), optionally only ``keys`` and a step range."""
        rows = self._rows(last=None, keys=keys)
        return [
            r
            for r in rows
            if (min_step is None or r["_step"] >= min_step)
            and (max_step is None or r["_step"] < max_step)
        ]

    def _rows(self, last: int | None, keys: list[str] | None) -> list[dict[str, Any]]:
        rows = RunMetrics(self._store).rows(self.id, last)
        if keys is None:
            return rows
        # W&B's keys=: rows holding every key asked for, with only those keys and the step.
        wanted = {"_step", *keys}
        return [
            {k: v for k, v in r.items() if k in wanted} for r in rows if all(k in r for k in keys)
        ]


__all__ = ["RunData"]
