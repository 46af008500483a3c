"""The LMDB index (the one module importing ``lmdb``).

One LMDB environment holds every table of the store as a named database. This module knows
tables, keys and bytes, nothing about what they mean: :mod:`artfs.store.catalog` gives them
meaning. Read transactions are MVCC snapshots (readers never block the single writer, and
several processes share the environment safely); a write transaction is atomic and durable
when it returns, which is what makes a commit all-or-nothing.
"""

from __future__ import annotations

import enum
import errno
import mmap
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import lmdb

from artfs.errors import CorruptData, StoreError

# The map is address space, not disk: the file grows as data is added. 1 TiB of index
# covers billions of chunks.
MAP_SIZE = 1 << 40
MAX_READERS = 1024


class Table(enum.Enum):
    CHUNKS = b"chunks"  # chunk id -> ChunkLocation
    # chunk id -> a 16-byte BLAKE3 of each 64 KiB block of a large raw chunk (block_digests)
    CHUNK_BLOCKS = b"chunk-blocks"
    PROJECTS = b"projects"  # project -> JSON
    ARTIFACTS = b"artifacts"  # project/name -> JSON
    VERSIONS = b"versions"  # project/name \0 u32be -> JSON
    TREES = b"trees"  # tree page id -> page (see artfs.store.trees)
    ALIASES = b"aliases"  # project/name \0 alias -> u32be
    ALIAS_TIMES = b"alias-times"  # project/name \0 alias -> u32be version, u64be ns it was set
    DIGESTS = b"digests"  # project/name \0 version digest -> u32be
    RUNS = b"runs"  # run id -> JSON
    USAGE = b"usage"  # version key + run id -> JSON
    META = b"meta"  # store-wide settings
    REMOTE_CHUNKS = b"remote-chunks"  # chunk id -> where it is on the default remote
    HISTORY = b"history"  # run id \0 u32be(row) -> JSON metrics row (see store/history.py)
    STAT_CACHE = b"stat-cache"  # artifact \0 source root, directory -> what a put saw there
    # version key + run id -> one duplicate per file the run opened (see add_duplicates)
    OPENED = b"opened"


# Tables whose keys hold many sorted values (LMDB's MDB_DUPSORT: a value costs its own bytes
# and a node's header, not a key of its own), and the one size of those values before the CRC.
# Not MDB_DUPFIXED, which would save the headers: LMDB 0.9.36's compacting copy (mdb_copy -c,
# Environment.copy(compact=True)) crashes on a DUPFIXED key holding more than a page of values.
_DUPLICATES = {Table.OPENED: 8}


def _seal(key: bytes, value: bytes) -> bytes:
    return value + zlib.crc32(value, zlib.crc32(key)).to_bytes(4, "little")


# A table of an older format, read only by the upgrade that replaces it.
LEGACY_FILES = b"files"  # format 1: version key + dir + \0 + name -> encoded FileEntry


def _open(table: Table | bytes, key: bytes, stored: bytes) -> bytes:
    """The value of a stored record; CorruptData when key or value bytes were damaged."""
    value, check = stored[:-4], stored[-4:]
    if len(stored) < 4 or zlib.crc32(value, zlib.crc32(key)).to_bytes(4, "little") != check:
        name = table.value if isinstance(table, Table) else table
        raise CorruptData(
            f"the index entry {key[:60]!r} of table {name.decode()} is damaged: "
            "run 'artfs verify' and restore the store from a backup"
        )
    return value


