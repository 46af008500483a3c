"""Deleting on a remote and remote gc, through a real S3 server (SeaweedFS on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from artfs.errors import AliasesHeld, InvalidName, NotFound
from artfs.names import ArtifactName, Ref
from artfs.objectstore import MemoryObjectStore
from artfs.remote import layout
from artfs.remote.gc import MIN_GRACE_ENV, collect, delete_on_remote
from artfs.remote.layout import TreeVersion
from artfs.remote.remote import Remote
from artfs.remote.sync import clone, pull, push
from artfs.store import Store
from artfs.stores import open_store
from tests.helpers import make_tree, random_bytes, read_tree
from tests.remote.remoteutil import gc_until, remote_env, used_packs
from tests.remote.seaweed import S3Server
from tests.remote.test_remote_cli import _artfs, _ok

ART = ArtifactName("team", "data")
GRACE = 1.0  # seconds; gc adds one second for the server's whole-second clock


@pytest.fixture(autouse=True)
def _short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run gc with grace periods of seconds: below the floor users get."""
    monkeypatch.setenv(MIN_GRACE_ENV, "0")


def _remote(server: S3Server, prefix: str, home: Path, name: str = "w") -> Remote:
    return Remote(server.store(prefix, writer_id=name), name, home / "remote-cache")


def _put(store: Store, root: Path, files: dict[str, bytes], **options: object) -> Ref:
    record = store.put(make_tree(root, dict(files)), ART, **options).record
    return Ref(ART, record.version)


def _packs(remote: Remote) -> set[str]:
    return {
        pack
        for o in remote.objects.list("packs/")
        if o.key.endswith(".pack") and (pack := layout.pack_of_key(o.key)) is not None
    }


def _packs_of(remote: Remote, number: int) -> set[str]:
    return used_packs(remote, ART, number)


