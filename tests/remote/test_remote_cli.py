"""artfs remote add/ls, push, pull and clone through the installed console script."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import make_tree, random_bytes
from tests.remote.remoteutil import artfs_ok, run_artfs
from tests.remote.seaweed import S3Server

_artfs = run_artfs


_ok = artfs_ok


def test_push_clone_pull_round_trip(s3_server: S3Server, prefix: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    src = make_tree(tmp_path / "src", {"model.bin": random_bytes(700_000, 5), "cfg.json": "{}"})
    url = s3_server.url(prefix)
    _ok(s3_server, a, "put", str(src), "team/model", "--alias", "prod", "--type", "model")
    assert "added remote origin" in _ok(
        s3_server, a, "remote", "add", "origin", url, "--endpoint", s3_server.endpoint
    )
    assert url in _ok(s3_server, a, "remote", "ls")
    assert _ok(s3_server, a, "push", "--all").strip() == "team/model:v0 -> team/model:v0 (pushed)"
    assert "cloned 1 versions" in _ok(s3_server, b, "clone", url, "--endpoint", s3_server.endpoint)
    assert "0 B fetched" not in _ok(s3_server, b, "pull", "team/model:prod")
    out = tmp_path / "out"
    _ok(s3_server, b, "get", "team/model:prod", str(out))
    assert (out / "model.bin").read_bytes() == (src / "model.bin").read_bytes()
    assert "ok:" in _ok(s3_server, b, "verify")


def test_errors_are_one_line(s3_server: S3Server, prefix: str, tmp_path: Path) -> None:
    home = tmp_path / "h"
    done = _artfs(s3_server, home, "push", "team/x")
    assert done.returncode == 1 and "no artfs store" in done.stderr and not home.exists()
    _ok(s3_server, home, "config", "record_command_lines", "true")  # makes the store
    done = _artfs(s3_server, home, "push", "team/x")
    assert done.returncode == 1 and "no remote" in done.stderr and "Traceback" not in done.stderr
    done = _artfs(s3_server, home, "remote", "add", "r", "http://bucket/x")
    assert done.returncode == 2 and "s3://bucket/prefix" in done.stderr
    _ok(
        s3_server,
        home,
        "remote",
        "add",
        "r",
        s3_server.url(prefix),
        "--endpoint",
        s3_server.endpoint,
    )
    done = _artfs(s3_server, home, "remote", "add", "r", s3_server.url(prefix))
    assert done.returncode == 1 and "exists" in done.stderr
    done = _artfs(s3_server, home, "pull", "team/none")
    assert done.returncode == 1 and "has no versions" in done.stderr
