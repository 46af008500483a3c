"""The chunk store interface: where compressed chunk bytes live.

The index maps a chunk id to a :class:`ChunkLocation`; a chunk store turns locations into bytes
and appends new chunks. Local pack files implement it today (:mod:`artfs.store.packs`); an
object-store backend implements the same interface later, so nothing above this layer changes.
"""

from __future__ import annotations

import struct
from collections.abc import ItemsView, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from artfs.errors import CorruptData
from artfs.store.hashing import ChunkId

_LOCATION = struct.Struct("<QQIIB")


@dataclass(frozen=True, slots=True)
class ChunkLocation:
    """Where a chunk is: ``stored_length`` bytes at ``offset`` of pack ``pack_id``."""

    pack_id: int
    offset: int
    stored_length: int
    raw_length: int
    codec: int

    def encode(self) -> bytes:
        return _LOCATION.pack(
            self.pack_id, self.offset, self.stored_length, self.raw_length, self.codec
        )

    @classmethod
    def decode(cls, data: bytes) -> ChunkLocation:
        return cls(*_LOCATION.unpack(data))

    @staticmethod
    def codec_of(data: bytes) -> int:
        """The codec of an encoded location, without decoding the rest (for whole-index
        scans)."""
        return data[_LOCATION.size - 1]


class NewChunks(Mapping[ChunkId, ChunkLocation]):
    """Where the chunks a commit wrote are, until its transaction indexes them. Kept encoded
    as the index stores them: ~60 bytes a chunk rather than ~130 as objects, which a put of a
    million small files (a million new chunks) holds at its peak."""

    def __init__(self) -> None:
        self._encoded: dict[ChunkId, bytes] = {}
        # chunk id -> its block digests (hashing.block_digests), for the large raw chunks
        self.blocks: dict[ChunkId, bytes] = {}

    def reserve(self, cid: ChunkId) -> None:
        """Mark ``cid`` as being written (so it is written once); :meth:`add` places it."""
        self._encoded[cid] = b""

    def add(self, cid: ChunkId, loc: ChunkLocation, blocks: bytes = b"") -> None:
        self._encoded[cid] = loc.encode()
        if blocks:
            self.blocks[cid] = blocks

    def encoded(self) -> ItemsView[ChunkId, bytes]:
        """(chunk id, encoded location) pairs, as :data:`Table.CHUNKS` holds them."""
        return self._encoded.items()

    def __getitem__(self, cid: ChunkId) -> ChunkLocation:
        data = self._encoded[cid]
        if not data:
            raise KeyError(cid)  # reserved, not written yet
        return ChunkLocation.decode(data)

    def __contains__(self, cid: object) -> bool:
        return cid in self._encoded

    def __iter__(self) -> Iterator[ChunkId]:
        return iter(self._encoded)

    def __len__(self) -> int:
        return len(self._encoded)


@dataclass(frozen=True, slots=True)
class RemoteChunk:
    """Where a chunk is on the default remote: ``stored_length`` bytes at ``offset`` of the
    remote's pack ``pack`` (its hash, hex). The store records it (``Table.REMOTE_CHUNKS``)
    for the chunks it does not hold; the remote's pack indexes hold it as JSON."""

    pack: str
    offset: int
    stored_length: int
    raw_length: int
    codec: int

    def to_json(self) -> list[Any]:
        return [self.pack, self.offset, self.stored_length, self.raw_length, self.codec]

    @classmethod
    def from_json(cls, value: list[Any]) -> RemoteChunk:
        pack, offset, stored, raw, codec = value
        return cls(str(pack), int(offset), int(stored), int(raw), int(codec))

    def encode(self) -> bytes:
        """57 bytes for the local index (``Table.REMOTE_CHUNKS``): pack hash, offset, stored
        and raw length, codec."""
        return _REMOTE_CHUNK.pack(
            bytes.fromhex(self.pack), self.offset, self.stored_length, self.raw_length, self.codec
        )

    @classmethod
    def decode(cls, data: bytes) -> RemoteChunk:
        if len(data) != _REMOTE_CHUNK.size:
            raise CorruptData(f"a remote chunk location of {len(data)} bytes cannot be read")
        pack, offset, stored, raw, codec = _REMOTE_CHUNK.unpack(data)
        return cls(pack.hex(), offset, stored, raw, codec)


_REMOTE_CHUNK = struct.Struct(">32sQQQB")


class ChunkWriter(Protocol):
    """Appends chunks for one commit; nothing is durable until :meth:`commit` returns."""

    def add(
        self, chunk_id: ChunkId, codec: int, payload: bytes, raw_length: int
    ) -> ChunkLocation: ...

    def commit(self) -> None:
        """Make every added chunk durable (written and fsynced)."""
        ...

    def abort(self) -> None:
        """Forget what was added, also after commit when the index never referenced it."""
        ...


class ChunkStore(Protocol):
    """What the store (``Store.chunks``), gc and verify need of where chunk bytes live."""

    def writer(self) -> ChunkWriter: ...

    def read(self, location: ChunkLocation) -> bytes:
        """The stored (possibly compressed) bytes at ``location``; CorruptData when they
        cannot be read (a pack gone or cut short)."""
        ...

    def read_cached(self, location: ChunkLocation) -> bytes | None:
        """The stored bytes at ``location`` if they can be had without waiting for the disk
        (the page cache holds them), else None."""
        ...

    def pin(self, pack_id: int, linked: bool = False) -> None:
        """Keep pack ``pack_id`` readable until a matching :meth:`unpin`, even once gc deleted
        it (an open file reads on); CorruptData if it does not exist (any more)."""
        ...

    def unpin(self, pack_id: int) -> None: ...

    def forget(self, pack_id: int) -> None:
        """Drop what is cached of a pack, so the next read finds it afresh (after gc moved
        its chunks)."""
        ...

    def drop_unlinked(self) -> int:
        """Let go of packs gc deleted that nothing pins (so their space is freed); how many."""
        ...

    def pack_ids(self) -> list[int]: ...

    def pack_size(self, pack_id: int) -> int: ...

    def records(self, pack_id: int) -> Iterator[tuple[ChunkId, ChunkLocation]]:
        """Every chunk stored in one pack, in order (for gc and index rebuilds)."""
        ...

    def delete_pack(self, pack_id: int) -> None: ...

    def close(self) -> None: ...
