"""What the store looks like as a directory tree: nodes, attributes, listings and reads.

Pure: no pyfuse3 here. The daemon (``artfsd``) maps kernel requests onto a :class:`Vfs` and
turns the domain errors raised here into errno values in one place. The tree::

    /                         one directory per project
    /<project>/               one directory per artifact
    /<project>/<name>/        v0 ... vN (directories), aliases as symlinks (latest -> vN), staging/
    /<project>/<name>/vN/...  the files and folders of version N, read-only

Invariants:

- An inode number is a hash of what the node *is* (kind, project, artifact, version, path),
  so it is stable for the life of a mount even after the kernel forgets the node and looks it
  up again; the node table only holds nodes the kernel holds (lookup counts), so it stays
  bounded by the kernel's own inode cache whatever the size of the store.
- Everything inside a version is immutable: long timeouts, kernel page cache kept across opens.
  Artifact directories, aliases and the set of versions change under a running mount: short
  timeouts (``MUTABLE_TIMEOUT``), so ``artfs put`` shows up within about a second.
- So a version's directories are read from the index once: ``lookup``, ``readdir`` and
  ``getattr`` inside a version are served from cached listings (:mod:`artfs.fs.listings`),
  which also keep each child's node and attributes; the node table is still only what the
  kernel holds.
- A file handle carries the file's chunk list and the chunk locations resolved at open, with
  their packs held open (pinned) until release, so an open file keeps reading correctly after
  its version is deleted, also through gc, until it is closed. Every chunk is still verified.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NewType

from artfs.errors import CorruptData, InvalidName, NotFound
from artfs.fs.backing import AttrChange, join
from artfs.fs.errors import (
    BadRequest,
    CrossDevice,
    IsADirectory,
    NoAttribute,
    NotADirectory,
    NotASymlink,
    NotSupported,
    ReadOnly,
)
from artfs.fs.listings import Listing, ListingCache, ListingKey
from artfs.fs.reader import (
    DEFAULT_CACHE_BYTES,
    INLINE_LOAD_BYTES,
    READAHEAD_START_BYTES,
    ChunkCache,
    FileReader,
    ReadBuffer,
)
from artfs.fs.staging import StagedStat, StagingView, checked_name
from artfs.fs.staging_files import (
    BASE_FILE,
    CONTROL_FILE,
    REGISTER_FILE,
    STAGED_TIMEOUT,
    STORE_FILE,
    BaseRequest,
    CommitRequest,
)
from artfs.lineage import Lineage
from artfs.names import ArtifactName, check_name, parse_version
from artfs.store import catalog, manifest, staging
from artfs.store.catalog import COMMITTED, VersionRecord
from artfs.store.index import Table, Txn
from artfs.store.manifest import ChunkRef, FileEntry
from artfs.store.repository import PinnedChunks, PutResult, Store
from artfs.usage import UsageRecorder

Inode = NewType("Inode", int)
FileHandle = NewType("FileHandle", int)

ROOT_INODE = Inode(1)
# Nodes inside a version never change; an hour is what the kernel is told, "forever" in effect.
IMMUTABLE_TIMEOUT = 3600.0
# Artifact dirs, version presence and aliases: a new version shows within this plus a listing.
MUTABLE_TIMEOUT = 1.0
# cp and friends size their buffers from st_blksize; 128 KiB matches the kernel's FUSE reads.
BLOCK_SIZE = 128 << 10
STAGING = "staging"
XATTR_PREFIX = "user.artfs."
_XATTR_PREFIX_BYTES = XATTR_PREFIX.encode()


class Kind(enum.Enum):
    ROOT = "root"
    PROJECT = "project"
    ARTIFACT = "artifact"
    VERSION = "version"
    ALIAS = "alias"
    STAGING = "staging"  # MNT/proj/name/staging itself
    ENTRY = "entry"  # a file or directory inside a version
    STAGED = "staged"  # anything inside a staging directory (path relative to it)
    CONTROL = "control"  # MNT/proj/name/staging/.artfs-commit (virtual)
    REGISTER = "register"  # MNT/.artfs-register (virtual)
    STORE = "store"  # MNT/.artfs-store (virtual, read-only): the store's id


# Nodes whose operations go to the artifact's backing directory.
STAGING_KINDS = (Kind.STAGING, Kind.STAGED)


@dataclass(frozen=True, slots=True)
class NodeKey:
    """What a node is; its inode number is derived from this alone."""

    kind: Kind
    project: str = ""
    name: str = ""
    number: int = -1
    alias: str = ""
    path: str = ""

    def inode(self) -> Inode:
        if self.kind is Kind.ROOT:
            return ROOT_INODE
        text = "\0".join(
            (self.kind.value, self.project, self.name, str(self.number), self.alias, self.path)
        )
        digest = hashlib.blake2b(manifest.encode_path(text), digest_size=8).digest()
        # 62 bits, never 0 or the root's 1: staged nodes number from 2**62 up, st_ino is
        # signed in places (63 bits at most).
        return Inode((int.from_bytes(digest, "little") >> 2) | 2)


@dataclass(slots=True)
class Node:
    key: NodeKey
    record: VersionRecord | None = None  # VERSION and ENTRY nodes
    entry: FileEntry | None = None  # ENTRY nodes
    lookups: int = 0
    fixed_ino: int = 0  # STAGED nodes: a number from StagedPaths, kept across renames
    # The inode number once worked out: a lookup asks for it several times, a hash each.
    known_ino: int = field(default=0, repr=False, compare=False)
    # A directory inside a version: the key of its listing, once worked out.
    listing_key: ListingKey | None = field(default=None, repr=False, compare=False)
    # A node inside a version: its attributes, once made (they never change).
    known_attr: Attr | None = field(default=None, repr=False, compare=False)
    # A file inside a version: (version key, file id) of its usage edge, once worked out.
    known_usage: tuple[bytes, bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def ino(self) -> Inode:
        if not self.known_ino:
            self.known_ino = self.fixed_ino or self.key.inode()
        return Inode(self.known_ino)

    @property
    def immutable(self) -> bool:
        return self.key.kind is Kind.ENTRY

    @property
    def artifact(self) -> ArtifactName:
        return ArtifactName(self.key.project, self.key.name)


@dataclass(frozen=True, slots=True)
class Attr:
    """What ``stat`` shows, plus how long the kernel may cache it."""

    ino: Inode
    mode: int
    nlink: int
    size: int
    mtime_ns: int
    uid: int
    gid: int
    timeout: float
    atime_ns: int = -1  # -1: the mtime (version nodes keep one time)
    ctime_ns: int = -1
    blocks_512: int = -1  # -1: from the size
    rdev: int = 0  # device number of a device node

    @property
    def blocks(self) -> int:
        return self.blocks_512 if self.blocks_512 >= 0 else (self.size + 511) // 512


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: bytes
    attr: Attr
    next_id: int
    node: Node


@dataclass(frozen=True, slots=True)
class StatFs:
    """What ``statfs`` (``df``) shows for the whole mount: the figures of the filesystem that
    holds the store, where staged files are written and versions are stored."""

    block_size: int
    fragment_size: int
    blocks: int
    blocks_free: int
    blocks_available: int  # to unprivileged users
    files: int
    files_free: int
    files_available: int
    name_max: int


@dataclass
class _DirHandle:
    node: Node
    listing: Listing | None = None  # a version directory's, once read
    staged: list[tuple[str, Node, Attr]] | None = None  # a staged directory's, from offset 0


# --- the tree ---------------------------------------------------------------------------------


class Vfs:
    """The store as a read-only tree; every method is quick except chunk loads (see reads)."""

    def __init__(self, store: Store, cache: ChunkCache, *, uid: int, gid: int) -> None:
        self.store = store
        self.cache = cache
        self.listings = ListingCache()
        self.uid = uid
        self.gid = gid
        self.started_ns = time.time_ns()
        root = Node(NodeKey(Kind.ROOT), lookups=1)
        self._nodes: dict[Inode, Node] = {ROOT_INODE: root}
        self._files: dict[FileHandle, FileReader] = {}
        self._pins: dict[FileHandle, PinnedChunks] = {}
        self._dirs: dict[FileHandle, _DirHandle] = {}
        self._next_handle = 1
        # Staging (artfs.fs.staging): staged inodes, open staged and virtual files, commits.
        self.staging = StagingView(store, cache, relocate=self._relocate)

    @classmethod
    def create(
        cls, store: Store, *, cache_bytes: int = DEFAULT_CACHE_BYTES, lineage: bool = True
    ) -> Vfs:
        vfs = cls(
            store, ChunkCache(store.read_chunk, cache_bytes), uid=os.getuid(), gid=os.getgid()
        )
        if lineage:
            vfs.recorder = UsageRecorder(Lineage(store), may_write=vfs.may_write)
        return vfs

    # --- nodes and lookup counts ----------------------------------------------------------

    def node(self, ino: int) -> Node:
        found = self._nodes.get(Inode(ino))
        if found is None:
            raise NotFound(f"inode {ino} is not known (forgotten or never looked up)")
        return found

    def remember(self, node: Node) -> Node:
        """Count one more kernel reference to ``node`` (a lookup or a readdirplus entry)."""
        held = self._nodes.setdefault(node.ino, node)
        held.lookups += 1
        return held

    def forget(self, ino: int, count: int) -> None:
        node = self._nodes.get(Inode(ino))
        if node is None or node.key.kind is Kind.ROOT:
            return
        node.lookups -= count
        if node.lookups <= 0:
            node.lookups = 0  # a version's listing keeps the node: it may be taken up again
            del self._nodes[Inode(ino)]
            if node.fixed_ino:
                self.staging.forget(node.artifact, node.fixed_ino, node.key.path)

    @property
    def node_count(self) -> int:
        return len(self._nodes)

    def deleted_versions(self) -> list[tuple[Inode, bytes]]:
        """(artifact inode, ``vN``) of every version the kernel holds that has been deleted.

        Nothing looks a deleted version up again, so the kernel would keep it and every node
        beneath it for the hour-long entry timeout, and the node table with them (the soak
        grew by ~3 nodes per commit); the daemon invalidates these entries so it forgets them.
        One index get per version held.
        """
        found = []
        with self.store.index.read() as txn:
            for node in list(self._nodes.values()):
                key = node.key
                if key.kind is not Kind.VERSION:
                    continue
                record = catalog.get_version(txn, node.artifact, key.number)
                if record is None or record.state != COMMITTED:
                    parent = NodeKey(Kind.ARTIFACT, key.project, key.name).inode()
                    found.append((parent, f"v{key.number}".encode()))
                    assert node.record is not None
                    self.listings.drop_version(node.record.key)
        return found

    # --- attributes -----------------------------------------------------------------------

    def getattr(self, ino: int) -> Attr:
        node = self.node(ino)
        if node.entry is not None:  # inside a version: nothing to read
            return self._entry_attr(node, node.entry)
        with self.store.index.read() as txn:
            return self._attr(txn, node)

    def _attr(self, txn: Txn, node: Node) -> Attr:
        key = node.key
        if key.kind in STAGING_KINDS:
            return self._staged_attr(node)
        if key.kind is Kind.CONTROL:
            return self._control_attr(node)
        if key.kind is Kind.REGISTER:
            return self._make(node, stat.S_IFREG | 0o666, 0, self.started_ns, 1)
        if key.kind is Kind.STORE:
            size = len(self._store_file())
            return self._make(node, stat.S_IFREG | 0o444, size, self.started_ns, 1)
        if key.kind is Kind.ENTRY:
            assert node.entry is not None
            return self._entry_attr(node, node.entry)
        if key.kind is Kind.ALIAS:
            target, set_ns = self._alias_target(txn, node)
            return self._make(node, stat.S_IFLNK | 0o777, len(target), set_ns, 1)
        if key.kind is Kind.VERSION:
            assert node.record is not None
            return self._make(node, stat.S_IFDIR | 0o555, 0, int(node.record.created * 1e9), 2)
        # Root and project dirs take mkdir (a new project, a new artifact's staging).
        perm = 0o755 if key.kind in (Kind.ROOT, Kind.PROJECT) else 0o555
        return self._make(node, stat.S_IFDIR | perm, 0, self._dir_mtime(txn, node), 2)

    def _entry_attr(self, node: Node, entry: FileEntry) -> Attr:
        if node.known_attr is None:
            node.known_attr = self._new_entry_attr(node, entry)
        return node.known_attr

    def _new_entry_attr(self, node: Node, entry: FileEntry) -> Attr:
        perm = stat.S_IMODE(entry.mode) & ~0o222
        if entry.is_dir:
            return self._make(node, stat.S_IFDIR | perm, 0, entry.mtime_ns, 2)
        return self._make(node, stat.S_IFREG | perm, entry.size, entry.mtime_ns, 1)

    def _make(self, node: Node, mode: int, size: int, mtime_ns: int, nlink: int) -> Attr:
        timeout = IMMUTABLE_TIMEOUT if node.immutable else MUTABLE_TIMEOUT
        return Attr(node.ino, mode, nlink, size, mtime_ns, self.uid, self.gid, timeout)

    def _dir_mtime(self, txn: Txn, node: Node) -> int:
        key = node.key
        if key.kind is Kind.ARTIFACT:
            newest = catalog.latest_number(txn, node.artifact)
            record = None if newest is None else catalog.get_version(txn, node.artifact, newest)
            if record is not None:
                return int(record.created * 1e9)
            artifact = catalog.get_artifact(txn, node.artifact)
            return int(artifact.created * 1e9) if artifact else self.started_ns
        if key.kind is Kind.PROJECT:
            data = txn.get(Table.PROJECTS, key.project.encode())
            return int(json.loads(data)["created"] * 1e9) if data else self.started_ns
        return self.started_ns

    # --- lookup ---------------------------------------------------------------------------

    def lookup(self, parent: int, name: bytes) -> Attr:
        """The child ``name`` of ``parent``, counted as one kernel reference."""
        node = self.node(parent)
        if _in_version(node):
            # From the directory's cached listing: no transaction, a dict get.
            found = self._version_child(node, name)
            if found is None:
                raise NotFound(f"{manifest.decode_path(name)!r} does not exist here")
            listed = self.remember(found)
            assert listed.entry is not None
            return self._entry_attr(listed, listed.entry)
        text = manifest.decode_path(name)
        with self.store.index.read() as txn:
            child = self._child(txn, node, text)
            if child is None:
                raise NotFound(f"{text!r} does not exist here")
            attr = self._attr(txn, child)
        self.remember(child)
        return attr

    def _child(self, txn: Txn, node: Node, name: str) -> Node | None:
        key = node.key
        if name in (".", "..") or "/" in name:
            return None
        if key.kind is Kind.ROOT:
            if name == REGISTER_FILE:
                return Node(NodeKey(Kind.REGISTER))
            if name == STORE_FILE:
                return Node(NodeKey(Kind.STORE))
            known = txn.get(Table.PROJECTS, name.encode()) is not None
            if not known and not self.staging.has_project(name):
                return None
            return Node(NodeKey(Kind.PROJECT, name))
        if key.kind is Kind.PROJECT:
            art = _artifact_or_none(key.project, name)
            if art is None:
                return None
            if catalog.get_artifact(txn, art) is None and not self.staging.backing(art).exists():
                return None
            return Node(NodeKey(Kind.ARTIFACT, key.project, name))
        if key.kind in STAGING_KINDS:
            return self._staged_child(node, name)
        if key.kind is Kind.ARTIFACT:
            return self._artifact_child(txn, node, name)
        if _in_version(node):
            assert node.record is not None
            return self._version_child(node, manifest.encode_path(name), txn)
        raise NotADirectory(f"{key.path or key.alias} is not a directory")

    def _artifact_child(self, txn: Txn, node: Node, name: str) -> Node | None:
        key, art = node.key, node.artifact
        if name == STAGING:
            return Node(NodeKey(Kind.STAGING, key.project, key.name))
        number = parse_version(name)
        if number is not None:
            record = catalog.get_version(txn, art, number)
            if record is None or record.state != COMMITTED:
                return None
            return Node(NodeKey(Kind.VERSION, key.project, key.name, number), record=record)
        alias = Node(NodeKey(Kind.ALIAS, key.project, key.name, alias=name))
        try:
            self._alias_target(txn, alias)
        except NotFound:
            return None
        return alias

    def _entry_node(self, record: VersionRecord, entry: FileEntry) -> Node:
        key = NodeKey(Kind.ENTRY, record.project, record.name, record.number, path=entry.path)
        return Node(key, record=record, entry=entry)

    # --- symlinks -------------------------------------------------------------------------

    def readlink(self, ino: int) -> bytes:
        node = self.node(ino)
        if node.key.kind is Kind.STAGED:
            return self.staging.readlink(node.artifact, node.key.path)
        if node.key.kind is not Kind.ALIAS:
            raise NotASymlink("not a symbolic link")
        with self.store.index.read() as txn:
            return self._alias_target(txn, node)[0].encode()

    def _alias_target(self, txn: Txn, node: Node) -> tuple[str, int]:
        """(``vN``, when the alias was set in ns): the symlink's target and mtime."""
        art, alias = node.artifact, node.key.alias
        if catalog.get_artifact(txn, art) is None:
            raise NotFound(f"{art} no longer exists")
        found = catalog.alias_target(txn, art, alias)
        if found is None:
            raise NotFound(f"{art} has no alias {alias!r}")
        return f"v{found[0]}", found[1]

    # --- directories ----------------------------------------------------------------------

    def opendir(self, ino: int) -> FileHandle:
        node = self.node(ino)
        if node.key.kind in (Kind.ALIAS, Kind.CONTROL, Kind.REGISTER, Kind.STORE) or (
            node.key.kind is Kind.ENTRY and not _is_dir(node)
        ):
            raise NotADirectory(f"{node.key.path or node.key.alias} is not a directory")
        fh = self._new_handle()
        self._dirs[fh] = _DirHandle(node)
        return fh

    def releasedir(self, fh: int) -> None:
        self._dirs.pop(FileHandle(fh), None)

    def readdir(self, fh: int, start_id: int) -> Iterator[DirEntry]:
        """Entries after position ``start_id`` (0: from the start), in a stable order.

        A caller takes entries until it has no room, and calls :meth:`remember` for each it
        passed on. A version's directories are served from their cached listing (see
        :meth:`_listing`): positions are indexes into it, so nothing is listed twice or
        skipped when the caller resumes from any ``next_id``, also after a seekdir.
        """
        handle = self._dirs.get(FileHandle(fh))
        if handle is None:
            raise NotFound(f"directory handle {fh} is not open")
        node = handle.node
        if node.key.kind is Kind.VERSION or node.key.kind is Kind.ENTRY:
            yield from self._version_entries(handle, start_id)
            return
        if node.key.kind in STAGING_KINDS:
            yield from self._staged_entries(handle, start_id)
            return
        with self.store.index.read() as txn:
            children = self._small_listing(txn, node)
            for position, (name, child) in enumerate(children[start_id:], start_id + 1):
                try:
                    attr = self._attr(txn, child)
                except NotFound:
                    continue  # vanished between listing and stat (an alias removed)
                yield DirEntry(manifest.encode_path(name), attr, position, child)

    def _small_listing(self, txn: Txn, node: Node) -> list[tuple[str, Node]]:
        key = node.key
        if key.kind is Kind.ROOT:
            names = set(catalog.projects(txn)) | set(staging.projects_with_staging(self.store))
            return [(p, Node(NodeKey(Kind.PROJECT, p))) for p in sorted(names)]
        if key.kind is Kind.PROJECT:
            names = {a.name for a in catalog.artifacts(txn, key.project)}
            names |= set(staging.artifacts_with_staging(self.store, key.project))
            return [(n, Node(NodeKey(Kind.ARTIFACT, key.project, n))) for n in sorted(names)]
        if key.kind is Kind.ARTIFACT:
            return self._artifact_listing(txn, node)
        return self._staged_listing(node)

    def _artifact_listing(self, txn: Txn, node: Node) -> list[tuple[str, Node]]:
        key = node.key
        if catalog.get_artifact(txn, node.artifact) is None:
            return [(STAGING, Node(NodeKey(Kind.STAGING, key.project, key.name)))]
        records = catalog.versions(txn, node.artifact)
        listing: list[tuple[str, Node]] = [
            (r.version, Node(NodeKey(Kind.VERSION, key.project, key.name, r.number), record=r))
            for r in records
        ]
        aliases = sorted({a for r in records for a in r.aliases})
        listing += [(a, Node(NodeKey(Kind.ALIAS, key.project, key.name, alias=a))) for a in aliases]
        listing.append((STAGING, Node(NodeKey(Kind.STAGING, key.project, key.name))))
        return listing

    def _version_entries(self, handle: _DirHandle, start_id: int) -> Iterator[DirEntry]:
        node = handle.node
        assert node.record is not None
        if handle.listing is None:
            handle.listing = self._listing(node)
        listing = handle.listing
        for index in range(start_id, len(listing)):
            child = self._listed_node(node, listing, index)
            assert child.entry is not None
            attr = self._entry_attr(child, child.entry)
            yield DirEntry(listing.names[index], attr, index + 1, child)

    def _listed_node(self, parent: Node, listing: Listing, index: int) -> Node:
        """The node of child ``index`` of ``listing``, made once: the one the kernel holds,
        else the listing's (a node the kernel forgot is taken up again as it was)."""
        kept: Node | None = listing.children[index]
        if kept is None:
            assert parent.record is not None
            kept = self._entry_node(parent.record, listing.entry(index))
            kept.known_ino = _listed_inode(listing, kept.key)
            listing.children[index] = kept
        held = self._nodes.get(kept.ino)
        return kept if held is None else held

    def _version_child(self, node: Node, name: bytes, txn: Txn | None = None) -> Node | None:
        """The child ``name`` of a directory inside a version, from its listing; in a
        directory too large for the listing cache, from one index get."""
        assert node.record is not None
        if self.listings.too_large(self._listing_key(node)):
            path = manifest.decode_path(name)
            path = f"{node.key.path}/{path}" if node.key.path else path
            if txn is None:
                with self.store.index.read() as own:
                    entry = catalog.lookup(own, node.record, path)
            else:
                entry = catalog.lookup(txn, node.record, path)
            return None if entry is None else self._entry_node(node.record, entry)
        listing = self._listing(node, txn)
        index = listing.find(name)
        return None if index is None else self._listed_node(node, listing, index)

    def _listing_key(self, node: Node) -> ListingKey:
        key = node.listing_key
        if key is None:
            assert node.record is not None
            key = ListingKey(node.record.key, node.record.created, node.key.path)
            node.listing_key = key
        return key

    def _listing(self, node: Node, txn: Txn | None = None) -> Listing:
        """The cached listing of a directory inside a version, read on first use.

        Reading one walks the directory's tree pages, so the first lookup or readdir in a
        directory costs one pass over its entries and every later one none (a version never
        changes). One larger than the cache's whole budget is not kept: a directory handle
        keeps it while open, and lookups in it go through the tree (a page per level).
        ``txn``: an open read transaction to use."""
        assert node.record is not None
        key = self._listing_key(node)
        found = self.listings.get(key)
        if found is None:
            if txn is None:
                with self.store.index.read() as own:
                    found = Listing.read(own, node.record, key)
            else:
                found = Listing.read(txn, node.record, key)
            self.listings.put(found)
        return found

    # --- files ----------------------------------------------------------------------------

    def open(self, ino: int, flags: int, pid: int = 0) -> FileHandle:
        """A handle for reading. A small file (one chunk of up to ``INLINE_LOAD_BYTES``) whose
        bytes are at hand without waiting is read and verified now, once for all its reads
        (see :meth:`_small_content`); any other opening reads no content (only, for a file
        coded with a compression dictionary, the 32-byte id of the dictionary, see
        :meth:`Store.pin_chunks`).
        Staged and virtual files get handles from ``STAGED_FH_BASE`` up (see
        :meth:`open_other`)."""
        node = self.node(ino)
        if node.key.kind in (Kind.STAGED, Kind.CONTROL, Kind.REGISTER):
            return self.open_other(node, flags, pid)
        if node.key.kind is Kind.STORE:
            return FileHandle(self.staging.open_constant(self._store_file(), flags))
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT):
            raise ReadOnly("versions are read-only")
        if node.key.kind is not Kind.ENTRY or node.entry is None:
            raise IsADirectory("not a regular file")
        if node.entry.is_dir:
            raise IsADirectory(f"{node.entry.path} is a directory")
        fh = self._new_handle()
        content = self._small_content(node.entry)
        if content is not None:
            # Held whole by the handle: it reads after its version is deleted and gc ran,
            # with no pack pinned, and release has nothing to undo.
            self._files[fh] = FileReader.holding(node.entry, self.cache, content)
        else:
            self._files[fh] = self._pinned_reader(fh, node.entry)
        self._record_open(node, pid)
        return fh

    def _record_open(self, node: Node, pid: int) -> None:
        """Record that process ``pid`` (0: unknown) opened the version file ``node``."""
        if not pid or self.recorder is None:
            return
        usage = node.known_usage
        if usage is None:
            assert node.record is not None
            usage = node.known_usage = (node.record.key, _file_id(node))
        self.recorder.opened(pid, node.key.project, usage[0], usage[1])

    def _small_content(self, entry: FileEntry) -> bytes | None:
        """The verified content of a file of one small chunk (up to ``INLINE_LOAD_BYTES``) if
        it is at hand without waiting: in the chunk cache, or its pack bytes in the page cache
        (then decompressed, verified and cached here, once for every read of this open).
        None when it is not, or not a small file (the pinned path reads it, and says why a
        damaged chunk fails). Never waits for the disk or a remote, so it runs on the event
        loop: one index get for a file not cached. Measured with ``bench/opcost.py``, daemon
        CPU per cold small file (lookup, open, read, release) against the null filesystem
        went from 2.1x to 1.7x, and a warm open + release to the null filesystem's figure."""
        chunks = entry.chunks
        if not chunks:
            return b""
        if len(chunks) != 1 or chunks[0].length > INLINE_LOAD_BYTES:
            return None
        ref = chunks[0]
        data = self.cache.peek(ref)
        if data is not None or ref in self.cache:  # cached, or a worker is loading it
            return data if data is None or len(data) == entry.size else None
        location = self.store.chunk_location(ref.chunk_id)
        if location is None:  # held only on a remote
            return None
        try:
            data = self.store.read_pinned_cached(ref, PinnedChunks({ref.chunk_id: location}, []))
        except CorruptData:  # its pack is gone (gc ran since the lookup): pin afresh
            return None
        if data is None or len(data) != entry.size:  # a size mismatch: the read says so
            return None
        self.cache.put(ref, data)
        return data

    def _pinned_reader(self, fh: FileHandle, entry: FileEntry) -> FileReader:
        """A reader whose chunk locations are resolved now and their packs held open until
        release, so the handle keeps reading after its version is deleted and gc ran. One
        index get per chunk (2 and a 32-byte read for a dictionary-coded one)."""
        pins = self.store.pin_chunks(entry.chunks)
        if pins.packs:
            self._pins[fh] = pins
        store = self.store

        def load(ref: ChunkRef, following: Sequence[ChunkRef]) -> bytes:
            return store.read_pinned(ref, pins, following)

        def local(ref: ChunkRef) -> bool:
            return ref.chunk_id in pins.locations

        def load_cached(ref: ChunkRef) -> bytes | None:
            return store.read_pinned_cached(ref, pins)

        return FileReader(entry, self.cache, load, local, load_cached)

    def reference_entry(self, ino: int) -> FileEntry | None:
        """The entry of a reference file (content fetched from its URI), else None."""
        node = self.node(ino)
        entry = node.entry if node.key.kind is Kind.ENTRY else None
        return entry if entry is not None and entry.is_reference else None

    def open_reference(self, ino: int, copy: Path, pid: int = 0) -> FileHandle:
        """A read-only handle on the verified local copy of a reference file (the caller
        fetched it off the event loop with ``Store.reference_copy``)."""
        node = self.node(ino)
        fh = FileHandle(self.staging.open_copy(copy))
        if node.record is not None:
            self._record_open(node, pid)
        return fh

    def reader(self, fh: int) -> FileReader:
        found = self._files.get(FileHandle(fh))
        if found is None:
            raise NotFound(f"file handle {fh} is not open")
        return found

    def release(self, fh: int) -> None:
        self._files.pop(FileHandle(fh), None)
        pins = self._pins.pop(FileHandle(fh), None)
        if pins is not None:
            self.store.unpin_chunks(pins)

    @property
    def open_files(self) -> int:
        return len(self._files)

    def _new_handle(self) -> FileHandle:
        fh = FileHandle(self._next_handle)
        self._next_handle += 1
        return fh

    # --- extended attributes --------------------------------------------------------------

    def xattrs(self, ino: int) -> dict[str, bytes]:
        """Every ``user.artfs.*`` attribute of a node, by full name."""
        node = self.node(ino)
        key = node.key
        if key.kind is Kind.ENTRY:
            assert node.entry is not None
            if node.entry.is_dir:
                return {}
            return {XATTR_PREFIX + "digest": node.entry.digest.hex().encode()}
        if key.kind is Kind.VERSION:
            with self.store.index.read() as txn:
                fresh = catalog.get_version(txn, node.artifact, key.number)
            record = fresh if fresh is not None else node.record
            assert record is not None
            return {XATTR_PREFIX + k: v.encode() for k, v in _version_xattrs(record).items()}
        return {}

    def getxattr(self, ino: int, name: bytes) -> bytes:
        if not name.startswith(_XATTR_PREFIX_BYTES):
            # `ls -l` asks every file for security.selinux and system.posix_acl_access (the
            # kernel caches neither for FUSE): answered without building the node's set.
            self.node(ino)
            raise NoAttribute(f"no attribute {name!r}")
        value = self.xattrs(ino).get(name.decode("utf-8", "replace"))
        if value is None:
            raise NoAttribute(f"no attribute {name!r}")
        return value

    def _store_file(self) -> bytes:
        """What ``MNT/.artfs-store`` holds: the store's id and a newline."""
        return (self.store.store_id + "\n").encode()

    def statfs(self) -> StatFs:
        """The store filesystem's own figures, so tools that check free space before writing
        (into staging) see what they can write; before, 0 free made ``df`` show 100% full."""
        host = os.statvfs(self.store.home)
        return StatFs(
            host.f_bsize,
            host.f_frsize,
            host.f_blocks,
            host.f_bfree,
            host.f_bavail,
            host.f_files,
            host.f_ffree,
            host.f_favail,
            host.f_namemax,
        )

    # --- who may change the store through the mount --------------------------------------

    def check_writer(self, uid: int) -> None:
        """Refuse (``EACCES``) a change by a user who may not write the store.

        A mount shared with ``--allow-other`` is readable by everyone its modes allow, but only
        root, the daemon's own user and the owner of ``ARTFS_HOME`` may register runs, create
        projects and artifacts, change staging or commit: anyone else's change would land in a
        store they could not write themselves. Group or other write bits on ``ARTFS_HOME`` do
        not count (they say nothing of the index and packs inside). The daemon calls this
        before every such request, so a refused one records nothing.
        """
        if not self.may_write(uid):
            raise PermissionError(
                errno.EACCES, "only the store's owner or root may change it through the mount"
            )

    def may_write(self, uid: int) -> bool:
        """Whether ``uid`` may change the store: root, the daemon's user, the home's owner."""
        if uid in (0, self.uid):
            return True
        try:
            return uid == os.stat(self.store.home).st_uid
        except OSError:
            return False

    # --- staging: handed over to artfs.fs.staging by artifact and path --------------------

    @property
    def recorder(self) -> UsageRecorder | None:
        """Where usage and run registrations go (None: no lineage); staging shares it."""
        return self.staging.recorder

    @recorder.setter
    def recorder(self, recorder: UsageRecorder | None) -> None:
        self.staging.recorder = recorder

    def _relocate(self, ino: int, rel: str) -> None:
        """A held staged node is now reached by path ``rel`` (a rename, or the name of a
        hard-linked file it was reached by went)."""
        node = self._nodes.get(Inode(ino))
        if node is not None:
            node.key = replace(node.key, path=rel)

    def _staged_node(self, parent: Node, rel: str, ino: int | None = None) -> Node:
        """The node of staged path ``rel`` (``ino``: its number, if known)."""
        if ino is None:
            ino = self.staging.inode(parent.artifact, rel)
        held = self._nodes.get(Inode(ino))
        if held is not None:
            return held
        key = NodeKey(Kind.STAGED, parent.key.project, parent.key.name, path=rel)
        return Node(key, fixed_ino=ino)

    def _staged_attr(self, node: Node) -> Attr:
        found = self.staging.stat(node.artifact, node.key.path, node.ino)
        if found is None:
            mode, nlink, mtime = stat.S_IFDIR | 0o755, 2, self.started_ns
            return Attr(node.ino, mode, nlink, 0, mtime, self.uid, self.gid, STAGED_TIMEOUT)
        return self._attr_of(node, found)

    def _attr_of(self, node: Node, found: StagedStat) -> Attr:
        return Attr(
            node.ino,
            found.mode,
            found.nlink,
            found.size,
            found.mtime_ns,
            found.uid,
            found.gid,
            STAGED_TIMEOUT,
            found.atime_ns,
            found.ctime_ns,
            found.blocks_512,
            found.rdev,
        )

    def _control_attr(self, node: Node) -> Attr:
        root = self._staged_attr(Node(NodeKey(Kind.STAGING, node.key.project, node.key.name)))
        mode = stat.S_IFREG | (stat.S_IMODE(root.mode) & 0o666)
        return Attr(node.ino, mode, 1, 0, self.started_ns, root.uid, root.gid, STAGED_TIMEOUT)

    def _staged_child(self, node: Node, name: str) -> Node | None:
        if node.key.kind is Kind.STAGING and name == CONTROL_FILE:
            return Node(NodeKey(Kind.CONTROL, node.key.project, node.key.name))
        if node.key.kind is Kind.STAGING and name == BASE_FILE:
            return Node(NodeKey(Kind.CONTROL, node.key.project, node.key.name, alias=BASE_FILE))
        rel = join(node.key.path, name)
        ino = self.staging.child(node.artifact, rel)
        return None if ino is None else self._staged_node(node, rel, ino)

    def _staged_listing(self, node: Node) -> list[tuple[str, Node]]:
        return [(name, child) for name, child, _ in self._staged_attrs(node)]

    def _staged_attrs(self, node: Node) -> list[tuple[str, Node, Attr]]:
        """(name, node, attributes) of every entry of a staged directory, in name order."""
        if node.key.kind not in STAGING_KINDS:
            return []
        found = []
        for name, ino, st in self.staging.listing(node.artifact, node.key.path):
            child = self._staged_node(node, join(node.key.path, name), ino)
            found.append((name, child, self._attr_of(child, st)))
        return found

    def _staged_entries(self, handle: _DirHandle, start_id: int) -> Iterator[DirEntry]:
        """A staged directory's entries after ``start_id``: listed once per pass (a base
        directory of a based staging may be large), from a listing made at offset 0."""
        if handle.staged is None or start_id == 0:
            handle.staged = self._staged_attrs(handle.node)
        listed = handle.staged
        for position in range(start_id, len(listed)):
            name, child, attr = listed[position]
            yield DirEntry(manifest.encode_path(name), attr, position + 1, child)

    def _staged_dir(self, ino: int) -> Node:
        node = self.node(ino)
        if node.key.kind not in STAGING_KINDS:
            raise ReadOnly("only staging directories can be written")
        return node

    def _new_rel(self, parent: Node, name: bytes) -> str:
        """The staged path of a new entry ``name`` of ``parent`` (a name one may create)."""
        text = checked_name(name)
        if _is_control(parent, text):
            raise FileExistsError(errno.EEXIST, f"{text} is reserved")
        return join(parent.key.path, text)

    def open_other(self, node: Node, flags: int, pid: int) -> FileHandle:
        """Open a staged file (writers hold a shared flock) or a virtual control file."""
        key = node.key
        if key.kind is Kind.REGISTER:
            return FileHandle(self.staging.open_register(pid))
        if key.kind is Kind.CONTROL and key.alias == BASE_FILE:
            return FileHandle(self.staging.open_base_control(node.artifact, flags))
        if key.kind is Kind.CONTROL:
            return FileHandle(self.staging.open_control(node.artifact, flags, pid))
        fh = self.staging.open(node.artifact, key.path, node.ino, flags)
        read = self.staging.base_read(fh)
        if read is not None and pid and self.recorder is not None:
            # A base file is a version's file: its read is recorded like one.
            art, number = read.base.artifact, read.base.version
            entry = NodeKey(Kind.ENTRY, art.project, art.name, number, path=read.path)
            version = catalog.version_key(art, number)
            self.recorder.opened(pid, art.project, version, entry.inode().to_bytes(8, "big"))
        return FileHandle(fh)

    def copy_up_due(self, ino: int, flags: int) -> bool:
        """Whether opening ``ino`` with ``flags`` copies a base file up (see
        :meth:`copy_up`, which the daemon runs in a worker thread first)."""
        node = self.node(ino)
        if node.key.kind is not Kind.STAGED:
            return False
        return self.staging.copy_up_due(node.artifact, node.key.path, flags)

    def copy_up(self, ino: int) -> None:
        """Copy the base file ``ino`` up into the upper directory (blocking)."""
        node = self.node(ino)
        self.staging.copy_up(node.artifact, node.key.path)

    def base_reader(self, fh: int) -> FileReader | None:
        """The reader of a base file open through staging (read like a version's file)."""
        read = self.staging.base_read(fh)
        return None if read is None else read.reader

    def caching(self, fh: int) -> tuple[bool, bool]:
        """(keep_cache, direct_io) for a handle: version files keep the page cache, staged
        files do not, virtual files bypass it."""
        found = self.staging.caching(fh)
        return (True, False) if found is None else found

    def read_other(self, fh: int, offset: int, size: int) -> bytes:
        return self.staging.read(fh, offset, size)

    def write(self, fh: int, offset: int, data: bytes) -> int:
        return self.staging.write(fh, offset, data)

    def commit_due(self, fh: int) -> CommitRequest | BaseRequest | None:
        """After a write: the commit the control file now asks for, which the caller must run
        (:meth:`commit_control`) before answering the write. Committing on the write that
        completes the options, not on close, lets the daemon leave FLUSH unimplemented, so the
        kernel stops sending one on every close() of every file (about 20 us each here)."""
        return self.staging.commit_due(fh)

    def commit_control(self, control: CommitRequest | BaseRequest) -> PutResult | None:
        """Commit staging as the control file asked, or set its base as ``.artfs-base`` asked
        (blocking: run it in a worker thread); the outcome of a commit is kept for reading
        back, an error is raised as a Commit* error."""
        if isinstance(control, BaseRequest):
            self.staging.set_base(control)
            return None
        return self.staging.commit(control)

    def stale_entries(self, project: str, name: str) -> list[tuple[Inode, bytes]]:
        """(parent inode, name) of every entry the kernel may cache that a commit of
        ``project/name`` changed: staged paths (the commit removed them) and ``latest``."""
        root = NodeKey(Kind.STAGING, project, name).inode()
        found = self.staging.stale_entries(ArtifactName(project, name), root)
        found.append((NodeKey(Kind.ARTIFACT, project, name).inode(), b"latest"))
        return [(Inode(parent), leaf) for parent, leaf in found]

    def staged_fd(self, fh: int) -> int | None:
        return self.staging.staged_fd(fh)

    def release_other(self, fh: int) -> None:
        self.staging.release(fh)

    def create_file(
        self, parent: int, name: bytes, flags: int, mode: int, uid: int, gid: int, umask: int
    ) -> tuple[FileHandle, Attr]:
        node = self._staged_dir(parent)
        rel = self._new_rel(node, name)
        owner = self.staging.owner(uid, gid)
        fh, ino = self.staging.create(node.artifact, rel, flags, mode & ~umask, owner)
        child = self.remember(self._staged_node(node, rel, ino))
        return FileHandle(fh), self._staged_attr(child)

    def mkdir(self, parent: int, name: bytes, mode: int, uid: int, gid: int, umask: int) -> Attr:
        node = self.node(parent)
        text = manifest.decode_path(name)
        kind = node.key.kind
        if kind is Kind.ROOT:
            project = _checked(text, "project name")
            with self.store.index.read() as txn:
                if self._child(txn, node, project) is not None:
                    raise FileExistsError(errno.EEXIST, f"project {project} exists")
            self.store.create_project(project)
        elif kind is Kind.PROJECT:
            art = ArtifactName(node.key.project, _checked(text, "artifact name"))
            with self.store.index.read() as txn:
                if self._child(txn, node, art.name) is not None:
                    raise FileExistsError(errno.EEXIST, f"artifact {art} exists")
                known = txn.get(Table.PROJECTS, art.project.encode()) is not None
            if not known:
                self.store.create_project(art.project)
            staging.ensure(self.store, art)
        elif kind in STAGING_KINDS:
            rel = join(node.key.path, checked_name(name))
            self.staging.mkdir(node.artifact, rel, mode & ~umask, self.staging.owner(uid, gid))
        else:
            raise ReadOnly("only staging directories, projects and the root take new entries")
        return self.lookup(parent, name)

    def mknod(
        self, parent: int, name: bytes, mode: int, rdev: int, uid: int, gid: int, umask: int
    ) -> Attr:
        node = self._staged_dir(parent)
        rel = join(node.key.path, checked_name(name))
        self.staging.mknod(node.artifact, rel, mode & ~umask, rdev, self.staging.owner(uid, gid))
        return self.lookup(parent, name)

    def symlink(self, parent: int, name: bytes, target: bytes, uid: int, gid: int) -> Attr:
        node = self._staged_dir(parent)
        rel = join(node.key.path, checked_name(name))
        self.staging.symlink(node.artifact, rel, target, self.staging.owner(uid, gid))
        return self.lookup(parent, name)

    def unlink(self, parent: int, name: bytes, *, directory: bool = False) -> None:
        node = self._staged_dir(parent)
        text = checked_name(name)
        if _is_control(node, text):
            raise PermissionError(errno.EPERM, f"{text} cannot be removed")
        self.staging.unlink(node.artifact, join(node.key.path, text), directory=directory)

    def rename(self, old_parent: int, old: bytes, new_parent: int, new: bytes, flags: int) -> None:
        source, target = self.node(old_parent), self.node(new_parent)
        in_source, in_target = source.key.kind in STAGING_KINDS, target.key.kind in STAGING_KINDS
        if not in_source and not in_target:
            raise ReadOnly("versions are read-only")
        if not (in_source and in_target) or _art_key(source) != _art_key(target):
            raise CrossDevice("rename only within one artifact's staging")
        if flags & RENAME_EXCHANGE:
            raise BadRequest("RENAME_EXCHANGE is not supported in staging")
        names = [checked_name(n) for n in (old, new)]
        for parent_node, text in ((source, names[0]), (target, names[1])):
            if _is_control(parent_node, text):
                raise PermissionError(errno.EPERM, f"{text} cannot be renamed")
        old_rel = join(source.key.path, names[0])
        new_rel = join(target.key.path, names[1])
        noreplace = bool(flags & RENAME_NOREPLACE)
        self.staging.rename(source.artifact, old_rel, new_rel, noreplace=noreplace)

    def link(self, ino: int, new_parent: int, name: bytes) -> Attr:
        """A hard link in staging: every name shows one inode with the right link count."""
        node, target = self.node(ino), self.node(new_parent)
        if target.key.kind not in STAGING_KINDS:
            raise ReadOnly("only staging directories take new entries")
        if node.key.kind is not Kind.STAGED or _art_key(node) != _art_key(target):
            if node.key.kind in (Kind.STAGING, Kind.CONTROL):
                raise PermissionError(errno.EPERM, "cannot link this")
            raise CrossDevice("hard links only within one artifact's staging")
        new_rel = self._new_rel(target, name)
        self.staging.link(node.artifact, node.ino, node.key.path, new_rel)
        self.remember(node)  # the new entry is one more kernel reference
        return self._staged_attr(node)

    def setattr(self, ino: int, change: AttrChange, fh: int | None) -> Attr:
        node = self.node(ino)
        if node.key.kind in (Kind.CONTROL, Kind.REGISTER):
            return self.getattr(ino)  # the truncation of `echo > .artfs-commit`: nothing to do
        if node.key.kind not in STAGING_KINDS:
            raise ReadOnly("versions are read-only")
        self.staging.setattr(node.artifact, node.key.path, change, fh)
        return self._staged_attr(node)

    def refuse_change(self, ino: int, what: str) -> None:
        """What extended attributes get: EOPNOTSUPP in staging, EROFS else."""
        node = self.node(ino)
        if node.key.kind in STAGING_KINDS:
            raise NotSupported(f"{what} is not supported in staging")
        raise ReadOnly("versions are read-only")


