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
writes nothing. There is one record per (artifact, source root), dropped with the artifact.

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

from artfs.errors import StoreError
from artfs.names import ArtifactName
from artfs.store.catalog import artifact_key
from artfs.store.hashing import ChunkId, FileDigest
from artfs.store.index import Index, Table, Txn
from artfs.store.ingest import Progress, SourceFile, SourceTree
from artfs.store.manifest import ChunkRef, FileEntry, Kind

RACY_NS = 2_000_000_000
ONE_CHUNK = 0xFFFFFFFF

_HEAD = struct.Struct("<II")
_FILE = struct.Struct("<QqqQQ32sI")
_CHUNK = struct.Struct("<32sI")

# (size, mtime_ns, ctime_ns, ino, dev): a file whose five fields match is taken unread.
Stat = tuple[int, int, int, int, int]
# What a file's record holds: its stat, digest, and chunks (None: one chunk named by the digest).
Known = tuple[Stat, bytes, tuple[tuple[bytes, int], ...] | None]
Directory = dict[str, Known]  # file name -> what is known


def _hash16(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest()


def _root_prefix(art: ArtifactName, root: str) -> bytes:
    return artifact_key(art) + b"\0" + _hash16(root)


def drop(txn: Txn, art: ArtifactName) -> None:
    """Forget every source recorded for ``art`` (the artifact is deleted)."""
    txn.delete_prefix(Table.STAT_CACHE, artifact_key(art) + b"\0")


def encode(files: Directory) -> bytes:
    names = sorted(files)
    head = "\0".join(names).encode("utf-8", "surrogateescape")
    fixed, extra = [], []
    for name in names:
        stat, digest, chunks = files[name]
        count = ONE_CHUNK if chunks is None else len(chunks)
        fixed.append(_FILE.pack(*stat, digest, count))
        for chunk in chunks or ():
            extra.append(_CHUNK.pack(*chunk))
    return _HEAD.pack(len(names), len(head)) + head + b"".join(fixed) + b"".join(extra)


def decode(value: bytes) -> Directory:
    count, names_length = _HEAD.unpack_from(value)
    start = _HEAD.size
    names = value[start : start + names_length].decode("utf-8", "surrogateescape").split("\0")
    names = names if count else []  # "".split gives one name
    start += names_length
    end = start + count * _FILE.size
    chunks_at = end
    files: Directory = {}
    for name, (*stat, digest, n) in zip(names, _FILE.iter_unpack(value[start:end]), strict=True):
        chunks = None
        if n != ONE_CHUNK:
            chunks = tuple(_CHUNK.unpack_from(value, chunks_at + i * _CHUNK.size) for i in range(n))
            chunks_at += n * _CHUNK.size
        files[name] = ((stat[0], stat[1], stat[2], stat[3], stat[4]), digest, chunks)
    return files


def _stat_of(source: SourceFile) -> Stat | None:
    if source.identity is None:
        return None  # not scanned (an SDK add_file): nothing to compare with
    dev, ino = source.identity
    return (source.size, source.mtime_ns, source.ctime_ns, ino, dev)


def _split_path(path: str) -> tuple[str, str]:
    """(directory, name) of a version path; ``posixpath.split`` for these normalized paths,
    at half its cost (it is asked once per file)."""
    directory, _, name = path.rpartition("/")
    return directory, name


def _known(entry: FileEntry, stat: Stat) -> Known:
    chunks = entry.chunks
    one = len(chunks) == 1 and chunks[0].length == entry.size
    if one and bytes(chunks[0].chunk_id) == bytes(entry.digest):
        return (stat, bytes(entry.digest), None)
    return (stat, bytes(entry.digest), tuple((bytes(c.chunk_id), c.length) for c in chunks))


def _entry(source: SourceFile, known: Known) -> FileEntry:
    _, digest, chunks = known
    refs = (
        (ChunkRef(ChunkId(digest), source.size),)
        if chunks is None
        else tuple(ChunkRef(ChunkId(cid), length) for cid, length in chunks)
    )
    return FileEntry(
        source.path, Kind.FILE, source.mode, source.size, source.mtime_ns, FileDigest(digest), refs
    )


def _chunk_ids(known: Known) -> list[bytes]:
    _, digest, chunks = known
    return [digest] if chunks is None else [cid for cid, _ in chunks]


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
            with index.read() as txn:
                self._old = self._load(txn)
        matched, self._read = self._match(tree.files)
        absent = index.missing(Table.CHUNKS, {c for _, k in matched for c in _chunk_ids(k)})
        reused = []
        for source, known in matched:
            if absent and not absent.isdisjoint(_chunk_ids(known)):
                self._read.append(source)  # collected by gc since: read it again
                self._dirty.add(_split_path(source.path)[0])
            else:
                reused.append(_entry(source, known))
        tree.files = self._read
        self.reused = len(reused)
        if progress is not None:
            progress(sum(e.size for e in reused))
        return reused

    def _load(self, txn: Txn) -> dict[str, Directory]:
        return {
            directory: files
            for _, value in txn.scan(Table.STAT_CACHE, _root_prefix(self.art, self.root))
            for directory, files in [_split(value)]
        }

    def _match(
        self, files: list[SourceFile]
    ) -> tuple[list[tuple[SourceFile, Known]], list[SourceFile]]:
        """The files whose five stat fields are as recorded (with what is known of them),
        and the others. Notes every directory whose record will change: one with a file to
        read, or with other names than recorded."""
        matched, unread = [], []
        counts: dict[str, int] = {}
        for source in files:
            directory, name = _split_path(source.path)
            counts[directory] = counts.get(directory, 0) + 1
            known = self._old.get(directory, {}).get(name)
            if known is not None and known[0] == _stat_of(source):
                matched.append((source, known))
            else:
                unread.append(source)
                self._dirty.add(directory)
        # All the matched names of a directory are recorded ones: equal counts, equal names.
        self._dirty.update(d for d, n in counts.items() if len(self._old.get(d, ())) != n)
        self._dirty.update(d for d in self._old if d not in counts)
        return matched, unread

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
                    if new.get(directory):
                        txn.put(Table.STAT_CACHE, key, _join(directory, new[directory]))
                    else:
                        txn.delete(Table.STAT_CACHE, key)
        except StoreError:
            # The version is committed; the record is only a cache (a disk that filled up
            # meanwhile leaves the old one, and the next put reads what it does not cover).
            return

    def _directories(self, entries: list[FileEntry]) -> dict[str, Directory]:
        """The new records of the dirty directories: recorded files taken unread as they
        were, the files read with their new entries unless racy."""
        new: dict[str, Directory] = {d: {} for d in self._dirty}
        read = {source.path: source for source in self._read}
        limit = self.start_ns - RACY_NS
        for entry in entries:
            directory, name = _split_path(entry.path)
            if entry.is_dir or directory not in new:
                continue
            source = read.get(entry.path)
            if source is None:  # taken unread: still as recorded
                new[directory][name] = self._old[directory][name]
                continue
            stat = _stat_of(source)
            if stat is not None and max(stat[1], stat[2]) < limit:  # else racy: read again
                new[directory][name] = _known(entry, stat)
        return new


def _join(directory: str, files: Directory) -> bytes:
    """A directory's value: its path (length-prefixed), then :func:`encode`."""
    path = directory.encode("utf-8", "surrogateescape")
    return len(path).to_bytes(4, "little") + path + encode(files)


def _split(value: bytes) -> tuple[str, Directory]:
    length = int.from_bytes(value[:4], "little")
    directory = value[4 : 4 + length].decode("utf-8", "surrogateescape")
    return directory, decode(value[4 + length :])
