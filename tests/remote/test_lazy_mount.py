"""The lazy read path of remote-backed stores, on a real SeaweedFS and real FUSE mounts.

A clone holds the index only; reads fetch the chunks they touch (ranged GETs, coalesced for
sequential readers, one download per chunk), keep them in the local chunk cache, and keep
working from that cache when the remote is gone. Mounts poll the remote for new versions.
"""

from __future__ import annotations

import errno
import os
import random
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from artfs.errors import CorruptData, StoreError
from artfs.names import ArtifactName, Ref
from artfs.remote import layout
from artfs.remote.fetch import RemoteChunks
from artfs.remote.layout import PackBuilder
from artfs.remote.remote import Remote, open_remote
from artfs.remote.sync import add_remote, clone, push
from artfs.store import Store, repository, settings
from artfs.store.chunkstore import RemoteChunk
from artfs.store.hashing import ChunkId
from artfs.store.index import Table
from artfs.store.manifest import ChunkRef, FileEntry
from artfs.store.settings import RemoteConfig
from artfs.store.verify import verify
from artfs.stores import open_store
from tests.helpers import make_tree, random_bytes, text_bytes
from tests.mount.mountutil import Mount, Mounts, eventually, unmount_and_stop
from tests.remote.faultproxy import Fault, FaultProxy
from tests.remote.seaweed import S3Server
from tests.remote.test_remote_cli import _artfs

ART = ArtifactName("team", "data")
MIB = 1 << 20


def _files(seed: int) -> dict[str, bytes]:
    return {
        "big.bin": random_bytes(7 * MIB, seed),  # several chunks, read sequentially
        "other.bin": random_bytes(3 * MIB, seed + 1),
        "notes.csv": text_bytes(200_000, seed),
    }


def _publish(server: S3Server, prefix: str, home: Path, src: Path, **options: object) -> int:
    """Commit ``src`` in the store at ``home`` and push it; its number on the remote."""
    with open_store(home) as store:
        record = store.put(src, ART, **options).record  # type: ignore[arg-type]
        remote = Remote(server.store(prefix), "publisher", home / "remote-cache")
        return push(store, remote, Ref(ART, record.version)).number


def _clone(server: S3Server, prefix: str, home: Path, endpoint: str | None = None) -> None:
    """A new remote-backed store at ``home``: the remote's index, no chunk."""
    with open_store(home) as store:
        config = add_remote(store, "origin", server.url(prefix), endpoint or server.endpoint, None)
        clone(store, open_remote(store, config))
        store.set_default_remote("origin")


def _source(store: Store) -> RemoteChunks:
    source = store.remote_source()
    assert isinstance(source, RemoteChunks)
    return source


def _entry(store: Store, path: str, version: str = "v0") -> FileEntry:
    record = store.resolve(Ref(ART, version))
    return next(e for e in store.files(record) if e.path == path)


def _read(store: Store, path: str, version: str = "v0") -> bytes:
    return b"".join(store.iter_file(_entry(store, path, version)))


def _dead_endpoint() -> str:
    """An endpoint nothing listens on: a loopback port bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _repoint(home: Path, endpoint: str) -> None:
    """Change where the store's remote is (as a network outage would make it unreachable)."""
    with open_store(home) as store, store.index.write() as txn:
        config = settings.get_remote(txn, "origin")
        assert config is not None
        settings.put_remote(txn, RemoteConfig(config.name, config.url, endpoint, config.region))


@pytest.fixture
def published(s3_env: S3Server, prefix: str, tmp_path: Path) -> dict[str, bytes]:
    """v0 of team/data on the remote (pushed from a store of its own); its files."""
    files = _files(1)
    src = make_tree(tmp_path / "src", files)
    assert _publish(s3_env, prefix, tmp_path / "publisher", src) == 0
    return files


@pytest.fixture
def cloned(s3_env: S3Server, prefix: str, tmp_path: Path, published: dict[str, bytes]) -> Path:
    """The home of a clone of the remote holding ``published``."""
    home = tmp_path / "clone"
    _clone(s3_env, prefix, home)
    return home


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    """Daemons started by the test; all unmounted and stopped at the end (logs shown when the
    test failed: pytest prints captured output only then)."""
    made = Mounts(tmp_path / "mounts")
    (tmp_path / "mounts").mkdir()
    yield made
    made.close(show_logs=True)


