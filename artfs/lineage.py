"""Runs and lineage: who produced a version, who consumed it, and the graph between them.

A *run* is one job (a training script, a preprocessing step, a shell pipeline). Runs are
recorded in the store's ``runs`` table; two kinds of edges link them to versions:

- ``logged``: run -> version, the version's ``logged_by`` (written by the commit itself);
- ``used``: version -> run, a *usage* with first/last access and the number of files opened.

Usage keys live in the ``usage`` table in both directions so each question is one prefix scan::

    b"u" + version key + run id   -> JSON {first, last, files}   (consumers of a version)
    b"i" + run id + b"\\0" + version key -> b""                   (inputs of a run)

Outputs of a run are indexed by the commit (see ``catalog.add_version``). Deleted versions keep
their records (state "deleted"), so lineage never silently loses a link.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import string
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from artfs.errors import NotFound
from artfs.names import Ref, check_name
from artfs.store import catalog, settings
from artfs.store.catalog import VersionRecord
from artfs.store.index import Table, Txn
from artfs.store.repository import Store

RUN_ID_ALPHABET = string.ascii_lowercase + string.digits
RUN_ID_LENGTH = 8
RUNNING, FINISHED, FAILED = "running", "finished", "failed"


def new_run_id() -> str:
    return "".join(secrets.choice(RUN_ID_ALPHABET) for _ in range(RUN_ID_LENGTH))


def check_run_id(run_id: str) -> str:
    if len(run_id) != RUN_ID_LENGTH or any(c not in RUN_ID_ALPHABET for c in run_id):
        raise NotFound(f"invalid run id {run_id!r}: run ids are 8 lowercase letters or digits")
    return run_id


@dataclass
class RunRecord:
    """One job. ``command`` may be empty when the store is set to omit command lines."""

    id: str
    project: str
    job_type: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    host: str = ""
    user: str = ""
    command: list[str] = field(default_factory=list)
    cwd: str = ""
    container: str | None = None
    pid: int | None = None
    proc_start: int | None = None
    started: float = 0.0
    ended: float | None = None
    exit_code: int | None = None
    state: str = RUNNING
    implicit: bool = False

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> RunRecord:
        return cls(**json.loads(data))


@dataclass
class Usage:
    run_id: str
    version_key: bytes
    first: float
    last: float
    files: int


@dataclass(frozen=True)
class UsageEvent:
    """One open of a file of a version by a run (what the daemon batches)."""

    run_id: str
    version_key: bytes
    at: float
    files: int = 1


def _consumer_key(version_key: bytes, run_id: str) -> bytes:
    return b"u" + version_key + run_id.encode()


def _input_key(run_id: str, version_key: bytes) -> bytes:
    return b"i" + run_id.encode() + b"\0" + version_key


def output_prefix(run_id: str) -> bytes:
    return catalog.output_key(run_id, b"")


class Lineage:
    """Runs and usage edges of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        project: str,
        job_type: str,
        *,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        command: list[str] | None = None,
        run_id: str | None = None,
        implicit: bool = False,
        **facts: Any,
    ) -> RunRecord:
        check_name(project, "project name")
        record = RunRecord(
            id=run_id or new_run_id(),
            project=project,
            job_type=job_type,
            name=name or "",
            config=config or {},
            host=socket.gethostname(),
            user=_user(),
            command=command if command is not None else [],
            cwd=os.getcwd(),
            started=time.time(),
            implicit=implicit,
            **facts,
        )
        if not record.name:
            record.name = f"{job_type}-{record.id}"
        with self.store.index.write() as txn:
            catalog.ensure_project(txn, project)
            _apply_privacy(txn, record)
            txn.put(Table.RUNS, record.id.encode(), record.encode())
        return record

    def add_runs(self, records: Iterable[RunRecord]) -> None:
        """Store ready-made run records (the daemon's implicit and external runs); a run id
        already recorded keeps its existing record."""
        with self.store.index.write() as txn:
            for record in records:
                catalog.ensure_project(txn, record.project)
                _apply_privacy(txn, record)
                txn.put(Table.RUNS, record.id.encode(), record.encode(), overwrite=False)

    def finish_run(self, run_id: str, exit_code: int = 0) -> RunRecord:
        with self.store.index.write() as txn:
            record = _get_run(txn, run_id)
            record.ended = time.time()
            record.exit_code = exit_code
            record.state = FINISHED if exit_code == 0 else FAILED
            txn.put(Table.RUNS, run_id.encode(), record.encode())
        return record

    def run(self, run_id: str) -> RunRecord:
        with self.store.index.read() as txn:
            return _get_run(txn, check_run_id(run_id))

    def find_run(self, run_id: str) -> RunRecord | None:
        with self.store.index.read() as txn:
            data = txn.get(Table.RUNS, run_id.encode())
        return None if data is None else RunRecord.decode(data)

    def runs(self, project: str | None = None) -> list[RunRecord]:
        with self.store.index.read() as txn:
            found = [RunRecord.decode(v) for _, v in txn.scan(Table.RUNS)]
        if project is not None:
            found = [r for r in found if r.project == project]
        return sorted(found, key=lambda r: r.started)

    def ensure_run(self, run_id: str, project: str) -> RunRecord:
        """The run ``run_id``; a well-formed id not seen before is recorded as an external run
        (an ``ARTFS_RUN_ID`` set by hand or by a container's ``-e``)."""
        check_run_id(run_id)
        found = self.find_run(run_id)
        if found is not None:
            return found
        return self.create_run(project, "external", run_id=run_id)

    # --- usage ------------------------------------------------------------------------------

    def record_usage(self, events: Iterable[UsageEvent]) -> int:
        """Merge a batch of opens into the usage edges, in one transaction."""
        merged: dict[tuple[str, bytes], Usage] = {}
        for event in events:
            key = (event.run_id, event.version_key)
            usage = merged.get(key)
            if usage is None:
                merged[key] = Usage(
                    event.run_id, event.version_key, event.at, event.at, event.files
                )
            else:
                usage.first = min(usage.first, event.at)
                usage.last = max(usage.last, event.at)
                usage.files += event.files
        if not merged:
            return 0
        with self.store.index.write() as txn:
            for usage in merged.values():
                _merge_usage(txn, usage)
        return len(merged)

    def use(self, run_id: str, record: VersionRecord) -> None:
        """Record that a run uses a whole version (the SDK's ``use_artifact``)."""
        self.record_usage([UsageEvent(run_id, record.key, time.time(), files=0)])

    def consumers(self, record: VersionRecord) -> list[tuple[RunRecord, Usage]]:
        prefix = b"u" + record.key
        with self.store.index.read() as txn:
            found = []
            for key, value in txn.scan(Table.USAGE, prefix):
                run_id = key[len(prefix) :].decode()
                run = _find(txn, run_id)
                if run is not None:
                    found.append((run, _usage(run_id, record.key, value)))
        return found

    def inputs(self, run_id: str) -> list[VersionRecord]:
        prefix = _input_key(run_id, b"")
        with self.store.index.read() as txn:
            return [
                r
                for key, _ in txn.scan(Table.USAGE, prefix)
                if (r := _version_at(txn, key[len(prefix) :])) is not None
            ]

    def outputs(self, run_id: str) -> list[VersionRecord]:
        prefix = output_prefix(run_id)
        with self.store.index.read() as txn:
            return [
                r
                for key, _ in txn.scan(Table.USAGE, prefix)
                if (r := _version_at(txn, key[len(prefix) :])) is not None
            ]

    def version(self, ref: str) -> VersionRecord:
        """A version by ref; deleted versions are found too when named by number."""
        parsed = Ref.parse(ref)
        with self.store.index.read() as txn:
            if parsed.version is not None:
                record = catalog.get_version(txn, parsed.artifact, parsed.version)
                if record is not None:
                    return record
            return catalog.resolve(txn, parsed)


