"""Runs and lineage: who produced a version, who consumed it, and the graph between them.

A *run* is one job (a training script, a preprocessing step, a shell pipeline). Runs are
recorded in the store's ``runs`` table; two kinds of edges link them to versions:

- ``logged``: run -> version, the version's ``logged_by`` (written by the commit itself);
- ``used``: version -> run, a *usage* with first/last access and the number of distinct files
  opened (a file opened twice counts once).

Usage edges are kept in both directions so each question is one prefix scan; the keys are
the store's (:mod:`artfs.store.runs`: also the files a run opened, counted once each, and the
producers of a version besides its ``logged_by``), the records (a run as JSON, an edge as
JSON ``{first, last, files}``) are this module's. Outputs of a run are indexed by the commit (see
``catalog.add_version``). Deleted versions keep their records (state "deleted"), so lineage
never silently loses a link.

In a remote-backed store (one with a default remote) runs and usage edges are also *published*
as they are recorded, through a :class:`LineagePublisher`: the store's lineage sink port,
which the remote implements (``artfs.remote.lineage_sync``, loaded only then; see
:mod:`artfs.store.ports`). The local record is the source of truth: a publish that fails is
logged and the record stays local until the next attempt or ``artfs push --all``. Records from
other machines come back through :meth:`Lineage.adopt`.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import secrets
import socket
import string
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from artfs.errors import ArtfsError, NotFound
from artfs.names import ArtifactName, Ref, check_name
from artfs.store import catalog, settings
from artfs.store import runs as run_tables
from artfs.store.catalog import VersionRecord
from artfs.store.index import Txn
from artfs.store.repository import Store
from artfs.store.settings import RemoteConfig

log = logging.getLogger(__name__)
RUN_ID_ALPHABET = string.ascii_lowercase + string.digits
RUN_ID_LENGTH = 8
RUNNING, FINISHED, FAILED, CRASHED = "running", "finished", "failed", "crashed"


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
    # W&B's run fields (wandb.init): recorded as given, shown by 'artfs runs show'.
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> RunRecord:
        # Fields a newer artfs added are skipped, so its records stay readable here.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(data).items() if k in known})


@dataclass
class Usage:
    run_id: str
    version_key: bytes
    first: float
    last: float
    files: int


@dataclass(frozen=True)
class UsageEvent:
    """One open of a file of a version by a run (what the daemon batches). ``file`` names
    the file within the version (8 bytes); the edge counts each such file once. Without
    one the event adds ``files`` (0 for a use of the whole version)."""

    run_id: str
    version_key: bytes
    at: float
    files: int = 1
    file: bytes = b""


@dataclass
class OpenedFiles:
    """The opens of one version's files by one run over a while, merged (what the daemon
    hands over at each flush): the first and latest open, the files opened (8 bytes each;
    the edge counts each file once per run, however often and in however many batches it is
    named) and ``more`` to add to the count as it is (``UsageEvent.files``)."""

    run_id: str
    version_key: bytes
    first: float
    last: float
    files: list[bytes] = field(default_factory=list)
    more: int = 0


class LineagePublisher(Protocol):
    """Where runs and usage edges go besides the local index (a remote): the store's
    :class:`~artfs.store.ports.LineageSink`, with the record types stated."""

    def publish(
        self, runs: Sequence[RunRecord], usages: Sequence[tuple[VersionRecord, Usage]]
    ) -> None:
        """Send them all; raise an ArtfsError when that failed (what went stays sent)."""
        ...


# One publisher per open store and default remote (a client is opened once, not per record).
_publishers: weakref.WeakKeyDictionary[Store, tuple[RemoteConfig, LineagePublisher]] = (
    weakref.WeakKeyDictionary()
)


def remote_publisher(store: Store) -> LineagePublisher | None:
    """The publisher of a remote-backed store (to its default remote), else None."""
    config = store.default_remote()
    if config is None:
        return None
    cached = _publishers.get(store)
    if cached is not None and cached[0] == config:
        return cached[1]
    publisher: LineagePublisher = store.remote_ports(config).lineage_sink(store, config)
    _publishers[store] = (config, publisher)
    return publisher


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
            run_tables.put_run(txn, record.id, record.encode())
        self._publish_quietly([record], [])
        return record

    def add_runs(self, records: Sequence[RunRecord], *, publish: bool = True) -> None:
        """Store ready-made run records (the daemon's implicit and external runs); a run id
        already recorded keeps its existing record."""
        with self.store.index.write() as txn:
            for record in records:
                catalog.ensure_project(txn, record.project)
                _apply_privacy(txn, record)
                run_tables.put_run(txn, record.id, record.encode(), overwrite=False)
        if publish:
            self._publish_quietly(records, [])

    def finish_run(self, run_id: str, exit_code: int = 0) -> RunRecord:
        with self.store.index.write() as txn:
            record = _get_run(txn, run_id)
            record.ended = time.time()
            record.exit_code = exit_code
            record.state = FINISHED if exit_code == 0 else FAILED
            run_tables.put_run(txn, run_id, record.encode())
        self._publish_quietly([record], [])
        return record

    def update_run(
        self, run_id: str, change: Callable[[RunRecord], None], *, publish: bool = True
    ) -> RunRecord:
        """Apply ``change`` to the run's record in one write transaction (config edits, a
        resumed run, a run found crashed); returns the record as stored. ``publish=False``
        leaves the change for the run's next publish (its finish)."""
        with self.store.index.write() as txn:
            record = _get_run(txn, run_id)
            change(record)
            run_tables.put_run(txn, run_id, record.encode())
        if publish:
            self._publish_quietly([record], [])
        return record

    def run(self, run_id: str) -> RunRecord:
        with self.store.index.read() as txn:
            return _get_run(txn, check_run_id(run_id))

    def find_run(self, run_id: str) -> RunRecord | None:
        with self.store.index.read() as txn:
            return _find(txn, run_id)

    def runs(self, project: str | None = None) -> list[RunRecord]:
        with self.store.index.read() as txn:
            found = [RunRecord.decode(v) for v in run_tables.all_runs(txn)]
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

    def record_usage(self, events: Iterable[UsageEvent], *, publish: bool = True) -> list[Usage]:
        """Merge a batch of opens into the usage edges, in one transaction; returns the edges
        as they now are. A file counts once per run however often it is opened: the first
        open of it leaves a 12-byte value behind, its id and a CRC (see
        :func:`artfs.store.runs.add_opened_files`)."""
        merged: dict[tuple[str, bytes], OpenedFiles] = {}
        for event in events:
            opens = merged.get((event.run_id, event.version_key))
            if opens is None:
                opens = merged[(event.run_id, event.version_key)] = OpenedFiles(
                    event.run_id, event.version_key, event.at, event.at
                )
            opens.first, opens.last = min(opens.first, event.at), max(opens.last, event.at)
            if event.file:
                opens.files.append(event.file)
            else:
                opens.more += event.files
        return self.record_opens(merged.values(), publish=publish)

    def record_opens(self, batch: Iterable[OpenedFiles], *, publish: bool = True) -> list[Usage]:
        """Merge ``batch`` into the usage edges, in one transaction; returns the edges as they
        now are. The files of each entry go in with one batched insert that counts those new
        to the run (values of one key: ~1.1-1.2 us of CPU a file in all, the commits' share
        included, measured on 6,000 in 16 transactions; see docs/lineage.md)."""
        merged: dict[tuple[str, bytes], Usage] = {}
        with self.store.index.write() as txn:
            for opens in batch:
                added = run_tables.add_opened_files(
                    txn, opens.version_key, opens.run_id, opens.files
                )
                key = (opens.run_id, opens.version_key)
                usage = merged.get(key)
                if usage is None:
                    merged[key] = Usage(
                        opens.run_id, opens.version_key, opens.first, opens.last, added + opens.more
                    )
                else:
                    usage.first = min(usage.first, opens.first)
                    usage.last = max(usage.last, opens.last)
                    usage.files += added + opens.more
            for usage in merged.values():
                _merge_usage(txn, usage)
        if publish:
            self._publish_quietly([], list(merged.values()))
        return list(merged.values())

    def use(self, run_id: str, record: VersionRecord) -> None:
        """Record that a run uses a whole version (the SDK's ``use_artifact``)."""
        self.record_usage([UsageEvent(run_id, record.key, time.time(), files=0)])

    def usages(self) -> list[Usage]:
        """Every usage edge of the store."""
        with self.store.index.read() as txn:
            return [
                _usage(run_id, version_key, value)
                for version_key, run_id, value in run_tables.all_usages(txn)
            ]

    def consumers(self, record: VersionRecord) -> list[tuple[RunRecord, Usage]]:
        with self.store.index.read() as txn:
            found = []
            for run_id, value in run_tables.consumers(txn, record.key):
                run = _find(txn, run_id)
                if run is not None:
                    found.append((run, _usage(run_id, record.key, value)))
        return found

    def inputs(self, run_id: str) -> list[VersionRecord]:
        with self.store.index.read() as txn:
            found = (catalog.version_at(txn, vkey) for vkey in run_tables.inputs(txn, run_id))
            return [record for record in found if record is not None]

    def outputs(self, run_id: str) -> list[VersionRecord]:
        with self.store.index.read() as txn:
            found = (catalog.version_at(txn, vkey) for vkey in run_tables.outputs(txn, run_id))
            return [record for record in found if record is not None]

    def add_producers(self, record: VersionRecord, run_ids: Iterable[str]) -> None:
        """Record more runs that logged ``record`` than its ``logged_by`` (the contributors of
        a distributed artifact): each lists it among its outputs, and it names each of them."""
        with self.store.index.write() as txn:
            for run_id in run_ids:
                run_tables.add_producer(txn, record.key, run_id)

    def producers(self, record: VersionRecord) -> list[str]:
        """Every run that logged ``record``: its ``logged_by`` first, then contributors."""
        with self.store.index.read() as txn:
            more = list(run_tables.producers(txn, record.key))
        first = [record.logged_by] if record.logged_by else []
        return first + sorted(set(more) - set(first))

    def version_by_digest(self, art: ArtifactName, digest: str) -> VersionRecord | None:
        """The committed version of ``art`` with that content, if this store has one."""
        with self.store.index.read() as txn:
            number = catalog.version_by_digest(txn, art, digest)
            return None if number is None else catalog.get_version(txn, art, number)

    # --- sharing (remote-backed stores) -----------------------------------------------------

    def publish(
        self,
        runs: Sequence[RunRecord],
        usages: Sequence[Usage],
        to: LineagePublisher | None = None,
    ) -> tuple[int, int]:
        """Send runs and usage edges (with the runs they name) to ``to``, by default the
        store's default remote; returns how many runs and edges went (0, 0 without a remote).
        Raises ArtfsError when the remote fails."""
        if not (runs or usages):
            return 0, 0
        publisher = to if to is not None else remote_publisher(self.store)
        if publisher is None:
            return 0, 0
        by_id = {run.id: run for run in runs}
        with_versions = []
        with self.store.index.read() as txn:
            for usage in usages:
                version = catalog.version_at(txn, usage.version_key)
                run = by_id.get(usage.run_id) or _find(txn, usage.run_id)
                if version is None or run is None:
                    continue  # an edge whose version or run is gone here has nothing to say
                by_id[run.id] = run
                with_versions.append((version, usage))
        publisher.publish(list(by_id.values()), with_versions)
        return len(by_id), len(with_versions)

    def _publish_quietly(self, runs: Sequence[RunRecord], usages: Sequence[Usage]) -> None:
        """Publish, but never fail what was recorded locally because the remote did."""
        try:
            self.publish(runs, usages)
        except (ArtfsError, OSError) as exc:
            log.warning(
                "artfs: warning: lineage not published, it stays in this store "
                "('artfs push --all' publishes it later): %s",
                exc,
            )

    def adopt(self, runs: Iterable[RunRecord], usages: Iterable[Usage]) -> None:
        """Merge runs and usage edges recorded elsewhere. A run not known here is added, and a
        run known here as running is replaced by a record of it that ended; an edge is added or
        widened (earliest first, latest last, the larger file count): adopting the same edge
        twice changes nothing."""
        with self.store.index.write() as txn:
            for run in runs:
                known = _find(txn, run.id)
                if known is None or (known.state == RUNNING and run.state != RUNNING):
                    catalog.ensure_project(txn, run.project)
                    run_tables.put_run(txn, run.id, run.encode())
            for usage in usages:
                old = run_tables.get_usage(txn, usage.version_key, usage.run_id)
                if old is not None:
                    prior = _usage(usage.run_id, usage.version_key, old)
                    usage = Usage(
                        usage.run_id,
                        usage.version_key,
                        min(usage.first, prior.first),
                        max(usage.last, prior.last),
                        max(usage.files, prior.files),
                    )
                _put_usage(txn, usage)

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
    data = run_tables.get_run(txn, run_id)
    return None if data is None else RunRecord.decode(data)


