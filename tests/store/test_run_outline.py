"""The outline of a run's metrics (artfs/run_metrics.py): what a chart draws, kept as the run
logs, bounded whatever the number of rows, and the same however the rows were batched."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from artfs.lineage import Lineage
from artfs.run_metrics import OUTLINE_BUCKETS, RunMetrics, outline_points, outline_rows
from artfs.store import Store, history


def rows_of(values: list[Any], first_step: int = 0) -> list[dict[str, Any]]:
    return [{"_step": first_step + n, "loss": v} for n, v in enumerate(values)]


def test_a_short_history_is_outlined_point_by_point() -> None:
    rows = rows_of([1.0, "nan", 3, None, True, 0.5])
    rows[2]["note"] = "text"
    outline = outline_rows(None, 0, rows)
    loss = outline["metrics"]["loss"]
    assert outline_points(loss) == [(0.0, 1.0), (2.0, 3.0), (5.0, 0.5)]
    assert (loss["points"], loss["skipped"]) == (3, 3)  # "nan", None, True
    assert outline["metrics"]["note"] == {"buckets": [], "points": 0, "skipped": 1}
    assert outline["rows"] == 6


def test_the_outline_is_bounded_and_keeps_spikes() -> None:
    values: list[Any] = [0.0] * 100_000
    values[31_337], values[77_777] = 1e6, -5.0
    outline = outline_rows(None, 0, rows_of(values))
    points = outline_points(outline["metrics"]["loss"])
    assert len(points) <= 2 * OUTLINE_BUCKETS
    assert (31_337.0, 1e6) in points and (77_777.0, -5.0) in points
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert outline["width"] * OUTLINE_BUCKETS >= 100_000 > outline["width"] * OUTLINE_BUCKETS // 2


def test_batches_outline_as_one_write_does() -> None:
    rng = random.Random(7)
    rows = rows_of([rng.gauss(0, 1) for _ in range(5_003)])
    for row in rows[::97]:
        row["acc"] = rng.random()  # a metric some rows lack
    whole = outline_rows(None, 0, rows)
    batched = None
    for first in range(0, len(rows), 256):
        batched = outline_rows(batched, first, rows[first : first + 256])
    assert batched == whole


def test_record_keeps_the_outline_beside_the_rows(home: Path) -> None:
    with Store.open(home) as store:
        run = Lineage(store).create_run("proj", "train")
        metrics = RunMetrics(store)
        for first in range(0, 1_000, 256):
            batch = rows_of([float(n) for n in range(first, min(1_000, first + 256))], first)
            metrics.record(run.id, batch, {})
        outline = metrics.outline(run.id)
        assert outline is not None and outline["rows"] == 1_000
        assert outline_points(outline["metrics"]["loss"])[-1] == (999.0, 999.0)
        assert len(metrics.rows(run.id)) == 1_000  # the rows are all there too


def test_a_run_with_rows_from_before_outlines_gets_none(home: Path) -> None:
    with Store.open(home) as store:
        run = Lineage(store).create_run("proj", "train")
        with store.index.write() as txn:  # as an older artfs wrote them: rows only
            history.append(txn, run.id, [history.encode_row(r) for r in rows_of([1.0, 2.0])])
        metrics = RunMetrics(store)
        metrics.record(run.id, rows_of([3.0], 2), {})
        assert metrics.outline(run.id) is None  # a partial outline would draw a wrong chart
        assert len(metrics.rows(run.id)) == 3
