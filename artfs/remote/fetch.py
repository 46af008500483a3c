"""Reading chunks a remote-backed store holds only on its remote (the lazy read path).

A cloned or refreshed store has every version in its index but not their chunks: for each chunk
the store records (``Store.remote_locations``) which pack of the default remote holds it and
where. A read of such a chunk goes:

1. to the local chunk cache (:mod:`artfs.remote.cache`), hash-checked;
2. else to the remote, with one ranged GET that also covers the *following* chunks the reader
   names (read-ahead) when they sit in the same pack close by (``ranged.coalesce``), each chunk
   decompressed and hashed (``ranged.verified_chunk``) and then kept in the cache.

One download per chunk however many threads want it: the first thread to miss a chunk owns its
fetch and the others wait on an event (single flight). Chunks of a range another thread is
already fetching are left to that thread.

A dictionary-coded chunk is decoded with its dictionary, which ``Store.dictionary`` reads from
the local packs or, through this same reader, from the remote (a dictionary is a chunk like any
other, cached the same way). No lock is held across that lookup, and the chunks of a range are
checked dictionaries first, so a lookup never waits on the thread making it; a dictionary is
never dictionary-coded itself, so lookups do not nest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from artfs.errors import ArtfsError, CorruptData, NotFound, RemoteError, RemoteMissing, StoreError
from artfs.objectstore import remote_timeout
from artfs.remote.cache import DiskChunkCache, limits_from_env
from artfs.remote.ranged import coalesce, fetch_group, verified_chunk
from artfs.remote.remote import Remote, open_remote
from artfs.store.chunkstore import RemoteChunk
from artfs.store.codec import Codec
from artfs.store.hashing import ChunkId
from artfs.store.manifest import ChunkRef
from artfs.store.repository import Store
from artfs.store.settings import RemoteConfig

log = logging.getLogger(__name__)

# A reader walking a pack in order gets following chunks of the pack taken along with each
# miss: first this many bytes, doubling while the walk goes on, up to the maximum.
PACK_WALK_START = 256 << 10
PACK_WALK_MAX = 8 << 20
# A miss this close to the end of the previous range counts as walking on (a record header
# lies between two chunks of a pack; a tiny chunk may have been read by another reader).
PACK_WALK_SLACK = 4 << 10


def check_settings() -> None:
    """StoreError naming the first bad setting of the lazy read path in the environment
    (``ARTFS_CACHE_MAX``, ``ARTFS_CACHE_MIN_FREE``, ``ARTFS_REMOTE_TIMEOUT``). The daemon checks
    them when it starts: a mount must not come up only to fail every read of the remote."""
    limits_from_env()
    remote_timeout()


@dataclass
class FetchCounters:
    """What went over the network (for tests, the daemon's log and benchmarks)."""

    gets: int = 0  # ranged GETs
    bytes: int = 0  # bytes those GETs returned (chunks and the gaps between them)
    chunks: int = 0  # chunks fetched and verified


@dataclass
class _InFlight:
    done: threading.Event = field(default_factory=threading.Event)
    data: bytes | None = None
    error: BaseException | None = None


class RemoteChunks:
    """The chunks of one store that live on its default remote, read through the cache (the
    store's :class:`~artfs.store.ports.ChunkSource`)."""

    def __init__(self, store: Store, remote: Remote, name: str, cache: DiskChunkCache) -> None:
        self.store = store
        self.remote = remote
        self.name = name
        self.cache = cache
        self.counters = FetchCounters()
        self._lock = threading.Lock()
        self._in_flight: dict[ChunkId, _InFlight] = {}
        # pack -> (end of the last range taken from it, read-ahead window then)
        self._walks: dict[str, tuple[int | None, int]] = {}

    @classmethod
    def for_store(cls, store: Store, config: RemoteConfig) -> RemoteChunks:
        """The reader of ``store``'s chunks held on remote ``config`` (its default remote)."""
        try:
            remote = open_remote(store, config)
        except ArtfsError as exc:  # e.g. a plain-http endpoint: a store problem, not a name
            raise StoreError(f"the default remote {config.name!r} cannot be used: {exc}") from None
        return cls(store, remote, config.name, DiskChunkCache.open(store.home))

    def read(self, ref: ChunkRef, following: Sequence[ChunkRef] = ()) -> bytes:
        """The verified bytes of a chunk; ``following`` are the chunks the reader wants next
        (fetched in the same GET when they are neighbours in the chunk's pack)."""
        cid = ref.chunk_id
        while True:
            data = self.cache.get(cid, self.store.dictionary)
            if data is not None:
                return data
            slot, owner = self._claim(cid)
            if not owner:
                slot.done.wait()
                if slot.error is not None:
                    raise slot.error
                if slot.data is not None:
                    return slot.data
                continue  # the owner gave up on it without an error: look again
            return self._fetch_owned(ref, following, slot)

    def _claim(self, cid: ChunkId) -> tuple[_InFlight, bool]:
        with self._lock:
            slot = self._in_flight.get(cid)
            if slot is not None:
                return slot, False
            slot = self._in_flight[cid] = _InFlight()
            return slot, True

    def _fetch_owned(self, ref: ChunkRef, following: Sequence[ChunkRef], slot: _InFlight) -> bytes:
        claimed = {ref.chunk_id: slot}
        try:
            # Another thread or process may have cached it between our miss and our claim
            # (looked at first, so that a miss is counted once).
            cached = self.cache.contains(ref.chunk_id)
            data = self.cache.get(ref.chunk_id, self.store.dictionary) if cached else None
            if data is None:
                self._fetch(ref, following, claimed)
                data = slot.data
            else:
                slot.data = data
            if slot.error is not None:
                raise slot.error
            assert data is not None
            return data
        except BaseException as exc:
            for owned in claimed.values():
                if owned.data is None and owned.error is None:
                    owned.error = exc
            raise
        finally:
            with self._lock:
                for cid in claimed:
                    del self._in_flight[cid]
            for owned in claimed.values():
                owned.done.set()

    def _fetch(
        self, ref: ChunkRef, following: Sequence[ChunkRef], claimed: dict[ChunkId, _InFlight]
    ) -> None:
        """One ranged GET: the chunk and the neighbours it can take along; each verified,
        cached and handed to its waiters."""
        cid = ref.chunk_id
        wanted = [cid] + [f.chunk_id for f in following if f.chunk_id != cid]
        where = self.store.remote_locations(wanted)
        loc = where.get(cid)
        if loc is None:
            raise CorruptData(
                f"chunk {cid.hex()[:16]} is neither in this store nor on its remote "
                f"{self.name!r}: run 'artfs verify'"
            )
        where.update(self._pack_walk(cid, loc))
        group = self._take_along(cid, loc, where, claimed)
        try:
            fetched, pieces = fetch_group(self.remote, group)
        except RemoteMissing:
            if self._relocate(cid, loc.pack):
                # The chunk is in another live pack: fetch it alone from there (the chunks
                # taken along are released unfetched; their waiters look again).
                self._fetch(ref, (), {cid: claimed[cid]})
                return
            raise CorruptData(
                f"chunk {cid.hex()[:16]} is not cached here and pack {loc.pack[:16]} holding it "
                f"is gone from remote {self.name!r}: run 'artfs ls' to refresh this store"
            ) from None
        except (RemoteError, NotFound) as exc:
            raise RemoteError(
                f"chunk {cid.hex()[:16]} is not cached here and cannot be fetched from remote "
                f"{self.name!r} ({exc}); chunks already cached still read"
            ) from None
        with self._lock:
            self.counters.gets += 1
            self.counters.bytes += fetched
        kept = []
        # Chunks needing no dictionary first (dictionaries are among them): the lookup of a
        # dictionary-coded chunk's dictionary may come back here for one of this range, and
        # must find it done instead of waiting on this very thread.
        pieces.sort(key=lambda piece: piece[1].codec == Codec.ZSTD_DICT)
        lookup = self.store.dictionary
        for chunk, at, payload in pieces:
            slot = claimed[chunk]
            try:
                slot.data = verified_chunk(chunk, at, payload, "a version in", self.remote, lookup)
                kept.append((chunk, at, payload))
            except CorruptData as exc:
                slot.error = exc
            # Waiters go on now; the slot stays in the table until the chunk is in the cache,
            # so nobody fetches it again meanwhile (each insert is an fsync).
            slot.done.set()
        for chunk, at, payload in kept:
            self.cache.put(chunk, at.codec, payload, at.raw_length)
        with self._lock:
            self.counters.chunks += len(kept)

    def _pack_walk(self, cid: ChunkId, loc: RemoteChunk) -> dict[ChunkId, RemoteChunk]:
        """The chunks after ``loc`` in its pack worth taking along because the reader walks
        the pack in order.

        A file's own read-ahead names only its own chunks, but a version's small files are
        stored one after the other in a pack, in path order: a reader going through a
        directory misses chunk after chunk of one pack, one GET each. When a miss lies close
        to where the previous range taken from that pack ended, the window of following
        chunks taken along doubles (up to ``PACK_WALK_MAX``); any other miss resets it, so
        random access fetches about what it asks for.
        """
        with self._lock:
            end, window = self._walks.get(loc.pack, (None, 0))
            if end is not None and abs(loc.offset - end) <= PACK_WALK_SLACK:
                window = min(PACK_WALK_MAX, max(PACK_WALK_START, 2 * window))
            else:
                window = 0
            self._walks[loc.pack] = (loc.offset + loc.stored_length, window)
        if window == 0:
            return {}
        try:
            chunks = self.remote.pack_chunks(loc.pack)
        except Exception as exc:  # read-ahead is an optimisation: it must never fail a read
            log.debug("pack walk of %s skipped: %s", loc.pack[:16], exc)
            return {}  # the chunk itself is fetched anyway
        limit = loc.offset + loc.stored_length + window
        taken = {
            other: at
            for other, at in chunks.items()
            if other != cid and loc.offset < at.offset and at.offset + at.stored_length <= limit
        }
        if taken:
            last = max(at.offset + at.stored_length for at in taken.values())
            with self._lock:
                self._walks[loc.pack] = (last, window)
        return taken

    def _relocate(self, cid: ChunkId, gone: str) -> bool:
        """Point ``cid`` at another live pack of the remote holding it, after pack ``gone``
        turned out to be deleted; False if there is none.

        The index keeps one remote location per chunk. When two packs hold a chunk (two writers
        uploaded it at once, or it was uploaded again after gc condemned its pack), the pack
        recorded may be the one remote gc deleted with the versions that used it."""
        found = self.remote.chunk_map()
        elsewhere = found.get(cid)
        if elsewhere is None or elsewhere.pack == gone:
            return False
        # That copy may be coded with a dictionary no record adopted here lists: record where
        # it is too, so that the lookup reading the copy finds it.
        dict_id = self.remote.chunk_dictionary(cid, elsewhere)
        dictionary = None if dict_id is None else found.get(dict_id)
        where = {cid: elsewhere}
        if dict_id is not None and dictionary is not None:
            where[dict_id] = dictionary
        self.store.record_remote_locations(where)
        return True

    def _take_along(
        self,
        cid: ChunkId,
        loc: RemoteChunk,
        where: dict[ChunkId, RemoteChunk],
        claimed: dict[ChunkId, _InFlight],
    ) -> list[tuple[ChunkId, RemoteChunk]]:
        """The chunk plus the following chunks of its pack that fit in one range with it,
        are not cached and that no other thread is fetching (those are claimed here)."""
        candidates = [
            (other, other_loc)
            for other, other_loc in where.items()
            if other != cid and other_loc.pack == loc.pack and not self.cache.contains(other)
        ]
        candidates.append((cid, loc))
        candidates.sort(key=lambda item: item[1].offset)
        group = next(g for _, _, g in coalesce(candidates) if any(c == cid for c, _ in g))
        taken = [(cid, loc)]
        with self._lock:
            for other, other_loc in group:
                if other != cid and other not in self._in_flight:
                    claimed[other] = self._in_flight[other] = _InFlight()
                    taken.append((other, other_loc))
        taken.sort(key=lambda item: item[1].offset)
        return taken
