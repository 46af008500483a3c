"""Versions that come from elsewhere: adopting a remote's versions at their own numbers
(artfs pull, clone, a remote-backed store's refresh and commits), following the remote's
deletions and aliases, and the remote-facing records that go with them (where the remote's
chunks and tree pages are, which of its packs are recorded, tree pages read lazily).

The store facade (:class:`artfs.store.repository.Store`) keeps the public methods and calls
these functions; they take the index (or the few parts of the store they use) so that this
module need not import the facade.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from artfs.errors import Conflict, CorruptData
from artfs.names import ArtifactName
from artfs.store import catalog, codec, trees
from artfs.store.catalog import ArtifactRecord, VersionRecord
from artfs.store.chunkstore import ChunkLocation, ChunkStore, RemoteChunk
from artfs.store.hashing import ChunkId, TreeId, blocks_if_raw
from artfs.store.index import Index, Table, Txn
from artfs.store.manifest import ChunkRef, FileEntry, encode_path
from artfs.store.ports import ChunkSource

# META key prefix: per artifact, the version numbers the default remote listed last time.
_SEEN = b"remote-seen:"
# META key prefix: per remote, the packs whose chunk locations are recorded.
_PACKS = b"remote-packs:"


class StoreParts(Protocol):
    """What adopting a version needs of the store: its index, its chunks and its commit lock
    (the facade, :class:`artfs.store.repository.Store`, has them)."""

    index: Index
    chunks: ChunkStore

    def commit_lock(self) -> AbstractContextManager[None]: ...


def missing_chunks(index: Index, ids: Iterable[ChunkId]) -> list[ChunkId]:
    """The ids (in first-seen order, once each) that the store holds no chunk for."""
    missing: dict[ChunkId, None] = {}
    with index.read() as txn:
        for cid in ids:
            if cid not in missing and txn.get(Table.CHUNKS, cid) is None:
                missing[cid] = None
    return list(missing)


def record_remote_locations(index: Index, where: Mapping[ChunkId, RemoteChunk]) -> None:
    """Record where chunks are on the default remote (one transaction)."""
    with index.write() as txn:
        for cid, loc in where.items():
            txn.put(Table.REMOTE_CHUNKS, cid, loc.encode())


def recorded_remote_packs(index: Index, remote: str) -> set[str]:
    """The packs of ``remote`` (its description) whose every chunk and tree page has its
    location recorded here (:func:`record_remote_packs`)."""
    with index.read() as txn:
        data = txn.get(Table.META, _PACKS + remote.encode())
    return set(json.loads(data)) if data is not None else set()


def record_remote_packs(
    index: Index, remote: str, packs: Mapping[str, Mapping[ChunkId, RemoteChunk]]
) -> None:
    """Record where the chunks and tree pages of ``packs`` are, and that they are (one
    transaction). A version adopted from a remote in the tree format names no locations:
    the refresh that adopts it records those of the packs it has not recorded yet, so a
    lazy read finds a page or chunk as it found one of a record that listed them."""
    key = _PACKS + remote.encode()
    with index.write() as txn:
        stored = txn.get(Table.META, key)
        done = set(json.loads(stored)) if stored is not None else set()
        for chunks in packs.values():
            for cid, loc in chunks.items():
                txn.put(Table.REMOTE_CHUNKS, cid, loc.encode())
        txn.put(Table.META, key, json.dumps(sorted(done | packs.keys())).encode())


def adopt_version(
    store: StoreParts,
    record: VersionRecord,
    entries: list[FileEntry],
    chunks: Iterable[tuple[ChunkId, int, bytes, int]] = (),
    remote_chunks: Mapping[ChunkId, bytes] | None = None,
    pages: Mapping[TreeId, bytes] | None = None,
) -> bool:
    """Add a version made elsewhere at its own number, with stored chunks
    ``(id, codec, payload, raw_length)`` the caller has verified, and where its chunks are
    on the default remote (``remote_chunks``: id -> encoded location, recorded whether or
    not the version was new).

    Without ``entries``, ``record.tree`` names the version's root: ``pages`` (verified by
    the caller) are written with it, and must be every page of that tree the index lacks
    or none at all (a lazy version: its pages are read when wanted, see :func:`lazy_page`),
    so a page in the index always has its whole subtree there. With ``entries`` (a record
    in the format from before trees), the tree is built here.

    A chunk stored raw and large enough gets its block digests here, as at ingest
    (``hashing.blocks_if_raw``): the mount reads a pulled version's large files at random in
    blocks, as it does a version put here. Like the chunks' locations, they are held until the
    one transaction that indexes them (16 bytes per 64 KiB of such chunks), and hashing them
    is a second BLAKE3 pass over those chunks on the caller's thread.

    Returns False when the store already has that version (same number, same digest);
    its missing chunks and pages are still added. Conflict when the number holds other
    content here.
    """
    tree = None
    if not entries and record.tree is not None:
        tree = catalog.PreparedTree(TreeId(bytes.fromhex(record.tree)), dict(pages or {}))
    with store.commit_lock():
        writer = store.chunks.writer()
        try:
            added: dict[ChunkId, ChunkLocation] = {}
            blocks: dict[ChunkId, bytes] = {}
            for cid, codec_id, payload, raw_length in chunks:
                if cid not in added:
                    added[cid] = writer.add(cid, codec_id, payload, raw_length)
                    if digests := blocks_if_raw(codec_id == codec.Codec.RAW, payload):
                        blocks[cid] = digests
            writer.commit()
            with store.index.write() as txn:
                created = adopt(txn, record, entries, tree)
                for cid, loc in added.items():
                    txn.put(Table.CHUNKS, cid, loc.encode(), overwrite=False)
                for cid, found in blocks.items():
                    txn.put(Table.CHUNK_BLOCKS, cid, found, overwrite=False)
                for cid, where in (remote_chunks or {}).items():
                    txn.put(Table.REMOTE_CHUNKS, cid, where)
        except BaseException:
            writer.abort()
            raise
    return created


def remote_seen(index: Index) -> dict[ArtifactName, set[int]]:
    """Per artifact, the version numbers the default remote listed at the last refresh."""
    with index.read() as txn:
        return {
            ArtifactName.parse(key[len(_SEEN) :].decode()): set(json.loads(value))
            for key, value in txn.scan(Table.META, _SEEN)
        }


def mirror_remote(
    index: Index,
    art: ArtifactName,
    seen: set[int],
    deleted: Mapping[int, str],
    aliases: dict[str, int],
) -> tuple[list[str], list[str]]:
    """Make the local index of ``art`` follow its remote, here only (nothing is published).

    ``seen``: the numbers at which this store holds the remote's version (adopted, or
    found with the same digest), remembered for the next refresh. ``deleted``: number ->
    digest of versions the remote has a tombstone for; each is deleted here if its local
    record has that digest. Aliases are moved to where the remote has them; a local alias
    on one of the ``seen`` versions that the remote no longer has (or has on a version not
    here) is removed; an alias on a version that is not the remote's stays.
    Returns (refs deleted, alias changes as ``art:alias -> vN`` or ``art:alias removed``).
    """
    key = _SEEN + str(art).encode()
    removed, changed = [], []
    with index.write() as txn:
        for number, digest in sorted(deleted.items()):
            record = catalog.get_version(txn, art, number)
            if record is not None and (record.state, record.digest) == (
                catalog.COMMITTED,
                digest,
            ):
                catalog.mark_deleted(txn, record)
                removed.append(record.ref)
        changed = _mirror_aliases(txn, art, seen, aliases)
        stored = txn.get(Table.META, key)
        before = set(json.loads(stored)) if stored is not None else set()
        # Unchanged (most polls): no write, so the transaction commits without an fsync.
        if seen and seen != before:
            txn.put(Table.META, key, json.dumps(sorted(seen)).encode())
        elif not seen and stored is not None:
            txn.delete(Table.META, key)
    return removed, changed


def adopt(
    txn: Any,
    record: VersionRecord,
    entries: list[FileEntry],
    tree: catalog.PreparedTree | None = None,
) -> bool:
    """Add ``record`` at its number; True if it was not here. A version deleted here whose
    content the remote has at that number comes back; other content there is a Conflict.
    ``tree``: the version's tree (its root, and the pages to write), else built from
    ``entries``; a record that names its own tree (one of the remote's) keeps it."""
    art = record.artifact
    artifact = catalog.get_artifact(txn, art)
    catalog.check_type(artifact, art, record.type)
    if record.tree is not None and (tree is None or tree.root.hex() != record.tree):
        tree = catalog.PreparedTree(TreeId(bytes.fromhex(record.tree)), {})
    existing = catalog.get_version(txn, art, record.number)
    if existing is not None:
        if existing.digest == record.digest and existing.state == catalog.COMMITTED:
            if tree is not None and existing.tree == tree.root.hex():
                _put_pages(txn, tree.pages)  # a pull of a version cloned lazily
            return False
        if existing.digest != record.digest:
            raise Conflict(
                f"{record.ref} exists in this store with other content: "
                "pull into a store cloned from the remote ('artfs clone')"
            )
    if artifact is None:
        catalog.ensure_project(txn, art.project)
        artifact = ArtifactRecord(art.project, art.name, record.type, record.created, 0)
    fresh = VersionRecord(**{**record.__dict__, "aliases": [], "state": catalog.COMMITTED})
    catalog.add_version(txn, fresh, entries, tree)
    artifact.next_version = max(artifact.next_version, record.number + 1)
    catalog.put_artifact(txn, artifact)
    return True


def tree_page(index: Index, page: TreeId) -> bytes:
    """The bytes of a tree page of the store (read from the remote if the version is
    lazy); CorruptData when it cannot be had."""
    with index.read() as txn:
        return catalog.page_bytes(txn, page)


def has_tree_page(index: Index, page: TreeId) -> bool:
    """Whether the index holds ``page`` (and so its whole subtree)."""
    with index.read() as txn:
        return txn.get(Table.TREES, page) is not None


def tree_entries(index: Index, root: TreeId, pages: Mapping[TreeId, bytes]) -> list[FileEntry]:
    """Every entry of the tree at ``root``, its pages from ``pages`` or the index (a
    version about to be adopted), sorted by path."""
    with index.read() as txn:

        def get(page: TreeId) -> bytes:
            found = pages.get(page)
            return catalog.page_bytes(txn, page) if found is None else found

        entries = trees.walk(trees.Pages(get), root)
        return sorted(entries, key=lambda e: encode_path(e.path))


def lazy_page(source: ChunkSource | None, page: bytes) -> bytes | None:
    """A tree page the index lacks, through the default remote's chunk ``source`` (see
    :class:`~artfs.store.ports.ChunkSource`, which finds where it is); None when the store
    has no default remote (``source`` None)."""
    if source is None:
        return None
    try:
        return source.read(ChunkRef(ChunkId(page), 0))
    except CorruptData as exc:
        raise CorruptData(f"tree page {page.hex()[:16]} from the remote: {exc}") from None


def _put_pages(txn: Txn, pages: Mapping[TreeId, bytes]) -> None:
    for page, data in pages.items():
        txn.put(Table.TREES, page, data, overwrite=False)


def _mirror_aliases(
    txn: Txn, art: ArtifactName, seen: set[int], remote: dict[str, int]
) -> list[str]:
    """Aliases of ``art`` to where the ``remote`` has them (alias -> number); see mirror_remote."""
    changed = []
    here = {
        alias: number
        for number, names in catalog.aliases_by_version(txn, art).items()
        for alias in names
    }
    for alias, number in sorted(remote.items()):
        record = catalog.get_version(txn, art, number)
        if record is not None and record.state == catalog.COMMITTED:
            if here.get(alias) != number:
                catalog.set_alias(txn, art, alias, number)
                changed.append(f"{art}:{alias} -> v{number}")
        elif here.get(alias) in seen:
            catalog.remove_alias(txn, art, alias)  # the remote's alias is on a version not here
            changed.append(f"{art}:{alias} removed")
    for alias, number in sorted(here.items()):
        if alias not in remote and number in seen:
            catalog.remove_alias(txn, art, alias)
            changed.append(f"{art}:{alias} removed")
    return changed
