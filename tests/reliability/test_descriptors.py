"""The daemon and descriptors: many small packs under a low limit, deleted packs let go.

A store of many one-commit artifacts has one pack per commit until gc merges them; the daemon
used to keep a descriptor per pack it ever read (EMFILE under a low limit) and kept packs gc
deleted open for as long as it ran, so their space was not freed while mounted.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

import pytest

from artfs.names import ArtifactName
from artfs.store import Store
from tests.helpers import ARTFS
from tests.mount.mountutil import StartMount

pytestmark = pytest.mark.mount

CLI_ENV = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
ARTIFACTS = 260


def open_files_limit(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no Max open files line")


def deleted_packs_held(pid: int, packs: Path) -> int:
    held = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        held += target.startswith(str(packs)) and target.endswith(" (deleted)")
    return held


def test_daemon_reads_many_packs_under_a_low_limit_and_lets_deleted_ones_go(
    tmp_path: Path, start_mount: StartMount
) -> None:
    home = tmp_path / "home"
    with Store.open(home) as store:
        for i in range(ARTIFACTS):
            src = tmp_path / "src" / str(i)
            src.mkdir(parents=True)
            (src / "f.txt").write_text(f"artifact {i}\n")
            store.put(src, ArtifactName("p", f"a{i}"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))  # the daemon inherits it
    try:
        mnt = start_mount(home)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert open_files_limit(mnt.proc.pid) == (hard, hard)  # raised at start
    for _ in range(2):
        for i in range(ARTIFACTS):
            path = mnt.path / "p" / f"a{i}" / "v0" / "f.txt"
            assert path.read_text() == f"artifact {i}\n"
    fds = len(os.listdir(f"/proc/{mnt.proc.pid}/fd"))
    assert fds < 256 + 64, fds  # the cache bound plus LMDB, FUSE, logs
    # gc merges the 260 small packs: the daemon's cached descriptors of them must go.
    done = subprocess.run(
        [str(ARTFS), "--home", str(home), "-q", "gc"], capture_output=True, env=CLI_ENV
    )
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 15
    while deleted_packs_held(mnt.proc.pid, home / "packs") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert deleted_packs_held(mnt.proc.pid, home / "packs") == 0
    assert (mnt.path / "p" / "a7" / "v0" / "f.txt").read_text() == "artifact 7\n"
