"""Verified reads of chunks: from the local packs, else from the default remote.

Every read returns the chunk's bytes only after they hashed to its id (CorruptData otherwise);
a dictionary-coded chunk is decoded with its dictionary, itself read and checked the same way.
A chunk the packs do not hold goes to the store's :class:`~artfs.store.ports.ChunkSource` (its
default remote, through the local chunk cache). Pinning (:meth:`VerifiedReads.pin_chunks`)
keeps an open file's packs readable after gc. ``Store`` holds one and offers its methods.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from artfs.errors import CorruptData, NotFound
from artfs.store import codec, references
from artfs.store.chunkstore import ChunkLocation, ChunkStore, RemoteChunk
from artfs.store.hashing import ChunkId
from artfs.store.index import Index, Table
from artfs.store.manifest import ChunkRef, FileEntry
from artfs.store.ports import ChunkSource

# A whole-file read names this many following chunks, so a remote-backed store can fetch
# them with the chunk being read (about 16 MiB with 1 MiB chunks).
FOLLOWING_CHUNKS = 16


@dataclass
class PinnedChunks:
    """Chunk locations resolved at one moment, their packs held open (see Store.pin_chunks)."""

    locations: dict[bytes, ChunkLocation]
    packs: list[int]


class VerifiedReads:
    """The chunk reads of one store: ``index`` says where chunks are, ``chunks`` holds the
    local packs, ``remote_source`` gives the reader of chunks held only on the default remote
    (None for a store without one)."""

    def __init__(
        self,
        index: Index,
        chunks: ChunkStore,
        remote_source: Callable[[], ChunkSource | None],
    ) -> None:
        self.index = index
        self.chunks = chunks
        self._remote_source = remote_source

    def chunk_location(self, cid: ChunkId) -> ChunkLocation | None:
        with self.index.read() as txn:
            data = txn.get(Table.CHUNKS, cid)
        return None if data is None else ChunkLocation.decode(data)

    def read_chunk(self, ref: ChunkRef, following: Sequence[ChunkRef] = ()) -> bytes:
        """The verified bytes of a chunk; CorruptData if they do not hash to its id.

        A chunk this store does not hold is read from its default remote (through the local
        chunk cache), if it has one; ``following`` are the chunks the reader wants next, which
        such a read may fetch in the same request.
        """
        loc = self.chunk_location(ref.chunk_id)
        if loc is None:
            return self._read_remote(ref, following)
        try:
            return self._verified(ref, loc)
        except CorruptData:
            # gc may have moved the chunk since we looked it up: look again once.
            self.chunks.forget(loc.pack_id)
            fresh = self.chunk_location(ref.chunk_id)
            if fresh is None or fresh == loc:
                raise
            return self._verified(ref, fresh)

    def _verified(
        self,
        ref: ChunkRef,
        loc: ChunkLocation,
        pinned: Mapping[bytes, ChunkLocation] | None = None,
    ) -> bytes:
        """The chunk's bytes at ``loc``, checked; a dictionary it needs is read from where
        ``pinned`` says first (see :meth:`pin_chunks`)."""
        if loc.raw_length != ref.length:
            raise CorruptData(f"chunk {ref.chunk_id.hex()[:16]} does not match its hash")
        return codec.checked(
            ref.chunk_id,
            loc.codec,
            self.chunks.read(loc),
            ref.length,
            lambda dict_id: self.dictionary(dict_id, pinned),
        )

    def dictionary(
        self,
        dict_id: ChunkId,
        pending: Mapping[bytes, ChunkLocation] | Mapping[ChunkId, ChunkLocation] | None = None,
    ) -> bytes:
        """The content of a compression dictionary (see :mod:`artfs.store.codec`), checked
        against its id: from this store's packs (``pending``: locations a commit wrote but has
        not indexed yet, or that an open file pinned), else from its default remote. Decoders
        keep what they built from it, so this is called once per dictionary and thread."""
        loc = (pending or {}).get(dict_id)
        raw = None if loc is None else self._stored_dictionary(dict_id, loc)
        if raw is not None:
            return raw
        loc = self.chunk_location(dict_id)
        if loc is None:
            return self._read_remote(ChunkRef(dict_id, self._remote_length(dict_id)), ())
        raw = self._stored_dictionary(dict_id, loc)
        if raw is None:
            # gc may have moved it since we looked it up: look again once.
            self.chunks.forget(loc.pack_id)
            fresh = self.chunk_location(dict_id)
            if fresh is not None and fresh != loc:
                raw = self._stored_dictionary(dict_id, fresh)
        if raw is None:
            raise CorruptData(
                f"compression dictionary {dict_id.hex()[:16]} is damaged in this store: "
                "run 'artfs verify'"
            )
        return raw

    def _stored_dictionary(self, dict_id: ChunkId, loc: ChunkLocation) -> bytes | None:
        try:
            payload = self.chunks.read(loc)
        except CorruptData:
            return None
        return codec.verified(dict_id, loc.codec, payload, loc.raw_length)  # never needs one

    def _remote_length(self, cid: ChunkId) -> int:
        """The raw length of a dictionary known only from a remote (0 when not known at all:
        the read that follows then says the chunk is missing). CorruptData when the remote's
        copy is dictionary-coded itself: no dictionary is, and reading one would make the
        remote reader look up a dictionary from inside a dictionary's lookup."""
        loc = self.remote_locations([cid]).get(cid)
        if loc is None:
            return 0
        if loc.codec == codec.Codec.ZSTD_DICT:
            raise CorruptData(
                f"compression dictionary {cid.hex()[:16]} is recorded as dictionary-coded "
                "itself on the remote: run 'artfs verify'"
            )
        return loc.raw_length

    def pin_chunks(self, refs: Sequence[ChunkRef]) -> PinnedChunks:
        """Where each chunk is now, with the packs holding them kept open until
        :meth:`unpin_chunks`: reads through :meth:`read_pinned` keep working after the version
        is deleted and gc dropped the index entries or deleted or compacted the packs. The
        dictionaries that dictionary-coded chunks need are pinned with them, looked up in the
        same index snapshot, so such a chunk still decodes after gc collected its dictionary.

        One index get per distinct chunk, and a 32-byte read per dictionary-coded chunk (its
        dictionary's id; the page the first read of the file then reads). A pack gc deleted
        between the lookup and the pin is looked up once more; chunks still without a pinned
        location are looked up at read time, as :meth:`read_chunk` does. Nothing stays pinned
        when this raises.
        """
        locations: dict[bytes, ChunkLocation] = {}
        wanted: list[bytes] = list(dict.fromkeys(ref.chunk_id for ref in refs))
        packs: list[int] = []
        try:
            for _ in range(2):
                with self.index.read() as txn:  # one snapshot: chunks and their dictionaries
                    found = self._pin_lookup(txn, wanted, locations, packs)
                    needed = [d for d in self._dictionaries_of(locations) if d not in locations]
                    found |= self._pin_lookup(txn, needed, locations, packs)
                wanted = [cid for cid, loc in found.items() if cid not in locations]
                if not wanted:
                    break
        except BaseException:
            for pack_id in packs:
                self.chunks.unpin(pack_id)
            raise
        return PinnedChunks(locations, packs)

    def _pin_lookup(
        self,
        txn: Any,
        wanted: Sequence[bytes],
        locations: dict[bytes, ChunkLocation],
        packs: list[int],
    ) -> dict[bytes, ChunkLocation]:
        """Look ``wanted`` up in ``txn`` and pin their packs; those whose pack is there go into
        ``locations``. Returns every location found (gone packs included)."""
        found: dict[bytes, ChunkLocation] = {}
        for cid in wanted:
            data = txn.get(Table.CHUNKS, cid)
            if data is not None:
                found[cid] = ChunkLocation.decode(data)
        gone = self._pin_packs(found, packs)
        locations.update((cid, loc) for cid, loc in found.items() if loc.pack_id not in gone)
        return found

    def _dictionaries_of(self, locations: dict[bytes, ChunkLocation]) -> set[ChunkId]:
        """The dictionaries the dictionary-coded chunks at ``locations`` (pinned) need."""
        needed: set[ChunkId] = set()
        for loc in locations.values():
            try:
                dict_id = self.dictionary_id(loc)
            except CorruptData:
                continue  # its read says so
            if dict_id is not None:
                needed.add(dict_id)
        return needed

    def dictionary_id(self, loc: ChunkLocation) -> ChunkId | None:
        """The dictionary the chunk at ``loc`` is coded with (None if it needs none), read from
        the first 32 bytes of its payload; CorruptData when they cannot be read."""
        if loc.codec != codec.Codec.ZSTD_DICT:
            return None
        head = self.chunks.read(dataclasses.replace(loc, stored_length=codec.DICT_REF))
        return codec.dictionary_of(loc.codec, head)

    def _pin_packs(
        self, locations: dict[bytes, ChunkLocation], pinned: list[int], linked: bool = False
    ) -> set[int]:
        """Pin the packs of ``locations`` not pinned yet; the ids of packs that are gone (given
        ``linked``, also those deleted while this store holds them open)."""
        missing: set[int] = set()
        for loc in locations.values():
            pack_id = loc.pack_id
            if pack_id in pinned or pack_id in missing:
                continue
            try:
                self.chunks.pin(pack_id, linked)
            except CorruptData:
                missing.add(pack_id)
            else:
                pinned.append(pack_id)
        return missing

    def repin_chunks(self, locations: dict[bytes, ChunkLocation]) -> PinnedChunks | None:
        """Pin again chunks whose ``locations`` an earlier :meth:`pin_chunks` resolved (none
        dictionary-coded), with no index read: a pack is never written again once its chunks
        are indexed, and its random 64-bit id is not given to another, so a location holds
        while its pack exists. None, with nothing pinned, when a pack is gone (gc deleted or
        compacted it), also when this store still holds it open: then :meth:`pin_chunks`
        looks them up again, and the deleted pack's space is freed once its readers close.
        ``locations`` is shared with the caller's earlier pins and never changed."""
        pinned: list[int] = []
        gone = True  # until the pins are all made
        try:
            gone = bool(self._pin_packs(locations, pinned, linked=True))
        finally:
            if gone:
                for pack_id in pinned:
                    self.chunks.unpin(pack_id)
        return None if gone else PinnedChunks(locations, pinned)

    def unpin_chunks(self, pinned: PinnedChunks) -> None:
        for pack_id in pinned.packs:
            self.chunks.unpin(pack_id)
        pinned.packs.clear()

    def read_pinned(
        self, ref: ChunkRef, pinned: PinnedChunks, following: Sequence[ChunkRef] = ()
    ) -> bytes:
        """The verified bytes of a chunk from its pinned location, else as :meth:`read_chunk`."""
        loc = pinned.locations.get(ref.chunk_id)
        if loc is not None:
            try:
                return self._verified(ref, loc, pinned.locations)
            except CorruptData:
                pass  # damaged where it was pinned: a fresh lookup decides (and says why)
        return self.read_chunk(ref, following)

    def chunk_blocks(self, cid: ChunkId) -> bytes | None:
        """The block digests of a large raw chunk (``hashing.block_digests``), or None when
        the index has none for it (a smaller or compressed chunk, or one stored before artfs
        wrote them)."""
        with self.index.read() as txn:
            return txn.get(Table.CHUNK_BLOCKS, cid)

    def read_pinned_cached(self, ref: ChunkRef, pinned: PinnedChunks) -> bytes | None:
        """The verified bytes of a pinned chunk if its stored bytes are in the page cache, else
        None (then :meth:`read_pinned` in a worker thread reads it, and says why a damaged one
        fails); never waits for the disk, except once per thread for a compression dictionary
        not decoded yet."""
        loc = pinned.locations.get(ref.chunk_id)
        return None if loc is None else self._cached_at(ref, loc, pinned.locations)

    def read_cached_unpinned(
        self, ref: ChunkRef, known: ChunkLocation | None = None
    ) -> tuple[bytes, ChunkLocation] | None:
        """The verified bytes of a chunk and where they were, if its stored bytes are in the
        page cache, else None; no pack is pinned, so it is for a caller that keeps the bytes
        (a small file's handle) and needs no pack afterwards. ``known``: where an earlier
        lookup found the chunk; a pack is never rewritten, so it holds unless gc deleted the
        pack (compacted it elsewhere), and then the chunk is looked up afresh (while this store
        still holds the deleted pack open, it reads the same verified bytes there). Else one
        index get. Never waits for the disk, except as :meth:`read_pinned_cached` does."""
        if known is not None:
            try:
                data = self._cached_at(ref, known, None)
            except CorruptData:  # its pack is gone: look the chunk up again
                self.chunks.forget(known.pack_id)
            else:
                return None if data is None else (data, known)
        loc = self.chunk_location(ref.chunk_id)
        if loc is None:
            return None
        data = self._cached_at(ref, loc, None)
        return None if data is None else (data, loc)

    def _cached_at(
        self, ref: ChunkRef, loc: ChunkLocation, pinned: Mapping[bytes, ChunkLocation] | None
    ) -> bytes | None:
        """The verified bytes of ``ref`` stored at ``loc`` if they are all in the page cache,
        else None (also when they do not verify); ``pinned``: the locations pinned with it,
        where its dictionary is looked for first. CorruptData or OSError when the pack cannot
        be read at all."""
        if loc.raw_length != ref.length:
            return None
        payload = self.chunks.read_cached(loc)
        if payload is None:
            return None
        try:
            return codec.checked(
                ref.chunk_id,
                loc.codec,
                payload,
                ref.length,
                lambda dict_id: self.dictionary(dict_id, pinned),
            )
        except CorruptData:
            return None

    def remote_locations(self, ids: Iterable[ChunkId]) -> dict[ChunkId, RemoteChunk]:
        """Where those of ``ids`` that the default remote holds are on it (one snapshot)."""
        found = {}
        with self.index.read() as txn:
            for cid in ids:
                data = txn.get(Table.REMOTE_CHUNKS, cid)
                if data is not None:
                    found[cid] = RemoteChunk.decode(data)
        return found

    def _read_remote(self, ref: ChunkRef, following: Sequence[ChunkRef]) -> bytes:
        source = self._remote_source()
        if source is not None:
            return source.read(ref, following)
        with self.index.read() as txn:
            on_a_remote = txn.get(Table.REMOTE_CHUNKS, ref.chunk_id) is not None
        if on_a_remote:  # not here, which is what verify and readers must hear; but say why
            raise CorruptData(
                f"chunk {ref.chunk_id.hex()[:16]} is held only on a remote and this store has "
                "no default remote: set it again with 'artfs remote default NAME'"
            )
        raise CorruptData(f"chunk {ref.chunk_id.hex()[:16]} is missing from the index")

    def iter_file(self, entry: FileEntry) -> Iterator[bytes]:
        """A file's content chunk by chunk; CorruptData names the file.

        A reference entry's content is fetched from its URI; a changed target raises at the
        end (see artfs.store.references.fetch).
        """
        if entry.is_reference:
            yield from references.fetch(entry)
            return
        chunks = entry.chunks
        for index, ref in enumerate(chunks):
            try:
                yield self.read_chunk(ref, chunks[index + 1 : index + 1 + FOLLOWING_CHUNKS])
            except CorruptData as exc:
                raise CorruptData(f"{entry.path}: {exc}") from None

    def stored_chunk(
        self, cid: ChunkId, pending: Mapping[ChunkId, ChunkLocation] | None = None
    ) -> tuple[bytes, int, int]:
        """A chunk's stored bytes ``(payload, codec, raw length)`` from this store's packs,
        checked against its id so that damage is never handed on (to a remote). ``pending``
        holds locations written by a commit but not indexed yet. NotFound if not held here."""
        loc = (pending or {}).get(cid) or self.chunk_location(cid)
        if loc is None:
            raise NotFound(
                f"chunk {cid.hex()[:16]} is not in this store (a clone holds only the index): "
                "'artfs pull' the version first"
            )
        payload = self.chunks.read(loc)
        # A dictionary may have been stored by this very commit: ``pending`` knows where.
        lookup = functools.partial(self.dictionary, pending=pending)
        if codec.verified(cid, loc.codec, payload, loc.raw_length, lookup) is None:
            raise CorruptData(
                f"chunk {cid.hex()[:16]} is damaged in this store: run 'artfs verify'"
            )
        return payload, loc.codec, loc.raw_length
