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
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from artfs.errors import InputError, InvalidName
from artfs.names import check_path
from artfs.store import codec
from artfs.store.chunking import MIN_CHUNK, chunk_file, read_small
from artfs.store.chunkstore import ChunkLocation, ChunkWriter
from artfs.store.dictionaries import DictionaryPlan
from artfs.store.hashing import ChunkId, FileDigest, FileHasher, chunk_id, file_digest
from artfs.store.manifest import ChunkRef, FileEntry, Kind

Progress = Callable[[int], None]
_Encoded = tuple[codec.Codec, bytes]

# Bytes of chunks in flight between the hashing thread and the appends (compressing on a
# worker, or waiting behind one that is): bounds memory while the hashing thread runs ahead.
_IN_FLIGHT_BYTES = 32 << 20
# Chunks at least this large are compressed on a worker thread; smaller ones inline.
_ENCODE_ON_WORKER = 64 << 10
_WORKERS = max(2, min(4, os.cpu_count() or 2))
# Where a new chunk is until it is appended (one object: made per chunk it cost ~0.7 us).
_PLACEHOLDER = ChunkLocation(0, 0, 0, 0, 0)


@dataclass(frozen=True)
class SourceFile:
    path: str  # inside the version
    source: str | Path  # on disk
    size: int
    mode: int
    mtime_ns: int
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) when scanned
    ctime_ns: int = 0  # when scanned: with the rest, what a put with a parent compares


@dataclass
class SourceTree:
    """What a commit stores: files to ingest, directories, and ``ready`` entries that need no
    ingest (files of an earlier version whose chunks are stored, and references)."""

    files: list[SourceFile] = field(default_factory=list)
    dirs: list[FileEntry] = field(default_factory=list)
    ready: list[FileEntry] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def paths(self) -> list[str]:
        return [f.path for f in self.files] + [e.path for e in self.ready]

    def complete_dirs(self, mtime_ns: int) -> None:
        """Add an entry for every parent directory that has none (mode 0755)."""
        known = {d.path for d in self.dirs}
        # Each distinct parent once (a directory of 250 files is one walk, not 250).
        parents = {path.rpartition("/")[0] for path in self.paths()} | known
        for parent in parents:
            while parent and parent not in known:
                known.add(parent)
                self.dirs.append(FileEntry(parent, Kind.DIR, 0o755, 0, mtime_ns))
                parent = posixpath.dirname(parent)


def scan(source: Path, prefix: str = "", *, confine: bool = False) -> SourceTree:
    """Validate and list what ``source`` (a file or a directory) would store.

    With ``confine``, a symlink that resolves outside ``source`` is refused (staging: a commit
    must not pull in files from elsewhere on the machine).
    """
    try:
        st = os.stat(source)
    except FileNotFoundError:
        raise InputError(f"{source}: no such file or directory") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot read it ({exc.strerror})") from None
    tree = SourceTree()
    if stat.S_ISDIR(st.st_mode):
        root = os.path.realpath(source) if confine else None
        _scan_dir(source, prefix, tree, {(st.st_dev, st.st_ino)}, root)
    elif stat.S_ISREG(st.st_mode):
        name = prefix or source.name
        tree.files.append(_source_file(source, _inner_path(name, source), st))
    else:
        raise InputError(f"{source}: not a regular file or directory; artfs stores only those")
    return tree


def _inner_path(path: str, source: str | Path) -> str:
    try:
        return check_path(path)
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


def stored_mode(st_mode: int) -> int:
    """Permission bits as a version keeps them: setuid, setgid and sticky are dropped, so no
    version (or file restored from one) ever carries them."""
    return st_mode & 0o777  # stat.S_IMODE, without the call: once per scanned file


def _scan_dir(
    directory: Path,
    prefix: str,
    tree: SourceTree,
    ancestors: set[tuple[int, int]],
    root: str | None,
) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
        # stat by name relative to the directory: a third less than by whole path, per file.
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(f"{directory}: cannot list it ({exc.strerror})") from None
    try:
        _scan_entries(entries, dir_fd, prefix, tree, ancestors, root)
    finally:
        os.close(dir_fd)


