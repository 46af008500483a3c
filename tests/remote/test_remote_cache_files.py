"""The copies a ``Remote`` keeps on disk (pack indexes, the packs of each record): only a cache,
so they never fail the push, gc or read they serve. In-memory object store, no server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from artfs.names import ArtifactName, Ref
from artfs.objectstore import MemoryObjectStore
from artfs.remote import layout
from artfs.remote.remote import Remote
from artfs.remote.sync import push
from artfs.stores import open_store
from tests.helpers import make_tree, random_bytes
from tests.remote.remoteutil import pack_keys

ART = ArtifactName("team", "data")


@pytest.fixture
def objects(tmp_path: Path) -> MemoryObjectStore:
    """A remote holding v0 of team/data (two files, so one pack of two chunks)."""
    files = {"a.bin": random_bytes(5000, 1), "b.bin": random_bytes(7000, 2)}
    objects = MemoryObjectStore()
    with open_store(tmp_path / "publisher") as store:
        store.put(make_tree(tmp_path / "src", files), ART)
        push(store, Remote(objects, "publisher", None), Ref(ART, "v0"))
    return objects


def _pack(objects: MemoryObjectStore) -> str:
    """The pack of the version's chunks (its tree pages are in a tree pack of their own)."""
    [key] = pack_keys(objects, trees=False)
    pack = layout.pack_of_key(key)
    assert pack is not None
    return pack


def _root(objects: MemoryObjectStore) -> bytes:
    """The root tree id v0's record names (what gc marks from; cached like pack names)."""
    record = json.loads(objects.get(layout.version_key(ART, 0))[0])
    return bytes.fromhex(record["version"]["tree"])


def _record_etag(objects: MemoryObjectStore) -> str:
    info = objects.head(layout.version_key(ART, 0))
    assert info is not None
    return info.etag


def test_two_threads_caching_one_pack_index_at_once_both_succeed(
    objects: MemoryObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two daemon threads walking one pack write its index copy at the same instant: each
    writes its own temporary file (the second rename used to find the first's gone)."""
    cache = tmp_path / "remote-cache"
    first, second = Remote(objects, "w", cache), Remote(objects, "w", cache)
    pack = _pack(objects)
    rename = os.replace
    calls: list[object] = []

    def replace_after_the_other(src: object, dst: object) -> None:
        calls.append(src)
        if len(calls) == 1:  # the first writer is about to rename: the second writes now
            assert second.pack_chunks(pack)
        rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace_after_the_other)
    assert first.pack_chunks(pack) == second.pack_chunks(pack)
    assert len(calls) == 2
    assert [p.name for p in cache.iterdir()] == [f"{pack}.idx"]  # no temporary file left


def test_cache_copies_that_cannot_be_written_do_not_fail_the_operation(
    objects: MemoryObjectStore, tmp_path: Path
) -> None:
    """As on a full disk: writing the copies fails, the push's map and gc's packs do not."""
    blocked = tmp_path / "full"
    blocked.mkdir()
    (blocked / "remote-cache").write_bytes(b"")  # a file where the cache directory would be
    (blocked / "record-packs").write_bytes(b"")
    remote = Remote(objects, "w", blocked / "remote-cache")
    pack = _pack(objects)
    assert pack in {loc.pack for loc in remote.chunk_map().values()}  # and the tree pack
    assert remote.version_packs(ART, 0, _record_etag(objects)) == _root(objects)


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"format": 99}', b"[1, 2]"])
def test_a_damaged_cache_copy_is_fetched_again(
    objects: MemoryObjectStore, tmp_path: Path, damage: bytes
) -> None:
    cache = tmp_path / "remote-cache"
    pack = _pack(objects)
    etag = _record_etag(objects)
    expected = Remote(objects, "w", cache).chunk_map()
    assert Remote(objects, "w", cache).version_packs(ART, 0, etag) == _root(objects)
    index_copy = cache / f"{pack}.idx"
    [packs_copy] = (tmp_path / "record-packs").rglob("*.json")
    index_copy.write_bytes(damage)
    packs_copy.write_bytes(damage)

    remote = Remote(objects, "w", cache)
    assert remote.chunk_map() == expected
    assert remote.version_packs(ART, 0, etag) == _root(objects)
    # The copies are whole again: a later process reads them without the remote.
    assert layout.decode_pack_index(index_copy.read_bytes(), "copy") == remote.pack_chunks(pack)
    assert Remote(MemoryObjectStore(), "w", cache).version_packs(ART, 0, etag) == _root(objects)
