"""Versions on a remote as trees of content-addressed pages (SeaweedFS on 127.0.0.1).

A record names its root tree; pushes upload the pages the remote lacks, pulls fetch the pages
the local store lacks, a clone fetches pages when they are first listed, remote gc marks
through trees, records from before trees are still read, and a damaged page is refused.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from artfs.errors import ArtfsError, CorruptData
from artfs.names import ArtifactName, Ref
from artfs.remote import layout
from artfs.remote.gc import MIN_GRACE_ENV, collect
from artfs.remote.layout import PackBuilder, RemoteVersion, TreeVersion
from artfs.remote.remote import Remote, open_remote
from artfs.remote.sync import add_remote, clone, pull, push
from artfs.store import Store, catalog, trees
from artfs.store.gc import collect as collect_local
from artfs.store.hashing import TreeId
from artfs.store.index import Table
from artfs.stores import open_store
from tests.helpers import make_tree, random_bytes
from tests.remote.remoteutil import pack_keys, used_packs
from tests.remote.seaweed import S3Server

ART = ArtifactName("team", "data")
# The artfs before trees, whose decoder of records an older client runs.
BEFORE_TREES = "6595cff"


def _remote(server: S3Server, prefix: str, home: Path, name: str = "w") -> Remote:
    return Remote(server.store(prefix, writer_id=name), name, home / "remote-cache")


def _files() -> dict[str, bytes]:
    """Three directories of 400 small files each (several leaf pages per directory)."""
    return {
        f"{d}/{i:04d}.txt": f"{d} file {i} ".encode() * (1 + i % 7)
        for d in ("a", "b", "c")
        for i in range(400)
    } | {"top.bin": random_bytes(40_000, 1)}


def _pages(store: Store) -> int:
    with store.index.read() as txn:
        return txn.count(Table.TREES)


def _version_pages(store: Store, ref: str) -> int:
    root = catalog.root_tree(store.resolve(ref))
    assert root is not None
    seen: set[TreeId] = set()
    with store.index.read() as txn:
        for _ in trees.reachable(catalog.pages(txn), root, seen):
            pass
    return len(seen)


def _tree_pack_sizes(remote: Remote) -> dict[str, int]:
    keys = set(pack_keys(remote.objects, trees=True))
    return {o.key: o.size for o in remote.objects.list("packs/") if o.key in keys}


def _export(store: Store, ref: str) -> dict[str, bytes]:
    record = store.resolve(ref)
    return {e.path: b"".join(store.iter_file(e)) for e in store.files(record)}


def _two_versions(store: Store, root: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """v0 and v1 of ART in ``store``: v1 changes one file of directory a."""
    first = _files()
    src = make_tree(root, dict(first))
    store.put(src, ART)
    second = first | {"a/0007.txt": b"changed"}
    (src / "a" / "0007.txt").write_bytes(b"changed")
    store.put(src, ART)
    return first, second


def test_push_of_a_one_file_change_uploads_only_the_pages_on_its_path(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    with open_store(tmp_path / "a") as a:
        _two_versions(a, tmp_path / "src")
        remote = _remote(s3_env, prefix, tmp_path / "a")
        first = push(a, remote, Ref(ART, "v0"))
        sizes = _tree_pack_sizes(remote)
        assert len(sizes) == 1  # every page of a first push in one tree pack: one PUT
        second = push(a, remote, Ref(ART, "v1"))
        new = {k: s for k, s in _tree_pack_sizes(remote).items() if k not in sizes}
        assert (first.number, second.number) == (0, 1)
        assert second.chunks_uploaded == 1
        # The changed leaf of a, a's index page over its leaves, and the root: nothing of b
        # and c, nor a's other leaves.
        [tree_pack] = new
        index = json.loads(remote.objects.get(tree_pack.removesuffix(".pack") + ".idx")[0])
        assert len(index["chunks"]) <= 4
        assert new[tree_pack] < sum(sizes.values()) / 10
        record = json.loads(remote.objects.get(layout.version_key(ART, 1))[0])
        assert record["format"] == layout.VERSION_FORMAT_TREES
        assert "files" not in record and "chunks" not in record
        assert len(remote.objects.get(layout.version_key(ART, 1))[0]) < 1024
        # The same version again finds it (digest marker): nothing is uploaded.
        again = push(a, remote, Ref(ART, "v1"))
        assert (again.number, again.created, again.bytes_uploaded) == (1, False, 0)


def test_pull_fetches_only_the_pages_and_chunks_it_lacks(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    with open_store(tmp_path / "a") as a:
        first, second = _two_versions(a, tmp_path / "src")
        remote = _remote(s3_env, prefix, tmp_path / "a")
        push(a, remote, Ref(ART, "v0"))
        push(a, remote, Ref(ART, "v1"))
        pages_a = _pages(a)
    with open_store(tmp_path / "b") as b:
        other = _remote(s3_env, prefix, tmp_path / "b")
        got0 = pull(b, other, Ref(ART, "v0"))
        after_v0 = _pages(b)
        got1 = pull(b, other, Ref(ART, "v1"))
        assert got1.created and got1.chunks_fetched == 1
        assert got1.bytes_fetched < got0.bytes_fetched / 10
        assert _pages(b) - after_v0 <= 4 and _pages(b) == pages_a
        assert _export(b, "team/data:v0") == first
        assert _export(b, "team/data:v1") == second


def _forget_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh process-wide cache of decoded pages: the writer's pages, decoded in this same
    process, must not answer for the clone."""
    monkeypatch.setattr(catalog, "PAGE_CACHE", trees.PageCache(2048))


