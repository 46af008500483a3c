"""Helpers test modules share: generated trees and bytes, the real ``artfs`` console script,
and a snapshot of a store's state. Import them as ``from tests.helpers import ...``; the
fixtures that wrap them are in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

ARTFS = Path(sys.executable).parent / "artfs"

# A tree spec maps a relative path to file content (bytes or str), or to None for an empty
# directory. Parent directories are created as needed.
TreeSpec = Mapping[str, bytes | str | None]


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Incompressible, reproducible bytes (fast: one call into the RNG)."""
    return random.Random(seed).randbytes(size)


def text_bytes(size: int, seed: int = 0) -> bytes:
    """Compressible CSV-like text of exactly ``size`` bytes."""
    rng = random.Random(seed)
    lines = []
    total = 0
    while total < size:
        line = f"{rng.randrange(10**6)},{rng.random():.6f},label_{rng.randrange(10)}\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def make_tree(root: Path, spec: TreeSpec) -> Path:
    """Create ``spec`` under ``root`` (created too) and return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in spec.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def read_tree(root: Path) -> dict[str, bytes | None]:
    """The inverse of make_tree: every file's bytes and every directory (as None)."""
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        found[rel] = None if path.is_dir() else path.read_bytes()
    return found


def pack_listing(home: Path) -> dict[str, int]:
    """Pack file names and sizes: what a failed command must leave exactly as it was."""
    packs = home / "packs"
    if not packs.exists():
        return {}
    return {p.name: p.stat().st_size for p in sorted(packs.iterdir())}


def packs_bytes(home: Path) -> int:
    return sum(pack_listing(home).values())


def store_state(home: Path) -> dict[str, Any]:
    """Pack files with sizes, the index file's hash and ``artfs ls --json`` at every level: what
    a command that fails must leave exactly as it was."""
    listing: dict[str, Any] = {}
    projects = run_cli_here("ls", "--json", home=home, check=True).json()
    listing[""] = projects
    for project in projects:
        artifacts = run_cli_here("ls", project, "--json", home=home, check=True).json()
        listing[project] = artifacts
        for artifact in artifacts:
            name = f"{project}/{artifact['name']}"
            listing[name] = run_cli_here("ls", name, "--json", home=home, check=True).json()
    index = home / "index" / "data.mdb"
    return {
        "packs": pack_listing(home),
        "ls": listing,
        "index": hashlib.sha256(index.read_bytes()).hexdigest() if index.exists() else None,
    }


def run_cli_here(
    *args: str | os.PathLike[str],
    home: Path,
    input: str | None = None,
    check: bool = False,
) -> CliResult:
    """:func:`run_cli` in this process: ``artfs.cli.main`` with stdin, stdout and stderr
    swapped for strings and the ``ARTFS_*`` environment hidden, as the console script would
    see it, without a Python start (~0.4 s of CPU each). For tests of what a command prints,
    exits with and changes; tests/cli/test_cli_commands.py runs every command through the
    console script itself. Not thread-safe: threads and processes use :func:`run_cli`.
    """
    from artfs.cli import main

    argv = ["--home", str(home), *map(str, args)]
    hidden = {k: os.environ.pop(k) for k in [k for k in os.environ if k.startswith("ARTFS_")]}
    out, err = io.StringIO(), io.StringIO()
    try:
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            _stdin(io.StringIO(input or "")),
        ):
            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.update(hidden)
    proc = subprocess.CompletedProcess(["artfs", *argv], code, out.getvalue(), err.getvalue())
    result = CliResult(proc)
    if check and result.returncode != 0:
        pytest.fail(f"artfs {' '.join(map(str, args))} failed: {result!r}")
    return result


@contextlib.contextmanager
def _stdin(stream: io.StringIO) -> Iterator[None]:
    saved, sys.stdin = sys.stdin, stream
    try:
        yield
    finally:
        sys.stdin = saved


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def __iter__(self) -> Iterator[Any]:
        return iter((self.returncode, self.stdout, self.stderr))

    @property
    def last_line(self) -> str:
        return self.stdout.strip().splitlines()[-1]

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"CliResult(rc={self.returncode}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def run_cli(
    *args: str | os.PathLike[str],
    home: Path,
    input: str | None = None,
    check: bool = False,
    timeout: float = 60,
) -> CliResult:
    """Run the installed ``artfs`` console script against store ``home``.

    Returns a CliResult that unpacks as (returncode, stdout, stderr); ``check=True`` fails the
    test with both streams when the command exits non-zero.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
    proc = subprocess.run(
        [str(ARTFS), "--home", str(home), *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    result = CliResult(proc)
    if check and result.returncode != 0:
        pytest.fail(f"artfs {' '.join(map(str, args))} failed: {result!r}")
    return result
