"""Several processes on one store: concurrent puts, gc beside puts, and puts killed with SIGKILL.

A commit writes and fsyncs its packs, then adds the version in one index transaction: whatever
instant a put dies at, the store shows the whole version or none of it and stays usable, and gc
reclaims the pack bytes the dead put left behind.
"""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ARTFS = Path(sys.executable).parent / "artfs"


def popen_put(home: Path, src: Path, ref: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(ARTFS), "--home", str(home), "--quiet", "put", str(src), ref, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out.strip().splitlines()[-1]


def packs_bytes(home: Path) -> int:
    packs = home / "packs"
    return sum(p.stat().st_size for p in packs.iterdir()) if packs.exists() else 0


def big_tree(root: Path, seed: int, *, big_files: int = 8, small_files: int = 2000) -> Path:
    """About 40 MB: a few 4 MiB incompressible files and many 4 KiB text files (slow to put:
    per-file work gives a kill a wide window)."""
    rng = random.Random(seed)
    for i in range(big_files):
        path = root / "big" / f"{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(4 << 20))
    for i in range(small_files):
        path = root / "small" / f"{i // 100:02d}" / f"{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((f"{seed},{i},{rng.random()}\n" * 200).encode()[:4096])
    return root


def test_two_concurrent_puts_land_as_distinct_versions(
    tmp_path: Path, run_cli: Any, home: Path, make_tree: Any
) -> None:
    run_cli("put", make_tree(tmp_path / "seed", {"s": "seed"}), "proj/data", check=True)
    for round_ in range(3):
        sources = [
            make_tree(
                tmp_path / f"r{round_}-{k}",
                {"shared.bin": random.Random(round_).randbytes(3 << 20)}
                | {
                    f"own-{k}-{i}.bin": random.Random(100 * k + i + round_).randbytes(1 << 20)
                    for i in range(3)
                },
            )
            for k in range(2)
        ]
        procs = [popen_put(home, src, "proj/data") for src in sources]
        refs = [finish(p) for p in procs]
        assert len(set(refs)) == 2, refs
    versions = run_cli("ls", "proj/data", "--json", check=True).json()
    assert [v["version"] for v in versions] == [f"v{i}" for i in range(7)]
    assert len({v["digest"] for v in versions}) == 7
    assert run_cli("verify", check=True).stdout.startswith("ok: 7 versions")


def test_gc_beside_puts_never_loses_a_committed_chunk(
    tmp_path: Path, run_cli: Any, home: Path, make_tree: Any
) -> None:
    """A put that finds a chunk already stored (by a deleted version) must not lose it to a gc
    running at the same time: gc waits for commits and commits wait for gc."""
    for round_ in range(3):
        reused = random.Random(round_).randbytes(2 << 20)
        old = make_tree(tmp_path / f"old{round_}", {"reused.bin": reused})
        ref = run_cli("put", old, f"proj/r{round_}", check=True).last_line
        run_cli("rm", ref, check=True)
        new = make_tree(
            tmp_path / f"new{round_}",
            {"reused.bin": reused, "fresh.bin": random.Random(50 + round_).randbytes(6 << 20)},
        )
        put = popen_put(home, new, f"proj/r{round_}")
        gc = subprocess.run(
            [str(ARTFS), "--home", str(home), "gc"], capture_output=True, text=True, timeout=60
        )
        assert gc.returncode == 0, gc.stderr
        finish(put)
        assert run_cli("verify", check=True).returncode == 0
        dest = tmp_path / f"dest{round_}"
        run_cli("get", f"proj/r{round_}", dest, check=True)
        assert (dest / "reused.bin").read_bytes() == reused


def kill_put_at(home: Path, src: Path, ref: str, when: str | float) -> tuple[int, int]:
    """Start a put and SIGKILL it: ``"packs"`` once pack bytes exist beyond ``baseline``,
    else after ``when`` seconds. Returns (returncode, pack bytes seen at the kill)."""
    baseline = packs_bytes(home)
    proc = popen_put(home, src, ref)
    deadline = time.monotonic() + 30
    if when == "packs":
        while packs_bytes(home) <= baseline + (1 << 20) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
    else:
        time.sleep(float(when))
    seen = packs_bytes(home)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return proc.returncode, seen


def check_usable_after_kills(
    tmp_path: Path, run_cli: Any, home: Path, src: Path, seed_bytes: int, kills: list[Any]
) -> None:
    results = [kill_put_at(home, src, "proj/data", when) for when in kills]
    killed_mid_way = [r for r in results if r[0] == -signal.SIGKILL and r[1] > seed_bytes]
    assert killed_mid_way, f"no put was killed while writing packs: {results}"
    # Only complete versions are listed: the seed, plus any put that finished before its kill.
    versions = run_cli("ls", "proj/data", "--json", check=True).json()
    finished = sum(1 for code, _ in results if code == 0)
    assert [v["version"] for v in versions] == [f"v{i}" for i in range(len(versions))]
    assert len(versions) == 1 + min(finished, 1)  # identical content lands once
    assert run_cli("verify", check=True).returncode == 0
    before_gc = packs_bytes(home)
    assert before_gc > seed_bytes  # the dead puts left pack bytes behind
    run_cli("gc", check=True)
    after_gc = packs_bytes(home)
    if finished == 0:
        assert after_gc <= seed_bytes
    assert after_gc < before_gc
    # The next put works and everything reads back.
    ref = run_cli("put", src, "proj/data", check=True).last_line
    assert ref.startswith("proj/data:v")
    assert run_cli("verify", check=True).returncode == 0
    dest = tmp_path / "dest"
    run_cli("get", ref, dest, check=True)
    assert (dest / "big" / "3.bin").read_bytes() == (src / "big" / "3.bin").read_bytes()
    assert len(list(dest.rglob("*.txt"))) == len(list(src.rglob("*.txt")))


@pytest.fixture
def seeded(tmp_path: Path, run_cli: Any, home: Path, make_tree: Any) -> int:
    seed = make_tree(tmp_path / "seed", {"keep.bin": random.Random(9).randbytes(1 << 20)})
    run_cli("put", seed, "proj/data", check=True)
    return packs_bytes(home)


def test_put_killed_with_sigkill_leaves_a_usable_store(
    tmp_path: Path, run_cli: Any, home: Path, seeded: int
) -> None:
    src = big_tree(tmp_path / "src", seed=1)
    check_usable_after_kills(tmp_path, run_cli, home, src, seeded, [0, "packs", "packs", 0.05])


@pytest.mark.slow
@pytest.mark.timeout(600)  # 20 puts of a large tree killed, each store checked after
def test_put_killed_at_many_instants(tmp_path: Path, run_cli: Any, home: Path, seeded: int) -> None:
    src = big_tree(tmp_path / "src", seed=2, big_files=20, small_files=6000)
    rng = random.Random(0)
    kills: list[Any] = ["packs"] * 4 + [rng.uniform(0, 1.5) for _ in range(16)]
    check_usable_after_kills(tmp_path, run_cli, home, src, seeded, kills)
