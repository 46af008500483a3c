"""Deleting in a remote-backed store (SDK, Store, TTL expiry), using a remote that holds one
content twice as the default, and what a commit reads (SeaweedFS). What another machine sees
is read from the remote itself."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

import artfs
from artfs.errors import AliasesHeld
from artfs.names import ArtifactName, Ref
from artfs.objectstore import S3ObjectStore
from artfs.remote import layout
from artfs.remote.layout import TreeVersion
from artfs.remote.publish import set_default
from artfs.remote.remote import Remote
from artfs.remote.sync import add_remote, clone, push
from artfs.stores import open_store
from tests.helpers import make_tree, random_bytes
from tests.remote.remoteutil import run_artfs
from tests.remote.seaweed import S3Server
from tests.remote.test_lazy_mount import _dead_endpoint, _repoint
from tests.remote.test_publish import _backed, _clone, _ok

ART = ArtifactName("team", "data")


def _remote(server: S3Server, prefix: str, tmp_path: Path) -> Remote:
    return Remote(server.store(prefix, writer_id="reader"), "reader", tmp_path / "reader-cache")


def test_an_sdk_delete_in_a_remote_backed_store_deletes_on_the_remote(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    a = _backed(s3_env, prefix, tmp_path / "a")
    weights = tmp_path / "model.pt"
    weights.write_bytes(random_bytes(200_000, 1))
    with artfs.init(project="team", job_type="train", home=a) as run:
        model = artfs.Artifact("data", type="model")
        model.add_file(str(weights))
        run.log_artifact(model, aliases=["best"])
    remote = _remote(s3_env, prefix, tmp_path)
    logged = artfs.Api(home=a).artifact(f"{ART}:v0")
    with pytest.raises(AliasesHeld, match="delete_aliases=True"):
        logged.delete()  # refused by the remote: nothing changes anywhere
    assert remote.version_numbers(ART) == [0]
    assert artfs.Api(home=a).artifact_exists(f"{ART}:v0")
    logged.delete(delete_aliases=True)
    assert logged.state == "DELETED"
    assert remote.version_numbers(ART) == [] and remote.is_deleted(ART, 0)
    assert not artfs.Api(home=a).artifact_exists(f"{ART}:v0")
    # The same content logged again is a new version, here and on the remote.
    with artfs.init(project="team", job_type="train", home=a) as run:
        again = artfs.Artifact("data", type="model")
        again.add_file(str(weights))
        assert run.log_artifact(again).version == "v1"
    assert remote.version_numbers(ART) == [1]
    remote.move_alias(ART, "prod", 1)  # by another machine: this index has not seen it
    with pytest.raises(AliasesHeld, match=r"prod on .*pass delete_aliases=True"):
        artfs.Api(home=a).artifact(f"{ART}:v1").delete()
    assert remote.version_numbers(ART) == [1]
    with open_store(a) as store:
        deleted = store.delete_artifact(ART)
        assert [r.ref for r in deleted] == [f"{ART}:v1"]
        assert store.artifact(ART) is None
    assert remote.version_numbers(ART) == []


def test_ttl_expiry_in_a_remote_backed_store_writes_tombstones(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    a = _backed(s3_env, prefix, tmp_path / "a")
    remote = _remote(s3_env, prefix, tmp_path)
    with open_store(a) as store:
        for n in range(3):
            src = make_tree(tmp_path / f"s{n}", {"f.bin": random_bytes(1000, n)})
            store.put(src, ART, ttl_seconds=None if n == 2 else 60)
        remote.move_alias(ART, "keep", 1)  # set on another machine: this index lacks it
        deleted, kept = store.expire(now=time.time() + 3600)
        assert (deleted, kept) == ([f"{ART}:v0"], [f"{ART}:v1"])
        assert remote.version_numbers(ART) == [1, 2] and remote.is_deleted(ART, 0)
        assert [r.number for r in store.versions(ART)] == [1, 2]
        # Another machine's expiry came first: the version only goes here.
        remote.move_alias(ART, "keep", 2)
        remote.delete_version(Ref(ART, "v1"))
        assert store.expire(now=time.time() + 3600) == ([f"{ART}:v1"], [])
        assert [r.number for r in store.versions(ART)] == [2]
    assert "expired" not in _ok(s3_env, a, "gc")


def test_a_remote_holding_one_content_twice_can_back_its_clone(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    """Two writers committing identical content at once both create a record; the digest
    marker names one of them. A clone of that remote must still be able to use it."""
    src = make_tree(tmp_path / "src", {"f.bin": random_bytes(100_000, 2)})
    with open_store(tmp_path / "a") as a:
        remote = Remote(s3_env.store(prefix, writer_id="a"), "a", tmp_path / "a-cache")
        record = a.put(src, ART).record
        assert push(a, remote, Ref(ART, "v0")).number == 0
        record = dataclasses.replace(record, aliases=[])
        assert remote.publish(TreeVersion(record)) == 1
    assert remote.objects.head(layout.digest_key(ART, record.digest)) is not None
    b = _clone(s3_env, prefix, tmp_path / "b")
    _ok(s3_env, b, "remote", "default", "--unset")
    _ok(s3_env, b, "remote", "default", "origin")  # both versions are there, at their numbers
    with open_store(b) as store:
        assert [r.number for r in store.versions(ART)] == [0, 1]
        set_default(store, "origin")

    # A local store holding both: deleting one keeps the other findable by its content.
    with open_store(tmp_path / "c") as c:
        config = add_remote(c, "origin", s3_env.url(prefix), s3_env.endpoint, None)
        clone(c, Remote(s3_env.store(prefix), "c", None))
        assert c.default_remote() is None and config.name == "origin"
        c.delete_version(Ref(ART, "v1"))
        again = c.put(src, ART)
        assert (again.created, again.record.number) == (False, 0)


def test_a_commit_reads_the_newest_record_once(
    s3_env: S3Server, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The type check, the digest lookup (no marker for new content) and the publish's own
    type check all need the newest record: it is read once (a large tree's is tens of MB)."""
    a = _backed(s3_env, prefix, tmp_path / "a")
    gets: list[str] = []
    get = S3ObjectStore.get

    def counting_get(self: S3ObjectStore, key: str) -> Any:
        gets.append(key)
        return get(self, key)

    with open_store(a) as store:
        store.put(make_tree(tmp_path / "s0", {"f.bin": random_bytes(1000, 1)}), ART)
        monkeypatch.setattr(S3ObjectStore, "get", counting_get)
        done = store.put(make_tree(tmp_path / "s1", {"f.bin": random_bytes(1000, 2)}), ART)
    assert done.created and done.record.number == 1
    assert [k for k in gets if k.startswith("versions/")] == [layout.version_key(ART, 0)]


def test_gc_with_the_remote_gone_reclaims_space_and_expires_nothing(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    """Expiry deletes on the remote first; with the remote unreachable it waits for the next
    gc, and gc still reclaims what no version references."""
    a = _backed(s3_env, prefix, tmp_path / "a")
    with open_store(a) as store:
        for n in range(2):
            src = make_tree(tmp_path / f"s{n}", {"f.bin": random_bytes(300_000, n)})
            store.put(src, ART, ttl_seconds=1 if n == 0 else None)
        # A pack nobody references: what a commit killed before its index transaction leaves.
        writer = store.chunks.writer()
        writer.add(b"\x01" * 32, 0, random_bytes(100_000, 9), 100_000)
        writer.commit()
    _repoint(a, _dead_endpoint())
    time.sleep(1.1)  # the TTL passes
    done = run_artfs(s3_env, a, "gc")
    assert done.returncode == 0, done.stderr
    [warning] = done.stderr.strip().splitlines()
    assert warning.startswith("warning: expired versions not deleted:")
    assert "unreachable" in warning
    assert "1 packs removed" in done.stdout
    with open_store(a) as store:
        assert [r.number for r in store.versions(ART)] == [0, 1]
