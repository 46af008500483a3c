"""Turning files on disk into chunks and file entries (the write half of a commit).

Two steps, so that every user mistake is found before a single byte is stored:

1. :func:`scan` walks the source, validates every path, follows symlinks (as ``cp -L`` and
   W&B's ``add_dir`` do), and refuses special files, dangling links and loops;
2. :class:`Ingest` cuts each file with content-defined chunking, hashes each chunk, skips chunks
   the store or this commit already has, compresses the rest on worker threads (zstd releases
   the GIL, so the two cores both work) and appends them in order to the chunk writer. Small
   files of a kind that shares structure are compressed with a dictionary trained for this
   commit (:mod:`artfs.store.dictionaries`).

Nothing here touches the catalogue: the caller commits the returned entries in one transaction.
"""

from __future__ import annotations

import os
import posixpath
import stat
import struct
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast, overload

from artfs.errors import InputError, InvalidName
from artfs.names import check_stored_path
from artfs.store import codec
from artfs.store.chunking import MIN_CHUNK, chunk_file, read_small
from artfs.store.chunkstore import ChunkWriter, NewChunks
from artfs.store.dictionaries import DictionaryPlan
from artfs.store.hashing import (
    ChunkId,
    FileDigest,
    FileHasher,
    blocks_if_raw,
    chunk_id,
    file_digest,
)
from artfs.store.manifest import ChunkRef, FileEntry, Kind

Progress = Callable[[int], None]
# A chunk's codec, the bytes to store, and its block digests (empty but for large raw chunks)
_Encoded = tuple[codec.Codec, bytes, bytes]

# Bytes of chunks in flight between the hashing thread and the appends (compressing on a
# worker, or waiting behind one that is): bounds memory while the hashing thread runs ahead.
_IN_FLIGHT_BYTES = 32 << 20
# Chunks at least this large are compressed on a worker thread; smaller ones inline.
_ENCODE_ON_WORKER = 64 << 10
_WORKERS = max(2, min(4, os.cpu_count() or 2))
# Where a new chunk is until it is appended (one object: made per chunk it cost ~0.7 us).


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file to store: where it goes in the version, where it is on disk, and what its
    ``stat`` said when it was listed."""

    path: str  # inside the version
    source: str | Path  # on disk
    size: int
    mode: int
    mtime_ns: int
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) when scanned
    ctime_ns: int = 0  # when scanned: with the rest, what a put with a parent compares


# The stat fields of one scanned entry, as a put with a parent compares and records them:
# size, mtime_ns, ctime_ns, inode, device, st_mode. Packed (44 bytes an entry) so that a
# directory's entries compare with what the last put recorded as one bytes comparison, and a
# scan of 1 M files keeps 44 MB of rows rather than a million objects.
ROW = struct.Struct("<QqqQQI")
_S_IFMT, _S_IFREG, _S_IFDIR = 0o170000, stat.S_IFREG, stat.S_IFDIR  # stat.S_IFMT(mode) inline


@dataclass(slots=True)
class Listing:
    """One scanned directory: its files and its subdirectories, each sorted by name, with
    their :data:`ROW` fields in the same order (``file_rows``, ``dir_rows``). A single file
    given as the source is a listing of one file at the version's root."""

    path: str  # inside the version ('' the root)
    source: str  # the directory on disk
    files: list[str] = field(default_factory=list)
    file_rows: bytes = b""
    dirs: list[str] = field(default_factory=list)
    dir_rows: bytes = b""

    def child(self, name: str) -> str:
        """The path inside the version of the entry ``name``."""
        return f"{self.path}/{name}" if self.path else name

    def source_file(self, index: int) -> SourceFile:
        """The ``index``-th file, ready for the ingest."""
        name = self.files[index]
        size, mtime_ns, ctime_ns, ino, dev, mode = ROW.unpack_from(self.file_rows, index * ROW.size)
        return SourceFile(
            self.child(name),
            f"{self.source}/{name}",
            size,
            stored_mode(mode),
            mtime_ns,
            (dev, ino),
            ctime_ns,
        )

    def source_files(self) -> list[SourceFile]:
        return [self.source_file(i) for i in range(len(self.files))]

    def dir_entries(self) -> list[FileEntry]:
        """The entries of the subdirectories (mode and mtime as scanned)."""
        return [
            FileEntry(self.child(name), Kind.DIR, stored_mode(row[5]), 0, row[1])
            for name, row in zip(self.dirs, ROW.iter_unpack(self.dir_rows), strict=True)
        ]


