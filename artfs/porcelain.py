"""The operations users name, shared by the CLI and the SDK (dulwich's ``porcelain`` is the model).

Each function is one thing a user asks for (put a tree, get a version, list, show a run's
lineage, push, pull, clone), composed from the store, lineage and remote layers. Nothing here
prints or parses arguments: results come back as records, and what a caller may want to tell
its user on the side (a remote that could not be read, a version not adopted) goes to a
``warn`` callable. The CLI prints; the SDK wraps records in its W&B-shaped objects.

Functions with ``refresh=True`` look at the store's default remote first (new versions, or the
runs and usage edges they show); if the remote cannot be read they ``warn`` and answer from
the local index. Without a default remote they never touch the network. ``artfs.remote`` is
imported inside the functions that use it, so a local store never loads obstore.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from artfs.errors import ArtfsError, NotFound
from artfs.lineage import Lineage, RunRecord, Usage, build_graph, check_run_id
from artfs.names import ArtifactName, Ref, check_name
from artfs.run_ends import settle
from artfs.run_metrics import Metrics, RunMetrics
from artfs.store import Store, delta, references, staging
from artfs.store.catalog import VersionRecord
from artfs.store.export import Diff, materialize, select
from artfs.store.ingest import Progress, SourceTree, scan
from artfs.store.manifest import FileEntry
from artfs.store.repository import Deletion, PutResult
from artfs.store.settings import RemoteConfig
from artfs.store.statcache import ParentPut

if TYPE_CHECKING:
    from artfs.objectstore import ObjectStore
    from artfs.remote.gc import RemoteGcReport
    from artfs.remote.lineage_sync import LineageCounts, RemoteLineage
    from artfs.remote.sync import PullResult, PushResult

Warn = Callable[[str], None]

RUN_ID_ENV = "ARTFS_RUN_ID"  # set by 'artfs run -- CMD' (or a container's -e) for its children


def _ignore(_message: str) -> None:
    """The default ``warn``: callers that refresh nothing have nothing to hear."""


# --- the run a command belongs to ----------------------------------------------------------


def current_run(store: Store, project: str) -> str | None:
    """The run named by ``ARTFS_RUN_ID`` (recorded on first sight if it came from elsewhere,
    e.g. a container's ``-e``), or None."""
    run_id = os.environ.get(RUN_ID_ENV)
    if not run_id:
        return None
    return Lineage(store).ensure_run(run_id, project).id


# --- storing versions -----------------------------------------------------------------------


def source_tree(path: str, *, checksum: bool = True) -> SourceTree:
    """What ``put`` stores from ``path``: the files below a local path, or references to the
    objects under an ``s3://bucket/prefix`` (hashed unless ``checksum`` is false)."""
    if path.startswith("s3://"):
        return SourceTree(ready=references.describe(path, checksum=checksum))
    return scan(Path(path))


def parent_of(path: str, art: ArtifactName, *, rehash: bool = False) -> ParentPut | None:
    """What the last put of the local ``path`` into ``art`` saw, so that files unchanged since
    (size, times, inode) are not read again (``rehash``: read them all); None for s3://.
    Taken before :func:`source_tree` scans, so a file changed during the scan is read next
    time."""
    if path.startswith("s3://"):
        return None
    return ParentPut.begin(art, Path(path), rehash=rehash)


def put(store: Store, tree: SourceTree, art: ArtifactName, **options: Any) -> PutResult:
    """Store ``tree`` (from :func:`source_tree`, or an SDK draft) as the next version of
    ``art``, or report the identical version. ``options`` are those of :meth:`Store.commit`
    (type_, aliases, description, metadata, tags, ttl_seconds, logged_by: the producing run,
    progress, parent: from :func:`parent_of`)."""
    return store.commit(tree, art, **options)


def put_onto(
    store: Store,
    base: VersionRecord,
    entries: Mapping[str, FileEntry],
    tree: SourceTree,
    art: ArtifactName,
    **options: Any,
) -> PutResult:
    """Store ``tree`` (an SDK draft started from version ``base``, whose files and
    directories by path are ``entries``) as the next version of ``art``, at the cost of what
    it changes: only new files are read, and the new tree is ``base``'s with the changes
    applied (:mod:`artfs.store.delta`). ``options`` are those of :func:`put` but ``parent``."""
    changes = delta.draft_changes(entries, tree)
    return delta.commit(store, art, staging.base_for(base), changes, **options)


def commit(store: Store, art: ArtifactName, **options: Any) -> PutResult:
    """Store the staging directory of ``art`` as its next version, logged by the current
    run (:func:`current_run`). ``options`` are those of :func:`artfs.store.staging.commit`
    (force, type_, aliases, description, metadata, tags)."""
    return staging.commit(store, art, logged_by=current_run(store, art.project), **options)


def stage_from(store: Store, art: ArtifactName, ref: Ref, *, reset: bool = False) -> staging.Base:
    """Base the staging of ``art`` on version ``ref``: it then shows that version, and a
    commit stores only what changed. A staging holding changes is refused unless ``reset``
    (which discards them)."""
    record = store.resolve(ref)
    base = staging.rebase(store, art, record, reset=reset)
    assert base is not None
    return base


def stage_empty(store: Store, art: ArtifactName) -> None:
    """Discard the staging of ``art`` and its base: it starts empty, as a new version from
    scratch."""
    staging.rebase(store, art, None, reset=True)


def stage_reset(store: Store, art: ArtifactName) -> staging.Base | None:
    """Discard the changes in the staging of ``art``; its base stays. Returns the base."""
    staging.reset(store, art)
    return staging.base_of(store, art)


def stage_changes(store: Store, art: ArtifactName) -> tuple[staging.Base | None, Diff]:
    """The base of ``art``'s staging and what a commit would change against it; NotFound for
    an artifact with neither a version nor a staging."""
    if (
        store.artifact(art) is None
        and not staging.path(store, art).is_dir()
        and staging.base_of(store, art) is None
    ):
        raise NotFound(
            f"{art} has no versions and no staging: write files into its staging on the mount "
            f"(MNT/{art}/staging), or base one on a version with 'artfs stage {art} --from REF'"
        )
    return staging.changes(store, art)


# --- reading versions -----------------------------------------------------------------------


def get_size(store: Store, record: VersionRecord, path_prefix: str | None = None) -> int:
    """The bytes :func:`get` writes at most (for a progress bar)."""
    return sum(e.size for e in select(store.files(record), path_prefix))


def get(
    store: Store,
    record: VersionRecord,
    dest: Path,
    *,
    path_prefix: str | None = None,
    allow_missing_references: bool = False,
    used_by: str | None = None,
    progress: Progress | None = None,
) -> list[FileEntry]:
    """Write the files of ``record`` (those under ``path_prefix``) below ``dest``, verified
    as written; files already there with the right digest stay. ``used_by`` is a run whose
    use of the version is recorded first."""
    if used_by is not None:
        use(store, used_by, record)
    return materialize(
        store,
        record,
        dest,
        path_prefix=path_prefix,
        progress=progress,
        allow_missing_references=allow_missing_references,
    )


def use(store: Store, run_id: str, record: VersionRecord) -> None:
    """Record that run ``run_id`` used version ``record`` (the usage edge)."""
    Lineage(store).use(run_id, record)


# --- listings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactListing:
    """One artifact of a project with its versions; ``type`` is None for one that exists
    only as a staging directory (made by mkdir through the mount, nothing committed yet)."""

    name: str
    type: str | None
    versions: list[VersionRecord]


def refresh_index(
    store: Store,
    *,
    project: str | None = None,
    artifact: ArtifactName | None = None,
    warn: Warn = _ignore,
) -> None:
    """Bring a remote-backed store's index up to date (for one project or artifact if given);
    if the remote cannot be reached, ``warn`` and go on with the local index. A store without
    a default remote: nothing to do."""
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import refresh as refresh_from

    config = store.default_remote()
    if config is None:
        return
    if project is not None:
        project = check_name(project, "project")
    try:
        refresh_from(store, open_remote(store, config), project=project, artifact=artifact)
    except ArtfsError as exc:
        warn(f"warning: remote {config.name} not refreshed ({exc}); listing this store")


def projects(store: Store, *, refresh: bool = False, warn: Warn = _ignore) -> list[str]:
    """Every project, by name, also one whose only artifacts are being staged (as the mount
    and :func:`artifacts` show it)."""
    if refresh:
        refresh_index(store, warn=warn)
    return sorted(set(store.projects()) | set(staging.projects_with_staging(store)))


def artifacts(
    store: Store, project: str, *, refresh: bool = False, warn: Warn = _ignore
) -> list[ArtifactListing]:
    """The artifacts of ``project``, those being staged without a version last."""
    if refresh:
        refresh_index(store, project=project, warn=warn)
    staged = staging.artifacts_with_staging(store, project)
    try:
        found = store.artifacts(project)
    except NotFound:
        if not staged and not staging.project_path(store, project).is_dir():
            raise
        found = []  # a project whose only artifacts are being staged, or made by mkdir
    known = {a.name for a, _ in found}
    return [ArtifactListing(a.name, a.type, vs) for a, vs in found] + [
        ArtifactListing(n, None, []) for n in staged if n not in known
    ]


def versions(
    store: Store, art: ArtifactName, *, refresh: bool = False, warn: Warn = _ignore
) -> list[VersionRecord]:
    """The versions of ``art``, oldest first (none for an artifact only being staged)."""
    if refresh:
        refresh_index(store, artifact=art, warn=warn)
    if store.artifact(art) is None and staging.path(store, art).is_dir():
        return []
    return store.versions(art)


# --- lineage --------------------------------------------------------------------------------


def _shared_lineage(
    store: Store, fetch: Callable[[RemoteLineage], object], refresh: bool, warn: Warn
) -> None:
    """In a remote-backed store, merge the remote's runs and usage edges that ``fetch`` asks
    for into the index first; if the remote fails, ``warn`` (the local ones stand)."""
    config = store.default_remote()
    if not refresh or config is None:
        return
    from artfs.remote.lineage_sync import RemoteLineage

    try:
        fetch(RemoteLineage.for_store(store, config))
    except ArtfsError as exc:
        warn(f"warning: lineage of remote {config.name} not read ({exc}); showing local")


def consumers(
    store: Store, record: VersionRecord, *, refresh: bool = False, warn: Warn = _ignore
) -> list[tuple[RunRecord, Usage]]:
    """The runs that used version ``record``, with what each read of it."""
    _shared_lineage(store, lambda shared: shared.fetch_versions(store, [record]), refresh, warn)
    return Lineage(store).consumers(record)


def runs(
    store: Store, project: str | None = None, *, refresh: bool = False, warn: Warn = _ignore
) -> list[RunRecord]:
    """The runs of ``project`` (of every project without one), a running run whose process
    is gone reported crashed."""
    _shared_lineage(store, lambda shared: shared.fetch_all_runs(store), refresh, warn)
    lineage = Lineage(store)
    return settle(lineage, lineage.runs(project))


def run(store: Store, run_id: str, *, refresh: bool = False, warn: Warn = _ignore) -> RunRecord:
    """One run (crashed if it is running but its process is gone)."""
    _shared_lineage(
        store, lambda shared: shared.fetch_runs(store, [check_run_id(run_id)]), refresh, warn
    )
    lineage = Lineage(store)
    (record,) = settle(lineage, [lineage.run(run_id)])
    return record


@dataclass(frozen=True)
class RunDetails:
    """A run with the versions it used and logged, and its metrics."""

    record: RunRecord
    inputs: list[VersionRecord]
    outputs: list[VersionRecord]
    metrics: Metrics


def run_details(
    store: Store,
    run_id: str,
    *,
    last: int | None = None,
    refresh: bool = False,
    warn: Warn = _ignore,
) -> RunDetails:
    """:func:`run` with its inputs, outputs, summary and the ``last`` history rows (all
    without ``last``)."""
    record = run(store, run_id, refresh=refresh, warn=warn)
    lineage = Lineage(store)
    return RunDetails(
        record,
        lineage.inputs(run_id),
        lineage.outputs(run_id),
        RunMetrics(store).metrics(run_id, last=last),
    )


def lineage_graph(
    store: Store,
    ref: str,
    direction: str,
    depth: int | None,
    *,
    refresh: bool = False,
    warn: Warn = _ignore,
) -> dict[str, Any]:
    """The lineage graph of ``ref``: ``up`` (what produced it, from what), ``down`` (who used
    it, what they made) or ``both``, at most ``depth`` edges away, as JSON-shaped data."""
    tracker = Lineage(store)
    start = tracker.version(ref)
    _shared_lineage(
        store, lambda shared: shared.fetch_graph(store, start, direction, depth), refresh, warn
    )
    return build_graph(tracker, start, direction, depth).to_json()


# --- remotes --------------------------------------------------------------------------------


def delete(
    store: Store, target: Ref | ArtifactName, *, force: bool = False, remote_name: str | None = None
) -> Deletion:
    """Delete a version (``Ref``) or a whole artifact. By default in this store (in a
    remote-backed one, on its default remote first, then here: see :meth:`Store.delete`);
    with ``remote_name`` ("" for the only one) naming a remote that is not the default, on
    that remote only, this store left alone. ``force`` deletes versions holding aliases."""
    backing = store.default_remote()
    if remote_name is None or (backing is not None and remote_name in ("", backing.name)):
        # An artifact this index has no record of may have a staging and no version (mkdir
        # on the mount, artfs stage): deleting it removes that staging if it holds nothing.
        unknown = target if isinstance(target, ArtifactName) else None
        if unknown is not None and store.artifact(unknown) is not None:
            unknown = None
        try:
            return store.delete(target, force=force)
        except NotFound:
            if unknown is not None and staging.remove_unversioned(store, unknown):
                staging.delete_empty_project(store, unknown.project)
                return Deletion([], set(), staging_removed=True)
            raise
    from artfs.remote.gc import delete_on_remote
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import remote_config

    config = remote_config(store, remote_name or None)
    deleted, _ = delete_on_remote(open_remote(store, config), target, force=force)
    return Deletion(deleted, set(), config.name)


def gc_remote(
    store: Store, grace_seconds: float, *, remote_name: str | None = None
) -> tuple[RemoteConfig, RemoteGcReport]:
    """Collect on remote ``remote_name`` (the only one without a name): remove the records
    of deleted versions, condemn unused packs and delete those condemned ``grace_seconds``
    ago. InvalidName for a grace period too short, before anything is read."""
    from artfs.remote.gc import collect
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import remote_config

    config = remote_config(store, remote_name)
    return config, collect(open_remote(store, config), grace_seconds)


@dataclass(frozen=True)
class Pushed:
    """What a push published: each version's result, and the lineage that went with them."""

    results: list[PushResult]
    lineage: LineageCounts


def push(store: Store, ref: Ref | None, *, remote_name: str | None = None) -> Pushed:
    """Publish version ``ref`` (every version without one) on remote ``remote_name`` (the
    only one without a name), then the runs and usage edges of what was pushed."""
    from artfs.remote.lineage_sync import RemoteLineage
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import push as push_one
    from artfs.remote.sync import push_all, remote_config

    target = open_remote(store, remote_config(store, remote_name))
    results = push_all(store, target) if ref is None else [push_one(store, target, ref)]
    shared = RemoteLineage(target.objects)
    pushed = [r.local for r in results]
    counts = shared.push_all(store) if ref is None else shared.push_versions(store, pushed)
    return Pushed(results, counts)


def _fetch_lineage(
    objects: ObjectStore, store: Store, records: list[VersionRecord], warn: Warn
) -> None:
    """Adopt the lineage of pulled or cloned versions; a failure leaves the versions in."""
    from artfs.remote.lineage_sync import RemoteLineage

    try:
        RemoteLineage(objects).fetch_versions(store, records)
    except ArtfsError as exc:
        warn(f"warning: the lineage of these versions was not read: {exc}")


def pull(
    store: Store, ref: Ref, *, remote_name: str | None = None, warn: Warn = _ignore
) -> PullResult:
    """Fetch version ``ref`` and its missing chunks (each hash-checked) from remote
    ``remote_name`` (the only one without a name), with its lineage."""
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import pull as pull_one
    from artfs.remote.sync import remote_config

    source = open_remote(store, remote_config(store, remote_name))
    result = pull_one(store, source, ref)
    _fetch_lineage(source.objects, store, [result.record], warn)
    return result


@dataclass(frozen=True)
class Cloned:
    """The versions a clone adopted, and the remote (now the default) they came from."""

    versions: list[VersionRecord]
    remote: RemoteConfig


def clone(
    store: Store,
    url: str,
    *,
    endpoint: str | None = None,
    region: str | None = None,
    name: str = "origin",
    warn: Warn = _ignore,
) -> Cloned:
    """Start this store from remote ``url``: every version into the index, no chunks, their
    lineage, and the remote the default (put and commit publish there). Of the store's
    default remote: a refresh. Versions that could not be adopted are passed to ``warn``
    (the rest is cloned; a later refresh tries them again)."""
    from artfs.objectstore import RemoteUrl
    from artfs.remote.publish import check_backing, has_versions
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import add_remote
    from artfs.remote.sync import refresh as refresh_from

    config = RemoteConfig(name, str(RemoteUrl.parse(url)), endpoint, region)
    backing = store.default_remote() == config
    if not backing:
        if has_versions(store):  # refused before anything is recorded
            check_backing(store, config)
        add_remote(store, name, url, endpoint, region, resume=True)
    source = open_remote(store, config)
    result = refresh_from(store, source)
    _fetch_lineage(source.objects, store, result.adopted, warn)
    for line in result.skipped:
        warn(f"warning: not adopted: {line}")
    if not backing:
        store.set_default_remote(config.name)
    return Cloned(result.adopted, config)