# --- the read path through the store API ------------------------------------------------------


def test_a_clone_fetches_only_the_chunks_it_reads(
    cloned: Path, published: dict[str, bytes]
) -> None:
    home = cloned
    with open_store(home) as store:
        assert store.missing_chunks(c.chunk_id for c in _entry(store, "other.bin").chunks)
        assert _read(store, "other.bin") == published["other.bin"]
        source = _source(store)
        chunks = len(_entry(store, "other.bin").chunks)
        assert source.counters.chunks == chunks
        assert source.counters.gets < chunks  # neighbours of one pack came in one GET
        # big.bin and notes.csv: not fetched; the version's tree page, cached by the clone
        assert source.cache.usage().entries == chunks + 1
        assert source.counters.bytes < len(published["other.bin"]) + MIB

        gets = source.counters.gets
        assert _read(store, "other.bin") == published["other.bin"]
        assert source.counters.gets == gets  # the second read comes from the cache
        assert source.cache.hits >= chunks

        assert verify(store, store.versions(ART)) == []  # verify reads (and fetches) the rest
        assert _read(store, "big.bin") == published["big.bin"]
        assert _read(store, "notes.csv") == published["notes.csv"]


def test_the_remote_source_follows_the_default_remote(
    s3_env: S3Server, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-lived Store (the daemon's) reads from whatever remote is the default now: set,
    switched or unset by another process, seen within REMOTE_RECHECK_SECONDS; unset, a chunk
    held only on the remote is a clear error, not corruption."""
    monkeypatch.setattr(repository, "REMOTE_RECHECK_SECONDS", 0.0)
    home = tmp_path / "home"
    with open_store(home) as daemon_view, open_store(home) as cli_view:
        assert daemon_view.remote_source() is None
        for name in ("a", "b"):
            add_remote(cli_view, name, s3_env.url(f"{prefix}/{name}"), s3_env.endpoint, None)
        cli_view.set_default_remote("a")
        first = _source(daemon_view)
        assert first.name == "a" and _source(daemon_view) is first
        cli_view.set_default_remote("b")
        assert _source(daemon_view).name == "b"
        cli_view.set_default_remote(None)
        assert daemon_view.remote_source() is None
        cid = ChunkId(b"\x07" * 32)
        with daemon_view.index.write() as txn:
            txn.put(Table.REMOTE_CHUNKS, cid, b"where")
        with pytest.raises(CorruptData, match="no default remote"):
            daemon_view.read_chunk(ChunkRef(cid, 10))


def test_a_damaged_cache_entry_is_fetched_again(cloned: Path, published: dict[str, bytes]) -> None:
    home = cloned
    with open_store(home) as store:
        assert _read(store, "notes.csv") == published["notes.csv"]
        source = _source(store)
        [ref] = _entry(store, "notes.csv").chunks
        entries = sorted((home / "cache" / "chunks").glob(f"*/{ref.chunk_id.hex()}"))
        assert len(entries) == 1
        data = bytearray(entries[0].read_bytes())
        data[-1] ^= 0x01
        entries[0].write_bytes(bytes(data))
        gets = source.counters.gets
        assert _read(store, "notes.csv") == published["notes.csv"]
        assert source.cache.dropped == 1 and source.counters.gets == gets + 1
        assert _read(store, "notes.csv") == published["notes.csv"]  # healed: a hit now
        assert source.counters.gets == gets + 1


def test_a_chunk_neither_here_nor_on_the_remote_is_a_clear_error(
    cloned: Path, published: dict[str, bytes]
) -> None:
    with open_store(cloned) as store:
        entry = _entry(store, "notes.csv")
        with store.index.write() as txn:
            txn.delete(Table.REMOTE_CHUNKS, entry.chunks[0].chunk_id)
        with pytest.raises(CorruptData, match="neither in this store nor on its remote 'origin'"):
            _read(store, "notes.csv")
        assert _read(store, "other.bin") == published["other.bin"]


def test_many_threads_wanting_one_chunk_download_it_once(
    cloned: Path, published: dict[str, bytes]
) -> None:
    home = cloned
    with open_store(home) as store:
        ref = _entry(store, "big.bin").chunks[2]
        threads = 8
        start = threading.Barrier(threads)
        results: list[bytes] = []

        def reader() -> None:
            start.wait()
            results.append(store.read_chunk(ref))

        workers = [threading.Thread(target=reader) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        offset = sum(c.length for c in _entry(store, "big.bin").chunks[:2])
        assert results == [published["big.bin"][offset : offset + ref.length]] * threads
        assert (_source(store).counters.gets, _source(store).counters.chunks) == (1, 1)


def test_offline_cached_chunks_read_and_uncached_ones_fail_clearly(
    s3_env: S3Server, cloned: Path, published: dict[str, bytes]
) -> None:
    home = cloned
    with open_store(home) as store:
        assert _read(store, "notes.csv") == published["notes.csv"]
    _repoint(home, _dead_endpoint())
    with open_store(home) as store:
        assert _read(store, "notes.csv") == published["notes.csv"]
        with pytest.raises(StoreError, match="cannot be fetched from remote 'origin'") as err:
            _read(store, "other.bin")
        assert "already cached still read" in str(err.value)
    # ls warns that the remote was not refreshed and lists what the store knows.
    done = _artfs(s3_env, home, "ls", "team/data")
    assert done.returncode == 0, done.stderr
    assert "v0" in done.stdout and "remote origin not refreshed" in done.stderr


def test_ls_of_a_clone_shows_versions_pushed_since(
    s3_env: S3Server, prefix: str, tmp_path: Path, cloned: Path
) -> None:
    home = cloned
    src = make_tree(tmp_path / "src2", {"new.txt": "second version"})
    assert _publish(s3_env, prefix, tmp_path / "publisher", src, aliases=["prod"]) == 1
    done = _artfs(s3_env, home, "ls", "team/data", "--json")
    assert done.returncode == 0, done.stderr
    assert '"prod"' in done.stdout and '"v1"' in done.stdout
    with open_store(home) as store:
        assert _read(store, "new.txt", "prod") == b"second version"


# --- mounts -----------------------------------------------------------------------------------


def _mount(mounts: Mounts, home: Path, *extra: str) -> Mount:
    return mounts.start(home, None, "--poll", "0.5", *extra)


def test_a_mount_of_a_clone_reads_lazily(
    cloned: Path, published: dict[str, bytes], mounts: Mounts
) -> None:
    home = cloned
    mount = _mount(mounts, home)
    version = mount.path / "team" / "data" / "v0"
    assert sorted(os.listdir(version)) == sorted(published)
    assert (version / "other.bin").stat().st_size == len(published["other.bin"])
    # Listing fetched the version's one tree page (a clone holds records only), no chunk.
    with open_store(home) as store:
        root = store.resolve(Ref(ART, "v0")).tree
    assert [p.name for p in (home / "cache" / "chunks").glob("*/*")] == [root]

    assert (version / "other.bin").read_bytes() == published["other.bin"]
    with open_store(home) as store:
        other = _entry(store, "other.bin").chunks
        big = len(_entry(store, "big.bin").chunks)
    cached = {p.name for p in (home / "cache" / "chunks").glob("*/*")}
    # other.bin's chunks and the tree page; the pack walk may have taken one following chunk
    assert cached >= {c.chunk_id.hex() for c in other} | {root} and len(cached) <= len(other) + 2
    with open(version / "big.bin", "rb") as file:
        file.seek(2 * MIB)  # within a 1.7 MiB chunk, over 1 MiB (kernel read-ahead) from its end
        assert file.read(1000) == published["big.bin"][2 * MIB : 2 * MIB + 1000]
    after = {p.name for p in (home / "cache" / "chunks").glob("*/*")}
    assert len(after - cached) <= 1 and len(after) <= len(other) + 2  # one chunk more at most
    assert (version / "big.bin").read_bytes() == published["big.bin"]
    assert len(list((home / "cache" / "chunks").glob("*/*"))) == len(other) + big + 1

    unmount_and_stop(mount)
    summary = re.search(r"remote reads: (\d+) chunks in (\d+) GETs", mount.log_text())
    assert summary is not None, mount.log_text()
    chunks, gets = int(summary.group(1)), int(summary.group(2))
    assert chunks == len(other) + big and gets < chunks  # sequential reads coalesced


def test_two_mounts_as_two_machines_see_new_versions(
    s3_env: S3Server, prefix: str, tmp_path: Path, published: dict[str, bytes], mounts: Mounts
) -> None:
    first, second = tmp_path / "node1", tmp_path / "node2"
    _clone(s3_env, prefix, first)
    _clone(s3_env, prefix, second)
    nodes = [_mount(mounts, first), _mount(mounts, second)]
    src = make_tree(tmp_path / "src2", {"model.pt": random_bytes(2 * MIB, 9)})
    assert _publish(s3_env, prefix, tmp_path / "publisher", src, aliases=["prod"]) == 1
    for node in nodes:
        artifact = node.path / "team" / "data"
        eventually(lambda a=artifact: (a / "v1").is_dir(), within=20)
        assert (artifact / "v1" / "model.pt").read_bytes() == (src / "model.pt").read_bytes()
        eventually(lambda a=artifact: os.path.lexists(a / "prod"), within=20)
        assert os.readlink(artifact / "prod") == "v1"
    # The alias moves on the remote, then v1 is deleted there: both mounts follow.
    other_writer = Remote(s3_env.store(prefix), "other", None)
    other_writer.move_alias(ART, "prod", 0)
    for node in nodes:
        link = node.path / "team" / "data" / "prod"
        eventually(lambda link=link: os.readlink(link) == "v0", within=20)
    other_writer.delete_version(Ref(ART, "v1"))
    for node in nodes:
        artifact = node.path / "team" / "data"
        eventually(lambda a=artifact: not (a / "v1").exists(), within=20)
        assert os.readlink(artifact / "latest") == "v0"
    # A commit on the first machine (its store is remote-backed: put publishes) reaches the
    # second machine's mount.
    src3 = make_tree(tmp_path / "src3", {"eval.json": '{"acc": 0.9}'})
    with open_store(first) as store:
        number = store.put(src3, ART).record.number
    assert number == 2  # the remote's next number: v1 is deleted, never reused
    fresh = nodes[1].path / "team" / "data" / "v2" / "eval.json"
    eventually(fresh.exists, within=20)
    assert fresh.read_bytes() == b'{"acc": 0.9}'


def test_a_mount_follows_a_default_remote_set_after_it_started(
    s3_env: S3Server, prefix: str, tmp_path: Path, published: dict[str, bytes], mounts: Mounts
) -> None:
    """A mount of a store without a remote starts polling when one becomes its default (here
    by a clone into the mounted, empty store), without a restart, and reads lazily from it."""
    home = tmp_path / "late"
    with open_store(home):
        pass
    mount = _mount(mounts, home)
    artifact = mount.path / "team" / "data"
    _clone(s3_env, prefix, home)  # sets the default remote while the daemon runs
    eventually((artifact / "v0").is_dir, within=20)
    assert (artifact / "v0" / "other.bin").read_bytes() == published["other.bin"]
    src = make_tree(tmp_path / "src2", {"model.pt": random_bytes(2 * MIB, 9)})
    assert _publish(s3_env, prefix, tmp_path / "publisher", src) == 1
    eventually((artifact / "v1").is_dir, within=20)  # only the daemon's polling brings it
    assert (artifact / "v1" / "model.pt").read_bytes() == (src / "model.pt").read_bytes()
    assert "polling remote origin" in mount.log_text()


def test_a_mount_reads_cached_chunks_while_the_remote_is_gone(
    s3_env: S3Server,
    prefix: str,
    tmp_path: Path,
    published: dict[str, bytes],
    mounts: Mounts,
    fault_proxy: FaultProxy,
) -> None:
    home = tmp_path / "clone"
    _clone(s3_env, prefix, home, endpoint=fault_proxy.endpoint)
    mount = _mount(mounts, home)
    with open_store(home) as store:  # another process fills the cache the daemon reads too
        assert _read(store, "notes.csv") == published["notes.csv"]
    fault_proxy.go_offline()
    version = mount.path / "team" / "data" / "v0"
    assert (version / "notes.csv").read_bytes() == published["notes.csv"]  # from the cache
    for _ in range(2):
        with pytest.raises(OSError) as err:
            (version / "other.bin").read_bytes()
        assert err.value.errno == errno.EIO
    eventually(lambda: "cannot refresh from remote origin" in mount.log_text(), within=30)
    fault_proxy.go_online()
    assert (version / "other.bin").read_bytes() == published["other.bin"]
    eventually(lambda: "remote origin answers again" in mount.log_text(), within=30)
    unmount_and_stop(mount)
    log = mount.log_text()
    assert log.count("cannot be fetched from remote 'origin'") == 1, log  # once per file


def test_a_chunk_whose_recorded_pack_was_deleted_is_read_from_another_pack(
    s3_env: S3Server, prefix: str, cloned: Path, published: dict[str, bytes]
) -> None:
    """The index keeps one remote location per chunk; when remote gc deleted that pack but
    another live pack holds the chunk (it was uploaded twice), the read goes there."""
    with open_store(cloned) as store:
        [ref] = _entry(store, "notes.csv").chunks
        with store.index.read() as txn:
            data = txn.get(Table.REMOTE_CHUNKS, ref.chunk_id)
        assert data is not None
        old = RemoteChunk.decode(data)
        objects = s3_env.store(prefix)
        payload = objects.get_range(
            layout.pack_key(old.pack), old.offset, old.offset + old.stored_length
        )
        builder = PackBuilder()
        builder.add(ref.chunk_id, old.codec, payload, old.raw_length)
        Remote(objects, "second-writer", None).upload_pack(*builder.finish())
        objects.delete(layout.pack_key(old.pack))
        objects.delete(layout.pack_index_key(old.pack))

        assert _read(store, "notes.csv") == published["notes.csv"]
        with store.index.read() as txn:
            moved = RemoteChunk.decode(txn.get(Table.REMOTE_CHUNKS, ref.chunk_id) or b"")
        assert moved.pack != old.pack


def test_a_chunk_whose_only_pack_is_gone_is_a_clear_error(
    s3_env: S3Server, prefix: str, cloned: Path
) -> None:
    with open_store(cloned) as store:
        [ref] = _entry(store, "notes.csv").chunks
        with store.index.read() as txn:
            old = RemoteChunk.decode(txn.get(Table.REMOTE_CHUNKS, ref.chunk_id) or b"")
        s3_env.store(prefix).delete(layout.pack_key(old.pack))
        with pytest.raises(CorruptData, match="is gone from remote 'origin'"):
            _read(store, "notes.csv")


def _small_files(count: int) -> dict[str, bytes]:
    return {f"samples/{i:04d}.bin": random_bytes(4096 + i, i) for i in range(count)}


def test_reading_small_files_in_order_takes_following_chunks_of_the_pack_along(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    files = _small_files(300)
    _publish(s3_env, prefix, tmp_path / "publisher", make_tree(tmp_path / "src", files))
    in_order, shuffled = tmp_path / "in-order", tmp_path / "shuffled"
    _clone(s3_env, prefix, in_order)
    _clone(s3_env, prefix, shuffled)
    total = sum(len(data) for data in files.values())

    with open_store(in_order) as store:
        for path in sorted(files):
            assert _read(store, path) == files[path]
        counters = _source(store).counters
        assert counters.gets <= 12  # one GET per file without the pack walk: 300
        assert counters.bytes < 1.05 * total

    # Random access never grows the window: what is fetched is about what is read.
    with open_store(shuffled) as store:
        order = sorted(files)
        random.Random(7).shuffle(order)
        for path in order[:100]:
            assert _read(store, path) == files[path]
        counters = _source(store).counters
        read = sum(len(files[p]) for p in order[:100])
        assert counters.gets >= 80
        assert counters.bytes < 2 * read


def test_a_stalled_remote_read_of_a_small_file_does_not_stall_the_mount(
    s3_env: S3Server,
    prefix: str,
    tmp_path: Path,
    mounts: Mounts,
    fault_proxy: FaultProxy,
) -> None:
    """A small chunk held only on the remote is fetched in a worker thread, never on the
    daemon's event loop: while its GET hangs, listing and cached reads still answer."""
    files = {"slow.txt": random_bytes(8000, 1), "cached.txt": random_bytes(8000, 2)}
    _publish(s3_env, prefix, tmp_path / "publisher", make_tree(tmp_path / "src", files))
    home = tmp_path / "clone"
    _clone(s3_env, prefix, home, endpoint=fault_proxy.endpoint)
    mount = _mount(mounts, home)
    version = mount.path / "team" / "data" / "v0"
    with open_store(home) as store:  # another process fills the cache the daemon reads too
        assert _read(store, "cached.txt") == files["cached.txt"]
    fault_proxy.add(Fault.latency(60, "GET", r"/packs/[0-9a-f]+\.pack"))
    results: list[bytes | BaseException] = []

    def read_slow() -> None:
        try:
            results.append((version / "slow.txt").read_bytes())
        except OSError as exc:
            results.append(exc)

    reader = threading.Thread(target=read_slow)
    reader.start()
    try:
        eventually(lambda: fault_proxy.chosen("latency") == 1, within=30)  # the GET is held
        assert sorted(os.listdir(version)) == sorted(files)
        assert (version / "cached.txt").read_bytes() == files["cached.txt"]
        assert fault_proxy.applied("latency") == 0  # both answered while the GET still hangs
        assert reader.is_alive()
    finally:
        # Cut the held connection: the client retries (the rule was used up) and gets it.
        fault_proxy.go_offline()
        fault_proxy.go_online()
        reader.join(timeout=60)
    assert not reader.is_alive()
    assert (version / "slow.txt").read_bytes() == files["slow.txt"]


def test_a_failing_pack_walk_never_fails_a_read(
    s3_env: S3Server, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taking following chunks along is an optimisation: whatever looking them up raises,
    the chunk asked for is read."""
    files = _small_files(20)
    _publish(s3_env, prefix, tmp_path / "publisher", make_tree(tmp_path / "src", files))
    home = tmp_path / "clone"
    _clone(s3_env, prefix, home)
    with open_store(home) as store:
        remote = _source(store).remote
        calls = 0

        def broken(pack: str) -> object:
            nonlocal calls
            calls += 1
            raise FileNotFoundError(f"cache copy of {pack} vanished")

        monkeypatch.setattr(remote, "pack_chunks", broken)
        for path in sorted(files):
            assert _read(store, path) == files[path]
        assert calls > 0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ARTFS_CACHE_MAX", "lots", "ARTFS_CACHE_MAX='lots' is not a size"),
        ("ARTFS_CACHE_MIN_FREE", "-1G", "ARTFS_CACHE_MIN_FREE='-1G' is not a size"),
        ("ARTFS_REMOTE_TIMEOUT", "soon", "ARTFS_REMOTE_TIMEOUT='soon' is not a number"),
    ],
)
def test_bad_cache_or_timeout_settings_are_one_clear_line(
    s3_env: S3Server,
    cloned: Path,
    tmp_path: Path,
    mounts: Mounts,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    message: str,
) -> None:
    """Not a "not found" for every file read: the mount refuses to start, a command fails,
    each with one line naming the setting."""
    done = _artfs(s3_env, cloned, "get", "team/data:v0", str(tmp_path / "out"), **{variable: value})
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    monkeypatch.setenv(variable, value)
    with pytest.raises(pytest.fail.Exception):
        mounts.start(cloned)
    daemon = mounts.made[-1]
    assert daemon.proc.wait(timeout=30) != 0
    assert message in daemon.log_text() and "Traceback" not in daemon.log_text()
