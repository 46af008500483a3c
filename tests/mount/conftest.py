"""Mount fixtures of tests/mount/: shared daemons per module, a small store and its mount.

``start_mount`` (tests/conftest.py) polls until the mountpoint is a mount (failing fast, with the
daemon's log, if the process died), and every mount it made is unmounted (``fusermount3 -u``,
lazily as a last resort) and its daemon terminated, then killed, whatever the test did. On
failure the daemon's log is printed into the test report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mount.mountutil import Mount, Mounts, StartMount, put, sample_tree


@pytest.fixture(scope="module")
def module_mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    """Mounts shared by a module's read-only tests (one daemon start for many tests)."""
    mounts = Mounts(tmp_path_factory.mktemp("mounts"))
    yield mounts
    mounts.close(show_logs=False)


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
