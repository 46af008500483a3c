"""Commits: a scanned tree (or a version whose tree is built already, see artfs.store.delta)
becomes the next version of an artifact, or is reported as the identical version it is.

A commit writes and fsyncs its packs first, then adds the version in one index transaction;
in a remote-backed store it publishes the version on the default remote first and adds it
here at the remote's number. The store facade (:class:`artfs.store.repository.Store`) keeps
the public methods (``commit``, ``commit_built``, ``put``) and calls these functions; they
take the few parts of the store they use (:class:`CommitParts`) so that this module need
not import the facade.
"""

from __future__ import annotations

import dataclasses
import errno
import posixpath
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from artfs.errors import ArtfsError, Conflict, InputError, StoreError
from artfs.names import ArtifactName, Ref, check_alias, check_name
from artfs.store import catalog, statcache
from artfs.store.adoption import adopt
from artfs.store.catalog import ArtifactRecord, VersionRecord
from artfs.store.chunkstore import ChunkLocation, ChunkStore, NewChunks
from artfs.store.hashing import ChunkId, TreeId, ordered_digest, version_digest
from artfs.store.index import Index, Table, Txn
from artfs.store.ingest import Ingest, Progress, SourceTree
from artfs.store.manifest import FileEntry, encode_path
from artfs.store.ports import Publisher


class CommitParts(Protocol):
    """What a commit needs of the store (the facade, :class:`artfs.store.repository.Store`,
    has it all)."""

    home: Path
    index: Index
    chunks: ChunkStore

    def commit_lock(self) -> AbstractContextManager[None]: ...

    def publisher(self) -> Publisher | None: ...

    def stored_chunk(
        self, cid: ChunkId, pending: Mapping[ChunkId, ChunkLocation] | None = None
    ) -> tuple[bytes, int, int]: ...

    def tree_page(self, page: TreeId) -> bytes: ...

    def resolve(self, ref: Ref | str) -> VersionRecord: ...


@dataclass
class PutResult:
    record: VersionRecord
    created: bool  # False when identical content already existed as this version
    new_bytes: int = 0  # bytes appended to packs by this commit
    # A remote-backed store: the default remote's name and the chunk bytes sent to it.
    remote: str | None = None
    uploaded_bytes: int = 0


@dataclass(frozen=True)
class BuiltVersion:
    """A version whose tree is built already (an incremental commit, see artfs.store.delta):
    its pages, its digest, byte and file counts, and its entries on demand (a remote-backed
    store publishes the file list)."""

    tree: catalog.PreparedTree
    digest: str
    size: int
    files: int
    entries: Callable[[], list[FileEntry]]


def checked_draft(
    type_: str,
    aliases: list[str] | None,
    description: str | None,
    metadata: dict[str, Any] | None,
    tags: list[str] | None,
    ttl_seconds: float | None,
    logged_by: str | None,
) -> tuple[list[str], dict[str, Any]]:
    """A commit's aliases and fields (type, description, metadata, tags, logged_by,
    ttl_seconds) once their names are checked: InvalidName before anything is read."""
    aliases = [check_alias(a) for a in aliases or []]
    tags = [check_name(t, "tag") for t in tags or []]
    check_name(type_, "type")
    draft = dict(
        type=type_,
        description=description,
        metadata=metadata or {},
        tags=sorted(set(tags)),
        logged_by=logged_by,
        ttl_seconds=ttl_seconds,
    )
    return aliases, draft


def checked_target(store: CommitParts, art: ArtifactName, type_: str) -> Publisher | None:
    """The publisher of a commit of ``art`` as ``type_`` (None: a local store), once the
    artifact's type agrees and the remote, if any, answers: before any chunk is read."""
    with store.index.read() as txn:
        catalog.check_type(catalog.get_artifact(txn, art), art, type_)
    publisher = store.publisher()
    if publisher is not None:
        publisher.check(art, type_)
    return publisher


