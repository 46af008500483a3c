"""W&B's ``define_metric``: how a logged key is summarised.

W&B uses ``define_metric`` for two things: the x axis of charts (``step_metric``, ``hidden``,
``step_sync``), which artfs records and otherwise ignores (it draws no charts; history rows
keep every key anyway), and the summary. By default a key's summary is its last value. With
``summary="min"`` (or ``"max"``, ``"mean"``, ``"first"``, ``"last"``, ``"best"`` with
``goal="minimize"``/``"maximize"``, several joined by commas) the summary of that key becomes a
dict of those aggregates, ``{"min": 0.1, "max": 0.9}``, as W&B shows it (``loss.min``);
``summary="none"`` keeps the key out of the summary. A name ending in ``*`` (``"val/*"``)
applies to every key with that prefix; an exact name wins over a pattern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from artfs.errors import UsageError

SUMMARIES = ("min", "max", "mean", "first", "last", "best", "none")
GOALS = ("minimize", "maximize")


@dataclass
class Metric:
    """One ``define_metric`` call (W&B's ``wandb_metric.Metric``)."""

    name: str
    step_metric: str | None = None
    step_sync: bool | None = None
    hidden: bool | None = None
    summary: tuple[str, ...] = ()
    goal: str | None = None
    # Running state for "mean": (count, sum) per key the metric covers.
    _means: dict[str, tuple[int, float]] = field(default_factory=dict, repr=False)

    def covers(self, key: str) -> bool:
        if self.name.endswith("*"):
            return key.startswith(self.name[:-1])
        return key == self.name


def parse(
    name: str,
    step_metric: str | None,
    step_sync: bool | None,
    hidden: bool | None,
    summary: str | None,
    goal: str | None,
) -> Metric:
    """A Metric, with W&B's checks on ``summary`` and ``goal``."""
    if not name or ("*" in name and not name.endswith("*")):
        raise UsageError(f"invalid metric name {name!r}: a name, or a prefix ending in '*'")
    kinds = tuple(k.strip() for k in summary.split(",")) if summary else ()
    unknown = [k for k in kinds if k not in SUMMARIES]
    if unknown:
        raise UsageError(f"unknown summary {unknown[0]!r}: use {', '.join(SUMMARIES)}")
    if goal is not None and goal not in GOALS:
        raise UsageError(f"invalid goal {goal!r}: use 'minimize' or 'maximize'")
    if "best" in kinds and goal is None:
        raise UsageError("summary='best' needs goal='minimize' or goal='maximize'")
    return Metric(name, step_metric, step_sync, hidden, kinds, goal)


class Definitions:
    """The metrics defined in a run, and the summary value they give a logged key."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def add(self, metric: Metric) -> Metric:
        self._metrics[metric.name] = metric
        return metric

    def _for(self, key: str) -> Metric | None:
        exact = self._metrics.get(key)
        if exact is not None:
            return exact
        patterns = [m for m in self._metrics.values() if m.name.endswith("*") and m.covers(key)]
        return max(patterns, key=lambda m: len(m.name)) if patterns else None

    def summarise(self, summary: dict[str, Any], key: str, value: Any) -> None:
        """Fold a logged ``value`` of ``key`` into ``summary`` (a dict, changed in place)."""
        metric = self._for(key)
        if metric is None or not metric.summary:
            summary[key] = value  # W&B's default: the last value
            return
        if "none" in metric.summary:
            summary.pop(key, None)
            return
        old = summary.get(key)
        aggregates = dict(old) if isinstance(old, dict) else {}
        number = isinstance(value, int | float) and not isinstance(value, bool)
        for kind in metric.summary:
            if kind == "last":
                aggregates["last"] = value
            elif kind == "first":
                aggregates.setdefault("first", value)
            elif number and kind in ("min", "max", "best"):
                _extreme(aggregates, kind, value, metric.goal)
            elif number and kind == "mean" and math.isfinite(value):
                count, total = metric._means.get(key, (0, 0.0))
                metric._means[key] = (count + 1, total + value)
                aggregates["mean"] = (total + value) / (count + 1)
        summary[key] = aggregates


def _extreme(aggregates: dict[str, Any], kind: str, value: float, goal: str | None) -> None:
    lower = kind == "min" or (kind == "best" and goal == "minimize")
    current = aggregates.get(kind)
    if not isinstance(current, int | float) or (value < current if lower else value > current):
        aggregates[kind] = value
