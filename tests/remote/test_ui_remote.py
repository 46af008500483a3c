"""``artfs ui`` over a clone of a remote: files whose chunks are only on the remote (SeaweedFS)
are previewed and downloaded through the store's remote source; the index and packs of the
clone stay as they were."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers import make_tree, random_bytes
from tests.remote.remoteutil import artfs_ok
from tests.remote.seaweed import S3Server


def _read(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return bytes(response.read())


def _index_and_packs(home: Path) -> dict[str, str]:
    files = [home / "index" / "data.mdb", *sorted((home / "packs").glob("*"))]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def test_ui_reads_a_clone_lazily(
    s3_env: S3Server,
    prefix: str,
    tmp_path: Path,
    serve_ui: Any,
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    model = random_bytes(300_000, 7)
    src = make_tree(tmp_path / "src", {"model.bin": model, "labels.csv": "id,y\n1,cat\n2,dog\n"})
    url = s3_env.url(prefix)
    artfs_ok(s3_env, a, "put", str(src), "team/model", "--alias", "prod")
    artfs_ok(s3_env, a, "remote", "add", "origin", url, "--endpoint", s3_env.endpoint)
    artfs_ok(s3_env, a, "push", "--all")
    artfs_ok(s3_env, b, "clone", url, "--endpoint", s3_env.endpoint)  # index only
    before = _index_and_packs(b)

    served = serve_ui(b)
    preview = json.loads(_read(served.at("api/v/team/model/prod/f/labels.csv")))["preview"]
    assert preview["rows"] == [["1", "cat"], ["2", "dog"]]
    assert _read(served.at("raw/team/model/v0/model.bin")) == model
    assert _index_and_packs(b) == before
