"""An incremental staging commit in a remote-backed store (SeaweedFS): published like any
commit, so a clone on another machine gets the new version's files, byte for byte."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import make_tree, random_bytes, read_tree
from tests.remote.remoteutil import artfs_ok
from tests.remote.seaweed import S3Server


def test_a_based_staging_commit_is_published(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "other"
    url = s3_env.url(prefix)
    endpoint = ("--endpoint", s3_env.endpoint)
    artfs_ok(s3_env, home, "remote", "add", "origin", url, *endpoint, "--default")
    src = make_tree(
        tmp_path / "src",
        {"keep.bin": random_bytes(300_000, 1), "old.txt": "old", "d/x.txt": "X"},
    )
    assert artfs_ok(s3_env, home, "put", str(src), "team/data").splitlines()[-1] == "team/data:v0"
    artfs_ok(s3_env, home, "stage", "team/data", "--from", "team/data:v0")
    upper = home / "staging" / "team" / "data"
    make_tree(upper, {"d/x.txt": "X2", "new.bin": random_bytes(200_000, 2)})
    (upper / ".artfs-wh.old.txt").touch()
    out = artfs_ok(s3_env, home, "commit", "team/data")
    assert out.splitlines()[-1] == "team/data:v1"
    artfs_ok(s3_env, other, "clone", url, *endpoint)
    artfs_ok(s3_env, other, "get", "team/data:v1", str(tmp_path / "out"))
    assert read_tree(tmp_path / "out") == {
        "d": None,
        "d/x.txt": b"X2",
        "keep.bin": random_bytes(300_000, 1),
        "new.bin": random_bytes(200_000, 2),
    }
    assert list(upper.iterdir()) == []
    assert '"base": "team/data:v1"' in artfs_ok(s3_env, home, "stage", "team/data", "--json")
