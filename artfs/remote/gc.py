"""Deleting on a remote (``artfs rm --remote``) and garbage collection there (``artfs gc
--remote``): tombstones, then mark and sweep with a grace period.

Writers never talk to gc, so gc must stay safe while any number of them push at the same time.
It uses two-step deletion ("condemn, then delete a grace period later"):

1. **Records.** A deleted version has a tombstone (``deleted/<project>/<name>/<n>.json``). Once
   the tombstone is older than the grace period, its record and its digest marker are removed.
   The tombstone itself stays forever (about 100 bytes): writers pick the next number above every
   record *and* every tombstone, so a number is never given out twice.
2. **Mark.** Every pack holding something a version that has no tombstone uses is referenced.
   A record in the tree format names its root: gc walks its tree (each page read once per run,
   so a subtree shared by many versions once, and kept on disk between runs), marking the
   pages and the chunks of its files, then the compression dictionaries those chunks are
   coded with (which no file names; each pack index says which), and every pack holding any
   of them. Every page of a referenced tree pack counts as used too, so the subtrees below it
   stay whole: a writer that finds a page on the remote takes its subtree as present (see
   :mod:`artfs.remote.pages`). A record from before trees lists its chunks' locations:
   the packs it names are referenced.
3. **Sweep.** A pack condemned (``gc/condemned/<pack>.json``) at least the grace period ago is
   deleted (index, then pack, then the marker) when it is still unreferenced; a condemned pack
   that is referenced again is spared (its marker removed).
4. **Condemn.** Every pack older than the grace period that no record references gets a marker.

A run does steps 3 and 4 together: it deletes what earlier runs condemned and condemns new
candidates, which the next run at least the grace period later may delete.

Why a writer never ends up referring to a deleted pack: a writer's chunk map leaves out packs
condemned at the time it lists them (``t_w``), and a pack it uploads under a condemned name gets
another name (:meth:`Remote.upload_pack`). So every pack a new record names was not condemned at
``t_w``, and gc can delete it only after condemning it at ``t_c > t_w`` and then listing the
records at ``t_m >= t_c + grace`` without finding the new one. That means the record was created
after ``t_m``, i.e. the push took longer than ``t_m - t_w > grace``. **The grace period must
exceed the longest push** (from its chunk map to its record), and the longest pull of a deleted
version. Times are the object store's own (the last-modified times of the markers and of an object
gc writes to read the server's clock), so machine clocks do not matter; they have whole-second
resolution, which gc adds to the grace period.
"""

from __future__ import annotations

import json
import os
import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from artfs.errors import CorruptData, InvalidName, NotFound, RemoteMissing
from artfs.names import ArtifactName, Ref
from artfs.objectstore import ObjectInfo, ObjectStore
from artfs.remote import layout, pages
from artfs.remote.layout import AnyVersion
from artfs.remote.remote import Remote
from artfs.store import trees
from artfs.store.catalog import VersionRecord
from artfs.store.hashing import ChunkId, TreeId
from artfs.store.repository import Store

# S3 last-modified times are whole seconds: a marker written at 4.99 s reads as 4 s.
CLOCK_RESOLUTION = 1.0
DEFAULT_GRACE = 3600.0
# The grace period must exceed the longest push: below 10 minutes, two runs in a row could
# delete a pack that a writer uploaded seconds ago and is about to name in its record. Tests
# (and an operator who knows every push is short) lower the floor with this variable (seconds).
MIN_GRACE = 600.0
MIN_GRACE_ENV = "ARTFS_GC_MIN_GRACE"


@dataclass
class RemoteGcReport:
    records_removed: list[str] = field(default_factory=list)  # refs of deleted versions
    packs_deleted: int = 0
    bytes_reclaimed: int = 0  # packs, their indexes and the removed records
    packs_condemned: int = 0  # newly: a later run deletes them if still unreferenced
    packs_spared: int = 0  # were condemned, found referenced again
    packs_live: int = 0


def server_time(objects: ObjectStore) -> float:
    """The object store's clock: the last-modified time of an object written just now."""
    objects.put(layout.GC_CLOCK_KEY, json.dumps({"purpose": "read the server's clock"}).encode())
    info = objects.head(layout.GC_CLOCK_KEY)
    if info is None or not info.modified:
        raise RemoteMissing(f"{layout.GC_CLOCK_KEY} vanished from {objects.describe()}")
    return info.modified


def min_grace() -> float:
    """The shortest grace period gc accepts: MIN_GRACE, or ``$ARTFS_GC_MIN_GRACE`` seconds."""
    text = os.environ.get(MIN_GRACE_ENV)
    if text is None:
        return MIN_GRACE
    try:
        floor = float(text)
    except ValueError:
        floor = -1.0
    if not floor >= 0:
        raise InvalidName(f"{MIN_GRACE_ENV}={text!r} is not a number of seconds: fix or unset it")
    return floor


