"""Pure formats and codecs: chunk compression, chunking, pack records, file entries, locations."""

import io
import random
import struct
from pathlib import Path

import lmdb
import pytest

from artfs.errors import CorruptData
from artfs.store import codec
from artfs.store.chunking import MAX_CHUNK, MIN_CHUNK, chunk_buffer, chunk_file
from artfs.store.chunkstore import ChunkLocation
from artfs.store.hashing import ChunkId, FileDigest, chunk_id, file_digest, version_digest
from artfs.store.index import Index, Table
from artfs.store.manifest import (
    ChunkRef,
    FileEntry,
    Kind,
    children_prefix,
    entry_key,
    path_from_key,
)
from artfs.store.packs import MAGIC, RECORD, LocalPackStore, iter_records, record_header


def csv_text(size: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += f"{rng.randrange(10**6)},{rng.random():.6f},label_{rng.randrange(10)}\n".encode()
    return bytes(out[:size])


# --- codec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"x",
        b"a" * 63,
        b"a" * 64,
        csv_text(10_000),
        csv_text(1 << 20),
        random.Random(1).randbytes(100_000),
    ],
    ids=["empty", "one", "63", "64", "csv-10k", "csv-1m", "random-100k"],
)
def test_codec_round_trip(data: bytes) -> None:
    chosen, payload = codec.encode(data)
    assert codec.decode(chosen, payload, len(data)) == data


def test_compressible_data_is_stored_zstd_and_smaller() -> None:
    data = csv_text(1 << 20)
    chosen, payload = codec.encode(data)
    assert chosen == codec.Codec.ZSTD
    assert len(payload) < len(data) / 2


@pytest.mark.parametrize("size", [1000, 16 << 10, 1 << 20])
def test_incompressible_data_is_stored_raw(size: int) -> None:
    data = random.Random(size).randbytes(size)
    chosen, payload = codec.encode(data)
    assert chosen == codec.Codec.RAW
    assert payload == data


def test_data_that_compresses_by_less_than_a_tenth_is_stored_raw() -> None:
    """float32 weights (random mantissas) shrink to ~0.93 under zstd level 1: not worth
    decoding on every read, so stored raw; text that halves is still compressed."""
    rng = random.Random(7)
    weights = struct.pack("<65536f", *(rng.gauss(0.0, 0.02) for _ in range(65536)))
    assert 0.9 < 1 / codec.compression_ratio(weights) < 0.95  # it saves, but under a tenth
    assert codec.encode(weights) == (codec.Codec.RAW, weights)
    assert codec.encode(csv_text(1 << 18))[0] == codec.Codec.ZSTD


def test_tiny_chunks_are_stored_raw() -> None:
    assert codec.encode(b"a" * 10) == (codec.Codec.RAW, b"a" * 10)


def test_encode_accepts_memoryviews() -> None:
    data = csv_text(200_000)
    chosen, payload = codec.encode(memoryview(data))
    assert codec.decode(chosen, payload, len(data)) == data


