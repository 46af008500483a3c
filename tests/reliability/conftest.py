"""Fixtures for the reliability tests: a small tmpfs for disk-full cases.

Mounts come from ``start_mount`` in tests/conftest.py (shared with tests/mount/).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``small_tmpfs("24m")`` -> a fresh tmpfs of that size, unmounted (lazily) at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    made: list[Path] = []

    def mount(size: str) -> Path:
        path = tmp_path / f"tmpfs{len(made)}"
        path.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True
        )
        made.append(path)
        return path

    yield mount
    for path in reversed(made):
        subprocess.run(["umount", "-l", str(path)], check=False)