def check_grace(grace: float) -> None:
    """InvalidName for a grace period below the floor (a concurrent push could lose a pack)."""
    floor = min_grace()
    if grace < floor:
        raise InvalidName(
            f"a grace period of {grace:g}s is below the minimum of {floor:g}s: gc could delete "
            "a pack a writer is pushing; give a grace longer than the longest push (e.g. "
            f"--grace 1h), or set {MIN_GRACE_ENV}=SECONDS if every push is shorter"
        )


def collect(remote: Remote, grace: float = DEFAULT_GRACE) -> RemoteGcReport:
    """One gc run on ``remote``; see the module docstring for the order and why it is safe.
    InvalidName, before anything is read, for a grace period below :func:`min_grace`."""
    check_grace(grace)
    report = RemoteGcReport()
    now = server_time(remote.objects)
    cutoff = now - grace - CLOCK_RESOLUTION
    _remove_deleted_records(remote, cutoff, report)
    # Condemned markers are listed before the records are: see the module docstring.
    condemned = _by_pack(remote.objects.list(layout.CONDEMNED_PREFIX))
    referenced = _referenced_packs(remote)
    stored = _by_pack(remote.objects.list("packs/"))
    for pack, marker in sorted(condemned.items()):
        if pack in referenced:
            remote.objects.delete(marker[0].key)
            report.packs_spared += 1
        elif marker[0].modified <= cutoff:
            _delete_pack(remote.objects, pack, stored.get(pack, []), report)
            remote.objects.delete(marker[0].key)
    for pack, objects in sorted(stored.items()):
        if pack in referenced:
            report.packs_live += 1
        elif pack not in condemned and max(o.modified for o in objects) <= cutoff:
            body = layout.encode_condemned(pack, remote.writer_id, now)
            remote.objects.put_new(layout.condemned_key(pack), body)
            report.packs_condemned += 1
    return report


def _by_pack(infos: Iterable[ObjectInfo]) -> dict[str, list[ObjectInfo]]:
    found: dict[str, list[ObjectInfo]] = {}
    for info in infos:
        pack = layout.pack_of_key(info.key)
        if pack is not None:
            found.setdefault(pack, []).append(info)
    return found


def _delete_pack(
    objects: ObjectStore, pack: str, stored: list[ObjectInfo], report: RemoteGcReport
) -> None:
    """Index first: a writer listing indexes never finds one whose pack is gone."""
    objects.delete(layout.pack_index_key(pack))
    objects.delete(layout.pack_key(pack))
    report.packs_deleted += 1
    report.bytes_reclaimed += sum(o.size for o in stored)


def _live_records(remote: Remote) -> list[tuple[ArtifactName, int, str]]:
    """(artifact, number, ETag of the record) of every version that is not deleted."""
    records = {
        parsed: info.etag
        for info in remote.objects.list("versions/")
        if (parsed := layout.parse_version_key(info.key)) is not None
    }
    deleted = _tombstones(remote)
    live = [(art, n, etag) for (art, n), etag in records.items() if (art, n) not in deleted]
    return sorted(live, key=lambda r: (str(r[0]), r[1]))


def _tombstones(remote: Remote) -> dict[tuple[ArtifactName, int], ObjectInfo]:
    return {
        parsed: info
        for info in remote.objects.list("deleted/")
        if (parsed := layout.parse_tombstone_key(info.key)) is not None
    }


def _referenced_packs(remote: Remote) -> set[str]:
    """Every pack a version that is not deleted refers to (the mark)."""
    packs: set[str] = set()
    roots: list[TreeId] = []
    for art, number, etag in _live_records(remote):
        try:
            found = remote.version_packs(art, number, etag)
        except NotFound:
            continue  # deleted and removed by another gc since the listing
        except CorruptData as exc:
            # Its packs are unknown: deleting any pack could break it. Stop here.
            raise CorruptData(f"{exc}; gc stopped before deleting any pack") from None
        if isinstance(found, set):
            packs |= found
        else:
            roots.append(found)
    if roots:
        try:
            packs |= _TreeMark(remote).packs(roots)
        except CorruptData as exc:
            raise CorruptData(f"{exc}; gc stopped before deleting any pack") from None
    return packs


