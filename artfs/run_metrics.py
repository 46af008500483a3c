"""A run's metrics: its history (the rows ``log`` wrote) and its summary, kept in the store.

This is the layer above :mod:`artfs.store.history` (keys and bounds): it takes rows as Python
objects, writes a batch and the summary in one transaction, and reads them back for the SDK's
``Api`` and ``artfs runs show``. History and summary stay in the local store; they are not
published to a remote with the run record.

Each write also updates the run's *outline*: per metric, the rows cut into at most
:data:`OUTLINE_BUCKETS` buckets of consecutive rows (``width`` rows each, a power of two that
doubles, merging neighbours, when the rows outgrow the buckets), each keeping its lowest and
highest point (x = ``_step``). It is what a chart of the metric draws (``artfs ui``), kept
at log time so that drawing a run of 100,000 rows reads a few kilobytes instead of every row;
min and max merge exactly, so a spike of one row survives any number of doublings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from artfs.errors import UnsupportedError
from artfs.store import history
from artfs.store.history import Appended
from artfs.store.repository import Store


@dataclass(frozen=True)
class Metrics:
    """What ``runs show`` prints: the summary, the last rows, how many rows there are."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    stored: int
    dropped: int


class RunMetrics:
    """History and summary of the runs of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(
        self, run_id: str, rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]
    ) -> Appended:
        """Append ``rows`` and replace the summary, atomically."""
        encoded = [history.encode_row(dict(row)) for row in rows]
        with self.store.index.write() as txn:
            appended = history.append(txn, run_id, encoded)
            history.put_summary(txn, run_id, dict(summary))
            first = appended.total - appended.stored
            before = history.outline(txn, run_id)
            # A run with rows from before outlines existed gets none (its charts read the rows).
            if appended.stored and (before is not None or first == 0):
                kept = rows[: appended.stored]
                history.put_outline(txn, run_id, outline_rows(before, first, kept))
        return appended

    def metrics(self, run_id: str, last: int | None = None) -> Metrics:
        with self.store.index.read() as txn:
            stored, dropped = history.counts(txn, run_id)
            return Metrics(
                history.summary(txn, run_id), history.rows(txn, run_id, last), stored, dropped
            )

    def rows(self, run_id: str, last: int | None = None) -> list[dict[str, Any]]:
        with self.store.index.read() as txn:
            return history.rows(txn, run_id, last)

    def summary(self, run_id: str) -> dict[str, Any]:
        with self.store.index.read() as txn:
            return history.summary(txn, run_id)

    def outline(self, run_id: str) -> dict[str, Any] | None:
        """The run's outline (see the module's doc), None for a run that has none."""
        with self.store.index.read() as txn:
            return history.outline(txn, run_id)


OUTLINE_BUCKETS = 200
_NUMERIC = (int, float)  # as JSON decodes numbers; bool (a subclass of int) is left out
Bucket = list[float]  # [x of the lowest, lowest, x of the highest, highest]


def number(value: Any) -> float | None:
    """``value`` as a finite number to chart, or None (NaN and infinities, kept by the SDK
    as strings, None, strings, booleans, lists and dicts are not drawn)."""
    if type(value) not in _NUMERIC or not -math.inf < value < math.inf:
        return None
    return float(value)


def outline_rows(
    outline: dict[str, Any] | None, first: int, rows: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``outline`` (of the run's rows before row ``first``; None for none) with ``rows``,
    numbered from ``first``, added. Per metric: ``buckets`` (None where no row of a bucket
    logged a number), ``points`` (numbers logged), ``skipped`` (other values logged)."""
    result: dict[str, Any] = outline or {"rows": 0, "width": 1, "metrics": {}}
    metrics: dict[str, dict[str, Any]] = result["metrics"]
    for n, row in enumerate(rows, start=first):
        while n // result["width"] >= OUTLINE_BUCKETS:
            result["width"] *= 2
            for metric in metrics.values():
                metric["buckets"] = _halve(metric["buckets"])
        x = number(row.get("_step"))
        at = float(n) if x is None else x
        for key, value in row.items():
            if key.startswith("_"):
                continue
            metric = metrics.setdefault(key, {"buckets": [], "points": 0, "skipped": 0})
            y = number(value)
            if y is None:
                metric["skipped"] += 1
                continue
            metric["points"] += 1
            buckets: list[Bucket | None] = metric["buckets"]
            b = n // result["width"]
            buckets.extend([None] * (b + 1 - len(buckets)))
            buckets[b] = _widen(buckets[b], [at, y, at, y])
    result["rows"] = first + len(rows)
    return result


def _widen(bucket: Bucket | None, other: Bucket | None) -> Bucket | None:
    """The lowest and highest point of both (the earlier one on a tie)."""
    if bucket is None or other is None:
        return bucket or other
    low = bucket[:2] if bucket[1] <= other[1] else other[:2]
    high = bucket[2:] if bucket[3] >= other[3] else other[2:]
    return low + high


def _halve(buckets: list[Bucket | None]) -> list[Bucket | None]:
    return [
        _widen(*buckets[i : i + 2]) if i + 1 < len(buckets) else buckets[i]
        for i in range(0, len(buckets), 2)
    ]


def outline_points(metric: Mapping[str, Any]) -> list[tuple[float, float]]:
    """A metric's outlined points in row order: each bucket's lowest and highest point (one
    when they are the same point)."""
    points: list[tuple[float, float]] = []
    for bucket in metric["buckets"]:
        if bucket is None:
            continue
        low, high = (bucket[0], bucket[1]), (bucket[2], bucket[3])
        points += [low] if low == high else sorted([low, high])
    return points


def plain(value: Any, where: str) -> Any:
    """``value`` as JSON-able data: numbers, strings, bools, None, lists and dicts of them;
    a numpy or torch scalar becomes its Python number. Anything else (W&B's media objects,
    tensors) is an UnsupportedError naming ``where``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN/inf
    if isinstance(value, Mapping):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, where) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        return plain(item(), where)
    raise UnsupportedError(
        f"{where}: artfs keeps numbers, strings and lists or dicts of them, not "
        f"{type(value).__name__}; store media and tensors as artifact files"
    )