def _version_xattrs(record: VersionRecord) -> dict[str, str]:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
    return {
        "ref": record.ref,
        "digest": record.digest,
        "type": record.type,
        "created": created,
        "aliases": ",".join(record.aliases),
        "description": record.description or "",
        "tags": ",".join(record.tags),
        "metadata": json.dumps(record.metadata, sort_keys=True),
        "logged_by": record.logged_by or "",
        "size": str(record.size),
        "files": str(record.files),
    }


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2  # renameat2 flags, as FUSE passes them


def _is_control(parent: Node, name: str) -> bool:
    """Whether ``name`` in ``parent`` is one of staging's control files."""
    return parent.key.kind is Kind.STAGING and name in (CONTROL_FILE, BASE_FILE)


def _art_key(node: Node) -> tuple[str, str]:
    return (node.key.project, node.key.name)


def _valid(name: str) -> bool:
    try:
        check_name(name)
    except InvalidName:
        return False
    return True


def _checked(name: str, what: str) -> str:
    try:
        return check_name(name, what)
    except InvalidName as exc:
        raise BadRequest(str(exc)) from None


def _artifact_or_none(project: str, name: str) -> ArtifactName | None:
    if not _valid(project) or not _valid(name):
        return None
    return ArtifactName(project, name)


def _file_id(node: Node) -> bytes:
    """What names a version's file in its usage edge: its inode number, a hash of the path."""
    return node.ino.to_bytes(8, "big")


