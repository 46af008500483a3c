"""A staging directory's backing directory, reached safely: the mount's passthrough.

Pure (no pyfuse3): :mod:`artfs.fs.staging` calls these for nodes under ``MNT/proj/NAME/staging``.

Safety invariant: every operation resolves its path *inside* the artifact's backing directory
(``HOME/staging/<project>/<name>``) one component at a time with ``O_NOFOLLOW``, never through
a symlink and never through ``..``; the kernel resolves symlinks a process follows, in the
mount's own namespace, so a symlink in staging pointing at a version lands on a read-only node.
A process therefore cannot write into a version or another artifact through staging.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from artfs.fs.errors import BadRequest

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Identity = tuple[int, int]  # (st_dev, st_ino) of a backing file


def check_component(name: str) -> str:
    """One path component a process may create in staging."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise BadRequest(f"invalid name {name!r}")
    return name


def opened_for_writing(flags: int) -> bool:
    """Whether ``open`` flags allow writes. Access mode 3 (``O_WRONLY|O_RDWR``) allows neither
    reads nor writes on Linux (ext4 and tmpfs open such a file, for ioctls only), and
    ``flock`` refuses such a descriptor with EBADF: it is not a writer."""
    return flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


# --- the backing directory --------------------------------------------------------------------


