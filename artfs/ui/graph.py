"""The lineage graph drawn as SVG by Graphviz ``dot`` (Debian's ``graphviz`` package).

``dot`` lays out a DAG in ranks (Sugiyama-style): data flows left to right, versions as boxes,
runs as ellipses, each node a link to its page; a dashed edge is "used" (version -> run), a
solid one "logged" (run -> version). Its SVG goes into the page as it is (no
JavaScript), so the browser draws it and the links work. A layout is cached by its DOT text:
the same graph asked again is not laid out again, and any change to the graph changes the text.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from artfs.errors import ArtfsError, GraphvizMissing

DOT_TIMEOUT = 30.0  # seconds; a few thousand nodes take about one
UrlOf = Callable[[dict[str, Any]], str]


def _quote(text: str) -> str:
    """A DOT double-quoted string (backslashes doubled: no ``\\N``-style escapes get through)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _label_lines(node: dict[str, Any]) -> list[str]:
    if node["kind"] == "version":
        project, _, rest = node["ref"].partition("/")
        return [rest, f"{project} · {node['type']}"]
    if node.get("project") is None:
        return [f"run {node['run_id']}", "(record missing)"]
    return [f"{node['job_type']} · {node['name']}", f"run {node['run_id']}"]


def _label(node: dict[str, Any]) -> str:
    """A two-line DOT label: each line quoted on its own, joined by DOT's ``\\n``."""
    return "\\n".join(_quote(line)[1:-1] for line in _label_lines(node))


def _node_line(node: dict[str, Any], root: str, url_of: UrlOf) -> str:
    version = node["kind"] == "version"
    classes = [node["kind"], *(["root"] if node["id"] == root else [])]
    attrs = {
        "shape": "box" if version else "ellipse",
        "style": "filled,dashed" if node.get("deleted") else "filled",
        "fillcolor": "#ffd866" if node["id"] == root else ("#e8f0fe" if version else "#eaf7ea"),
        "URL": url_of(node),
        "target": "_top",
        # dot expands escapes in a tooltip twice (2.43): its backslashes are doubled once more.
        "tooltip": (node.get("command") or node.get("ref") or node["id"]).replace("\\", "\\\\"),
        "class": " ".join(classes),
        "id": node["id"],
    }
    body = ", ".join(f"{k}={_quote(v)}" for k, v in attrs.items())
    return f'  {_quote(node["id"])} [label="{_label(node)}", {body}];'


def lineage_dot(graph: dict[str, Any], url_of: UrlOf) -> str:
    """The graph JSON of :func:`artfs.lineage.build_graph` as DOT, nodes linked by ``url_of``."""
    lines = [
        "digraph lineage {",
        '  rankdir=LR; bgcolor="transparent"; nodesep=0.15; ranksep=0.5;',
        '  node [fontname="Helvetica", fontsize=11, margin="0.12,0.05"];',
        '  edge [fontname="Helvetica", fontsize=9, color="#667085"];',
    ]
    lines += [_node_line(node, graph["root"], url_of) for node in graph["nodes"]]
    for edge in graph["edges"]:
        # No edge labels: dot lays a label out as a node of its own, which tripled the layout
        # time of a 200-run graph (100 -> 330 ms); the style says the kind instead.
        kind = edge["kind"]
        style = "dashed" if kind == "used" else "solid"
        lines.append(
            f"  {_quote(edge['from'])} -> {_quote(edge['to'])} "
            f"[style={style}, class={_quote(kind)}, tooltip={_quote(kind)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_path() -> str:
    found = shutil.which("dot")
    if found is None:
        raise GraphvizMissing(
            "Graphviz dot is missing, so lineage cannot be drawn: "
            "apt-get install graphviz (./dev installs it)"
        )
    return found


@functools.lru_cache(maxsize=64)
def render_svg(dot_text: str) -> str:
    """The ``<svg>`` element ``dot`` draws for ``dot_text`` (no XML prolog: it goes inline)."""
    done = subprocess.run(
        [dot_path(), "-Tsvg"],
        input=dot_text.encode(),
        capture_output=True,
        timeout=DOT_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise ArtfsError(f"Graphviz dot failed: {reason[-1] if reason else done.returncode}")
    svg = done.stdout.decode()
    return svg[svg.index("<svg") :]
