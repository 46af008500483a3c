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
- A file handle carries the file's chunk list, so an open file keeps reading correctly after
  its version is deleted (until gc removes the chunks).
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import json
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NewType

from artfs.errors import ArtfsError, NotFound
from artfs.names import ArtifactName, parse_version
from artfs.store import catalog, manifest
from artfs.store.catalog import COMMITTED, VersionRecord
from artfs.store.index import Table, Txn
from artfs.store.manifest import ChunkRef, FileEntry
from artfs.store.repository import Store

Inode = NewType("Inode", int)
FileHandle = NewType("FileHandle", int)

ROOT_INODE = Inode(1)
# Nodes inside a version never change; an hour is what the kernel is told, "forever" in effect.
IMMUTABLE_TIMEOUT = 3600.0
# Artifact dirs, version presence and aliases: a new version shows within this plus a listing.
MUTABLE_TIMEOUT = 1.0
# cp and friends size their buffers from st_blksize; 128 KiB matches the kernel's FUSE reads.
BLOCK_SIZE = 128 << 10
DEFAULT_CACHE_BYTES = 256 << 20
# Read-ahead grows 1, 2, 4, ... chunks ahead while reads stay sequential, up to this many.
MAX_READAHEAD_CHUNKS = 8
# Chunks up to this size are loaded without a thread hop (see FileReader.cheap).
INLINE_LOAD_BYTES = 64 << 10
STAGING = "staging"
XATTR_PREFIX = "user.artfs."


class ReadOnly(ArtfsError):
    """A write, create, rename, unlink or chmod on a read-only node (EROFS)."""


class NoAttribute(NotFound):
    """The extended attribute does not exist on this node (ENODATA)."""


class NotADirectory(ArtfsError):
    """A directory operation on a file (ENOTDIR)."""


class IsADirectory(ArtfsError):
    """A file operation on a directory (EISDIR)."""


class NotASymlink(ArtfsError):
    """readlink on something that is not a symlink (EINVAL)."""


class Kind(enum.Enum):
    ROOT = "root"
    PROJECT = "project"
    ARTIFACT = "artifact"
    VERSION = "version"
    ALIAS = "alias"
    STAGING = "staging"
    ENTRY = "entry"  # a file or directory inside a version


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
        # 63 bits (st_ino is signed in places), never 0 or the root's 1.
        return Inode((int.from_bytes(digest, "little") >> 1) | 2)


@dataclass(slots=True)
class Node:
    key: NodeKey
    record: VersionRecord | None = None  # VERSION and ENTRY nodes
    entry: FileEntry | None = None  # ENTRY nodes
    lookups: int = 0

    @property
    def ino(self) -> Inode:
        return self.key.inode()

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

    @property
    def blocks(self) -> int:
        return (self.size + 511) // 512


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: bytes
    attr: Attr
    next_id: int
    node: Node


@dataclass(frozen=True, slots=True)
class StatFs:
    block_size: int
    blocks: int
    files: int
    name_max: int = 255


# --- the chunk cache --------------------------------------------------------------------------


@dataclass
class _Loading:
    done: threading.Event = field(default_factory=threading.Event)
    data: bytes | None = None
    error: BaseException | None = None


class ChunkCache:
    """A bounded LRU of verified, decompressed chunks shared by every open file.

    ``get`` blocks (run it in a worker thread); two threads wanting the same chunk load it once.
    ``peek`` never blocks and is safe on the event loop.
    """

    def __init__(self, load: Callable[[ChunkRef], bytes], budget_bytes: int) -> None:
        self._load = load
        self.budget_bytes = budget_bytes
        self._chunks: OrderedDict[bytes, bytes] = OrderedDict()
        self._loading: dict[bytes, _Loading] = {}
        self._size = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    def __contains__(self, ref: ChunkRef) -> bool:
        return ref.chunk_id in self._chunks or ref.chunk_id in self._loading

    def peek(self, ref: ChunkRef) -> bytes | None:
        with self._lock:
            data = self._chunks.get(ref.chunk_id)
            if data is not None:
                self._chunks.move_to_end(ref.chunk_id)
            return data

    def get(self, ref: ChunkRef) -> bytes:
        with self._lock:
            data = self._chunks.get(ref.chunk_id)
            if data is not None:
                self._chunks.move_to_end(ref.chunk_id)
                return data
            loading = self._loading.get(ref.chunk_id)
            owner = loading is None
            if loading is None:
                loading = self._loading[ref.chunk_id] = _Loading()
        if not owner:
            loading.done.wait()
            if loading.error is not None:
                raise loading.error
            assert loading.data is not None
            return loading.data
        try:
            loading.data = self._load(ref)
        except BaseException as exc:
            loading.error = exc
            raise
        finally:
            with self._lock:
                del self._loading[ref.chunk_id]
                if loading.data is not None:
                    self._insert(ref.chunk_id, loading.data)
            loading.done.set()
        return loading.data

    def _insert(self, chunk_id: bytes, data: bytes) -> None:
        if len(data) > self.budget_bytes:
            return
        if chunk_id not in self._chunks:
            self._size += len(data)
        self._chunks[chunk_id] = data
        while self._size > self.budget_bytes:
            _, evicted = self._chunks.popitem(last=False)
            self._size -= len(evicted)