def _usage(run_id: str, version_key: bytes, value: bytes) -> Usage:
    data = json.loads(value)
    return Usage(run_id, version_key, data["first"], data["last"], data["files"])


def _merge_usage(txn: Txn, usage: Usage) -> None:
    old = run_tables.get_usage(txn, usage.version_key, usage.run_id)
    if old is not None:
        prior = _usage(usage.run_id, usage.version_key, old)
        usage.first = min(usage.first, prior.first)
        usage.last = max(usage.last, prior.last)
        usage.files += prior.files
    _put_usage(txn, usage, new=old is None)


def _put_usage(txn: Txn, usage: Usage, *, new: bool = True) -> None:
    value = {"first": usage.first, "last": usage.last, "files": usage.files}
    encoded = json.dumps(value).encode()
    run_tables.put_usage(txn, usage.version_key, usage.run_id, encoded, new=new)


class BackgroundPublisher:
    """Publishes runs and usage edges from a worker thread, so that a slow or unreachable
    remote never holds up the caller (the daemon's usage flush). What fails stays queued and is
    tried again by a later :meth:`submit` (which may bring nothing new), after a pause that
    doubles with each failure in a row (1 s up to 60 s); an edge published once is not sent
    again (the remote keeps its first record of an edge, create-only)."""

    RETRY_FIRST, RETRY_MAX = 1.0, 60.0

    def __init__(self, lineage: Lineage) -> None:
        self.lineage = lineage
        self._runs: dict[str, RunRecord] = {}
        self._usages: dict[tuple[str, bytes], Usage] = {}
        self._sent: set[tuple[str, bytes]] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0
        self._retry_delay = 0.0

    def submit(self, runs: Sequence[RunRecord], usages: Sequence[Usage]) -> None:
        if self.lineage.store.default_remote() is None:
            return  # not remote-backed: nothing to share
        with self._lock:
            self._runs.update((run.id, run) for run in runs)
            for usage in usages:
                key = (usage.run_id, usage.version_key)
                if key not in self._sent:
                    self._usages[key] = usage
            idle = self._thread is None or not self._thread.is_alive()
            due = time.monotonic() >= self._retry_at
            if idle and due and (self._runs or self._usages):
                self._thread = threading.Thread(
                    target=self._drain, name="artfs-lineage-publish", daemon=True
                )
                self._thread.start()

    def _drain(self) -> None:
        with self._lock:
            runs, usages = self._runs, self._usages
            self._runs, self._usages = {}, {}
        try:
            self.lineage.publish(list(runs.values()), list(usages.values()))
        except Exception as exc:  # logged, kept, retried: the local record is what counts
            if not isinstance(exc, ArtfsError | OSError):
                log.exception("publishing lineage failed")
            else:
                log.warning("publishing lineage failed (retried at the next flush): %s", exc)
            with self._lock:
                for run_id, run in runs.items():
                    self._runs.setdefault(run_id, run)
                for key, usage in usages.items():
                    self._usages.setdefault(key, usage)
                self._retry_delay = min(self.RETRY_MAX, self._retry_delay * 2 or self.RETRY_FIRST)
                self._retry_at = time.monotonic() + self._retry_delay
            return
        with self._lock:
            self._sent.update(usages)
            self._retry_delay = self._retry_at = 0.0

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a publish in progress."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


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
        return [(run_id, lineage.find_run(run_id)) for run_id in lineage.producers(record)]
    return [(run.id, run) for run, _ in lineage.consumers(record)]
