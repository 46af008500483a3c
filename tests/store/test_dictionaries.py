"""zstd dictionaries for small files of one kind: chosen, stored, read, kept by gc, verified."""

import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
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
from artfs.vfs import ROOT_INODE, Vfs
from tests.helpers import read_tree

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
    store: Store, tmp_path: Path, make_tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = count_training(monkeypatch)
    spec = annotations(400)
    spec |= {f"img/{i:04d}.bin": random.Random(i).randbytes(3000) for i in range(100)}
    src = make_tree(tmp_path / "src", spec)
    record = store.put(src, ART).record
    assert len(trained) == 1  # the .json kind; the .bin blobs were probed and left alone
    coded = dict_coded(store)
    assert len(coded) > 300  # most annotation files
    (dict_id,) = dictionaries_of(store)
    assert dict_id in chunk_codecs(store)  # the dictionary is a chunk of the store
    # It pays, dictionary and references included, against plain zstd per file.
    plain = sum(len(codec.encode(data)[1]) for path, data in spec.items() if "ann/" in path)
    stored = sum(loc.stored_length for loc in chunk_codecs(store).values() if loc.raw_length < 3000)
    assert stored < 0.8 * plain
    materialize(store, record, tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(src)
    assert verify(store, [record]) == []


def test_random_blobs_and_tiny_labels_get_no_dictionary(
    store: Store, tmp_path: Path, make_tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = count_training(monkeypatch)
    rng = random.Random(1)
    spec: dict[str, bytes] = {f"img/{i:04d}.bin": rng.randbytes(2000) for i in range(200)}
    spec |= {f"lbl/{i:04d}.txt": f'{{"id": {i}, "class": {i % 10}}}'.encode() for i in range(200)}
    store.put(make_tree(tmp_path / "src", spec), ART)
    assert trained == []  # random blobs share nothing, 30-byte labels cannot pay 32 bytes
    assert dict_coded(store) == {}
    assert len(chunk_codecs(store)) == 400


def count_training(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every dictionary training from now on appends its sample count to the returned list."""
    calls: list[int] = []
    train = codec.train

    def counted(samples: Any, size: int) -> codec.Dictionary | None:
        calls.append(len(samples))
        return train(samples, size)

    monkeypatch.setattr(codec, "train", counted)
    return calls


def test_a_new_version_of_stored_files_trains_nothing(
    store: Store, tmp_path: Path, make_tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = annotations(300)
    store.put(make_tree(tmp_path / "a", spec), ART)
    trained = count_training(monkeypatch)
    before = chunk_codecs(store)
    new = annotations(301, seed=5)["ann/000300.json"]  # one new file of the same kind
    store.put(make_tree(tmp_path / "b", spec | {"ann/new.json": new}), ART)
    assert trained == []  # every probe was stored already
    after = chunk_codecs(store)
    (added,) = set(after) - set(before)
    assert after[added].raw_length == len(new)
    # The new file is still coded with a dictionary when one is at hand: not here.
    assert after[added].codec != codec.Codec.ZSTD_DICT


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
    with Store.open(home) as store, ThreadPoolExecutor(1) as fresh:
        # A fresh thread: decoders are kept per thread, and this one never built one from
        # the sound dictionary (an earlier test in this process may have, elsewhere).
        coded = dict_coded(store)
        using = {e.path for e in store.files(record) if e.chunks and e.chunks[0].chunk_id in coded}
        problems = fresh.submit(verify, store, [record]).result()
        assert {p.path for p in problems} == using
        assert all("compression dictionary" in p.reason for p in problems)
        entry = next(e for e in store.files(record) if e.path in using)
        with pytest.raises(CorruptData, match=f"{entry.path}: .*dictionary .* is damaged"):
            fresh.submit(lambda: b"".join(store.iter_file(entry))).result()


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


def test_an_open_file_decodes_after_its_version_and_dictionary_are_collected(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    spec = annotations(200)
    store.put(make_tree(tmp_path / "doomed", spec), ArtifactName("p", "doomed"))
    store.put(make_tree(tmp_path / "kept", {"k.txt": "kept\n"}), ArtifactName("p", "kept"))
    (dict_id,) = dictionaries_of(store)
    vfs = Vfs.create(store, cache_bytes=1 << 20, lineage=False)
    opened = {}
    for path in ("ann/000005.json", "ann/000150.json"):
        ino = int(ROOT_INODE)
        for name in f"p/doomed/v0/{path}".split("/"):
            ino = vfs.lookup(ino, name.encode()).ino
        # A first open, as the daemon's: it reads the file now. The reopen reads nothing
        # (the kernel kept the pages): its chunk and dictionary are pinned.
        first = vfs.open(ino, os.O_RDONLY)
        vfs.content_for_kernel(ino, first, os.O_RDONLY)
        vfs.release(first)
        opened[path] = vfs.open(ino, os.O_RDONLY)
        assert vfs.reader(opened[path]).held is None
    store.delete_version(Ref.parse("p/doomed:v0"))
    collect(store)
    assert store.chunk_location(dict_id) is None  # collected with the version

    def read_all() -> dict[str, bytes]:
        return {p: bytes(vfs.reader(fh).read(0, 1 << 16)) for p, fh in opened.items()}

    with ThreadPoolExecutor(1) as fresh:  # no decoder built before the collection
        assert fresh.submit(read_all).result() == {p: spec[p] for p in opened}
    for fh in opened.values():
        vfs.release(fh)


def test_a_dictionary_moved_by_gc_after_its_lookup_is_looked_up_again(
    store: Store, tmp_path: Path, make_tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = annotations(200)
    record = store.put(make_tree(tmp_path / "a", spec), ART).record
    store.put(make_tree(tmp_path / "b", {"x.txt": "x"}), ArtifactName("p", "other"))
    (dict_id,) = dictionaries_of(store)
    stale = store.chunk_location(dict_id)
    assert collect(store).packs_rewritten == 2  # two small packs merged: the dictionary moved
    fresh = store.chunk_location(dict_id)
    assert fresh is not None and stale is not None and fresh.pack_id != stale.pack_id
    lookups = []
    real = store.reads.chunk_location  # where the store's reads look chunks up

    def racing(cid: ChunkId) -> ChunkLocation | None:
        # The first lookup of the dictionary answers as it was before gc moved it.
        lookups.append(cid)
        return stale if cid == dict_id and lookups.count(dict_id) == 1 else real(cid)

    monkeypatch.setattr(store.reads, "chunk_location", racing)
    entry = next(e for e in store.files(record) if e.chunks[0].chunk_id in dict_coded(store))
    with ThreadPoolExecutor(1) as fresh_thread:  # no decoder built yet in this thread
        data = fresh_thread.submit(lambda: b"".join(store.iter_file(entry))).result()
    assert data == spec[entry.path]
    assert lookups.count(dict_id) == 2
