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

import errno
import json
import os
import stat
import time
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import cast

from artfs.errors import ArtfsError, CorruptData, NotFound
from artfs.fs import direct
from artfs.fs.backing import join
from artfs.fs.errors import IsADirectory, NoAttribute, NotADirectory, NotASymlink, ReadOnly
from artfs.fs.listings import Listing, ListingCache, ListingKey
from artfs.fs.nodes import (
    ROOT_INODE,
    STAGING_KINDS,
    Attr,
    DirEntry,
    FileHandle,
    Inode,
    Kind,
    Node,
    NodeKey,
    StatFs,
    UsageNames,
    _artifact_or_none,
    _DirHandle,
    _in_version,
    _is_dir,
    entry_base,
)
from artfs.fs.reader import (
    DEFAULT_CACHE_BYTES,
    INLINE_LOAD_BYTES,
    PIN_ON_LOOP_CHUNKS,
    READAHEAD_START_BYTES,
    Chunk,
    ChunkCache,
    ChunkHolders,
    FileReader,
    Pinned,
    ReadBuffer,
    open_reader,
    pins_for,
)
from artfs.fs.staged_tree import StagedTree
from artfs.fs.staging import StagingView
from artfs.fs.staging_files import REGISTER_FILE, STORE_FILE
from artfs.lineage import Lineage
from artfs.names import parse_version
from artfs.store import catalog, manifest, staging, trees
from artfs.store.catalog import COMMITTED, VersionRecord
from artfs.store.chunkstore import ChunkLocation
from artfs.store.codec import Codec
from artfs.store.index import Txn
from artfs.store.manifest import ChunkRef, FileEntry
from artfs.store.repository import PinnedChunks, Store
from artfs.usage import FileUsage, UsageRecorder

# Nodes inside a version never change; an hour is what the kernel is told, "forever" in effect.
IMMUTABLE_TIMEOUT = 3600.0
# Artifact dirs, version presence and aliases: a new version shows within this plus a listing.
MUTABLE_TIMEOUT = 1.0
# cp and friends size their buffers from st_blksize; 128 KiB matches the kernel's FUSE reads.
BLOCK_SIZE = 128 << 10
STAGING = "staging"
XATTR_PREFIX = "user.artfs."
_XATTR_PREFIX_BYTES = XATTR_PREFIX.encode()
# A reader that has read a version file in order up to its end likely opens the next one
# (see next_file_chunks): the chunks of this much of its start (at most a quarter of the chunk
# cache, as a reader's own read-ahead window) load ahead of its open, so that the loader works
# on while the reader takes in the rest of its file (docs/perf.md, "Thirty-first pass"). The
# next file is looked for among this many entries after the one read, passing over the rest
# of a directory once this many in a row were too small.
NEXT_FILE_BYTES = 16 << 20
NEXT_FILE_STEPS = 64
NEXT_FILE_SMALL_IN_A_ROW = 8
# Guesses of the next file that were wrong in a row before nothing more is loaded on them (a
# reader taking files in a random order); the next right one starts the loads again.
NEXT_FILE_MISSES = 2


# --- the tree ---------------------------------------------------------------------------------


def _reusable(location: ChunkLocation) -> ChunkLocation | None:
    """``location`` if a later open may use it again with no index read (see
    :meth:`Store.repin_chunks`): not for a dictionary-coded chunk, whose dictionary is looked
    up with it."""
    return location if location.codec != Codec.ZSTD_DICT else None


