"""A store opened without its remote's ports (``Store.open``, not ``open_store``) never
changes a remote-backed store behind its remote's back, and a local store needs no ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from artfs.errors import StoreError
from artfs.names import ArtifactName, Ref
from artfs.store import Store
from artfs.store.settings import RemoteConfig

ART = ArtifactName("team", "data")


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    return src


def test_a_remote_backed_store_without_ports_refuses_commits_and_alias_moves(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    src = _tree(tmp_path)
    with Store.open(home) as store:
        store.put(src, ART)
        # No server is needed: the refusal comes before the remote is asked anything.
        store.add_remote(RemoteConfig("origin", "s3://bucket/prefix", "http://127.0.0.1:9"))
        store.set_default_remote("origin")
        (src / "b.txt").write_text("more")
        with pytest.raises(StoreError, match=r"remote 'origin'.*open_store"):
            store.put(src, ART)
        with pytest.raises(StoreError, match="open_store"):
            store.set_alias(Ref.parse("team/data:v0"), "best")
        assert [r.number for r in store.versions(ART)] == [0]
        assert store.resolve(Ref.parse("team/data:v0")).aliases == ["latest"]


def test_a_local_store_works_without_ports(tmp_path: Path) -> None:
    with Store.open(tmp_path / "home") as store:
        assert store.ports is None
        result = store.put(_tree(tmp_path), ART, aliases=["best"])
        assert result.record.ref == "team/data:v0"
        assert store.remote_source() is None