# --- open files -------------------------------------------------------------------------------


class FileReader:
    """One open file: byte ranges assembled from its chunks, and sequential read-ahead."""

    def __init__(self, entry: FileEntry, cache: ChunkCache) -> None:
        self.entry = entry
        self._cache = cache
        self._starts: list[int] = []
        offset = 0
        for ref in entry.chunks:
            self._starts.append(offset)
            offset += ref.length
        self._next_offset = 0  # where a sequential reader's next read starts
        self._window = 0  # chunks of read-ahead; doubles while access stays sequential
        self._ahead_until = 0  # chunks below this index were already scheduled

    def _span(self, offset: int, size: int) -> range:
        end = min(offset + size, self.entry.size)
        if offset >= end:
            return range(0)
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_right(self._starts, end - 1) - 1
        return range(first, last + 1)

    def _assemble(self, offset: int, size: int, pieces: list[bytes], span: range) -> bytes:
        end = min(offset + size, self.entry.size)
        if len(pieces) == 1:
            start = offset - self._starts[span.start]
            return pieces[0][start : start + end - offset]
        out = bytearray()
        for index, data in zip(span, pieces, strict=True):
            base = self._starts[index]
            out += memoryview(data)[max(offset - base, 0) : min(end - base, len(data))]
        return bytes(out)

    def read_cached(self, offset: int, size: int) -> bytes | None:
        """The bytes if every chunk they need is cached, else None; never blocks."""
        span = self._span(offset, size)
        pieces = []
        for index in span:
            data = self._cache.peek(self.entry.chunks[index])
            if data is None:
                return None
            pieces.append(data)
        self._note(offset, size)
        return self._assemble(offset, size, pieces, span) if pieces else b""

    def cheap(self, offset: int, size: int) -> bool:
        """Whether the chunks this read still needs are small enough to load inline.

        A worker-thread hop costs 0.1-0.2 ms here, more than reading, decompressing and hashing
        a 64 KiB chunk, so a small file's chunk is loaded on the event loop; big chunks never.
        """
        missing = 0
        for index in self._span(offset, size):
            ref = self.entry.chunks[index]
            if self._cache.peek(ref) is None:
                missing += ref.length
        return missing <= INLINE_LOAD_BYTES

    def read(self, offset: int, size: int) -> bytes:
        """The bytes at ``offset`` (short at end of file); blocks on chunk loads."""
        span = self._span(offset, size)
        try:
            pieces = [self._cache.get(self.entry.chunks[i]) for i in span]
        except ArtfsError as exc:
            raise type(exc)(f"{self.entry.path}: {exc}") from None
        self._note(offset, size)
        return self._assemble(offset, size, pieces, span) if pieces else b""

    def _note(self, offset: int, size: int) -> None:
        sequential = offset == self._next_offset
        self._next_offset = offset + size
        if sequential:
            self._window = min(max(1, self._window * 2), MAX_READAHEAD_CHUNKS)
        else:
            self._window = 0
            self._ahead_until = 0

    def readahead(self) -> list[ChunkRef]:
        """Chunks a sequential reader will want next and nobody has loaded or asked for."""
        if not self._window or not self.entry.chunks:
            return []
        current = self._span(max(self._next_offset - 1, 0), 1)
        if not current:
            return []
        start = max(current.start + 1, self._ahead_until)
        stop = min(current.start + 1 + self._window, len(self.entry.chunks))
        self._ahead_until = max(self._ahead_until, stop)
        return [ref for ref in self.entry.chunks[start:stop] if ref not in self._cache]


