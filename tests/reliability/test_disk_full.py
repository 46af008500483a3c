"""A store on a full disk: the commit fails with a clear "no space" error, leaves no partial
version, and the store works again once there is room.

The store lives on a 24 MiB tmpfs mounted by the test (root only, like the rest of the suite).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ARTFS, make_tree, random_bytes, read_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _cli(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
    return subprocess.run(
        [str(ARTFS), "--home", str(home), "-q", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_commit_on_a_full_disk_fails_cleanly_and_the_store_recovers(
    tmp_path: Path, small_disk: Path
) -> None:
    home = small_disk / "home"
    first = make_tree(tmp_path / "first", {"a.bin": random_bytes(2 << 20, 1)})
    assert _cli(home, "put", first, "proj/data").returncode == 0

    huge = make_tree(tmp_path / "huge", {f"{i}.bin": random_bytes(8 << 20, i) for i in range(4)})
    failed = _cli(home, "put", huge, "proj/data")
    assert failed.returncode != 0
    assert "no space" in failed.stderr.lower() and "Traceback" not in failed.stderr
    assert failed.stderr.count("\n") == 1, failed.stderr

    versions = _cli(home, "ls", "proj/data", "--json")
    assert [v["version"] for v in json.loads(versions.stdout)] == ["v0"]
    assert _cli(home, "verify").returncode == 0
    # The failed commit removed what it wrote, so a commit that fits now lands.
    second = make_tree(tmp_path / "second", {"b.bin": random_bytes(4 << 20, 9)})
    done = _cli(home, "put", second, "proj/data")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "proj/data:v1"
    out = tmp_path / "out"
    assert _cli(home, "get", "proj/data:v1", out).returncode == 0
    assert read_tree(out) == read_tree(second)
