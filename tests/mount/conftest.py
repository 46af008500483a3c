"""Mount fixtures: a daemon in the foreground as a subprocess, always unmounted and killed.

``start_mount`` polls until the mountpoint is a mount (failing fast, with the daemon's log, if
the process died), and every mount it made is unmounted (``fusermount3 -u``, lazily as a last
resort) and its daemon terminated, then killed, whatever the test did. On failure the daemon's
log is printed into the test report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mountutil import Mount, Mounts, put, sample_tree

StartMount = Callable[..., Mount]


@pytest.fixture
def start_mount(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StartMount]:
    """``start_mount(home, mountpoint=None, *daemon_args)`` -> a served :class:`Mount`."""
    mounts = Mounts(tmp_path)
    yield mounts.start
    report = getattr(request.node, "rep_call", None)
    mounts.close(show_logs=report is not None and report.failed)


@pytest.fixture(scope="module")
def module_mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    """Mounts shared by a module's read-only tests (one daemon start for many tests)."""
    mounts = Mounts(tmp_path_factory.mktemp("mounts"))
    yield mounts
    mounts.close(show_logs=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A store with proj/data v0 holding a.txt (modules with other needs override it)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"version zero\n")
    put(tmp_path / "home", src, "proj/data")
    return tmp_path / "home"


@pytest.fixture
def mnt(home: Path, start_mount: StartMount) -> Mount:
    """``home`` mounted."""
    return start_mount(home)


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A store with proj/mnist v0 (the sample tree, alias best) and v1 (one file changed)."""
    base = tmp_path_factory.mktemp("sample")
    home, src = base / "home", base / "src"
    files = sample_tree(src)
    put(home, src, "proj/mnist", aliases=["best"], description="the sample")
    (src / "README.md").write_bytes(b"# sample v1\n")
    put(home, src, "proj/mnist")
    return home, files
