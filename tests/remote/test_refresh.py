"""Refreshing a store's index from its remote (``sync.refresh``), on the in-memory object store:
the cases need precise interleavings and hand-made remote states.

A version is deleted here only on the remote's tombstone for the same content, two refreshes
never interleave, a version that cannot be adopted is skipped without stopping the rest, and
aliases (moves and removals) follow the remote.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from artfs.names import ArtifactName, Ref
from artfs.objectstore import MemoryObjectStore, ObjectInfo
from artfs.remote import layout
from artfs.remote.poll import RemotePoller, log_refresh
from artfs.remote.remote import Remote
from artfs.remote.sync import RefreshResult, push, refresh
from artfs.store import Store
from artfs.stores import open_store

ART = ArtifactName("team", "data")


class GatedObjects(MemoryObjectStore):
    """Holds the first listing under ``gate`` (once set) until ``go`` is set."""

    def __init__(self) -> None:
        super().__init__("w")
        self.gate: str | None = None
        self.paused = threading.Event()
        self.go = threading.Event()

    def list(self, prefix: str) -> list[ObjectInfo]:
        if self.gate is not None and prefix.startswith(self.gate):
            self.gate = None
            self.paused.set()
            assert self.go.wait(30)
        return super().list(prefix)


@pytest.fixture
def objects() -> GatedObjects:
    return GatedObjects()


@pytest.fixture
def remote(objects: GatedObjects) -> Remote:
    return Remote(objects, "w", None)


@pytest.fixture
def src(tmp_path: Path) -> Iterator[Store]:
    """Another machine's store, publishing on the remote with ``push``."""
    with open_store(tmp_path / "src") as store:
        yield store


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Store]:
    """This machine's store, refreshed from the remote."""
    with open_store(tmp_path / "home") as store:
        yield store


def _put(store: Store, folder: Path, content: str, art: ArtifactName = ART) -> Ref:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "f.txt").write_text(content)
    record = store.put(folder, art).record
    return Ref(art, record.version)


def _publish(src: Store, remote: Remote, tmp_path: Path, content: str, **kw: ArtifactName) -> int:
    art = kw.get("art", ART)
    ref = _put(src, tmp_path / "tree" / content, content, art)
    return push(src, remote, ref).number


def _numbers(store: Store, art: ArtifactName = ART) -> list[int]:
    return [record.number for record in store.versions(art)]


def test_a_refresh_that_listed_earlier_never_deletes_what_a_later_one_adopted(
    objects: GatedObjects, remote: Remote, src: Store, home: Store, tmp_path: Path
) -> None:
    for content in ("a", "b"):
        _publish(src, remote, tmp_path, content)
    refresh(home, remote)
    objects.gate = layout.aliases_prefix(ART)  # the first refresh stops after listing versions
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(refresh, home, remote)
        assert objects.paused.wait(30)
        assert _publish(src, remote, tmp_path, "c") == 2  # another machine publishes v2
        second = pool.submit(refresh, home, remote)  # e.g. 'artfs ls' while the daemon polls
        wait([second], timeout=2)  # done at once if refreshes could interleave
        held = home.home / "remotes" / "refresh.lock"  # by the first refresh
        with open(held, "rb") as lock, pytest.raises(BlockingIOError):
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        objects.go.set()
        assert not first.result(30).deleted
        assert [r.number for r in second.result(30).adopted] == [2]
    assert _numbers(home) == [0, 1, 2]
    assert not refresh(home, remote)  # and it stays


def test_a_version_is_deleted_only_on_its_tombstone(
    objects: GatedObjects, remote: Remote, src: Store, home: Store, tmp_path: Path
) -> None:
    for content in ("a", "b"):
        _publish(src, remote, tmp_path, content)
    refresh(home, remote)
    record = objects.objects.pop(layout.version_key(ART, 1))  # missing from a listing
    assert not refresh(home, remote)
    assert _numbers(home) == [0, 1]
    objects.objects[layout.version_key(ART, 1)] = record
    remote.delete_version(Ref(ART, "v1"))
    assert refresh(home, remote).deleted == ["team/data:v1"]
    # a tombstone whose record gc already removed: v0 was adopted from the remote
    objects.put(layout.tombstone_key(ART, 0), layout.encode_tombstone(0, "w", time.time()))
    objects.objects.pop(layout.version_key(ART, 0))
    assert refresh(home, remote).deleted == ["team/data:v0"]
    assert home.versions(ART) == []


def test_a_local_version_the_remote_has_other_content_for_is_kept(
    remote: Remote, src: Store, home: Store, tmp_path: Path
) -> None:
    mine = _put(home, tmp_path / "mine", "mine")
    home.adopt_alias(ART, "mine", 0)
    for content in ("theirs", "theirs too"):
        _publish(src, remote, tmp_path, content)
    result = refresh(home, remote)
    assert [r.number for r in result.adopted] == [1]
    assert [line.split(":", 2)[1] for line in result.skipped] == ["v0"]
    assert home.remote_seen() == {ART: {1}}  # a skipped number is not the remote's here
    remote.delete_version(Ref(ART, "v0"))
    assert not refresh(home, remote).deleted
    kept = home.resolve(mine)
    assert kept.digest != remote.read_version(ART, 0).record.digest
    assert "mine" in kept.aliases


