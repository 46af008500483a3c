"""The store facade: one object per ``ARTFS_HOME`` that everything above the store layer uses.

Layout of a store directory::

    HOME/index/      the LMDB environment (catalogue, file trees, chunk locations)
    HOME/packs/      pack files of compressed chunks
    HOME/store.lock  commits hold it shared, gc exclusive (see artfs.store.locks)

A commit writes and fsyncs its packs first, then adds the version in one index transaction, so
a crash at any instant leaves either the whole version or none of it (plus unreferenced pack
bytes that gc reclaims).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from artfs.errors import (
    AliasesHeld,
    ArtfsError,
    Conflict,
    CorruptData,
    InputError,
    NotFound,
    StoreError,
)
from artfs.names import ArtifactName, Ref, check_alias, check_name
from artfs.store import adoption, catalog, references, settings, statcache, upgrade
from artfs.store.catalog import ArtifactRecord, VersionRecord
from artfs.store.chunkstore import ChunkLocation, ChunkStore, RemoteChunk
from artfs.store.hashing import ChunkId, TreeId, version_digest
from artfs.store.index import Index, Table, Txn
from artfs.store.ingest import Ingest, Progress, SourceTree, scan
from artfs.store.locks import file_lock
from artfs.store.manifest import ChunkRef, FileEntry, encode_path
from artfs.store.packs import LocalPackStore
from artfs.store.ports import ChunkSource, LineageSink, Publisher
from artfs.store.reads import PinnedChunks as PinnedChunks  # re-exported: Store's API uses it
from artfs.store.reads import VerifiedReads
from artfs.store.settings import RemoteConfig

# How often a long-lived process (the daemon) reads the default remote setting again.
REMOTE_RECHECK_SECONDS = 1.0


class RemotePorts(Protocol):
    """Makes a store's ports for one of its remotes (its default remote at the time: it may
    be set, switched or unset while a process runs)."""

    def chunk_source(self, store: Store, config: RemoteConfig) -> ChunkSource: ...

    def publisher(self, store: Store, config: RemoteConfig) -> Publisher: ...

    def lineage_sink(self, store: Store, config: RemoteConfig) -> LineageSink: ...


def default_home() -> Path:
    """``$ARTFS_HOME``, else ``$XDG_DATA_HOME/artfs``, else ``~/.local/share/artfs``."""
    env = os.environ.get("ARTFS_HOME")
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(data) / "artfs"


@dataclass
class PutResult:
    record: VersionRecord
    created: bool  # False when identical content already existed as this version
    new_bytes: int = 0  # bytes appended to packs by this commit
    # A remote-backed store: the default remote's name and the chunk bytes sent to it.
    remote: str | None = None
    uploaded_bytes: int = 0


@dataclass
class Deletion:
    """What :meth:`Store.delete` did: the versions deleted (on the default remote of a
    remote-backed store), those of them deleted in this store too, and that remote's name."""

    records: list[VersionRecord]
    here: set[str]  # refs deleted in this store
    remote: str | None = None


@dataclass
class GcReport:
    expired: list[str] = field(default_factory=list)  # refs deleted because their TTL passed
    kept_expired: list[str] = field(default_factory=list)  # expired but holding aliases
    # Why expired versions were not deleted (a remote-backed store whose remote is gone):
    # space is still reclaimed, expiry waits for the next gc.
    expiry_failed: str | None = None
    chunks_removed: int = 0
    packs_removed: int = 0
    packs_rewritten: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


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


@dataclass(frozen=True)
class VerifyProblem:
    ref: str
    path: str
    reason: str


@dataclass
class EditRequest:
    description: str | None = None
    metadata: dict[str, Any] | None = None
    add_tags: list[str] = field(default_factory=list)
    remove_tags: list[str] = field(default_factory=list)
    ttl_seconds: float | None = None
    clear_ttl: bool = False


