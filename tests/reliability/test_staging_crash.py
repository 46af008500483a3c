"""Staging commits through the mount killed with SIGKILL at random instants, again and again.

Each round writes a fresh tree into ``MNT/proj/ckpt/staging`` and commits it, then kills the
committing process: ``artfs commit`` (most rounds) or, every fourth round, the daemon itself
while it runs a commit from ``staging/.artfs-commit`` (then the mount is started again).
After every kill: the store opens, every listed version verifies, every version holds exactly
one round's files (no partial or mixed version), staging still takes writes, and the next
commit succeeds. At the end gc reclaims what the killed commits wrote. The quick run kills
20 times, ``./dev stress`` 200 times. Figures are printed (``-s``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from artfs.names import ArtifactName
from artfs.store import Store
from artfs.store.gc import collect
from artfs.store.verify import verify
from tests.helpers import ARTFS, packs_bytes, random_bytes
from tests.mount.mountutil import Mount, StartMount, unmount_and_stop

pytestmark = pytest.mark.mount

ART = ArtifactName("proj", "ckpt")
NAMES = ["weights.bin", *(f"part/sample-{i}.bin" for i in range(12))]
CLI_ENV = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}


def _write_round(staging: Path, round_: int, rng: random.Random) -> None:
    """Every file starts with the round number, so a version mixing rounds is detectable."""
    (staging / "part").mkdir(exist_ok=True)
    tag = round_.to_bytes(8, "big")
    for name in NAMES:
        size = (6 << 20) if name == "weights.bin" else 4096
        with open(staging / name, "wb") as out:
            out.write(tag + random_bytes(size, rng.randrange(1 << 30)))


def _check_store(home: Path) -> int:
    """Every listed version verifies and holds exactly one round's files; their count."""
    with Store.open(home) as store:
        listed = store.versions(ART) if store.artifact(ART) else []
        assert verify(store, listed) == [], "a listed version does not verify"
        for record in listed:
            files = {e.path: e for e in store.files(record)}
            assert sorted(files) == sorted(NAMES), f"{record.ref} is partial: {sorted(files)}"
            rounds = {next(store.iter_file(e))[:8] for e in files.values()}
            assert len(rounds) == 1, f"{record.ref} mixes rounds {rounds}"
        return len(listed)


def _control_commit(mnt: Mount) -> subprocess.Popen[bytes]:
    control = mnt.path / "proj" / "ckpt" / "staging" / ".artfs-commit"
    code = f"f = open({str(control)!r}, 'w'); f.write('{{}}'); f.close()"
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)


def _kill_loop(home: Path, start_mount: StartMount, kills: int) -> dict[str, int]:
    rng = random.Random(kills)
    mnt = start_mount(home)
    (mnt.path / "proj").mkdir()
    (mnt.path / "proj" / "ckpt").mkdir()
    figures = {"kills": 0, "daemon_kills": 0, "completed": 0, "killed_mid_write": 0}
    figures["killed_after_1mib"] = 0
    figures["versions_verified"] = 0
    for round_ in range(kills):
        staging = mnt.path / "proj" / "ckpt" / "staging"
        _write_round(staging, round_, rng)  # staging still takes writes after every kill
        before = packs_bytes(home)
        through_daemon = round_ % 4 == 3
        if through_daemon:
            proc = _control_commit(mnt)
            victim = mnt.proc
        else:
            proc = subprocess.Popen(
                [str(ARTFS), "--home", str(home), "-q", "commit", str(ART)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=CLI_ENV,
            )
            victim = proc
        if round_ % 2:
            time.sleep(rng.uniform(0.0, 0.5))  # anywhere, start-up included
        else:
            # Surely mid-write: just after the pack's header, or after some MiB of chunks.
            wanted = before + rng.choice([0, 1 << 20, 3 << 20])
            deadline = time.monotonic() + 10
            while packs_bytes(home) <= wanted and proc.poll() is None:
                assert time.monotonic() < deadline, "the commit wrote nothing in 10 s"
                time.sleep(0.002)
        victim.send_signal(signal.SIGKILL)
        status = victim.wait(timeout=30)
        proc.wait(timeout=30)
        figures["kills"] += status == -signal.SIGKILL
        figures["daemon_kills"] += through_daemon and status == -signal.SIGKILL
        figures["completed"] += proc.returncode == 0 and not through_daemon
        written = packs_bytes(home) - before
        figures["killed_mid_write"] += status == -signal.SIGKILL and written > 0
        figures["killed_after_1mib"] += status == -signal.SIGKILL and written > 1 << 20
        if through_daemon:
            unmount_and_stop(mnt)
            mnt = start_mount(home, mnt.path)
        figures["versions_verified"] += _check_store(home)
    # The next commit succeeds, through the control file and through the CLI.
    staging = mnt.path / "proj" / "ckpt" / "staging"
    _write_round(staging, kills, rng)
    control = staging / ".artfs-commit"
    control.write_text("{}")
    assert '"ref"' in control.read_text(), control.read_text()
    _write_round(staging, kills + 1, rng)
    done = subprocess.run(
        [str(ARTFS), "--home", str(home), "commit", str(ART)], capture_output=True, env=CLI_ENV
    )
    assert done.returncode == 0, done.stderr
    assert _check_store(home) >= 2
    with Store.open(home) as store:
        before = packs_bytes(home)
        collect(store)
        figures["orphan_bytes_reclaimed"] = before - packs_bytes(home)
        figures["versions_after"] = len(store.versions(ART))
        assert verify(store, store.versions(ART)) == []
    print(f"\nstaging commit crash loop: {figures}")
    return figures


@pytest.mark.slow  # 41 s on a loaded two-core box: a stress loop, run by ./dev test and CI
@pytest.mark.timeout(600)
def test_staging_commit_killed_20_times(tmp_path: Path, start_mount: StartMount) -> None:
    figures = _kill_loop(tmp_path / "home", start_mount, 20)
    assert figures["kills"] >= 15 and figures["killed_mid_write"] >= 5, figures
    assert figures["killed_after_1mib"] >= 3, figures
    assert figures["orphan_bytes_reclaimed"] > 1 << 20, figures


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_staging_commit_killed_200_times(tmp_path: Path, start_mount: StartMount) -> None:
    figures = _kill_loop(tmp_path / "home", start_mount, 200)
    assert figures["kills"] >= 150 and figures["killed_mid_write"] >= 50, figures
    assert figures["killed_after_1mib"] >= 30, figures
    assert figures["orphan_bytes_reclaimed"] > 30 << 20, figures