def _listed_inode(listing: Listing, key: NodeKey) -> int:
    """``key.inode()`` of a child of ``listing``: the hash of the part of the key every entry
    of a version shares is made once per listing, and only the path is hashed per entry (a
    third of the time; a cold walk makes one per entry)."""
    if listing.hasher is None:
        shared = (key.kind.value, key.project, key.name, str(key.number), key.alias, "")
        text = manifest.encode_path("\0".join(shared))
        listing.hasher = hashlib.blake2b(text, digest_size=8)
    hasher = listing.hasher.copy()
    hasher.update(manifest.encode_path(key.path))
    return (int.from_bytes(hasher.digest(), "little") >> 2) | 2


def _is_dir(node: Node) -> bool:
    return node.entry is not None and node.entry.is_dir


def _in_version(node: Node) -> bool:
    """A version's root or a directory inside one (its children come from a listing)."""
    return node.key.kind is Kind.VERSION or (node.key.kind is Kind.ENTRY and _is_dir(node))


__all__ = [
    "DEFAULT_CACHE_BYTES",
    "READAHEAD_START_BYTES",
    "ROOT_INODE",
    "Attr",
    "ChunkCache",
    "DirEntry",
    "FileReader",
    "Kind",
    "ReadBuffer",
    "Vfs",
]
