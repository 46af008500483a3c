"""The run page's charts (artfs/ui/charts.py): points, scaling, the downsampling bound, odd
values and escaping, on data made here (no store)."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from artfs.ui import charts
from artfs.ui.charts import BOTTOM, HEIGHT, LEFT, MAX_POINTS, RIGHT, TOP, WIDTH, Series

SVG = "{http://www.w3.org/2000/svg}"


def path_points(svg: str) -> list[tuple[float, float]]:
    """The points of the chart's line, parsed back from its ``<path class="line">``."""
    root = ET.fromstring(svg)  # also: the SVG is well-formed XML
    (line,) = [p for p in root.iter(f"{SVG}path") if p.get("class") == "line"]
    d = line.get("d", "")
    assert d.startswith("M")
    return [(float(x), float(y)) for x, y in re.findall(r"([-\d.]+) ([-\d.]+)", d)]


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_series_takes_steps_as_x_and_only_finite_numbers() -> None:
    rows = [
        {"_step": 0, "loss": 1.0},
        {"_step": 1, "loss": "nan"},  # the SDK keeps NaN as a string
        {"_step": 2, "loss": float("inf")},
        {"_step": 3, "loss": None},
        {"_step": 4, "loss": True},  # not a number here
        {"_step": 5, "loss": [1, 2]},
        {"_step": 6},  # did not log loss: not counted as skipped
        {"_step": 7, "loss": 3},
        {"loss": 0.5},  # no step: its position
    ]
    found = charts.series(rows, "loss", charts.steps(rows))
    assert found.points == [(0.0, 1.0), (7.0, 3.0), (8.0, 0.5)]
    assert found.skipped == 5


def test_metric_keys_leave_out_the_sdk_columns() -> None:
    rows = [{"_step": 0, "_runtime": 1.0, "_timestamp": 2.0, "b": 1}, {"a": "x"}]
    assert charts.metric_keys(rows) == ["a", "b"]
    assert charts.metric_keys([]) == []
    assert charts.columns(rows) == ["_step", "a", "b", "_runtime"]


def test_points_are_scaled_into_the_plot_area() -> None:
    drawn = charts.scale([(0, 10.0), (5, 15.0), (10, 20.0)])
    assert drawn[0] == (LEFT, HEIGHT - BOTTOM)  # lowest value at the bottom left
    assert drawn[-1] == (WIDTH - RIGHT, TOP)  # highest at the top right
    assert drawn[1] == pytest.approx(((LEFT + WIDTH - RIGHT) / 2, (TOP + HEIGHT - BOTTOM) / 2))


def test_a_line_chart_draws_every_point_of_a_short_series_with_its_range() -> None:
    points = [(float(s), float(s * s)) for s in range(10)]
    svg = charts.line_chart(Series("loss", points, 0))
    flat = [c for point in path_points(svg) for c in point]
    assert flat == pytest.approx([c for point in charts.scale(points) for c in point], abs=0.06)
    assert texts(svg) == ["81", "0", "0", "9"]  # highest, lowest value; first, last step


def test_downsampling_is_bounded_and_keeps_spikes() -> None:
    points = [(float(i), 0.0) for i in range(100_000)]
    points[31_337] = (31_337.0, 1e6)  # one spike up
    points[77_777] = (77_777.0, -5.0)  # one down
    kept = charts.downsample(points)
    assert len(kept) <= MAX_POINTS
    assert (31_337.0, 1e6) in kept and (77_777.0, -5.0) in kept
    assert [x for x, _ in kept] == sorted(x for x, _ in kept)  # still in order
    assert kept[0] == points[0]
    svg = charts.line_chart(Series("m", points, 0))
    assert len(path_points(svg)) <= MAX_POINTS
    assert texts(svg)[:2] == ["1e+06", "-5"]  # the spikes set the range
    assert charts.downsample(points[:MAX_POINTS]) == points[:MAX_POINTS]  # short: whole
    with pytest.raises(ValueError):
        charts.downsample(points, 1)


@pytest.mark.parametrize("limit", [2, 3, 10, 401])
def test_downsampling_never_exceeds_its_limit(limit: int) -> None:
    points = [(float(i), math.sin(i)) for i in range(5_003)]
    assert len(charts.downsample(points, limit)) <= limit


def test_a_single_point_and_a_constant_series_are_drawn() -> None:
    one = charts.line_chart(Series("acc", [(3.0, 0.5)], 0))
    (circle,) = ET.fromstring(one).iter(f"{SVG}circle")
    assert TOP <= float(circle.get("cy", "")) <= HEIGHT - BOTTOM
    flat = charts.line_chart(Series("lr", [(0.0, 0.01), (1.0, 0.01)], 0))
    ys = [y for _, y in path_points(flat)]
    assert ys == pytest.approx([(TOP + HEIGHT - BOTTOM) / 2] * 2, abs=0.06)  # mid-height
    assert "no values" in charts.line_chart(Series("x", [], 4))


def test_names_are_escaped() -> None:
    rows = [{"_step": 0, '<script>alert("x")</script>&': 1.0}]
    (chart,) = charts.charts(rows)
    assert "<script" not in chart["svg"]
    root = ET.fromstring(chart["svg"])
    assert root.get("aria-label") == '<script>alert("x")</script>&'
    assert root.find(f"{SVG}title") is not None


def test_charts_skip_keys_with_nothing_to_draw() -> None:
    rows = [{"_step": s, "loss": 1.0 / (s + 1), "note": "text"} for s in range(5)]
    rows[2]["loss"] = "nan"
    (loss,) = charts.charts(rows)
    assert (loss["key"], loss["points"], loss["skipped"]) == ("loss", 4, 1)
    assert charts.charts([]) == []