class Vfs(StagedTree):
    """The store as a tree; every method is quick except chunk loads (see reads). Its staging
    half (staged nodes and every change) is :class:`artfs.fs.staged_tree.StagedTree`."""

    def __init__(self, store: Store, cache: ChunkCache, *, uid: int, gid: int) -> None:
        self.store = store
        self.cache = cache
        self.listings = ListingCache()
        self.uid = uid
        self.gid = gid
        self.started_ns = time.time_ns()
        root = Node(NodeKey(Kind.ROOT), lookups=1)
        self._nodes: dict[Inode, Node] = {ROOT_INODE: root}
        # Children of version directories the kernel got from readdir and holds, with no
        # node made for them yet: their listing (the child is ``ino - listing.base`` in it;
        # the counts are in the listing).
        self._listed: dict[Inode, Listing] = {}
        self._files: dict[FileHandle, FileReader] = {}
        self._pins: dict[FileHandle, PinnedChunks] = {}
        # Which open files hold each chunk (see FileReader's drop_behind), and the key each
        # handle of a version file holds them under (see open()).
        self.holders = ChunkHolders()
        self._holding: dict[FileHandle, int] = {}
        # Open handles of small version files (see content_for_kernel).
        self._small_handles: set[FileHandle] = set()
        self._dirs: dict[FileHandle, _DirHandle] = {}
        self._next_handle = 1
        self._usage_names = UsageNames()  # what names a file in its usage edge
        # The last guess of next_file_chunks (version key, path), and how many in a row the
        # files read to their ends since were not.
        self._next_guess: tuple[bytes, str] | None = None
        self._guess_misses = 0
        # Staging (artfs.fs.staging): staged inodes, open staged and virtual files, commits.
        self.staging = StagingView(store, cache, self.holders, relocate=self._relocate)

    @classmethod
    def create(
        cls, store: Store, *, cache_bytes: int = DEFAULT_CACHE_BYTES, lineage: bool = True
    ) -> Vfs:
        vfs = cls(
            store, ChunkCache(store.read_chunk, cache_bytes), uid=os.getuid(), gid=os.getgid()
        )
        if lineage:
            vfs.recorder = UsageRecorder(
                Lineage(store), may_write=vfs.may_write, usage_of=vfs._usage_of
            )
        # How packs are read (past the page cache or not), decided here, not at a reader's
        # first open: reading and searching the mount table took ~0.3 ms of a cold mount's
        # ~1.5 ms first open (docs/perf.md, "Twenty-ninth pass").
        direct.pack_ranges(store.pack_directory)
        return vfs

    # --- nodes and lookup counts ----------------------------------------------------------

    def node(self, ino: int) -> Node:
        found = self._nodes.get(Inode(ino))
        if found is None:
            found = self._take_listed(Inode(ino))
            if found is None:
                raise NotFound(f"inode {ino} is not known (forgotten or never looked up)")
        return found

    def remember(self, node: Node) -> Node:
        """Count one more kernel reference to ``node`` (a lookup or a readdirplus entry)."""
        ino = node.ino
        held = self._nodes.get(ino)
        if held is None:
            held = self._nodes[ino] = node
            held.lookups += self._listed_count(ino)  # from readdir before: those count too
        held.lookups += 1
        return held

    def remember_listed(self, listing: Listing, ino: int) -> None:
        """Count one more kernel reference to the child of ``listing`` whose inode is ``ino``,
        passed on by a lookup, without making its node: the first request for the inode makes
        it (:meth:`node`)."""
        self._remember_listed(listing, (ino,))

    def remember_listed_range(self, listing: Listing, start: int, stop: int) -> None:
        """:meth:`remember_listed` of children ``start`` to ``stop`` of ``listing`` (what one
        readdir passed on): a walk makes no node.

        When the kernel holds none of them yet (a directory's first readdir, as in a walk),
        each count is 0 (a child is counted only while in the listed table) and they are
        counted and entered in bulk, with no Python step per child: 1.1 -> 0.2 ms per 3,000
        (issue 17, eighth pass), and no object per child since the fourteenth."""
        base = listing_base(listing)
        inos = range(base + start, base + stop)  # numbered by position
        listed = self._listed
        if listed.keys().isdisjoint(inos) and self._nodes.keys().isdisjoint(inos):
            listing.counts[start:stop] = [1] * len(inos)
            listed.update(dict.fromkeys(cast(Iterable[Inode], inos), listing))
            return
        self._remember_listed(listing, inos)

    def _remember_listed(self, listing: Listing, inos: Iterable[int]) -> None:
        nodes, listed = self._nodes, self._listed
        for ino in inos:
            held = nodes.get(Inode(ino))
            if held is not None:
                held.lookups += 1
                continue
            # The listing that entered it first holds its count (one of the same directory,
            # read again after an eviction, numbers its children the same).
            holder = listed.setdefault(Inode(ino), listing)
            holder.counts[ino - listing_base(holder)] += 1

    def _take_listed(self, ino: Inode) -> Node | None:
        """The node of a child the kernel holds from readdir only, made now and moved into
        the node table with the references counted so far; None if the kernel holds none."""
        listing = self._listed.get(ino)
        if listing is None:
            return None
        node = self._made_child(listing, ino - listing_base(listing), ino)
        node.lookups += self._listed_count(ino)
        self._nodes[ino] = node
        return node

    def _listed_count(self, ino: Inode) -> int:
        """The kernel's references to listed child ``ino`` (0: none), taken out of the listed
        table for the node that is made for it now."""
        listing = self._listed.pop(ino, None)
        if listing is None:
            return 0
        index = ino - listing_base(listing)
        count, listing.counts[index] = listing.counts[index], 0
        return count

    def forget(self, ino: int, count: int) -> None:
        node = self._nodes.get(Inode(ino))
        if node is None:
            self._forget_listed(Inode(ino), count)
            return
        if node.key.kind is Kind.ROOT:
            return
        node.lookups -= count
        if node.lookups <= 0:
            node.lookups = 0  # a version's listing keeps the node: it may be taken up again
            node.in_kernel = False  # the kernel's pages of it went with its inode
            del self._nodes[Inode(ino)]
            if node.fixed_ino:
                self.staging.forget(node.artifact, node.fixed_ino, node.key.path)

    def _forget_listed(self, ino: Inode, count: int) -> None:
        listing = self._listed.get(ino)
        if listing is None:
            return
        index = ino - listing_base(listing)
        listing.counts[index] = max(listing.counts[index] - count, 0)
        if not listing.counts[index]:
            del self._listed[ino]

    @property
    def node_count(self) -> int:
        """Inodes the kernel holds: nodes made, and listed children it got from readdir only."""
        return len(self._nodes) + len(self._listed)

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
        mode, nlink, size = _shown(entry.kind, entry.mode, entry.size)
        return self._make(node, mode, size, entry.mtime_ns, nlink)

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
            created = catalog.project_created(txn, key.project)
            return self.started_ns if created is None else int(created * 1e9)
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
            known = catalog.has_project(txn, name)
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

    def releasedir(self, fh: int) -> Listing | None:
        """Close directory handle ``fh``; the listing it held, if it read one."""
        handle = self._dirs.pop(FileHandle(fh), None)
        return None if handle is None else handle.listing

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
        kept = self._made_child(listing, index)
        held = self._nodes.get(kept.ino)
        return kept if held is None else held

    def _made_child(self, listing: Listing, index: int, ino: int = 0) -> Node:
        """The listing's node for child ``index`` (``ino``: its inode if the caller has it,
        else it is hashed), made on first use."""
        kept: Node | None = listing.children[index]
        if kept is None:
            assert listing.record is not None
            kept = self._entry_node(listing.record, listing.entry(index))
            kept.known_ino = ino or listing_base(listing) + index
            listing.children[index] = kept
        return kept

    def listed(self, fh: int) -> tuple[Listing, int] | None:
        """For an open directory of a version: its listing, and the inode number of its first
        child (the others follow). readdir shows each child from its head (:meth:`Listing.heads`) as
        :data:`SHOWN_KINDS` says, with no node, entry, row or attributes object per child
        (pass the children sent on to :meth:`remember_listed_range`). None for any other
        directory: list those with :meth:`readdir`."""
        handle = self._dirs.get(FileHandle(fh))
        if handle is None:
            raise NotFound(f"directory handle {fh} is not open")
        node = handle.node
        if node.key.kind is not Kind.VERSION and node.key.kind is not Kind.ENTRY:
            return None
        if handle.listing is None:
            handle.listing = self._listing(node)
        return handle.listing, listing_base(handle.listing)

    def lookup_listed(self, parent: int, name: bytes) -> ListedRow | None:
        """:meth:`lookup` of a child of a version directory whose listing is cached, answered
        with its row (what readdir shows of it) and counted as :meth:`remember_listed` does:
        no node is made until its inode is used. None for any other parent: use
        :meth:`lookup`."""
        node = self.node(parent)
        if not _in_version(node) or self.listings.too_large(self._listing_key(node)):
            return None
        listing = self._listing(node)
        index = listing.find(name)
        if index is None:
            raise NotFound(f"{manifest.decode_path(name)!r} does not exist here")
        row = _listing_row(listing, index)
        self.remember_listed(listing, row[0])
        return row

    def _version_child(self, node: Node, name: bytes, txn: Txn | None = None) -> Node | None:
        """The child ``name`` of a directory inside a version, from its listing; in a
        directory too large for the listing cache, from the index (a page per level, its
        position counted on the way for its inode number)."""
        assert node.record is not None
        if self.listings.too_large(self._listing_key(node)):
            path = manifest.decode_path(name)
            path = f"{node.key.path}/{path}" if node.key.path else path
            if txn is None:
                with self.store.index.read() as own:
                    found = catalog.lookup_ranked(own, node.record, path)
            else:
                found = catalog.lookup_ranked(txn, node.record, path)
            if found is None:
                return None
            child = self._entry_node(node.record, found[1])
            child.known_ino = entry_base(node.record, node.key.path) + found[0]
            return child
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

    def child_listing_steps(
        self, listing: Listing, index: int, largest: int
    ) -> Generator[None, None, Listing | None]:
        """Read the listing of child directory ``index`` of ``listing`` into the cache a tree
        page at a time (see :meth:`Listing.read_in_steps`), unless it is cached, has more than
        ``largest`` children or is too large to keep; returns it (None when not kept)."""
        assert listing.record is not None
        path = join(listing.key.directory, manifest.decode_path(listing.names[index]))
        key = ListingKey(listing.key.version_key, listing.key.created, path)
        found = self.listings.get(key)
        if found is None and not self.listings.too_large(key):
            read = yield from Listing.read_in_steps(self.store.index, listing.record, key, largest)
            found = self.listings.get(key)  # read meanwhile by a lookup or a readdir
            if found is None and read is not None:
                self.listings.put(read)
                found = self.listings.get(key)
        return found

    # --- files ----------------------------------------------------------------------------

    def entry_to_prepare(self, ino: int, flags: int) -> FileEntry | None:
        """The entry of a file whose open with ``flags`` has slow work the caller should do
        first, off its event loop, else None: a reference file to fetch and verify
        (``entry.is_reference``: :meth:`Store.reference_copy`, then :meth:`open_reference`),
        or more than ``PIN_ON_LOOP_CHUNKS`` chunks to pin (:meth:`Store.pin_chunks`, handed
        to :meth:`open`). Version files opened for reading, and a based staging's base files
        (see :meth:`StagingView.base_to_read`)."""
        try:
            node = self.node(ino)  # made now for a child the kernel got from readdir
        except NotFound:
            return None  # open says so
        if node.key.kind is Kind.STAGED:
            entry = self.staging.base_to_read(node.artifact, node.key.path, flags)
        elif node.key.kind is Kind.ENTRY and not flags & _WRITING_FLAGS:
            entry = node.entry
        else:
            return None
        if entry is None or entry.is_dir:
            return None
        return entry if entry.is_reference or len(entry.chunks) > PIN_ON_LOOP_CHUNKS else None

    def open(
        self, ino: int, flags: int, pid: int = 0, pinned: Pinned | None = None, *, uid: int = -1
    ) -> FileHandle:
        """A handle for reading; it reads no content (only, for a file coded with a compression
        dictionary, the 32-byte id of the dictionary, see :meth:`Store.pin_chunks`) but a
        small file's, at its first open. A small file (one chunk of up to ``INLINE_LOAD_BYTES``) is
        held whole by its handle: at once if its chunk is cached, or at the inode's first open
        if its pack bytes are in the page cache (read and verified now, with no pin: see
        :meth:`_content_unpinned`), else once its first read loads it (see
        :meth:`FileReader.load_own`).
        Staged and virtual files get handles from ``STAGED_FH_BASE`` up (see
        :meth:`open_other`).

        ``pinned``: the entry :meth:`entry_to_prepare` named and its chunks, pinned off the
        event loop. The handle takes the pins over if it reads that entry (it holds them until
        release); else (the file is not what it was: a staged file copied up, or its staging
        based anew) they are unpinned here, as they are if the open fails. ``pid`` and ``uid``:
        the opener's (0 and -1: unknown), for its run's usage record."""
        if pinned is None:
            return self._open(ino, flags, pid, None, uid)
        pins = pinned[1]
        try:
            fh = self._open(ino, flags, pid, pinned, uid)
        except BaseException:  # a second unpin of the same pins does nothing
            self.store.unpin_chunks(pins)
            raise
        if self._pins.get(fh) is not pins and not self.staging.holds_pins(fh, pins):
            self.store.unpin_chunks(pins)
        return fh

    def _open(self, ino: int, flags: int, pid: int, pinned: Pinned | None, uid: int) -> FileHandle:
        node = self.node(ino)
        if node.key.kind in (Kind.STAGED, Kind.CONTROL, Kind.REGISTER):
            return self.open_other(node, flags, pid, pinned, uid=uid)
        if node.key.kind is Kind.STORE:
            return FileHandle(self.staging.open_constant(self._store_file(), flags))
        if flags & _WRITING_FLAGS:
            raise ReadOnly("versions are read-only")
        if node.key.kind is not Kind.ENTRY or node.entry is None:
            raise IsADirectory("not a regular file")
        entry = node.entry
        if entry.is_dir:
            raise IsADirectory(f"{entry.path} is a directory")
        fh = self._new_handle()
        chunks = entry.chunks
        small = not chunks or (len(chunks) == 1 and chunks[0].length <= INLINE_LOAD_BYTES)
        content = self._cached_content(entry) if small else None
        if small and content is None and not node.in_kernel:
            content = self._content_unpinned(node, entry)
        if content is not None:
            # Held whole by the handle: it reads after its version is deleted and gc ran,
            # with no pack pinned, and release has nothing to undo.
            self._files[fh] = FileReader.holding(entry, self.cache, content)
        elif small:
            # Its packs pinned now (it reads after its version is deleted and gc ran): a
            # first open found its pack bytes on disk, or a reopen, whose pages the kernel
            # kept, reads nothing. Its first read, if one comes, loads it.
            self._files[fh] = self._small_reader(fh, node, entry)
        if small:
            self._small_handles.add(fh)
        else:
            # Version files are opened with keep_cache: what a sequential reader has read is
            # in the kernel's page cache, and the reader drops it behind it. Handles of one
            # inode share those pages and hold the chunks once. One opened O_DIRECT reads past
            # the page cache, every read coming back here: it drops nothing, and holds the
            # chunks as a file of its own (minus its handle number).
            direct_io = bool(flags & os.O_DIRECT)
            drop_behind = None if direct_io else self.holders
            pins = pins_for(pinned, entry)
            self._files[fh] = self._pinned_reader(fh, entry, drop_behind, pins)
            holder = -fh if direct_io else ino
            self.holders.hold(holder, chunks)
            self._holding[fh] = holder
        try:
            self._record_open(node, pid, uid)
        except BaseException:  # the kernel gets no handle, and will not release it
            self.release(fh)
            raise
        return fh

    def content_for_kernel(self, ino: int, fh: int, flags: int) -> memoryview | None:
        """What to put into the kernel's page cache for ``ino`` as handle ``fh`` opens it
        (``pyfuse3.notify_store``), so that the kernel sends no read for it: a small file's
        whole content, verified, which its open read (see :meth:`_content_unpinned`; else
        None, and the first read loads it, see :meth:`FileReader.load_own`).

        The daemon asks at every open, also where pages cannot be stored: the inode's first
        open (until the kernel forgets it) marks the node, and from then on the kernel has its
        pages, given here or read (a version file is opened with ``keep_cache``), so a reopen
        reads nothing (see :meth:`_open`); if the kernel dropped them, a read comes back here.
        Not for one opened ``O_DIRECT``. And only while no other small file is open, for two
        reasons:

        - Safety. The kernel keeps a page locked while a read of it waits for the daemon
          (queued on the device, or loading), and a store waits for that lock, so a store
          must never be sent while a read of the inode may be pending. With no other handle
          of it open, none can be. The rule below is stricter (no other small file at all);
          loosening it needs a check of this inode's own handles.
        - Speed. With one reader the store saves the read's round trip, which the reader
          waited for. With several readers at once it cost more than it saved: their reads
          kept requests queued for the event loop, and without them it ran out of queued
          requests more often, each time paying a pass of trio's scheduler (docs/perf.md,
          "Twelfth pass").

        A load at open that failed (a read error, a dictionary that cannot be had) gives
        None: the first read loads the file again, and says why."""
        if flags & os.O_DIRECT or FileHandle(fh) not in self._small_handles:
            return None
        node = self._nodes.get(Inode(ino))
        if node is None or node.in_kernel or not node.entry or not node.entry.size:
            return None
        node.in_kernel = True  # from now on the kernel has its pages, given here or read
        if self._small_handles != {fh}:
            return None
        return self._files[FileHandle(fh)].held

    def _record_open(self, node: Node, pid: int, uid: int) -> None:
        """Record that process ``pid`` (0: unknown) of user ``uid`` (-1: unknown) opened the
        version file ``node``."""
        if pid and self.recorder is not None:
            self.recorder.note_open(pid, node.key.project, node, uid)

    def _usage_of(self, node: Node) -> FileUsage:
        """What names version file ``node`` in its usage edge, worked out once per node."""
        usage = node.known_usage
        if usage is None:
            usage = node.known_usage = self._usage_names.of(node)
        return usage

    def _cached_content(self, entry: FileEntry) -> Chunk | None:
        """The verified content of a file of at most one small chunk if the chunk cache holds
        it (another handle's thread load put it there), else None; never reads."""
        if not entry.chunks:
            return b""
        data = self.cache.peek(entry.chunks[0])
        return data if data is None or len(data) == entry.size else None

    def _content_unpinned(self, node: Node, entry: FileEntry) -> Chunk | None:
        """A small file's content, verified, read at an open the kernel has none of its pages
        for, if its stored bytes are in the page cache (else None, and its pack is pinned for
        the first read, see :meth:`_small_reader`). That content is wanted at once (given to
        the kernel, or read), and the handle holding it needs no pin: an index get replaces
        the pin, and release has nothing to undo. A reopen whose pages the kernel kept sends
        no read, so it reads nothing here. A failure gives None: the pinned reader's read says
        why."""
        try:
            found = self.store.read_cached_unpinned(entry.chunks[0], node.known_location)
        except (ArtfsError, OSError):  # a read error: the pinned reader's read says why
            return None
        if found is None:
            return None
        data, where = found
        node.known_location = _reusable(where)
        return data if len(data) == entry.size else None

    def _small_reader(self, fh: FileHandle, node: Node, entry: FileEntry) -> FileReader:
        """The reader of a small file that keeps its own content, its pack pinned now: with
        the location its first open found when it has one (a reopen costs no index read), else
        looked up, and kept for the next open unless the chunk needs a dictionary."""
        known = node.known_location
        pins = None
        if known is not None:
            pins = self.store.repin_chunks({entry.chunks[0].chunk_id: known})
        reader, pins = open_reader(self.store, entry, self.cache, keeps_own=True, pins=pins)
        if pins.packs:
            self._pins[fh] = pins
        found = pins.locations.get(entry.chunks[0].chunk_id)
        node.known_location = _reusable(found) if found else None
        return reader

    def _pinned_reader(
        self,
        fh: FileHandle,
        entry: FileEntry,
        drop_behind: ChunkHolders | None,
        pins: PinnedChunks | None = None,
    ) -> FileReader:
        """A reader whose chunk locations are resolved now (or were, off the event loop:
        ``pins``) and their packs held open until release, so the handle keeps reading after
        its version is deleted and gc ran (``drop_behind``: see :class:`FileReader`)."""
        reader, pins = open_reader(self.store, entry, self.cache, drop_behind, pins=pins)
        if pins.packs:
            self._pins[fh] = pins
        return reader

    def open_reference(
        self, ino: int, flags: int, entry: FileEntry, copy: Path, pid: int = 0, *, uid: int = -1
    ) -> FileHandle:
        """A read-only handle on the verified local copy of reference file ``entry``, which
        :meth:`entry_to_prepare` named (the caller fetched it off the event loop with
        ``Store.reference_copy``). A staged base file is opened as staging shows it now (the
        copy is used if that is still ``entry``)."""
        node = self.node(ino)
        if node.key.kind is Kind.STAGED:
            return self.open_other(node, flags, pid, fetched=(entry, copy), uid=uid)
        fh = FileHandle(self.staging.open_copy(copy))
        if node.record is not None:
            self._record_open(node, pid, uid)
        return fh

    def reader(self, fh: int) -> FileReader:
        found = self._files.get(FileHandle(fh))
        if found is None:
            raise NotFound(f"file handle {fh} is not open")
        return found

    def page_cache_inode(self, fh: int) -> int | None:
        """The inode whose page cache version-file handle ``fh`` reads through; None for one
        opened ``O_DIRECT``, and for any other handle (staged, virtual, a small file's)."""
        holder = self._holding.get(FileHandle(fh))
        return holder if holder is not None and holder > 0 else None

    def next_file_chunks(self, fh: int) -> list[tuple[ChunkRef, ChunkLocation]]:
        """The chunks to load for the file a reader of handle ``fh`` likely opens next, once
        it has read its file in order up to the end, and where they are: those that hold the
        first ``NEXT_FILE_BYTES`` (at most a quarter of the chunk cache) of the next file in
        the version's depth-first name order (what ``cp -r``, ``tar`` and readers of numbered
        shards open next) that is larger than ``INLINE_LOAD_BYTES`` (``trees.next_file`` says
        how far it looks). Chunks cached already, too small for the chunk loader, or not in
        this store's packs are left out; nothing for a handle opened ``O_DIRECT`` or not of a
        version file.

        The guess is checked against the next file read to its end this way: after
        ``NEXT_FILE_MISSES`` wrong in a row (files taken in a random order) it is still made
        but nothing is loaded on it, until one is right again.

        Nothing is pinned: these are hints. If gc moves or deletes a chunk before it loads,
        the load fails verification or finds no pack, and the file's own read loads it."""
        holder = self._holding.get(FileHandle(fh))
        node = None if holder is None or holder < 0 else self._nodes.get(Inode(holder))
        if node is None or node.record is None or node.key.kind is not Kind.ENTRY:
            return []
        record, path = node.record, node.key.path
        if self._next_guess is not None:
            right = self._next_guess == (record.key, path)
            self._guess_misses = 0 if right else self._guess_misses + 1

        def wanted(entry: FileEntry) -> bool:
            return entry.size > INLINE_LOAD_BYTES and not entry.is_reference

        with self.store.index.read() as txn:
            after = catalog.next_file(
                txn, record, path, wanted, NEXT_FILE_STEPS, NEXT_FILE_SMALL_IN_A_ROW
            )
        self._next_guess = None if after is None else (record.key, after.path)
        if self._guess_misses >= NEXT_FILE_MISSES:
            return []
        refs, size, limit = [], 0, min(NEXT_FILE_BYTES, self.cache.budget_bytes // 4)
        for ref in after.chunks if after is not None else ():
            if size >= limit:
                break
            size += ref.length
            if ref.length > INLINE_LOAD_BYTES and ref not in self.cache:
                refs.append(ref)
        located = ((ref, self.store.chunk_location(ref.chunk_id)) for ref in refs)
        return [(ref, loc) for ref, loc in located if loc is not None]

    def release(self, fh: int) -> None:
        reader = self._files.pop(FileHandle(fh), None)
        if reader is not None:
            reader.release()  # before its hold ends: chunks other files hold stay
        holder = self._holding.pop(FileHandle(fh), None)
        if holder is not None:
            self.holders.release(holder)
        self._small_handles.discard(FileHandle(fh))
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

    def lacks_xattr(self, ino: int, name: bytes) -> bool:
        """Whether known inode ``ino`` has no attribute ``name`` because no node has it (a
        name outside ``user.artfs.``): what :meth:`getxattr` would say, told without raising
        NoAttribute. False for an inode not known (getxattr says NotFound)."""
        return not name.startswith(_XATTR_PREFIX_BYTES) and (
            Inode(ino) in self._nodes or Inode(ino) in self._listed
        )

    def getxattr(self, ino: int, name: bytes) -> bytes:
        if not name.startswith(_XATTR_PREFIX_BYTES):
            # No node has such a name (the daemon asks lacks_xattr first): NotFound for an
            # inode not known, else without building the node's set, or the node itself for
            # a child the kernel got from readdir.
            if Inode(ino) not in self._listed:
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


def listing_base(listing: Listing) -> int:
    """The inode number of ``listing``'s first child (:func:`entry_base`), made once."""
    if listing.base is None:
        assert listing.record is not None
        listing.base = entry_base(listing.record, listing.key.directory)
    return listing.base


# What readdir shows of a child of a version: (ino, st_mode, nlink, size, mtime_ns).
ListedRow = tuple[int, int, int, int, int]

# How a version's entry shows, by its head's kind (``flags & trees.KIND_MASK``): its file-type
# bits, its link count and a mask for its size (a directory shows 0); its permission bits
# without the write bits (READ_ONLY_BITS). The daemon's readdir loop fills its replies from
# this with no call per child (a call costs ~0.1 us, and one readdir of the bench's walk sends
# 780 children); _shown gives nodes and lookups the same. A kind not in it is CorruptData.
SHOWN_KINDS: dict[int, tuple[int, int, int]] = {
    int(manifest.Kind.FILE): (stat.S_IFREG, 1, -1),
    int(manifest.Kind.DIR): (stat.S_IFDIR, 2, 0),
}


def _listing_row(listing: Listing, index: int) -> ListedRow:
    """What readdir shows of child ``index`` (a lookup answered from its listing)."""
    flags, mode, size, mtime_ns = listing.head(index)
    st_mode, nlink, size = _shown(flags, mode, size, listing.names[index])
    return listing_base(listing) + index, st_mode, nlink, size, mtime_ns


def _shown(flags: int, mode: int, size: int, name: bytes = b"") -> tuple[int, int, int]:
    """(st_mode, nlink, size) shown for a version's entry of kind ``flags & KIND_MASK``:
    read-only, a directory sized 0 (see SHOWN_KINDS)."""
    try:
        type_bits, nlink, size_mask = SHOWN_KINDS[flags & trees.KIND_MASK]
    except KeyError:
        raise unknown_kind(name) from None
    return type_bits | mode & READ_ONLY_BITS, nlink, size & size_mask


def unknown_kind(name: bytes) -> CorruptData:
    """The error for a version entry whose head names no kind this artfs knows."""
    shown = f" {manifest.decode_path(name)!r}" if name else ""
    return CorruptData(f"a version's entry{shown} is of no kind this artfs knows")


READ_ONLY_BITS = 0o7777 & ~0o222  # stat.S_IMODE without the write bits
# Open flags a version file refuses (EROFS).
_WRITING_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT


__all__ = [
    "DEFAULT_CACHE_BYTES",
    "READAHEAD_START_BYTES",
    "READ_ONLY_BITS",
    "ROOT_INODE",
    "SHOWN_KINDS",
    "Attr",
    "ChunkCache",
    "DirEntry",
    "FileHandle",
    "FileReader",
    "Inode",
    "Kind",
    "ListedRow",
    "Node",
    "NodeKey",
    "ReadBuffer",
    "StatFs",
    "Vfs",
    "listing_base",
    "unknown_kind",
]