def _apply_privacy(txn: Txn, record: RunRecord) -> None:
    """Drop the command line when the store is set not to keep them (``artfs config``)."""
    if not settings.get(txn, "record_command_lines"):
        record.command = []


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _get_run(txn: Txn, run_id: str) -> RunRecord:
    run = _find(txn, run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r}: see 'artfs runs'")
    return run


def _find(txn: Txn, run_id: str) -> RunRecord | None:
    data = txn.get(Table.RUNS, run_id.encode())
    return None if data is None else RunRecord.decode(data)


def _usage(run_id: str, version_key: bytes, value: bytes) -> Usage:
    data = json.loads(value)
    return Usage(run_id, version_key, data["first"], data["last"], data["files"])


def _merge_usage(txn: Txn, usage: Usage) -> None:
    key = _consumer_key(usage.version_key, usage.run_id)
    old = txn.get(Table.USAGE, key)
    if old is not None:
        prior = _usage(usage.run_id, usage.version_key, old)
        usage.first = min(usage.first, prior.first)
        usage.last = max(usage.last, prior.last)
        usage.files += prior.files
    value = {"first": usage.first, "last": usage.last, "files": usage.files}
    txn.put(Table.USAGE, key, json.dumps(value).encode())
    txn.put(Table.USAGE, _input_key(usage.run_id, usage.version_key), b"")