def test_a_version_deleted_here_comes_back_when_the_remote_lists_it(
    remote: Remote, src: Store, home: Store, tmp_path: Path
) -> None:
    for content in ("a", "b"):
        _publish(src, remote, tmp_path, content)
    refresh(home, remote)
    home.delete_version(Ref(ART, "v1"))  # what a stale refresh used to do
    result = refresh(home, remote)
    assert [r.number for r in result.adopted] == [1] and not result.skipped
    back = home.resolve(Ref(ART, "v1"))
    assert [e.path for e in home.files(back)] == ["f.txt"]


def test_an_unreadable_record_is_skipped_and_the_rest_is_refreshed(
    objects: GatedObjects, remote: Remote, src: Store, home: Store, tmp_path: Path
) -> None:
    first, last = ArtifactName("team", "a"), ArtifactName("team", "b")
    _publish(src, remote, tmp_path, "a0", art=first)
    future = {"format": "artfs-version/2", "record": {}}
    objects.put(layout.version_key(first, 1), json.dumps(future).encode())
    _publish(src, remote, tmp_path, "b0", art=last)
    result = refresh(home, remote)
    assert sorted(str(r.ref) for r in result.adopted) == ["team/a:v0", "team/b:v0"]
    assert len(result.skipped) == 1 and result.skipped[0].startswith("team/a:v1: ")
    assert refresh(home, remote).skipped == result.skipped  # tried again, still reported
    assert _numbers(home, first) == [0]


def test_aliases_follow_the_remote_also_when_removed(
    remote: Remote, src: Store, home: Store, tmp_path: Path
) -> None:
    for content in ("a", "b"):
        _publish(src, remote, tmp_path, content)
    remote.move_alias(ART, "prod", 0)
    remote.move_alias(ART, "best", 1)
    refresh(home, remote)
    assert home.resolve(Ref(ART, "best")).number == 1
    remote.move_alias(ART, "prod", 1)
    remote.remove_alias(ART, "best")
    result = refresh(home, remote)
    assert result.aliases == ["team/data:prod -> v1", "team/data:best removed"]
    assert home.resolve(Ref(ART, "v1")).aliases == ["latest", "prod"]
    assert home.resolve(Ref(ART, "v0")).aliases == []


def test_the_daemon_stops_a_refresh_before_it_closes_the_store(
    objects: GatedObjects, remote: Remote, src: Store, home: Store, tmp_path: Path
) -> None:
    first, last = ArtifactName("team", "a"), ArtifactName("team", "b")
    _publish(src, remote, tmp_path, "a0", art=first)
    _publish(src, remote, tmp_path, "b0", art=last)
    objects.gate = layout.versions_prefix(first)
    worker = RemotePoller(home)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(worker.refresh, remote)
        assert objects.paused.wait(30)
        assert not worker.finish(timeout=0.1)  # held at the gate: the store must stay open
        objects.go.set()
        assert worker.finish(timeout=30)
        result = running.result(30)
    assert result is not None and [str(r.ref) for r in result.adopted] == ["team/a:v0"]
    assert worker.refresh(remote) is None  # stopping: no refresh starts any more
    assert os.path.exists(home.home / "remotes" / "refresh.lock")


def test_the_daemon_logs_a_skipped_version_once(caplog: pytest.LogCaptureFixture) -> None:
    reported: set[str] = set()
    caplog.set_level(logging.INFO, logger="artfs.remote.poll")
    for _ in range(3):  # every poll tries the version again and skips it again
        log_refresh("origin", RefreshResult(skipped=["team/a:v1: cannot be read"]), reported)
    assert [r.getMessage().count("team/a:v1") for r in caplog.records] == [1]


def test_a_refresh_of_one_artifact_or_project_lists_only_that(
    objects: GatedObjects, remote: Remote, src: Store, home: Store, tmp_path: Path
) -> None:
    """What ``artfs ls PROJECT[/NAME]`` of a remote-backed store does first: with many
    artifacts on the remote, it must not list (or read) them all."""
    other = ArtifactName("team", "model")
    elsewhere = ArtifactName("lab", "data")
    for n, art in enumerate((ART, other, elsewhere)):
        _publish(src, remote, tmp_path, f"c{n}", art=art)
    listed: list[str] = []
    plain_list = objects.list

    def counting_list(prefix: str) -> list[ObjectInfo]:
        listed.append(prefix)
        return plain_list(prefix)

    objects.list = counting_list  # type: ignore[method-assign]

    adopted = refresh(home, remote, artifact=ART).adopted
    assert [r.artifact for r in adopted] == [ART]
    assert not any(p in ("versions/", "deleted/") or "model" in p or "lab" in p for p in listed)
    assert home.artifact(other) is None and home.artifact(elsewhere) is None

    listed.clear()
    adopted = refresh(home, remote, project="team").adopted
    assert [r.artifact for r in adopted] == [other]
    assert "versions/team/" in listed and not any("lab" in p for p in listed)
    assert home.artifact(elsewhere) is None

    assert [r.artifact for r in refresh(home, remote).adopted] == [elsewhere]
