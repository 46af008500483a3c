"""Staging conformance: what a POSIX conformance suite checks, inside a mounted staging
directory, against the same operations in a plain local directory (ext4 or tmpfs here).

Each case prepares a fresh directory (as root), performs one operation (as root, or as a
second user: uid/gid 65534 in a forked child, with the mount made ``--allow-other``), and
observes the outcome as root: the errno of a refusal, or what changed. A case passes when
staging's outcome equals the local directory's *and* the expected one, so a refusal is
pinned to its errno (``EEXIST``, ``ENOTEMPTY``, ``EACCES``...) rather than to whatever the
local filesystem happens to do.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pickle
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.mount.mountutil import Mount, Mounts, put

pytestmark = [
    pytest.mark.mount,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chown, mknod, a second user"),
]

OTHER = 65534  # uid and gid of the second user (nobody); no account is needed for setresuid
Observation = object


@dataclass(frozen=True)
class Case:
    name: str
    op: Callable[[Path], Observation]  # in a fresh directory; its return value is observed
    expected: str  # "ok" or the errno name of the refusal
    setup: Callable[[Path], None] = lambda d: None
    observe: Callable[[Path], Observation] = lambda d: None  # as root, after the op
    as_other: bool = False


# --- helpers for the cases --------------------------------------------------------------------


def write(path: Path, data: bytes = b"data", mode: int = 0o644) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)


def tree(d: Path) -> list[tuple[str, str, int]]:
    """(path, kind, size of a file) of everything under ``d``: what a directory holds."""
    found = []
    for dirpath, dirnames, filenames in os.walk(d):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            kind = stat.filemode(st.st_mode)[0]
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            found.append((os.path.relpath(path, d), kind, size))
    return sorted(found)


def open_close(path: Path, flags: int, mode: int = 0o644) -> None:
    os.close(os.open(path, flags, mode))


def renameat2(old: Path, new: Path, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd = -100
    if libc.renameat2(at_fdcwd, bytes(old), at_fdcwd, bytes(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


RENAME_NOREPLACE = 1


def file_and_dir(d: Path) -> None:
    write(d / "f", b"file")
    (d / "dir").mkdir()
    write(d / "dir" / "inner", b"inner")
    (d / "empty").mkdir()


def linked(d: Path) -> None:
    write(d / "a", b"linked")
    os.link(d / "a", d / "b")


def mode_of(name: str) -> Callable[[Path], int]:
    return lambda d: stat.S_IMODE(os.lstat(d / name).st_mode)


def owner_of(name: str) -> Callable[[Path], tuple[int, int]]:
    return lambda d: (os.lstat(d / name).st_uid, os.lstat(d / name).st_gid)


def same_inode(*names: str) -> Callable[[Path], tuple[bool, list[int]]]:
    def observe(d: Path) -> tuple[bool, list[int]]:
        stats = [os.lstat(d / n) for n in names]
        return len({st.st_ino for st in stats}) == 1, [st.st_nlink for st in stats]

    return observe


def appended(d: Path) -> bytes:
    fd = os.open(d / "f", os.O_WRONLY | os.O_APPEND)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"+tail")
    finally:
        os.close(fd)
    return (d / "f").read_bytes()


def unlinked_but_open(d: Path) -> tuple[bytes, int]:
    fd = os.open(d / "f", os.O_RDWR)
    try:
        os.unlink(d / "f")
        os.pwrite(fd, b"F", 0)
        return os.pread(fd, 10, 0), os.fstat(fd).st_nlink
    finally:
        os.close(fd)


def bad_fd_op(flags: int, use: Callable[[int], object]) -> Callable[[Path], Observation]:
    def op(d: Path) -> Observation:
        fd = os.open(d / "f", flags)
        try:
            return use(fd)
        finally:
            os.close(fd)

    return op


def times_set(name: str, follow: bool) -> Callable[[Path], list[object]]:
    """Set ``name``'s times; what changed: the times of the link and of its target ``f``."""

    def op(d: Path) -> list[object]:
        before = [os.lstat(d / name), os.stat(d / "f")]
        os.utime(
            d / name,
            ns=(1_111_111_111_000_000_123, 1_222_222_222_000_000_456),
            follow_symlinks=follow,
        )
        after = [os.lstat(d / name), os.stat(d / "f")]
        return [
            (a.st_atime_ns, a.st_mtime_ns) if a.st_mtime_ns != b.st_mtime_ns else "unchanged"
            for a, b in zip(after, before, strict=True)
        ]

    return op


