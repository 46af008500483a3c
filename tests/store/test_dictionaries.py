"""zstd dictionaries for small files of one kind: chosen, stored, read, kept by gc, verified."""

import json
import random
from pathlib import Path
from typing import Any

import pytest

from artfs.errors import CorruptData
from artfs.names import ArtifactName, Ref
from artfs.store import Store, codec
from artfs.store.chunkstore import ChunkLocation
from artfs.store.export import materialize
from artfs.store.gc import collect
from artfs.store.hashing import ChunkId, chunk_id
from artfs.store.index import Table
from artfs.store.verify import verify
from tests.conftest import read_tree

ART = ArtifactName("proj", "coco")


def annotations(count: int, seed: int = 0) -> dict[str, bytes]:
    """COCO-like per-image annotation files of a few hundred bytes to a few KB."""
    rng = random.Random(seed)
    files = {}
    for i in range(count):
        doc = {
            "image_id": i,
            "file_name": f"{i:012d}.jpg",
            "annotations": [
                {
                    "id": i * 10 + k,
                    "category_id": rng.randrange(80),
                    "bbox": [round(rng.uniform(0, 640), 2) for _ in range(4)],
                    "area": round(rng.uniform(10, 5000), 3),
                    "iscrowd": 0,
                }
                for k in range(rng.randrange(1, 6))
            ],
        }
        files[f"ann/{i:06d}.json"] = json.dumps(doc).encode()
    return files


def chunk_codecs(store: Store) -> dict[ChunkId, ChunkLocation]:
    with store.index.read() as txn:
        return {ChunkId(k): ChunkLocation.decode(v) for k, v in txn.scan(Table.CHUNKS)}


def dict_coded(store: Store) -> dict[ChunkId, ChunkLocation]:
    return {c: loc for c, loc in chunk_codecs(store).items() if loc.codec == codec.Codec.ZSTD_DICT}


def dictionaries_of(store: Store) -> set[ChunkId]:
    found = set()
    for loc in dict_coded(store).values():
        dict_id = codec.dictionary_of(loc.codec, store.chunks.read(loc))
        assert dict_id is not None
        found.add(dict_id)
    return found


def test_small_json_files_share_a_dictionary_and_read_back(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    spec = annotations(400)
    src = make_tree(tmp_path / "src", spec)
    record = store.put(src, ART).record
    coded = dict_coded(store)
    assert len(coded) > 300  # most annotation files
    (dict_id,) = dictionaries_of(store)
    assert dict_id in chunk_codecs(store)  # the dictionary is a chunk of the store
    # It pays, dictionary and references included, against plain zstd per file.
    plain = sum(len(codec.encode(data)[1]) for data in spec.values())
    stored = sum(loc.stored_length for loc in chunk_codecs(store).values())
    assert stored < 0.8 * plain
    materialize(store, record, tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(src)
    assert verify(store, [record]) == []


def test_random_blobs_and_tiny_labels_get_no_dictionary(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    rng = random.Random(1)
    spec: dict[str, bytes] = {f"img/{i:04d}.bin": rng.randbytes(2000) for i in range(200)}
    spec |= {f"lbl/{i:04d}.txt": f'{{"id": {i}, "class": {i % 10}}}'.encode() for i in range(200)}
    store.put(make_tree(tmp_path / "src", spec), ART)
    assert dict_coded(store) == {}
    assert len(chunk_codecs(store)) == 400  # no dictionary chunk either


def test_a_new_version_of_stored_files_trains_nothing(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    spec = annotations(300)
    store.put(make_tree(tmp_path / "a", spec), ART)
    before = chunk_codecs(store)
    spec["ann/extra.json"] = b'{"image_id": -1, "annotations": []}'
    store.put(make_tree(tmp_path / "b", spec), ART)
    after = chunk_codecs(store)
    assert set(after) - set(before) == {
        c for c in after if after[c].raw_length == len(spec["ann/extra.json"])
    }


def test_gc_keeps_a_dictionary_while_a_chunk_uses_it(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    spec = annotations(300)
    store.put(make_tree(tmp_path / "a", spec), ART)
    (dict_id,) = dictionaries_of(store)
    # v1 shares the files, v0 goes: gc compacts the packs (mostly garbage) and must keep
    # the dictionary, which no file references.
    store.put(make_tree(tmp_path / "b", spec | {"big.bin": random.randbytes(3 << 20)}), ART)
    store.delete(Ref.parse("proj/coco:v1"))
    store.put(make_tree(tmp_path / "c", spec | {"other.bin": b"x" * 1000}), ART)
    store.delete(Ref.parse("proj/coco:v0"))
    report = collect(store)
    assert report.packs_rewritten + report.packs_removed > 0
    assert dict_id in chunk_codecs(store)
    (v2,) = store.versions(ART)
    materialize(store, v2, tmp_path / "out")
    assert {f"ann/{p.name}" for p in (tmp_path / "out" / "ann").iterdir()} == {p for p in spec}
    assert verify(store, [v2]) == []
    store.delete(Ref.parse("proj/coco:v2"))
    collect(store)
    assert chunk_codecs(store) == {}  # the dictionary went with the last chunk using it


def test_a_damaged_dictionary_is_reported_for_the_files_using_it(
    home: Path, tmp_path: Path, make_tree: Any
) -> None:
    with Store.open(home) as store:
        record = store.put(make_tree(tmp_path / "src", annotations(200)), ART).record
        (dict_id,) = dictionaries_of(store)
        loc = store.chunk_location(dict_id)
        assert loc is not None
    with open(home / "packs" / f"{loc.pack_id:016x}.pack", "r+b") as f:
        f.seek(loc.offset + loc.stored_length // 2)
        byte = f.read(1)
        f.seek(loc.offset + loc.stored_length // 2)
        f.write(bytes([byte[0] ^ 0x01]))
    with Store.open(home) as store:
        coded = dict_coded(store)
        using = {e.path for e in store.files(record) if e.chunks and e.chunks[0].chunk_id in coded}
        assert {p.path for p in verify(store, [record])} == using
        entry = next(e for e in store.files(record) if e.path in using)
        with pytest.raises(CorruptData, match=entry.path):
            b"".join(store.iter_file(entry))


def test_codec_round_trip_and_refusals() -> None:
    samples = list(annotations(200).values())
    dictionary = codec.train(samples, 4096)
    assert dictionary is not None
    data = samples[7]
    chosen, payload = codec.encode(data, dictionary)
    assert chosen == codec.Codec.ZSTD_DICT
    assert codec.dictionary_of(chosen, payload) == dictionary.id
    cid = chunk_id(data)
    lookup = {dictionary.id: dictionary.content}.__getitem__
    assert codec.verified(cid, chosen, payload, len(data), lookup) == data
    assert codec.verified(cid, chosen, payload, len(data)) is None  # no dictionary given
    other = codec.train(list(annotations(200, seed=9).values()), 2048)
    assert other is not None and other.id != dictionary.id
    forged = other.id + payload[32:]
    wrong = {other.id: other.content}.__getitem__
    assert codec.verified(cid, chosen, forged, len(data), wrong) is None
    assert codec.train([b"x"] * 3, 4096) is None