def test_garbled_zstd_payload_is_corrupt_data_not_bytes() -> None:
    data = csv_text(100_000)
    chosen, payload = codec.encode(data)
    assert chosen == codec.Codec.ZSTD
    broken = bytearray(payload)
    broken[len(broken) // 2 : len(broken) // 2 + 8] = b"\xff" * 8
    try:
        decoded = codec.decode(chosen, bytes(broken), len(data))
    except CorruptData:
        return
    # zstd may decode garbage without noticing; then the chunk hash must catch it.
    assert chunk_id(decoded) != chunk_id(data)


def test_unknown_codec_is_corrupt_data() -> None:
    with pytest.raises(CorruptData, match="codec"):
        codec.decode(7, b"abc", 3)


# --- hashing ----------------------------------------------------------------------------------


def test_chunk_id_is_blake3_of_the_uncompressed_bytes() -> None:
    import blake3

    data = csv_text(5000)
    assert chunk_id(data) == blake3.blake3(data).digest()
    assert file_digest(data) == chunk_id(data)


def test_version_digest_is_order_independent_and_content_sensitive() -> None:
    a = (b"a.txt", bytes(32))
    b = (b"b.txt", b"\x01" * 32)
    assert version_digest([a, b]) == version_digest([b, a])
    assert version_digest([a, b]) != version_digest([a])
    assert version_digest([a]) != version_digest([(b"a.txt", b"\x02" * 32)])
    # The path boundary is part of the digest: ("ab", x) differs from ("a", ...) splits.
    assert version_digest([(b"ab", bytes(32))]) != version_digest([(b"a", b"b" + bytes(31))])


# --- chunking ---------------------------------------------------------------------------------


def test_small_buffer_is_one_chunk() -> None:
    data = b"z" * MIN_CHUNK
    assert [bytes(c) for c in chunk_buffer(data)] == [data]


def test_chunks_reassemble_and_respect_bounds() -> None:
    data = random.Random(3).randbytes(12 << 20)
    chunks = [bytes(c) for c in chunk_buffer(data)]
    assert b"".join(chunks) == data
    assert len(chunks) > 4
    assert all(len(c) <= MAX_CHUNK for c in chunks)
    assert all(len(c) >= MIN_CHUNK for c in chunks[:-1])


def test_chunk_file_matches_chunk_buffer(tmp_path: Path) -> None:
    data = random.Random(4).randbytes(6 << 20)
    path = tmp_path / "big"
    path.write_bytes(data)
    from_file = [bytes(c) for c in chunk_file(path, len(data))]
    assert from_file == [bytes(c) for c in chunk_buffer(data)]


def test_chunk_file_of_an_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert list(chunk_file(path, 0)) == []


def test_insertion_near_the_start_changes_only_nearby_chunks() -> None:
    data = random.Random(5).randbytes(16 << 20)
    edited = data[:1000] + b"!" * 100 + data[1000:]
    before = {chunk_id(c) for c in chunk_buffer(data)}
    after = [chunk_id(c) for c in chunk_buffer(edited)]
    new = [c for c in after if c not in before]
    assert 1 <= len(new) <= 2, f"{len(new)} of {len(after)} chunks changed"


# --- pack records -----------------------------------------------------------------------------


def _read_at(data: bytes):  # type: ignore[no-untyped-def]
    buffer = io.BytesIO(data)

    def read_at(offset: int, length: int) -> bytes:
        buffer.seek(offset)
        return buffer.read(length)

    return read_at


def _pack_bytes(records: list[tuple[bytes, int, bytes, int]]) -> bytes:
    out = bytearray(MAGIC)
    for cid, codec_id, payload, raw_length in records:
        out += record_header(ChunkId(cid), codec_id, raw_length, len(payload)) + payload
    return bytes(out)


def test_pack_records_round_trip_through_read_at() -> None:
    payloads = [b"first", b"", csv_text(3000), b"\x00" * 70]
    records = [(chunk_id(p), i % 2, p, len(p) * 2) for i, p in enumerate(payloads)]
    data = _pack_bytes(records)
    walked = list(iter_records(_read_at(data), len(data), pack_id=7))
    assert [cid for cid, _ in walked] == [r[0] for r in records]
    for (_, loc), (_, codec_id, payload, raw_length) in zip(walked, records, strict=True):
        assert loc.pack_id == 7
        assert loc.codec == codec_id
        assert loc.raw_length == raw_length
        assert data[loc.offset : loc.offset + loc.stored_length] == payload


def test_pack_walk_stops_quietly_at_a_torn_tail() -> None:
    records = [(chunk_id(p), 0, p, len(p)) for p in (b"a" * 100, b"b" * 100, b"c" * 100)]
    data = _pack_bytes(records)
    for cut in (len(data) - 1, len(data) - 100, len(data) - 100 - RECORD.size + 3):
        walked = list(iter_records(_read_at(data[:cut]), cut, pack_id=1))
        assert [cid for cid, _ in walked] == [r[0] for r in records[:2]]


def test_pack_with_bad_magic_or_bad_record_tag_is_corrupt() -> None:
    data = _pack_bytes([(chunk_id(b"x"), 0, b"x", 1)])
    bad_magic = b"NOTAPACK" + data[len(MAGIC) :]
    with pytest.raises(CorruptData, match="magic"):
        list(iter_records(_read_at(bad_magic), len(bad_magic), pack_id=1))
    bad_tag = MAGIC + b"XX" + data[len(MAGIC) + 2 :]
    with pytest.raises(CorruptData, match="bad record header"):
        list(iter_records(_read_at(bad_tag), len(bad_tag), pack_id=1))


def test_pack_writer_output_walks_back_to_the_same_locations(tmp_path: Path) -> None:
    packs = LocalPackStore.open(tmp_path / "packs")
    writer = packs.writer()
    payloads = [csv_text(n, seed=n) for n in (10, 5000, 70_000)]
    written = [writer.add(chunk_id(p), 0, p, len(p)) for p in payloads]
    writer.commit()
    (pack_id,) = packs.pack_ids()
    walked = list(packs.records(pack_id))
    assert [loc for _, loc in walked] == written
    assert [packs.read(loc) for loc in written] == payloads
    packs.close()


def test_pack_writer_abort_removes_its_packs(tmp_path: Path) -> None:
    packs = LocalPackStore.open(tmp_path / "packs")
    writer = packs.writer()
    writer.add(chunk_id(b"abc"), 0, b"abc", 3)
    writer.commit()
    assert packs.pack_ids()
    writer.abort()
    assert packs.pack_ids() == []


def test_chunk_location_round_trip() -> None:
    loc = ChunkLocation(pack_id=2**64 - 1, offset=2**40, stored_length=123, raw_length=456, codec=1)
    assert ChunkLocation.decode(loc.encode()) == loc


# --- file entries -----------------------------------------------------------------------------


def test_file_entry_round_trip() -> None:
    refs = tuple(ChunkRef(chunk_id(bytes([i])), 1000 + i) for i in range(3))
    entry = FileEntry(
        "dir/sub/file.bin", Kind.FILE, 0o640, 3003, -5, FileDigest(b"\x07" * 32), refs
    )
    assert FileEntry.decode(entry.path, entry.encode()) == entry
    assert entry.name == "file.bin"
    assert entry.parent == "dir/sub"


def test_directory_and_empty_file_entries_round_trip() -> None:
    directory = FileEntry("a/b", Kind.DIR, 0o755, 0, 1_700_000_000_000_000_000)
    empty = FileEntry("e", Kind.FILE, 0o600, 0, 0, file_digest(b""))
    for entry in (directory, empty):
        decoded = FileEntry.decode(entry.path, entry.encode())
        assert decoded == entry
    assert directory.is_dir and not empty.is_dir


@pytest.mark.parametrize("path", ["top", "a/b", "a/b/c.txt", "é/\udcff-not-utf8"])
def test_entry_keys_give_back_the_path(path: str) -> None:
    vkey = b"proj/name\0\x00\x00\x00\x03"
    key = entry_key(vkey, path)
    assert path_from_key(vkey, key) == path
    parent = path.rpartition("/")[0]
    assert key.startswith(children_prefix(vkey, parent))


def test_children_prefix_selects_direct_children_only() -> None:
    vkey = b"p/n\0\x00\x00\x00\x00"
    keys = {p: entry_key(vkey, p) for p in ("a", "a/x", "a/y/z", "ab/x", "b")}
    children = sorted(p for p, k in keys.items() if k.startswith(children_prefix(vkey, "a")))
    assert children == ["a/x"]
    roots = sorted(p for p, k in keys.items() if k.startswith(children_prefix(vkey, "")))
    assert roots == ["a", "b"]


def test_index_read_makes_lmdb_errors_corrupt_data_and_passes_others_on(tmp_path: Path) -> None:
    """An LMDB error inside ``Index.read()`` is CorruptData (one line, what to do); any other
    error of the caller's passes through as it is; either way the transaction ends."""
    index = Index.open(tmp_path / "index")
    try:
        with pytest.raises(CorruptData, match="restore it from a backup"), index.read():
            raise lmdb.Error("MDB_CORRUPTED: located page was wrong type")
        with pytest.raises(KeyError, match="the caller's own"), index.read():
            raise KeyError("the caller's own")
        for _ in range(2000):  # more than the reader slots: every transaction was ended
            with index.read() as txn:
                assert txn.get(Table.CHUNKS, b"none") is None
    finally:
        index.close()


def test_index_presence_sees_writes_made_after_it_renews(tmp_path: Path) -> None:
    """``Index.presence`` answers from one read transaction per batch of checks: keys stored
    before it began are found, a key written meanwhile shows up once the batch renews."""
    index = Index.open(tmp_path / "index")
    try:
        with index.write() as txn:
            txn.put(Table.CHUNKS, b"old", b"x")
        with index.presence(Table.CHUNKS, renew_every=3, renew_after=60) as has:
            assert has(b"old") and not has(b"new")
            with index.write() as txn:
                txn.put(Table.CHUNKS, b"new", b"y")
            assert not has(b"new")  # the same snapshot: third check of the batch
            assert has(b"new") and has(b"old")  # renewed
        with index.presence(Table.CHUNKS, renew_after=0) as has:
            with index.write() as txn:
                txn.put(Table.CHUNKS, b"newer", b"z")
            assert has(b"newer")  # renewed: its time was up
        with index._env.begin(write=True) as raw:  # a record whose seal does not match
            raw.put(b"torn", b"0123456789", db=index._dbs[Table.CHUNKS])
        with index.presence(Table.CHUNKS) as has, pytest.raises(CorruptData):
            has(b"torn")
    finally:
        index.close()


def test_verified_accepts_only_payloads_that_decode_to_their_id() -> None:
    data = csv_text(2000, seed=4)
    cid = chunk_id(data)
    chosen, payload = codec.encode(data)
    assert chosen == codec.Codec.ZSTD
    assert codec.verified(cid, chosen, payload, len(data)) == data
    assert codec.verified(cid, chosen, payload, len(data) - 1) is None  # wrong length
    assert codec.verified(chunk_id(b"other"), chosen, payload, len(data)) is None  # wrong id
    garbled = payload[:10] + bytes([payload[10] ^ 0xFF]) + payload[11:]
    assert codec.verified(cid, chosen, garbled, len(data)) is None
    assert codec.verified(cid, 7, payload, len(data)) is None  # unknown codec
    assert codec.verified(cid, codec.Codec.RAW, data, len(data)) == data