class ListedFiles(Sequence[SourceFile]):
    """Chosen files of some listings as a sequence whose :class:`SourceFile` s are made when
    asked for and not kept: a put of 1,000,000 files would otherwise hold a million of them
    (~440 bytes each with their strings) through the whole ingest."""

    def __init__(self) -> None:
        self._picks: list[tuple[Listing, Sequence[int]]] = []
        self._starts: list[int] = []
        self._count = 0
        self.size = 0  # bytes, as scanned

    def add(self, listing: Listing, indexes: Sequence[int]) -> None:
        """Add the files at ``indexes`` of ``listing``."""
        if indexes:
            self._picks.append((listing, indexes))
            self._starts.append(self._count)
            self._count += len(indexes)
            rows = listing.file_rows
            self.size += sum(ROW.unpack_from(rows, i * ROW.size)[0] for i in indexes)

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> SourceFile: ...

    @overload
    def __getitem__(self, index: slice) -> list[SourceFile]: ...

    def __getitem__(self, index: int | slice) -> SourceFile | list[SourceFile]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if not 0 <= index < self._count:
            raise IndexError(index)
        pick = bisect_right(self._starts, index) - 1
        listing, indexes = self._picks[pick]
        return listing.source_file(indexes[index - self._starts[pick]])

    def __iter__(self) -> Iterator[SourceFile]:
        for listing, indexes in self._picks:
            yield from (listing.source_file(i) for i in indexes)


class SourceTree:
    """What a commit stores: files to ingest, directories, and ``ready`` entries that need no
    ingest (files of an earlier version whose chunks are stored, and references).

    A scan also keeps its :class:`Listing` of each directory: ``files`` is made from them on
    first use, so a put with a parent that finds a directory unchanged never makes an object
    per file of it. Once ``files`` is made (or set) it is what the tree holds.
    """

    def __init__(
        self,
        files: list[SourceFile] | None = None,
        dirs: list[FileEntry] | None = None,
        ready: list[FileEntry] | None = None,
        listings: list[Listing] | None = None,
    ) -> None:
        self._files = files
        self.dirs = dirs if dirs is not None else []
        self.ready = ready if ready is not None else []
        self.listings = listings if listings is not None else []
        self._listed_bytes = 0

    @property
    def files(self) -> list[SourceFile]:
        if self._files is None:
            self._files = [f for listing in self.listings for f in listing.source_files()]
        return self._files

    @files.setter
    def files(self, files: list[SourceFile]) -> None:
        self._files = files

    @property
    def listed(self) -> bool:
        """Whether the files are still only the scan's listings (none made, none changed)."""
        return self._files is None and bool(self.listings)

    @property
    def total_bytes(self) -> int:
        if self._files is None:
            return self._listed_bytes
        return sum(f.size for f in self._files)

    def paths(self) -> list[str]:
        return [f.path for f in self.files] + [e.path for e in self.ready]

    def complete_dirs(self, mtime_ns: int) -> None:
        """Add an entry for every parent directory that has none (mode 0755). A scan's
        listings have theirs already: their files are not looked at."""
        known = {d.path for d in self.dirs}
        files = [] if self._files is None else [f.path for f in self._files]
        # Each distinct parent once (a directory of 250 files is one walk, not 250).
        parents = {path.rpartition("/")[0] for path in files + [e.path for e in self.ready]}
        for parent in parents | known | {listing.path for listing in self.listings}:
            while parent and parent not in known:
                known.add(parent)
                self.dirs.append(FileEntry(parent, Kind.DIR, 0o755, 0, mtime_ns))
                parent = posixpath.dirname(parent)


