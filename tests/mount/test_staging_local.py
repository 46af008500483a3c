"""Staging behaves like a local filesystem (issue 13), through a real mount: a commit empties
staging whatever it held, hard links, fallocate, statfs, symlink times, device numbers, open
flags, alias times and distinct-file counts."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from artfs.store import Store
from tests.mount.mountutil import ARTFS, Mount, StartMount, errno_of, eventually, put

pytestmark = pytest.mark.mount


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARTFS_HOME": str(home)}
    return subprocess.run([str(ARTFS), *args], capture_output=True, text=True, env=env)


def files_of(home: Path, ref: str) -> dict[str, bytes]:
    with Store.open(home) as store:
        resolved = store.resolve(ref)
        return {e.path: b"".join(store.iter_file(e)) for e in store.files(resolved) if not e.is_dir}


def tree(root: Path) -> list[str]:
    """Every path under ``root`` (not following symlinks), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            found.append(os.path.normpath(os.path.join(rel, name)))
    return sorted(found)


# --- 1. a commit leaves staging in its after-commit state -----------------------------------


def make_mixed_staging(staging: Path) -> None:
    (staging / "a.txt").write_text("hi\n")
    os.symlink("a.txt", staging / "link")
    (staging / "d").mkdir()
    os.symlink("../a.txt", staging / "d" / "up")
    (staging / "empty" / "deeper").mkdir(parents=True)
    (staging / "dirlink").symlink_to("d")


@pytest.mark.parametrize("how", ["cli", "control file"])
def test_commit_empties_staging_of_symlinks_and_empty_dirs(
    mnt: Mount, home: Path, how: str
) -> None:
    staging = mnt.path / "proj" / "s" / "staging"
    (mnt.path / "proj" / "s").mkdir()
    make_mixed_staging(staging)

    def commit() -> None:
        if how == "cli":
            done = cli(home, "commit", "proj/s")
            assert done.returncode == 0, done.stderr
        else:
            (staging / ".artfs-commit").write_text("{}")

    commit()
    assert tree(staging) == []
    assert tree(home / "staging" / "proj" / "s") == []
    v0 = files_of(home, "proj/s:v0")
    assert v0 == {"a.txt": b"hi\n", "link": b"hi\n", "d/up": b"hi\n", "dirlink/up": b"hi\n"}
    # The same again: the second commit works and leaves staging empty too.
    make_mixed_staging(staging)
    (staging / "b.txt").write_text("new\n")
    commit()
    assert tree(staging) == []
    assert files_of(home, "proj/s:v1")["b.txt"] == b"new\n"