def test_a_clone_lists_a_version_fetching_only_the_pages_it_looks_at(
    s3_env: S3Server, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(tmp_path / "a") as a:
        first, _ = _two_versions(a, tmp_path / "src")
        remote = _remote(s3_env, prefix, tmp_path / "a")
        push(a, remote, Ref(ART, "v0"))
        total = _version_pages(a, "team/data:v0")
        a_listing = [e.path for e in a.entries(a.resolve("team/data:v0"))]
    _forget_pages(monkeypatch)
    home = tmp_path / "c"
    with open_store(home) as c:
        config = add_remote(c, "origin", s3_env.url(prefix), s3_env.endpoint, None)
        assert [r.ref for r in clone(c, open_remote(c, config))] == ["team/data:v0"]
        c.set_default_remote("origin")
        assert _pages(c) == 0  # the record only: no page, no chunk
        record = c.resolve("team/data:v0")
        with c.index.read() as txn:
            top = [e.path for e in catalog.list_dir(txn, record)]
            in_b = [e.path for e in catalog.list_dir(txn, record, "b")]
        assert top == ["a", "b", "c", "top.bin"] and len(in_b) == 400
        source = c.remote_source()
        assert source is not None
        fetched = source.counters.chunks  # type: ignore[attr-defined]
        assert 2 <= fetched < total  # the root and b's pages, not a's or c's
        assert _pages(c) == 0  # pages read lazily are cached, never half a tree in the index
        assert [e.path for e in c.entries(record)] == a_listing
        assert _export(c, "team/data:v0") == first
        # A pull makes the version whole here: every page goes into the index.
        pull(c, open_remote(c, config), Ref(ART, "v0"))
        assert _pages(c) == total


def test_local_gc_of_a_clone_walks_past_pages_it_never_fetched(
    s3_env: S3Server, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(tmp_path / "a") as a:
        first, _ = _two_versions(a, tmp_path / "src")
        push(a, _remote(s3_env, prefix, tmp_path / "a"), Ref(ART, "v0"))
    _forget_pages(monkeypatch)
    with open_store(tmp_path / "c") as c:
        config = add_remote(c, "origin", s3_env.url(prefix), s3_env.endpoint, None)
        clone(c, open_remote(c, config))
        c.set_default_remote("origin")
        source = c.remote_source()
        assert source is not None
        before = source.counters.chunks  # type: ignore[attr-defined]
        collect_local(c)  # once walked every tree, fetching each page from the remote
        assert source.counters.chunks == before
        assert _export(c, "team/data:v0") == first


def test_remote_gc_keeps_pages_a_live_version_shares(
    s3_env: S3Server, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v0; v1 adds big.bin; v2 is v0 with one file changed. Deleting v0 and v1 collects v1's
    chunk pack and tree pack, and keeps v0's: v2 uses its chunks and shares its pages."""
    monkeypatch.setenv(MIN_GRACE_ENV, "0")
    with open_store(tmp_path / "a") as a:
        first = _files()
        src = make_tree(tmp_path / "src", dict(first))
        a.put(src, ART)
        (src / "big.bin").write_bytes(random_bytes(200_000, 9))
        a.put(src, ART)
        (src / "big.bin").unlink()
        (src / "a" / "0007.txt").write_bytes(b"changed")
        a.put(src, ART)
        remote = _remote(s3_env, prefix, tmp_path / "a")
        for version in ("v0", "v1", "v2"):
            push(a, remote, Ref(ART, version))
    v0_packs = used_packs(remote, ART, 0)
    v1_own = used_packs(remote, ART, 1) - v0_packs
    assert len(v0_packs) == 2 and len(v1_own) == 2  # a chunk pack and a tree pack each
    remote.delete_version(Ref(ART, "v0"))
    remote.delete_version(Ref(ART, "v1"))
    deleted = 0
    for _ in range(60):  # condemn, then delete after the (zero) grace, on S3's clock
        deleted += collect(remote, 0).packs_deleted
        if deleted >= 2:
            break
        time.sleep(0.3)
    stored = {k.removeprefix("packs/").removesuffix(".pack") for k in _pack_objects(remote)}
    assert deleted == 2 and not v1_own & stored and v0_packs <= stored
    _forget_pages(monkeypatch)
    with open_store(tmp_path / "b") as b:
        pull(b, _remote(s3_env, prefix, tmp_path / "b"), Ref(ART, "v2"))
        assert _export(b, "team/data:v2") == first | {"a/0007.txt": b"changed"}


def _pack_objects(remote: Remote) -> list[str]:
    return [o.key for o in remote.objects.list("packs/") if o.key.endswith(".pack")]


def test_a_damaged_page_on_the_remote_is_refused(
    s3_env: S3Server, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(tmp_path / "a") as a:
        a.put(make_tree(tmp_path / "src", {"x/y.txt": b"y", "z.txt": b"z"}), ART)
        remote = _remote(s3_env, prefix, tmp_path / "a")
        push(a, remote, Ref(ART, "v0"))
    [tree_pack] = pack_keys(remote.objects, trees=True)
    data = bytearray(remote.objects.get(tree_pack)[0])
    data[-3] ^= 0x01  # a byte of the last page (the pages are stored raw: too small to pack)
    remote.objects.put(tree_pack, bytes(data))
    _forget_pages(monkeypatch)
    with open_store(tmp_path / "b") as b:
        with pytest.raises(CorruptData, match=r"tree page .* does not match"):
            pull(b, _remote(s3_env, prefix, tmp_path / "b"), Ref(ART, "v0"))
        assert b.projects() == [] and _pages(b) == 0
    home = tmp_path / "c"
    with open_store(home) as c:
        config = add_remote(c, "origin", s3_env.url(prefix), s3_env.endpoint, None)
        clone(c, open_remote(c, config))
        c.set_default_remote("origin")
        with pytest.raises(CorruptData, match="tree page"):
            c.entries(c.resolve("team/data:v0"))


def test_records_from_before_trees_are_still_read(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    """A remote written by an artfs from before trees: its records list every file and chunk
    location. This artfs pulls and clones them as they are (no rewrite), and remote gc marks
    the packs they list."""
    files = {"old.txt": b"written before trees", "d/e.bin": random_bytes(20_000, 3)}
    with open_store(tmp_path / "a") as a:
        record = a.put(make_tree(tmp_path / "src", files), ART).record
        remote = _remote(s3_env, prefix, tmp_path / "a")
        where = remote.chunk_map()
        assert where == {}
        entries = a.entries(record)
        chunks = {ref.chunk_id for e in entries for ref in e.chunks}
        builder = PackBuilder()
        for cid in chunks:
            payload, codec_id, raw_length = a.stored_chunk(cid)
            builder.add(cid, codec_id, payload, raw_length)
        located = remote.upload_pack(*builder.finish())
        old = RemoteVersion(record, entries, located)
        assert json.loads(old.encode())["format"] == layout.VERSION_FORMAT
        assert remote.publish(old) == 0
    assert remote.objects.head(layout.REMOTE_FORMAT_KEY) is None  # an old remote: no marker
    with open_store(tmp_path / "b") as b:
        got = pull(b, _remote(s3_env, prefix, tmp_path / "b"), Ref(ART, "v0"))
        assert got.created and _export(b, "team/data:v0") == files
    home = tmp_path / "c"
    with open_store(home) as c:
        config = add_remote(c, "origin", s3_env.url(prefix), s3_env.endpoint, None)
        clone(c, open_remote(c, config))
        c.set_default_remote("origin")
        assert _export(c, "team/data:v0") == files
        # A new push to the old remote writes the tree format and the marker; both read on.
        src = make_tree(tmp_path / "src2", files | {"new.txt": b"after trees"})
        assert c.put(src, ART).record.number == 1
    assert remote.objects.head(layout.REMOTE_FORMAT_KEY) is not None
    assert isinstance(remote.read_version(ART, 1), TreeVersion)
    assert isinstance(remote.read_version(ART, 0), RemoteVersion)


def _old_layout(tmp_path: Path) -> ModuleType:
    """The record decoder of the artfs before trees, from the repository's history."""
    repo = Path(__file__).resolve().parents[2]
    source = subprocess.run(
        ["git", "-C", str(repo), "show", f"{BEFORE_TREES}:artfs/remote/layout.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = tmp_path / "old_layout.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_layout", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_layout"] = module
    spec.loader.exec_module(module)
    return module


def test_an_older_artfs_refuses_a_tree_record_and_this_one_a_newer_remote(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    with open_store(tmp_path / "a") as a:
        a.put(make_tree(tmp_path / "src", {"f.txt": b"f"}), ART)
        remote = _remote(s3_env, prefix, tmp_path / "a")
        push(a, remote, Ref(ART, "v0"))
    data, _ = remote.objects.get(layout.version_key(ART, 0))
    old = _old_layout(tmp_path)
    with pytest.raises(CorruptData) as refused:
        old.RemoteVersion.decode(data, "versions/team/data/0.json")
    assert "unknown format 'artfs-version/3'" in str(refused.value)
    assert "\n" not in str(refused.value)
    # A remote marked with a format this artfs does not know: refused with one line.
    remote.objects.put(layout.REMOTE_FORMAT_KEY, json.dumps({"format": "artfs-remote/9"}).encode())
    with open_store(tmp_path / "b") as b:
        with pytest.raises(ArtfsError) as newer:
            pull(b, _remote(s3_env, prefix, tmp_path / "b"), Ref(ART, "v0"))
        assert b.projects() == []
    message = str(newer.value)
    assert "artfs-remote/9" in message and "upgrade artfs" in message and "\n" not in message