def scan(
    source: Path, prefix: str = "", *, confine: bool = False, markers: bool = False
) -> SourceTree:
    """Validate and list what ``source`` (a file or a directory) would store.

    With ``confine``, a symlink that resolves outside ``source`` is refused (staging: a commit
    must not pull in files from elsewhere on the machine). A name staging keeps for itself
    (:func:`~artfs.names.check_stored_path`) is refused unless ``markers`` (a staging's own
    scan, whose whiteout markers the commit reads apart).
    """
    try:
        st = os.stat(source)
    except FileNotFoundError:
        raise InputError(f"{source}: no such file or directory: check the path") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot read it ({exc.strerror})") from None
    tree = SourceTree()
    if stat.S_ISDIR(st.st_mode):
        root = os.path.realpath(source) if confine else None
        _scan_dir(str(source), prefix, tree, {(st.st_dev, st.st_ino)}, root, markers)
    elif stat.S_ISREG(st.st_mode):
        name = prefix or source.name
        path = _inner_path(name, source)
        if "/" in path:
            tree.files = [_source_file(source, path, st)]
        else:  # a listing of one file, so that a put with a parent covers it
            row = _row(st)
            tree.listings.append(Listing("", str(source.parent), [path], row))
            tree._listed_bytes = st.st_size
    else:
        raise InputError(f"{source}: not a regular file or directory; artfs stores only those")
    return tree


def _inner_path(path: str, source: str | Path, markers: bool = False) -> str:
    try:
        return check_stored_path(path, markers=markers)
    except InvalidName as exc:
        raise InputError(f"{source}: cannot be stored: {exc}") from None


def _source_file(source: str | Path, path: str, st: os.stat_result) -> SourceFile:
    return SourceFile(
        path,
        source,
        st.st_size,
        stored_mode(st.st_mode),
        st.st_mtime_ns,
        (st.st_dev, st.st_ino),
        st.st_ctime_ns,
    )


def _row(st: os.stat_result) -> bytes:
    return ROW.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_mode)


def stored_mode(st_mode: int) -> int:
    """Permission bits as a version keeps them: setuid, setgid and sticky are dropped, so no
    version (or file restored from one) ever carries them."""
    # stat.S_IMODE, without the call: once per scanned file. Taken from a table so that every
    # entry shares one int object per mode (Python caches only ints below 257: 0o644 is 420),
    # 28 bytes less per file held, ~28 MB at a million.
    return _MODES[st_mode & 0o777]


_MODES = tuple(range(0o1000))


def _scan_dir(
    directory: str,
    prefix: str,
    tree: SourceTree,
    ancestors: set[tuple[int, int]],
    root: str | None,
    markers: bool,
) -> None:
    try:
        # Names relative to the directory: a third less per stat than by whole path.
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(f"{directory}: cannot list it ({exc.strerror})") from None
    try:
        names = sorted(_names(directory, dir_fd, root))
        _check_names(names, prefix, directory, markers)
        listing = Listing(prefix, directory)
        tree.listings.append(listing)
        subdirs = _scan_entries(names, dir_fd, listing, tree)
    finally:
        os.close(dir_fd)
    for name, ident in subdirs:
        if ident in ancestors:
            raise InputError(
                f"{directory}/{name}: a symlink loop back to a parent directory: remove the link"
            )
        child = listing.child(name)
        _scan_dir(f"{directory}/{name}", child, tree, ancestors | {ident}, root, markers)


def _check_names(names: list[str], prefix: str, directory: str, markers: bool) -> None:
    """Refuse a name of ``directory`` (at ``prefix`` in the version) that is not UTF-8 or,
    unless ``markers``, that staging keeps for itself (:func:`check_stored_path`). Such names
    are rare: the names joined, encoded and searched once, show there is none."""
    joined = "/".join(names)
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        text = False
    else:
        text = True
        if markers or ".artfs-" not in joined:
            return
    for name in names:  # only the few that can be refused: a directory may hold 100,000
        if name.startswith(".artfs-") or not (text or name.isascii()):
            _inner_path(f"{prefix}/{name}" if prefix else name, f"{directory}/{name}", markers)


def _names(directory: str, dir_fd: int, root: str | None) -> list[str]:
    """The names in a directory, each checked; with ``root``, symlinks must resolve inside
    it (their type read from the listing, with no syscall of its own)."""
    try:
        if root is None:
            names = os.listdir(dir_fd)  # no DirEntry objects: ~20% of a scan's CPU time
        else:
            with os.scandir(dir_fd) as listed:
                entries = list(listed)
            for entry in entries:
                if entry.is_symlink():
                    _check_confined(f"{directory}/{entry.name}", root)
            names = [entry.name for entry in entries]
    except OSError as exc:
        raise InputError(f"{directory}: cannot list it ({exc.strerror})") from None
    # A name from the OS has no '/' or NUL and is never '.' or '..': only its length can be
    # refused, and 63 characters are at most 252 bytes of UTF-8.
    if names and max(map(len, names)) > 63:
        for name in names:
            _inner_path(name, f"{directory}/{name}", markers=True)  # reserved: _check_names
    return names


