"""The ObjectStore contract, run against the in-memory store, a real S3 server (SeaweedFS) and
moto in server mode."""

from __future__ import annotations

import time

import pytest

from artfs.errors import RemoteMissing
from artfs.objectstore import MemoryObjectStore, ObjectStore, RemoteUrl
from tests.remote.seaweed import S3Server


@pytest.fixture(params=["memory", "s3", "moto"])
def objects(request: pytest.FixtureRequest, prefix: str) -> ObjectStore:
    if request.param == "memory":
        return MemoryObjectStore()
    server: S3Server = request.getfixturevalue("s3_env" if request.param == "s3" else "moto_env")
    return server.store(prefix)


def test_put_get_head_list(objects: ObjectStore) -> None:
    etag = objects.put("packs/a.pack", b"0123456789")
    assert objects.get("packs/a.pack") == (b"0123456789", etag)
    assert objects.get_range("packs/a.pack", 2, 5) == b"234"
    info = objects.head("packs/a.pack")
    assert info is not None and (info.size, info.etag) == (10, etag)
    objects.put("packs/b.pack", b"x")
    objects.put("packsx/c", b"y")
    assert [o.key for o in objects.list("packs/")] == ["packs/a.pack", "packs/b.pack"]
    assert objects.head("packs/none") is None
    with pytest.raises(RemoteMissing):
        objects.get("packs/none")


def test_put_new_creates_once(objects: ObjectStore) -> None:
    assert objects.put_new("v/0.json", b"first")
    assert not objects.put_new("v/0.json", b"second")
    assert objects.get("v/0.json")[0] == b"first"


def test_put_if_is_compare_and_swap(objects: ObjectStore) -> None:
    assert objects.put_if("a.json", b"x", '"nothing"') is None  # no object: nothing to swap
    objects.put_new("a.json", b"0")
    _, first = objects.get("a.json")
    second = objects.put_if("a.json", b"1", first)
    assert second is not None
    assert objects.put_if("a.json", b"2", first) is None
    assert objects.get("a.json") == (b"1", second)


def test_a_retried_create_recognises_its_own_write() -> None:
    objects = MemoryObjectStore()
    objects.lose_next_response = True
    assert objects.put_new("v/0.json", b"mine")  # written, response lost, retried: 412 is ours
    assert not MemoryObjectStore.put_new(objects, "v/0.json", b"other")


def test_a_retried_swap_recognises_its_own_write() -> None:
    objects = MemoryObjectStore()
    objects.put_new("a.json", b"0")
    _, etag = objects.get("a.json")
    objects.lose_next_response = True
    new = objects.put_if("a.json", b"1", etag)
    assert new is not None and objects.get("a.json") == (b"1", new)


def test_remote_url_parsing() -> None:
    assert RemoteUrl.parse("s3://bucket/team/a/") == RemoteUrl("bucket", "team/a")
    assert str(RemoteUrl.parse("s3://bucket")) == "s3://bucket"
    for bad in ("http://bucket/x", "s3:///x", "s3://b/x?y=1"):
        with pytest.raises(Exception, match="remote URL"):
            RemoteUrl.parse(bad)


def test_s3_recognises_its_own_write_by_token(
    s3_env: S3Server, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client retry repeats the same request, token included: replay it on the real server."""
    from artfs import objectstore

    monkeypatch.setattr(objectstore, "write_token", lambda writer_id: f"{writer_id}.fixed")
    mine = s3_env.store(prefix, writer_id="me")
    assert mine.put_new("v/0.json", b"mine")
    assert mine.put_new("v/0.json", b"mine")  # the replay: 412, but the object carries our token
    assert not s3_env.store(prefix, writer_id="other").put_new("v/0.json", b"x")
    _, etag = mine.get("v/0.json")
    moved = mine.put_if("v/0.json", b"moved", etag)
    assert moved is not None
    assert mine.put_if("v/0.json", b"moved", etag) == moved  # replayed swap: ours, not a loss
    assert s3_env.store(prefix, writer_id="other").put_if("v/0.json", b"y", etag) is None


def test_delete_is_idempotent(objects: ObjectStore) -> None:
    objects.put("packs/a.pack", b"0123")
    objects.put_new("packs/a.idx", b"{}")
    objects.delete("packs/a.pack")
    objects.delete("packs/a.pack")  # already gone: not an error
    objects.delete("packs/never")
    assert objects.head("packs/a.pack") is None
    assert [o.key for o in objects.list("packs/")] == ["packs/a.idx"]
    assert objects.put_new("packs/a.pack", b"again")  # a deleted key can be created anew


def test_objects_carry_the_time_they_were_written(objects: ObjectStore) -> None:
    objects.put("a", b"x")
    [listed] = objects.list("")
    head = objects.head("a")
    assert head is not None and head.modified == listed.modified
    assert abs(listed.modified - time.time()) < 60  # the server's clock, same machine here
