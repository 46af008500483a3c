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
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from artfs.errors import (
    AliasesHeld,
    Conflict,
    CorruptData,
    NotFound,
    StoreError,
)
from artfs.names import ArtifactName, Ref, check_alias, check_name
from artfs.store import adoption, catalog, commits, references, settings, statcache, upgrade
from artfs.store.catalog import ArtifactRecord, VersionRecord
from artfs.store.chunkstore import ChunkLocation, ChunkStore, RemoteChunk
from artfs.store.commits import BuiltVersion as BuiltVersion  # re-exported
from artfs.store.commits import PutResult as PutResult  # re-exported
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


PACK_DIRECTORY = "packs"


def default_home() -> Path:
    """``$ARTFS_HOME``, else ``$XDG_DATA_HOME/artfs``, else ``~/.local/share/artfs``."""
    env = os.environ.get("ARTFS_HOME")
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(data) / "artfs"


@dataclass
class Deletion:
    """What :meth:`Store.delete` did: the versions deleted (on the default remote of a
    remote-backed store), those of them deleted in this store too, and that remote's name."""

    records: list[VersionRecord]
    here: set[str]  # refs deleted in this store
    remote: str | None = None
    staging_removed: bool = False  # an artifact with no version: its empty staging went


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
                chunks = LocalPackStore.open(home / PACK_DIRECTORY)
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
    def pack_directory(self) -> Path:
        """Where this store's packs are."""
        return self.home / PACK_DIRECTORY

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

    def drop_project_record(self, project: str) -> bool:
        """Delete the record of ``project`` if no artifact is left in it (``mkdir MNT/PROJ``,
        or its last artifact deleted): whether it went. Its runs keep their project name."""
        check_name(project, "project name")
        with self.index.write() as txn:
            if not catalog.has_project(txn, project) or catalog.artifacts(txn, project):
                return False
            txn.delete(Table.PROJECTS, project.encode())
            return True

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

    def repin_chunks(self, locations: dict[bytes, ChunkLocation]) -> PinnedChunks | None:
        return self.reads.repin_chunks(locations)

    def unpin_chunks(self, pinned: PinnedChunks) -> None:
        self.reads.unpin_chunks(pinned)

    def read_pinned(
        self, ref: ChunkRef, pinned: PinnedChunks, following: Sequence[ChunkRef] = ()
    ) -> bytes:
        return self.reads.read_pinned(ref, pinned, following)

    def read_pinned_cached(self, ref: ChunkRef, pinned: PinnedChunks) -> bytes | None:
        return self.reads.read_pinned_cached(ref, pinned)

    def chunk_blocks(self, cid: ChunkId) -> bytes | None:
        return self.reads.chunk_blocks(cid)

    def read_cached_unpinned(
        self, ref: ChunkRef, known: ChunkLocation | None = None
    ) -> tuple[bytes, ChunkLocation] | None:
        return self.reads.read_cached_unpinned(ref, known)

    def iter_file(self, entry: FileEntry) -> Iterator[bytes]:
        return self.reads.iter_file(entry)

    def stored_chunk(
        self, cid: ChunkId, pending: Mapping[ChunkId, ChunkLocation] | None = None
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
        """Store a scanned tree as the next version of ``art``, or report the identical one
        (see :func:`artfs.store.commits.commit`)."""
        return commits.commit(
            self,
            tree,
            art,
            type_=type_,
            aliases=aliases,
            description=description,
            metadata=metadata,
            tags=tags,
            ttl_seconds=ttl_seconds,
            logged_by=logged_by,
            progress=progress,
            parent=parent,
        )

    def commit_built(
        self,
        art: ArtifactName,
        built: BuiltVersion,
        ingest: Ingest,
        ready: list[FileEntry],
        aliases: list[str],
        draft: dict[str, Any],
    ) -> PutResult:
        """Add a version whose tree is built, as :meth:`commit` adds one (see
        :func:`artfs.store.commits.commit_built`). The caller holds :meth:`commit_lock`."""
        return commits.commit_built(self, art, built, ingest, ready, aliases, draft)

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