def _scan_entries(
    names: list[str], dir_fd: int, listing: Listing, tree: SourceTree
) -> list[tuple[str, tuple[int, int]]]:
    """Stat the entries of one directory into ``listing`` (and its subdirectories' entries
    into ``tree.dirs``); returns the subdirectories to scan, with their (device, inode).
    The loop runs once per file of the source: ~0.5 us of Python beside the stat."""
    file_rows: list[bytes] = []
    dir_rows: list[bytes] = []
    subdirs: list[tuple[str, tuple[int, int]]] = []
    add_file, add_row = listing.files.append, file_rows.append
    pack, stat_at = ROW.pack, os.stat
    size = 0
    for name in names:
        try:
            st = stat_at(name, dir_fd=dir_fd)  # follows symlinks
        except OSError as exc:
            raise _stat_error(f"{listing.source}/{name}", exc) from None
        mode = st.st_mode
        if mode & _S_IFMT == _S_IFREG:
            add_file(name)
            add_row(pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, mode))
            size += st.st_size
        elif mode & _S_IFMT == _S_IFDIR:
            listing.dirs.append(name)
            dir_rows.append(
                pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, mode)
            )
            subdirs.append((name, (st.st_dev, st.st_ino)))
            tree.dirs.append(
                FileEntry(listing.child(name), Kind.DIR, stored_mode(mode), 0, st.st_mtime_ns)
            )
        else:
            raise InputError(
                f"{listing.source}/{name}: a special file (FIFO, socket or device); "
                "remove it: only regular files, directories and symlinks to them are stored"
            )
    listing.file_rows, listing.dir_rows = b"".join(file_rows), b"".join(dir_rows)
    tree._listed_bytes += size
    return subdirs


def _stat_error(path: str, exc: OSError) -> InputError:
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{path}: a symlink that points nowhere: remove it or fix its target")
    return InputError(f"{path}: cannot read it ({exc.strerror})")


def _check_confined(path: str, root: str) -> None:
    target = os.path.realpath(path)
    if not target.startswith(root + os.sep):
        # The link's own text: where it resolves may be a path the user never sees (inside
        # ARTFS_HOME, for a link out of a staging).
        raise InputError(
            f"{path}: a symlink to {os.readlink(path)!r}, outside the tree being stored: "
            "copy the file in instead of linking it"
        )


