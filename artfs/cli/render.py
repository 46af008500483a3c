"""How records look on the command line: table cells, lineage trees and DOT (pure); their
JSON shapes are :mod:`artfs.views`'s, shared with ``artfs ui``."""

from __future__ import annotations

import re
from typing import Any

from artfs.errors import InvalidName
from artfs.store.catalog import VersionRecord
from artfs.views import human_size, iso

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([0-9]+)([smhdw])")


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``1w2d``... -> seconds; InvalidName on anything else."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidName(f"invalid duration {text!r}: use a number and a unit, e.g. 30d, 12h, 90m")
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


def clipped(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, its cut end shown as "..." when it is longer."""
    return text if len(text) <= width else text[: width - 3] + "..."


def version_row(record: VersionRecord) -> list[Any]:
    return [
        record.version,
        ",".join(record.aliases),
        record.files,
        human_size(record.size),
        iso(record.created),
        record.digest[:12],
    ]


# --- lineage ------------------------------------------------------------------------------


def _label(node: dict[str, Any]) -> str:
    deleted = " (deleted)" if node.get("deleted") else ""
    if node["kind"] == "version":
        return f"{node['ref']} [{node['type']}]{deleted}"
    if node.get("project") is None:
        return f"run {node['run_id']}{deleted}"
    when = f"{iso(node['started'])} -> {iso(node['ended']) or 'running'}"
    command = f" `{node['command']}`" if node.get("command") else ""
    return (
        f"run {node['run_id']} {node['job_type']}/{node['name']}{command} "
        f"by {node['user']}@{node['host']}, {when}{deleted}"
    )


def lineage_tree(graph: dict[str, Any], direction: str) -> list[str]:
    """The graph as indented text: upstream and/or downstream of the root version."""
    nodes = {n["id"]: n for n in graph["nodes"]}
    lines = [_label(nodes[graph["root"]])]
    if direction in ("up", "both"):
        parents: dict[str, list[str]] = {}
        for edge in graph["edges"]:
            parents.setdefault(edge["to"], []).append(edge["from"])
        lines.append("upstream (what produced it):")
        lines += _tree(graph["root"], parents, nodes, "produced by", "from", set(), "  ")
    if direction in ("down", "both"):
        children: dict[str, list[str]] = {}
        for edge in graph["edges"]:
            children.setdefault(edge["from"], []).append(edge["to"])
        lines.append("downstream (who used it):")
        lines += _tree(graph["root"], children, nodes, "used by", "produced", set(), "  ")
    return lines


def _tree(
    node_id: str,
    links: dict[str, list[str]],
    nodes: dict[str, dict[str, Any]],
    run_verb: str,
    version_verb: str,
    seen: set[str],
    indent: str,
) -> list[str]:
    lines = []
    targets = sorted(set(links.get(node_id, [])))
    if not targets:
        return [f"{indent}(none)"] if not seen else []
    seen = seen | {node_id}
    for i, target in enumerate(targets):
        last = i == len(targets) - 1
        node = nodes[target]
        verb = run_verb if node["kind"] == "run" else version_verb
        again = " (see above)" if target in seen else ""
        lines.append(f"{indent}{'└── ' if last else '├── '}{verb} {_label(node)}{again}")
        if not again:
            deeper = indent + ("    " if last else "│   ")
            lines += _tree(target, links, nodes, run_verb, version_verb, seen, deeper)
    return lines


def lineage_dot(graph: dict[str, Any]) -> list[str]:
    """The graph in Graphviz DOT: versions as boxes, runs as ellipses."""
    lines = ["digraph lineage {", "  rankdir=LR;"]
    for node in graph["nodes"]:
        shape = "box" if node["kind"] == "version" else "ellipse"
        style = ', style="dashed"' if node.get("deleted") else ""
        text = (
            node["ref"]
            if node["kind"] == "version"
            else (f"{node['run_id']}\\n{node.get('job_type') or ''}")
        )
        lines.append(f'  "{node["id"]}" [label="{text}", shape={shape}{style}];')
    for edge in graph["edges"]:
        lines.append(f'  "{edge["from"]}" -> "{edge["to"]}" [label="{edge["kind"]}"];')
    lines.append("}")
    return lines


def history_note(metrics: Any, shown: int) -> str:
    """``12 rows, the last 10:`` and the like, above the rows ``runs show`` prints."""
    if not metrics.stored:
        return "no rows"
    dropped = f" ({metrics.dropped} more over the limit, not kept)" if metrics.dropped else ""
    if metrics.stored <= shown:
        return f"{metrics.stored} rows{dropped}:"
    return f"{metrics.stored} rows{dropped}, the last {len(metrics.rows)}:"
