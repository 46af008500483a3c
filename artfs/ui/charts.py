"""Line charts of a run's metrics as inline SVG: data in, SVG text out (no I/O, no flask).

One chart per numeric metric: x is the row's ``_step``, y the logged value. A history holds up
to 100,000 rows, far more than a chart a few hundred pixels wide can show, so a long series is
cut into buckets of consecutive points and each bucket keeps its lowest and highest point: a
spike survives, and a chart never has more than :data:`MAX_POINTS` points whatever the run
logged. Values that are not finite numbers (NaN and infinities, which the SDK keeps as the
strings ``"nan"``/``"inf"``, ``None``, strings, lists, booleans) are not drawn; the chart
counts them. Every text that comes from the run (a metric's name) is escaped.

The points come from the run's outline (:func:`outline_charts`; :mod:`artfs.run_metrics`
keeps it bucketed that way as the run logs), or, for a run stored without one, from its rows
(:func:`charts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from artfs.run_metrics import number, outline_points

MAX_POINTS = 400  # per chart: two points (lowest, highest) per bucket, 200 buckets
WIDTH, HEIGHT = 320, 160
# The plot area inside the SVG: room on the left for the y labels, below for the x labels.
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 8, 22

Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    """One metric's drawable points (x = step, in logged order) and how many values of it
    were not drawn because they were not finite numbers."""

    key: str
    points: list[Point]
    skipped: int


_MISSING = object()


def steps(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """Each row's x: its ``_step``, or its position in the history when it has none."""
    found = [number(row.get("_step")) for row in rows]
    return [float(n) if x is None else x for n, x in enumerate(found)]


def metric_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys any row logged, sorted; ``_step``, ``_timestamp`` and ``_runtime`` (the
    SDK's own columns) are axes or bookkeeping, not metrics."""
    keys: set[str] = set().union(*rows) if rows else set()
    return sorted(k for k in keys if not k.startswith("_"))


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The columns of a table of ``rows``: the step, the metrics, then the run time."""
    present: set[str] = set().union(*rows) if rows else set()
    shown = ["_step", *metric_keys(rows), "_runtime"]
    return [key for key in shown if key in present]


def series(rows: Sequence[Mapping[str, Any]], key: str, xs: Sequence[float]) -> Series:
    """The points of ``key`` over the rows that logged it, at ``xs`` (see :func:`steps`).
    Written as comprehensions: a history of 100,000 rows is walked once per metric."""
    logged = [
        (x, v)
        for x, row in zip(xs, rows, strict=True)
        if (v := row.get(key, _MISSING)) is not _MISSING
    ]
    points = [(x, y) for x, v in logged if (y := number(v)) is not None]
    return Series(key, points, len(logged) - len(points))


def downsample(points: Sequence[Point], limit: int = MAX_POINTS) -> list[Point]:
    """At most ``limit`` of ``points`` (limit >= 2), in their order: consecutive points cut
    into ``limit // 2`` buckets, each keeping its lowest and its highest point (one when they
    are the same point). Short series come back whole."""
    if limit < 2:
        raise ValueError("downsample needs room for 2 points a bucket")
    if len(points) <= limit:
        return list(points)
    buckets = limit // 2
    ys = [y for _, y in points]
    kept: list[Point] = []
    for b in range(buckets):
        start, end = len(points) * b // buckets, len(points) * (b + 1) // buckets
        low = ys.index(min(ys[start:end]), start, end)  # min/max/index run in C
        high = ys.index(max(ys[start:end]), start, end)
        for i in sorted({low, high}):
            kept.append(points[i])
    return kept


def _label(value: float) -> str:
    return f"{value:.4g}"


def _span(low: float, high: float) -> tuple[float, float]:
    """A non-empty range around [low, high]: a constant series is drawn mid-height."""
    if high > low:
        return low, high
    pad = abs(low) * 0.05 or 1.0
    return low - pad, high + pad


def scale(points: Sequence[Point], width: int = WIDTH, height: int = HEIGHT) -> list[Point]:
    """``points`` in the plot area's pixel coordinates (y grows downwards in SVG)."""
    x0, x1 = _span(min(x for x, _ in points), max(x for x, _ in points))
    y0, y1 = _span(min(y for _, y in points), max(y for _, y in points))
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    return [
        (LEFT + (x - x0) / (x1 - x0) * plot_w, TOP + (y1 - y) / (y1 - y0) * plot_h)
        for x, y in points
    ]


def line_chart(found: Series, limit: int = MAX_POINTS) -> str:
    """``found`` drawn as an SVG document fragment: axes, the lowest and highest value and
    the first and last step as labels, the line as one ``<path>`` (a single point as a
    ``<circle>``), a caption naming the metric, and a note of values not drawn."""
    title = escape(found.key, quote=True)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}">',
        f"<title>{title}</title>",
        f'<path class="axis" d="M{LEFT} {TOP}V{HEIGHT - BOTTOM}H{WIDTH - RIGHT}" '
        'fill="none" stroke="#98a2b3" stroke-width="1"/>',
    ]
    if not found.points:
        parts.append(f'<text x="{LEFT + 8}" y="{HEIGHT // 2}" font-size="11">no values</text>')
        return "".join(parts) + "</svg>"
    points = downsample(found.points, limit)
    ys = [y for _, y in points]
    xs = [x for x, _ in points]
    drawn = scale(points)
    if len(drawn) == 1:
        ((x, y),) = drawn
        parts.append(f'<circle class="line" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1a56db"/>')
    else:
        path = "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in drawn)
        parts.append(
            f'<path class="line" d="{path}" fill="none" stroke="#1a56db" '
            'stroke-width="1.5" stroke-linejoin="round"/>'
        )
    bottom = HEIGHT - BOTTOM
    parts += [
        _text(LEFT - 4, TOP + 9, _label(max(ys)), "end"),
        _text(LEFT - 4, bottom, _label(min(ys)), "end"),
        _text(LEFT, bottom + 14, _label(min(xs)), "start"),
        _text(WIDTH - RIGHT, bottom + 14, _label(max(xs)), "end"),
    ]
    return "".join(parts) + "</svg>"


def _text(x: int, y: int, text: str, anchor: str) -> str:
    return (
        f'<text x="{x}" y="{y}" font-size="10" fill="#475467" text-anchor="{anchor}">'
        f"{escape(text)}</text>"
    )


def outline_charts(outline: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The charts of a run from its outline (:mod:`artfs.run_metrics`: each metric's lowest
    and highest point per bucket of rows, kept as it logged), as :func:`charts` makes them
    from the rows; an outline is already within :data:`MAX_POINTS` points."""
    drawn = []
    for key, metric in sorted(outline["metrics"].items()):
        if metric["points"]:
            found = Series(key, outline_points(metric), metric["skipped"])
            drawn.append(_drawn(found, metric["points"]))
    return drawn


def _drawn(found: Series, points: int) -> dict[str, Any]:
    return {"key": found.key, "svg": line_chart(found), "points": points, "skipped": found.skipped}


def charts(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One chart per metric of ``rows`` with a drawable value, in key order: ``{"key",
    "svg", "points", "skipped"}`` (``points`` counts the values drawn before downsampling,
    ``skipped`` those that are not finite numbers)."""
    xs = steps(rows)
    drawn = []
    for key in metric_keys(rows):
        found = series(rows, key, xs)
        if found.points:
            drawn.append(_drawn(found, len(found.points)))
    return drawn
