"""A run's metrics: its history (the rows ``log`` wrote) and its summary, kept in the store.

This is the layer above :mod:`artfs.store.history` (keys and bounds): it takes rows as Python
objects, writes a batch and the summary in one transaction, and reads them back for the SDK's
``Api`` and ``artfs runs show``. History and summary stay in the local store; they are not
published to a remote with the run record.
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