@dataclass(frozen=True)
class Backing:
    """One artifact's backing directory; ``rel`` paths are relative to it ("" is itself)."""

    root: Path

    @contextlib.contextmanager
    def dir_fd(self, rel: str, *, create_root: bool = False) -> Iterator[int]:
        """An ``O_PATH`` fd of directory ``rel``, reached without following any symlink."""
        if create_root:
            self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in rel.split("/") if rel else ():
                check_component(part)
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def parent_of(self, rel: str, *, create_root: bool = False) -> Iterator[tuple[int, str]]:
        if not rel:
            raise BadRequest("the staging directory itself cannot be changed this way")
        parent, _, name = rel.rpartition("/")
        with self.dir_fd(parent, create_root=create_root) as fd:
            yield fd, check_component(name)

    def lstat(self, rel: str) -> os.stat_result:
        if not rel:
            return os.stat(self.root)
        with self.parent_of(rel) as (fd, name):
            return os.stat(name, dir_fd=fd, follow_symlinks=False)

    def exists(self) -> bool:
        return self.root.is_dir()

    def listdir(self, rel: str) -> list[tuple[str, os.stat_result]]:
        if not rel and not self.root.is_dir():
            return []
        with self.dir_fd(rel) as pfd:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
            try:
                with os.scandir(fd) as entries:
                    found = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
            finally:
                os.close(fd)
        return sorted(found)

    def open(self, rel: str, flags: int) -> int:
        flags = (flags & ~(os.O_CREAT | os.O_EXCL)) | os.O_NOFOLLOW | os.O_CLOEXEC
        with self.parent_of(rel) as (fd, name):
            return os.open(name, flags, dir_fd=fd)

    def create(self, rel: str, flags: int, mode: int, owner: tuple[int, int] | None) -> int:
        flags = flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        with self.parent_of(rel, create_root=True) as (pfd, name):
            fd = os.open(name, flags, 0o600, dir_fd=pfd)
            owner = _inherited(pfd, owner)
        try:
            os.fchmod(fd, stat.S_IMODE(mode))  # exactly the mode asked for, not our umask's
            if owner is not None:
                os.fchown(fd, *owner)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def mkdir(self, rel: str, mode: int, owner: tuple[int, int] | None) -> None:
        with self.parent_of(rel, create_root=True) as (fd, name):
            os.mkdir(name, 0o700, dir_fd=fd)
            if _setgid(fd):  # a directory made in a setgid one is setgid too (ext4 does so)
                mode |= stat.S_ISGID
            os.chmod(name, stat.S_IMODE(mode), dir_fd=fd, follow_symlinks=True)
            owner = _inherited(fd, owner)
            if owner is not None:
                os.chown(name, *owner, dir_fd=fd, follow_symlinks=False)

    def symlink(self, rel: str, target: str, owner: tuple[int, int] | None) -> None:
        with self.parent_of(rel, create_root=True) as (fd, name):
            os.symlink(target, name, dir_fd=fd)
            owner = _inherited(fd, owner)
            if owner is not None:
                os.chown(name, *owner, dir_fd=fd, follow_symlinks=False)

    def mknod(self, rel: str, mode: int, rdev: int, owner: tuple[int, int] | None) -> None:
        with self.parent_of(rel, create_root=True) as (fd, name):
            os.mknod(name, mode, rdev, dir_fd=fd)
            owner = _inherited(fd, owner)
            if owner is not None:
                os.chown(name, *owner, dir_fd=fd, follow_symlinks=False)

    def readlink(self, rel: str) -> bytes:
        with self.parent_of(rel) as (fd, name):
            return os.fsencode(os.readlink(name, dir_fd=fd))

    def unlink(self, rel: str) -> None:
        with self.parent_of(rel) as (fd, name):
            os.unlink(name, dir_fd=fd)

    def rmdir(self, rel: str) -> None:
        with self.parent_of(rel) as (fd, name):
            os.rmdir(name, dir_fd=fd)

    def rename(self, old: str, new: str, *, noreplace: bool) -> bool:
        """Rename; False if ``old`` and ``new`` are links to one file (rename(2) then does
        nothing and succeeds)."""
        with self.parent_of(old) as (old_fd, old_name), self.parent_of(new) as (new_fd, new_name):
            source = os.stat(old_name, dir_fd=old_fd, follow_symlinks=False)
            try:
                target = os.stat(new_name, dir_fd=new_fd, follow_symlinks=False)
            except FileNotFoundError:
                target = None
            if target is not None and noreplace:
                raise FileExistsError(errno.EEXIST, "target exists")
            if target is not None and _same_file(source, target):
                return False
            os.rename(old_name, new_name, src_dir_fd=old_fd, dst_dir_fd=new_fd)
            return True

    def link(self, old: str, new: str) -> os.stat_result:
        """A hard link ``new`` to ``old`` (a symlink is linked itself); the file's stat."""
        with self.parent_of(old) as (old_fd, old_name), self.parent_of(new) as (new_fd, new_name):
            os.link(old_name, new_name, src_dir_fd=old_fd, dst_dir_fd=new_fd, follow_symlinks=False)
            return os.stat(new_name, dir_fd=new_fd, follow_symlinks=False)

    def put_file(
        self, rel: str, pieces: Iterable[bytes], mode: int, mtime_ns: int, temp: str
    ) -> None:
        """Write file ``rel`` from ``pieces`` with ``mode`` and ``mtime_ns``: under the name
        ``temp`` in the same directory first, renamed into place once whole."""
        with self.parent_of(rel, create_root=True) as (pfd, name):
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=pfd
            )
            try:
                for piece in pieces:
                    view = memoryview(piece)
                    while view:
                        view = view[os.write(fd, view) :]
                os.fchmod(fd, stat.S_IMODE(mode))
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            except BaseException:
                os.close(fd)
                os.unlink(temp, dir_fd=pfd)
                raise
            os.close(fd)
            os.rename(temp, name, src_dir_fd=pfd, dst_dir_fd=pfd)

    def put_marker(self, rel: str, data: bytes = b"") -> None:
        """Write the marker file ``rel`` (empty, or holding ``data``), replacing one there."""
        with self.parent_of(rel, create_root=True) as (pfd, name):
            temp = f"{name}.{os.getpid()}.tmp"
            fd = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                0o644,
                dir_fd=pfd,
            )
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.rename(temp, name, src_dir_fd=pfd, dst_dir_fd=pfd)

    def remove_file(self, rel: str) -> bool:
        """Unlink ``rel`` if it is there (a marker); whether it was."""
        try:
            self.unlink(rel)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def names(self, rel: str) -> list[str]:
        """The names in directory ``rel``; none when it does not exist."""
        try:
            return [name for name, _ in self.listdir(rel)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def setattr(self, rel: str, change: AttrChange, fd: int | None) -> None:
        """Apply ``change``; with ``fd`` (an open handle of the file) it is used directly."""
        if fd is not None:
            _apply(fd, change)
            return
        if not rel:
            self.root.mkdir(parents=True, exist_ok=True)
        st = self.lstat(rel)
        if stat.S_ISLNK(st.st_mode):
            # The kernel sends a symlink's own setattr only for a call that does not follow
            # it (lchown, utimensat with AT_SYMLINK_NOFOLLOW); a symlink has no mode or size.
            with self.parent_of(rel) as (pfd, name):
                if change.uid is not None or change.gid is not None:
                    os.chown(
                        name, _id(change.uid), _id(change.gid), dir_fd=pfd, follow_symlinks=False
                    )
                if change.atime_ns is not None or change.mtime_ns is not None:
                    os.utime(name, ns=_times(change, st), dir_fd=pfd, follow_symlinks=False)
            return
        if rel:
            with self.parent_of(rel) as (pfd, name):
                own = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        else:
            own = os.open(self.root, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            # An O_PATH fd cannot fchmod or ftruncate; its /proc/self/fd link can, and it names
            # the inode already looked up without following symlinks, so nothing can be
            # swapped in between.
            _apply(f"/proc/self/fd/{own}", change)
        finally:
            os.close(own)


def _apply(target: int | str, change: AttrChange) -> None:
    if change.size is not None:
        os.truncate(target, change.size)
    if change.mode is not None:
        os.chmod(target, stat.S_IMODE(change.mode))
    if change.uid is not None or change.gid is not None:
        os.chown(target, _id(change.uid), _id(change.gid))
    if change.atime_ns is not None or change.mtime_ns is not None:
        os.utime(target, ns=_times(change, os.stat(target)))


def _times(change: AttrChange, st: os.stat_result) -> tuple[int, int]:
    """(atime, mtime) after ``change``: a time it leaves alone stays as ``st`` has it."""
    atime = change.atime_ns if change.atime_ns is not None else st.st_atime_ns
    mtime = change.mtime_ns if change.mtime_ns is not None else st.st_mtime_ns
    return atime, mtime


def _setgid(dir_fd: int) -> bool:
    return bool(os.fstat(dir_fd).st_mode & stat.S_ISGID)


def _inherited(dir_fd: int, owner: tuple[int, int] | None) -> tuple[int, int] | None:
    """The owner to give a new entry of directory ``dir_fd``: in a setgid directory the group
    stays the directory's (the backing filesystem gave it), not the caller's."""
    if owner is not None and _setgid(dir_fd):
        return owner[0], -1
    return owner


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def identity_of(st: os.stat_result) -> Identity | None:
    """The backing identity a staged node is numbered by: only for a non-directory with more
    than one link (every name of it must show one inode)."""
    if stat.S_ISDIR(st.st_mode) or st.st_nlink < 2:
        return None
    return (st.st_dev, st.st_ino)


def _id(value: int | None) -> int:
    return -1 if value is None else value


@dataclass(frozen=True)
class AttrChange:
    """What a ``setattr`` asks for; None: leave it."""

    size: int | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None


__all__ = [
    "AttrChange",
    "Backing",
    "Identity",
    "check_component",
    "identity_of",
    "join",
    "opened_for_writing",
]
