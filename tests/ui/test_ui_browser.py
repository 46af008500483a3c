"""``artfs ui`` in a real browser: Debian's headless Chromium driven by Playwright.

A user's path: home -> artifact -> version (lineage drawn first) -> full lineage -> a run, by
clicking links, checking what is drawn at each step. The screenshots of the main pages in
docs/ are made here (docs/ui-*.png; ``ARTFS_UI_SCREENSHOTS=1`` writes them there, otherwise
they go to a temporary directory).

Playwright drives the system browser (``/usr/bin/chromium``); it never downloads one. Without
Chromium the tests skip, unless ``ARTFS_TEST_TOOLS=1`` (``./dev test``), where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.uiutil import LOGGED_STEPS, UiStore

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("ARTFS_TEST_TOOLS") == "1":
            pytest.fail(f"{CHROMIUM} is missing: ./dev test installs the chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: docs/ with ``ARTFS_UI_SCREENSHOTS=1`` (to renew the pictures the
    docs show), else a temporary directory, so a test run leaves the checkout unchanged."""
    if os.environ.get("ARTFS_UI_SCREENSHOTS") == "1":
        return DOCS
    return tmp_path_factory.mktemp("screenshots")


def shot(page: Any, name: str, where: Path) -> None:
    """Save a screenshot as WHERE/ui-NAME.png (written beside, then moved: never half a file)
    and check that it is a picture of something."""
    target = where / f"ui-{name}.png"
    partial = target.with_name(f".{target.stem}.part.png")
    page.screenshot(path=str(partial), full_page=False)
    assert partial.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and partial.stat().st_size > 4096
    shutil.move(partial, target)


def test_click_from_home_to_lineage_and_run(
    ui_store: UiStore, serve_ui: Any, page: Any, screenshots: Path
) -> None:
    served = serve_ui(ui_store.home)
    page.goto(served.url)
    assert page.locator("h2").all_inner_texts() == ["other", "proj"]
    rows = page.locator("table.artifacts tbody tr")
    assert rows.count() == 5
    shot(page, "home", screenshots)

    page.locator("a.artifact", has_text="raw").click()
    page.wait_for_url("**/a/proj/raw")
    assert page.locator("a.version").all_inner_texts() == ["v1", "v0"]
    shot(page, "artifact", screenshots)

    page.locator("a.version", has_text="v1").click()
    page.wait_for_url("**/v/proj/raw/v1")
    graph = page.locator("#lineage-graph svg")
    assert graph.is_visible()
    # Drawn: this version, the run that used it, the model that run logged, and the edges.
    nodes = graph.locator("g.node")
    assert nodes.count() == 3
    drawn = page.locator("#lineage-graph").inner_text()
    assert "raw:v1" in drawn and "train" in drawn and "model:v0" in drawn
    assert graph.locator("g.edge").count() == 2
    box = graph.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 30
    assert page.locator("table.files a.file", has_text="table.csv").is_visible()
    shot(page, "version", screenshots)

    page.locator("#full-lineage").click()
    page.wait_for_url("**/lineage/proj/raw/v1")
    assert page.locator("#counts").inner_text() == "3 versions, 2 runs, 4 edges"
    assert page.locator("#lineage-graph g.node").count() == 5
    assert page.locator("#lineage-graph g.edge").count() == 4
    assert "report:v0" in page.locator("#lineage-graph").inner_text()
    shot(page, "lineage", screenshots)

    # Each node is a link: the train run's node opens the run's page.
    page.locator("#lineage-graph g.node.run a", has_text="train").click()
    page.wait_for_url(f"**/run/{ui_store.run_id}")
    assert "python train.py --epochs 3" in page.locator("#facts").inner_text()
    assert page.locator("#inputs a").all_inner_texts() == ["proj/raw:v1"]
    shot(page, "run", screenshots)
    page.locator("#outputs a", has_text="proj/model:v0").click()
    page.wait_for_url("**/v/proj/model/v0")
    assert page.locator("h1").inner_text().startswith("proj/model:v0")


def test_previews_and_file_pages(
    ui_store: UiStore, serve_ui: Any, page: Any, screenshots: Path
) -> None:
    served = serve_ui(ui_store.home)
    page.goto(served.at("v/proj/raw/v0"))
    page.locator("a.file", has_text="table.csv").click()
    page.wait_for_url("**/f/table.csv")
    table = page.locator("#preview table.csv")
    assert table.locator("thead th").all_inner_texts() == ["id", "label", "score"]
    assert table.locator("tbody tr").count() == 50
    shot(page, "file", screenshots)

    page.goto(served.at("v/proj/raw/v0/f/pixel.png"))
    image = page.locator("#preview img")
    image.wait_for()
    size = image.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert size == [True, 4, 3]  # the browser decoded the PNG served by the app

    page.goto(served.at("v/proj/raw/v0?dir=many"))
    assert page.locator("table.files a.file").count() == 200
    page.locator("#next-files").click()
    assert page.locator("table.files a.file").first.inner_text() == "f0200.txt"


def test_search_and_diff(ui_store: UiStore, serve_ui: Any, page: Any) -> None:
    served = serve_ui(ui_store.home)
    page.goto(served.url)
    page.fill("input[name=q]", "gold")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/?q=gold")
    assert page.locator("a.artifact").all_inner_texts() == ["raw"]

    page.goto(served.at("v/proj/raw/v1"))
    page.select_option("select[name=against]", "v0")
    page.locator("button", has_text="diff").click()
    page.wait_for_url("**/diff?against=v0")
    assert page.locator("#counts").inner_text() == "1 added, 1 removed, 1 changed"
    assert page.locator("table.diff tr.added").inner_text().endswith("added.txt")


def test_run_page_charts_the_logged_metrics(
    ui_store: UiStore, serve_ui: Any, page: Any, screenshots: Path
) -> None:
    served = serve_ui(ui_store.home)
    page.goto(served.at(f"run/{ui_store.metrics_run_id}"))
    figures = page.locator("#charts figure.chart")
    assert figures.evaluate_all("fs => fs.map(f => f.dataset.key)") == ["acc", "loss"]
    for key in ("acc", "loss"):
        chart = page.locator(f'#charts figure[data-key="{key}"] svg')
        assert chart.is_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] >= 300 and box["height"] >= 150
        # The line is drawn: a path of one point per value, spanning the plot.
        line = chart.locator("path.line")
        assert line.count() == 1
        drawn = line.evaluate("p => [p.getTotalLength(), p.getBBox().width, p.getBBox().height]")
        assert drawn[0] > 200 and drawn[1] > 200 and drawn[2] > 100
        assert line.get_attribute("d").count("L") == LOGGED_STEPS - 2  # 29 values each
    summary = page.locator("#summary").inner_text()
    assert "best_acc" in summary and "<b>warm-up</b>" in summary  # shown as text, not markup
    assert page.locator("#history tbody tr").count() == 20
    page.locator("#metrics").evaluate("h => h.scrollIntoView()")  # the charts, in the picture
    shot(page, "run-metrics", screenshots)
