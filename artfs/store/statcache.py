"""Put with a parent: what the last put of a source recorded about its files (git's index,
restic's parent snapshot).

A put of a directory records, per file, the ``stat`` fields it saw (size, mtime_ns, ctime_ns,
inode, device) with the file's digest and chunk list. The next put of the same source into the
same artifact takes a file whose five fields are all unchanged from that record instead of
reading it, once it has checked that the chunks are still in the store (gc may have collected
them with a deleted version; such a file is read again). The version is the one a full read
makes: same entries, same digest. ``--rehash`` ignores the record.

The record lives in the index table ``stat-cache``, one value per directory of the source::

    key    := artifact key \\0 blake2b-16(absolute source root) blake2b-16(directory in the version)
    value  := dir_length:u32 dir n:u32 names_length:u32 names (\\0-joined, sorted)
              (size:u64 mtime_ns:i64 ctime_ns:i64 ino:u64 dev:u64 digest:32 chunk_count:u32)*n
              (chunk_id:32 length:u32)*

``chunk_count`` ``ONE_CHUNK`` means the one chunk named by the digest (a file of one chunk,
most files of a dataset: its digest is its chunk id). So a put whose change touches one
directory rewrites that directory's value, not the whole source's; a put that changes nothing
writes nothing. There is one record per (artifact, source root), at most ``MAX_SOURCES`` per
artifact, all dropped with the artifact.

Racy files (git's "racy clean" problem): a file written in the same clock tick as the one the
put saw would keep its size and mtime while its content changed. So a file whose mtime or
ctime is within :data:`RACY_NS` of the put's start is stored as usual but left out of the
record, and the next put reads it again (as git re-reads an entry as new as its index file).
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
from dataclasses import dataclass, field
from pathlib import Path

from artfs.errors import CorruptData, StoreError
from artfs.names import ArtifactName
from artfs.store.catalog import artifact_key
from artfs.store.hashing import ChunkId, FileDigest
from artfs.store.index import Index, Table, Txn
from artfs.store.ingest import Progress, SourceFile, SourceTree
from artfs.store.manifest import ChunkRef, FileEntry, Kind

RACY_NS = 2_000_000_000
ONE_CHUNK = 0xFFFFFFFF
# Sources recorded per artifact; the one written longest ago goes first. A put from a fresh
# temporary directory each time (a CI checkout) would otherwise leave a record per run.
MAX_SOURCES = 4
# After the artifact key and \0: the recorded sources' root hashes, the last written first.
# Shorter than a record key's two hashes, so no record's key and no root's prefix.
_SOURCES = b"sources"

_HEAD = struct.Struct("<II")
_FILE = struct.Struct("<QqqQQ32sI")
_CHUNK = struct.Struct("<32sI")

# One file as recorded: size, mtime_ns, ctime_ns, ino, dev, digest, chunk count. Kept as the
# tuple struct unpacks (a put compares 100,000 of them: no object per file).
Record = tuple[int, int, int, int, int, bytes, int]
Chunks = tuple[tuple[bytes, int], ...]


@dataclass
class Directory:
    """The recorded files of one directory, by name; ``chunks`` holds the chunk lists of
    those whose count is neither ``ONE_CHUNK`` nor 0."""

    files: dict[str, Record] = field(default_factory=dict)
    chunks: dict[str, Chunks] = field(default_factory=dict)

    def chunk_list(self, name: str) -> Chunks | None:
        """The chunks of ``name``; None for the one chunk named by its digest."""
        count = self.files[name][6]
        if count == ONE_CHUNK:
            return None
        return self.chunks[name] if count else ()


def _hash16(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest()


def _root_prefix(art: ArtifactName, root: str) -> bytes:
    return artifact_key(art) + b"\0" + _hash16(root)


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


def encode(directory: Directory) -> bytes:
    names = sorted(directory.files)
    head = "\0".join(names).encode("utf-8", "surrogateescape")
    fixed = b"".join(_FILE.pack(*directory.files[name]) for name in names)
    lists = b"".join(
        _CHUNK.pack(*chunk) for name in names for chunk in directory.chunks.get(name, ())
    )
    return _HEAD.pack(len(names), len(head)) + head + fixed + lists


def decode(value: bytes) -> Directory:
    count, names_length = _HEAD.unpack_from(value)
    start = _HEAD.size
    names = value[start : start + names_length].decode("utf-8", "surrogateescape").split("\0")
    start += names_length
    end = start + count * _FILE.size
    records = _FILE.iter_unpack(value[start:end])
    directory = Directory(dict(zip(names if count else [], records, strict=True)))
    if end < len(value):  # some file has a chunk list
        for name, record in directory.files.items():
            n = record[6]
            if n != ONE_CHUNK and n:
                listed = value[end : end + n * _CHUNK.size]
                directory.chunks[name] = tuple(_CHUNK.iter_unpack(listed))
                end += n * _CHUNK.size
    return directory


def _record(source: SourceFile, entry: FileEntry) -> tuple[Record, Chunks | None]:
    """What is recorded of a file read by this put (scanned: ``identity`` is set)."""
    assert source.identity is not None
    dev, ino = source.identity
    chunks = entry.chunks
    one = len(chunks) == 1 and chunks[0].length == entry.size
    digest = bytes(entry.digest)
    if one and bytes(chunks[0].chunk_id) == digest:
        count, listed = ONE_CHUNK, None
    else:
        count, listed = len(chunks), tuple((bytes(c.chunk_id), c.length) for c in chunks)
    record = (source.size, source.mtime_ns, source.ctime_ns, ino, dev, digest, count)
    return record, listed


def _unchanged(record: Record | None, source: SourceFile) -> bool:
    """Whether the five stat fields of ``source`` are as recorded."""
    if record is None or source.identity is None:
        return False  # unknown, or not scanned (an SDK add_file)
    return (
        record[0] == source.size
        and record[1] == source.mtime_ns
        and record[2] == source.ctime_ns
        and record[3] == source.identity[1]
        and record[4] == source.identity[0]
    )


def _entry(source: SourceFile, digest: bytes, chunks: Chunks | None) -> FileEntry:
    refs = (
        (ChunkRef(ChunkId(digest), source.size),)
        if chunks is None
        else tuple(ChunkRef(ChunkId(cid), length) for cid, length in chunks)
    )
    return FileEntry(
        source.path, Kind.FILE, source.mode, source.size, source.mtime_ns, FileDigest(digest), refs
    )


@dataclass
class ParentPut:
    """The record of one (artifact, source root) across one put.

    Made before the source is scanned (:meth:`begin` notes the start time that decides which
    files are racy), consulted under the commit lock (:meth:`reuse`: no gc can run between
    the chunk presence check and the commit), written after the commit (:meth:`record`).
    """

    art: ArtifactName
    root: str
    rehash: bool = False
    start_ns: int = 0
    reused: int = 0  # files taken from the record, not read
    _old: dict[str, Directory] = field(default_factory=dict)
    _read: list[SourceFile] = field(default_factory=list)  # files the ingest reads
    _dirty: set[str] = field(default_factory=set)  # directories whose record changes

    @classmethod
    def begin(cls, art: ArtifactName, source: Path, *, rehash: bool = False) -> ParentPut:
        return cls(art, os.path.realpath(source), rehash, time.time_ns())

    def reuse(
        self, index: Index, tree: SourceTree, progress: Progress | None = None
    ) -> list[FileEntry]:
        """Take the files of ``tree`` that the record knows unchanged, with all their chunks
        in the store, out of ``tree.files`` and return their entries; the ingest reads the
        rest. Call under the commit lock, so that gc cannot collect a chunk found here."""
        if not self.rehash:
            self._old = self._load(index)
        taken = self._match(tree.files)
        wanted = {ref.chunk_id for _, entry in taken for ref in entry.chunks}
        absent = index.missing(Table.CHUNKS, wanted)
        reused = []
        for source, entry in taken:
            if absent and any(ref.chunk_id in absent for ref in entry.chunks):
                self._read.append(source)  # collected by gc since: read it again
                self._dirty.add(source.path.rpartition("/")[0])
            else:
                reused.append(entry)
        tree.files = self._read
        self.reused = len(reused)
        if progress is not None:
            progress(sum(e.size for e in reused))
        return reused

    def _load(self, index: Index) -> dict[str, Directory]:
        """The record of this source; empty if there is none or it cannot be decoded (then
        it is replaced whole, as with ``rehash``): a cache never stops a put."""
        prefix = _root_prefix(self.art, self.root)
        try:
            with index.read() as txn:
                return dict(_split(value) for _, value in txn.scan(Table.STAT_CACHE, prefix))
        except (CorruptData, ValueError, struct.error):  # damaged, or another format
            self.rehash = True
            return {}

    def _match(self, files: list[SourceFile]) -> list[tuple[SourceFile, FileEntry]]:
        """The files whose five stat fields are as recorded, with their entries; the others
        go to ``_read``. Notes every directory whose record will change: one with a file to
        read, or with other names than recorded."""
        taken = []
        counts: dict[str, int] = {}
        name_of: str | None = None
        current = _EMPTY
        for source in files:
            # Files come directory by directory: one look-up per directory.
            directory, _, name = source.path.rpartition("/")
            if directory != name_of:
                name_of, current = directory, self._old.get(directory, _EMPTY)
            counts[directory] = counts.get(directory, 0) + 1
            record = current.files.get(name)
            if record is not None and _unchanged(record, source):
                entry = _entry(source, record[5], current.chunk_list(name))
                taken.append((source, entry))
            else:
                self._read.append(source)
                self._dirty.add(directory)
        # All the matched names of a directory are recorded ones: equal counts, equal names.
        self._dirty.update(d for d, n in counts.items() if len(self._old.get(d, _EMPTY).files) != n)
        self._dirty.update(d for d in self._old if d not in counts)
        return taken

    def record(self, index: Index, entries: list[FileEntry]) -> None:
        """Write the record of every directory that changed: each file of it seen by this
        put that is not racy, with its entry among ``entries`` (the version's)."""
        if not self._dirty:
            return
        new = self._directories(entries)
        prefix = _root_prefix(self.art, self.root)
        try:
            with index.write() as txn:
                if self.rehash:  # the old record was not loaded: replace it whole
                    txn.delete_prefix(Table.STAT_CACHE, prefix)
                for directory in self._dirty:
                    key = prefix + _hash16(directory)
                    if new[directory].files:
                        txn.put(Table.STAT_CACHE, key, _join(directory, new[directory]))
                    else:
                        txn.delete(Table.STAT_CACHE, key)
                _keep_recent(txn, self.art, _hash16(self.root))
        except StoreError:
            # The version is committed; the record is only a cache (a disk that filled up
            # meanwhile leaves the old one, and the next put reads what it does not cover).
            return

    def _directories(self, entries: list[FileEntry]) -> dict[str, Directory]:
        """The new records of the dirty directories: recorded files taken unread as they
        were, the files read with their new entries unless racy."""
        new = {d: Directory() for d in self._dirty}
        read = {source.path: source for source in self._read}
        limit = self.start_ns - RACY_NS
        for entry in entries:
            directory, _, name = entry.path.rpartition("/")
            if entry.is_dir or directory not in new:
                continue
            into, source = new[directory], read.get(entry.path)
            if source is None:  # taken unread: still as recorded
                old = self._old[directory]
                into.files[name] = old.files[name]
                if name in old.chunks:
                    into.chunks[name] = old.chunks[name]
            elif source.identity is not None and max(source.mtime_ns, source.ctime_ns) < limit:
                into.files[name], listed = _record(source, entry)
                if listed:
                    into.chunks[name] = listed
            # else racy (or not scanned): the next put reads it again
        return new


_EMPTY = Directory()


def _join(directory: str, files: Directory) -> bytes:
    """A directory's value: its path (length-prefixed), then :func:`encode`."""
    path = directory.encode("utf-8", "surrogateescape")
    return len(path).to_bytes(4, "little") + path + encode(files)


def _split(value: bytes) -> tuple[str, Directory]:
    length = int.from_bytes(value[:4], "little")
    directory = value[4 : 4 + length].decode("utf-8", "surrogateescape")
    return directory, decode(value[4 + length :])