@dataclass
class _DirHandle:
    node: Node
    resume: dict[int, bytes] = field(default_factory=dict)  # next_id -> name, last batch


# --- the tree ---------------------------------------------------------------------------------


class Vfs:
    """The store as a read-only tree; every method is quick except chunk loads (see reads)."""

    def __init__(self, store: Store, cache: ChunkCache, *, uid: int, gid: int) -> None:
        self.store = store
        self.cache = cache
        self.uid = uid
        self.gid = gid
        self.started_ns = time.time_ns()
        root = Node(NodeKey(Kind.ROOT), lookups=1)
        self._nodes: dict[Inode, Node] = {ROOT_INODE: root}
        self._files: dict[FileHandle, FileReader] = {}
        self._dirs: dict[FileHandle, _DirHandle] = {}
        self._next_handle = 1

    @classmethod
    def create(cls, store: Store, *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> Vfs:
        return cls(
            store, ChunkCache(store.read_chunk, cache_bytes), uid=os.getuid(), gid=os.getgid()
        )

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
            del self._nodes[Inode(ino)]

    @property
    def node_count(self) -> int:
        return len(self._nodes)

    # --- attributes -----------------------------------------------------------------------

    def getattr(self, ino: int) -> Attr:
        node = self.node(ino)
        with self.store.index.read() as txn:
            return self._attr(txn, node)

    def _attr(self, txn: Txn, node: Node) -> Attr:
        key = node.key
        if key.kind is Kind.ENTRY:
            assert node.entry is not None
            return self._entry_attr(node, node.entry)
        if key.kind is Kind.ALIAS:
            target = self._alias_target(txn, node)
            return self._make(node, stat.S_IFLNK | 0o777, len(target), self.started_ns, 1)
        if key.kind is Kind.VERSION:
            assert node.record is not None
            return self._make(node, stat.S_IFDIR | 0o555, 0, int(node.record.created * 1e9), 2)
        return self._make(node, stat.S_IFDIR | 0o555, 0, self._dir_mtime(txn, node), 2)

    def _entry_attr(self, node: Node, entry: FileEntry) -> Attr:
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
            if txn.get(Table.PROJECTS, name.encode()) is None:
                return None
            return Node(NodeKey(Kind.PROJECT, name))
        if key.kind is Kind.PROJECT:
            if catalog.get_artifact(txn, ArtifactName(key.project, name)) is None:
                return None
            return Node(NodeKey(Kind.ARTIFACT, key.project, name))
        if key.kind is Kind.ARTIFACT:
            return self._artifact_child(txn, node, name)
        if key.kind is Kind.VERSION or (key.kind is Kind.ENTRY and _is_dir(node)):
            assert node.record is not None
            path = f"{key.path}/{name}" if key.path else name
            entry = catalog.lookup(txn, node.record, path)
            return None if entry is None else self._entry_node(node.record, entry)
        if key.kind is Kind.STAGING:
            return None
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
        if node.key.kind is not Kind.ALIAS:
            raise NotASymlink("not a symbolic link")
        with self.store.index.read() as txn:
            return self._alias_target(txn, node).encode()

    def _alias_target(self, txn: Txn, node: Node) -> str:
        art, alias = node.artifact, node.key.alias
        if catalog.get_artifact(txn, art) is None:
            raise NotFound(f"{art} no longer exists")
        if alias == "latest":
            number = catalog.latest_number(txn, art)
        else:
            data = txn.get(Table.ALIASES, catalog.artifact_key(art) + b"\0" + alias.encode())
            number = None if data is None else int.from_bytes(data, "big")
        if number is None:
            raise NotFound(f"{art} has no alias {alias!r}")
        return f"v{number}"

    # --- directories ----------------------------------------------------------------------

    def opendir(self, ino: int) -> FileHandle:
        node = self.node(ino)
        if node.key.kind in (Kind.ALIAS,) or (node.key.kind is Kind.ENTRY and not _is_dir(node)):
            raise NotADirectory(f"{node.key.path or node.key.alias} is not a directory")
        fh = self._new_handle()
        self._dirs[fh] = _DirHandle(node)
        return fh

    def releasedir(self, fh: int) -> None:
        self._dirs.pop(FileHandle(fh), None)

    def readdir(self, fh: int, start_id: int) -> Iterator[DirEntry]:
        """Entries after position ``start_id`` (0: from the start), in a stable order.

        A caller takes entries until it has no room, and calls :meth:`remember` for each it
        passed on. Large version directories stream from the index: nothing is listed twice
        or skipped when the caller resumes from any ``next_id`` of the previous batch.
        """
        handle = self._dirs.get(FileHandle(fh))
        if handle is None:
            raise NotFound(f"directory handle {fh} is not open")
        node = handle.node
        if node.key.kind is Kind.VERSION or node.key.kind is Kind.ENTRY:
            yield from self._stream_entries(handle, start_id)
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
            return [(p, Node(NodeKey(Kind.PROJECT, p))) for p in catalog.projects(txn)]
        if key.kind is Kind.PROJECT:
            return [
                (a.name, Node(NodeKey(Kind.ARTIFACT, key.project, a.name)))
                for a in catalog.artifacts(txn, key.project)
            ]
        if key.kind is Kind.ARTIFACT:
            return self._artifact_listing(txn, node)
        return []  # staging: empty until the staging issue

    def _artifact_listing(self, txn: Txn, node: Node) -> list[tuple[str, Node]]:
        key = node.key
        if catalog.get_artifact(txn, node.artifact) is None:
            return []
        records = catalog.versions(txn, node.artifact)
        listing: list[tuple[str, Node]] = [
            (r.version, Node(NodeKey(Kind.VERSION, key.project, key.name, r.number), record=r))
            for r in records
        ]
        aliases = sorted({a for r in records for a in r.aliases})
        listing += [(a, Node(NodeKey(Kind.ALIAS, key.project, key.name, alias=a))) for a in aliases]
        listing.append((STAGING, Node(NodeKey(Kind.STAGING, key.project, key.name))))
        return listing

    def _stream_entries(self, handle: _DirHandle, start_id: int) -> Iterator[DirEntry]:
        node = handle.node
        assert node.record is not None
        vkey = node.record.key
        prefix = manifest.children_prefix(vkey, node.key.path)
        if start_id == 0:
            after, skip = b"", 0
        elif start_id in handle.resume:
            after, skip = handle.resume[start_id] + b"\0", 0
        else:  # a seekdir to an old position: count from the start
            after, skip = b"", start_id
        batch: dict[int, bytes] = {}
        handle.resume = batch
        position = start_id
        with self.store.index.read() as txn:
            for raw_key, value in txn.scan(Table.FILES, prefix, after):
                if skip:
                    skip -= 1
                    continue
                name = raw_key[len(prefix) :]
                entry = FileEntry.decode(manifest.path_from_key(vkey, raw_key), value)
                child = self._entry_node(node.record, entry)
                position += 1
                batch[position] = name
                yield DirEntry(name, self._entry_attr(child, entry), position, child)

    # --- files ----------------------------------------------------------------------------

    def open(self, ino: int, flags: int) -> FileHandle:
        """A handle for reading; opening reads nothing until the first read."""
        node = self.node(ino)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT):
            raise ReadOnly("versions are read-only")
        if node.key.kind is not Kind.ENTRY or node.entry is None:
            raise IsADirectory("not a regular file")
        if node.entry.is_dir:
            raise IsADirectory(f"{node.entry.path} is a directory")
        fh = self._new_handle()
        self._files[fh] = FileReader(node.entry, self.cache)
        return fh

    def reader(self, fh: int) -> FileReader:
        found = self._files.get(FileHandle(fh))
        if found is None:
            raise NotFound(f"file handle {fh} is not open")
        return found

    def release(self, fh: int) -> None:
        self._files.pop(FileHandle(fh), None)

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
        value = self.xattrs(ino).get(name.decode("utf-8", "replace"))
        if value is None:
            raise NoAttribute(f"no attribute {name!r}")
        return value

    def statfs(self) -> StatFs:
        packs = self.store.home / "packs"
        try:
            used = sum(e.stat().st_size for e in os.scandir(packs))
        except OSError:
            used = 0
        with self.store.index.read() as txn:
            files = txn.count(Table.FILES)
        return StatFs(BLOCK_SIZE, (used + BLOCK_SIZE - 1) // BLOCK_SIZE, files)


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


def _is_dir(node: Node) -> bool:
    return node.entry is not None and node.entry.is_dir


__all__ = [
    "ROOT_INODE",
    "Attr",
    "ChunkCache",
    "DirEntry",
    "FileReader",
    "Kind",
    "NoAttribute",
    "NotADirectory",
    "ReadOnly",
    "Vfs",
]