class Txn:
    """A transaction with table-typed get/put/delete and ordered prefix scans.

    Every value is stored with a CRC-32 over its key and value, checked on every read: LMDB
    itself checksums nothing, and a flipped bit in a file tree or chunk location must be an
    error, never a wrong answer.
    """

    def __init__(
        self,
        txn: lmdb.Transaction,
        dbs: dict[Table, lmdb._Database],
        env: lmdb.Environment,
        missing_page: MissingPage | None = None,
    ) -> None:
        self._txn = txn
        self._dbs = dbs
        self._env = env
        # Where a tree page the index lacks is read from (a remote-backed store's lazy
        # pages; see Store._lazy_page), or None: the catalogue calls it, this module does not.
        self.missing_page = missing_page

    def get(self, table: Table, key: bytes) -> bytes | None:
        db = self._dbs.get(table)
        if db is None:  # a table a read-only index does not have: empty
            return None
        value = self._txn.get(key, db=db)
        return None if value is None else _open(table, key, bytes(value))

    def put(self, table: Table, key: bytes, value: bytes, *, overwrite: bool = True) -> bool:
        """Store ``value``; with ``overwrite=False`` keep an existing value and return False."""
        return bool(self._txn.put(key, _seal(key, value), db=self._dbs[table], overwrite=overwrite))

    def add_duplicates(self, table: Table, key: bytes, values: Iterable[bytes]) -> int:
        """Add ``values`` (each of the table's one size) under ``key`` of a table of
        duplicates, each unless it is there already; returns how many were new. A value is
        sealed as a record's is (so :meth:`scan` checks it) and stored sorted among its key's
        others: 34 bytes of index a file opened where a key of its own took 73, and a third of
        the CPU to write, the commit's included (see docs/lineage.md)."""
        crc32, base, size = zlib.crc32, zlib.crc32(key), _DUPLICATES[table]
        items = [(key, value + crc32(value, base).to_bytes(4, "little")) for value in values]
        if not items:
            return 0
        if any(len(value) != size + 4 for _, value in items):
            raise ValueError(f"a value of table {table.value.decode()} is not {size} bytes")
        with self._txn.cursor(db=self._dbs[table]) as cursor:
            # dupdata=False is LMDB's MDB_NODUPDATA: a pair already there is not added again
            return int(cursor.putmulti(items, dupdata=False)[1])

    def delete(self, table: Table, key: bytes) -> bool:
        """Delete ``key`` (in a table of duplicates, with all its values)."""
        return bool(self._txn.delete(key, db=self._dbs[table]))

    def scan(
        self, table: Table, prefix: bytes = b"", start: bytes = b""
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs whose key starts with ``prefix``, in key order, from ``prefix + start`` on."""
        if table not in self._dbs:
            return iter(())
        return self._scan(self._dbs[table], table, prefix, prefix + start)

    def _scan(
        self, db: lmdb._Database, table: Table | bytes, prefix: bytes, start: bytes
    ) -> Iterator[tuple[bytes, bytes]]:
        with self._txn.cursor(db=db) as cursor:
            if not cursor.set_range(start):
                return
            for raw_key, value in cursor:
                key = bytes(raw_key)
                if not key.startswith(prefix):
                    return
                yield key, _open(table, key, bytes(value))

    def keys(self, table: Table, prefix: bytes = b"") -> Iterator[bytes]:
        """The keys starting with ``prefix``, in order, each once (in a table of duplicates
        too); their values are neither read nor checked."""
        if table not in self._dbs:
            return
        with self._txn.cursor(db=self._dbs[table]) as cursor:
            if not cursor.set_range(prefix):
                return
            for raw_key in cursor.iternext_nodup(keys=True, values=False):
                key = bytes(raw_key)
                if not key.startswith(prefix):
                    return
                yield key

    def delete_prefix(self, table: Table, prefix: bytes) -> int:
        """Delete every key starting with ``prefix`` (with all its values); returns how many
        keys went."""
        keys = list(self.keys(table, prefix))
        for key in keys:
            self._txn.delete(key, db=self._dbs[table])
        return len(keys)

    def count(self, table: Table) -> int:
        if table not in self._dbs:
            return 0
        return int(self._txn.stat(self._dbs[table])["entries"])

    def used_bytes(self, table: Table) -> int:
        """Bytes of the LMDB pages ``table`` occupies (branch, leaf and overflow pages)."""
        if table not in self._dbs:
            return 0
        stat = self._txn.stat(self._dbs[table])
        pages = stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
        return int(pages * stat["psize"])

    # --- tables of older formats (the upgrade's) ----------------------------------------------

    def _legacy(self, name: bytes) -> lmdb._Database | None:
        try:
            return self._env.open_db(name, txn=self._txn, create=False)
        except (lmdb.NotFoundError, lmdb.IncompatibleError):
            return None  # never made, or already replaced by a tombstone

    def legacy_scan(self, name: bytes, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Pairs of the older table ``name`` whose key starts with ``prefix`` (none if the
        table does not exist), checked as in :meth:`scan`."""
        db = self._legacy(name)
        return iter(()) if db is None else self._scan(db, name, prefix, prefix)

    def bury_legacy(self, name: bytes, tombstone: bytes) -> None:
        """Drop the older table ``name`` and leave a plain record of that name in its place:
        an artfs that still opens the table then fails at open (MDB_INCOMPATIBLE) rather
        than reading an empty table as an empty store."""
        db = self._legacy(name)
        if db is not None:
            self._txn.drop(db, delete=True)
        self._txn.put(name, tombstone)


def _open_tables(env: lmdb.Environment, readonly: bool) -> dict[Table, lmdb._Database]:
    """Every table; read-only, a table the store does not have yet (made by an older artfs,
    which no newer one has opened for writing since) is left out and reads as empty."""
    dbs = {}
    for table in Table:
        try:
            many = table in _DUPLICATES
            dbs[table] = env.open_db(table.value, create=not readonly, dupsort=many)
        except lmdb.NotFoundError:
            if not readonly:
                raise
    return dbs


# (transaction, tree page id) -> the page's bytes, or None when there is nowhere to get it.
MissingPage = Callable[["Txn", bytes], "bytes | None"]


def _unreadable(exc: lmdb.Error) -> CorruptData:
    return CorruptData(f"the index cannot be read ({exc}): restore it from a backup")


class _Reading:
    """:meth:`Index.read`'s context manager. A class rather than a generator: the mount opens
    a read transaction per cold lookup and open, and this costs ~0.8 us of the 1.8 a
    ``contextmanager`` took."""

    __slots__ = ("_index", "_txn")

    def __init__(self, index: Index) -> None:
        self._index = index
        self._txn: lmdb.Transaction | None = None

    def __enter__(self) -> Txn:
        index = self._index
        try:
            self._txn = index._env.begin(write=False, buffers=False)
        except lmdb.Error as exc:
            raise _unreadable(exc) from exc
        return Txn(self._txn, index._dbs, index._env, index.missing_page)

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        assert self._txn is not None
        try:
            self._txn.abort()  # read only: nothing to keep
        except lmdb.Error as failed:
            if exc is None:
                raise _unreadable(failed) from failed
        if isinstance(exc, lmdb.Error):
            raise _unreadable(exc) from exc


class Index:
    def __init__(self, env: lmdb.Environment, dbs: dict[Table, lmdb._Database]) -> None:
        self._env = env
        self._dbs = dbs
        self.missing_page: MissingPage | None = None  # handed to every transaction

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Index:
        try:
            path.mkdir(parents=True, exist_ok=True)
            env = lmdb.open(
                str(path),
                map_size=MAP_SIZE,
                max_dbs=len(Table) + 2,
                max_readers=MAX_READERS,
                subdir=True,
                readonly=readonly,
                lock=True,
            )
            # Reader slots of processes that died (a killed daemon) would pin old pages.
            env.reader_check()
            dbs = _open_tables(env, readonly)
        except lmdb.Error as exc:
            raise StoreError(f"cannot open the index at {path}: {exc}") from exc
        return cls(env, dbs)

    def read(self) -> _Reading:
        """A read transaction: ``with index.read() as txn``. An LMDB error in it is
        CorruptData."""
        return _Reading(self)

    @contextmanager
    def presence(
        self, table: Table, renew_every: int = 256, renew_after: float = 0.1
    ) -> Iterator[Callable[[bytes], bool]]:
        """``has(key)`` for a long run of existence checks (an ingest asks once per chunk).

        One read transaction serves up to ``renew_every`` checks or ``renew_after`` seconds,
        then is renewed: a transaction per check costs more than the check, and one held for a
        whole ingest would pin old pages while other writers (a daemon recording usage) go on.
        A damaged record is CorruptData, as for :meth:`Txn.get`.
        """
        db = self._dbs[table]
        try:
            txn = self._env.begin(write=False)
            left, renew_at = renew_every, time.monotonic() + renew_after

            def has(key: bytes) -> bool:
                nonlocal txn, left, renew_at
                left -= 1
                if left < 0 or time.monotonic() > renew_at:
                    txn.abort()
                    txn = self._env.begin(write=False)
                    left, renew_at = renew_every, time.monotonic() + renew_after
                value = txn.get(key, db=db)
                if value is None:
                    return False
                _open(table, key, value)  # CorruptData if the record was damaged
                return True

            try:
                yield has
            finally:
                txn.abort()
        except lmdb.Error as exc:
            raise CorruptData(
                f"the index cannot be read ({exc}): restore it from a backup"
            ) from exc

    def missing(self, table: Table, keys: Iterable[bytes]) -> set[bytes]:
        """The ``keys`` that ``table`` lacks, from one read transaction (a put with a parent
        asks for every chunk of a version at once: ~0.5 us a key, against ~3 us through
        :meth:`presence`). A damaged record is CorruptData, as for :meth:`Txn.get`."""
        db = self._dbs[table]
        absent = set()
        try:
            with self._env.begin(write=False) as txn:
                get = txn.get
                for key in keys:
                    value = get(key, db=db)
                    if value is None:
                        absent.add(key)
                    else:
                        _open(table, key, value)
        except lmdb.Error as exc:
            raise CorruptData(
                f"the index cannot be read ({exc}): restore it from a backup"
            ) from exc
        return absent

    @contextmanager
    def write(self) -> Iterator[Txn]:
        try:
            with self._env.begin(write=True) as txn:
                yield Txn(txn, self._dbs, self._env, self.missing_page)
        except lmdb.MapFullError as exc:
            raise StoreError("the index is full: raise MAP_SIZE") from exc
        except lmdb.Error as exc:
            if getattr(exc, "errno", None) == errno.ENOSPC or "No space" in str(exc):
                raise StoreError("no space left on the device holding the store") from exc
            raise StoreError(f"index write failed: {exc}") from exc

    def sync(self) -> None:
        self._env.sync(True)

    def hold_in_memory(self, limit: int) -> mmap.mmap | None:
        """Read the index's file into the page cache, if it is at most ``limit`` bytes, and
        keep it there while the returned read-only mapping is open (the caller closes it).
        Mapped pages survive a drop of the clean caches; memory pressure still reclaims them,
        and a later look reads them back. What the file grows by later is not held. None,
        and nothing held, for a larger (or empty) file.

        Opening ``data.mdb`` a second time in this process is safe for LMDB, whose locks are
        on ``lock.mdb``: closing this descriptor releases none of them."""
        with open(Path(self._env.path()) / "data.mdb", "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if not 0 < size <= limit:
                return None
            # MAP_POPULATE reads the whole file in before mmap returns (the GIL let go).
            flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
            return mmap.mmap(file.fileno(), size, flags=flags, prot=mmap.PROT_READ)

    def close(self) -> None:
        self._env.close()