class _TreeMark:
    """The packs holding what the trees of some roots use (see the module docstring)."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.every = remote.every_pack()
        condemned = remote.condemned_packs()
        self.holders: dict[ChunkId, list[str]] = defaultdict(list)
        # The copies a reader uses (see Remote.locations): those in packs gc has not condemned
        # where there are any, so that a condemned duplicate is deleted; else the condemned
        # ones, which are then spared.
        for pack, chunks in sorted(self.every.items(), key=lambda item: item[0] in condemned):
            for cid in chunks:
                held = self.holders[cid]
                if not held or (pack in condemned) == (held[0] in condemned):
                    held.append(pack)
        folder = remote.cache_dir.parent / "tree-pages" if remote.cache_dir else None
        self.files = pages.PageFiles(folder)
        self.live: set[ChunkId] = set()

    def packs(self, roots: list[TreeId]) -> set[str]:
        marked: set[str] = set()
        todo = roots
        while todo:
            fresh = self._walk(todo)
            fresh |= self._dictionaries(fresh)
            new = {pack for cid in fresh for pack in self.holders.get(cid, [])} - marked
            marked |= new
            todo = [
                TreeId(cid)
                for pack in sorted(new)
                if self.remote.is_tree_pack(pack)
                for cid in self.every[pack]
                if cid not in self.live
            ]
        return marked

    def _walk(self, roots: list[TreeId]) -> set[ChunkId]:
        """Mark the pages below ``roots`` not marked yet and the chunks of their files; the
        ids marked now."""
        fresh: set[ChunkId] = set()
        level = roots
        while level:
            wanted = [p for p in dict.fromkeys(level) if ChunkId(p) not in self.live]
            self.live.update(ChunkId(p) for p in wanted)
            fresh.update(ChunkId(p) for p in wanted)
            level = []
            for data in self._pages(wanted).values():
                if not _is_page(data):
                    continue  # the filler record of a salted tree pack: it names nothing
                level += pages.children(data)
                for entry in pages.files(data):
                    chunks = {ref.chunk_id for ref in entry.chunks} - self.live
                    self.live |= chunks
                    fresh |= chunks
        return fresh

    def _pages(self, wanted: list[TreeId]) -> dict[TreeId, bytes]:
        found = {p: data for p in wanted if (data := self.files.get(p)) is not None}
        where = {
            ChunkId(p): self.every[self.holders[ChunkId(p)][0]][ChunkId(p)]
            for p in wanted
            if p not in found and self.holders.get(ChunkId(p))
        }
        fetched, _ = pages.fetch_pages(
            self.remote, [p for p in wanted if p not in found], where, "a live version"
        )
        for page, data in fetched.items():
            self.files.put(page, data)
        return {**found, **fetched}

    def _dictionaries(self, ids: set[ChunkId]) -> set[ChunkId]:
        """The dictionaries the copies of ``ids`` are coded with, not marked yet (marked now)."""
        found = set()
        for cid in ids:
            for pack in self.holders.get(cid, []):
                dict_id = self.remote.chunk_dictionary(cid, self.every[pack][cid])
                if dict_id is not None and dict_id not in self.live:
                    found.add(dict_id)
        self.live |= found
        return found


def _is_page(data: bytes) -> bool:
    try:
        trees.Page.decode(data)
    except (ValueError, IndexError, struct.error):
        return False
    return True


def _remove_deleted_records(remote: Remote, cutoff: float, report: RemoteGcReport) -> None:
    """Records (and digest markers) of versions deleted more than the grace period ago."""
    for (art, number), tombstone in sorted(_tombstones(remote).items(), key=str):
        if tombstone.modified > cutoff:
            continue
        key = layout.version_key(art, number)
        info = remote.objects.head(key)
        if info is None:
            continue  # removed by an earlier run
        try:
            version: AnyVersion | None = remote.read_version(art, number)
        except NotFound:
            continue  # removed by another gc since the listing
        except CorruptData:
            version = None  # remove it all the same: nobody may read it any more
        if version is not None:
            _remove_digest_marker(remote, art, version.record.digest, number)
        remote.objects.delete(key)
        report.records_removed.append(f"{art}:v{number}")
        report.bytes_reclaimed += info.size


def _remove_digest_marker(remote: Remote, art: ArtifactName, digest: str, number: int) -> None:
    """Remove the marker if it still points at ``number``. A writer that re-points it between
    our read and delete loses only the marker: a later push of that content makes a second,
    identical version instead of finding the first."""
    key = layout.digest_key(art, digest)
    try:
        data, _ = remote.objects.get(key)
    except RemoteMissing:
        return
    if layout.decode_pointer(data, key) == number:
        remote.objects.delete(key)


# --- deleting on a remote (artfs rm --remote) --------------------------------------------------
# A remote-backed store deletes through its publisher (Store.delete); this is for a remote that
# is not the store's default.


def delete_on_remote(
    remote: Remote,
    target: Ref | ArtifactName,
    *,
    force: bool = False,
    store: Store | None = None,
) -> tuple[list[VersionRecord], set[str]]:
    """Delete a version (``Ref``) or every version of an artifact on ``remote``; with ``store``
    (a remote-backed store) the same versions are deleted there too, where the local version
    at that number holds the same content. Nothing changes locally when the remote refuses.
    Returns the records deleted on the remote and the refs of those deleted locally too."""
    if isinstance(target, Ref):
        deleted = [remote.delete_version(target, force=force)]
    else:
        deleted = remote.delete_artifact(target)
    local: set[str] = set()
    if store is not None:
        local = store.delete_mirrored(deleted, whole=isinstance(target, ArtifactName))
    return deleted, local