class Ingest:
    """Stores the content of scanned files through one chunk writer.

    ``known(chunk_id)`` says whether the store already holds a chunk; chunks new to the store
    are added to :attr:`new_chunks` for the caller to index in its commit transaction.
    """

    def __init__(
        self,
        writer: ChunkWriter,
        known: Callable[[ChunkId], bool],
        progress: Progress | None = None,
    ) -> None:
        self._writer = writer
        self._known = known
        self._progress = progress or (lambda n: None)
        self.new_chunks = NewChunks()
        self.stored_bytes = 0
        # Chunks waiting to be appended in order: the encoding, or its future when a worker
        # thread encodes it.
        self._pending: deque[tuple[ChunkId, int, _Encoded | Future[_Encoded]]] = deque()
        self._pending_bytes = 0
        self._dictionaries: DictionaryPlan | None = None  # made by run()

    def run(self, files: Sequence[SourceFile]) -> list[FileEntry]:
        """The entries of ``files``, in their order. Files large enough to be compressed on
        worker threads are read first, so that the workers compress them while this thread
        goes through the small files (in order, so that they lie in the packs as they lie in
        the tree, which is the order readers take them in)."""
        # No index list or dict over every file: at a million files those alone held
        # ~100 MB at the put's peak (issue 16's 1 GiB bound).
        entries: list[FileEntry | None] = [None] * len(files)
        with ThreadPoolExecutor(_WORKERS, thread_name_prefix="artfs-compress") as pool:
            self._dictionaries = DictionaryPlan(files, self._known, pool)
            large = [i for i, f in enumerate(files) if f.size >= _ENCODE_ON_WORKER]
            for i in large:
                entries[i] = self._file(files[i], pool)
            for i, entry in enumerate(entries):
                if entry is None:
                    entries[i] = self._file(files[i], pool)
            self._drain(-1)  # all of them
        return cast("list[FileEntry]", entries)

    def _file(self, source: SourceFile, pool: ThreadPoolExecutor) -> FileEntry:
        if source.size <= MIN_CHUNK:
            return self._small_file(source, pool)
        refs: list[ChunkRef] = []
        # A one-chunk file's digest is its chunk id (both are BLAKE3 of the same bytes), so
        # the whole-file hash is only fed once a second chunk shows up.
        hasher: FileHasher | None = None
        first: bytes | memoryview = b""
        size = 0
        try:
            for data in chunk_file(source.source, source.size, source.identity):
                cid = chunk_id(data)
                refs.append(ChunkRef(cid, len(data)))
                if len(refs) == 1:
                    first = data
                else:
                    if hasher is None:
                        hasher = FileHasher()
                        hasher.update(first)
                    hasher.update(data)
                size += len(data)
                if cid not in self.new_chunks and not self._known(cid):
                    self._add(cid, len(data), self._encode(pool, data, source))
                self._progress(len(data))
        except OSError as exc:
            raise InputError(f"{source.source}: cannot read it ({exc.strerror})") from None
        if size != source.size:
            raise InputError(f"{source.source}: changed while it was being stored; try again")
        if hasher is not None:
            digest = hasher.digest()
        else:
            digest = FileDigest(refs[0].chunk_id) if refs else file_digest(b"")
        return FileEntry(
            source.path, Kind.FILE, source.mode, size, source.mtime_ns, digest, tuple(refs)
        )

    def _small_file(self, source: SourceFile, pool: ThreadPoolExecutor) -> FileEntry:
        """A file of one chunk (most files of a dataset): the loop of :meth:`_file` without
        the generator, the list or the whole-file hasher, which cost ~20% of the time of a
        small file here. Its digest is its chunk id."""
        try:
            data = read_small(source.source, source.size, source.identity)
        except OSError as exc:
            raise InputError(f"{source.source}: cannot read it ({exc.strerror})") from None
        size = len(data)
        if size != source.size:
            raise InputError(f"{source.source}: changed while it was being stored; try again")
        refs: tuple[ChunkRef, ...] = ()
        if not size:
            digest = file_digest(b"")
        else:
            cid = chunk_id(data)
            if cid not in self.new_chunks and not self._known(cid):
                self._add(cid, size, self._encode(pool, data, source))
            self._progress(size)
            digest, refs = FileDigest(cid), (ChunkRef(cid, size),)
        return FileEntry(source.path, Kind.FILE, source.mode, size, source.mtime_ns, digest, refs)

    def _add(self, cid: ChunkId, raw_length: int, encoded: _Encoded | Future[_Encoded]) -> None:
        self.new_chunks.reserve(cid)
        self._pending.append((cid, raw_length, encoded))
        self._pending_bytes += raw_length
        self._drain(_IN_FLIGHT_BYTES)

    def _encode(
        self, pool: ThreadPoolExecutor, data: bytes | memoryview, source: SourceFile
    ) -> _Encoded | Future[_Encoded]:
        if len(data) >= _ENCODE_ON_WORKER:
            return pool.submit(_encode_large, data)
        # A thread hop costs more than encoding a small chunk (sampled or tiny) in place.
        dictionary = None
        if self._dictionaries is not None and source.size <= codec.DICT_MAX_INPUT:
            dictionary = self._dictionaries.for_path(source.path)
        chosen, payload = codec.encode(data, dictionary)
        if dictionary is not None and chosen == codec.Codec.ZSTD_DICT:
            # The dictionary is stored with the first chunk coded with it, in this commit.
            did = dictionary.id
            if did not in self.new_chunks and not self._known(did):
                self._add(did, len(dictionary.content), (*codec.encode(dictionary.content), b""))
        return chosen, payload, b""

    def _drain(self, keep_bytes: int) -> None:
        while self._pending and self._pending_bytes > keep_bytes:
            cid, raw_length, encoded = self._pending.popleft()
            self._pending_bytes -= raw_length
            chosen, payload, blocks = encoded.result() if isinstance(encoded, Future) else encoded
            self.new_chunks.add(cid, self._writer.add(cid, chosen, payload, raw_length), blocks)
            self.stored_bytes += len(payload)


def _encode_large(data: bytes | memoryview) -> _Encoded:
    """A large chunk encoded on a worker thread, with its block digests if it is stored raw
    and large enough to be read in blocks (see ``hashing.BLOCKS_FROM``)."""
    chosen, payload = codec.encode(data)
    return chosen, payload, blocks_if_raw(chosen == codec.Codec.RAW, data)
