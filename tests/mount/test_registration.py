"""Runs register only with mounts of their own store, through real mounts.

Two stores, each mounted: a run started in one must not appear in the other (no run, no
project ``default``), the store identity is visible as ``MNT/.artfs-store``, and the daemon
refuses a registration naming a run its store does not hold.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from artfs.lineage import Lineage
from artfs.store import Store
from tests.mount.mountutil import ARTFS, RECORDED_WITHIN, Mount, StartMount, eventually, put

pytestmark = pytest.mark.mount


def make_home(base: Path) -> Path:
    src = base / "src"
    src.mkdir(parents=True)
    (src / "part0.txt").write_text("part 0\n")
    put(base / "home", src, "proj/data")
    return base / "home"


def store_id(home: Path) -> str:
    with Store.open(home) as store:
        return store.store_id


def runs(home: Path, *args: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [str(ARTFS), "--home", str(home), "runs", "--json", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    found: list[dict[str, object]] = json.loads(done.stdout)
    return found


def start_run(home: Path, project: str, read: Path | None = None) -> str:
    """``artfs.init`` in a fresh process (so it registers with every mount it sees), reading
    ``read`` while the run is active; the run id."""
    reading = f"open({str(read)!r}).read()" if read is not None else "pass"
    code = f"""
        import artfs
        run = artfs.init(project={project!r}, home={str(home)!r})
        {reading}
        run.finish()
        print(run.id)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        start_new_session=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def two_mounts(tmp_path: Path, start_mount: StartMount) -> tuple[Mount, Mount]:
    first = start_mount(make_home(tmp_path / "one"))
    second = start_mount(make_home(tmp_path / "two"))
    return first, second


def test_each_store_has_its_own_identity_shown_by_its_mount(
    two_mounts: tuple[Mount, Mount],
) -> None:
    first, _ = two_mounts
    ids = [store_id(m.home) for m in two_mounts]
    assert ids[0] != ids[1] and all(len(i) == 32 for i in ids)
    assert store_id(first.home) == ids[0]  # kept: the same on every open
    for mount, expected in zip(two_mounts, ids, strict=True):
        shown = mount.path / ".artfs-store"
        assert shown.read_text() == expected + "\n"
        with pytest.raises(OSError) as caught:
            shown.write_text("0" * 32 + "\n")
        assert caught.value.errno in (errno.EACCES, errno.EROFS)
        assert ".artfs-store" not in os.listdir(mount.path)


def test_a_run_registers_only_with_the_mount_of_its_own_store(
    two_mounts: tuple[Mount, Mount],
) -> None:
    first, second = two_mounts
    before = runs(first.home)
    run_id = start_run(second.home, "p2", read=first.path / "proj/data/v0/part0.txt")
    assert [r["id"] for r in runs(second.home)] == [run_id]
    # The read through store 1's mount is attributed to an implicit run of store 1 (the
    # process did not register there), never to store 2's run.
    eventually(lambda: len(runs(first.home)) > len(before), within=RECORDED_WITHIN)
    found = runs(first.home)
    assert run_id not in [r["id"] for r in found]
    assert {r["project"] for r in found} == {"proj"}
    assert {r["job_type"] for r in found} == {"implicit"}
    assert not (first.path / "default").exists()
    assert "default" not in os.listdir(first.path)
    with Store.open(first.home) as store:
        assert store.projects() == ["proj"]


def test_a_run_of_its_own_store_is_registered(two_mounts: tuple[Mount, Mount]) -> None:
    first, _ = two_mounts
    run_id = start_run(first.home, "proj", read=first.path / "proj/data/v0/part0.txt")

    def consumed() -> bool:
        with Store.open(first.home) as store:
            lineage = Lineage(store)
            return [r.id for r, _ in lineage.consumers(lineage.version("proj/data:v0"))] == [run_id]

    eventually(consumed, within=RECORDED_WITHIN)


def test_the_daemon_refuses_a_run_its_store_does_not_hold(
    two_mounts: tuple[Mount, Mount],
) -> None:
    first, second = two_mounts
    with Store.open(second.home) as store:
        foreign = Lineage(store).create_run("p2", "train").id
    with pytest.raises(OSError) as caught:
        (first.path / ".artfs-register").write_text(foreign + "\n")
    assert caught.value.errno == errno.ENOENT
    with pytest.raises(OSError) as caught:
        (first.path / ".artfs-register").write_text(json.dumps({"run_id": foreign}))
    assert caught.value.errno == errno.ENOENT
    time.sleep(1.5)  # run records are written every 0.5 s: one would be there by now
    assert runs(first.home) == []
    with Store.open(first.home) as store:
        assert store.projects() == ["proj"]
    assert not (first.path / "default").exists()


def test_the_sdk_writes_nothing_into_a_mount_of_another_store(
    two_mounts: tuple[Mount, Mount],
) -> None:
    """A run id both stores hold (so the daemon would accept it): the SDK registers it only
    where ``MNT/.artfs-store`` names the store it is told."""
    first, second = two_mounts
    with Store.open(first.home) as store:
        both = Lineage(store).create_run("proj", "train").id
    with Store.open(second.home) as store:
        Lineage(store).create_run("p2", "train", run_id=both)

    def register_then_read(home: Path) -> None:
        code = f"""
            from artfs.sdk.run import _register_with_mounts
            _register_with_mounts({both!r}, {store_id(home)!r})
            open({str(first.path / "proj/data/v0/part0.txt")!r}).read()
        """
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            start_new_session=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr

    def consumers() -> list[tuple[str, str]]:
        with Store.open(first.home) as store:
            lineage = Lineage(store)
            version = lineage.version("proj/data:v0")
            return sorted((r.id, r.job_type) for r, _ in lineage.consumers(version))

    register_then_read(second.home)
    eventually(lambda: len(consumers()) == 1, within=RECORDED_WITHIN)
    assert [job for _, job in consumers()] == ["implicit"]
    register_then_read(first.home)
    eventually(lambda: len(consumers()) == 2, within=RECORDED_WITHIN)
    assert (both, "train") in consumers()
