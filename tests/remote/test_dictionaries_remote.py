"""Dictionary-coded chunks through a real S3 server (SeaweedFS on 127.0.0.1): push and
publish-on-put upload the dictionaries and list them in the record; pull, clone, lazy reads and
mounts decode with them; remote gc keeps them while a live version uses them."""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path

import pytest

from artfs.names import ArtifactName, Ref
from artfs.remote import layout, sync
from artfs.remote.fetch import RemoteChunks
from artfs.remote.gc import MIN_GRACE_ENV
from artfs.remote.publish import set_default
from artfs.remote.remote import Remote, open_remote
from artfs.remote.sync import add_remote, clone, pull, push
from artfs.store import Store, codec
from artfs.store.chunkstore import ChunkLocation
from artfs.store.gc import collect as collect_local
from artfs.store.hashing import ChunkId
from artfs.store.index import Table
from artfs.store.verify import verify
from artfs.stores import open_store
from tests.helpers import make_tree, random_bytes
from tests.mount.mountutil import Mounts, unmount_and_stop
from tests.remote.remoteutil import gc_until, remote_files
from tests.remote.seaweed import S3Server
from tests.store.test_dictionaries import annotations

ART = ArtifactName("team", "coco")


def _remote(server: S3Server, prefix: str, home: Path, name: str = "w") -> Remote:
    return Remote(server.store(prefix, writer_id=name), name, home / "remote-cache")


def _dictionaries(store: Store) -> set[ChunkId]:
    """The dictionaries the chunks held in ``store``'s packs are coded with."""
    found = set()
    for loc in _locations(store).values():
        dict_id = codec.dictionary_of(loc.codec, store.chunks.read(loc))
        if dict_id is not None:
            found.add(dict_id)
    return found


def _locations(store: Store) -> dict[ChunkId, ChunkLocation]:
    with store.index.read() as txn:
        return {ChunkId(k): ChunkLocation.decode(v) for k, v in txn.scan(Table.CHUNKS)}


def _read_all(store: Store, ref: str) -> dict[str, bytes]:
    record = store.resolve(ref)
    return {e.path: b"".join(store.iter_file(e)) for e in store.files(record) if not e.is_dir}


def _put_annotations(store: Store, root: Path, files: dict[str, bytes]) -> Ref:
    record = store.put(make_tree(root, files), ART).record
    assert _dictionaries(store), "the annotation files were not dictionary-coded"
    return Ref(ART, record.version)


def _clone(server: S3Server, prefix: str, home: Path) -> None:
    """A new remote-backed store at ``home``: the remote's index, no chunk."""
    with open_store(home) as store:
        config = add_remote(store, "origin", server.url(prefix), server.endpoint, None)
        clone(store, open_remote(store, config))
        store.set_default_remote("origin")


