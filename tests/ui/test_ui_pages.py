"""Every page of ``artfs ui`` and its ``/api`` twin, through the app's own HTTP interface."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from artfs.lineage import Lineage
from artfs.names import ArtifactName
from artfs.run_metrics import RunMetrics
from artfs.store import Store, history
from artfs.ui import app, create_app, open_readonly, reads
from tests.helpers import run_cli
from tests.ui.uiutil import CSV, LOGGED_STEPS, MANY, UiStore, png_bytes, raw_tree, store_bytes


def get_json(client: FlaskClient, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    return response.json


def get_html(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


# --- home -----------------------------------------------------------------------------------


def test_home_lists_projects_and_artifacts(client: FlaskClient) -> None:
    data = get_json(client, "/api/")
    by_project = {p["name"]: {a["name"]: a for a in p["artifacts"]} for p in data["projects"]}
    assert set(by_project) == {"proj", "other"}
    assert set(by_project["other"]) == {"notes", "refs"}
    raw = by_project["proj"]["raw"]
    assert raw["type"] == "dataset"
    assert raw["versions"] == 2
    assert raw["latest"] == "v1"
    assert raw["size"] == sum(len(c) for c in raw_tree(1).values())
    assert raw["aliases"] == ["best"]
    assert raw["tags"] == ["gold"]
    assert by_project["proj"]["model"]["type"] == "model"

    html = get_html(client, "/")
    assert 'href="/a/proj/raw"' in html
    assert 'href="/a/other/notes"' in html
    assert 'href="/v/proj/raw/v1"' in html  # latest links to its version


def test_home_search_matches_names_aliases_and_tags(client: FlaskClient) -> None:
    def found(query: str) -> set[str]:
        data = get_json(client, f"/api/?q={query}")
        return {f"{p['name']}/{a['name']}" for p in data["projects"] for a in p["artifacts"]}

    assert found("MOD") == {"proj/model"}  # case-insensitive name
    assert found("best") == {"proj/raw"}  # alias
    assert found("gold") == {"proj/raw"}  # tag
    assert found("notes") == {"other/notes"}
    assert found("zzz") == set()
    assert "Nothing matches" in get_html(client, "/?q=zzz")
    html = get_html(client, "/?q=gold")
    assert 'href="/a/proj/raw"' in html
    assert 'href="/a/other/notes"' not in html


# --- artifact -------------------------------------------------------------------------------


def test_artifact_versions_newest_first(client: FlaskClient, ui_store: UiStore) -> None:
    data = get_json(client, "/api/a/proj/raw")
    assert [v["version"] for v in data["versions"]] == ["v1", "v0"]
    assert data["versions"][1]["aliases"] == ["best"]
    assert data["versions"][1]["tags"] == ["gold"]
    assert data["count"] == 2 and data["pages"] == 1
    cli = run_cli("ls", "proj/raw", "--json", home=ui_store.home, check=True).json()
    for shown, listed in zip(data["versions"], cli[::-1], strict=True):
        assert {k: shown[k] for k in listed} == listed  # the CLI's fields, the same values
    html = get_html(client, "/a/proj/raw")
    assert html.index('href="/v/proj/raw/v1"') < html.index('href="/v/proj/raw/v0"')


def test_artifact_pages(client: FlaskClient, monkeypatch: Any) -> None:
    monkeypatch.setattr(reads, "VERSIONS_PER_PAGE", 1)
    first = get_json(client, "/api/a/proj/raw")
    second = get_json(client, "/api/a/proj/raw?page=2")
    assert [v["version"] for v in first["versions"] + second["versions"]] == ["v1", "v0"]
    assert first["pages"] == 2
    assert 'href="/a/proj/raw?page=2"' in get_html(client, "/a/proj/raw")
    assert "no page 3" in get_json(client, "/api/a/proj/raw?page=3", 404)["error"]


def test_missing_artifact_and_project(client: FlaskClient) -> None:
    assert "does not exist" in get_json(client, "/api/a/proj/nope", 404)["error"]
    assert "project 'nope'" in get_json(client, "/api/a/nope/raw", 404)["error"]
    assert "does not exist" in get_html(client, "/a/proj/nope", 404)


# --- version --------------------------------------------------------------------------------


def test_version_record_matches_cli_info(client: FlaskClient, ui_store: UiStore) -> None:
    data = get_json(client, "/api/v/proj/raw/v1")
    cli = run_cli("info", "proj/raw:v1", "--json", home=ui_store.home, check=True).json()
    assert {k: data["info"][k] for k in cli} == cli
    assert data["info"]["consumers"][0]["run_id"] == ui_store.run_id
    assert data["info"]["metadata"] == {"source": "camera", "rows": 80}
    assert data["info"]["expires"] is not None
    assert data["others"] == ["v1", "v0"]
    near = get_json(client, data["lineage"])  # the graph the page draws first
    assert near["depth"] == 2 and near["root"] == "version:proj/raw:v1"


def test_version_by_alias(client: FlaskClient) -> None:
    data = get_json(client, "/api/v/proj/raw/best")
    assert data["info"]["ref"] == "proj/raw:v0"
    assert "no alias 'worst'" in get_json(client, "/api/v/proj/raw/worst", 404)["error"]


def test_version_page_shows_facts_lineage_and_files(client: FlaskClient) -> None:
    html = get_html(client, "/v/proj/raw/v1")
    # The lineage is drawn first, inline, with each node a link.
    assert html.index("<svg") < html.index('id="facts"') < html.index('class="files"')
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert "proj/raw:v1" in svg and "proj/model:v0" in svg
    assert 'href="/run/' in svg and 'href="/v/proj/model/v0"' in svg
    for text in ("camera", "expires", "readme.txt", "sub/"):
        assert text in html
    assert 'href="/v/proj/raw/v1/f/table.csv"' in html
    assert 'href="/raw/proj/raw/v1/table.csv"' in html
    assert 'href="/v/proj/raw/v1?dir=many"' in html


def test_directory_listing(client: FlaskClient) -> None:
    root = get_json(client, "/api/v/proj/raw/v0")
    names = {e["name"]: e for e in root["entries"]}
    assert set(names) == {n.split("/")[0] for n in raw_tree(0)}
    assert names["sub"]["dir"] and names["sub"]["digest"] is None
    assert names["table.csv"]["size"] == len(CSV)
    sub = get_json(client, "/api/v/proj/raw/v0?dir=sub")
    assert [e["path"] for e in sub["entries"]] == ["sub/deep.txt"]
    assert "no directory" in get_json(client, "/api/v/proj/raw/v0?dir=table.csv", 404)["error"]
    assert "has no file" in get_json(client, "/api/v/proj/raw/v0?dir=nope", 404)["error"]
    assert "invalid path" in get_json(client, "/api/v/proj/raw/v0?dir=a/../b", 400)["error"]


def test_large_directory_is_paged(client: FlaskClient) -> None:
    seen: list[str] = []
    url = "/api/v/proj/raw/v0?dir=many"
    pages = 0
    while True:
        data = get_json(client, url)
        assert len(data["entries"]) <= reads.ENTRIES_PER_PAGE
        seen += [e["name"] for e in data["entries"]]
        pages += 1
        if data["next_after"] is None:
            break
        url = f"/api/v/proj/raw/v0?dir=many&after={data['next_after']}"
    assert seen == [f"f{i:04d}.txt" for i in range(MANY)]
    assert pages == -(-MANY // reads.ENTRIES_PER_PAGE)
    html = get_html(client, "/v/proj/raw/v0?dir=many")
    assert 'href="/v/proj/raw/v0?dir=many&amp;after=f0199.txt"' in html


# --- files ----------------------------------------------------------------------------------


def test_csv_preview_is_a_table(client: FlaskClient) -> None:
    data = get_json(client, "/api/v/proj/raw/v0/f/table.csv")
    assert data["preview"]["kind"] == "csv"
    assert data["preview"]["header"] == ["id", "label", "score"]
    assert data["preview"]["rows"][:2] == [["0", "label_0", "0.0"], ["1", "label_1", "0.1"]]
    assert len(data["preview"]["rows"]) == 50  # the first rows, not all 80
    html = get_html(client, "/v/proj/raw/v0/f/table.csv")
    assert "<td>label_2</td>" in html


def test_json_text_image_and_binary_previews(client: FlaskClient) -> None:
    meta = get_json(client, "/api/v/proj/raw/v0/f/meta.json")["preview"]
    assert meta["kind"] == "json" and '"classes": [\n' in meta["text"]
    text = get_json(client, "/api/v/proj/raw/v1/f/readme.txt")["preview"]
    assert text == {"kind": "text", "text": "changed readme\n", "truncated": False}
    assert get_json(client, "/api/v/proj/raw/v0/f/pixel.png")["preview"]["kind"] == "image"
    assert get_json(client, "/api/v/proj/raw/v0/f/blob.bin")["preview"]["kind"] == "binary"
    html = get_html(client, "/v/proj/raw/v0/f/pixel.png")
    assert '<img class="preview"' in html and 'src="/raw/proj/raw/v0/pixel.png?inline=1"' in html
    page = get_html(client, "/v/proj/raw/v0/f/page.html")
    assert "<script>" not in page and "&lt;script&gt;" in page  # shown as text, escaped


def test_a_directory_by_file_url_links_its_listing(client: FlaskClient) -> None:
    data = get_json(client, "/api/v/proj/raw/v0/f/sub")
    assert data["dir"] and data["preview"] == {
        "kind": "directory",
        "listing": "/v/proj/raw/v0?dir=sub",
    }
    html = get_html(client, "/v/proj/raw/v0/f/sub")
    assert 'id="listing" href="/v/proj/raw/v0?dir=sub"' in html and 'id="download"' not in html


def test_file_facts_match_cli_files(client: FlaskClient, ui_store: UiStore) -> None:
    data = get_json(client, "/api/v/proj/raw/v0/f/sub/deep.txt")
    listed = run_cli("files", "proj/raw:v0", "--json", home=ui_store.home, check=True).json()
    cli = next(e for e in listed if e["path"] == "sub/deep.txt")
    assert {k: data[k] for k in cli} == cli
    assert data["size"] == 5
    assert "has no file" in get_json(client, "/api/v/proj/raw/v0/f/nope.txt", 404)["error"]


def test_reference_is_not_fetched_to_draw_its_page(client: FlaskClient) -> None:
    data = get_json(client, "/api/v/other/refs/v0/f/big.txt")
    assert data["uri"].startswith("file://") and data["uri"].endswith("/big.txt")
    assert data["preview"] == {"kind": "reference"}
    assert "A reference: its content is at file://" in get_html(
        client, "/v/other/refs/v0/f/big.txt"
    )
    assert client.get("/raw/other/refs/v0/big.txt").data == b"held outside the store\n"


def test_download_one_file(client: FlaskClient) -> None:
    response = client.get("/raw/proj/raw/v0/blob.bin")
    assert response.status_code == 200
    assert response.data == raw_tree(0)["blob.bin"]
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"] == "attachment; filename*=UTF-8''blob.bin"
    image = client.get("/raw/proj/raw/v0/pixel.png?inline=1")
    assert image.data == png_bytes() and image.mimetype == "image/png"
    assert image.headers["Content-Disposition"].startswith("inline")
    # A stored page never runs as a page of the app: a download, whatever is asked.
    html = client.get("/raw/proj/raw/v0/page.html?inline=1")
    assert html.mimetype == "application/octet-stream"
    assert html.headers["Content-Disposition"].startswith("attachment")
    assert client.get("/raw/proj/raw/v0/sub").status_code == 400


# --- diff -----------------------------------------------------------------------------------


def test_diff_against_another_version(client: FlaskClient, ui_store: UiStore) -> None:
    data = get_json(client, "/api/v/proj/raw/v1/diff?against=v0")
    assert data["added"] == ["added.txt"]
    assert data["removed"] == ["blob.bin"]
    assert data["changed"] == ["readme.txt"]
    assert data["counts"] == {"added": 1, "removed": 1, "changed": 1}
    cli = run_cli("diff", "proj/raw:v0", "proj/raw:v1", home=ui_store.home, check=True)
    assert cli.stdout.split("\n")[:3] == ["+ added.txt", "- blob.bin", "M readme.txt"]
    html = get_html(client, "/v/proj/raw/v1/diff?against=best")
    assert "1 added, 1 removed, 1 changed" in html
    assert "give ?against=" in get_json(client, "/api/v/proj/raw/v1/diff", 400)["error"]
    assert 'action="/v/proj/raw/v1/diff"' in get_html(client, "/v/proj/raw/v1")


# --- lineage and runs -----------------------------------------------------------------------


def test_lineage_matches_cli(client: FlaskClient, ui_store: UiStore) -> None:
    for query, args in (
        ("", []),
        ("?direction=up", ["--direction", "up"]),
        ("?direction=down&depth=1", ["--direction", "down", "--depth", "1"]),
    ):
        data = get_json(client, f"/api/lineage/proj/model/v0{query}")
        cli = run_cli(
            "lineage", "proj/model:v0", "--format", "json", *args, home=ui_store.home, check=True
        ).json()
        assert {k: data[k] for k in cli} == cli
    up = get_json(client, "/api/lineage/proj/model/v0?direction=up")
    assert {n["id"] for n in up["nodes"]} == {
        "version:proj/model:v0",
        f"run:{ui_store.run_id}",
        "version:proj/raw:v1",
    }


def test_lineage_page_draws_the_graph(client: FlaskClient, ui_store: UiStore) -> None:
    html = get_html(client, "/lineage/proj/raw/v1")
    svg = html[html.index("<svg") : html.index("</svg>")]
    titles = re.findall(r"<title>(.*?)</title>", svg)
    assert "version:proj/raw:v1" in titles and f"run:{ui_store.run_id}" in titles
    assert f'href="/run/{ui_store.run_id}"' in svg
    assert "3 versions, 2 runs, 4 edges" in html
    down = get_html(client, "/lineage/proj/raw/v1?direction=down&depth=1")
    assert "1 versions, 1 runs, 1 edges" in down
    assert (
        "invalid direction"
        in get_json(client, "/api/lineage/proj/raw/v1?direction=x", 400)["error"]
    )
    assert "invalid depth" in get_json(client, "/api/lineage/proj/raw/v1?depth=0", 400)["error"]


def test_run_matches_cli(client: FlaskClient, ui_store: UiStore) -> None:
    data = get_json(client, f"/api/run/{ui_store.run_id}")
    cli = run_cli("runs", "show", ui_store.run_id, "--json", home=ui_store.home, check=True)
    assert data == cli.json()
    assert data["inputs"] == ["proj/raw:v1"] and data["outputs"] == ["proj/model:v0"]
    html = get_html(client, f"/run/{ui_store.run_id}")
    assert "python train.py --epochs 3" in html and "finished" in html
    assert 'href="/v/proj/raw/v1"' in html and 'href="/v/proj/model/v0"' in html
    assert "no run" in get_json(client, "/api/run/zzzzzzzz", 404)["error"]
    assert "invalid run id" in get_json(client, "/api/run/x", 404)["error"]


def test_run_page_shows_the_metrics_the_sdk_logged(client: FlaskClient, ui_store: UiStore) -> None:
    run_id = ui_store.metrics_run_id
    data = get_json(client, f"/api/run/{run_id}")
    cli = run_cli("runs", "show", run_id, "--json", home=ui_store.home, check=True)
    assert data == cli.json()  # summary and every row, as `artfs runs show --json`
    assert data["history_rows"] == LOGGED_STEPS == len(data["history"])
    assert [row["_step"] for row in data["history"]] == list(range(LOGGED_STEPS))
    assert data["history"][7]["loss"] == "nan"
    assert data["summary"]["best_acc"] == 0.9 and data["summary"]["acc"] == 29 / 30

    html = get_html(client, f"/run/{run_id}")
    summary = html[html.index('id="summary"') : html.index("</table>", html.index('id="summary"'))]
    assert '<th scope="row">best_acc</th><td>0.9</td>' in summary
    assert "&lt;b&gt;warm-up&lt;/b&gt;" in summary and "<b>" not in summary  # escaped
    # One chart per numeric metric (the string note has none), each a line of every value.
    figures = re.findall(r'<figure class="chart" data-key="([^"]+)">(.*?)</figure>', html, re.S)
    assert [key for key, _ in figures] == ["acc", "loss"]
    acc, loss = (body for _, body in figures)
    assert "29 values" in acc and "not drawn" not in acc  # step 8 did not log acc
    assert "29 values, 1 not drawn" in loss  # the NaN
    line = re.search(r'<path class="line" d="M([^"]+)"', loss)
    assert line is not None and len(line.group(1).split("L")) == 29
    assert f"{LOGGED_STEPS} rows, the last {app.RUN_ROWS_SHOWN}" in html
    table = html[html.index('id="history"') :]
    assert table.count("<tr>") == 1 + app.RUN_ROWS_SHOWN  # the header and the last rows
    assert f'<td class="num">{LOGGED_STEPS - 1}</td>' in table  # the last step


def test_run_page_of_a_run_without_metrics(client: FlaskClient, ui_store: UiStore) -> None:
    data = get_json(client, f"/api/run/{ui_store.run_id}")
    assert (data["summary"], data["history"], data["history_rows"]) == ({}, [], 0)
    html = get_html(client, f"/run/{ui_store.run_id}")
    assert "no numeric metrics logged" in html and "no rows" in html and "<svg" not in html


def test_a_run_without_an_outline_is_charted_from_its_rows(tmp_path: Path) -> None:
    """A run whose rows were stored before outlines were kept is charted from every row, and
    its charts are the ones a run that logged the same values with an outline gets."""
    rows = [{"_step": n, "loss": 1.0 / (n + 1), "acc": "nan" if n == 3 else n} for n in range(50)]
    with Store.open(tmp_path / "home") as store:
        lineage = Lineage(store)
        outlined, rows_only = (lineage.create_run("proj", "train") for _ in range(2))
        RunMetrics(store).record(outlined.id, rows, {})
        with store.index.write() as txn:
            history.append(txn, rows_only.id, [history.encode_row(r) for r in rows])
    store = open_readonly(tmp_path / "home")
    try:
        client = create_app(store).test_client()
        assert reads.run_outline(store, rows_only.id) is None
        pages = [get_html(client, f"/run/{run.id}") for run in (outlined, rows_only)]
    finally:
        store.close()
    drawn = [re.findall(r'<figure class="chart".*?</figure>', page, re.S) for page in pages]
    assert len(drawn[0]) == 2 and drawn[0] == drawn[1]
    assert "49 values, 1 not drawn" in drawn[0][0]  # acc


def test_unknown_page(client: FlaskClient) -> None:
    assert "no page at /nowhere" in get_html(client, "/nowhere", 404)
    assert get_json(client, "/api/nowhere", 404)["error"].startswith("no page")


def test_pages_carry_a_no_script_policy(client: FlaskClient) -> None:
    response = client.get("/")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_session_leaves_the_store_byte_identical(client: FlaskClient, ui_store: UiStore) -> None:
    before = store_bytes(ui_store.home)
    for url in (
        "/",
        "/?q=raw",
        "/a/proj/raw",
        "/v/proj/raw/v1",
        "/v/proj/raw/v0?dir=many",
        "/v/proj/raw/v0/f/table.csv",
        "/raw/proj/raw/v0/blob.bin",
        "/v/proj/raw/v1/diff?against=v0",
        "/lineage/proj/raw/v1",
        f"/run/{ui_store.run_id}",
        f"/run/{ui_store.metrics_run_id}",
    ):
        assert client.get(url).status_code == 200, url
    assert store_bytes(ui_store.home) == before


def test_without_graphviz_the_page_says_how_to_install_it(
    client: FlaskClient, monkeypatch: Any, tmp_path: Any
) -> None:
    from artfs.ui import graph

    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on it
    graph.render_svg.cache_clear()
    try:
        html = get_html(client, "/lineage/proj/raw/v0")
    finally:
        graph.render_svg.cache_clear()
    assert "<svg" not in html
    assert "Graphviz dot is missing" in html and "apt-get install graphviz" in html
    assert "3 versions" in get_html(client, "/lineage/proj/raw/v1")  # the rest is there


def test_a_name_that_is_not_utf8_is_shown_without_a_link(tmp_path: Path, monkeypatch: Any) -> None:
    # artfs now refuses such names (check_stored_path); a store written before holds them.
    from artfs import names
    from artfs.store import ingest

    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("ok")
    (src / os.fsdecode(b"bad\xffname")).write_text("bytes")
    monkeypatch.setattr(ingest, "check_stored_path", lambda path, **_: names.check_path(path))
    with Store.open(tmp_path / "home") as store:
        store.put(src, ArtifactName("proj", "odd"))
    store = open_readonly(tmp_path / "home")
    try:
        page = get_html(create_app(store).test_client(), "/v/proj/odd/v0")
    finally:
        store.close()
    assert "bad\ufffdname" in page and "its name is not UTF-8" in page
    assert 'href="/v/proj/odd/v0/f/ok.txt"' in page
