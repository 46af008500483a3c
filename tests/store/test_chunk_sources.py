"""The chunk-source contract, run against every place a chunk is read from.

A read of a chunk comes from the local packs (``Store.read_chunk`` on a store that holds it),
from the default remote (:class:`~artfs.remote.fetch.RemoteChunks`, the store's
:class:`~artfs.store.ports.ChunkSource`, on a real SeaweedFS) or from the local chunk cache
(:class:`~artfs.remote.cache.DiskChunkCache`). Each must:

- return a present chunk's exact bytes (stored raw or zstd-compressed);
- report a chunk it does not hold as its documented error (the stores: CorruptData naming
  the chunk; the cache: a miss, None);
- detect a damaged chunk: the documented error, never wrong bytes, and the damage stays with
  that chunk;
- return the same bytes whatever ``following`` chunks a reader names with a read, and serve
  those chunks right afterwards;
- serve many threads at once.

The object-store contract (tests/remote/test_objectstore.py) is the model.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from artfs.errors import CorruptData
from artfs.names import ArtifactName, Ref
from artfs.remote import layout
from artfs.remote.cache import DiskChunkCache
from artfs.remote.fetch import RemoteChunks
from artfs.remote.remote import Remote, open_remote
from artfs.remote.sync import add_remote, clone, push
from artfs.store import Store, codec
from artfs.store.hashing import ChunkId, chunk_id
from artfs.store.manifest import ChunkRef
from artfs.stores import open_store
from tests.helpers import make_tree, random_bytes, text_bytes
from tests.remote.conftest import prefix, s3_env, s3_server  # noqa: F401 (fixtures)
from tests.remote.seaweed import S3Server

ART = ArtifactName("team", "data")
MIB = 1 << 20
FILES = {
    "weights.bin": random_bytes(3 * MIB, 1),  # incompressible: chunks stored raw
    "table.csv": text_bytes(2 * MIB, 2),  # compressible: chunks stored zstd-coded
    "small.txt": b"one small chunk\n" * 10,
}
THREADS = 8


@dataclass
class Chunks:
    """The chunks of :data:`FILES` as stored: each ref with its raw bytes, in file order."""

    refs: list[ChunkRef] = field(default_factory=list)
    raw: dict[ChunkId, bytes] = field(default_factory=dict)

    def of_codec(self, store: Store, wanted: codec.Codec) -> ChunkRef:
        """The first chunk the store keeps in codec ``wanted``."""
        for ref in self.refs:
            loc = store.chunk_location(ref.chunk_id)
            if loc is not None and loc.codec == wanted:
                return ref
        raise AssertionError(f"no chunk stored as {wanted!r}")


@dataclass
class Source:
    """One chunk source under test. ``read`` is the source's own read; ``missing`` is what it
    raises for a chunk it does not hold (None: it returns None, a miss); ``damage`` corrupts a
    held chunk where the source keeps it."""

    read: Callable[[ChunkRef, Sequence[ChunkRef]], bytes | None]
    missing: type[Exception] | None
    damage: Callable[[ChunkRef], None]
    chunks: Chunks
    kept: Callable[[codec.Codec], ChunkRef]  # a held chunk stored in that codec


def _stored_chunks(store: Store) -> Chunks:
    record = store.resolve(Ref(ART, "v0"))
    found = Chunks()
    for entry in store.files(record):
        offset = 0
        for ref in entry.chunks:
            found.refs.append(ref)
            found.raw[ref.chunk_id] = FILES[entry.path][offset : offset + ref.length]
            offset += ref.length
    return found


def _flip_byte(path: Path, at: int) -> None:
    with open(path, "r+b") as file:
        file.seek(at)
        byte = file.read(1)
        file.seek(at)
        file.write(bytes([byte[0] ^ 0x40]))


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[Store]:
    """A store without a remote holding :data:`FILES` as team/data:v0."""
    src = make_tree(tmp_path / "src", FILES)
    with open_store(tmp_path / "home") as store:
        store.put(src, ART)
        yield store


def _packs_source(store: Store) -> Source:
    def damage(ref: ChunkRef) -> None:
        loc = store.chunk_location(ref.chunk_id)
        assert loc is not None
        _flip_byte(store.chunks.path(loc.pack_id), loc.offset + loc.stored_length // 2)

    chunks = _stored_chunks(store)
    return Source(
        store.read_chunk, CorruptData, damage, chunks, lambda c: chunks.of_codec(store, c)
    )


def _cache_source(store: Store, root: Path) -> Source:
    """A cache holding every chunk of ``store`` as the lazy read path keeps them."""
    cache = DiskChunkCache(root, max_bytes=1 << 30, min_free_bytes=0)
    (root / "chunks").mkdir(parents=True)
    (root / "tmp").mkdir()
    chunks = _stored_chunks(store)
    for ref in chunks.refs:
        payload, codec_id, raw_length = store.stored_chunk(ref.chunk_id)
        assert cache.put(ref.chunk_id, codec_id, payload, raw_length)

    def read(ref: ChunkRef, following: Sequence[ChunkRef]) -> bytes | None:
        return cache.get(ref.chunk_id, store.dictionary)  # a cache takes no read-ahead

    def damage(ref: ChunkRef) -> None:
        hexid = ref.chunk_id.hex()
        entry = root / "chunks" / hexid[:2] / hexid
        _flip_byte(entry, entry.stat().st_size // 2)

    return Source(read, None, damage, chunks, lambda c: chunks.of_codec(store, c))


@contextlib.contextmanager
def _remote_source(
    server: S3Server, key_prefix: str, tmp_path: Path, published: Store
) -> Iterator[Source]:
    """A clone of a remote that ``published`` pushed v0 to: it holds the index and no chunk,
    so every read goes to SeaweedFS (through a cache that starts empty)."""
    push(published, Remote(server.store(key_prefix), "publisher", None), Ref(ART, "v0"))
    with open_store(tmp_path / "clone") as cloned:
        config = add_remote(cloned, "origin", server.url(key_prefix), server.endpoint, None)
        clone(cloned, open_remote(cloned, config))
        cloned.set_default_remote("origin")
        remote = cloned.remote_source()
        assert isinstance(remote, RemoteChunks)
        chunks = _stored_chunks(cloned)
        assert len(cloned.missing_chunks(ref.chunk_id for ref in chunks.refs)) == len(chunks.raw)
        where = cloned.remote_locations(chunks.raw)
        objects = server.store(key_prefix)

        def damage(ref: ChunkRef) -> None:
            at = where[ref.chunk_id]
            key = layout.pack_key(at.pack)
            pack = bytearray(objects.get(key)[0])
            pack[at.offset + at.stored_length // 2] ^= 0x40
            objects.put(key, bytes(pack))

        def kept(wanted: codec.Codec) -> ChunkRef:
            return next(ref for ref in chunks.refs if where[ref.chunk_id].codec == wanted)

        yield Source(remote.read, CorruptData, damage, chunks, kept)


@pytest.fixture(params=["packs", "remote", "cache"])
def source(request: pytest.FixtureRequest, local_store: Store, tmp_path: Path) -> Iterator[Source]:
    """Each chunk source, holding the chunks of :data:`FILES`."""
    if request.param == "packs":
        yield _packs_source(local_store)
    elif request.param == "cache":
        yield _cache_source(local_store, tmp_path / "cache")
    else:
        server: S3Server = request.getfixturevalue("s3_env")
        key_prefix: str = request.getfixturevalue("prefix")
        with _remote_source(server, key_prefix, tmp_path, local_store) as made:
            yield made


def _read(source: Source, ref: ChunkRef, following: Sequence[ChunkRef] = ()) -> bytes | None:
    return source.read(ref, following)


def test_a_present_chunk_reads_as_its_bytes(source: Source) -> None:
    assert len(source.chunks.refs) >= 5
    for ref in source.chunks.refs:
        assert _read(source, ref) == source.chunks.raw[ref.chunk_id]
    for ref in source.chunks.refs:  # again: whatever the first read kept, the same bytes
        assert _read(source, ref) == source.chunks.raw[ref.chunk_id]


def test_a_chunk_it_does_not_hold_is_its_documented_error(source: Source) -> None:
    absent_bytes = b"held by no source"
    absent = ChunkRef(chunk_id(absent_bytes), len(absent_bytes))
    if source.missing is None:
        assert _read(source, absent) is None
    else:
        with pytest.raises(source.missing, match=absent.chunk_id.hex()[:16]):
            _read(source, absent)
    first = source.chunks.refs[0]
    assert _read(source, first) == source.chunks.raw[first.chunk_id]  # nothing else broke


@pytest.mark.parametrize("stored_as", [codec.Codec.RAW, codec.Codec.ZSTD], ids=["raw", "zstd"])
def test_a_damaged_chunk_is_detected_never_returned(source: Source, stored_as: codec.Codec) -> None:
    victim = source.kept(stored_as)
    source.damage(victim)
    for _ in range(2):  # a second read must not find the damage laundered somewhere
        if source.missing is None:
            assert _read(source, victim) is None
        else:
            with pytest.raises(CorruptData):
                _read(source, victim)
    for ref in source.chunks.refs:  # every other chunk still reads right
        if ref.chunk_id != victim.chunk_id:
            assert _read(source, ref) == source.chunks.raw[ref.chunk_id]


def test_following_chunks_change_nothing_and_read_after(source: Source) -> None:
    refs = source.chunks.refs
    for index, ref in enumerate(refs):
        following = refs[index + 1 : index + 5]
        assert _read(source, ref, following) == source.chunks.raw[ref.chunk_id]
    last, first = refs[-1], refs[0]
    # Following chunks named out of order, repeated, or the chunk itself: the same bytes.
    assert _read(source, last, [first, last, first]) == source.chunks.raw[last.chunk_id]
    for ref in reversed(refs):
        assert _read(source, ref) == source.chunks.raw[ref.chunk_id]


def test_many_threads_read_at_once(source: Source) -> None:
    refs = source.chunks.refs
    start = threading.Barrier(THREADS)
    wrong: list[str] = []
    errors: list[BaseException] = []

    def reader(seed: int) -> None:
        order = list(range(len(refs)))
        random.Random(seed).shuffle(order)
        start.wait(timeout=30)
        try:
            for index in order * 2:
                data = _read(source, refs[index], refs[index + 1 : index + 3])
                if data != source.chunks.raw[refs[index].chunk_id]:
                    wrong.append(f"thread {seed}, chunk {index}")
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=reader, args=(n,)) for n in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=90)
    assert not any(worker.is_alive() for worker in workers)
    assert errors == [] and wrong == []
