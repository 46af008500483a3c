"""Staging through the mount: a passthrough to each artifact's backing directory.

Pure (no pyfuse3): :class:`artfs.vfs.Vfs` calls these for nodes under ``MNT/proj/NAME/staging``.

Safety invariant: every operation resolves its path *inside* the artifact's backing directory
(``HOME/staging/<project>/<name>``) one component at a time with ``O_NOFOLLOW``, never through
a symlink and never through ``..``; the kernel resolves symlinks a process follows, in the
mount's own namespace, so a symlink in staging pointing at a version lands on a read-only node.
A process therefore cannot write into a version or another artifact through staging.

Inode numbers of staged nodes come from a counter at or above :data:`STAGED_INO_BASE` (version
nodes hash below it, see ``NodeKey.inode``), are kept while the kernel holds the node, and
follow a node (and its descendants) through renames.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artfs.errors import ArtfsError, Conflict, InputError, InvalidName, NotFound

STAGED_INO_BASE = 1 << 62
STAGED_FH_BASE = 1 << 62
# Staged files change under the kernel (a commit empties staging): a short cache only.
STAGED_TIMEOUT = 0.2
CONTROL_FILE = ".artfs-commit"  # staging/.artfs-commit: write options, close -> commit
REGISTER_FILE = ".artfs-register"  # MNT/.artfs-register: write a run id -> this process's run
STORE_FILE = ".artfs-store"  # MNT/.artfs-store: the store's id (read-only), see vfs
CONTROL_MAX_BYTES = 64 << 10
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class CrossDevice(ArtfsError):
    """A rename between two staging directories, or into or out of staging (EXDEV)."""


class BadRequest(ArtfsError):
    """A malformed name or control-file write through the mount (EINVAL)."""


class CommitBusy(ArtfsError):
    """A commit through the control file refused: a file open for writing, or another commit
    of the same artifact running (EBUSY)."""


class CommitInvalid(ArtfsError):
    """A commit through the control file refused for bad input (EINVAL)."""


class CommitFailed(ArtfsError):
    """A commit through the control file failed otherwise (EIO)."""


def commit_error(exc: ArtfsError) -> ArtfsError:
    """The control-file error (and so the errno ``close()`` returns) for a failed commit."""
    if isinstance(exc, (CommitBusy, CommitInvalid, CommitFailed)):
        return exc
    if isinstance(exc, Conflict):
        return CommitBusy(str(exc))
    if isinstance(exc, (InputError, InvalidName)):
        return CommitInvalid(str(exc))
    return CommitFailed(str(exc))


def parse_commit_options(data: bytes) -> dict[str, Any]:
    """The options written to ``.artfs-commit``: nothing, or a JSON object with any of
    ``aliases``, ``type``, ``description``, ``metadata``, ``tags``, ``force``."""
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise CommitInvalid(f"{CONTROL_FILE}: not JSON ({exc})") from None
    if not isinstance(options, dict):
        raise CommitInvalid(f'{CONTROL_FILE}: write a JSON object, e.g. {{"aliases": ["best"]}}')
    allowed = {"aliases", "type", "description", "metadata", "tags", "force"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise CommitInvalid(
            f"{CONTROL_FILE}: unknown option {unknown[0]!r}; allowed: {sorted(allowed)}"
        )
    for key in ("aliases", "tags"):
        value = options.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CommitInvalid(f"{CONTROL_FILE}: {key!r} must be a list of strings")
    if not isinstance(options.get("metadata", {}), dict):
        raise CommitInvalid(f"{CONTROL_FILE}: 'metadata' must be a JSON object")
    for key in ("type", "description"):
        if key in options and not isinstance(options[key], str):
            raise CommitInvalid(f"{CONTROL_FILE}: {key!r} must be a string")
    return options


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


# --- staged node numbers ----------------------------------------------------------------------

ArtifactKey = tuple[str, str]  # (project, name)


Identity = tuple[int, int]  # (st_dev, st_ino) of a backing file


@dataclass
class StagedPaths:
    """Which inode a staged path has, for the paths the kernel holds.

    An inode is handed out once per path and kept until the kernel forgets it; a rename moves
    the number (and those of every held descendant) to the new path, an unlink detaches it.

    Hard links: every name of one backing file has one inode. A file gets its backing
    identity recorded when it is linked, or looked up with more than one link; a later name
    with that identity gets the same number. :meth:`names` are all the known names of such an
    inode, so when the name a node is reached by goes, the node moves to another one.
    """

    _by_path: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _next: int = STAGED_INO_BASE + 1
    _by_identity: dict[tuple[str, str, int, int], int] = field(default_factory=dict)
    _linked: dict[int, tuple[tuple[str, str, int, int], set[str]]] = field(default_factory=dict)

    def inode(self, art: ArtifactKey, rel: str, identity: Identity | None = None) -> int:
        """The inode of ``rel``; ``identity`` for a file with more than one link."""
        key = (*art, rel)
        found = self._by_path.get(key)
        if found is not None:
            return found
        if identity is not None:
            found = self._by_identity.get((*art, *identity))
        if found is None:
            found = self._next
            self._next += 1
        self._by_path[key] = found
        if identity is not None:
            self._add_name(art, identity, found, rel)
        return found

    def link(self, art: ArtifactKey, ino: int, identity: Identity, names: list[str]) -> None:
        """``names`` are names of the file ``ino`` (a hard link was just made)."""
        for rel in names:
            self._by_path[(*art, rel)] = ino
            self._add_name(art, identity, ino, rel)

    def _add_name(self, art: ArtifactKey, identity: Identity, ino: int, rel: str) -> None:
        ident = (*art, *identity)
        self._by_identity[ident] = ino
        self._linked.setdefault(ino, (ident, set()))[1].add(rel)

    def _drop_name(self, ino: int, rel: str) -> None:
        linked = self._linked.get(ino)
        if linked is None:
            return
        linked[1].discard(rel)
        if not linked[1]:
            del self._linked[ino]
            # Only if it still names this inode: a file committed away can leave its backing
            # inode number to a new file, whose names have it now.
            if self._by_identity.get(linked[0]) == ino:
                del self._by_identity[linked[0]]

    def names(self, ino: int) -> set[str]:
        """The known names of a hard-linked inode (empty for any other)."""
        linked = self._linked.get(ino)
        return set(linked[1]) if linked else set()

    def detach(self, art: ArtifactKey, rel: str, ino: int | None = None) -> list[tuple[int, str]]:
        """``rel`` is gone; (inode, name) for a hard-linked inode that has other names left,
        which its node moves to."""
        key = (*art, rel)
        held = self._by_path.get(key)
        if held is None or (ino is not None and held != ino):
            return []
        del self._by_path[key]
        self._drop_name(held, rel)
        others = sorted(self.names(held))
        return [(held, others[0])] if others else []

    def forget(self, art: ArtifactKey, ino: int, rel: str) -> None:
        """The kernel forgot ``ino``: drop every name it had."""
        for name in self.names(ino) | {rel}:
            self.detach(art, name, ino)

    def move(self, art: ArtifactKey, old: str, new: str) -> list[tuple[int, str]]:
        """Renumber nothing: move ``old`` and its descendants to ``new``; (inode, new path) of
        every moved node. A node held at ``new`` before (replaced by the rename) is detached."""
        moved = self.detach(art, new)
        for key in [k for k in self._by_path if k[:2] == art and k[2].startswith(new + "/")]:
            moved += self.detach(art, key[2])
        for key in list(self._by_path):
            if key[:2] != art:
                continue
            rel = key[2]
            if rel == old or rel.startswith(old + "/"):
                ino = self._by_path.pop(key)
                target = new + rel[len(old) :]
                self._by_path[(*art, target)] = ino
                linked = self._linked.get(ino)
                if linked is not None:
                    linked[1].discard(rel)
                    linked[1].add(target)
                moved.append((ino, target))
        return moved

    def held(self, art: ArtifactKey) -> list[str]:
        """Paths of ``art`` the kernel may have cached, deepest first."""
        found = [key[2] for key in self._by_path if key[:2] == art]
        return sorted(found, key=lambda rel: -rel.count("/"))

    def __len__(self) -> int:
        return len(self._by_path)


# --- open files -------------------------------------------------------------------------------


@dataclass
class BackingFile:
    """A staged file open through the mount. A writer holds a shared ``flock`` on it until
    release, so a commit (which probes with an exclusive one) refuses while it is open."""

    fd: int
    writable: bool


@dataclass
class ControlFile:
    """An open ``staging/.artfs-commit``: bytes written are the commit's options."""

    project: str
    name: str
    pid: int
    session: int | None
    writable: bool
    run_id: str | None = None  # the opener's run: the new version's logged_by
    data: bytearray = field(default_factory=bytearray)
    pending: bool = False  # written since the last commit

    def complete(self) -> bool:
        """Whether the options written so far are a whole request: a JSON object, or
        anything ending with a newline (``echo ... > F``; what does not parse is then an
        error). Options split over several writes commit on the write that completes them."""
        text = bytes(self.data)
        if text.endswith(b"\n"):
            return True
        try:
            return isinstance(json.loads(text), dict)
        except ValueError:
            return False

    def take(self) -> CommitRequest | None:
        """The commit asked for, once a write completed the options (see :meth:`complete`).
        Only a write starts one; opening and closing the file does not."""
        if not self.pending or not self.complete():
            return None
        request = CommitRequest(
            self.project, self.name, self.session, self.run_id, bytes(self.data)
        )
        self.pending = False
        self.data.clear()
        return request

    def write(self, offset: int, data: bytes) -> int:
        if offset + len(data) > CONTROL_MAX_BYTES:
            raise BadRequest(f"{CONTROL_FILE}: options larger than {CONTROL_MAX_BYTES} bytes")
        if len(self.data) < offset:
            self.data += b"\0" * (offset - len(self.data))
        self.data[offset : offset + len(data)] = data
        self.pending = True
        return len(data)


