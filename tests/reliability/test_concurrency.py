"""Concurrent commits, readers and gc on one store, with a mount serving it.

Four processes each commit N times to one shared artifact and N times to an artifact of their
own, while threads read every version through the mount (checking each file against the
content its header names) and ``artfs gc`` runs in a loop. Every commit must land exactly once
with a distinct number, every version verifies, and gc never removes a chunk a version
references. The quick run commits 8 times per process, ``./dev stress`` 50 times.

A file opened before its version is deleted keeps reading, through gc (which drops the index
entries and deletes or compacts the packs), until it is closed: the daemon resolved its chunk
locations at open and holds their packs open.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from artfs.names import ArtifactName
from artfs.store import Store
from artfs.store.verify import verify
from tests.helpers import ARTFS, make_tree, random_bytes
from tests.mount.mountutil import StartMount, put

pytestmark = pytest.mark.mount

PROCESSES = 4
CLI_ENV = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}

# One committer: N puts to proj/shared and N to proj/own-I; prints the version numbers it got.
COMMITTER = r"""
import hashlib, json, sys
from pathlib import Path
from artfs.names import ArtifactName
from artfs.store import Store
home, who, commits, work = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
got = {"shared": [], "own": []}
with Store.open(home) as store:
    for j in range(commits):
        for kind, art in (("shared", "proj/shared"), ("own", f"proj/own-{who}")):
            src = work / f"{kind}-{j}"
            src.mkdir(parents=True)
            header = f"{who} {j} {kind}"
            (src / "who.txt").write_text(header)
            body = hashlib.shake_256(header.encode()).digest(200_000)
            (src / "body.bin").write_bytes(body)
            result = store.put(src, ArtifactName.parse(art))
            assert result.created
            got[kind].append(result.record.number)
print(json.dumps(got))
"""


def _body(header: str) -> bytes:
    return hashlib.shake_256(header.encode()).digest(200_000)


def _reader(artifact: Path, stop: threading.Event, found: dict[str, int]) -> None:
    """Reads random versions through the mount; every body must match its header."""
    rng = random.Random(threading.get_ident())
    while not stop.is_set():
        try:
            names = [n for n in os.listdir(artifact) if n.startswith("v")]
        except FileNotFoundError:
            continue  # no version yet
        if not names:
            continue
        version = artifact / rng.choice(names)
        header = (version / "who.txt").read_text()
        if (version / "body.bin").read_bytes() == _body(header):
            found["ok"] += 1
        else:
            found["wrong"] += 1


def _gc_loop(home: Path, stop: threading.Event, found: dict[str, int]) -> None:
    while not stop.is_set():
        done = subprocess.run(
            [str(ARTFS), "--home", str(home), "-q", "gc"], capture_output=True, env=CLI_ENV
        )
        found["gc_runs"] += 1
        found["gc_failed"] += done.returncode != 0


def _concurrent(tmp_path: Path, start_mount: StartMount, commits: int) -> dict[str, int]:
    home = tmp_path / "home"
    put(home, make_tree(tmp_path / "seed", {"seed.txt": "first\n"}), "proj/seed")
    mnt = start_mount(home)
    stop = threading.Event()
    found = {"ok": 0, "wrong": 0, "gc_runs": 0, "gc_failed": 0}
    threads = [
        threading.Thread(target=_reader, args=(mnt.path / "proj" / "shared", stop, found))
        for _ in range(2)
    ]
    threads.append(threading.Thread(target=_gc_loop, args=(home, stop, found)))
    for thread in threads:
        thread.start()
    try:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    COMMITTER,
                    str(home),
                    str(i),
                    str(commits),
                    str(tmp_path / f"w{i}"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=CLI_ENV,
            )
            for i in range(PROCESSES)
        ]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err.decode()
            results.append(json.loads(out))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)

    shared = sorted(n for r in results for n in r["shared"])
    assert shared == list(range(PROCESSES * commits)), "a commit landed twice or not at all"
    for result in results:
        assert result["own"] == list(range(commits))
    assert found["wrong"] == 0 and found["ok"] > 0 and found["gc_failed"] == 0, found
    assert found["gc_runs"] >= 1
    with Store.open(home) as store:
        verified = 0
        for name in ["shared", *(f"own-{i}" for i in range(PROCESSES))]:
            records = store.versions(ArtifactName("proj", name))
            assert verify(store, records) == []
            verified += len(records)
    listed = os.listdir(mnt.path / "proj" / "shared")
    assert {f"v{n}" for n in shared} <= set(listed)
    figures = {"commits": PROCESSES * commits * 2, "versions_verified": verified}
    figures.update({"reads_ok": found["ok"], "gc_runs": found["gc_runs"]})
    print(f"\nconcurrency: {figures}")
    return figures


def test_open_file_on_a_deleted_version_reads_through_gc(
    tmp_path: Path, start_mount: StartMount
) -> None:
    home = tmp_path / "home"
    content = random_bytes(16 << 20, 3)
    put(home, make_tree(tmp_path / "doomed", {"big.bin": content}), "proj/doomed")
    mnt = start_mount(home, None, "--cache-mb", "2")  # little read-ahead: chunks load late
    with open(mnt.path / "proj" / "doomed" / "v0" / "big.bin", "rb", buffering=0) as doomed:
        assert doomed.read(1 << 16) == content[: 1 << 16]
        for args in (["rm", "proj/doomed:v0"], ["gc"]):
            done = subprocess.run(
                [str(ARTFS), "--home", str(home), *args], capture_output=True, env=CLI_ENV
            )
            assert done.returncode == 0, done.stderr
        assert doomed.read() == content[1 << 16 :]


def test_four_committers_readers_and_gc(tmp_path: Path, start_mount: StartMount) -> None:
    _concurrent(tmp_path, start_mount, 8)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_four_committers_readers_and_gc_50_each(tmp_path: Path, start_mount: StartMount) -> None:
    _concurrent(tmp_path, start_mount, 50)
