"""Soak: mixed reads, staging commits and gc through one daemon, its RSS sampled.

Readers re-read files of every version (through the mount, checked byte for byte), a writer
commits a fresh tree into staging through the control file every round, and every few
rounds the oldest version is deleted and ``artfs gc`` runs. The daemon's VmRSS
(/proc/PID/status) is sampled every second; after a warm-up it must stay flat (end <= start +
margin). About 20 s in the quick run, 4 minutes in ``./dev stress``. Figures are printed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

from artfs.names import ArtifactName
from artfs.store import Store
from artfs.store.verify import verify
from tests.helpers import ARTFS, make_tree, random_bytes
from tests.mount.mountutil import StartMount, put

pytestmark = pytest.mark.mount

CLI_ENV = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
CACHE_MB = 32
# Allowed growth after warm-up: allocator noise, not a leak (a leak of one chunk per round
# would add over 100 MiB in the stress run).
MARGIN_KIB = 24 << 10


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _reader(art: Path, stop: threading.Event, tally: dict[str, int]) -> None:
    rng = random.Random(threading.get_ident())
    while not stop.is_set():
        names = [n for n in os.listdir(art) if n[0] == "v" and n[1:].isdigit()]
        version = art / rng.choice(names)
        try:
            tag = (version / "tag.txt").read_text()
            body = (version / "body.bin").read_bytes()
        except FileNotFoundError:
            continue  # deleted between the listing and the read
        tally["reads"] += 1
        tally["wrong"] += body != random_bytes(len(body), int(tag))


def _soak(tmp_path: Path, start_mount: StartMount, seconds: float) -> dict[str, int]:
    home = tmp_path / "home"
    put(
        home,
        make_tree(tmp_path / "src", {"tag.txt": "0", "body.bin": random_bytes(3 << 20, 0)}),
        "proj/soak",
    )
    mnt = start_mount(home, None, "--cache-mb", str(CACHE_MB))
    art = mnt.path / "proj" / "soak"
    stop = threading.Event()
    tally = {"reads": 0, "wrong": 0, "commits": 0, "gc_runs": 0, "deleted": 0}
    readers = [threading.Thread(target=_reader, args=(art, stop, tally)) for _ in range(2)]
    for thread in readers:
        thread.start()
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    try:
        round_ = 0
        while time.monotonic() - started < seconds:
            round_ += 1
            (art / "staging" / "tag.txt").write_text(str(round_))
            (art / "staging" / "body.bin").write_bytes(
                random_bytes((2 << 20) + round_ * 4096, round_)
            )
            (art / "staging" / ".artfs-commit").write_text("{}")
            assert "ref" in json.loads((art / "staging" / ".artfs-commit").read_text())
            tally["commits"] += 1
            if round_ % 5 == 0:
                oldest = sorted(
                    int(n[1:]) for n in os.listdir(art) if n[0] == "v" and n[1:].isdigit()
                )[0]
                for args in (["rm", f"proj/soak:v{oldest}"], ["gc"]):
                    done = subprocess.run(
                        [str(ARTFS), "--home", str(home), "-q", *args],
                        capture_output=True,
                        env=CLI_ENV,
                    )
                    assert done.returncode == 0, done.stderr
                tally["deleted"] += 1
                tally["gc_runs"] += 1
            if not samples or time.monotonic() - samples[-1][0] >= 1:
                samples.append((time.monotonic(), rss_kib(mnt.proc.pid)))
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=60)
    samples.append((time.monotonic(), rss_kib(mnt.proc.pid)))
    assert tally["wrong"] == 0 and tally["reads"] > 0, tally
    # Warm-up: the chunk cache fills to its budget in the first quarter.
    warm = [rss for at, rss in samples if at - started >= seconds / 4]
    start_kib, end_kib, peak_kib = warm[0], samples[-1][1], max(warm)
    figures = {
        **tally,
        "rss_start_kib": start_kib,
        "rss_end_kib": end_kib,
        "rss_peak_kib": peak_kib,
    }
    figures["seconds"] = round(time.monotonic() - started)
    print(f"\nsoak: {figures}")
    assert end_kib <= start_kib + MARGIN_KIB, figures
    with Store.open(home) as store:
        assert verify(store, store.versions(ArtifactName("proj", "soak"))) == []
    return figures


@pytest.mark.slow  # a soak is a stress loop: run by ./dev test and CI, not the quick tier
def test_soak_20_seconds(tmp_path: Path, start_mount: StartMount) -> None:
    _soak(tmp_path, start_mount, 20)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_soak_4_minutes(tmp_path: Path, start_mount: StartMount) -> None:
    _soak(tmp_path, start_mount, 240)
