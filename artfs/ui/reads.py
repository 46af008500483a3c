"""What each page of ``artfs ui`` shows, as plain JSON-ready data (no HTML, no web framework).

Every function takes an open :class:`~artfs.store.Store` and returns dicts and lists that the
JSON endpoints send as they are and the HTML templates draw. Where the CLI has a ``--json`` for
the same question the shapes are the CLI's (``artfs info``, ``artfs lineage --format json``,
``artfs runs show``), built by the same :mod:`artfs.views` functions.

Nothing here writes: :func:`open_readonly` opens the index read-only, so a write would fail in
LMDB rather than change the store. The UI does not refresh a remote-backed store from its
remote (``artfs ls`` and the mount do); it shows what the local index holds.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from artfs import views
from artfs.errors import InvalidName, NotFound
from artfs.lineage import BOTH, DOWN, UP, Lineage, build_graph, check_run_id
from artfs.names import ArtifactName, Ref, check_name, check_path
from artfs.run_metrics import RunMetrics
from artfs.store import Store, catalog
from artfs.store.catalog import ArtifactRecord, VersionRecord
from artfs.store.export import diff
from artfs.store.manifest import FileEntry
from artfs.stores import open_readonly_store

VERSIONS_PER_PAGE = 50
# A page of a directory listing: one LMDB range scan of this many keys, whatever the size of
# the directory, so a version of 1,000,000 files opens as fast as one of ten.
ENTRIES_PER_PAGE = 200
DIFF_SHOWN = 1000  # paths per kind of change listed (the counts are always whole)


def open_readonly(home: Path) -> Store:
    """The store at ``home`` with its index opened read-only (a write transaction fails)."""
    return open_readonly_store(home)


# --- home ---------------------------------------------------------------------------------


def _artifact_summary(art: ArtifactRecord, versions: list[VersionRecord]) -> dict[str, Any]:
    latest = versions[-1] if versions else None
    return {
        "project": art.project,
        "name": art.name,
        "type": art.type,
        "versions": len(versions),
        "latest": latest.version if latest else None,
        "size": latest.size if latest else 0,
        "updated": views.iso(latest.created if latest else art.created),
        "aliases": sorted({a for v in versions for a in v.aliases if a != "latest"}),
        "tags": sorted({t for v in versions for t in v.tags}),
    }


def _matches(summary: dict[str, Any], query: str) -> bool:
    words = [summary["name"], *summary["aliases"], *summary["tags"]]
    return any(query in word.lower() for word in words)


def project_artifacts(
    store: Store, project: str
) -> list[tuple[ArtifactRecord, list[VersionRecord]]]:
    """What :meth:`Store.artifacts` returns, read in one snapshot for the whole project."""
    check_name(project, "project name")
    with store.index.read() as txn:
        if not catalog.has_project(txn, project):
            raise NotFound(f"project {project!r} does not exist: see 'artfs ls'")
        return catalog.project_versions(txn, project)


def home(store: Store, query: str = "") -> dict[str, Any]:
    """Projects with their artifacts; with ``query``, only artifacts whose name, an alias or a
    tag contains it (case-insensitive), and only projects that have one."""
    needle = query.strip().lower()
    projects = []
    for project in store.projects():
        summaries = [_artifact_summary(a, vs) for a, vs in project_artifacts(store, project)]
        if needle:
            summaries = [s for s in summaries if _matches(s, needle)]
            if not summaries:
                continue
        projects.append({"name": project, "artifacts": summaries})
    return {"query": query, "projects": projects}


# --- artifact -----------------------------------------------------------------------------


def _page_number(page: int, pages: int) -> int:
    if page < 1 or page > max(pages, 1):
        raise NotFound(f"no page {page}: pages go from 1 to {max(pages, 1)}")
    return page


def artifact(store: Store, art: ArtifactName, page: int = 1) -> dict[str, Any]:
    """The versions of ``art``, newest first, ``VERSIONS_PER_PAGE`` a page."""
    versions = store.versions(art)  # NotFound names the missing project or artifact
    record = store.artifact(art)
    assert record is not None
    pages = max(1, -(-len(versions) // VERSIONS_PER_PAGE))
    page = _page_number(page, pages)
    newest_first = versions[::-1]
    shown = newest_first[(page - 1) * VERSIONS_PER_PAGE : page * VERSIONS_PER_PAGE]
    return {
        "project": art.project,
        "name": art.name,
        "type": record.type,
        "count": len(versions),
        "page": page,
        "pages": pages,
        "versions": [
            views.version_json(v) | {"tags": v.tags, "logged_by": v.logged_by} for v in shown
        ],
    }


# --- version ------------------------------------------------------------------------------


def resolve(store: Store, art: ArtifactName, selector: str) -> VersionRecord:
    """A committed version of ``art`` by ``vN`` or alias (NotFound says what exists)."""
    return store.resolve(Ref.parse(f"{art}:{selector}"))


def version_info(store: Store, record: VersionRecord) -> dict[str, Any]:
    """What ``artfs info --json`` prints: the record and the runs that consumed it."""
    data = views.version_info_json(record)
    consumers = Lineage(store).consumers(record)
    data["consumers"] = [views.consumer_json(run, usage) for run, usage in consumers]
    data["project"], data["name"] = record.project, record.name
    return data


def entry_json(entry: FileEntry) -> dict[str, Any]:
    """A file as ``artfs files --json`` prints it, plus its kind and reference URI."""
    return {
        "path": entry.path,
        "name": entry.name,
        "dir": entry.is_dir,
        "size": entry.size,
        "digest": None if entry.is_dir else entry.digest.hex(),
        "mode": oct(entry.mode),
        "uri": entry.uri,
    }


def _directory(text: str) -> str:
    text = text.strip("/")
    return check_path(text) if text else ""


def list_page(
    store: Store, record: VersionRecord, directory: str = "", after: str = ""
) -> tuple[list[FileEntry], str | None]:
    """Up to ``ENTRIES_PER_PAGE`` direct children of ``directory`` whose names sort after
    ``after``, and the name to continue after (None on the last page)."""
    with store.index.read() as txn:
        listed = catalog.list_dir(txn, record, directory, after=after)
        entries = list(itertools.islice(listed, ENTRIES_PER_PAGE + 1))
    more = len(entries) > ENTRIES_PER_PAGE
    entries = entries[:ENTRIES_PER_PAGE]
    return entries, (entries[-1].name if more else None)


def version(
    store: Store, record: VersionRecord, directory: str = "", after: str = ""
) -> dict[str, Any]:
    """The version page: its record (as ``artfs info --json``) and one page of one directory."""
    directory = _directory(directory)
    if directory:
        found = lookup(store, record, directory)
        if not found.is_dir:
            raise NotFound(f"{record.ref} has no directory {directory!r}")
    entries, next_after = list_page(store, record, directory, after)
    return {
        "info": version_info(store, record),
        "directory": directory,
        "after": after,
        "next_after": next_after,
        "entries": [entry_json(e) for e in entries],
        "others": [v.version for v in store.versions(record.artifact)[::-1]],
    }


def lookup(store: Store, record: VersionRecord, path: str) -> FileEntry:
    """One file or directory of a version (one index get)."""
    check_path(path)
    with store.index.read() as txn:
        entry = catalog.lookup(txn, record, path)
    if entry is None:
        raise NotFound(f"{record.ref} has no file {path!r}")
    return entry


def read_head(store: Store, entry: FileEntry, limit: int) -> bytes:
    """The first ``limit`` bytes of a file (only the chunks that cover them are read)."""
    if entry.is_dir:
        raise InvalidName(f"{entry.path} is a directory, not a file")
    parts, have = [], 0
    for block in store.iter_file(entry):
        parts.append(block)
        have += len(block)
        if have >= limit:
            break
    return b"".join(parts)[:limit]


def version_diff(store: Store, old: VersionRecord, new: VersionRecord) -> dict[str, Any]:
    """Files added, removed and changed from ``old`` to ``new`` (as ``artfs diff``)."""
    if old.artifact != new.artifact:
        raise InvalidName(f"{old.ref} and {new.ref} are versions of different artifacts")
    changes = diff(store, old, new)
    kinds = {"added": changes.added, "removed": changes.removed, "changed": changes.changed}
    return {
        "from": old.ref,
        "to": new.ref,
        "counts": {kind: len(paths) for kind, paths in kinds.items()},
        **{kind: paths[:DIFF_SHOWN] for kind, paths in kinds.items()},
    }


# --- lineage and runs ---------------------------------------------------------------------

DIRECTIONS = (UP, DOWN, BOTH)


def lineage(
    store: Store, art: ArtifactName, selector: str, direction: str = BOTH, depth: int | None = None
) -> dict[str, Any]:
    """The graph ``artfs lineage REF --format json`` prints (deleted versions by number too)."""
    if direction not in DIRECTIONS:
        raise InvalidName(f"invalid direction {direction!r}: use up, down or both")
    if depth is not None and depth < 1:
        raise InvalidName(f"invalid depth {depth}: give 1 or more, or leave it out for all")
    tracker = Lineage(store)
    start = tracker.version(f"{art}:{selector}")
    graph = build_graph(tracker, start, direction, depth).to_json()
    return graph | {"direction": direction, "depth": depth}


def run(store: Store, run_id: str, last: int | None = None) -> dict[str, Any]:
    """What ``artfs runs show RUN --json`` prints: the record, the versions it used and
    logged, its summary and its history (the last ``last`` rows only when given; the count
    of rows stays whole)."""
    tracker = Lineage(store)
    record = tracker.run(check_run_id(run_id))
    inputs = [r.ref for r in tracker.inputs(run_id)]
    outputs = [r.ref for r in tracker.outputs(run_id)]
    metrics = RunMetrics(store).metrics(run_id, last=last)
    return views.run_json(record, inputs, outputs) | views.metrics_json(metrics)


def run_history(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Every row of the run's history, in logged order (for its charts)."""
    return RunMetrics(store).rows(check_run_id(run_id))


def run_outline(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run's metrics outlined for charts as it logged them (see artfs.run_metrics)."""
    return RunMetrics(store).outline(check_run_id(run_id))