def test_commit_errors_name_the_path_as_the_user_sees_it(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "s" / "staging"
    (mnt.path / "proj" / "s").mkdir()
    (staging / "d").mkdir()
    os.symlink("../gone.txt", staging / "d" / "up")
    done = cli(home, "commit", "proj/s")
    assert done.returncode != 0
    assert "proj/s/staging/d/up" in done.stderr
    assert str(home) not in done.stderr and "\n" not in done.stderr.strip()
    control = staging / ".artfs-commit"
    with pytest.raises(OSError):
        control.write_text("{}")
    error = control.read_text()
    assert "proj/s/staging/d/up" in error and str(home) not in error
    assert tree(staging) == ["d", "d/up"]


def test_commit_after_a_refused_fifo_empties_staging(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "s" / "staging"
    (mnt.path / "proj" / "s").mkdir()
    (staging / "x").mkdir()
    (staging / "x" / "f.txt").write_text("f")
    os.mkfifo(staging / "x" / "pipe")
    done = cli(home, "commit", "proj/s")
    assert done.returncode != 0 and "proj/s/staging/x/pipe" in done.stderr
    os.unlink(staging / "x" / "pipe")
    done = cli(home, "commit", "proj/s")
    assert done.returncode == 0, done.stderr
    assert tree(staging) == []


# --- 2. hard links --------------------------------------------------------------------------


def test_hard_links_share_one_inode_and_count_links(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "data" / "staging"
    (staging / "d").mkdir()
    (staging / "a").write_text("one\n")
    os.link(staging / "a", staging / "d" / "b")
    os.link(staging / "d" / "b", staging / "c")
    names = [staging / "a", staging / "d" / "b", staging / "c"]
    stats = [os.lstat(p) for p in names]
    assert len({st.st_ino for st in stats}) == 1
    assert [st.st_nlink for st in stats] == [3, 3, 3]
    assert {e.inode() for e in os.scandir(staging) if e.name in ("a", "c")} == {stats[0].st_ino}
    with open(staging / "c", "a") as f:
        f.write("two\n")
    assert (staging / "a").read_text() == "one\ntwo\n"
    # unlink: the other names stay, one inode, one link fewer
    os.unlink(staging / "a")
    assert not (staging / "a").exists()
    assert os.lstat(staging / "c").st_nlink == 2
    assert os.lstat(staging / "d" / "b").st_ino == stats[0].st_ino
    # rename of a name onto another name of the same file: nothing happens (rename(2))
    os.rename(staging / "c", staging / "d" / "b")
    assert (staging / "c").exists() and os.lstat(staging / "c").st_nlink == 2
    # rename over another file, and a link renamed into another directory
    (staging / "other").write_text("other\n")
    os.rename(staging / "c", staging / "other")
    assert os.lstat(staging / "other").st_ino == stats[0].st_ino
    assert os.lstat(staging / "other").st_nlink == 2
    os.rename(staging / "other", staging / "d" / "moved")
    assert os.lstat(staging / "d" / "moved").st_nlink == 2
    assert (staging / "d" / "moved").read_text() == "one\ntwo\n"
    # refusals as on ext4
    with pytest.raises(FileExistsError):
        os.link(staging / "d" / "b", staging / "d" / "moved")
    with pytest.raises(PermissionError):
        os.link(staging / "d", staging / "dlink")
    with pytest.raises(OSError) as caught:
        os.link(mnt.path / "proj" / "data" / "v0" / "a.txt", staging / "fromversion")
    assert caught.value.errno == errno.EXDEV
    (mnt.path / "proj" / "other").mkdir()
    with pytest.raises(OSError) as caught:
        os.link(staging / "d" / "b", mnt.path / "proj" / "other" / "staging" / "b")
    assert caught.value.errno == errno.EXDEV
    # a link to a symlink links the symlink itself
    os.symlink("d/b", staging / "sym")
    os.link(staging / "sym", staging / "sym2", follow_symlinks=False)
    assert os.readlink(staging / "sym2") == "d/b"
    assert os.lstat(staging / "sym2").st_ino == os.lstat(staging / "sym").st_ino
    # committed: separate entries with equal content, stored once
    (staging / ".artfs-commit").write_text("{}")
    v1 = files_of(home, "proj/data:v1")
    assert v1 == {n: b"one\ntwo\n" for n in ("d/b", "d/moved", "sym", "sym2")}
    version = mnt.path / "proj" / "data" / "v1"
    inodes = {os.lstat(version / n).st_ino for n in v1}
    assert len(inodes) == len(v1)  # ls -li: one inode per entry, link count 1
    assert {os.lstat(version / n).st_nlink for n in v1} == {1}
    assert tree(staging) == []


def test_hard_links_after_a_daemon_restart(
    home: Path, start_mount: StartMount, tmp_path: Path
) -> None:
    first = start_mount(home)
    staging = first.path / "proj" / "data" / "staging"
    (staging / "d").mkdir()
    (staging / "a").write_text("linked\n")
    os.link(staging / "a", staging / "d" / "b")
    subprocess.run(["fusermount3", "-u", str(first.path)], check=True)
    first.proc.wait(timeout=10)
    second = start_mount(home, tmp_path / "again")
    staging = second.path / "proj" / "data" / "staging"
    listed = {e.name: e.inode() for e in os.scandir(staging / "d")}  # numbered by readdir
    a, b = os.lstat(staging / "a"), os.lstat(staging / "d" / "b")
    assert a.st_ino == b.st_ino == listed["b"] and a.st_nlink == b.st_nlink == 2
    os.unlink(staging / "d" / "b")
    assert os.lstat(staging / "a").st_nlink == 1
    assert (staging / "a").read_text() == "linked\n"


def make_linked_archive(tmp_path: Path) -> Path:
    src = tmp_path / "tar-src"
    (src / "sub").mkdir(parents=True)
    (src / "first").write_bytes(b"x" * 10_000)
    os.link(src / "first", src / "sub" / "second")
    os.link(src / "first", src / "third")
    (src / "single").write_text("alone\n")
    archive = tmp_path / "linked.tar"
    subprocess.run(["tar", "-cf", str(archive), "-C", str(src), "."], check=True)
    return archive


def test_tar_extracts_hard_links_into_staging(mnt: Mount, tmp_path: Path) -> None:
    archive = make_linked_archive(tmp_path)
    staging = mnt.path / "proj" / "data" / "staging"
    done = subprocess.run(
        ["tar", "-xf", str(archive), "-C", str(staging)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    first = os.lstat(staging / "first")
    assert first.st_nlink == 3
    assert os.lstat(staging / "sub" / "second").st_ino == first.st_ino
    assert os.lstat(staging / "third").st_ino == first.st_ino
    assert (staging / "third").read_bytes() == b"x" * 10_000
    assert os.lstat(staging / "single").st_nlink == 1


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_rsync_keeps_hard_links_into_staging(mnt: Mount, tmp_path: Path) -> None:
    make_linked_archive(tmp_path)
    staging = mnt.path / "proj" / "data" / "staging"
    done = subprocess.run(
        ["rsync", "-aH", f"{tmp_path / 'tar-src'}/", f"{staging}/"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    first = os.lstat(staging / "first")
    assert first.st_nlink == 3 and os.lstat(staging / "third").st_ino == first.st_ino


# --- 4. statfs ------------------------------------------------------------------------------


def test_df_shows_the_store_filesystem(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "data" / "staging"
    (staging / "big.bin").write_bytes(os.urandom(4 << 20))  # changes the figures a little
    mounted, host = os.statvfs(mnt.path), os.statvfs(home)
    assert mounted.f_bavail > 0 and mounted.f_ffree > 0
    assert mounted.f_frsize * mounted.f_blocks == host.f_frsize * host.f_blocks
    assert mounted.f_files == host.f_files
    # free space within 64 MiB of the store's (other writers on this machine move it)
    assert abs(mounted.f_bavail * mounted.f_frsize - host.f_bavail * host.f_frsize) < 64 << 20
    usage = shutil.disk_usage(staging)
    assert usage.free > 0 and usage.total == host.f_frsize * host.f_blocks
    used = mounted.f_frsize * (mounted.f_blocks - mounted.f_bfree)
    assert abs(usage.used - used) < 64 << 20  # two calls: other writers move it in between
    df = subprocess.run(
        ["df", "--output=size,avail", str(staging), str(home)], capture_output=True, text=True
    )
    assert df.returncode == 0, df.stderr
    (size, avail), (host_size, _) = (line.split() for line in df.stdout.splitlines()[1:])
    assert size == host_size and int(avail) > 0


# --- 3. fallocate ---------------------------------------------------------------------------


def test_posix_fallocate_in_staging(mnt: Mount, home: Path) -> None:
    staging = mnt.path / "proj" / "data" / "staging"
    with open(staging / "f.bin", "w+b") as f:
        f.write(b"keep")
        os.posix_fallocate(f.fileno(), 0, 1 << 20)
        assert os.fstat(f.fileno()).st_size == 1 << 20
        f.seek(0)
        assert f.read(8) == b"keep\0\0\0\0"
    assert os.stat(staging / "f.bin").st_blocks * 512 >= 1 << 20  # allocated, not a hole
    done = subprocess.run(["fallocate", "-x", "-l", "1M", str(staging / "g.bin")])
    assert done.returncode == 0 and os.stat(staging / "g.bin").st_size == 1 << 20


def test_fallocate_syscall_is_refused_cleanly(mnt: Mount) -> None:
    """fallocate(2) is not passed through (pyfuse3 3.5.0 has no handler): it must fail as
    EOPNOTSUPP, which tools know to fall back from, and leave the file as it was. When pyfuse3
    gains the operation this test fails: pass it through then (docs/mount.md, Staging)."""
    staging = mnt.path / "proj" / "data" / "staging"
    (staging / "f.bin").write_bytes(b"kept")
    done = subprocess.run(
        ["fallocate", "-l", "1M", str(staging / "f.bin")], capture_output=True, text=True
    )
    assert done.returncode != 0 and os.strerror(errno.EOPNOTSUPP) in done.stderr
    assert (staging / "f.bin").read_bytes() == b"kept"


# --- 6. device numbers, access mode 3, alias times, distinct files --------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a device needs root")
def test_device_nodes_keep_their_numbers(mnt: Mount, tmp_path: Path) -> None:
    staging = mnt.path / "proj" / "data" / "staging"
    os.mknod(staging / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(staging / "loop", stat.S_IFBLK | 0o600, os.makedev(7, 42))
    null, loop = os.lstat(staging / "null"), os.lstat(staging / "loop")
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (
        7,
        42,
    )
    listed = {e.name: e.stat(follow_symlinks=False).st_rdev for e in os.scandir(staging)}
    assert listed == {"null": null.st_rdev, "loop": loop.st_rdev}


def test_open_with_access_mode_3_is_as_on_ext4(mnt: Mount, tmp_path: Path) -> None:
    """O_WRONLY|O_RDWR: Linux opens the file for neither reading nor writing (ioctls only);
    reads and writes on it are EBADF. Staging does what a local directory does."""
    staging = mnt.path / "proj" / "data" / "staging"
    outcomes = []
    for base in (tmp_path, staging):
        (base / "f").write_text("x")
        fd = os.open(base / "f", os.O_WRONLY | os.O_RDWR)
        try:
            read = errno_of(lambda fd=fd: os.read(fd, 1))
            written = errno_of(lambda fd=fd: os.write(fd, b"y"))
        finally:
            os.close(fd)
        outcomes.append((read, written, (base / "f").read_text()))
    assert outcomes[1] == outcomes[0] == (errno.EBADF, errno.EBADF, "x")


def test_alias_symlinks_carry_the_time_they_were_set(mnt: Mount, home: Path) -> None:
    art = mnt.path / "proj" / "data"
    with Store.open(home) as store:
        created_ns = int(store.resolve("proj/data:v0").created * 1e9)
    assert os.lstat(art / "latest").st_mtime_ns == created_ns  # set by the commit
    before = time.time_ns()
    done = cli(home, "alias", "proj/data:v0", "best")
    assert done.returncode == 0, done.stderr
    after = time.time_ns()
    assert before <= os.lstat(art / "best").st_mtime_ns <= after
    assert {e.name: e.stat(follow_symlinks=False).st_mtime_ns for e in os.scandir(art)}[
        "best"
    ] == os.lstat(art / "best").st_mtime_ns


def test_info_counts_distinct_files_read(tmp_path: Path, start_mount: StartMount) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for i in range(5000):
        (src / f"f{i:04d}.txt").write_text(f"{i}\n")
    home = tmp_path / "home"
    put(home, src, "proj/many")
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "s.txt").write_text("s")
    put(home, sentinel, "proj/sentinel")
    mnt = start_mount(home)
    code = f"""
import os
root = {str(mnt.path / "proj" / "many" / "v0")!r}
for _ in range(2):
    for name in sorted(os.listdir(root)):
        with open(os.path.join(root, name), "rb") as f:
            f.read()
open({str(mnt.path / "proj" / "sentinel" / "v0" / "s.txt")!r}).read()
"""
    subprocess.run([sys.executable, "-c", code], check=True, start_new_session=True, timeout=120)

    def flushed() -> bool:  # the sentinel's open is recorded last: every earlier one is in
        done = cli(home, "info", "proj/sentinel:v0", "--json")
        return done.returncode == 0 and bool(json.loads(done.stdout)["consumers"])

    eventually(flushed, within=10.0)
    info = json.loads(cli(home, "info", "proj/many:v0", "--json").stdout)
    assert [c["files"] for c in info["consumers"]] == [5000]


@pytest.mark.parametrize("how", ["cli", "control"])
def test_hard_links_after_a_commit_while_a_name_is_open(mnt: Mount, home: Path, how: str) -> None:
    """A commit empties staging behind the kernel's back while a hard-linked file is still
    open: the names it had are gone, so a new file at one of them and its links are a new
    file with names of its own (no name of the committed one is taken for theirs)."""
    staging = mnt.path / "proj" / "data" / "staging"
    (staging / "a").write_text("old\n")
    os.link(staging / "a", staging / "b")
    with open(staging / "a", "rb") as held:  # the kernel keeps the inode while it is open
        if how == "cli":
            done = cli(home, "commit", "proj/data")
            assert done.returncode == 0, done.stderr
        else:
            (staging / ".artfs-commit").write_text("{}")
        assert tree(staging) == []
        (staging / "a").write_text("new\n")
        os.link(staging / "a", staging / "z")
        os.unlink(staging / "a")
        st = os.lstat(staging / "z")
        assert (st.st_nlink, (staging / "z").read_text()) == (1, "new\n")
        assert st.st_ino != os.fstat(held.fileno()).st_ino
        assert tree(staging) == ["z"]
