"""Put with a parent: what the last put of a source recorded about its files (git's index,
restic's parent snapshot).

A put of a directory records, per directory of the source, the ``stat`` fields its scan saw
of each entry (size, mtime_ns, ctime_ns, inode, device, st_mode: :data:`ingest.ROW`), with
each file's digest and chunk list, and, once per source, the version digest of what it saw
and the *base*: a committed version whose tree holds exactly the recorded entries of every
directory not marked stale. The next put of the same source into the same artifact compares
each scanned directory with its record as a whole (two byte strings: names, and rows):

- every directory as recorded: the content is the recorded version digest's, and a version
  with that digest exists: that is the result, with nothing read, built or written;
- otherwise, with a base still committed: the directories that differ (or are stale) are
  taken apart (a file whose row is as recorded, with its chunks in the store, is taken
  unread; the others are read), and the base's tree is updated with their entries and the
  names they lost (:func:`artfs.store.trees.update`): only those directories' pages are
  rewritten, and the directories as recorded are never looked at one file at a time;
- otherwise (no record, ``--rehash``, a base deleted since): every file is taken from the
  record where its row matches and its chunks are stored, the others read, the tree built.

The version is the one a full read makes: same entries, same digest, same tree.

The record lives in the index table ``stat-cache``, under ``prefix := artifact key \\0
blake2b-16(absolute source root)``::

    prefix "head" := format:u8 version_digest:32 base_number:i64 (-1: none) base_root:32
    prefix blake2b-16(directory in the version)
          := format:u8 stale:u8 path_length:u32 n_files:u32 n_dirs:u32 names_length:u32
             dir_names_length:u32 path names (\\0-joined, sorted) dir_names (likewise)
             row*n_files row*n_dirs digest:32*n_files chunk_count:u32*n_files
             (chunk_id:32 length:u32)*

``chunk_count`` ``ONE_CHUNK`` means the one chunk named by the digest (a file of one chunk,
most files of a dataset: its digest is its chunk id). A put that changes one directory
rewrites that directory's value and the head; a put that changes nothing writes nothing.
There is one record per (artifact, source root), at most ``MAX_SOURCES`` per artifact, all
dropped with the artifact. A value that cannot be decoded (damaged, another format) makes
the whole record read as absent, and the put replaces it: a cache never stops a put.

Stale directories: a put whose content is an existing version (same digest) whose tree is
not the one this put's entries make (a file touched: same bytes, new mtime) keeps its base,
and marks the directories it rewrote stale: their record is true of the files, not of the
base's tree, so the next put takes them apart again rather than trusting the base there.

Racy files (git's "racy clean" problem): a file written in the same clock tick as the one the
put saw would keep its size and mtime while its content changed. So a file whose mtime or
ctime is within :data:`RACY_NS` of the put's start is stored as usual but left out of the
record (its directory then differs from its record, and the next put reads that file again).
artfs cannot write to the source's filesystem to learn that filesystem's own clock, as git
does with its index file, so the window is fixed and generous: 2 s covers filesystems with
one-second timestamps (ext4 with 128-byte inodes, HFS+) plus the kernel's coarse clock (one
jiffy behind); nanosecond filesystems (ext4, xfs, btrfs, tmpfs) need far less.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from artfs.errors import CorruptData, StoreError
from artfs.names import ArtifactName
from artfs.store import catalog, trees
from artfs.store.catalog import VersionRecord, artifact_key
from artfs.store.hashing import ChunkId, FileDigest, TreeId
from artfs.store.index import Index, Table, Txn
from artfs.store.ingest import ROW, ListedFiles, Listing, Progress, SourceTree, stored_mode
from artfs.store.manifest import ChunkRef, FileEntry, Kind, encode_path

FORMAT = 2
RACY_NS = 2_000_000_000
ONE_CHUNK = 0xFFFFFFFF
# Sources recorded per artifact; the one written longest ago goes first. A put from a fresh
# temporary directory each time (a CI checkout) would otherwise leave a record per run.
MAX_SOURCES = 4
# After the artifact key and \0: the recorded sources' root hashes, the last written first.
# Shorter than a record key's two hashes, so no record's key and no root's prefix.
_SOURCES = b"sources"
_HEAD_KEY = b"head"  # after a source's prefix: 4 bytes, where a directory's key has 16

_HEAD = struct.Struct("<B32sq32s")
_DIR = struct.Struct("<BBIIIII")
_COUNT = struct.Struct("<I")
_CHUNK = struct.Struct("<32sI")
_NO_BASE = -1
_UNKNOWN = bytes(32)  # the head's digest when some file seen was left out (racy)


def _hash16(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest()


def _root_prefix(art: ArtifactName, root: str) -> bytes:
    return artifact_key(art) + b"\0" + _hash16(root)


def _names(names: list[str]) -> bytes:
    return "\0".join(names).encode("utf-8", "surrogateescape")


def drop(txn: Txn, art: ArtifactName) -> None:
    """Forget every source recorded for ``art`` (the artifact is deleted)."""
    txn.delete_prefix(Table.STAT_CACHE, artifact_key(art) + b"\0")


def _keep_recent(txn: Txn, art: ArtifactName, root: bytes) -> None:
    """Note ``root`` as the source recorded last; forget sources beyond MAX_SOURCES."""
    key = artifact_key(art) + b"\0" + _SOURCES
    known = txn.get(Table.STAT_CACHE, key) or b""
    roots = [root] + [
        known[i : i + 16] for i in range(0, len(known), 16) if known[i : i + 16] != root
    ]
    for old in roots[MAX_SOURCES:]:
        txn.delete_prefix(Table.STAT_CACHE, artifact_key(art) + b"\0" + old)
    txn.put(Table.STAT_CACHE, key, b"".join(roots[:MAX_SOURCES]))


# --- the record of one directory ------------------------------------------------------------


@dataclass
class Recorded:
    """One directory as the last put saw it: names and rows as its scan listed them (files
    left out when racy), each file's digest and chunk list."""

    path: str
    stale: bool
    files: bytes  # names, \0-joined
    file_rows: bytes
    dirs: bytes
    dir_rows: bytes
    digests: bytes  # 32 bytes a file
    counts: bytes  # chunk_count:u32 a file
    chunk_lists: bytes
    _index: dict[str, int] | None = None
    _offsets: list[int] | None = None

    def matches(self, listing: Listing) -> bool:
        """Whether ``listing`` has exactly the recorded names and rows."""
        return (
            self.file_rows == listing.file_rows
            and self.dir_rows == listing.dir_rows
            and self.files == _names(listing.files)
            and self.dirs == _names(listing.dirs)
        )

    def find(self, name: str, row: bytes) -> int | None:
        """The index of file ``name`` if it is recorded with ``row``."""
        if self._index is None:
            names = self.files.decode("utf-8", "surrogateescape").split("\0") if self.files else []
            self._index = {n: i for i, n in enumerate(names)}
        i = self._index.get(name)
        if i is None or self.file_rows[i * ROW.size : (i + 1) * ROW.size] != row:
            return None
        return i

    def digest(self, i: int) -> bytes:
        return self.digests[i * 32 : i * 32 + 32]

    def chunks(self, i: int, size: int) -> tuple[ChunkRef, ...]:
        """The chunk list of file ``i`` (of ``size`` bytes)."""
        (count,) = _COUNT.unpack_from(self.counts, i * 4)
        if count == ONE_CHUNK:
            return (ChunkRef(ChunkId(self.digest(i)), size),)
        if self._offsets is None:
            self._offsets, at = [], 0
            for (n,) in _COUNT.iter_unpack(self.counts):
                self._offsets.append(at)
                at += 0 if n == ONE_CHUNK else n * _CHUNK.size
        start = self._offsets[i]
        listed = self.chunk_lists[start : start + count * _CHUNK.size]
        return tuple(ChunkRef(ChunkId(cid), length) for cid, length in _CHUNK.iter_unpack(listed))

    def pairs(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """(path, file digest) of every recorded file, paths under ``prefix``."""
        if not self.files:
            return []
        digests = self.digests
        paths = [prefix + name for name in self.files.split(b"\0")]
        return list(
            zip(paths, [digests[i : i + 32] for i in range(0, len(digests), 32)], strict=True)
        )


def encode_dir(recorded: Recorded) -> bytes:
    path = encode_path(recorded.path)
    n_files, n_dirs = len(recorded.file_rows) // ROW.size, len(recorded.dir_rows) // ROW.size
    head = _DIR.pack(
        FORMAT,
        recorded.stale,
        len(path),
        n_files,
        n_dirs,
        len(recorded.files),
        len(recorded.dirs),
    )
    return b"".join(
        (
            head,
            path,
            recorded.files,
            recorded.dirs,
            recorded.file_rows,
            recorded.dir_rows,
            recorded.digests,
            recorded.counts,
            recorded.chunk_lists,
        )
    )


def decode_dir(value: bytes) -> Recorded:
    """A directory's record; ValueError when it is not one of this format."""
    form, stale, path_length, n_files, n_dirs, names_length, dirs_length = _DIR.unpack_from(value)
    if form != FORMAT:
        raise ValueError("a stat record of another format")
    at = _DIR.size
    ends = []
    for length in (
        path_length,
        names_length,
        dirs_length,
        n_files * ROW.size,
        n_dirs * ROW.size,
        n_files * 32,
        n_files * 4,
    ):
        ends.append((at, at + length))
        at += length
    if at > len(value):
        raise ValueError("a truncated stat record")
    path, files, dirs, file_rows, dir_rows, digests, counts = (value[a:b] for a, b in ends)
    return Recorded(
        path.decode("utf-8", "surrogateescape"),
        bool(stale),
        files,
        file_rows,
        dirs,
        dir_rows,
        digests,
        counts,
        value[at:],
    )


def _recorded_dir(listing: Listing, by_name: dict[str, FileEntry], limit_ns: int) -> Recorded:
    """The record of ``listing`` after this put: every file not racy (times before
    ``limit_ns``), with its entry in ``by_name``. A directory with a racy file left out is
    stale: its record is not what the version's tree holds there."""
    names, rows, digests, counts, lists = [], [], [], [], []
    for i, name in enumerate(listing.files):
        row = listing.file_rows[i * ROW.size : (i + 1) * ROW.size]
        _, mtime_ns, ctime_ns, _, _, _ = ROW.unpack(row)
        if max(mtime_ns, ctime_ns) >= limit_ns:
            continue  # racy: the next put reads it again
        entry = by_name[name]
        chunks = entry.chunks
        digest = bytes(entry.digest)
        names.append(name)
        rows.append(row)
        digests.append(digest)
        if len(chunks) == 1 and chunks[0].length == entry.size and chunks[0].chunk_id == digest:
            counts.append(ONE_CHUNK)
        else:
            counts.append(len(chunks))
            lists += [_CHUNK.pack(c.chunk_id, c.length) for c in chunks]
    return Recorded(
        listing.path,
        len(names) < len(listing.files),
        _names(names),
        b"".join(rows),
        _names(listing.dirs),
        listing.dir_rows,
        b"".join(digests),
        b"".join(_COUNT.pack(n) for n in counts),
        b"".join(lists),
    )


# --- a put ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """What the record says of the source as a whole."""

    digest: bytes  # the version digest of the recorded content
    base: int  # a version whose tree holds the recorded entries of non-stale dirs; -1: none
    root: TreeId


@dataclass
class Plan:
    """What a put with a parent does, decided under the commit lock (see :meth:`ParentPut.plan`).

    ``unchanged``: the number of the version the source is, when every directory is as
    recorded (nothing else to do). Otherwise ``read`` are the files to ingest and ``reused``
    the entries taken unread, of the directories taken apart: all of them without a
    ``base``; with one, only those that changed, and ``removed`` the paths of the base those
    directories no longer hold, ``dirs`` the entries of their subdirectories.
    """

    unchanged: int | None = None
    base: VersionRecord | None = None
    read: ListedFiles = field(default_factory=ListedFiles)
    reused: list[FileEntry] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    dirs: list[FileEntry] = field(default_factory=list)
    taken_apart: list[Listing] = field(default_factory=list)
    as_recorded: list[Recorded] = field(default_factory=list)


@dataclass
class ParentPut:
    """The record of one (artifact, source root) across one put.

    Made before the source is scanned (:meth:`begin` notes the start time that decides which
    files are racy), consulted under the commit lock (:meth:`plan`: no gc can run between
    the chunk presence check and the commit), written after the commit (:meth:`record`).
    """

    art: ArtifactName
    root: str
    rehash: bool = False
    start_ns: int = 0
    reused: int = 0  # files taken from the record, not read
    _old: dict[str, Recorded] = field(default_factory=dict)
    _head: Head | None = None
    _raw: bytes | None = None  # the head as loaded
    _plan: Plan | None = None
    _listings: list[Listing] = field(default_factory=list)

    @classmethod
    def begin(cls, art: ArtifactName, source: Path, *, rehash: bool = False) -> ParentPut:
        return cls(art, os.path.realpath(source), rehash, time.time_ns())

    def plan(
        self, index: Index, tree: SourceTree, progress: Progress | None = None, *, whole: bool
    ) -> Plan:
        """What this put reads, takes from the record and changes in the base (``whole``:
        take every directory apart, no base: a commit that needs every entry). Call under the
        commit lock, so that gc cannot collect a chunk or a base found here."""
        if not self.rehash:
            self._old, self._head = self._load(index)
        self._listings = tree.listings
        plan = self._plan = Plan()
        with index.read() as txn:
            plan.unchanged = None if whole else self._unchanged(txn, tree.listings)
            if plan.unchanged is not None:
                self.reused = sum(len(lst.files) for lst in tree.listings)
                if progress is not None:
                    progress(tree.total_bytes)
                return plan
            plan.base = None if whole else self._base(txn)
            plan.taken_apart = [
                lst
                for lst in tree.listings
                if plan.base is None or not self._as_recorded(lst) or self._old[lst.path].stale
            ]
            if plan.base is not None:
                base_root = catalog.root_tree(plan.base)
                assert base_root is not None
                plan.removed = _lost(catalog.pages(txn), base_root, plan.taken_apart)
        apart = {lst.path for lst in plan.taken_apart}
        plan.as_recorded = [self._old[lst.path] for lst in tree.listings if lst.path not in apart]
        for listing in plan.taken_apart:
            self._take_apart(listing, plan)
            if plan.base is not None:
                plan.dirs += listing.dir_entries()
        self._check_chunks(index, plan)
        if progress is not None:  # all but what the ingest reads (and reports) is done
            progress(tree.total_bytes - plan.read.size)
        return plan

    def _unchanged(self, txn: Txn, listings: list[Listing]) -> int | None:
        """The version the source is when every directory is as recorded (and the record
        covers every file it saw), if the artifact has it."""
        head = self._head
        if head is None or head.digest == _UNKNOWN:
            return None
        if not all(self._as_recorded(listing) for listing in listings):
            return None
        return catalog.version_by_digest(txn, self.art, head.digest.hex())

    def _as_recorded(self, listing: Listing) -> bool:
        recorded = self._old.get(listing.path)
        return recorded is not None and recorded.matches(listing)

    def _base(self, txn: Txn) -> VersionRecord | None:
        """The recorded base, if it is still a committed version with the recorded tree."""
        head = self._head
        if head is None or head.base == _NO_BASE:
            return None
        record = catalog.get_version(txn, self.art, head.base)
        if record is None or record.state != catalog.COMMITTED or record.tree != head.root.hex():
            return None
        return record

    def _take_apart(self, listing: Listing, plan: Plan) -> None:
        """Each file of ``listing``: its entry from the record when its row is as recorded,
        else to be read."""
        recorded = self._old.get(listing.path)
        if recorded is None:
            plan.read.add(listing, range(len(listing.files)))
            return
        rows = listing.file_rows
        unread = []
        for i, name in enumerate(listing.files):
            found = recorded.find(name, rows[i * ROW.size : (i + 1) * ROW.size])
            if found is None:
                unread.append(i)
                continue
            size, mtime_ns, _, _, _, mode = ROW.unpack_from(rows, i * ROW.size)
            digest = recorded.digest(found)
            plan.reused.append(
                FileEntry(
                    listing.child(name),
                    Kind.FILE,
                    stored_mode(mode),
                    size,
                    mtime_ns,
                    FileDigest(digest),
                    recorded.chunks(found, size),
                )
            )
        plan.read.add(listing, unread)

    def _check_chunks(self, index: Index, plan: Plan) -> None:
        """Files whose chunks gc collected since (their versions deleted) are read again."""
        wanted = {ref.chunk_id for entry in plan.reused for ref in entry.chunks}
        absent = index.missing(Table.CHUNKS, wanted)
        if absent:
            gone = {e.path for e in plan.reused if any(r.chunk_id in absent for r in e.chunks)}
            plan.reused = [e for e in plan.reused if e.path not in gone]
            for listing in plan.taken_apart:
                plan.read.add(
                    listing, [i for i, n in enumerate(listing.files) if listing.child(n) in gone]
                )
        self.reused = sum(len(lst.files) for lst in self._listings) - len(plan.read)

    def version_pairs(self, entries: list[FileEntry]) -> Iterator[tuple[bytes, bytes]]:
        """(path, digest) of every file of the version: ``entries`` (those of the directories
        taken apart) and the recorded files of the others, for the version digest."""
        assert self._plan is not None
        for recorded in self._plan.as_recorded:
            prefix = encode_path(recorded.path) + b"/" if recorded.path else b""
            yield from recorded.pairs(prefix)
        for entry in entries:
            if not entry.is_dir:
                yield encode_path(entry.path), bytes(entry.digest)

    def _load(self, index: Index) -> tuple[dict[str, Recorded], Head | None]:
        """The record of this source; empty if there is none or it cannot be decoded (then
        it is replaced whole, as with ``rehash``): a cache never stops a put."""
        prefix = _root_prefix(self.art, self.root)
        old: dict[str, Recorded] = {}
        head = None
        try:
            with index.read() as txn:
                for key, value in txn.scan(Table.STAT_CACHE, prefix):
                    if key[len(prefix) :] == _HEAD_KEY:
                        self._raw = value
                        form, digest, base, root = _HEAD.unpack(value)
                        if form != FORMAT:
                            raise ValueError("a stat record of another format")
                        head = Head(digest, base, TreeId(root))
                    else:
                        recorded = decode_dir(value)
                        old[recorded.path] = recorded
        except (CorruptData, ValueError, struct.error):  # damaged, or another format
            self.rehash, self._raw = True, None
            return {}, None
        return old, head

    def record(
        self,
        index: Index,
        result: VersionRecord,
        created: bool,
        root: TreeId | None,
        entries: list[FileEntry],
    ) -> None:
        """Write the record after the commit of ``result`` (``created`` by this put, or the
        existing version of the same content), whose tree this put's entries make is ``root``
        (None when not built); ``entries`` hold every file of the directories taken apart."""
        plan = self._plan
        if plan is None or plan.unchanged is not None:
            return
        base: VersionRecord | None = plan.base
        stale = True
        if created or (root is not None and result.tree == root.hex()):
            base, stale = result, False  # every directory as recorded is in its tree
        head_root = catalog.root_tree(base) if base is not None else None
        head = _HEAD.pack(
            FORMAT,
            bytes.fromhex(result.digest),
            _NO_BASE if base is None else base.number,
            head_root or bytes(32),
        )
        # Each directory's entries by name only while its record is made: a dict of every
        # name at once held ~100 MB at a million files, at the put's peak.
        by_dir: dict[str, list[FileEntry]] = {}
        for entry in entries:
            by_dir.setdefault(entry.path.rpartition("/")[0], []).append(entry)
        limit = self.start_ns - RACY_NS
        prefix = _root_prefix(self.art, self.root)
        scanned = {lst.path for lst in self._listings}
        try:
            with index.write() as txn:
                if self.rehash:  # the old record was not loaded: replace it whole
                    txn.delete_prefix(Table.STAT_CACHE, prefix)
                if not self.rehash and txn.get(Table.STAT_CACHE, prefix + _HEAD_KEY) != self._raw:
                    return  # another put of this source wrote since: its record stands
                whole = True  # every file as seen is recorded: the digest is the record's
                for listing in plan.taken_apart:
                    found = by_dir.pop(listing.path, [])
                    by_name = {e.path.rpartition("/")[2]: e for e in found}
                    recorded = _recorded_dir(listing, by_name, limit)
                    whole = whole and not recorded.stale
                    recorded.stale = recorded.stale or stale
                    txn.put(Table.STAT_CACHE, prefix + _hash16(listing.path), encode_dir(recorded))
                for path in self._old.keys() - scanned:
                    txn.delete(Table.STAT_CACHE, prefix + _hash16(path))
                if not whole:  # no unchanged re-put until the racy files are recorded
                    head = head[:1] + _UNKNOWN + head[33:]
                txn.put(Table.STAT_CACHE, prefix + _HEAD_KEY, head)
                _keep_recent(txn, self.art, _hash16(self.root))
        except StoreError:
            # The version is committed; the record is only a cache (a disk that filled up
            # meanwhile leaves the old one, and the next put reads what it does not cover).
            return


def _lost(pages: trees.Pages, base: TreeId, listings: list[Listing]) -> list[str]:
    """The paths the base has in the directories of ``listings`` that they no longer list."""
    lost = []
    for listing in listings:
        tree = trees.resolve_dir(pages, base, listing.path)
        if tree is None:
            continue
        present = {encode_path(name) for name in listing.files + listing.dirs}
        lost += [
            listing.child(item.key.decode("utf-8", "surrogateescape"))
            for item in trees.items(pages, tree)
            if item.key not in present
        ]
    return lost
