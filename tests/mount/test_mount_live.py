"""A mount over a changing store, big directories, signals, a killed daemon, the CLI."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from artfs import procinfo
from artfs.lineage import Lineage
from artfs.names import ArtifactName, Ref
from artfs.store import Store
from artfs.store.ingest import SourceFile, SourceTree
from artfs.store.manifest import FileEntry, Kind
from tests.mount.mountutil import (
    ARTFS,
    MTIME_NS,
    StartMount,
    eventually,
    is_mount,
    put,
    sample_tree,
    stop_process,
)

pytestmark = pytest.mark.mount

Sample = tuple[Path, dict[str, bytes]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a" * 300_000)
    (src / "sub" / "b.txt").write_bytes(b"b")
    put(tmp_path / "home", src, "proj/live")
    return tmp_path / "home"


def test_new_version_and_moved_alias_show_within_two_seconds(
    home: Path, start_mount: StartMount, tmp_path: Path
) -> None:
    mnt = start_mount(home)
    art = mnt.path / "proj" / "live"
    assert sorted(os.listdir(art)) == ["latest", "staging", "v0"]
    assert os.readlink(art / "latest") == "v0"
    src = tmp_path / "next"
    src.mkdir()
    (src / "c.txt").write_bytes(b"new")
    put(home, src, "proj/live", aliases=["best"])
    eventually(lambda: "v1" in os.listdir(art), within=2.0)
    eventually(lambda: os.readlink(art / "latest") == "v1", within=2.0)
    assert (art / "latest" / "c.txt").read_bytes() == b"new"
    assert os.readlink(art / "best") == "v1"
    put(home, tmp_path / "src", "proj/other")
    eventually(lambda: "other" in os.listdir(mnt.path / "proj"), within=2.0)
    with Store.open(home) as store:
        store.set_alias(Ref(ArtifactName("proj", "live"), "v0"), "best")
    eventually(lambda: os.readlink(art / "best") == "v0", within=2.0)


def test_deleted_version_disappears_but_open_files_keep_reading(
    home: Path, start_mount: StartMount, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    put(home, src / "sub", "proj/live")  # v1, so deleting v0 leaves the artifact
    mnt = start_mount(home)
    art = mnt.path / "proj" / "live"
    path = art / "v0" / "a.txt"
    with open(path, "rb") as held:
        assert held.read(10) == b"a" * 10
        with Store.open(home) as store:
            store.delete_version(Ref(ArtifactName("proj", "live"), "v0"))
        eventually(lambda: "v0" not in os.listdir(art), within=2.0)
        eventually(lambda: not os.path.exists(path), within=2.0)
        assert held.read() == b"a" * (300_000 - 10)
    with pytest.raises(FileNotFoundError):
        os.stat(art / "v0")


@pytest.mark.slow  # 50 s on a loaded two-core box (100,000 files stored first)
@pytest.mark.timeout(600)
def test_directory_of_100k_entries_lists_in_about_a_second(
    tmp_path: Path, start_mount: StartMount
) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    count = 100_000
    tree = SourceTree(
        files=[SourceFile(f"many/f{i:06d}", empty, 0, 0o644, MTIME_NS) for i in range(count)],
        dirs=[FileEntry("many", Kind.DIR, 0o755, 0, MTIME_NS)],
    )
    with Store.open(tmp_path / "home") as store:
        store.commit(tree, ArtifactName("proj", "wide"))
    mnt = start_mount(tmp_path / "home")
    wide = mnt.path / "proj" / "wide" / "v0" / "many"
    start = time.monotonic()
    names = os.listdir(wide)
    elapsed = time.monotonic() - start
    assert len(names) == count and len(set(names)) == count
    assert sorted(names)[:2] == ["f000000", "f000001"]
    entries = list(os.scandir(wide))
    assert len(entries) == count and all(e.is_file() for e in entries[:100])
    print(f"100k listing: {elapsed:.2f} s")


def test_sigterm_and_sigint_unmount_cleanly(home: Path, start_mount: StartMount) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        mnt = start_mount(home)
        mnt.proc.send_signal(signum)
        assert mnt.proc.wait(timeout=10) == 0, mnt.log_text()
        assert not is_mount(mnt.path)


def test_sigkill_then_remount_recovers_the_stale_mount(home: Path, start_mount: StartMount) -> None:
    mnt = start_mount(home)
    held = os.open(mnt.path / "proj" / "live" / "v0" / "a.txt", os.O_RDONLY)
    assert os.read(held, 1) == b"a"
    mnt.proc.kill()
    mnt.proc.wait(timeout=10)
    with pytest.raises(OSError) as caught:
        os.close(held)  # the flush finds no daemon
    assert caught.value.errno == errno.ENOTCONN
    with pytest.raises(OSError) as caught:
        os.listdir(mnt.path)
    assert caught.value.errno == errno.ENOTCONN
    again = start_mount(home, mnt.path)
    assert (again.path / "proj" / "live" / "v0" / "a.txt").read_bytes() == b"a" * 300_000


def _cli(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ARTFS), "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_cli_mount_returns_when_ready_and_umount_stops_the_daemon(
    home: Path, tmp_path: Path
) -> None:
    mnt = tmp_path / "cli-mnt"
    mnt.mkdir()
    try:
        done = _cli(home, "mount", str(mnt))
        assert done.returncode == 0, done
        assert (mnt / "proj" / "live" / "v0" / "sub" / "b.txt").read_bytes() == b"b"
        again = _cli(home, "mount", str(mnt))
        assert again.returncode != 0 and "already an artfs mount" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
        pids = _daemon_pids(mnt)
        assert len(pids) == 1
        (daemon,) = procinfo.daemon_pidfds(str(mnt))  # as umount finds it
        try:
            assert _pid_of(daemon) == pids[0]
            assert (mnt / "proj" / "live" / "v0" / "a.txt").read_bytes() == b"a" * 300_000
            done = _cli(home, "umount", str(mnt))  # at once: the read's usage not written yet
            assert done.returncode == 0, done
            assert not is_mount(mnt)
            assert procinfo.wait_exited([daemon], 0)  # umount returned once the daemon exited
        finally:
            os.close(daemon)
        with Store.open(home) as store:  # so both reads are in the lineage already
            lineage = Lineage(store)
            assert [u.files for _, u in lineage.consumers(lineage.version("proj/live:v0"))] == [2]
    finally:
        if is_mount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)
        for pid in _daemon_pids(mnt):
            os.kill(pid, signal.SIGKILL)


def test_cli_mount_daemon_never_imports_a_package_of_the_callers_directory(
    home: Path, tmp_path: Path
) -> None:
    """A package named artfs in the directory ``artfs mount`` runs in (a checkout, a project's
    own module) is not what the daemon imports, in the background or the foreground
    (``python -P``: ``-m`` alone would put that directory first)."""
    work = tmp_path / "work"
    (work / "artfs").mkdir(parents=True)
    (work / "artfs" / "__init__.py").write_text("raise ImportError('the wrong artfs')\n")
    background, foreground = tmp_path / "bg", tmp_path / "fg"
    background.mkdir()
    foreground.mkdir()
    proc = None
    try:
        done = _cli(home, "mount", str(background), cwd=work)
        assert done.returncode == 0, done
        (pid,) = _daemon_pids(background)
        assert os.readlink(f"/proc/{pid}/cwd") == str(work)  # the caller's, as before
        assert (background / "proj" / "live" / "v0" / "sub" / "b.txt").read_bytes() == b"b"
        proc = subprocess.Popen(
            [str(ARTFS), "--home", str(home), "mount", "--foreground", str(foreground)],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        eventually(lambda: is_mount(foreground), within=10.0)
        assert (foreground / "proj" / "live" / "v0" / "sub" / "b.txt").read_bytes() == b"b"
    finally:
        for mnt in (background, foreground):
            if is_mount(mnt):
                subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)
        if proc is not None:
            stop_process(proc)  # type: ignore[arg-type]
        for pid in _daemon_pids(background):
            os.kill(pid, signal.SIGKILL)


def _pid_of(pidfd: int) -> int:
    """The pid a pidfd is of (its ``Pid:`` line in ``/proc/self/fdinfo``)."""
    info = Path(f"/proc/self/fdinfo/{pidfd}").read_text()
    return int(info.partition("Pid:")[2].split()[0])


def _daemon_pids(mnt: Path) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"artfsd" in argv and str(mnt).encode() in argv:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("nonempty", "is not empty"),
        ("file", "is not a directory"),
    ],
)
def test_cli_mount_refuses_bad_mountpoints_in_one_line(
    home: Path, tmp_path: Path, setup: str, message: str
) -> None:
    mnt = tmp_path / "bad"
    if setup == "nonempty":
        mnt.mkdir()
        (mnt / "x").write_text("x")
    elif setup == "file":
        mnt.write_text("x")
    done = _cli(home, "mount", str(mnt))
    assert done.returncode != 0
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done
    assert not is_mount(mnt)


def test_cli_umount_of_something_not_mounted_says_so(home: Path, tmp_path: Path) -> None:
    done = _cli(home, "umount", str(tmp_path))
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done
    assert f"{tmp_path} is not a mount point: there is nothing to unmount" in done.stderr
    done = _cli(home, "umount", str(tmp_path / "absent"))
    assert done.returncode != 0 and "absent does not exist" in done.stderr, done
    # Another filesystem's mount is left alone, and named as not artfs's.
    done = _cli(home, "umount", "/")
    assert done.returncode != 0 and "/ is not an artfs mount (its type is" in done.stderr, done
    assert os.path.ismount("/")


def test_foreground_cli_serves_until_unmounted(home: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "fg"
    mnt.mkdir()
    proc = subprocess.Popen(
        [str(ARTFS), "--home", str(home), "mount", "--foreground", str(mnt)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: is_mount(mnt) and os.path.exists(mnt / "proj"), within=10.0)
        subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
        assert proc.wait(timeout=10) == 0
    finally:
        if is_mount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)
        stop_process(proc)  # type: ignore[arg-type]


def test_sample_tree_helper_is_deterministic(tmp_path: Path) -> None:
    assert sample_tree(tmp_path / "a") == sample_tree(tmp_path / "b")