def now_set(d: Path) -> bool:
    before = time.time()
    os.utime(d / "f")
    return before - 2 <= os.stat(d / "f").st_mtime <= time.time() + 2


def sticky_dir(d: Path) -> None:
    (d / "shared").mkdir()
    os.chmod(d / "shared", 0o1777)
    write(d / "shared" / "roots", b"root's", 0o666)


def others_file(d: Path) -> None:
    write(d / "f", b"root's", 0o644)
    write(d / "secret", b"root only", 0o600)
    write(d / "open", b"anyone", 0o666)
    (d / "private").mkdir(mode=0o700)
    (d / "public").mkdir()
    os.chmod(d / "public", 0o777)


def setgid_dir(d: Path) -> None:
    (d / "g").mkdir()
    os.chown(d / "g", 0, 4321)
    os.chmod(d / "g", 0o2775)


# --- the cases --------------------------------------------------------------------------------

CASES = [
    # open and create flags
    Case(
        "creat-excl-existing",
        lambda d: open_close(d / "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY),
        "EEXIST",
        file_and_dir,
    ),
    Case(
        "creat-excl-new",
        lambda d: open_close(d / "n", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640),
        "ok",
        observe=mode_of("n"),
    ),
    Case(
        "creat-existing-keeps-data",
        lambda d: open_close(d / "f", os.O_CREAT | os.O_WRONLY),
        "ok",
        file_and_dir,
        tree,
    ),
    Case(
        "creat-mode-under-umask",
        lambda d: open_close(d / "n", os.O_CREAT | os.O_WRONLY, 0o777),
        "ok",
        observe=mode_of("n"),
    ),
    Case(
        "trunc", lambda d: open_close(d / "f", os.O_WRONLY | os.O_TRUNC), "ok", file_and_dir, tree
    ),
    Case("append-writes-at-end", appended, "ok", file_and_dir),
    Case(
        "directory-flag-on-file",
        lambda d: open_close(d / "f", os.O_RDONLY | os.O_DIRECTORY),
        "ENOTDIR",
        file_and_dir,
    ),
    Case("open-missing", lambda d: open_close(d / "missing", os.O_RDONLY), "ENOENT"),
    Case(
        "open-dir-for-writing", lambda d: open_close(d / "dir", os.O_WRONLY), "EISDIR", file_and_dir
    ),
    Case(
        "creat-under-a-file",
        lambda d: open_close(d / "f" / "x", os.O_CREAT | os.O_WRONLY),
        "ENOTDIR",
        file_and_dir,
    ),
    Case(
        "creat-in-missing-dir",
        lambda d: open_close(d / "nodir" / "x", os.O_CREAT | os.O_WRONLY),
        "ENOENT",
    ),
    Case(
        "creat-excl-dangling-symlink",
        lambda d: open_close(d / "dangling", os.O_CREAT | os.O_EXCL | os.O_WRONLY),
        "EEXIST",
        lambda d: os.symlink("nowhere", d / "dangling"),
    ),
    Case(
        "creat-through-dangling-symlink",
        lambda d: open_close(d / "dangling", os.O_CREAT | os.O_WRONLY),
        "ok",
        lambda d: os.symlink("made", d / "dangling"),
        tree,
    ),
    Case(
        "nofollow-on-symlink",
        lambda d: open_close(d / "link", os.O_RDONLY | os.O_NOFOLLOW),
        "ELOOP",
        lambda d: (write(d / "f"), os.symlink("f", d / "link")),
    ),
    Case(
        "name-too-long",
        lambda d: open_close(d / ("n" * 256), os.O_CREAT | os.O_WRONLY),
        "ENAMETOOLONG",
    ),
    Case(
        "name-255-bytes",
        lambda d: open_close(d / ("n" * 255), os.O_CREAT | os.O_WRONLY),
        "ok",
        observe=tree,
    ),
    Case(
        "read-on-write-only-fd",
        bad_fd_op(os.O_WRONLY, lambda fd: os.read(fd, 1)),
        "EBADF",
        file_and_dir,
    ),
    Case(
        "write-on-read-only-fd",
        bad_fd_op(os.O_RDONLY, lambda fd: os.write(fd, b"x")),
        "EBADF",
        file_and_dir,
    ),
    Case("unlinked-open-file-lives-on", unlinked_but_open, "ok", file_and_dir, tree),
    # link
    Case(
        "link-counts", lambda d: os.link(d / "a", d / "c"), "ok", linked, same_inode("a", "b", "c")
    ),
    Case(
        "link-onto-existing",
        lambda d: os.link(d / "a", d / "f"),
        "EEXIST",
        lambda d: (linked(d), write(d / "f")),
    ),
    Case("link-a-directory", lambda d: os.link(d / "dir", d / "dlink"), "EPERM", file_and_dir),
    Case("link-missing-source", lambda d: os.link(d / "missing", d / "x"), "ENOENT"),
    Case("link-into-missing-dir", lambda d: os.link(d / "a", d / "nodir" / "x"), "ENOENT", linked),
    Case(
        "link-across-dirs",
        lambda d: os.link(d / "a", d / "dir" / "a"),
        "ok",
        lambda d: (linked(d), (d / "dir").mkdir()),
        same_inode("a", "b", "dir/a"),
    ),
    Case("unlink-one-link", lambda d: os.unlink(d / "a"), "ok", linked, same_inode("b")),
    Case(
        "link-a-symlink",
        lambda d: os.link(d / "s", d / "s2", follow_symlinks=False),
        "ok",
        lambda d: os.symlink("target", d / "s"),
        same_inode("s", "s2"),
    ),
    # rename
    Case(
        "rename-file-over-file",
        lambda d: os.rename(d / "f", d / "g"),
        "ok",
        lambda d: (write(d / "f", b"new"), write(d / "g", b"old!")),
        tree,
    ),
    Case(
        "rename-file-over-empty-dir",
        lambda d: os.rename(d / "f", d / "empty"),
        "EISDIR",
        file_and_dir,
    ),
    Case(
        "rename-dir-over-empty-dir",
        lambda d: os.rename(d / "dir", d / "empty"),
        "ok",
        file_and_dir,
        tree,
    ),
    Case(
        "rename-dir-over-nonempty-dir",
        lambda d: os.rename(d / "empty", d / "dir"),
        "ENOTEMPTY",
        file_and_dir,
    ),
    Case("rename-dir-over-file", lambda d: os.rename(d / "dir", d / "f"), "ENOTDIR", file_and_dir),
    Case(
        "rename-across-dirs",
        lambda d: os.rename(d / "f", d / "dir" / "moved"),
        "ok",
        file_and_dir,
        tree,
    ),
    Case(
        "rename-dir-with-contents-across-dirs",
        lambda d: os.rename(d / "dir", d / "empty" / "dir"),
        "ok",
        file_and_dir,
        tree,
    ),
    Case(
        "rename-dir-into-itself",
        lambda d: os.rename(d / "dir", d / "dir" / "sub"),
        "EINVAL",
        file_and_dir,
    ),
    Case("rename-missing", lambda d: os.rename(d / "missing", d / "x"), "ENOENT"),
    Case(
        "rename-onto-own-hard-link",
        lambda d: os.rename(d / "a", d / "b"),
        "ok",
        linked,
        same_inode("a", "b"),
    ),
    Case(
        "rename-over-symlink-replaces-the-link",
        lambda d: os.rename(d / "f", d / "link"),
        "ok",
        lambda d: (write(d / "f", b"f"), write(d / "t", b"target"), os.symlink("t", d / "link")),
        tree,
    ),
    Case(
        "rename-noreplace-existing",
        lambda d: renameat2(d / "f", d / "dir", RENAME_NOREPLACE),
        "EEXIST",
        file_and_dir,
    ),
    Case(
        "rename-noreplace-new",
        lambda d: renameat2(d / "f", d / "new", RENAME_NOREPLACE),
        "ok",
        file_and_dir,
        tree,
    ),
    Case(
        "rename-keeps-inode",
        lambda d: os.rename(d / "a", d / "c"),
        "ok",
        linked,
        same_inode("b", "c"),
    ),
    # unlink and rmdir
    Case("rmdir-nonempty", lambda d: os.rmdir(d / "dir"), "ENOTEMPTY", file_and_dir),
    Case("rmdir-a-file", lambda d: os.rmdir(d / "f"), "ENOTDIR", file_and_dir),
    Case("rmdir-dot", lambda d: os.rmdir(os.path.join(d, "empty", ".")), "EINVAL", file_and_dir),
    Case("rmdir-empty", lambda d: os.rmdir(d / "empty"), "ok", file_and_dir, tree),
    Case("unlink-a-dir", lambda d: os.unlink(d / "dir"), "EISDIR", file_and_dir),
    Case("unlink-missing", lambda d: os.unlink(d / "missing"), "ENOENT"),
    Case(
        "unlink-symlink-not-target",
        lambda d: os.unlink(d / "link"),
        "ok",
        lambda d: (write(d / "f"), os.symlink("f", d / "link")),
        tree,
    ),
    Case(
        "dir-link-count",
        lambda d: [os.mkdir(d / "p" / n) for n in "abc"],
        "ok",
        lambda d: (d / "p").mkdir(),
        lambda d: os.lstat(d / "p").st_nlink,
    ),
    # chmod and chown
    Case("chmod-file", lambda d: os.chmod(d / "f", 0o4751), "ok", file_and_dir, mode_of("f")),
    Case(
        "chmod-sticky-dir",
        lambda d: os.chmod(d / "dir", 0o1777),
        "ok",
        file_and_dir,
        mode_of("dir"),
    ),
    Case(
        "chmod-through-symlink",
        lambda d: os.chmod(d / "link", 0o600),
        "ok",
        lambda d: (write(d / "f"), os.symlink("f", d / "link")),
        mode_of("f"),
    ),
    Case("chown-file", lambda d: os.chown(d / "f", 1234, 5678), "ok", file_and_dir, owner_of("f")),
    Case(
        "chown-keep-group",
        lambda d: os.chown(d / "f", 1234, -1),
        "ok",
        lambda d: (file_and_dir(d), os.chown(d / "f", 0, 99)),
        owner_of("f"),
    ),
    Case(
        "lchown-symlink",
        lambda d: os.chown(d / "link", 1234, 5678, follow_symlinks=False),
        "ok",
        lambda d: (write(d / "f"), os.symlink("f", d / "link")),
        lambda d: (owner_of("link")(d), owner_of("f")(d)),
    ),
    Case("chmod-missing", lambda d: os.chmod(d / "missing", 0o644), "ENOENT"),
    # truncate and ftruncate
    Case(
        "truncate-grow",
        lambda d: os.truncate(d / "f", 10),
        "ok",
        file_and_dir,
        lambda d: (d / "f").read_bytes(),
    ),
    Case(
        "truncate-shrink",
        lambda d: os.truncate(d / "f", 2),
        "ok",
        file_and_dir,
        lambda d: (d / "f").read_bytes(),
    ),
    Case("truncate-negative", lambda d: os.truncate(d / "f", -1), "EINVAL", file_and_dir),
    Case("truncate-a-dir", lambda d: os.truncate(d / "dir", 0), "EISDIR", file_and_dir),
    Case(
        "ftruncate",
        bad_fd_op(os.O_RDWR, lambda fd: os.ftruncate(fd, 1)),
        "ok",
        file_and_dir,
        lambda d: (d / "f").read_bytes(),
    ),
    Case(
        "ftruncate-read-only-fd",
        bad_fd_op(os.O_RDONLY, lambda fd: os.ftruncate(fd, 1)),
        "EINVAL",
        file_and_dir,
    ),
    # utimens
    Case("utimens-file", times_set("f", True), "ok", file_and_dir),
    Case("utimens-now", now_set, "ok", file_and_dir),
    Case(
        "utimens-symlink-nofollow",
        times_set("link", False),
        "ok",
        lambda d: (write(d / "f"), os.symlink("f", d / "link")),
    ),
    Case(
        "utimens-through-symlink",
        times_set("link", True),
        "ok",
        lambda d: (write(d / "f"), os.symlink("f", d / "link")),
    ),
    # mkfifo, mknod, symlink
    Case(
        "mkfifo",
        lambda d: os.mkfifo(d / "p", 0o640),
        "ok",
        observe=lambda d: stat.filemode(os.lstat(d / "p").st_mode),
    ),
    Case("mkfifo-existing", lambda d: os.mkfifo(d / "f"), "EEXIST", file_and_dir),
    Case(
        "mknod-char-device",
        lambda d: os.mknod(d / "c", stat.S_IFCHR | 0o600, os.makedev(1, 7)),
        "ok",
        observe=lambda d: (stat.filemode(os.lstat(d / "c").st_mode), os.lstat(d / "c").st_rdev),
    ),
    Case("mknod-regular", lambda d: os.mknod(d / "r", stat.S_IFREG | 0o600), "ok", observe=tree),
    Case(
        "mknod-existing", lambda d: os.mknod(d / "f", stat.S_IFIFO | 0o600), "EEXIST", file_and_dir
    ),
    Case(
        "symlink",
        lambda d: os.symlink("some/where", d / "s"),
        "ok",
        observe=lambda d: (
            os.readlink(d / "s"),
            os.lstat(d / "s").st_size,
            stat.filemode(os.lstat(d / "s").st_mode),
        ),
    ),
    Case("symlink-existing", lambda d: os.symlink("x", d / "f"), "EEXIST", file_and_dir),
    Case(
        "symlink-long-target",
        lambda d: os.symlink("t" * 4095, d / "s"),
        "ok",
        observe=lambda d: len(os.readlink(d / "s")),
    ),
    Case("readlink-a-file", lambda d: os.readlink(d / "f"), "EINVAL", file_and_dir),
    Case("mkdir-existing", lambda d: os.mkdir(d / "dir"), "EEXIST", file_and_dir),
    Case("mkdir-mode", lambda d: os.mkdir(d / "m", 0o750), "ok", observe=mode_of("m")),
    Case(
        "setgid-dir-group-inherited",
        lambda d: (write(d / "g" / "f"), os.mkdir(d / "g" / "sub")),
        "ok",
        setgid_dir,
        lambda d: (owner_of("g/f")(d), owner_of("g/sub")(d), mode_of("g/sub")(d)),
    ),
    # permissions as a second user
    Case(
        "other-create-in-root-dir",
        lambda d: open_close(d / "x", os.O_CREAT | os.O_WRONLY),
        "EACCES",
        others_file,
        as_other=True,
    ),
    Case(
        "other-write-root-file",
        lambda d: open_close(d / "f", os.O_WRONLY),
        "EACCES",
        others_file,
        as_other=True,
    ),
    Case(
        "other-read-secret",
        lambda d: (d / "secret").read_bytes(),
        "EACCES",
        others_file,
        as_other=True,
    ),
    Case("other-read-public", lambda d: (d / "f").read_bytes(), "ok", others_file, as_other=True),
    Case(
        "other-unlink-in-root-dir",
        lambda d: os.unlink(d / "open"),
        "EACCES",
        others_file,
        as_other=True,
    ),
    Case(
        "other-mkdir-in-root-dir", lambda d: os.mkdir(d / "x"), "EACCES", others_file, as_other=True
    ),
    Case(
        "other-traverse-private",
        lambda d: os.listdir(d / "private"),
        "EACCES",
        others_file,
        as_other=True,
    ),
    Case(
        "other-chmod-root-file",
        lambda d: os.chmod(d / "open", 0o777),
        "EPERM",
        others_file,
        as_other=True,
    ),
    Case(
        "other-chown-to-root",
        lambda d: os.chown(d / "public" / "mine", 0, 0),
        "EPERM",
        lambda d: (
            others_file(d),
            write(d / "public" / "mine"),
            os.chown(d / "public" / "mine", OTHER, OTHER),
        ),
        as_other=True,
    ),
    Case(
        "other-utime-explicit-root-file",
        lambda d: os.utime(d / "open", ns=(1, 2)),
        "EPERM",
        others_file,
        as_other=True,
    ),
    Case(
        "other-utime-now-writable-root-file",
        lambda d: os.utime(d / "open"),
        "ok",
        others_file,
        as_other=True,
    ),
    Case(
        "other-utime-now-readonly-root-file",
        lambda d: os.utime(d / "f"),
        "EACCES",
        others_file,
        as_other=True,
    ),
    Case(
        "other-truncate-writable-root-file",
        lambda d: os.truncate(d / "open", 1),
        "ok",
        others_file,
        lambda d: (d / "open").read_bytes(),
        as_other=True,
    ),
    Case(
        "other-create-in-public-dir-owns-it",
        lambda d: write(d / "public" / "x"),
        "ok",
        others_file,
        owner_of("public/x"),
        as_other=True,
    ),
    Case(
        "other-rename-root-file-in-root-dir",
        lambda d: os.rename(d / "open", d / "x"),
        "EACCES",
        others_file,
        as_other=True,
    ),
    Case(
        "other-create-in-sticky-dir",
        lambda d: write(d / "shared" / "mine"),
        "ok",
        sticky_dir,
        owner_of("shared/mine"),
        as_other=True,
    ),
    Case(
        "other-unlink-roots-file-in-sticky-dir",
        lambda d: os.unlink(d / "shared" / "roots"),
        "EPERM",
        sticky_dir,
        as_other=True,
    ),
    Case(
        "other-rename-roots-file-in-sticky-dir",
        lambda d: os.rename(d / "shared" / "roots", d / "shared" / "x"),
        "EPERM",
        sticky_dir,
        as_other=True,
    ),
    Case(
        "other-link-to-secret",
        lambda d: os.link(d / "secret", d / "public" / "stolen"),
        "EPERM",
        others_file,
        as_other=True,
    ),
    Case(
        "other-write-writable-root-file",
        lambda d: (d / "open").write_bytes(b"changed"),
        "ok",
        others_file,
        lambda d: (d / "open").read_bytes(),
        as_other=True,
    ),
    Case(
        "other-append-writable-root-file",
        lambda d: (d / "open").open("ab").write(b"+"),
        "ok",
        others_file,
        lambda d: (d / "open").read_bytes(),
        as_other=True,
    ),
    Case(
        "other-hard-link-own-file",
        lambda d: (
            write(d / "public" / "mine"),
            os.link(d / "public" / "mine", d / "public" / "again"),
        ),
        "ok",
        others_file,
        lambda d: (same_inode("public/mine", "public/again")(d), owner_of("public/again")(d)),
        as_other=True,
    ),
    Case(
        "other-utime-own-symlink-nofollow",
        lambda d: (
            os.symlink("mine", d / "public" / "s"),
            os.utime(d / "public" / "s", ns=(5, 6), follow_symlinks=False),
        ),
        "ok",
        others_file,
        lambda d: (os.lstat(d / "public" / "s").st_mtime_ns, owner_of("public/s")(d)),
        as_other=True,
    ),
    Case(
        "other-mkfifo-in-public-dir",
        lambda d: os.mkfifo(d / "public" / "p", 0o600),
        "ok",
        others_file,
        lambda d: (stat.filemode(os.lstat(d / "public" / "p").st_mode), owner_of("public/p")(d)),
        as_other=True,
    ),
    Case(
        "other-mknod-device",
        lambda d: os.mknod(d / "public" / "c", stat.S_IFCHR | 0o600, os.makedev(1, 3)),
        "EPERM",
        others_file,
        as_other=True,
    ),
    Case(
        "other-rename-own-file-over-own-link",
        lambda d: (
            write(d / "public" / "a"),
            os.link(d / "public" / "a", d / "public" / "b"),
            os.rename(d / "public" / "a", d / "public" / "b"),
        ),
        "ok",
        others_file,
        same_inode("public/a", "public/b"),
        as_other=True,
    ),
]


# --- running a case ---------------------------------------------------------------------------


def outcome(case: Case, d: Path) -> tuple[str, Observation, Observation]:
    """("ok", returned, observed) or (errno name, None, None) of ``case`` run in ``d``."""
    case.setup(d)
    try:
        returned = as_other(case.op, d) if case.as_other else case.op(d)
    except OSError as exc:
        assert exc.errno is not None
        return errno.errorcode[exc.errno], None, None
    return "ok", returned, case.observe(d)


def as_other(op: Callable[[Path], Observation], d: Path) -> Observation:
    """``op(d)`` in a forked child running as uid/gid ``OTHER``; its OSError is re-raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(OTHER, OTHER, OTHER)
            os.setresuid(OTHER, OTHER, OTHER)
            try:
                result: tuple[str, object] = ("ok", op(d))
            except OSError as exc:
                result = ("error", exc.errno)
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(result, out)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        data = answer.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "error":
        raise OSError(value, os.strerror(value))
    return value


# --- fixtures and the test --------------------------------------------------------------------


@dataclass
class Places:
    local: Path
    staging: Path  # a staging with no base
    based: Path  # a staging based on a version of unrelated files
    from_base: Path  # a staging based on a version holding each case's set-up files
    from_base_cases: set[str]  # the cases whose set-up a version holds as it is


# A version holds regular files and directories of their own modes and mtimes; a case whose
# set-up makes anything else (links, symlinks, other owners, special bits) runs its files
# from the base only in the "based" and "plain" variants.
VARIANTS = ["plain", "based", "from-base"]


def holds_as_version(d: Path) -> bool:
    """Whether the tree ``d`` (a case's set-up) is what a version can hold as it is."""
    for dirpath, dirnames, filenames in os.walk(d):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            plain = stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_nlink == 1)
            if not plain or st.st_uid or st.st_gid or stat.S_IMODE(st.st_mode) & 0o7000:
                return False
    return True


def base_tree(src: Path) -> set[str]:
    """Each case's set-up in ``src/<case>``; the names of the cases a version holds as is."""
    held = set()
    old_umask = os.umask(0o022)
    try:
        for case in CASES:
            d = src / case.name
            d.mkdir(parents=True)
            d.chmod(0o755)
            case.setup(d)
            if holds_as_version(d):
                held.add(case.name)
            else:
                shutil.rmtree(d)
    finally:
        os.umask(old_umask)
    (src / "unrelated" / "deeper").mkdir(parents=True)
    (src / "unrelated" / "deeper" / "f").write_bytes(b"unrelated")
    return held


def based_staging(mount: Mount, name: str) -> Path:
    """``proj/<name>``'s staging, based on its latest version through ``.artfs-base``."""
    staging = mount.path / "proj" / name / "staging"
    (staging / ".artfs-base").write_text("latest\n")
    return staging


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Places]:
    """One mount (``--allow-other``) for every case, and a local directory beside it; both
    under a directory the second user can reach."""
    public = Path(tempfile.mkdtemp(prefix="artfs-conformance-"))
    public.chmod(0o755)
    work = tmp_path_factory.mktemp("conformance")
    src = work / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    put(work / "home", src, "proj/data")
    unrelated = work / "unrelated"
    (unrelated / "u").mkdir(parents=True)
    (unrelated / "u" / "f").write_text("unrelated")
    (unrelated / "top.txt").write_text("top")
    put(work / "home", unrelated, "proj/based")
    held = base_tree(work / "cases")
    put(work / "home", work / "cases", "proj/frombase")
    # The second user owns ARTFS_HOME, so the mount lets it change the store (only root, the
    # daemon's user and the store's owner may: tests/reliability/test_permissions.py) and what
    # is checked here is what ext4 checks, the files' own permission bits.
    os.chown(work / "home", OTHER, OTHER)
    mounts = Mounts(work)
    try:
        mount: Mount = mounts.start(work / "home", public / "mnt", "--allow-other")
        (mount.path / "proj" / "conformance").mkdir()
        local = public / "local"
        local.mkdir()
        yield Places(
            local,
            mount.path / "proj" / "conformance" / "staging",
            based_staging(mount, "based"),
            based_staging(mount, "frombase"),
            held,
        )
    finally:
        mounts.close(show_logs=False)
        shutil.rmtree(public, ignore_errors=True)


def staged_dir(case: Case, places: Places, variant: str) -> Path:
    """Where ``case`` runs in staging: a new directory, or (from-base) the base's copy of its
    set-up, which it then does not set up again."""
    if variant == "from-base":
        if case.name not in places.from_base_cases:
            pytest.skip("its set-up makes what a version cannot hold (links, owners, modes)")
        return places.from_base / case.name
    return (places.based if variant == "based" else places.staging) / case.name


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_staging_conforms(case: Case, variant: str, places: Places) -> None:
    old_umask = os.umask(0o022)
    try:
        local_dir = places.local / f"{case.name}-{variant}"
        local_dir.mkdir()
        local_dir.chmod(0o755)
        local = outcome(case, local_dir)
        d = staged_dir(case, places, variant)
        if variant == "from-base":
            staged = outcome(replace(case, setup=lambda d: None), d)
        else:
            d.mkdir()
            d.chmod(0o755)
            staged = outcome(case, d)
    finally:
        os.umask(old_umask)
    assert local[0] == case.expected, f"the local filesystem gave {local}: fix the case"
    assert staged == local