@dataclass(frozen=True)
class CommitRequest:
    """A commit asked for through ``.artfs-commit``: by whom, with which options (JSON)."""

    project: str
    name: str
    session: int | None
    run_id: str | None
    options: bytes


@dataclass
class RegisterFile:
    """An open ``MNT/.artfs-register``: the run id written becomes the opener's run."""

    pid: int
    data: bytearray = field(default_factory=bytearray)

    def complete(self) -> bool:
        """A whole line (``echo ID > F``), or a JSON object, has been written."""
        return self.data.endswith(b"\n") or self.data.strip().endswith(b"}")

    def run_id(self) -> str:
        text = self.data.decode("ascii", "replace").strip()
        if text.startswith("{"):
            try:
                text = str(json.loads(text).get("run_id", ""))
            except (ValueError, AttributeError):
                raise BadRequest(f"{REGISTER_FILE}: write a run id") from None
        return text


def result_json(ref: str | None = None, created: bool = False, error: str | None = None) -> bytes:
    if error is not None:
        return (json.dumps({"error": error.splitlines()[0] if error else "failed"}) + "\n").encode()
    return (json.dumps({"ref": ref, "created": created}) + "\n").encode()


def not_found(what: str) -> NotFound:
    return NotFound(f"{what} does not exist in staging")


__all__ = [
    "CONTROL_FILE",
    "REGISTER_FILE",
    "STAGED_FH_BASE",
    "STAGED_INO_BASE",
    "STAGED_TIMEOUT",
    "STORE_FILE",
    "AttrChange",
    "Backing",
    "BackingFile",
    "BadRequest",
    "CommitBusy",
    "CommitFailed",
    "CommitInvalid",
    "CommitRequest",
    "ControlFile",
    "CrossDevice",
    "RegisterFile",
    "StagedPaths",
    "commit_error",
    "identity_of",
    "opened_for_writing",
    "parse_commit_options",
]