def test_push_lists_the_dictionary_and_a_clone_reads_the_files(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    files = annotations(300)
    with open_store(tmp_path / "a") as a:
        ref = _put_annotations(a, tmp_path / "src", files)
        [dict_id] = _dictionaries(a)
        remote = _remote(s3_env, prefix, tmp_path / "a")
        sent = push(a, remote, ref)
        # Named by no file, on the remote all the same, and named by its chunks' pack index.
        entries = remote_files(remote, ART, sent.number)
        assert dict_id not in {c.chunk_id for e in entries for c in e.chunks}
        where = remote.chunk_map()
        assert dict_id in where
        coded = [c.chunk_id for e in entries for c in e.chunks]
        assert {remote.chunk_dictionary(c, where[c]) for c in coded} >= {dict_id}
        # Formats an artfs from before dictionaries (and trees) refuses, instead of misreading.
        record_doc = json.loads(remote.objects.get(layout.version_key(ART, sent.number))[0])
        assert record_doc["format"] == layout.VERSION_FORMAT_TREES
        pack = where[dict_id].pack
        index_doc = json.loads(remote.objects.get(layout.pack_index_key(pack))[0])
        assert index_doc["format"] == layout.PACK_INDEX_FORMAT_DICTIONARIES
    _clone(s3_env, prefix, tmp_path / "c")
    with open_store(tmp_path / "c") as c:
        assert _read_all(c, f"team/coco:v{sent.number}") == files  # lazily, from the remote
        assert verify(c, c.versions(ART)) == []


def test_pull_into_a_store_holding_none_of_the_chunks(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    files = annotations(300, seed=1) | {"img/big.bin": random_bytes(300_000, 1)}
    with open_store(tmp_path / "a") as a:
        push(a, _remote(s3_env, prefix, tmp_path / "a"), _put_annotations(a, tmp_path / "s", files))
    with open_store(tmp_path / "b") as b:  # no default remote: every byte must be pulled
        got = pull(b, _remote(s3_env, prefix, tmp_path / "b"), Ref(ART, "v0"))
        assert got.created and got.chunks_fetched > len(files)  # the dictionary came too
        assert _read_all(b, "team/coco:v0") == files
        assert verify(b, [got.record]) == []
        collect_local(b)  # local gc keeps the dictionary, which no file names
        assert _read_all(b, "team/coco:v0") == files


def test_a_chunk_already_on_the_remote_names_the_dictionary_of_its_remote_copy(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    """Two stores coded the same files with dictionaries of their own: the second push finds
    the chunks on the remote and lists the first store's dictionary, which the remote copies
    need, not its own."""
    files = annotations(300, seed=2)
    extra = annotations(120, seed=3).values()
    more = files | {f"extra/{i:04d}.json": data for i, data in enumerate(extra)}
    with open_store(tmp_path / "a") as a, open_store(tmp_path / "b") as b:
        push(
            a, _remote(s3_env, prefix, tmp_path / "a"), _put_annotations(a, tmp_path / "sa", files)
        )
        ref = _put_annotations(b, tmp_path / "sb", more)
        assert _dictionaries(a) != _dictionaries(b)
        sent = push(b, _remote(s3_env, prefix, tmp_path / "b"), ref)
        assert sent.chunks_uploaded < len(more)  # the first store's chunks were reused
    with open_store(tmp_path / "c") as c:
        got = pull(c, _remote(s3_env, prefix, tmp_path / "c"), Ref(ART, f"v{sent.number}"))
        assert _read_all(c, got.record.ref) == more
        assert verify(c, [got.record]) == []


def test_a_remote_backed_put_publishes_the_dictionary(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    files = annotations(250, seed=4)
    with open_store(tmp_path / "a") as a:
        add_remote(a, "origin", s3_env.url(prefix), s3_env.endpoint, None)
        set_default(a, "origin")
        record = a.put(make_tree(tmp_path / "s", files), ART).record  # published on the way
        assert _dictionaries(a)
        assert _read_all(a, record.ref) == files
    _clone(s3_env, prefix, tmp_path / "c")
    with open_store(tmp_path / "c") as c:
        assert _read_all(c, record.ref) == files


def test_many_threads_reading_a_clone_lazily_fetch_the_dictionary_without_deadlock(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    """Each decode of a dictionary-coded chunk looks the dictionary up, which goes back into
    the remote source (cache, single flight, fetch) from inside a fetch: no thread may wait
    on itself or on another thread waiting on it."""
    files = annotations(400, seed=5)
    with open_store(tmp_path / "a") as a:
        push(a, _remote(s3_env, prefix, tmp_path / "a"), _put_annotations(a, tmp_path / "s", files))
    _clone(s3_env, prefix, tmp_path / "c")
    with open_store(tmp_path / "c") as c:
        entries = [e for e in c.files(c.resolve("team/coco:v0")) if not e.is_dir]
        errors: list[BaseException] = []
        got: dict[str, bytes] = {}

        def reader(seed: int) -> None:
            order = list(entries)
            random.Random(seed).shuffle(order)
            try:
                for entry in order:
                    got[entry.path] = b"".join(c.iter_file(entry))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a reader hangs"
        assert errors == [] and got == files
        source = c.remote_source()
        assert isinstance(source, RemoteChunks)
        assert source.cache.dropped == 0  # cached dictionary-coded entries read back


def test_a_mount_of_a_clone_reads_dictionary_coded_files(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    files = annotations(300, seed=6)
    with open_store(tmp_path / "a") as a:
        push(a, _remote(s3_env, prefix, tmp_path / "a"), _put_annotations(a, tmp_path / "s", files))
    home = tmp_path / "clone"
    _clone(s3_env, prefix, home)
    mounts = Mounts(tmp_path / "mounts")
    (tmp_path / "mounts").mkdir()
    try:
        mount = mounts.start(home, None, "--poll", "0.5")
        version = mount.path / "team" / "coco" / "v0"
        for path, data in sorted(files.items()):
            assert (version / path).read_bytes() == data
        # Read again in another order: now from the chunk cache, dictionary included.
        for path in sorted(files, reverse=True)[:50]:
            assert (version / path).read_bytes() == files[path]
        unmount_and_stop(mount)
        assert "Traceback" not in mount.log_text(), mount.log_text()
    finally:
        mounts.close(show_logs=True)
    assert not os.path.ismount(tmp_path / "mounts" / "mnt0")


def test_remote_gc_keeps_the_dictionary_of_a_live_version(
    s3_env: S3Server, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packs of a few KiB, so that the dictionary sits in a pack holding no chunk a file names:
    only gc's marking through the pack index of the chunks coded with it keeps it when the other
    versions go."""
    monkeypatch.setenv(MIN_GRACE_ENV, "0")
    monkeypatch.setattr(sync, "REMOTE_PACK_SIZE", 4 << 10)
    files = annotations(300, seed=7)
    with open_store(tmp_path / "a") as a:
        remote = _remote(s3_env, prefix, tmp_path / "a")
        gone = a.put(make_tree(tmp_path / "s0", {"x.bin": random_bytes(50_000)}), ART).record
        push(a, remote, Ref(ART, gone.version))
        live = push(a, remote, _put_annotations(a, tmp_path / "s1", files)).number
        [dict_id] = _dictionaries(a)
        where = remote.chunk_map()
        dict_pack = where[dict_id].pack
        entries = remote_files(remote, ART, live)
        file_packs = {where[c.chunk_id].pack for e in entries for c in e.chunks}
        assert dict_pack not in file_packs
        remote.delete_version(Ref(ART, "v0"))
        gc_until(remote, lambda r: r.packs_deleted >= 1)
        stored = {layout.pack_of_key(o.key) for o in remote.objects.list("packs/")}
        assert dict_pack in stored and dict_pack not in remote.condemned_packs()
    with open_store(tmp_path / "b") as b:
        got = pull(b, _remote(s3_env, prefix, tmp_path / "b"), Ref(ART, f"v{live}"))
        assert _read_all(b, got.record.ref) == files
