"""Runs and usage edges on a remote, so that lineage recorded on one machine is seen on all.

Keys, relative to the remote's ``s3://bucket/prefix``::

    runs/<run id>.json                                a run record (RunRecord's JSON)
    usage/<project>/<name>/<digest>/<run id>.json     edge: the run used that version
    inputs/<run id>/<project>/<name>/<digest>.json    the same edge, found from the run

An edge names its version by the version's *digest*, not its number: a pushed version may land
at another number on the remote than it has locally, while its content names it on every
machine. The second key of an edge lets ``lineage --direction up`` find a run's inputs with one
listing.

Every object is written with a create-only PUT carrying the writer's token, so a record another
machine wrote first ("already exists") counts as written and nothing is ever overwritten, with
one exception: a run record written while its run was running is replaced once, by
compare-and-swap on its ETag, by the record of the run that ended. An edge on the remote is the
first record of it published (first access, last access and file count as known then); the
local index keeps counting.

Reading merges into the local index (``Lineage.adopt``): runs this store does not know, ended
records of runs it knows as running, and edges of the versions asked about.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from artfs.errors import CorruptData, NotFound, RemoteError, RemoteMissing
from artfs.lineage import RUNNING, Lineage, RunRecord, Usage, build_graph, check_run_id
from artfs.names import ArtifactName
from artfs.objectstore import ObjectStore, backoff
from artfs.remote.remote import open_remote
from artfs.store.catalog import VersionRecord
from artfs.store.repository import Store
from artfs.store.settings import RemoteConfig

EDGE_FORMAT = "artfs-usage/1"
# A lineage graph is fetched layer by layer (each layer may name versions and runs the next
# needs); a walk deeper than this shows what the local index has beyond it.
_GRAPH_ROUNDS = 16
# Compare-and-swap attempts to record a run's end (only its own writer ends a run).
_FINISH_ATTEMPTS = 8


def run_key(run_id: str) -> str:
    return f"runs/{run_id}.json"


def usage_prefix(art: ArtifactName, digest: str) -> str:
    return f"usage/{art.project}/{art.name}/{digest}/"


def inputs_prefix(run_id: str) -> str:
    return f"inputs/{run_id}/"


@dataclass(frozen=True)
class RemoteEdge:
    """A usage edge as stored on the remote."""

    run_id: str
    artifact: ArtifactName
    digest: str
    first: float
    last: float
    files: int

    @property
    def usage_key(self) -> str:
        return f"{usage_prefix(self.artifact, self.digest)}{self.run_id}.json"

    @property
    def input_key(self) -> str:
        art = self.artifact
        return f"{inputs_prefix(self.run_id)}{art.project}/{art.name}/{self.digest}.json"

    def encode(self) -> bytes:
        doc = {
            "format": EDGE_FORMAT,
            "run": self.run_id,
            "project": self.artifact.project,
            "name": self.artifact.name,
            "digest": self.digest,
            "first": self.first,
            "last": self.last,
            "files": self.files,
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> RemoteEdge:
        try:
            doc = json.loads(data)
            if doc.get("format") != EDGE_FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            art = ArtifactName(str(doc["project"]), str(doc["name"]))
            if not _is_run_id(str(doc["run"])):
                raise ValueError(f"{doc['run']!r} is not a run id")
            return cls(
                str(doc["run"]),
                art,
                str(doc["digest"]),
                float(doc["first"]),
                float(doc["last"]),
                int(doc["files"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptData(f"usage record {where} cannot be read: {exc}") from None

    def usage(self, version: VersionRecord) -> Usage:
        return Usage(self.run_id, version.key, self.first, self.last, self.files)


def _is_run_id(text: str) -> bool:
    try:
        check_run_id(text)
    except NotFound:
        return False
    return True


def _decode_run(data: bytes, where: str) -> RunRecord:
    try:
        run = RunRecord.decode(data)
        if not _is_run_id(run.id):
            raise ValueError(f"{run.id!r} is not a run id")
    except (ValueError, TypeError) as exc:
        raise CorruptData(f"run record {where} cannot be read: {exc}") from None
    return run


@dataclass
class LineageCounts:
    runs: int = 0
    edges: int = 0


class RemoteLineage:
    """The lineage records under one remote (a :class:`~artfs.lineage.LineagePublisher`)."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self._runs_sent: dict[str, str] = {}  # run id -> state last published by this client
        self._edges_sent: set[str] = set()

    @classmethod
    def for_store(cls, store: Store, config: RemoteConfig) -> RemoteLineage:
        return cls(open_remote(store, config).objects)

    def describe(self) -> str:
        return self.objects.describe()

    # --- publishing ---------------------------------------------------------------------------

    def publish(
        self, runs: Sequence[RunRecord], usages: Sequence[tuple[VersionRecord, Usage]]
    ) -> None:
        """Runs first, then edges: an edge never names a run the remote lacks."""
        for run in runs:
            self.publish_run(run)
        for version, usage in usages:
            edge = RemoteEdge(
                usage.run_id, version.artifact, version.digest, usage.first, usage.last, usage.files
            )
            self.publish_edge(edge)

    def publish_run(self, run: RunRecord) -> None:
        if self._runs_sent.get(run.id) in (run.state, "ended"):
            return
        key = run_key(run.id)
        if not self.objects.put_new(key, run.encode()) and run.state != RUNNING:
            self._finish(key, run)
        self._runs_sent[run.id] = run.state if run.state == RUNNING else "ended"

    def _finish(self, key: str, run: RunRecord) -> None:
        """Replace a record of the run written while it ran by the record of its end."""
        for attempt in range(_FINISH_ATTEMPTS):
            try:
                data, etag = self.objects.get(key)
            except RemoteMissing:
                return  # removed meanwhile (a remote gc): nothing to update
            if _decode_run(data, f"{key} on {self.describe()}").state != RUNNING:
                return  # another writer recorded the end first
            if self.objects.put_if(key, run.encode(), etag) is not None:
                return
            backoff(attempt)
        raise RemoteError(f"could not record the end of run {run.id} on {self.describe()}")

    def publish_edge(self, edge: RemoteEdge) -> None:
        if edge.usage_key in self._edges_sent:
            return
        body = edge.encode()
        self.objects.put_new(edge.usage_key, body)
        self.objects.put_new(edge.input_key, body)
        self._edges_sent.add(edge.usage_key)

    def push_versions(self, store: Store, records: Iterable[VersionRecord]) -> LineageCounts:
        """The lineage of pushed versions: the runs that logged them, their consumers' edges."""
        lineage = Lineage(store)
        runs: list[RunRecord] = []
        usages: list[Usage] = []
        for record in records:
            logged_by = lineage.find_run(record.logged_by) if record.logged_by else None
            runs += [logged_by] if logged_by is not None else []
            usages += [usage for _, usage in lineage.consumers(record)]
        return LineageCounts(*lineage.publish(runs, usages, to=self))

    def push_all(self, store: Store) -> LineageCounts:
        lineage = Lineage(store)
        return LineageCounts(*lineage.publish(lineage.runs(), lineage.usages(), to=self))

    # --- fetching -----------------------------------------------------------------------------

    def fetch_versions(self, store: Store, records: Iterable[VersionRecord]) -> LineageCounts:
        """Adopt the consumers of ``records`` and the runs that logged them."""
        lineage = Lineage(store)
        wanted: set[str] = set()
        usages: list[Usage] = []
        for record in records:
            if record.logged_by:
                wanted.add(record.logged_by)
            known = {run.id for run, _ in lineage.consumers(record)}
            for info in self.objects.list(usage_prefix(record.artifact, record.digest)):
                run_id = info.key.rpartition("/")[2].removesuffix(".json")
                if run_id in known or not _is_run_id(run_id):
                    continue
                edge = self._edge(info.key)
                if edge is not None:
                    usages.append(edge.usage(record))
                    wanted.add(edge.run_id)
        runs = self._runs_to_adopt(lineage, wanted)
        lineage.adopt(runs, usages)
        return LineageCounts(len(runs), len(usages))

    def fetch_runs(self, store: Store, run_ids: Iterable[str]) -> LineageCounts:
        """Adopt the records of ``run_ids`` and their inputs (the versions this store has)."""
        lineage = Lineage(store)
        ids = set(run_ids)
        usages: list[Usage] = []
        for run_id in sorted(ids):
            known = {r.key for r in lineage.inputs(run_id)}
            for info in self.objects.list(inputs_prefix(run_id)):
                edge = self._edge(info.key)
                if edge is None:
                    continue
                version = lineage.version_by_digest(edge.artifact, edge.digest)
                if version is not None and version.key not in known:
                    usages.append(edge.usage(version))
        runs = self._runs_to_adopt(lineage, ids)
        lineage.adopt(runs, usages)
        return LineageCounts(len(runs), len(usages))

    def fetch_all_runs(self, store: Store) -> LineageCounts:
        """Adopt every run record of the remote (``artfs runs``)."""
        ids = {
            run_id
            for info in self.objects.list("runs/")
            if _is_run_id(run_id := info.key[len("runs/") :].removesuffix(".json"))
        }
        lineage = Lineage(store)
        runs = self._runs_to_adopt(lineage, ids)
        lineage.adopt(runs, [])
        return LineageCounts(len(runs), 0)

    def fetch_graph(
        self, store: Store, start: VersionRecord, direction: str, depth: int | None
    ) -> None:
        """Adopt what the lineage graph of ``start`` needs, layer by layer: each round fetches
        the records of the versions and runs the graph reached, which may reach further."""
        lineage = Lineage(store)
        seen: set[str] = set()
        for _ in range(_GRAPH_ROUNDS):
            nodes = build_graph(lineage, start, direction, depth).nodes
            fresh = [n for node_id, n in nodes.items() if node_id not in seen]
            if not fresh:
                return
            seen.update(n["id"] for n in fresh)
            self.fetch_versions(
                store, [lineage.version(n["ref"]) for n in fresh if n["kind"] == "version"]
            )
            self.fetch_runs(store, [n["run_id"] for n in fresh if n["kind"] == "run"])

    def _edge(self, key: str) -> RemoteEdge | None:
        try:
            data, _ = self.objects.get(key)
        except RemoteMissing:
            return None  # removed since the listing
        return RemoteEdge.decode(data, f"{key} on {self.describe()}")

    def _runs_to_adopt(self, lineage: Lineage, run_ids: Iterable[str]) -> list[RunRecord]:
        """Remote records of the runs this store lacks or knows only as running (implicit
        runs never end: one known here is not read again)."""
        found = []
        for run_id in sorted(run_ids):
            local = lineage.find_run(run_id)
            if local is not None and (local.state != RUNNING or local.implicit):
                continue
            key = run_key(run_id)
            try:
                data, _ = self.objects.get(key)
            except RemoteMissing:
                continue
            run = _decode_run(data, f"{key} on {self.describe()}")
            if local is None or run.state != RUNNING:
                found.append(run)
        return found