def commit(
    store: CommitParts,
    tree: SourceTree,
    art: ArtifactName,
    *,
    type_: str = "dataset",
    aliases: list[str] | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    ttl_seconds: float | None = None,
    logged_by: str | None = None,
    progress: Progress | None = None,
    parent: statcache.ParentPut | None = None,
) -> PutResult:
    """Store a scanned tree as the next version of ``art``, or report the identical one.
    With ``parent``, files the last put of the same source saw unchanged are not read, a
    source that is all as recorded is the recorded version at once, and the tree of the
    version the last put made is updated rather than a tree built (see
    :mod:`artfs.store.statcache`).

    Everything a user can get wrong is checked before the first chunk is written. In a
    remote-backed store the version is published on the default remote first and lands in
    the local index at the remote's number (see :func:`_commit_published`).
    """
    aliases, draft = checked_draft(
        type_, aliases, description, metadata, tags, ttl_seconds, logged_by
    )
    if not tree.listed:  # a scan's listings hold each path once, their parents too
        _check_unique(tree)
    tree.complete_dirs(time.time_ns())
    publisher = checked_target(store, art, type_)
    with store.commit_lock():
        writer = store.chunks.writer()
        try:
            plan = None
            if parent is not None and tree.listed:
                plan = parent.plan(store.index, tree, progress, whole=publisher is not None)
            if plan is not None and plan.unchanged is not None:
                writer.abort()
                result = _existing(store, art, plan.unchanged, aliases)
                return result
            with store.index.presence(Table.CHUNKS) as has_chunk:
                ingest = Ingest(writer, has_chunk, progress)
                read = ingest.run(tree.files if plan is None else plan.read)
            content = _content(tree, read, plan, parent)
            writer.commit()
            root = None
            if publisher is None:
                result, indexed, root = _commit_local(
                    store, tree, art, content, aliases, draft, ingest, plan is not None
                )
            else:
                result, indexed = _commit_published(
                    store, publisher, tree, art, content.entries, draft, ingest
                )
        except BaseException as exc:
            writer.abort()
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise StoreError(
                    f"no space left on the device holding {store.home}: "
                    "free some space (or run 'artfs gc') and try again"
                ) from None
            raise
        if not indexed:
            writer.abort()  # identical content: nothing new is referenced
        result.new_bytes = ingest.stored_bytes if indexed else 0
    if parent is not None:
        taken = read + (plan.reused if plan is not None else [])
        parent.record(store.index, result.record, result.created, root, taken)
    if publisher is not None:
        _publish_aliases(store, publisher, result, aliases)
    return result


def _existing(store: CommitParts, art: ArtifactName, number: int, aliases: list[str]) -> PutResult:
    """The version ``number`` as the result of a commit of its content: the aliases
    move to it, nothing else changes."""
    with store.index.write() as txn:
        for alias in aliases:
            catalog.set_alias(txn, art, alias, number)
        record = catalog.get_version(txn, art, number)
    assert record is not None
    return PutResult(record, created=False)


def _commit_local(
    store: CommitParts,
    tree: SourceTree,
    art: ArtifactName,
    content: _Content,
    aliases: list[str],
    draft: dict[str, Any],
    ingest: Ingest,
    need_tree: bool,
) -> tuple[PutResult, bool, TreeId | None]:
    """Add the version in one index transaction; whether the new chunks were indexed,
    and the root of the tree of ``content`` if it was built.

    The tree is built before the writer lock is taken, unless the content is a version
    already (an unchanged re-put): its pages exist, and building them again would cost
    0.4-0.75 s per 100,000 files for nothing, unless ``need_tree`` (a put with a parent
    records whether that version's tree is this content's).
    """
    with store.index.read() as txn:
        known = catalog.version_by_digest(txn, art, content.digest) is not None
    prepared = None if known and not need_tree else content.prepare(store.index)
    with store.index.write() as txn:
        _check_ready_chunks(txn, tree, ingest.new_chunks)
        result = _add_version(store, txn, art, content, aliases, draft, prepared)
        if result.created:
            _index_chunks(txn, ingest.new_chunks)
    return result, result.created, None if prepared is None else prepared.root


def commit_built(
    store: CommitParts,
    art: ArtifactName,
    built: BuiltVersion,
    ingest: Ingest,
    ready: list[FileEntry],
    aliases: list[str],
    draft: dict[str, Any],
) -> PutResult:
    """Add a version whose tree is built (its files ingested through ``ingest``, whose
    packs are committed; ``ready``: the entries it took from elsewhere, whose chunks must
    still be stored), as :func:`commit` adds one: identical content is no new version,
    a remote-backed store publishes first. The caller holds the store's commit lock."""
    publisher = store.publisher()
    taken = SourceTree(ready=ready)
    if publisher is not None:
        result, _ = _commit_published(store, publisher, taken, art, built.entries(), draft, ingest)
        _publish_aliases(store, publisher, result, aliases)
        return result
    content = _Content(built.digest, built.size, built.files, [])
    with store.index.write() as txn:
        _check_ready_chunks(txn, taken, ingest.new_chunks)
        result = _add_version(store, txn, art, content, aliases, draft, built.tree)
        if result.created:
            _index_chunks(txn, ingest.new_chunks)
    return result


