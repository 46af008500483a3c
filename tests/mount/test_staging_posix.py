"""Staging through a real mount: POSIX operations, mkdir of artifacts and projects, commits
through the control file and the CLI, refusals, and writes that must not reach a version."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from artfs.names import ArtifactName
from artfs.store import Store
from tests.mount.mountutil import ARTFS, Mount, StartMount, errno_of, eventually

pytestmark = pytest.mark.mount


def open_errno(path: Path, mode: str) -> int:
    """The errno opening ``path`` with ``mode`` fails with."""
    try:
        with open(path, mode):
            pass
    except OSError as exc:
        assert exc.errno is not None
        return exc.errno
    pytest.fail(f"opening {path} with {mode!r} succeeded")


def commit_file(mnt: Mount, art: str, options: str = "{}") -> dict[str, object]:
    """Commit through the control file; the result read back as JSON."""
    control = mnt.path / art / "staging" / ".artfs-commit"
    control.write_text(options)
    result: dict[str, object] = json.loads(control.read_text())
    return result


def versions(home: Path, art: str) -> list[int]:
    with Store.open(home) as store:
        return [r.number for r in store.versions(ArtifactName.parse(art))]


def test_posix_operations_in_staging(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "data" / "staging"
    assert os.listdir(staging) == []
    path = staging / "f.bin"
    with open(path, "wb") as f:
        f.write(b"0123456789")
        f.seek(20)
        f.write(b"tail")  # a hole, then data at an offset
        f.flush()
        os.fsync(f.fileno())
    assert path.read_bytes() == b"0123456789" + b"\0" * 10 + b"tail"
    with open(path, "r+b") as f:
        f.seek(3)
        f.write(b"XY")
        f.seek(0)
        assert f.read(6) == b"012XY5"
    os.truncate(path, 4)
    assert path.read_bytes() == b"012X"
    assert os.stat(path).st_size == 4
    backing = home / "staging" / "proj" / "data" / "f.bin"
    assert backing.read_bytes() == b"012X"
    # chmod, utimens and real attributes of the backing file
    os.chmod(path, 0o640)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_500_000_000_000_000_000))
    st, real = os.stat(path), os.stat(backing)
    assert stat.S_IMODE(st.st_mode) == 0o640 == stat.S_IMODE(real.st_mode)
    assert st.st_mtime_ns == 1_500_000_000_000_000_000 and st.st_atime_ns == 10**18
    assert (st.st_uid, st.st_gid) == (real.st_uid, real.st_gid)
    # directories, rename (the inode follows, also for descendants), unlink, rmdir
    (staging / "d" / "e").mkdir(parents=True)
    (staging / "d" / "e" / "g.txt").write_text("g")
    inode = os.stat(staging / "d" / "e" / "g.txt").st_ino
    os.rename(staging / "d", staging / "renamed")
    assert os.stat(staging / "renamed" / "e" / "g.txt").st_ino == inode
    assert (staging / "renamed" / "e" / "g.txt").read_text() == "g"
    os.rename(path, staging / "renamed" / "moved.bin")
    assert sorted(os.listdir(staging)) == ["renamed"]
    assert errno_of(lambda: os.rmdir(staging / "renamed")) == errno.ENOTEMPTY
    os.unlink(staging / "renamed" / "e" / "g.txt")
    os.rmdir(staging / "renamed" / "e")
    assert os.listdir(staging / "renamed") == ["moved.bin"]
    # symlinks are stored as they are
    os.symlink("renamed/moved.bin", staging / "link")
    assert os.readlink(staging / "link") == "renamed/moved.bin"
    assert (staging / "link").read_bytes() == b"012X"
    assert os.readlink(home / "staging" / "proj" / "data" / "link") == "renamed/moved.bin"
    # the control file is virtual: not listed, not in the backing dir
    assert ".artfs-commit" not in os.listdir(staging)
    assert not (home / "staging" / "proj" / "data" / ".artfs-commit").exists()
    # an open file keeps working after it is unlinked
    with open(staging / "open.txt", "w+") as f:
        os.unlink(staging / "open.txt")
        f.write("still")
        f.flush()
        assert os.fstat(f.fileno()).st_size == 5


def test_staging_survives_a_daemon_restart(
    home: Path, start_mount: StartMount, tmp_path: Path
) -> None:
    first = start_mount(home)
    (first.path / "proj" / "data" / "staging" / "kept.txt").write_text("kept")
    subprocess.run(["fusermount3", "-u", str(first.path)], check=True)
    first.proc.wait(timeout=10)
    second = start_mount(home, tmp_path / "again")
    assert (second.path / "proj" / "data" / "staging" / "kept.txt").read_text() == "kept"


def test_mkdir_makes_artifacts_and_projects(mnt: Mount, home: Path) -> None:
    os.mkdir(mnt.path / "proj" / "model")
    assert sorted(os.listdir(mnt.path / "proj")) == ["data", "model"]
    assert os.listdir(mnt.path / "proj" / "model") == ["staging"]
    os.mkdir(mnt.path / "newproj")
    assert "newproj" in os.listdir(mnt.path)
    os.mkdir(mnt.path / "newproj" / "first")
    (mnt.path / "newproj" / "first" / "staging" / "w.bin").write_bytes(b"w")
    assert commit_file(mnt, "newproj/first") == {"ref": "newproj/first:v0", "created": True}
    eventually(lambda: os.path.isdir(mnt.path / "newproj" / "first" / "v0"), within=2.0)
    assert (mnt.path / "newproj" / "first" / "latest" / "w.bin").read_bytes() == b"w"
    assert errno_of(lambda: os.mkdir(mnt.path / "bad name")) == errno.EINVAL
    assert errno_of(lambda: os.mkdir(mnt.path / "proj" / ".hidden")) == errno.EINVAL
    assert errno_of(lambda: os.mkdir(mnt.path / "proj")) == errno.EEXIST
    with Store.open(home) as store:
        assert "newproj" in store.projects()


def test_rmdir_takes_back_what_mkdir_made_while_it_holds_nothing(mnt: Mount) -> None:
    os.mkdir(mnt.path / "typoproj")
    os.mkdir(mnt.path / "proj" / "typo")
    os.mkdir(mnt.path / "proj" / "draft")
    (mnt.path / "proj" / "draft" / "staging" / "w.bin").write_bytes(b"never committed")
    os.rmdir(mnt.path / "proj" / "typo")
    os.rmdir(mnt.path / "typoproj")
    assert sorted(os.listdir(mnt.path / "proj")) == ["data", "draft"]
    assert "typoproj" not in os.listdir(mnt.path)
    assert not os.path.exists(mnt.path / "proj" / "typo")
    for held in ("proj/draft", "proj/data", "proj"):  # staged files, versions, artifacts
        assert errno_of(lambda h=held: os.rmdir(mnt.path / h)) == errno.ENOTEMPTY
    os.mkdir(mnt.path / "proj" / "based")
    (mnt.path / "proj" / "based" / "staging" / ".artfs-base").write_text("proj/data:v0")
    assert os.listdir(mnt.path / "proj" / "based" / "staging")  # shows the base's files
    assert errno_of(lambda: os.rmdir(mnt.path / "proj" / "based")) == errno.ENOTEMPTY
    assert errno_of(lambda: os.rmdir(mnt.path / ".artfs-register")) == errno.ENOTDIR
    assert (mnt.path / "proj" / "draft" / "staging" / "w.bin").read_bytes() == b"never committed"
    assert sorted(os.listdir(mnt.path / "proj" / "data"))[:2] == ["latest", "staging"]


def test_writes_outside_staging_are_refused(mnt: Mount) -> None:
    art = mnt.path / "proj" / "data"
    version = art / "v0"
    assert open_errno(version / "a.txt", "r+b") == errno.EROFS
    assert open_errno(version / "new.txt", "w") == errno.EROFS
    assert errno_of(lambda: os.mkdir(version / "d")) == errno.EROFS
    assert errno_of(lambda: os.mkdir(art / "v9")) == errno.EROFS
    assert errno_of(lambda: os.unlink(version / "a.txt")) == errno.EROFS
    assert errno_of(lambda: os.chmod(version / "a.txt", 0o777)) == errno.EROFS
    assert errno_of(lambda: os.truncate(version / "a.txt", 0)) == errno.EROFS
    staging = art / "staging"
    (staging / "s.txt").write_text("s")
    # out of staging, into a version, into another artifact: EXDEV (mv then copies: EROFS)
    assert errno_of(lambda: os.rename(staging / "s.txt", version / "s.txt")) == errno.EXDEV
    assert errno_of(lambda: os.rename(version / "a.txt", staging / "a.txt")) == errno.EXDEV
    os.mkdir(mnt.path / "proj" / "other")
    other = mnt.path / "proj" / "other" / "staging"
    assert errno_of(lambda: os.rename(staging / "s.txt", other / "s.txt")) == errno.EXDEV
    # `..` and symlinks resolve in the mount: a write through them still meets a version
    assert open_errno(staging / ".." / "v0" / "x", "w") == errno.EROFS
    os.symlink("../v0/a.txt", staging / "to_version")
    assert open_errno(staging / "to_version", "r+b") == errno.EROFS
    os.symlink("../v0", staging / "dir_link")
    assert open_errno(staging / "dir_link" / "new", "w") == errno.EROFS
    assert (version / "a.txt").read_bytes() == b"version zero\n"


def test_commit_through_the_control_file(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "data" / "staging"
    (staging / "b.txt").write_text("b")
    done = subprocess.run(
        f'echo \'{{"aliases":["best"]}}\' > {staging}/.artfs-commit && cat {staging}/.artfs-commit',
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {"ref": "proj/data:v1", "created": True}
    assert os.listdir(staging) == []  # committed files leave staging
    art = mnt.path / "proj" / "data"
    eventually(lambda: os.readlink(art / "latest") == "v1", within=2.0)
    assert os.readlink(art / "best") == "v1"
    assert (art / "v1" / "b.txt").read_text() == "b"
    # the same content again: no new version, reported as such
    (staging / "b.txt").write_text("b")
    assert commit_file(mnt, "proj/data", "\n") == {"ref": "proj/data:v1", "created": False}
    # an error comes back from the write that completed the options, readable afterwards
    control = staging / ".artfs-commit"
    with pytest.raises(OSError) as caught:
        control.write_text("{}")  # staging is empty now
    assert caught.value.errno == errno.EINVAL
    assert "empty" in json.loads(control.read_text())["error"]
    with pytest.raises(OSError) as caught:
        control.write_text("not json\n")
    assert caught.value.errno == errno.EINVAL
    assert "JSON" in json.loads(control.read_text())["error"]
    assert versions(home, "proj/data") == [0, 1]


def test_commit_through_the_cli(mnt: Mount, home: Path) -> None:
    (mnt.path / "proj" / "data" / "staging" / "c.txt").write_text("c")
    env = {**os.environ, "ARTFS_HOME": str(home)}
    done = subprocess.run(
        [str(ARTFS), "commit", "proj/data", "--alias", "cli"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "proj/data:v1"
    eventually(lambda: os.path.isdir(mnt.path / "proj" / "data" / "v1"), within=2.0)
    assert os.readlink(mnt.path / "proj" / "data" / "cli") == "v1"


def test_commit_refused_while_a_file_is_open_for_writing(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "data" / "staging"
    (staging / "done.txt").write_text("done")
    with open(staging / "half.bin", "wb") as writing:
        writing.write(b"half")
        control = staging / ".artfs-commit"
        with pytest.raises(OSError) as caught:
            control.write_text("{}")
        assert caught.value.errno == errno.EBUSY
        error = json.loads(control.read_text())["error"]
        assert "half.bin" in error and "open for writing" in error
        assert versions(home, "proj/data") == [0]
        assert sorted(os.listdir(staging)) == ["done.txt", "half.bin"]
        env = {**os.environ, "ARTFS_HOME": str(home)}
        refused = subprocess.run(
            [str(ARTFS), "commit", "proj/data"], capture_output=True, text=True, env=env
        )
        assert refused.returncode != 0 and "half.bin" in refused.stderr
        result = commit_file(mnt, "proj/data", '{"force": true}')
        assert result == {"ref": "proj/data:v1", "created": True}
    assert versions(home, "proj/data") == [0, 1]


def test_concurrent_commits_one_fails_clearly(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "data" / "staging"
    big = os.urandom(1 << 20)
    for i in range(24):
        (staging / f"f{i}.bin").write_bytes(big[i:] + big[:i])
    outcomes: list[object] = []

    def commit() -> None:
        # One process, one session: the read-back result is shared, so judge by the write.
        try:
            (staging / ".artfs-commit").write_text("{}")
            outcomes.append("committed")
        except OSError as exc:
            outcomes.append(exc.errno)

    threads = [threading.Thread(target=commit) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("committed") == 1, outcomes
    # the others found a commit running (EBUSY) or staging already emptied by it (EINVAL)
    assert all(o in (errno.EBUSY, errno.EINVAL, "committed") for o in outcomes), outcomes
    assert versions(home, "proj/data") == [0, 1]


@pytest.mark.parametrize("bad", ["empty", "fifo", "escaping symlink", "bad alias"])
def test_bad_commits_change_nothing(mnt: Mount, home: Path, bad: str) -> None:
    staging = mnt.path / "proj" / "data" / "staging"
    options = "{}"
    if bad != "empty":
        (staging / "ok.txt").write_text("ok")
    if bad == "fifo":
        os.mkfifo(home / "staging" / "proj" / "data" / "pipe")
    elif bad == "escaping symlink":
        os.symlink("/etc/hostname", staging / "escape")
    elif bad == "bad alias":
        options = '{"aliases": ["v7"]}'
    before = sorted(os.listdir(staging))
    control = staging / ".artfs-commit"
    with pytest.raises(OSError) as caught:
        control.write_text(options)
    assert caught.value.errno == errno.EINVAL
    error = json.loads(control.read_text())["error"]
    assert error and "\n" not in error
    assert versions(home, "proj/data") == [0]
    assert sorted(os.listdir(staging)) == before
