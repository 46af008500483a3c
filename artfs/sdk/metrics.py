"""What a run logs besides artifacts, shaped like W&B: ``config``, ``log`` and ``summary``.

- :class:`Config` is a dict with attribute access; every change is saved with the run record.
  As in W&B, changing a key's value needs ``allow_val_change=True``.
- :class:`History` follows W&B's ``log(data, step=None, commit=None)`` rules: without ``step``
  each call is one row and advances the step (``commit=False`` merges into the next row); with
  ``step`` a row is written when a later step is logged, on ``commit=True``, or at finish; a
  step below the current one is ignored with a warning. Rows carry ``_step``, ``_timestamp``
  and ``_runtime``, are buffered and written in batches (every :data:`FLUSH_ROWS` rows or
  :data:`FLUSH_SECONDS`, and at finish), bounded by :mod:`artfs.store.history`.
- :class:`Summary` holds the last logged value of every key (or the aggregates
  ``define_metric`` asks for, :mod:`artfs.sdk.metric_defs`); a value set on it stands until
  that key is logged again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from artfs.errors import UsageError
from artfs.run_metrics import RunMetrics, plain
from artfs.sdk.metric_defs import Definitions

log = logging.getLogger(__name__)

# A write transaction per row would cost a sync per training step; 1 s of buffering bounds what
# a crash can lose.
FLUSH_ROWS = 256
FLUSH_SECONDS = 1.0


class AttrDict(dict[str, Any]):
    """A dict whose keys read as attributes too (``config.lr``, ``summary.acc``)."""

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        del self[key]

    def as_dict(self) -> dict[str, Any]:
        return dict(self)


class Config(AttrDict):
    """W&B's ``run.config``; ``on_change`` saves it (the run record's config)."""

    def __init__(
        self,
        values: Mapping[str, Any],
        on_change: Callable[[dict[str, Any]], None] | None = None,
        allow_val_change: bool = False,
    ) -> None:
        super().__init__(values)
        object.__setattr__(self, "_on_change", on_change)
        object.__setattr__(self, "_allow_val_change", allow_val_change)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def update(  # type: ignore[override]
        self, d: Mapping[str, Any] | Any = (), allow_val_change: bool | None = None, **kw: Any
    ) -> None:
        values = as_mapping(d) | kw
        allowed = self._allow_val_change if allow_val_change is None else allow_val_change
        for key, value in values.items():
            new = plain(value, f"config.{key}")
            if not allowed and key in self and self[key] != new:
                raise UsageError(
                    f"config key {key!r} is {self[key]!r} already, not {new!r}: pass "
                    "allow_val_change=True to config.update() to change it"
                )
            dict.__setitem__(self, str(key), new)
        if values:
            self._changed()

    def setdefaults(self, d: Mapping[str, Any]) -> None:
        missing = {k: v for k, v in d.items() if k not in self}
        if missing:
            self.update(missing)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.update({key: default})
        return self[key]

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(dict(self))


def as_mapping(d: Any) -> dict[str, Any]:
    """A dict from what W&B's config takes: a mapping or an ``argparse.Namespace``."""
    if isinstance(d, Mapping):
        return dict(d)
    if hasattr(d, "__dict__") and not isinstance(d, type):
        return dict(vars(d))
    if isinstance(d, Iterable) and not isinstance(d, str | bytes):
        return dict(d)
    raise UsageError(
        f"config takes a dict or an argparse.Namespace, not {type(d).__name__}: "
        "artfs does not read config files"
    )


class Summary(AttrDict):
    """W&B's ``run.summary``: the last logged values, or what was set. An active run writes
    it with its history; the summary of a finished run (``Api().run(...).summary``) is saved
    by ``update()``, as in W&B's public API, through ``on_update``."""

    def __init__(
        self,
        values: Mapping[str, Any] | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(values or {})
        object.__setattr__(self, "_on_update", on_update)

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, plain(value, f"summary.{key}"))

    def update(self, d: Mapping[str, Any] | None = None, **kw: Any) -> None:  # type: ignore[override]
        for key, value in {**dict(d or {}), **kw}.items():
            self[key] = value
        if self._on_update is not None:
            self._on_update(dict(self))


class History:
    """The log of one active run: the row being built, the buffer, the step."""

    def __init__(
        self, metrics: RunMetrics | None, run_id: str, summary: Summary, step: int, started: float
    ) -> None:
        """``metrics`` None: rows are kept in memory only (a disabled run)."""
        self._metrics = metrics
        self._run_id = run_id
        self.summary = summary
        self.step = step
        self._started = started
        self._row: dict[str, Any] = {}
        self._buffer: list[dict[str, Any]] = []
        self._flushed_at = time.monotonic()
        self._summary_saved: dict[str, Any] | None = None
        self._warned_full = False
        self.definitions = Definitions()
        # W&B's log may be called from several threads (callbacks, loaders); rows stay whole.
        self._lock = threading.RLock()

    def log(
        self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        if not isinstance(data, Mapping):
            raise UsageError(f"log takes a dict of values, not {type(data).__name__}")
        values = {str(k): plain(v, str(k)) for k, v in data.items()}
        with self._lock:
            self._add(values, step, commit)

    def _add(self, values: dict[str, Any], step: int | None, commit: bool | None) -> None:
        if step is not None:
            if step < self.step:
                log.warning(
                    "artfs: step %d is below the current step %d: steps only grow, "
                    "so this data is ignored",
                    step,
                    self.step,
                )
                return
            if step > self.step:
                self._commit_row()
                self.step = step
        elif commit is None:
            commit = True
        self._row.update(values)
        for key, value in values.items():
            self.definitions.summarise(self.summary, key, value)
        if commit:
            self._commit_row()
        self._flush_when_due()

    def _commit_row(self) -> None:
        if not self._row:
            return
        now = time.time()
        row = {**self._row, "_step": self.step, "_timestamp": now, "_runtime": now - self._started}
        self._buffer.append(row)
        self._row = {}
        self.step += 1

    def _flush_when_due(self) -> None:
        due = time.monotonic() - self._flushed_at >= FLUSH_SECONDS
        if len(self._buffer) >= FLUSH_ROWS or (due and self._buffer):
            self.flush()

    def flush(self, final: bool = False) -> None:
        """Write buffered rows and the summary; ``final`` commits the row being built."""
        with self._lock:
            self._flush(final)

    def _flush(self, final: bool) -> None:
        if final:
            self._commit_row()
        summary = dict(self.summary)
        if not self._buffer and summary == self._summary_saved:
            return
        rows, self._buffer = self._buffer, []
        if self._metrics is None:
            return
        appended = self._metrics.record(self._run_id, rows, summary)
        self._summary_saved = summary
        self._flushed_at = time.monotonic()
        if appended.stored < len(rows) and not self._warned_full:
            self._warned_full = True
            log.warning(
                "artfs: run %s holds the most history rows kept per run; later rows are not "
                "stored (the summary still follows them)",
                self._run_id,
            )
