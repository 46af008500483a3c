"""Pure parts of the UI: previews from a file's head, and the DOT the lineage is drawn from."""

from __future__ import annotations

import shutil

import pytest

from artfs.errors import ArtfsError, GraphvizMissing
from artfs.ui import graph
from artfs.ui.preview import CSV_ROWS, preview

# --- previews -------------------------------------------------------------------------------


def test_a_character_cut_at_the_end_of_the_head_is_still_text() -> None:
    head = ("é" * 10).encode()[:-1]  # the last two-byte character cut in half
    shown = preview("notes.txt", head, size=1000)
    assert shown == {"kind": "text", "text": "é" * 9, "truncated": True}


def test_invalid_utf8_or_nul_is_binary() -> None:
    assert preview("a.txt", b"\xff\xfe abc", size=6)["kind"] == "binary"
    assert preview("a.txt", b"abc\0def", size=7)["kind"] == "binary"


def test_csv_of_a_cut_head_drops_its_partial_last_line() -> None:
    text = "a,b\n" + "".join(f"{i},{i}\n" for i in range(3))
    head = (text + "99,9").encode()  # the file goes on: the head ends mid-row
    shown = preview("t.csv", head, size=10_000)
    assert shown == {
        "kind": "csv",
        "header": ["a", "b"],
        "rows": [["0", "0"], ["1", "1"], ["2", "2"]],
    }
    many = "h\n" + "".join(f"{i}\n" for i in range(500))
    assert len(preview("t.csv", many.encode(), len(many))["rows"]) == CSV_ROWS


def test_tsv_and_json() -> None:
    assert preview("t.tsv", b"a\tb\n1\t2\n", 8)["rows"] == [["1", "2"]]
    assert (
        preview("d.json", b'{"b":1,"a":[2]}', 15)["text"] == '{\n  "b": 1,\n  "a": [\n    2\n  ]\n}'
    )
    broken = preview("d.json", b'{"b":', 5)
    assert broken == {"kind": "text", "text": '{"b":', "truncated": False}
    cut = preview("d.json", b'{"b": 1', 1000)  # not all of it: shown as text, not parsed
    assert cut["kind"] == "text" and cut["truncated"]


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0....", "image/jpeg"),
        (b"GIF89a....", "image/gif"),
        (b"RIFF\x10\0\0\0WEBPVP8 ", "image/webp"),
    ],
)
def test_images_by_their_first_bytes_not_their_names(head: bytes, mime: str) -> None:
    assert preview("no-extension", head, 100) == {"kind": "image", "mime": mime}


def test_svg_is_text_not_an_image() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert preview("x.svg", svg, len(svg))["kind"] == "text"


# --- the graph ------------------------------------------------------------------------------

HOSTILE = {
    "root": "version:p/a:v0",
    "nodes": [
        {"id": "version:p/a:v0", "kind": "version", "ref": "p/a:v0", "type": "dataset"},
        {
            "id": "run:abcdefgh",
            "kind": "run",
            "run_id": "abcdefgh",
            "project": "p",
            "job_type": "<script>alert(1)</script>",
            "name": 'x" \\N & <b>',
            "command": "rm -rf / <img src=x onerror=alert(1)> C:\\N",
        },
        {"id": "run:zzzzzzzz", "kind": "run", "run_id": "zzzzzzzz", "project": None},
    ],
    "edges": [{"from": "version:p/a:v0", "to": "run:abcdefgh", "kind": "used"}],
}


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_names_from_runs_cannot_become_markup_or_dot_escapes() -> None:
    graph.render_svg.cache_clear()
    svg = graph.render_svg(graph.lineage_dot(HOSTILE, lambda node: f"/n/{node['id']}"))
    assert svg.startswith("<svg")
    assert "<script" not in svg and "<img" not in svg and "<b>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "\\N" in svg  # kept as typed, not replaced by the node's name
    assert 'onerror=alert(1)&gt; C:\\N"' in svg  # in the tooltip too
    assert 'xlink:href="/n/run:abcdefgh"' in svg
    assert "(record missing)" in svg  # a run id whose record is gone


def test_dot_failure_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    graph.render_svg.cache_clear()
    with pytest.raises(ArtfsError, match="Graphviz dot failed"):
        graph.render_svg("digraph { this is not dot")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(GraphvizMissing, match="apt-get install graphviz"):
        graph.render_svg("digraph { a }")


def test_public_api() -> None:
    import artfs.ui

    assert artfs.ui.__all__ == ["create_app", "open_readonly", "serve"]
