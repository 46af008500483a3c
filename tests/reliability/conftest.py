"""Fixtures for the reliability tests that need a real mount.

They reuse the mount helpers of tests/mount/ (daemon in the foreground, polled until it
answers, always unmounted and killed) and add a small tmpfs for disk-full cases.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.mount.mountutil import Mount, Mounts

StartMount = Callable[..., Mount]


@pytest.fixture
def start_mount(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StartMount]:
    """``start_mount(home, mountpoint=None, *daemon_args)`` -> a served :class:`Mount`; every
    mount is unmounted and its daemon stopped at the end, the logs printed on failure."""
    mounts = Mounts(tmp_path)
    yield mounts.start
    report = getattr(request.node, "rep_call", None)
    mounts.close(show_logs=report is not None and report.failed)


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
