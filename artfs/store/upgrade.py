"""The store's format marker, and the in-place upgrade of older formats.

Formats (the ``format`` record of the meta table; a store without one is format 1):

1. a version's files in the ``files`` table, one record per file and version (143 bytes a
   file a version, changed or not);
2. a version's record names its root tree, whose pages (the ``trees`` table, see
   :mod:`artfs.store.trees`) are shared by every version that has the same directory;
3. the files a run opened of a version are values of one key of the ``opened`` table, where
   each was a key of the usage table (73 bytes of index a file and run, now 34; see
   :mod:`artfs.store.runs`). A read-only opener reads format 2 as it is.

Opening a store of an older format upgrades it in one LMDB write transaction: a kill at any
instant leaves the old format or the new, never a mix. The ``files`` table is replaced by a
plain record of that name, so an artfs from before format 2 refuses the store at open (its
index open fails with ``MDB_INCOMPATIBLE``) instead of showing versions without files; from
format 2 on, a store newer than the code is refused by the marker, with one line.
"""

from __future__ import annotations

from pathlib import Path

from artfs.errors import StoreError
from artfs.store import catalog, manifest, runs
from artfs.store.catalog import COMMITTED, VersionRecord
from artfs.store.index import LEGACY_FILES, Index, Table, Txn
from artfs.store.manifest import FileEntry

FORMAT = 3
# The oldest format this artfs reads without upgrading it: format 3 changed only what the
# daemon writes when a run opens a file, which no read-only opener touches.
READS_FROM = 2
_KEY = b"format"
_TOMBSTONE = b"replaced by the trees table in artfs store format 2: use a newer artfs"


def stored_format(txn: Txn) -> int:
    data = txn.get(Table.META, _KEY)
    return 1 if data is None else int(data)


def ensure_current(index: Index, where: Path) -> int:
    """Refuse a store newer than this artfs; upgrade an older one in place (one write
    transaction, so concurrent openers wait for it and find it done). Returns the format the
    store had (``artfs upgrade`` reports it)."""
    with index.read() as txn:
        found = stored_format(txn)
        stray = found == FORMAT and runs.has_format2_opened_files(txn)
    if found == FORMAT and not stray:
        return found
    _refuse_newer(found, where)
    with index.write() as txn:
        found = stored_format(txn)
        _refuse_newer(found, where)
        if found < 2:
            _upgrade_to_trees(txn)
        # From format 2, and in a format-3 store what a format-2 daemon still mounted when it
        # was upgraded wrote since (its opens would otherwise count again, and outlive their
        # version).
        runs.move_opened_files(txn)
        txn.put(Table.META, _KEY, str(FORMAT).encode())
    return found


def require_current(index: Index, where: Path) -> None:
    """For a read-only opener, which cannot upgrade: StoreError unless this artfs reads the
    format as it is (:data:`READS_FROM` or newer, up to its own)."""
    with index.read() as txn:
        found = stored_format(txn)
    _refuse_newer(found, where)
    if found < READS_FROM:
        raise StoreError(
            f"the store at {where} has format {found}, older than this artfs's {FORMAT}: "
            "run 'artfs upgrade' to upgrade it in place, then try again"
        )


def _refuse_newer(found: int, where: Path) -> None:
    if found > FORMAT:
        raise StoreError(
            f"the store at {where} has format {found}, newer than this artfs reads "
            f"({FORMAT}): upgrade artfs"
        )


def _upgrade_to_trees(txn: Txn) -> None:
    """Format 1 -> 2: build each committed version's tree from its ``files`` records, name
    it in the version record, and replace the ``files`` table by its tombstone."""
    records = [VersionRecord.decode(value) for _, value in txn.scan(Table.VERSIONS)]
    for record in records:
        if record.state == COMMITTED:
            entries = [
                FileEntry.decode(manifest.path_from_key(record.key, key), value)
                for key, value in txn.legacy_scan(LEGACY_FILES, record.key)
            ]
            catalog.add_tree(txn, record, entries)
        else:
            record.tree = None
        catalog.put_version(txn, record)
    txn.bury_legacy(LEGACY_FILES, _TOMBSTONE)
