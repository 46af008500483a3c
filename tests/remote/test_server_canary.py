"""Canaries: the test server must refuse what S3 refuses, or every remote test is meaningless."""

from __future__ import annotations

from tests.remote.seaweed import S3Server


def test_second_create_only_put_is_refused(s3_env: S3Server, prefix: str) -> None:
    first = s3_env.store(prefix, writer_id="writer-a")
    second = s3_env.store(prefix, writer_id="writer-b")
    assert first.put_new("versions/x/0.json", b"a") is True
    assert second.put_new("versions/x/0.json", b"b") is False
    assert first.get("versions/x/0.json")[0] == b"a"


def test_compare_and_swap_with_a_stale_etag_is_refused(s3_env: S3Server, prefix: str) -> None:
    store = s3_env.store(prefix)
    store.put_new("aliases/x/best.json", b"v0")
    _, stale = store.get("aliases/x/best.json")
    fresh = store.put_if("aliases/x/best.json", b"v1", stale)
    assert fresh is not None and fresh != stale
    other = s3_env.store(prefix)
    assert other.put_if("aliases/x/best.json", b"v2", stale) is None
    assert store.get("aliases/x/best.json") == (b"v1", fresh)
