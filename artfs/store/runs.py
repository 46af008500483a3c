"""The runs and usage tables: their keys, and the reads and writes lineage makes of them.

What a run record or a usage edge holds is :mod:`artfs.lineage`'s business (it passes and gets
back encoded values); the store owns the keys, so that no layer above it touches a table::

    runs:  run id -> run record
    usage: b"u" + version key + run id           -> usage edge   (the consumers of a version)
           b"i" + run id + b"\\0" + version key   -> b""          (the inputs of a run)
           b"o" + run id + b"\\0" + version key   -> b""          (the outputs of a run, written
                                                                  by catalog.add_version)
           b"p" + version key + run id           -> b""          (a producer of a version
                                                                  besides its logged_by)
    opened: version key + run id                 -> file, file, ... (the files the run opened,
                                                                  8 bytes naming each; values
                                                                  of one key, see
                                                                  Txn.add_duplicates)

Before store format 3 a file opened was a usage key of its own, ``b"f" + version key + run id
+ file`` (:func:`move_opened_files` moves them).

A version key (``catalog.version_key``) is the artifact key, a NUL and a 4-byte number; names
never hold a NUL, so a consumer key splits unambiguously.

Functions take an open :class:`~artfs.store.index.Txn`, so lineage composes them into one
transaction with the catalogue's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from artfs.store.index import Table, Txn

_NUMBER = 4  # bytes of the version number that ends a version key


def output_key(run_id: str, vkey: bytes) -> bytes:
    """Usage-table key recording that run ``run_id`` logged the version at ``vkey``."""
    return b"o" + run_id.encode() + b"\0" + vkey


def _consumer_key(version_key: bytes, run_id: str) -> bytes:
    return b"u" + version_key + run_id.encode()


def _input_key(run_id: str, version_key: bytes) -> bytes:
    return b"i" + run_id.encode() + b"\0" + version_key


def get_run(txn: Txn, run_id: str) -> bytes | None:
    return txn.get(Table.RUNS, run_id.encode())


def put_run(txn: Txn, run_id: str, record: bytes, *, overwrite: bool = True) -> None:
    """Store a run record; with ``overwrite=False`` a run already recorded keeps its record."""
    txn.put(Table.RUNS, run_id.encode(), record, overwrite=overwrite)


def all_runs(txn: Txn) -> Iterator[bytes]:
    return (value for _, value in txn.scan(Table.RUNS))


def get_usage(txn: Txn, version_key: bytes, run_id: str) -> bytes | None:
    return txn.get(Table.USAGE, _consumer_key(version_key, run_id))


def put_usage(txn: Txn, version_key: bytes, run_id: str, edge: bytes, *, new: bool = True) -> None:
    """Store the edge from run ``run_id`` to the version at ``version_key``, both ways;
    ``new=False`` for an edge read in this transaction (its other way is there already)."""
    txn.put(Table.USAGE, _consumer_key(version_key, run_id), edge)
    if new:
        txn.put(Table.USAGE, _input_key(run_id, version_key), b"")


def all_usages(txn: Txn) -> Iterator[tuple[bytes, str, bytes]]:
    """Every usage edge: (version key, run id, edge)."""
    for key, value in txn.scan(Table.USAGE, b"u"):
        end = key.index(b"\0") + 1 + _NUMBER
        yield key[1:end], key[end:].decode(), value


def consumers(txn: Txn, version_key: bytes) -> Iterator[tuple[str, bytes]]:
    """The runs that used the version at ``version_key``: (run id, edge)."""
    prefix = b"u" + version_key
    for key, value in txn.scan(Table.USAGE, prefix):
        yield key[len(prefix) :].decode(), value


def inputs(txn: Txn, run_id: str) -> Iterator[bytes]:
    """The version keys of the versions run ``run_id`` used."""
    prefix = _input_key(run_id, b"")
    return (key[len(prefix) :] for key, _ in txn.scan(Table.USAGE, prefix))


def outputs(txn: Txn, run_id: str) -> Iterator[bytes]:
    """The version keys of the versions run ``run_id`` logged."""
    prefix = output_key(run_id, b"")
    return (key[len(prefix) :] for key, _ in txn.scan(Table.USAGE, prefix))


def add_opened_files(txn: Txn, version_key: bytes, run_id: str, files: Iterable[bytes]) -> int:
    """Note that run ``run_id`` opened ``files`` (8 bytes naming each) of the version at
    ``version_key``; returns how many it had not opened before (a file counts once however
    often opened)."""
    return txn.add_duplicates(Table.OPENED, version_key + run_id.encode(), files)


def drop_opened_files(txn: Txn, version_key: bytes) -> None:
    """Forget which files of the version at ``version_key`` each run opened (the version is
    deleted: its edges keep their counts, and nothing opens its files again)."""
    txn.delete_prefix(Table.OPENED, version_key)


def has_format2_opened_files(txn: Txn) -> bool:
    """Whether the usage table holds files opened as format 2 kept them."""
    return next(txn.keys(Table.USAGE, b"f"), None) is not None


def move_opened_files(txn: Txn, batch: int = 50_000) -> int:
    """Store format 2 -> 3: move each file opened from a usage key of its own to a value of
    its (version, run) key, ``batch`` keys at a time (a store may hold millions); returns
    how many files moved."""
    moved = 0
    # Only the keys say anything: a damaged value (never read before) must not stop the move.
    while keys := list(islice(txn.keys(Table.USAGE, b"f"), batch)):
        by_run: dict[tuple[bytes, str], list[bytes]] = {}
        for key in keys:
            end = key.find(b"\0") + 1 + _NUMBER
            if end <= _NUMBER or len(key) <= end + 8 or not key[end:-8].isascii():
                continue  # not a key format 2 wrote: dropped with the others
            by_run.setdefault((key[1:end], key[end:-8].decode()), []).append(key[-8:])
        for (version_key, run_id), files in by_run.items():
            moved += add_opened_files(txn, version_key, run_id, files)
        for key in keys:
            txn.delete(Table.USAGE, key)
    return moved


def add_producer(txn: Txn, version_key: bytes, run_id: str) -> None:
    """Record run ``run_id`` as one more producer of the version at ``version_key`` (a
    contributor to a distributed artifact): the version is among its outputs, and names it."""
    txn.put(Table.USAGE, output_key(run_id, version_key), b"")
    txn.put(Table.USAGE, b"p" + version_key + run_id.encode(), b"")


def producers(txn: Txn, version_key: bytes) -> Iterator[str]:
    """The runs recorded by :func:`add_producer` for the version at ``version_key``."""
    prefix = b"p" + version_key
    return (key[len(prefix) :].decode() for key, _ in txn.scan(Table.USAGE, prefix))