def test_rm_on_the_remote_hides_the_version_and_keeps_numbering(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    with open_store(tmp_path / "a") as a:
        remote = _remote(s3_env, prefix, tmp_path / "a")
        _put(a, tmp_path / "s0", {"x.bin": random_bytes(200_000, 1)})
        v1 = _put(a, tmp_path / "s1", {"x.bin": random_bytes(200_000, 2)}, aliases=["best"])
        assert [push(a, remote, Ref(ART, v)).number for v in ("v0", "v1")] == [0, 1]
        with pytest.raises(AliasesHeld, match="best"):
            remote.delete_version(Ref(ART, "v1"))
        assert remote.version_numbers(ART) == [0, 1]  # refused: nothing changed
        assert remote.delete_version(Ref(ART, "v1"), force=True).aliases == ["best"]

        assert remote.version_numbers(ART) == [0]
        assert remote.resolve(Ref.parse("team/data")) == 0
        assert "best" not in remote.aliases(ART)
        with open_store(tmp_path / "b") as b:
            for ref in ("team/data:v1", "team/data:best"):
                with pytest.raises(NotFound):
                    pull(b, _remote(s3_env, prefix, tmp_path / "b"), Ref.parse(ref))
            assert [r.ref for r in clone(b, _remote(s3_env, prefix, tmp_path / "b"))] == [
                "team/data:v0"
            ]
        # The content of v1 pushed again is a new version: the number 1 is never reused.
        again = push(a, remote, v1)
        assert (again.number, again.created) == (2, True)
        assert push(a, remote, v1).number == 2  # and its digest marker now finds v2

        remote.delete_version(Ref(ART, "v2"), force=True)  # it holds "best" now
        gc_until(remote, lambda r: "team/data:v2" in r.records_removed)
        assert remote.objects.head(layout.version_key(ART, 2)) is None
        assert remote.objects.head(layout.tombstone_key(ART, 2)) is not None  # kept forever
        v3 = _put(a, tmp_path / "s3", {"y.txt": b"new"})
        assert push(a, remote, v3).number == 3
        with pytest.raises(NotFound):
            remote.delete_artifact(ArtifactName("team", "none"))
        assert [r.number for r in remote.delete_artifact(ART)] == [0, 3]
        assert remote.artifacts() == []


def test_gc_deletes_unreferenced_packs_only_after_the_grace_period(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    keep = {"keep.bin": random_bytes(300_000, 3)}
    drop = {"drop.bin": random_bytes(300_000, 4)}
    with open_store(tmp_path / "a") as a:
        remote = _remote(s3_env, prefix, tmp_path / "a")
        push(a, remote, _put(a, tmp_path / "s0", keep))
        dropped = _put(a, tmp_path / "s1", drop)
        push(a, remote, dropped)
        # Each version: a pack of its chunks and a tree pack of its pages.
        kept, dropped_packs = _packs_of(remote, 0), _packs_of(remote, 1)
        assert len(kept) == len(dropped_packs) == 2 and not kept & dropped_packs
        remote.delete_version(Ref(ART, "v1"))

        first = collect(remote, 3600)  # nothing is old enough under a one-hour grace
        assert (first.packs_condemned, first.packs_deleted, first.packs_live) == (0, 0, 2)
        gc_until(remote, lambda r: r.packs_condemned == 2)
        assert remote.condemned_packs() == dropped_packs
        assert not dropped_packs & {loc.pack for loc in remote.chunk_map().values()}
        report = collect(remote, 3600)  # condemned, but not a grace period ago
        assert report.packs_deleted == 0 and dropped_packs <= _packs(remote)

        # The dropped content pushed again: its chunks and pages go into new packs, never the
        # condemned ones.
        again = push(a, remote, dropped)
        assert again.chunks_uploaded == 1
        assert len(_packs_of(remote, again.number) - dropped_packs) == 2
        report = gc_until(remote, lambda r: r.packs_deleted == 2)
        assert report.bytes_reclaimed > 300_000
        assert _packs(remote) == kept | _packs_of(remote, again.number)
        assert remote.condemned_packs() == set()

    with open_store(tmp_path / "b") as b:
        other = _remote(s3_env, prefix, tmp_path / "b")
        pull(b, other, Ref(ART, "v0"))
        pull(b, other, Ref(ART, f"v{again.number}"))
        assert _export(b, "team/data:v0", tmp_path / "e0") == keep
        assert _export(b, f"team/data:v{again.number}", tmp_path / "e2") == drop


def test_a_condemned_pack_referenced_again_is_spared(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    """A writer that read the chunk map before gc condemned a pack may still publish a record
    using it: the next gc finds the reference and takes the pack off the condemned list."""
    with open_store(tmp_path / "a") as a:
        remote = _remote(s3_env, prefix, tmp_path / "a")
        ref = _put(a, tmp_path / "s0", {"m.bin": random_bytes(100_000, 5)})
        push(a, remote, ref)
        packs = _packs_of(remote, 0)  # its chunks' and its tree's
        assert len(packs) == 2
        slow = _remote(s3_env, prefix, tmp_path / "a", "slow")
        remote.delete_version(Ref(ART, "v0"))
        gc_until(remote, lambda r: r.packs_condemned == 2)

        # A record naming the same root (the tree format) needs the tree pack and, through
        # its pages, the chunk pack again.
        record = dataclasses.replace(a.resolve(ref), aliases=[])
        assert slow.publish(TreeVersion(record)) == 1
        report = collect(remote, 0)
        assert (report.packs_spared, report.packs_deleted) == (2, 0)
        assert remote.condemned_packs() == set() and packs <= _packs(remote)
    with open_store(tmp_path / "b") as b:
        assert pull(b, _remote(s3_env, prefix, tmp_path / "b"), Ref(ART, "v1")).created


def test_a_pack_condemned_while_a_push_uploads_does_not_break_the_push(tmp_path: Path) -> None:
    """gc may condemn a pack of the writer's chunk map while the writer uploads the rest: the
    push keeps the map it listed first (the time gc's safety rests on) and names that pack."""
    remote = Remote(MemoryObjectStore(), "w", None)
    shared = random_bytes(100_000, 7)
    with open_store(tmp_path / "a") as a:
        push(a, remote, _put(a, tmp_path / "s0", {"shared.bin": shared}))
        [pack] = {p for p in _packs_of(remote, 0) if not remote.is_tree_pack(p)}
        ref = _put(a, tmp_path / "s1", {"shared.bin": shared, "own.bin": random_bytes(50, 8)})
        upload_pack = remote.upload_pack

        def condemning_upload(*args: Any, **options: Any) -> Any:
            # gc condemns the pack of shared.bin while this push is uploading own.bin
            remote.objects.put_new(layout.condemned_key(pack), b"{}")
            return upload_pack(*args, **options)

        remote.upload_pack = condemning_upload  # type: ignore[method-assign]
        sent = push(a, remote, ref)
        assert (sent.number, sent.chunks_uploaded) == (1, 1)
        assert pack in _packs_of(remote, 1)  # so the next gc spares it
        report = collect(remote, 0)
        assert (report.packs_spared, report.packs_deleted) == (1, 0)


def test_a_grace_below_the_floor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    remote = Remote(MemoryObjectStore(), "w", None)
    monkeypatch.delenv(MIN_GRACE_ENV)
    for grace in (0, 1, 599):
        with pytest.raises(InvalidName, match="below the minimum of 600s"):
            collect(remote, grace)
    assert remote.objects.list("") == []  # refused before anything was written
    collect(remote, 600)
    monkeypatch.setenv(MIN_GRACE_ENV, "soon")
    with pytest.raises(InvalidName, match=MIN_GRACE_ENV):
        collect(remote, 3600)


def _export(store: Store, ref: str, out: Path) -> dict[str, bytes | None]:
    for entry in store.files(store.resolve(ref)):
        path = out / entry.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(store.iter_file(entry)))
    return read_tree(out)


# --- writers pushing while gc runs ------------------------------------------------------------

# Each version holds one of eight shared files and a file of its own. Only the newest versions
# stay, so the pack of a shared file is often unreferenced, condemned and deleted while writers
# pick that file again. Each push waits half a second before creating its record (a slow
# writer: gc must keep every pack it read from the chunk map until it is done). Each writer
# prints the number it got and how long its push took from its chunk map to its record: gc
# promises safety only to pushes shorter than the grace period.
_WRITER = """
import sys, random, time
from pathlib import Path
from artfs.names import ArtifactName, Ref
from artfs.objectstore import RemoteUrl, S3ObjectStore
from artfs.remote.remote import Remote
from artfs.remote.sync import push
from artfs.stores import open_store
from tests.helpers import random_bytes

home, endpoint, prefix, index = sys.argv[1:]
art = ArtifactName("team", "shared")
stop = Path(home).parent / "stop"
publish, chunk_map = Remote.publish, Remote.chunk_map
took = {}
def timed_chunk_map(self):
    took["start"] = time.monotonic()
    return chunk_map(self)
def slow_publish(self, version):
    time.sleep(0.5)
    number = publish(self, version)
    took["push"] = time.monotonic() - took["start"]
    return number
Remote.publish, Remote.chunk_map = slow_publish, timed_chunk_map
with open_store(Path(home)) as store:
    objects = S3ObjectStore.open(RemoteUrl("artfs", prefix), endpoint=endpoint)
    remote = Remote(objects, objects.writer_id, None)
    n = 0
    while not stop.exists() and n < 1000:
        src = Path(home) / f"src{n}"
        src.mkdir(parents=True)
        shared = random.Random(f"{index}-{n}").randrange(8)
        (src / "shared.bin").write_bytes(random_bytes(400_000, shared))
        (src / "own.txt").write_text(f"writer {index} version {n} shared {shared}")
        record = store.put(src, art).record
        took.clear()
        number = push(store, remote, Ref(art, record.version)).number
        print(number, took.get("push", 0.0), flush=True)  # none: the content was there
        n += 1
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_writers_pushing_while_gc_runs_lose_no_pack(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    shared = ArtifactName("team", "shared")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER,
                str(tmp_path / f"w{i}"),
                s3_env.endpoint,
                prefix,
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=remote_env(s3_env, tmp_path / f"w{i}") | {"PYTHONPATH": str(Path.cwd())},
        )
        for i in range(3)
    ]
    remote = _remote(s3_env, prefix, tmp_path, "gc")
    reclaimed = 0
    try:
        deadline = time.monotonic() + 180
        # Until gc has deleted the packs of at least four shared files (400 kB each).
        while reclaimed < 4 * 400_000 and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a writer stopped early"
            numbers = remote.version_numbers(shared)
            for number in numbers[:-2]:  # keep the newest two, delete the rest
                remote.delete_version(Ref(shared, f"v{number}"), force=True)
            reclaimed += collect(remote, GRACE * 3).bytes_reclaimed
            time.sleep(0.2)
    finally:
        (tmp_path / "stop").touch()
        outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    assert reclaimed >= 4 * 400_000, "gc deleted too little while the writers pushed"
    took = [line.split() for out, _ in outputs for line in out.splitlines()]
    durations = {int(number): float(seconds) for number, seconds in took}
    pushed = sorted(int(number) for number, _ in took)
    assert len(pushed) == len(set(pushed))  # no number given out twice

    live = remote.version_numbers(shared)
    assert live and set(live) <= set(pushed)
    # A push slower than the grace period may lose a pack (on a loaded machine it can happen):
    # the promise is checked for the others, and there must be some.
    checked = [n for n in live if durations[n] <= GRACE * 3]
    assert checked, f"every live version took longer than the grace to push: {durations}"
    stored = _packs(remote)
    with open_store(tmp_path / "reader") as reader:
        other = _remote(s3_env, prefix, tmp_path / "reader", "reader")
        for number in checked:
            assert used_packs(other, shared, number) <= stored
            record = pull(reader, other, Ref(shared, f"v{number}")).record
            out = _export(reader, record.ref, tmp_path / "out" / str(number))
            own = out["own.txt"]
            assert own is not None
            seed = int(own.decode().rsplit(" ", 1)[1])
            assert out["shared.bin"] == random_bytes(400_000, seed)


# --- the command line -------------------------------------------------------------------------


def _fails(server: S3Server, home: Path, *args: str) -> str:
    done = _artfs(server, home, *args)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


def test_cli_rm_and_gc_on_the_remote(
    s3_server: S3Server, s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    home, src = tmp_path / "h", tmp_path / "src"
    make_tree(src, {"model.bin": random_bytes(200_000, 6)})
    assert "no artfs store" in _fails(s3_server, home, "rm", "team/m:v0", "--remote")
    _ok(s3_server, home, "config", "record_command_lines", "true")  # makes the store
    assert "no remote" in _fails(s3_server, home, "rm", "team/m:v0", "--remote")
    assert "no remote" in _fails(s3_server, home, "gc", "--remote")
    assert "--remote" in _fails(s3_server, home, "gc", "--grace", "1h")
    _ok(s3_server, home, "put", str(src), "team/m")
    _ok(s3_server, home, "put", str(src), "team/n")
    (src / "more.txt").write_text("more")
    _ok(s3_server, home, "put", str(src), "team/m")
    endpoint = ("--endpoint", s3_server.endpoint)
    _ok(s3_server, home, "remote", "add", "origin", s3_server.url(prefix), *endpoint)
    _ok(s3_server, home, "push", "--all")

    assert "v7 is not on" in _fails(s3_server, home, "rm", "team/m:v7", "--remote")
    assert "needs a version" in _fails(s3_server, home, "rm", "team/m", "--remote")
    out = _ok(s3_server, home, "rm", "team/m:v1", "--remote")
    assert out.strip() == "deleted team/m:v1 on origin"
    assert "was deleted" in _fails(s3_server, home, "pull", "team/m:v1")
    assert "\nv1\t" in _ok(s3_server, home, "ls", "team/m")  # --remote: only on the remote
    for grace in ("0s", "9m"):  # below the floor: refused before anything is done
        assert "below the minimum of 600s" in _fails(
            s3_server, home, "gc", "--remote", "--grace", grace
        )
    assert s3_env.store(prefix).list("gc/") == []  # not even the clock was written
    short = _artfs(s3_server, home, "gc", "--remote", "--grace", "1s", **{MIN_GRACE_ENV: "0"})
    assert short.returncode == 0 and "reclaimed" in short.stdout, short
    out = _ok(s3_server, home, "rm", "team/n", "--all", "--remote", "origin")
    assert out.strip() == "deleted team/n:v0 on origin"
    assert "has no versions" in _fails(s3_server, home, "pull", "team/n")
    assert "has no versions" in _fails(s3_server, home, "rm", "team/n", "--all", "--remote")

    # A remote-backed store deletes on its remote and locally.
    with open_store(home) as store:
        store.set_default_remote("origin")
    out = _ok(s3_server, home, "rm", "team/m:v0")
    assert out.strip() == "deleted team/m:v0 on origin and here"
    assert "has no versions" in _fails(s3_server, home, "pull", "team/m")
    with open_store(home) as store:
        assert 0 not in [r.number for r in store.versions(ArtifactName("team", "m"))]


def test_delete_on_remote_leaves_a_different_local_version_alone(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    with open_store(tmp_path / "a") as a, open_store(tmp_path / "b") as b:
        push(a, _remote(s3_env, prefix, tmp_path / "a"), _put(a, tmp_path / "s", {"f": b"a"}))
        b.put(make_tree(tmp_path / "t", {"f": b"other"}), ART)  # b's v0 is other content
        other = _remote(s3_env, prefix, tmp_path / "b")
        deleted, here = delete_on_remote(other, Ref(ART, "v0"), store=b)
        assert [r.ref for r in deleted] == ["team/data:v0"] and here == set()
        assert [r.number for r in b.versions(ART)] == [0]