def _commit_published(
    store: CommitParts,
    publisher: Publisher,
    tree: SourceTree,
    art: ArtifactName,
    entries: list[FileEntry],
    draft: dict[str, Any],
    ingest: Ingest,
) -> tuple[PutResult, bool]:
    """Publish the version, its chunks already in fsynced local packs, then index it here.

    The remote decides the number: the record is created there (create-only, retried on
    lost races) before the local transaction adds it at that number with its chunk
    locations, here and on the remote. A crash in between leaves the version on the remote
    only (the next refresh brings it here) and the local packs unreferenced (gc reclaims
    them). Identical content on the remote is no new version; it is added here if missing,
    with the chunks just stored. Returns the result and whether the new chunks were indexed
    (always: they hold the content of the version, wherever its record came from).
    """
    with store.index.read() as txn:
        _check_ready_chunks(txn, tree, ingest.new_chunks)
    record = _draft_record(art, entries, draft, number=0)
    prepared = catalog.prepare_tree(entries)
    record.tree = prepared.root.hex()
    published = publisher.publish(
        record,
        entries,
        lambda cid: store.stored_chunk(cid, ingest.new_chunks),
        lambda page: prepared.pages.get(page) or store.tree_page(page),
    )
    # Our tree, unless the remote held this content already with other attributes (its
    # record names its own tree: adopted without pages) or in the format from before trees
    # (its entries are built into a tree here).
    ours = published.record.tree == record.tree
    adopted = dataclasses.replace(published.record, tree=None) if ours else published.record
    with store.index.write() as txn:
        # Added here, or already here (a refresh adopted it meanwhile, or it was identical
        # content): either way the version holds this content, so the chunks just stored
        # are kept as its local copies.
        adopt(txn, adopted, published.entries, prepared if ours else None)
        _index_chunks(txn, ingest.new_chunks)
        for cid, where in published.remote_chunks.items():
            txn.put(Table.REMOTE_CHUNKS, cid, where)
        fresh = catalog.get_version(txn, art, published.record.number)
    assert fresh is not None
    result = PutResult(fresh, published.created, remote=published.remote)
    result.uploaded_bytes = published.uploaded_bytes
    return result, True


def _publish_aliases(
    store: CommitParts, publisher: Publisher, result: PutResult, aliases: list[str]
) -> None:
    """Move the aliases given at commit time, on the remote and then here. The version is
    committed by now: a failure says so and how to finish the job."""
    record = result.record
    try:
        for alias in aliases:
            publisher.move_alias(record.artifact, alias, record.number)
            with store.index.write() as txn:
                catalog.set_alias(txn, record.artifact, alias, record.number)
    except ArtfsError as exc:
        raise type(exc)(
            f"{record.ref} was committed, but an alias was not moved ({exc}): "
            f"run 'artfs alias {record.ref} ALIAS' again"
        ) from None
    result.record = store.resolve(Ref(record.artifact, record.version))


def _add_version(
    store: CommitParts,
    txn: Any,
    art: ArtifactName,
    content: _Content,
    aliases: list[str],
    draft: dict[str, Any],
    prepared: catalog.PreparedTree | None = None,
) -> PutResult:
    """``prepared``: the tree of ``content`` if built already (built here otherwise)."""
    artifact = catalog.get_artifact(txn, art)
    catalog.check_type(artifact, art, draft["type"])
    existing = catalog.version_by_digest(txn, art, content.digest)
    if existing is not None:
        for alias in aliases:
            catalog.set_alias(txn, art, alias, existing)
        record = catalog.get_version(txn, art, existing)
        assert record is not None
        return PutResult(record, created=False)
    if artifact is None:
        catalog.ensure_project(txn, art.project)
        tombstones = catalog.versions(txn, art, include_deleted=True)
        next_version = max((r.number for r in tombstones), default=-1) + 1
        artifact = ArtifactRecord(art.project, art.name, draft["type"], time.time(), next_version)
    record = _content_record(art, content, draft, artifact.next_version)
    if prepared is None:
        prepared = content.prepare(store.index)
    catalog.add_version(txn, record, [], prepared)
    for alias in aliases:
        catalog.set_alias(txn, art, alias, record.number)
    artifact.next_version += 1
    catalog.put_artifact(txn, artifact)
    fresh = catalog.get_version(txn, art, record.number)
    assert fresh is not None
    return PutResult(fresh, created=True)


