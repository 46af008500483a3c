"""Damaged bytes in the index and in packs: clear errors, never wrong bytes, never a crash.

Each case flips one byte of a copy of a small store, then runs what a user would: ``artfs ls``,
``artfs get`` and ``artfs verify``. Every command must either succeed with exactly the right
bytes or fail with one ``artfs: error:`` line (no traceback, no signal); ``verify`` must name
the damage whenever ``get`` could not deliver.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ARTFS, make_tree, random_bytes, read_tree, text_bytes

SPEC = {
    "train.csv": text_bytes(600_000, 1),
    "weights.bin": random_bytes(700_000, 2),
    **{f"labels/{i}.json": f'{{"id": {i}, "class": {i % 7}}}' for i in range(40)},
}


def _cli(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
    return subprocess.run(
        [str(ARTFS), "--home", str(home), "-q", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _clean_failure(result: subprocess.CompletedProcess[str]) -> bool:
    """A non-zero exit that a user can read: no traceback, not killed by a signal."""
    return (
        result.returncode > 0
        and "Traceback" not in result.stderr
        and "artfs: error:" in result.stderr
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("pristine")
    src = make_tree(base / "src", SPEC)
    home = base / "home"
    assert _cli(home, "put", src, "proj/data").returncode == 0
    return src, home


def _check_case(tmp_path: Path, src: Path, pristine_home: Path, target: str, offset: int) -> str:
    home = tmp_path / f"home-{target.replace('/', '_')}-{offset}"
    shutil.copytree(pristine_home, home)
    damaged = home / target
    data = bytearray(damaged.read_bytes())
    data[offset] ^= 0xFF
    damaged.write_bytes(bytes(data))

    listing = _cli(home, "ls", "proj/data", "--json")
    assert listing.returncode == 0 or _clean_failure(listing), listing
    out = tmp_path / f"out-{offset}"
    got = _cli(home, "get", "proj/data", out)
    assert got.returncode == 0 or _clean_failure(got), got
    if got.returncode == 0:
        assert read_tree(out) == read_tree(src), "get returned wrong bytes"
    checked = _cli(home, "verify")
    assert checked.returncode == 0 or _clean_failure(checked), checked
    if got.returncode != 0 and listing.returncode == 0:
        assert checked.returncode != 0, "get failed but verify found nothing"
    return "harmless" if got.returncode == 0 else "refused"


def _offsets(size: int, count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return sorted(rng.randrange(size) for _ in range(count))


@pytest.mark.parametrize("target", ["index/data.mdb", "packs"])
def test_a_flipped_byte_never_gives_wrong_bytes_or_a_crash(
    tmp_path: Path, pristine: tuple[Path, Path], target: str
) -> None:
    src, home = pristine
    if target == "packs":
        (pack,) = (home / "packs").iterdir()
        target = f"packs/{pack.name}"
    size = (home / target).stat().st_size
    outcomes = [
        # Four flips per file in the quick tier (each is several CLI runs); the slow test below
        # makes hundreds.
        _check_case(tmp_path, src, home, target, off)
        for off in _offsets(size, 4, seed=size)
    ]
    print(f"\n{target}: {outcomes.count('refused')} refused, {outcomes.count('harmless')} harmless")


@pytest.mark.slow
@pytest.mark.timeout(900)  # 450 CLI runs: 110 s on a quiet two-core box, 120+ s loaded
@pytest.mark.parametrize("target", ["index/data.mdb", "packs"])
def test_many_flipped_bytes(tmp_path: Path, pristine: tuple[Path, Path], target: str) -> None:
    src, home = pristine
    if target == "packs":
        (pack,) = (home / "packs").iterdir()
        target = f"packs/{pack.name}"
    size = (home / target).stat().st_size
    outcomes = [
        _check_case(tmp_path, src, home, target, off) for off in _offsets(size, 150, seed=7)
    ]
    print(f"\n{target}: {outcomes.count('refused')} refused, {outcomes.count('harmless')} harmless")