class Store:
    """One store directory. Within a process, opening the same home twice returns the same
    object (LMDB forbids opening one environment twice in a process); it is closed when the
    last user closes it."""

    _open: ClassVar[dict[Path, Store]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, home: Path, index: Index, chunks: ChunkStore, ports: RemotePorts | None = None
    ) -> None:
        self.home = home
        self.index = index
        self.chunks = chunks
        # What a remote-backed store reads, publishes and shares lineage through (see
        # artfs.store.ports); None: a store that refuses what would need its remote.
        self.ports = ports
        self._lock_path = home / "store.lock"
        self._gate_path = home / "gc.gate"
        self._users = 1
        # Where chunks not held locally are read from (see remote_source); made on first use.
        self._remote_source: ChunkSource | None = None
        self._remote_config: RemoteConfig | None = None  # what _remote_source reads from
        self._remote_recheck_at = 0.0  # monotonic time to read the default remote again
        self._remote_lock = threading.Lock()
        self._store_id = ""  # set by open()
        # The format the store had when this process opened it (older ones are upgraded).
        self.opened_format = upgrade.FORMAT
        self.reads = VerifiedReads(index, chunks, self.remote_source)
        index.missing_page = self._lazy_page  # tree pages of versions adopted from a remote

    @classmethod
    def open(cls, home: Path | None = None, *, ports: RemotePorts | None = None) -> Store:
        """The store at ``home``; ``ports``: its remote's implementation of the store's ports
        (:func:`artfs.stores.open_store` hands them in). A store this process has open already
        is shared, and gets ``ports`` if it had none."""
        home = Path(home) if home is not None else default_home()
        with cls._registry_lock:
            key = home.resolve()
            store = cls._open.get(key)
            if store is not None:
                store._users += 1
                if store.ports is None:
                    store.ports = ports
                return store
            try:
                home.mkdir(parents=True, exist_ok=True)
                chunks = LocalPackStore.open(home / "packs")
            except OSError as exc:
                raise StoreError(f"cannot use {home} as the artfs store: {exc.strerror}") from None
            store = cls(home, Index.open(home / "index"), chunks, ports)
            try:
                store.opened_format = upgrade.ensure_current(store.index, home)
                store._identify()
            except BaseException:
                chunks.close()
                store.index.close()
                raise
            cls._open[key] = store
            return store

    def _identify(self) -> None:
        """Read the store's id, giving it one on its first open (see settings.store_id)."""
        with self.index.read() as txn:
            found = settings.store_id(txn)
        if found is None:
            with self.index.write() as txn:
                found = settings.ensure_store_id(txn)
        self._store_id = found

    @property
    def store_id(self) -> str:
        """This store's random id (32 hex digits): made once, never changed, shown by its
        mounts as ``MNT/.artfs-store`` so runs register only with their own store."""
        return self._store_id

    def close(self) -> None:
        with self._registry_lock:
            self._users -= 1
            if self._users > 0:
                return
            self._open.pop(self.home.resolve(), None)
        self.chunks.close()
        self.index.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def commit_lock(self) -> Iterator[None]:
        """Held by every commit; gc takes it exclusively (see artfs.store.locks)."""
        # Through the turnstile first: a waiting gc holds it, so new commits queue behind gc
        # instead of keeping the store lock shared forever under a steady stream of commits.
        with file_lock(self._gate_path, exclusive=False):
            pass
        with file_lock(self._lock_path, exclusive=False):
            yield

    @contextmanager
    def gc_lock(self) -> Iterator[None]:
        with (
            file_lock(self._gate_path, exclusive=True),
            file_lock(self._lock_path, exclusive=True),
        ):
            yield

    # --- reading the catalogue --------------------------------------------------------------

    def projects(self) -> list[str]:
        with self.index.read() as txn:
            return catalog.projects(txn)

    def create_project(self, project: str) -> None:
        """Record an empty project (``mkdir MNT/NEWPROJ``); an existing one is left as is."""
        check_name(project, "project name")
        with self.index.write() as txn:
            catalog.ensure_project(txn, project)

    def artifacts(self, project: str) -> list[tuple[ArtifactRecord, list[VersionRecord]]]:
        check_name(project, "project name")
        with self.index.read() as txn:
            if txn.get(Table.PROJECTS, project.encode()) is None:
                raise NotFound(f"project {project!r} does not exist: see 'artfs ls'")
            return [(a, catalog.versions(txn, a.artifact)) for a in catalog.artifacts(txn, project)]

    def artifact(self, art: ArtifactName) -> ArtifactRecord | None:
        with self.index.read() as txn:
            return catalog.get_artifact(txn, art)

    def versions(self, art: ArtifactName) -> list[VersionRecord]:
        with self.index.read() as txn:
            catalog.require_artifact(txn, art)
            return catalog.versions(txn, art)

    def resolve(self, ref: Ref | str) -> VersionRecord:
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        with self.index.read() as txn:
            return catalog.resolve(txn, ref)

    def files(self, record: VersionRecord) -> list[FileEntry]:
        """Every regular file of a version, sorted by path (checked as in :meth:`entries`)."""
        return [e for e in self.entries(record) if not e.is_dir]

    def entries(self, record: VersionRecord) -> list[FileEntry]:
        """Every file and directory of a version, sorted by path.

        The file list is checked against the version's digest and file count: damage that
        drops whole index entries (a torn LMDB page) is an error, never a shorter version.
        """
        with self.index.read() as txn:
            found = sorted(catalog.walk(txn, record), key=lambda e: encode_path(e.path))
        files = [(encode_path(e.path), bytes(e.digest)) for e in found if not e.is_dir]
        if len(files) != record.files or version_digest(files).hex() != record.digest:
            raise CorruptData(
                f"the file list of {record.ref} in the index is damaged: "
                "run 'artfs verify' and restore the store from a backup"
            )
        return found

    # --- reading content (artfs.store.reads) --------------------------------------------------

    def chunk_location(self, cid: ChunkId) -> ChunkLocation | None:
        return self.reads.chunk_location(cid)

    def read_chunk(self, ref: ChunkRef, following: Sequence[ChunkRef] = ()) -> bytes:
        """The verified bytes of a chunk, from the local packs or the default remote; see
        :meth:`VerifiedReads.read_chunk`."""
        return self.reads.read_chunk(ref, following)

    def dictionary(
        self,
        dict_id: ChunkId,
        pending: Mapping[bytes, ChunkLocation] | Mapping[ChunkId, ChunkLocation] | None = None,
    ) -> bytes:
        return self.reads.dictionary(dict_id, pending)

    def dictionary_id(self, loc: ChunkLocation) -> ChunkId | None:
        return self.reads.dictionary_id(loc)

    def pin_chunks(self, refs: Sequence[ChunkRef]) -> PinnedChunks:
        return self.reads.pin_chunks(refs)

    def unpin_chunks(self, pinned: PinnedChunks) -> None:
        self.reads.unpin_chunks(pinned)

    def read_pinned(
        self, ref: ChunkRef, pinned: PinnedChunks, following: Sequence[ChunkRef] = ()
    ) -> bytes:
        return self.reads.read_pinned(ref, pinned, following)

    def read_pinned_cached(self, ref: ChunkRef, pinned: PinnedChunks) -> bytes | None:
        return self.reads.read_pinned_cached(ref, pinned)

    def iter_file(self, entry: FileEntry) -> Iterator[bytes]:
        return self.reads.iter_file(entry)

    def stored_chunk(
        self, cid: ChunkId, pending: dict[ChunkId, ChunkLocation] | None = None
    ) -> tuple[bytes, int, int]:
        return self.reads.stored_chunk(cid, pending)

    def remote_locations(self, ids: Iterable[ChunkId]) -> dict[ChunkId, RemoteChunk]:
        return self.reads.remote_locations(ids)

    def remote_source(self) -> ChunkSource | None:
        """The reader of chunks held only on the default remote; None for a store without
        one. Made on first use (by this store's ports), so that a local store never loads
        the object-store client, and made again when the default remote changes (set,
        switched or unset while a daemon runs): the setting is read again at most every
        ``REMOTE_RECHECK_SECONDS``, as reading it costs about as much as reading a cached
        small chunk."""
        with self._remote_lock:
            now = time.monotonic()
            if now >= self._remote_recheck_at:
                config = self.default_remote()
                if config != self._remote_config:
                    self._remote_source = None
                    if config is not None:
                        self._remote_source = self.remote_ports(config).chunk_source(self, config)
                    self._remote_config = config
                self._remote_recheck_at = now + REMOTE_RECHECK_SECONDS
            return self._remote_source

    def remote_source_made(self) -> ChunkSource | None:
        """The reader :meth:`remote_source` made last, if any; never makes one."""
        return self._remote_source

    def remote_ports(self, config: RemoteConfig) -> RemotePorts:
        """The ports through which this store uses its remote ``config``; StoreError when it
        was opened without them (a process that opens stores with Store.open, not
        artfs.stores.open_store), before anything is read or changed."""
        if self.ports is None:
            raise StoreError(
                f"this store is backed by remote {config.name!r} but was opened without "
                "access to remotes (open it with artfs.stores.open_store)"
            )
        return self.ports

    def publisher(self) -> Publisher | None:
        """The publisher of this store's default remote; None for a store that is not
        remote-backed. A fresh one per operation: it holds no state worth keeping (pack
        indexes are cached on disk under ``HOME/remotes/NAME/``) and the default remote may
        have changed meanwhile."""
        config = self.default_remote()
        if config is None:
            return None
        return self.remote_ports(config).publisher(self, config)

    def record_remote_locations(self, where: Mapping[ChunkId, RemoteChunk]) -> None:
        """Record where chunks are on the default remote (see artfs.store.adoption)."""
        adoption.record_remote_locations(self.index, where)

    def recorded_remote_packs(self, remote: str) -> set[str]:
        """The packs of ``remote`` whose locations are all recorded (see artfs.store.adoption)."""
        return adoption.recorded_remote_packs(self.index, remote)

    def record_remote_packs(
        self, remote: str, packs: Mapping[str, Mapping[ChunkId, RemoteChunk]]
    ) -> None:
        """Record where the chunks and tree pages of ``packs`` are, and that they are (see
        artfs.store.adoption)."""
        adoption.record_remote_packs(self.index, remote, packs)

    def reference_copy(self, entry: FileEntry) -> Path:
        """A verified local copy of a reference entry's content, under ``HOME/refcache``."""
        return references.cached_copy(entry, self.home / "refcache")

    # --- writing ----------------------------------------------------------------------------

    def put(
        self, source: Path, art: ArtifactName, *, rehash: bool = False, **options: Any
    ) -> PutResult:
        """Store ``source`` (a file or directory) as the next version of ``art``, reading
        only the files that changed since the last put of ``source`` (all with ``rehash``)."""
        parent = statcache.ParentPut.begin(art, Path(source), rehash=rehash)
        return self.commit(scan(Path(source)), art, parent=parent, **options)

    def commit(
        self,
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
        the local index at the remote's number (see :meth:`_commit_published`).
        """
        aliases = [check_alias(a) for a in aliases or []]
        tags = [check_name(t, "tag") for t in tags or []]
        check_name(type_, "type")
        if not tree.listed:  # a scan's listings hold each path once, their parents too
            _check_unique(tree)
        tree.complete_dirs(time.time_ns())
        with self.index.read() as txn:
            catalog.check_type(catalog.get_artifact(txn, art), art, type_)
        publisher = self.publisher()
        if publisher is not None:
            publisher.check(art, type_)  # an unreachable remote fails before any chunk is read
        draft = dict(
            type=type_,
            description=description,
            metadata=metadata or {},
            tags=sorted(set(tags)),
            logged_by=logged_by,
            ttl_seconds=ttl_seconds,
        )
        with self.commit_lock():
            writer = self.chunks.writer()
            try:
                plan = None
                if parent is not None and tree.listed:
                    plan = parent.plan(self.index, tree, progress, whole=publisher is not None)
                if plan is not None and plan.unchanged is not None:
                    writer.abort()
                    result = self._existing(art, plan.unchanged, aliases)
                    return result
                with self.index.presence(Table.CHUNKS) as has_chunk:
                    ingest = Ingest(writer, has_chunk, progress)
                    read = ingest.run(tree.files if plan is None else plan.read)
                content = _content(tree, read, plan, parent)
                writer.commit()
                root = None
                if publisher is None:
                    result, indexed, root = self._commit_local(
                        tree, art, content, aliases, draft, ingest, plan is not None
                    )
                else:
                    result, indexed = self._commit_published(
                        publisher, tree, art, content.entries, draft, ingest
                    )
            except BaseException as exc:
                writer.abort()
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    raise StoreError(
                        f"no space left on the device holding {self.home}: "
                        "free some space (or run 'artfs gc') and try again"
                    ) from None
                raise
            if not indexed:
                writer.abort()  # identical content: nothing new is referenced
            result.new_bytes = ingest.stored_bytes if indexed else 0
        if parent is not None:
            taken = read + (plan.reused if plan is not None else [])
            parent.record(self.index, result.record, result.created, root, taken)
        if publisher is not None:
            self._publish_aliases(publisher, result, aliases)
        return result

    def _existing(self, art: ArtifactName, number: int, aliases: list[str]) -> PutResult:
        """The version ``number`` as the result of a commit of its content: the aliases
        move to it, nothing else changes."""
        with self.index.write() as txn:
            for alias in aliases:
                catalog.set_alias(txn, art, alias, number)
            record = catalog.get_version(txn, art, number)
        assert record is not None
        return PutResult(record, created=False)

    def _commit_local(
        self,
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
        with self.index.read() as txn:
            known = catalog.version_by_digest(txn, art, content.digest) is not None
        prepared = None if known and not need_tree else content.prepare(self.index)
        with self.index.write() as txn:
            _check_ready_chunks(txn, tree, ingest.new_chunks)
            result = self._add_version(txn, art, content, aliases, draft, prepared)
            if result.created:
                for cid, loc in ingest.new_chunks.items():
                    txn.put(Table.CHUNKS, cid, loc.encode(), overwrite=False)
        return result, result.created, None if prepared is None else prepared.root

    def commit_built(
        self,
        art: ArtifactName,
        built: BuiltVersion,
        ingest: Ingest,
        ready: list[FileEntry],
        aliases: list[str],
        draft: dict[str, Any],
    ) -> PutResult:
        """Add a version whose tree is built (its files ingested through ``ingest``, whose
        packs are committed; ``ready``: the entries it took from elsewhere, whose chunks must
        still be stored), as :meth:`commit` adds one: identical content is no new version,
        a remote-backed store publishes first. The caller holds :meth:`commit_lock`."""
        publisher = self.publisher()
        taken = SourceTree(ready=ready)
        if publisher is not None:
            result, _ = self._commit_published(
                publisher, taken, art, built.entries(), draft, ingest
            )
            self._publish_aliases(publisher, result, aliases)
            return result
        content = _Content(built.digest, built.size, built.files, [])
        with self.index.write() as txn:
            _check_ready_chunks(txn, taken, ingest.new_chunks)
            result = self._add_version(txn, art, content, aliases, draft, built.tree)
            if result.created:
                for cid, loc in ingest.new_chunks.items():
                    txn.put(Table.CHUNKS, cid, loc.encode(), overwrite=False)
        return result

    def _commit_published(
        self,
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
        with self.index.read() as txn:
            _check_ready_chunks(txn, tree, ingest.new_chunks)
        record = _draft_record(art, entries, draft, number=0)
        prepared = catalog.prepare_tree(entries)
        record.tree = prepared.root.hex()
        published = publisher.publish(
            record,
            entries,
            lambda cid: self.stored_chunk(cid, ingest.new_chunks),
            lambda page: prepared.pages.get(page) or self.tree_page(page),
        )
        # Our tree, unless the remote held this content already with other attributes (its
        # record names its own tree: adopted without pages) or in the format from before trees
        # (its entries are built into a tree here).
        ours = published.record.tree == record.tree
        adopted = dataclasses.replace(published.record, tree=None) if ours else published.record
        with self.index.write() as txn:
            # Added here, or already here (a refresh adopted it meanwhile, or it was identical
            # content): either way the version holds this content, so the chunks just stored
            # are kept as its local copies.
            adoption.adopt(txn, adopted, published.entries, prepared if ours else None)
            for cid, loc in ingest.new_chunks.items():
                txn.put(Table.CHUNKS, cid, loc.encode(), overwrite=False)
            for cid, where in published.remote_chunks.items():
                txn.put(Table.REMOTE_CHUNKS, cid, where)
            fresh = catalog.get_version(txn, art, published.record.number)
        assert fresh is not None
        result = PutResult(fresh, published.created, remote=published.remote)
        result.uploaded_bytes = published.uploaded_bytes
        return result, True

    def _publish_aliases(self, publisher: Publisher, result: PutResult, aliases: list[str]) -> None:
        """Move the aliases given at commit time, on the remote and then here. The version is
        committed by now: a failure says so and how to finish the job."""
        record = result.record
        try:
            for alias in aliases:
                publisher.move_alias(record.artifact, alias, record.number)
                with self.index.write() as txn:
                    catalog.set_alias(txn, record.artifact, alias, record.number)
        except ArtfsError as exc:
            raise type(exc)(
                f"{record.ref} was committed, but an alias was not moved ({exc}): "
                f"run 'artfs alias {record.ref} ALIAS' again"
            ) from None
        result.record = self.resolve(Ref(record.artifact, record.version))

    def _add_version(
        self,
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
            artifact = ArtifactRecord(
                art.project, art.name, draft["type"], time.time(), next_version
            )
        record = _content_record(art, content, draft, artifact.next_version)
        if prepared is None:
            prepared = content.prepare(self.index)
        catalog.add_version(txn, record, [], prepared)
        for alias in aliases:
            catalog.set_alias(txn, art, alias, record.number)
        artifact.next_version += 1
        catalog.put_artifact(txn, artifact)
        fresh = catalog.get_version(txn, art, record.number)
        assert fresh is not None
        return PutResult(fresh, created=True)

    # --- settings ---------------------------------------------------------------------------

    def settings(self) -> dict[str, bool]:
        with self.index.read() as txn:
            return settings.all_settings(txn)

    def set_setting(self, key: str, value: bool) -> None:
        with self.index.write() as txn:
            settings.put(txn, key, value)

    def entity(self) -> str | None:
        """The W&B entity this store answers for (``artfs config entity NAME``), else None."""
        with self.index.read() as txn:
            return settings.entity(txn)

    def set_entity(self, name: str | None) -> None:
        with self.index.write() as txn:
            settings.put_entity(txn, name)

    def remotes(self) -> list[RemoteConfig]:
        with self.index.read() as txn:
            return settings.remotes(txn)

    def remote(self, name: str) -> RemoteConfig:
        with self.index.read() as txn:
            config = settings.get_remote(txn, name)
        if config is None:
            raise NotFound(f"no remote named {name!r}: see 'artfs remote ls'")
        return config

    def add_remote(self, config: RemoteConfig) -> None:
        check_name(config.name, "remote name")
        with self.index.write() as txn:
            if settings.get_remote(txn, config.name) is not None:
                raise Conflict(f"a remote named {config.name!r} exists: see 'artfs remote ls'")
            settings.put_remote(txn, config)

    def default_remote(self) -> RemoteConfig | None:
        """The remote this store is backed by, if any (``artfs remote default``)."""
        with self.index.read() as txn:
            return settings.default_remote(txn)

    def set_default_remote(self, name: str | None) -> None:
        """Make remote ``name`` the default (NotFound if it is not configured); None unsets."""
        with self.index.write() as txn:
            if name is not None and settings.get_remote(txn, name) is None:
                raise NotFound(f"no remote named {name!r}: see 'artfs remote ls'")
            settings.put_default_remote(txn, name)
        self._remote_recheck_at = 0.0  # this process sees its own change at once

    # --- versions that come from elsewhere (artfs pull, clone) ------------------------------

    def missing_chunks(self, ids: Iterable[ChunkId]) -> list[ChunkId]:
        """The ids (in first-seen order, once each) that this store holds no chunk for."""
        return adoption.missing_chunks(self.index, ids)

    def adopt_version(
        self,
        record: VersionRecord,
        entries: list[FileEntry],
        chunks: Iterable[tuple[ChunkId, int, bytes, int]] = (),
        remote_chunks: Mapping[ChunkId, bytes] | None = None,
        pages: Mapping[TreeId, bytes] | None = None,
    ) -> bool:
        """Add a version made elsewhere at its own number; False when this store has it
        already (see :func:`artfs.store.adoption.adopt_version`)."""
        return adoption.adopt_version(self, record, entries, chunks, remote_chunks, pages)

    def remote_seen(self) -> dict[ArtifactName, set[int]]:
        """Per artifact, the version numbers the default remote listed at the last refresh."""
        return adoption.remote_seen(self.index)

    def mirror_remote(
        self,
        art: ArtifactName,
        seen: set[int],
        deleted: Mapping[int, str],
        aliases: dict[str, int],
    ) -> tuple[list[str], list[str]]:
        """Make the local index of ``art`` follow its remote, here only; returns (refs
        deleted, alias changes) (see :func:`artfs.store.adoption.mirror_remote`)."""
        return adoption.mirror_remote(self.index, art, seen, deleted, aliases)

    def tree_page(self, page: TreeId) -> bytes:
        """The bytes of a tree page of this store (read from the remote if the version is
        lazy); CorruptData when it cannot be had."""
        return adoption.tree_page(self.index, page)

    def has_tree_page(self, page: TreeId) -> bool:
        """Whether the index holds ``page`` (and so its whole subtree)."""
        return adoption.has_tree_page(self.index, page)

    def tree_entries(self, root: TreeId, pages: Mapping[TreeId, bytes]) -> list[FileEntry]:
        """Every entry of the tree at ``root``, its pages from ``pages`` or the index (a
        version about to be adopted), sorted by path."""
        return adoption.tree_entries(self.index, root, pages)

    def _lazy_page(self, txn: Txn, page: bytes) -> bytes | None:
        """A tree page the index lacks, through the default remote (the index's
        ``missing_page``; see :func:`artfs.store.adoption.lazy_page`). ``txn`` is the
        reader's: nothing is written here."""
        del txn  # the source looks the page up itself
        return adoption.lazy_page(self.remote_source(), page)

    # --- changing the catalogue -------------------------------------------------------------

    def set_alias(self, ref: Ref, alias: str) -> VersionRecord:
        """Point ``alias`` at ``ref``; in a remote-backed store on the remote first."""
        check_alias(alias)
        publisher = self.publisher()
        if publisher is not None:
            publisher.move_alias(ref.artifact, alias, self.resolve(ref).number)
        with self.index.write() as txn:
            record = catalog.resolve(txn, ref)
            catalog.set_alias(txn, ref.artifact, alias, record.number)
            return catalog.resolve(txn, Ref(ref.artifact, record.version))

    def adopt_alias(self, art: ArtifactName, alias: str, number: int) -> None:
        """Record here where an alias points on a remote (pull, clone, refresh): local only."""
        with self.index.write() as txn:
            catalog.set_alias(txn, art, check_alias(alias), number)

    def remove_alias(self, art: ArtifactName, alias: str) -> None:
        """Remove ``alias``; in a remote-backed store on the remote first."""
        check_alias(alias)
        publisher = self.publisher()
        if publisher is not None:
            self.versions(art)  # NotFound for an unknown artifact before the remote is asked
            publisher.remove_alias(art, alias)
        with self.index.write() as txn:
            catalog.require_artifact(txn, art)
            catalog.remove_alias(txn, art, alias)

    def edit(self, ref: Ref, request: EditRequest) -> VersionRecord:
        """Change description, metadata, tags or TTL. A remote-backed store refuses a change:
        a published record never changes (an edit that changes nothing is accepted)."""
        for tag in request.add_tags:
            check_name(tag, "tag")
        backing = self.default_remote()
        with self.index.write() as txn:
            record = catalog.resolve(txn, ref)
            edited = _edited(record, request)
            if backing is not None and edited != record:
                raise Conflict(
                    f"{record.ref} is published on remote {backing.name}, where a version never "
                    "changes: give description, metadata, tags and TTL when logging it"
                )
            catalog.put_version(txn, edited)
            return catalog.resolve(txn, Ref(ref.artifact, record.version))

    def delete_version(self, ref: Ref, *, force: bool = False) -> VersionRecord:
        """Delete a version (one holding custom aliases only with ``force``); see
        :meth:`delete` for a remote-backed store."""
        return self.delete(ref, force=force).records[0]

    def delete_artifact(self, art: ArtifactName) -> list[VersionRecord]:
        """Delete every version of ``art`` and the artifact; see :meth:`delete`."""
        return self.delete(art).records

    def delete(self, target: Ref | ArtifactName, *, force: bool = False) -> Deletion:
        """Delete a version (``Ref``) or a whole artifact.

        In a remote-backed store the remote goes first: the versions ``target`` names there get
        their tombstones (if the remote refuses or cannot be reached, nothing changes here),
        then :meth:`delete_mirrored` deletes the same versions here. So every machine loses
        them, and the same content committed again is a new version.
        """
        publisher = self.publisher()
        if publisher is None:
            if isinstance(target, Ref):
                records = [self._delete_local_version(target, force)]
            else:
                records = self._delete_local_artifact(target)
            return Deletion(records, {r.ref for r in records})
        if isinstance(target, Ref):
            deleted = [publisher.delete_version(target, force=force)]
        else:
            deleted = publisher.delete_artifact(target)
        here = self.delete_mirrored(deleted, whole=isinstance(target, ArtifactName))
        records = [dataclasses.replace(r, state=catalog.DELETED) for r in deleted]
        return Deletion(records, here, publisher.name)

    def delete_mirrored(self, deleted: list[VersionRecord], *, whole: bool = False) -> set[str]:
        """Delete here versions (of one artifact) that were deleted on a remote: each one this
        store holds at that number with the same content (a local version with other content
        stays). With ``whole`` the artifact goes too when no version is left. Local only;
        returns the refs deleted here."""
        if not deleted:
            return set()
        art = deleted[0].artifact
        done = set()
        with self.index.write() as txn:
            for record in deleted:
                mine = catalog.get_version(txn, art, record.number)
                if mine and mine.state == catalog.COMMITTED and mine.digest == record.digest:
                    catalog.mark_deleted(txn, mine)
                    done.add(mine.ref)
            artifact = catalog.get_artifact(txn, art)
            if whole and artifact is not None and not catalog.versions(txn, art):
                txn.delete(Table.ARTIFACTS, catalog.artifact_key(art))
                statcache.drop(txn, art)
        return done

    def _delete_local_version(self, ref: Ref, force: bool) -> VersionRecord:
        with self.index.write() as txn:
            record = catalog.resolve(txn, ref)
            held = [a for a in record.aliases if a != "latest"]
            if held and not force:
                raise AliasesHeld(
                    f"{record.ref} holds the alias(es) {', '.join(held)}: move them first "
                    "or pass --force to delete the version with its aliases"
                )
            catalog.mark_deleted(txn, record)
            return record

    def _delete_local_artifact(self, art: ArtifactName) -> list[VersionRecord]:
        with self.index.write() as txn:
            catalog.require_artifact(txn, art)
            deleted = catalog.versions(txn, art)
            for record in deleted:
                catalog.mark_deleted(txn, record)
            txn.delete(Table.ARTIFACTS, catalog.artifact_key(art))
            statcache.drop(txn, art)
            return deleted

    def expire(self, now: float | None = None) -> tuple[list[str], list[str]]:
        """Delete versions whose TTL has passed, except those holding a custom alias.

        In a remote-backed store each goes on the remote first (its tombstone, written only
        if the remote's version at that number holds the same content and no custom alias
        there), then here: an expired version disappears from every machine, not only from
        this index. Returns the refs deleted and the refs kept for their aliases.
        """
        now = time.time() if now is None else now
        publisher = self.publisher()
        if publisher is not None:
            return self._expire_published(publisher, now)
        deleted, kept = [], []
        with self.index.write() as txn:
            for project in catalog.projects(txn):
                for artifact in catalog.artifacts(txn, project):
                    for record in catalog.versions(txn, artifact.artifact):
                        if record.expires is None or record.expires > now:
                            continue
                        if any(a != "latest" for a in record.aliases):
                            kept.append(record.ref)
                        else:
                            catalog.mark_deleted(txn, record)
                            deleted.append(record.ref)
        return deleted, kept

    def _expire_published(self, publisher: Publisher, now: float) -> tuple[list[str], list[str]]:
        with self.index.read() as txn:
            due = [
                record
                for project in catalog.projects(txn)
                for artifact in catalog.artifacts(txn, project)
                for record in catalog.versions(txn, artifact.artifact)
                if record.expires is not None and record.expires <= now
            ]
        deleted, kept = [], []
        for record in due:
            if any(a != "latest" for a in record.aliases):
                kept.append(record.ref)
                continue
            try:
                ref = Ref(record.artifact, record.version)
                publisher.delete_version(ref, force=False, digest=record.digest)
            except NotFound:
                pass  # deleted there already: only this copy is left
            except Conflict:  # an alias there, or other content at that number
                kept.append(record.ref)
                continue
            deleted += sorted(self.delete_mirrored([record]))
        return deleted, kept


def _digest(entries: list[FileEntry]) -> str:
    files = [(encode_path(e.path), bytes(e.digest)) for e in entries if not e.is_dir]
    return version_digest(files).hex()


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


def _edited(record: VersionRecord, request: EditRequest) -> VersionRecord:
    """A copy of ``record`` with the edit applied."""
    edited = dataclasses.replace(record)
    if request.description is not None:
        edited.description = request.description
    if request.metadata is not None:
        edited.metadata = request.metadata
    edited.tags = sorted((set(record.tags) | set(request.add_tags)) - set(request.remove_tags))
    if request.clear_ttl:
        edited.expires = None
    elif request.ttl_seconds is not None:
        edited.expires = record.created + request.ttl_seconds
    return edited


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


def _check_ready_chunks(txn: Txn, tree: SourceTree, new: dict[ChunkId, ChunkLocation]) -> None:
    """Entries taken from an earlier version (``new_draft``) point at chunks that gc may have
    collected since that version was deleted: a version must never point at missing data."""
    for entry in tree.ready:
        for ref in entry.chunks:
            if ref.chunk_id not in new and txn.get(Table.CHUNKS, ref.chunk_id) is None:
                raise Conflict(
                    f"{entry.path}: its data was removed by gc after the version it came from "
                    "was deleted; add the file again"
                )