def _digest(entries: list[FileEntry]) -> str:
    # Entries sorted by path, not (path, digest) pairs: at a million files the pairs were
    # ~110 MB at a put's peak, the sort keys ~55 MB.
    files = sorted((e for e in entries if not e.is_dir), key=_encoded_path)
    return ordered_digest((encode_path(e.path), e.digest) for e in files).hex()


def _encoded_path(entry: FileEntry) -> bytes:
    return encode_path(entry.path)


def _draft_record(
    art: ArtifactName, entries: list[FileEntry], draft: dict[str, Any], number: int
) -> VersionRecord:
    """The record of a new version from a commit's fields (type, description, metadata, tags,
    logged_by, ttl_seconds)."""
    return _content_record(art, _Content.of(entries), draft, number)


def _content_record(
    art: ArtifactName, content: _Content, draft: dict[str, Any], number: int
) -> VersionRecord:
    """The record of a new version of ``content`` from a commit's fields (type,
    description, metadata, tags, logged_by, ttl_seconds)."""
    fields = dict(draft)
    ttl = fields.pop("ttl_seconds")
    now = time.time()
    return VersionRecord(
        project=art.project,
        name=art.name,
        number=number,
        digest=content.digest,
        created=now,
        size=content.size,
        files=content.files,
        expires=None if ttl is None else now + ttl,
        **fields,
    )


@dataclass
class _Content:
    """A version's content as a commit has it: digest, bytes and files, and ``entries``:
    all of them, or (with a ``base`` tree) the changes to it, with the ``removed`` paths."""

    digest: str
    size: int
    files: int
    entries: list[FileEntry]
    base: TreeId | None = None
    removed: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, entries: list[FileEntry]) -> _Content:
        files = sum(not e.is_dir for e in entries)
        return cls(_digest(entries), sum(e.size for e in entries), files, entries)

    def prepare(self, index: Index) -> catalog.PreparedTree:
        """The tree of this content, built in memory (no write transaction held)."""
        if self.base is None:
            return catalog.prepare_tree(self.entries)
        changes: dict[str, FileEntry | None] = dict.fromkeys(self.removed)
        changes.update((e.path, e) for e in self.entries)
        with index.read() as txn:
            return catalog.prepare_update(txn, self.base, changes)


def _content(
    tree: SourceTree,
    read: list[FileEntry],
    plan: statcache.Plan | None,
    parent: statcache.ParentPut | None,
) -> _Content:
    """The content of a commit: ``read`` (the ingest's entries) and the rest of ``tree``,
    or with a ``plan`` of a put with a parent, what it takes from the record and its base."""
    if plan is None or parent is None:
        return _Content.of(read + tree.ready + tree.dirs)
    if plan.base is None:
        return _Content.of(read + plan.reused + tree.ready + tree.dirs)
    files = read + plan.reused
    digest = version_digest(list(parent.version_pairs(files))).hex()
    count = sum(len(listing.files) for listing in tree.listings)
    base = catalog.root_tree(plan.base)
    return _Content(digest, tree.total_bytes, count, files + plan.dirs, base, plan.removed)


def _check_unique(tree: SourceTree) -> None:
    """Every file path once, and no file path that is also a directory of another file."""
    seen: set[str] = set()
    for path in tree.paths():
        if path in seen:
            raise InputError(f"{path!r} is given twice: every path in a version must be unique")
        seen.add(path)
    # Each directory once, with one of its files (a directory of 250 files is one walk).
    for parent, path in {path.rpartition("/")[0]: path for path in seen}.items():
        while parent:
            if parent in seen:
                raise InputError(
                    f"{parent!r} is a file and also the directory of {path!r}: rename one"
                )
            parent = posixpath.dirname(parent)


def _index_chunks(txn: Txn, new: NewChunks) -> None:
    """Record where a commit's new chunks are, and the block digests of those that have them
    (see ``hashing.block_digests``), keeping what the index holds already."""
    for cid, loc in new.encoded():
        txn.put(Table.CHUNKS, cid, loc, overwrite=False)
    for cid, blocks in new.blocks.items():
        txn.put(Table.CHUNK_BLOCKS, cid, blocks, overwrite=False)


def _check_ready_chunks(txn: Txn, tree: SourceTree, new: NewChunks) -> None:
    """Entries taken from an earlier version (``new_draft``) point at chunks that gc may have
    collected since that version was deleted: a version must never point at missing data."""
    for entry in tree.ready:
        for ref in entry.chunks:
            if ref.chunk_id not in new and txn.get(Table.CHUNKS, ref.chunk_id) is None:
                raise Conflict(
                    f"{entry.path}: its data was removed by gc after the version it came from "
                    "was deleted; add the file again"
                )