def _scan_entries(
    entries: list[os.DirEntry[str]],
    dir_fd: int,
    prefix: str,
    tree: SourceTree,
    ancestors: set[tuple[int, int]],
    root: str | None,
) -> None:
    for entry in entries:
        # Plain strings, not Path objects: building one costs more than the stat, per file.
        # The prefix is checked already: only the name is (half the cost of the whole path).
        path = f"{prefix}/{entry.name}" if prefix else entry.name
        _inner_path(entry.name, entry.path)
        if root is not None and entry.is_symlink():
            target = os.path.realpath(entry.path)
            if not target.startswith(root + os.sep):
                raise InputError(
                    f"{entry.path}: a symlink to {target}, outside the tree being stored"
                )
        try:
            st = os.stat(entry.name, dir_fd=dir_fd)  # follows symlinks
        except FileNotFoundError:
            raise InputError(f"{entry.path}: a symlink that points nowhere") from None
        except OSError as exc:
            raise InputError(f"{entry.path}: cannot read it ({exc.strerror})") from None
        if stat.S_ISDIR(st.st_mode):
            ident = (st.st_dev, st.st_ino)
            if ident in ancestors:
                raise InputError(f"{entry.path}: a symlink loop back to a parent directory")
            tree.dirs.append(FileEntry(path, Kind.DIR, stored_mode(st.st_mode), 0, st.st_mtime_ns))
            _scan_dir(Path(entry.path), path, tree, ancestors | {ident}, root)
        elif stat.S_ISREG(st.st_mode):
            tree.files.append(_source_file(entry.path, path, st))
        else:
            raise InputError(
                f"{entry.path}: a special file (FIFO, socket or device); "
                "remove it or put only regular files and directories"
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
        self.new_chunks: dict[ChunkId, ChunkLocation] = {}
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
        order = sorted(range(len(files)), key=lambda i: files[i].size < _ENCODE_ON_WORKER)
        entries: dict[int, FileEntry] = {}
        with ThreadPoolExecutor(_WORKERS, thread_name_prefix="artfs-compress") as pool:
            self._dictionaries = DictionaryPlan(files, self._known, pool)
            for i in order:
                entries[i] = self._file(files[i], pool)
            self._drain(-1)  # all of them
        return [entries[i] for i in range(len(files))]

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
        self.new_chunks[cid] = _PLACEHOLDER
        self._pending.append((cid, raw_length, encoded))
        self._pending_bytes += raw_length
        self._drain(_IN_FLIGHT_BYTES)

    def _encode(
        self, pool: ThreadPoolExecutor, data: bytes | memoryview, source: SourceFile
    ) -> _Encoded | Future[_Encoded]:
        if len(data) >= _ENCODE_ON_WORKER:
            return pool.submit(codec.encode, data)
        # A thread hop costs more than encoding a small chunk (sampled or tiny) in place.
        dictionary = None
        if self._dictionaries is not None and source.size <= codec.DICT_MAX_INPUT:
            dictionary = self._dictionaries.for_path(source.path)
        chosen, payload = codec.encode(data, dictionary)
        if dictionary is not None and chosen == codec.Codec.ZSTD_DICT:
            # The dictionary is stored with the first chunk coded with it, in this commit.
            did = dictionary.id
            if did not in self.new_chunks and not self._known(did):
                self._add(did, len(dictionary.content), codec.encode(dictionary.content))
        return chosen, payload

    def _drain(self, keep_bytes: int) -> None:
        while self._pending and self._pending_bytes > keep_bytes:
            cid, raw_length, encoded = self._pending.popleft()
            self._pending_bytes -= raw_length
            chosen, payload = encoded.result() if isinstance(encoded, Future) else encoded
            self.new_chunks[cid] = self._writer.add(cid, chosen, payload, raw_length)
            self.stored_bytes += len(payload)
