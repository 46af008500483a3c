"""Garbage collection: expire, mark, sweep, compact.

1. Versions whose time to live has passed are deleted, unless they hold a custom alias.
2. Under the exclusive store lock (no commit can be between "this chunk is already stored" and
   its index transaction), every chunk referenced by a committed version is marked live
   (walking the version's tree; pages shared with a version marked before are skipped), and
   so is every chunk of a staging base's tree (artfs.store.overlay: a base outlives the
   deletion of its version) and every compression dictionary a live chunk is coded with. Tree
   pages that neither a committed version nor a staging base reaches are dropped.
3. Index entries of unreferenced chunks are dropped; packs with no live chunk are deleted; packs
   that are mostly garbage, and small packs left by many small commits, have their live records
   copied (still compressed) into new packs. The new packs are fsynced before the index points
   at them and old packs are deleted only after: a crash at any step leaves a readable store.

Readers are not locked out: a reader holding a pack open keeps reading it after deletion, and a
reader whose lookup raced a rewrite looks the chunk up again (see Store.read_chunk).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from artfs.errors import CorruptData, StoreError
from artfs.store import catalog, codec, overlay, trees
from artfs.store.catalog import VersionRecord
from artfs.store.chunkstore import ChunkLocation
from artfs.store.hashing import ChunkId, TreeId
from artfs.store.index import Table, Txn
from artfs.store.overlay import STAGING_DIR
from artfs.store.packs import RECORD, TARGET_PACK_SIZE
from artfs.store.repository import GcReport, Store

# A pack is rewritten when less than this share of it is live.
_REWRITE_BELOW_LIVE = 0.5
# Packs smaller than this are merged when there are at least two of them.
_SMALL_PACK = TARGET_PACK_SIZE // 4


def collect(store: Store, progress: Callable[[int], None] | None = None) -> GcReport:
    report = GcReport()
    try:
        report.expired, report.kept_expired = store.expire()
    except StoreError as exc:
        # In a remote-backed store expiry deletes on the remote first: with the remote gone,
        # expire nothing now, but still reclaim what no version references.
        report.expiry_failed = str(exc)
    with store.gc_lock():
        report.bytes_before = _total(store)
        live = _mark(store)
        by_pack = _sweep_index(store, live, report)
        _sweep_trees(store)
        _compact(store, by_pack, report, progress)
        report.bytes_after = _total(store)
    return report


def _total(store: Store) -> int:
    return sum(store.chunks.pack_size(p) for p in store.chunks.pack_ids())


def _mark(store: Store) -> set[ChunkId]:
    """Chunks of committed versions, through their trees: a subtree shared by several
    versions is read once."""
    live: set[ChunkId] = set()
    with store.index.read() as txn:
        seen: set[TreeId] = set()
        pages = catalog.pages(txn)
        for root in _roots(store, txn):
            for entry in trees.reachable(pages, root, seen, _held(txn)):
                live.update(ref.chunk_id for ref in entry.chunks)
        live.update(_dictionaries(store, txn, live))
    return live


def _held(txn: Txn) -> Callable[[TreeId], bool]:
    """Whether the index holds a tree page. A page it lacks that the default remote holds
    is a lazily cloned version's (its subtree is there too, and no chunk of it is in a local
    pack that another version's pages do not reach): gc walks past it and never fetches it.
    A page held nowhere is damage: CorruptData, before anything is deleted."""

    def held(page: TreeId) -> bool:
        if txn.get(Table.TREES, page) is not None:
            return True
        if txn.get(Table.REMOTE_CHUNKS, page) is not None:
            return False
        raise catalog.missing_page(page)

    return held


def _roots(store: Store, txn: Txn) -> list[TreeId]:
    """The root trees to keep: every committed version's, and every staging base's (a
    base stays readable after its version is deleted, until staging moves on)."""
    found = []
    for _, value in txn.scan(Table.VERSIONS):
        root = catalog.root_tree(VersionRecord.decode(value))
        if root is not None:
            found.append(root)
    for base in overlay.all_bases(store.home / STAGING_DIR):
        found.append(base.tree)
        if base.markers_tree is not None:
            found.append(base.markers_tree)
    return found


def _sweep_trees(store: Store) -> int:
    """Drop the tree pages no committed version reaches. Marked and swept in one write
    transaction: a version a daemon's refresh adds meanwhile cannot lose its new pages."""
    with store.index.write() as txn:
        seen: set[TreeId] = set()
        pages = catalog.pages(txn)
        for root in _roots(store, txn):
            for _ in trees.reachable(pages, root, seen, _held(txn)):
                pass
        dead = [key for key, _ in txn.scan(Table.TREES) if key not in seen]
        for key in dead:
            txn.delete(Table.TREES, key)
    return len(dead)


def _dictionaries(store: Store, txn: Any, live: set[ChunkId]) -> set[ChunkId]:
    """The dictionaries the ``live`` chunks are coded with (named by the first 32 bytes of
    each dictionary-coded payload: one 32-byte read per such chunk)."""
    used: set[ChunkId] = set()
    for key, value in txn.scan(Table.CHUNKS):
        if ChunkLocation.codec_of(value) != codec.Codec.ZSTD_DICT or key not in live:
            continue
        try:
            dict_id = store.dictionary_id(ChunkLocation.decode(value))
        except CorruptData:
            continue  # unreadable either way: verify names the files that use it
        if dict_id is not None:
            used.add(dict_id)
    return used


def _sweep_index(
    store: Store, live: set[ChunkId], report: GcReport
) -> dict[int, list[tuple[ChunkId, ChunkLocation]]]:
    by_pack: dict[int, list[tuple[ChunkId, ChunkLocation]]] = defaultdict(list)
    with store.index.write() as txn:
        dead = []
        for key, value in txn.scan(Table.CHUNKS):
            cid = ChunkId(key)
            if cid in live:
                loc = ChunkLocation.decode(value)
                by_pack[loc.pack_id].append((cid, loc))
            else:
                dead.append(key)
        for key in dead:
            txn.delete(Table.CHUNKS, key)
            txn.delete(Table.CHUNK_BLOCKS, key)
    report.chunks_removed = len(dead)
    return by_pack


def _compact(
    store: Store,
    by_pack: dict[int, list[tuple[ChunkId, ChunkLocation]]],
    report: GcReport,
    progress: Callable[[int], None] | None,
) -> None:
    rewrite = []
    small = []
    for pack_id in store.chunks.pack_ids():
        records = by_pack.get(pack_id, [])
        size = store.chunks.pack_size(pack_id)
        if not records:
            store.chunks.delete_pack(pack_id)
            report.packs_removed += 1
            continue
        live_bytes = sum(RECORD.size + loc.stored_length for _, loc in records)
        if live_bytes < _REWRITE_BELOW_LIVE * size:
            rewrite.append(pack_id)
        elif size < _SMALL_PACK:
            small.append(pack_id)
    if len(small) >= 2:
        rewrite += small
    if not rewrite:
        return
    writer = store.chunks.writer()
    moved: dict[ChunkId, ChunkLocation] = {}
    try:
        for pack_id in rewrite:
            for cid, loc in by_pack[pack_id]:
                moved[cid] = writer.add(cid, loc.codec, store.chunks.read(loc), loc.raw_length)
                if progress:
                    progress(loc.stored_length)
        writer.commit()
        with store.index.write() as txn:
            for cid, loc in moved.items():
                txn.put(Table.CHUNKS, cid, loc.encode())
    except BaseException:
        writer.abort()
        raise
    for pack_id in rewrite:
        store.chunks.delete_pack(pack_id)
    report.packs_rewritten = len(rewrite)