def _version_at(txn: Txn, version_key: bytes) -> VersionRecord | None:
    data = txn.get(Table.VERSIONS, version_key)
    if data is None:
        return None
    record = VersionRecord.decode(data)
    return catalog.get_version(txn, record.artifact, record.number)


# --- the graph ------------------------------------------------------------------------------

UP, DOWN, BOTH = "up", "down", "both"


@dataclass
class Graph:
    """Nodes by id (``version:proj/name:v3``, ``run:abcd1234``) and edges in data-flow order:
    ``version -used-> run`` and ``run -logged-> version``."""

    root: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, str]] = field(default_factory=list)

    def add_edge(self, source: str, target: str, kind: str) -> None:
        edge = {"from": source, "to": target, "kind": kind}
        if edge not in self.edges:
            self.edges.append(edge)

    def to_json(self) -> dict[str, Any]:
        return {"root": self.root, "nodes": list(self.nodes.values()), "edges": self.edges}


def version_node_id(record: VersionRecord) -> str:
    return f"version:{record.ref}"


def run_node_id(run_id: str) -> str:
    return f"run:{run_id}"


def _version_node(record: VersionRecord) -> dict[str, Any]:
    return {
        "id": version_node_id(record),
        "kind": "version",
        "ref": record.ref,
        "type": record.type,
        "created": record.created,
        "deleted": record.state != "committed",
    }


def _run_node(run: RunRecord | None, run_id: str) -> dict[str, Any]:
    if run is None:  # a run id recorded on a version whose run record is gone
        return {
            "id": run_node_id(run_id),
            "kind": "run",
            "run_id": run_id,
            "project": None,
            "job_type": None,
            "name": None,
            "command": None,
            "deleted": True,
        }
    return {
        "id": run_node_id(run.id),
        "kind": "run",
        "run_id": run.id,
        "project": run.project,
        "job_type": run.job_type,
        "name": run.name,
        "command": " ".join(run.command),
        "host": run.host,
        "user": run.user,
        "started": run.started,
        "ended": run.ended,
        "exit_code": run.exit_code,
        "state": run.state,
        "deleted": False,
    }


def build_graph(
    lineage: Lineage, start: VersionRecord, direction: str = BOTH, depth: int | None = None
) -> Graph:
    """Walk from ``start`` upstream (producers and their inputs), downstream (consumers and
    what they produced), or both, at most ``depth`` edges away (None: no limit)."""
    graph = Graph(version_node_id(start))
    graph.nodes[graph.root] = _version_node(start)
    if direction in (UP, BOTH):
        _walk(lineage, graph, start, depth, upstream=True)
    if direction in (DOWN, BOTH):
        _walk(lineage, graph, start, depth, upstream=False)
    return graph


def _walk(
    lineage: Lineage, graph: Graph, start: VersionRecord, depth: int | None, *, upstream: bool
) -> None:
    frontier: list[tuple[VersionRecord, int]] = [(start, 0)]
    seen_runs: set[str] = set()
    while frontier:
        record, hops = frontier.pop(0)
        if depth is not None and hops >= depth:
            continue
        for run_id, run in _neighbour_runs(lineage, record, upstream):
            node = run_node_id(run_id)
            graph.nodes.setdefault(node, _run_node(run, run_id))
            if upstream:
                graph.add_edge(node, version_node_id(record), "logged")
            else:
                graph.add_edge(version_node_id(record), node, "used")
            if run_id in seen_runs or (depth is not None and hops + 1 >= depth):
                continue
            seen_runs.add(run_id)
            for other in lineage.inputs(run_id) if upstream else lineage.outputs(run_id):
                other_id = version_node_id(other)
                if upstream:
                    graph.add_edge(other_id, node, "used")
                else:
                    graph.add_edge(node, other_id, "logged")
                if other_id not in graph.nodes:
                    graph.nodes[other_id] = _version_node(other)
                    frontier.append((other, hops + 2))


def _neighbour_runs(
    lineage: Lineage, record: VersionRecord, upstream: bool
) -> list[tuple[str, RunRecord | None]]:
    if upstream:
        return [(record.logged_by, lineage.find_run(record.logged_by))] if record.logged_by else []
    return [(run.id, run) for run, _ in lineage.consumers(record)]
