"""Run history: the metrics rows a run logged (``log`` in the SDK), in the ``history`` table.

A row is a JSON object of the values logged at one step, with ``_step``, ``_timestamp`` and
``_runtime`` added by the SDK. Rows of a run are keyed ``run id \\0 u32be(n)`` with n counting
from 0, so a run's rows come out of one prefix scan in the order they were logged and the last
rows are a scan from ``n - k``. History is append-only and bounded: at most
:data:`MAX_ROWS` rows per run are kept (later rows are counted, not stored; the summary still
follows them) and a row is at most :data:`MAX_ROW_BYTES` once encoded. Beside the rows, a
run has its summary and an outline of its metrics (bounded: what a chart draws of them).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from artfs.errors import UsageError
from artfs.store.index import Table, Txn

# 100,000 rows: a step logged every second for a day, ~10 MB of index at 100-byte rows.
MAX_ROWS = 100_000
MAX_ROW_BYTES = 64 * 1024
_COUNT = b"\xff"  # after every row key of the run (row keys go on with \0): row counts


@dataclass(frozen=True)
class Appended:
    """What an append did: rows stored, rows over the bound (not stored), rows held now."""

    stored: int
    dropped: int
    total: int


def encode_row(row: dict[str, Any]) -> bytes:
    """The row as stored; UsageError when it is too large to keep."""
    data = json.dumps(row, sort_keys=True, allow_nan=True).encode()
    if len(data) > MAX_ROW_BYTES:
        raise UsageError(
            f"a logged row of {len(data)} bytes is over artfs's {MAX_ROW_BYTES}-byte limit: "
            "log large values as artifact files instead"
        )
    return data


def _row_key(run_id: str, n: int) -> bytes:
    return run_id.encode() + b"\0" + struct.pack(">I", n)


def _counts(txn: Txn, run_id: str) -> tuple[int, int]:
    data = txn.get(Table.HISTORY, run_id.encode() + _COUNT)
    if data is None:
        return 0, 0
    stored, dropped = json.loads(data)
    return int(stored), int(dropped)


def append(txn: Txn, run_id: str, rows: Sequence[bytes]) -> Appended:
    """Add encoded rows after the run's last one, up to :data:`MAX_ROWS`."""
    stored, dropped = _counts(txn, run_id)
    room = max(0, MAX_ROWS - stored)
    for n, row in enumerate(rows[:room], start=stored):
        txn.put(Table.HISTORY, _row_key(run_id, n), row)
    added = min(room, len(rows))
    over = len(rows) - added
    counts = [stored + added, dropped + over]
    txn.put(Table.HISTORY, run_id.encode() + _COUNT, json.dumps(counts).encode())
    return Appended(added, over, stored + added)


def rows(txn: Txn, run_id: str, last: int | None = None) -> list[dict[str, Any]]:
    """The run's rows in logged order; only the last ``last`` when given."""
    stored, _ = _counts(txn, run_id)
    first = 0 if last is None else max(0, stored - last)
    prefix = run_id.encode() + b"\0"
    stored_rows = [value for _, value in txn.scan(Table.HISTORY, prefix, struct.pack(">I", first))]
    # Each row is a JSON object, so the rows joined are one JSON array: one parse of it takes
    # about 60% of the time of one parse per row (100,000 rows: 0.32 s against 0.55 s here).
    return list(json.loads(b"[" + b",".join(stored_rows) + b"]"))


def counts(txn: Txn, run_id: str) -> tuple[int, int]:
    """(rows stored, rows dropped over the bound) of a run."""
    return _counts(txn, run_id)


_SUMMARY = b"\xfe"  # the run's summary: its last values, or what was set (JSON object)


def put_summary(txn: Txn, run_id: str, summary: dict[str, Any]) -> None:
    txn.put(Table.HISTORY, run_id.encode() + _SUMMARY, encode_summary(summary))


def summary(txn: Txn, run_id: str) -> dict[str, Any]:
    data = txn.get(Table.HISTORY, run_id.encode() + _SUMMARY)
    return {} if data is None else dict(json.loads(data))


def encode_summary(summary: dict[str, Any]) -> bytes:
    return json.dumps(summary, sort_keys=True, allow_nan=True).encode()


_OUTLINE = b"\xfd"  # the run's metrics outlined for charts (JSON; see artfs.run_metrics)


def put_outline(txn: Txn, run_id: str, outline: dict[str, Any]) -> None:
    txn.put(Table.HISTORY, run_id.encode() + _OUTLINE, json.dumps(outline).encode())


def outline(txn: Txn, run_id: str) -> dict[str, Any] | None:
    data = txn.get(Table.HISTORY, run_id.encode() + _OUTLINE)
    return None if data is None else dict(json.loads(data))
