"""Shared fixtures: a fresh store, small generated trees, and the real ``artfs`` console script.

Also ``start_mount`` and the report hook it reads, shared by tests/mount/ and tests/reliability/,
and ``serve_ui``, shared by tests/ui/ and tests/remote/.
Fixtures and hooks only belong in conftest.py files; helpers that test modules import live in
plain modules imported by their full name (``tests.helpers``, ``tests.mount.mountutil``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from artfs.store import Store
from artfs.stores import open_store
from tests.helpers import CliResult, make_tree, run_cli, store_state
from tests.mount.mountutil import Mounts, StartMount
from tests.ui.uiutil import Served, start_ui, stop_ui


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Where the store of this test lives (not created: Store.open and the CLI create it)."""
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    """A fresh store, opened in this process. Do not mix with CLI calls on the same home
    while it is open only when the test means to (LMDB allows one environment per process)."""
    with open_store(home) as opened:
        yield opened


@pytest.fixture(name="make_tree")
def make_tree_fixture() -> Any:
    return make_tree


@pytest.fixture(name="artfs_cli", scope="session")
def artfs_cli_fixture() -> Any:
    """The unbound ``run_cli(*args, home=..., input=None, check=False)``, for wider scopes."""
    return run_cli


@pytest.fixture(name="run_cli")
def run_cli_fixture(home: Path) -> Any:
    """``run_cli(*args, home=HOME, input=None, check=False)``; home defaults to this test's."""

    def bound(*args: str | os.PathLike[str], **kwargs: Any) -> CliResult:
        kwargs.setdefault("home", home)
        return run_cli(*args, **kwargs)

    return bound


@pytest.fixture(name="store_state_of", scope="session")
def store_state_of_fixture() -> Any:
    """The unbound :func:`tests.helpers.store_state` (takes the home), for wider scopes."""
    return store_state


@pytest.fixture(name="store_state")
def store_state_fixture(home: Path) -> Any:
    """``store_state(home_dir=HOME)``: see :func:`tests.helpers.store_state`."""

    def snapshot(home_dir: Path = home) -> dict[str, Any]:
        return store_state(home_dir)

    return snapshot


@pytest.fixture
def start_mount(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StartMount]:
    """``start_mount(home, mountpoint=None, *daemon_args)`` -> a served mount; every
    mount is unmounted and its daemon stopped at the end, its log printed if the test failed."""
    mounts = Mounts(tmp_path)
    yield mounts.start
    report = getattr(request.node, "rep_call", None)
    mounts.close(show_logs=report is not None and report.failed)


@pytest.fixture
def serve_ui() -> Iterator[Any]:
    """``serve_ui(home, *args) -> Served``; every instance is stopped after the test."""
    started: list[Served] = []

    def start(home: Path, *args: str) -> Served:
        served = start_ui(home, *args)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            stop_ui(served)
        for stream in (served.process.stdout, served.process.stderr):
            if stream is not None:
                stream.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With ``ARTFS_REQUIRE_MOUNT=1`` (``./dev test`` sets it when run as root), a test skipped
    for want of FUSE or root fails instead: CI must not pass with the mount layer untested."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]  (read by start_mount)
    if os.environ.get("ARTFS_REQUIRE_MOUNT") != "1" or not report.skipped:
        return
    reason = str(report.longrepr)
    if "/dev/fuse" in reason or "root" in reason:
        report.outcome = "failed"
        report.longrepr = f"skipped, but ARTFS_REQUIRE_MOUNT=1 requires it to run: {reason}"
