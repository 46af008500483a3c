"""The nodes of the mounted tree and what ``stat`` and ``readdir`` show of them.

Pure data and small pure helpers shared by the tree (:mod:`artfs.vfs`, lookups, listings and
reads) and its staging half (:mod:`artfs.fs.staged_tree`, staged nodes and every change made
through the mount). A node is keyed by what it *is* (:class:`NodeKey`). Its inode number is a
hash of that key, except for a version's entries: those are numbered by position from a base
hashed per directory (:func:`entry_base`), so a listing's children cost no hash each. Either
way a number depends only on what never changes, so it is the same across remounts. The
helpers whose names start with an underscore belong to those two modules only.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any, NewType

from artfs.errors import InvalidName
from artfs.fs.errors import BadRequest
from artfs.fs.listings import Listing, ListingKey
from artfs.fs.staging_files import BASE_FILE, CONTROL_FILE
from artfs.names import ArtifactName, check_name
from artfs.store import manifest
from artfs.store.catalog import VersionRecord
from artfs.store.chunkstore import ChunkLocation
from artfs.store.manifest import FileEntry

Inode = NewType("Inode", int)
FileHandle = NewType("FileHandle", int)

ROOT_INODE = Inode(1)


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
        """The inode number of the node this key names; not for a version's entry, numbered
        from its directory (:func:`entry_base`)."""
        if self.kind is Kind.ROOT:
            return ROOT_INODE
        if self.kind is Kind.ENTRY:
            raise ValueError("a version entry's inode number comes from its directory's base")
        return Inode(self.key_hash())

    def key_hash(self) -> int:
        """62 bits hashed from all of this key: the inode number of most nodes (and of a
        version's entries before issue 17's eighth pass, and what named a version's file in
        its usage edges before its twenty-second: see :class:`UsageNames`)."""
        shared = self._shared_hash()
        shared.update(manifest.encode_path(self.path))
        return (int.from_bytes(shared.digest(), "little") >> 2) | 2

    def _shared_hash(self) -> Any:
        """The hash state of every field but the path: the same for every entry of a
        version (see :func:`entry_base`)."""
        shared = (self.kind.value, self.project, self.name, str(self.number), self.alias, "")
        return hashlib.blake2b(manifest.encode_path("\0".join(shared)), digest_size=8)


def entry_base(record: VersionRecord, directory: str) -> int:
    """The inode number of position 0 of ``directory`` in version ``record``: its children
    are numbered ``base + index`` in name order, which a version never changes.

    The base is hashed from the version's key, its commit time (so a number given to other
    content, as a rebuilt index could, numbers its entries anew) and the directory's path
    with a slash (a path no entry has); 61 bits so that a base plus any index stays below
    2**62, where staged nodes are numbered; never 0 or the root's 1. Two directories' ranges
    overlap with a chance of about directories x entries / 2**61 over a mount, less than a
    hash per entry (entries**2 / 2**63) once directories hold more than a few entries each.
    """
    key = NodeKey(Kind.ENTRY, record.project, record.name, record.number)
    hasher = key._shared_hash()
    hasher.update(repr(record.created).encode() + b"\0" + manifest.encode_path(directory) + b"/")
    return (int.from_bytes(hasher.digest(), "little") >> 3) | 2


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
    # A small file inside a version: the kernel has had its content, put into its page cache
    # or read (see Vfs.content_for_kernel); it drops the pages with the inode, and this node.
    in_kernel: bool = field(default=False, repr=False, compare=False)
    # A small file inside a version: where its chunk was found when it was last looked up, so
    # a reopen pins its pack with no index read (see Store.repin_chunks).
    known_location: ChunkLocation | None = field(default=None, repr=False, compare=False)

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
    """What an open directory keeps between its readdir calls."""

    node: Node
    listing: Listing | None = None  # a version directory's, once read
    staged: list[tuple[str, Node, Attr]] | None = None  # a staged directory's, from offset 0


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


class UsageNames:
    """What names a version's file in its usage edge: (the version's key, the 8 bytes of its
    inode number).

    A version file's inode number is its directory's base plus its position in the directory
    (:func:`entry_base`): it depends only on the version (its key and commit time) and the
    file's path, so it is the same across remounts, and a run that opens a file again after
    one counts it once. It is known before the file is opened, so a first open's recording
    hashes nothing; the version key is worked out once per version. Until issue 17's
    twenty-second pass the name was a hash of the file's key (:meth:`NodeKey.key_hash`),
    which cost a first open's recording more than everything else it did (2.5 of 4.8 us,
    measured in the daemon over a cold epoch of 6,000 files): a run that opened a file
    before that change and opens it again after counts it twice."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str, int], bytes] = {}

    def of(self, node: Node) -> tuple[bytes, bytes]:
        """``node``'s usage name; ``node`` is a file inside a version."""
        key = node.key
        assert key.kind is Kind.ENTRY
        version_key = self._versions.get((key.project, key.name, key.number))
        if version_key is None:
            assert node.record is not None
            version_key = self._versions[(key.project, key.name, key.number)] = node.record.key
        return version_key, node.ino.to_bytes(8, "big")


def _is_dir(node: Node) -> bool:
    return node.entry is not None and node.entry.is_dir


def _in_version(node: Node) -> bool:
    """A version's root or a directory inside one (its children come from a listing)."""
    return node.key.kind is Kind.VERSION or (node.key.kind is Kind.ENTRY and _is_dir(node))
