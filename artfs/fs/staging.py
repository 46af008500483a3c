"""Staging as the mount shows it: ``MNT/<project>/<name>/staging`` and the control files.

Pure (no pyfuse3). :class:`StagingView` owns everything of staging that lives in the daemon:
the inode numbers of staged paths (:class:`~artfs.fs.staged_paths.StagedPaths`), the open
staged and virtual files (one handle space, from ``STAGED_FH_BASE`` up), and the last commit
result per artifact. :class:`artfs.vfs.Vfs` keeps the node table and hands every staging
request over here by artifact and path (``rel``, relative to the staging directory, "" being
the directory itself); it hears of nodes now reached by another path through ``relocate``.

Every path goes to the artifact's backing directory through :class:`~artfs.fs.backing.Backing`
(one component at a time, ``O_NOFOLLOW``).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from artfs.errors import ArtfsError, NotFound
from artfs.fs import staging_files
from artfs.fs.backing import (
    AttrChange,
    Backing,
    BadRequest,
    ReadOnly,
    check_component,
    identity_of,
    join,
    opened_for_writing,
)
from artfs.fs.staged_paths import ArtifactKey, StagedPaths
from artfs.fs.staging_files import (
    CONTROL_FILE,
    REGISTER_FILE,
    STAGED_FH_BASE,
    STORE_FILE,
    BackingFile,
    CommitFailed,
    CommitRequest,
    ConstantFile,
    ControlFile,
    RegisterFile,
)
from artfs.lineage import check_run_id
from artfs.names import NAME_RE, ArtifactName
from artfs.store import manifest, staging
from artfs.store.repository import PutResult, Store
from artfs.usage import UsageRecorder, proc_stat

# An open staged or virtual file (handles from STAGED_FH_BASE up).
OpenFile = BackingFile | ControlFile | RegisterFile | ConstantFile
# Tells the tree that the held node ``ino`` is now reached by path ``rel``.
Relocate = Callable[[int, str], None]
_RESULTS_KEPT = 4096


@dataclass(frozen=True, slots=True)
class StagedStat:
    """What ``stat`` shows of a staged path (the tree adds the inode number and timeout)."""

    mode: int
    nlink: int
    size: int
    mtime_ns: int
    uid: int
    gid: int
    atime_ns: int
    ctime_ns: int
    blocks_512: int
    rdev: int = 0

    @classmethod
    def of(cls, st: os.stat_result) -> StagedStat:
        return cls(
            st.st_mode,
            st.st_nlink,
            st.st_size,
            st.st_mtime_ns,
            st.st_uid,
            st.st_gid,
            st.st_atime_ns,
            st.st_ctime_ns,
            st.st_blocks,
            st.st_rdev,
        )


class StagingView:
    """The staging directories of every artifact, as the mount shows and changes them."""

    def __init__(self, store: Store, *, relocate: Relocate) -> None:
        self.store = store
        self.recorder: UsageRecorder | None = None
        self.paths = StagedPaths()
        self._relocate = relocate
        self._files: dict[int, OpenFile] = {}
        self._open: dict[int, set[int]] = {}  # staged inode -> its open backing handles
        self._next_handle = STAGED_FH_BASE
        self._results: OrderedDict[tuple[str, str, int | None], bytes] = OrderedDict()
        self._owner_is_root = os.geteuid() == 0

    # --- paths and numbers ----------------------------------------------------------------

    def backing(self, art: ArtifactName) -> Backing:
        return Backing(staging.path(self.store, art))

    def has_project(self, project: str) -> bool:
        """Whether ``project`` has a staging directory (it may have no version yet)."""
        return bool(NAME_RE.fullmatch(project)) and (staging.root(self.store) / project).is_dir()

    def inode(self, art: ArtifactName, rel: str, st: os.stat_result | None = None) -> int:
        """The inode number of staged path ``rel`` (``st``: its backing stat, if known)."""
        identity = None if st is None else identity_of(st)
        return self.paths.inode(_key(art), rel, identity)

    def forget(self, art: ArtifactName, ino: int, rel: str) -> None:
        """The kernel forgot the staged node ``ino``."""
        self.paths.forget(_key(art), ino, rel)

    def child(self, art: ArtifactName, rel: str) -> int | None:
        """The inode of staged path ``rel``; None when there is nothing there."""
        try:
            st = self.backing(art).lstat(rel)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self.inode(art, rel, st)

    def listing(self, art: ArtifactName, rel: str) -> list[tuple[str, int]]:
        """(name, inode) of the entries of staged directory ``rel``, in name order."""
        entries = self.backing(art).listdir(rel)
        return [(name, self.inode(art, join(rel, name), st)) for name, st in entries]

    def stat(self, art: ArtifactName, rel: str, ino: int) -> StagedStat | None:
        """What ``rel`` (inode ``ino``) shows; None for a staging directory not made yet."""
        for fh in self._open.get(ino, ()):
            handle = self._files.get(fh)
            if isinstance(handle, BackingFile):
                return StagedStat.of(os.fstat(handle.fd))  # right after an unlink or a rename
        try:
            return StagedStat.of(self.backing(art).lstat(rel))
        except (FileNotFoundError, NotADirectoryError):
            if not rel:
                return None  # no backing directory yet: an empty staging
            raise NotFound(f"{rel} does not exist in staging") from None

    def readlink(self, art: ArtifactName, rel: str) -> bytes:
        return self.backing(art).readlink(rel)

    def stale_entries(self, art: ArtifactName, root_ino: int) -> list[tuple[int, bytes]]:
        """(parent inode, name) of every staged path of ``art`` the kernel may cache."""
        key = _key(art)
        found = []
        for rel in self.paths.held(key):
            parent, _, leaf = rel.rpartition("/")
            parent_ino = self.paths.inode(key, parent) if parent else root_ino
            found.append((parent_ino, manifest.encode_path(leaf)))
        return found

    # --- open files -----------------------------------------------------------------------

    def new_handle(self, handle: OpenFile) -> int:
        fh = self._next_handle
        self._next_handle += 1
        self._files[fh] = handle
        return fh

    def open(self, art: ArtifactName, rel: str, ino: int, flags: int) -> int:
        """Open a staged file; a writer holds a shared flock (a commit then refuses)."""
        try:
            fd = self.backing(art).open(rel, flags)
        except FileNotFoundError:
            # Removed behind the kernel's back (a commit by the CLI emptied staging): ESTALE
            # makes the kernel look the name up again and retry, so `echo > f` creates anew.
            raise OSError(errno.ESTALE, f"{rel} is no longer in staging") from None
        return self._opened(fd, ino, opened_for_writing(flags))

    def _opened(self, fd: int, ino: int, writable: bool) -> int:
        if writable:
            fcntl.flock(fd, fcntl.LOCK_SH)  # a commit probing with LOCK_EX now refuses
        fh = self.new_handle(BackingFile(fd, writable))
        self._open.setdefault(ino, set()).add(fh)
        return fh

    def open_control(self, art: ArtifactName, flags: int, pid: int) -> int:
        """Open ``staging/.artfs-commit``; a writer's run becomes the version's logged_by."""
        writable = opened_for_writing(flags)
        found = proc_stat(pid) if pid else None
        run_id = None
        if writable and pid and self.recorder is not None:
            run_id = self.recorder.run_for(pid, art.project)
        session = found.session if found else None
        control = ControlFile(art.project, art.name, pid, session, writable, run_id=run_id)
        return self.new_handle(control)

    def open_register(self, pid: int) -> int:
        return self.new_handle(RegisterFile(pid))

    def open_constant(self, data: bytes, flags: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise ReadOnly(f"{STORE_FILE} is read-only")
        return self.new_handle(ConstantFile(data))

    def open_copy(self, path: os.PathLike[str]) -> int:
        """A read-only handle on a local file (a reference's verified copy)."""
        return self.new_handle(BackingFile(os.open(path, os.O_RDONLY | os.O_CLOEXEC), False))

    def _handle(self, fh: int) -> OpenFile:
        found = self._files.get(fh)
        if found is None:
            raise NotFound(f"file handle {fh} is not open")
        return found

    def read(self, fh: int, offset: int, size: int) -> bytes:
        handle = self._handle(fh)
        if isinstance(handle, BackingFile):
            return os.pread(handle.fd, size, offset)
        if isinstance(handle, ControlFile):
            result = self._results.get((handle.project, handle.name, handle.session))
            if result is None:
                result = self._results.get((handle.project, handle.name, None), b"")
            return result[offset : offset + size]
        if isinstance(handle, ConstantFile):
            return handle.data[offset : offset + size]
        return b""

    def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self._handle(fh)
        if isinstance(handle, BackingFile):
            return os.pwrite(handle.fd, data, offset)
        if isinstance(handle, ControlFile):
            if not handle.writable:
                raise BadRequest(f"{CONTROL_FILE} is not open for writing")
            return handle.write(offset, data)
        if isinstance(handle, ConstantFile):
            raise ReadOnly(f"{STORE_FILE} is read-only")
        if len(handle.data) + len(data) > 4096:
            raise BadRequest(f"{REGISTER_FILE}: write one run id")
        handle.data += data
        if handle.complete():
            self._register(handle)
        return len(data)

    def _register(self, handle: RegisterFile) -> None:
        run_id = handle.run_id()
        handle.data.clear()
        try:
            check_run_id(run_id)
        except NotFound as exc:
            raise BadRequest(str(exc)) from None
        if self.recorder is not None:
            self.recorder.register(handle.pid, run_id)

    def commit_due(self, fh: int) -> CommitRequest | None:
        """After a write: the commit the control file now asks for (see Vfs.commit_due)."""
        handle = self._files.get(fh)
        return handle.take() if isinstance(handle, ControlFile) else None

    def commit(self, control: CommitRequest) -> PutResult:
        """Commit staging as the control file asked (blocking); the outcome is kept for
        reading back, an error is raised as a Commit* error."""
        art = ArtifactName(control.project, control.name)
        try:
            options = staging_files.parse_commit_options(control.options)
            if self.recorder is not None:
                self.recorder.persist_runs()  # logged_by must name a recorded run
            result = staging.commit(
                self.store,
                art,
                force=bool(options.get("force", False)),
                type_=options.get("type"),
                aliases=options.get("aliases", []),
                description=options.get("description"),
                metadata=options.get("metadata", {}),
                tags=options.get("tags", []),
                logged_by=control.run_id,
            )
        except (ArtfsError, OSError) as exc:
            message = str(exc) if isinstance(exc, ArtfsError) else f"commit failed: {exc}"
            self._keep_result(control, staging_files.result_json(error=message))
            if isinstance(exc, ArtfsError):
                raise staging_files.commit_error(exc) from None
            raise CommitFailed(message) from None
        self._keep_result(control, staging_files.result_json(result.record.ref, result.created))
        return result

    def _keep_result(self, control: CommitRequest, result: bytes) -> None:
        for session in (control.session, None):
            key = (control.project, control.name, session)
            self._results[key] = result
            self._results.move_to_end(key)
        while len(self._results) > _RESULTS_KEPT:
            self._results.popitem(last=False)

    def staged_fd(self, fh: int) -> int | None:
        handle = self._files.get(fh)
        return handle.fd if isinstance(handle, BackingFile) else None

    def caching(self, fh: int) -> tuple[bool, bool] | None:
        """(keep_cache, direct_io) of a staged or virtual handle; None for another one."""
        handle = self._files.get(fh)
        if handle is None:
            return None
        return False, not isinstance(handle, BackingFile)

    def release(self, fh: int) -> None:
        handle = self._files.pop(fh, None)
        if isinstance(handle, BackingFile):
            os.close(handle.fd)  # drops the shared flock
            for ino, handles in list(self._open.items()):
                handles.discard(fh)
                if not handles:
                    del self._open[ino]

    # --- changes --------------------------------------------------------------------------

    def owner(self, uid: int, gid: int) -> tuple[int, int] | None:
        # Only a daemon running as root can give new files to the caller; otherwise they are
        # the daemon user's, as on any FUSE filesystem mounted by a user.
        return (uid, gid) if self._owner_is_root else None

    def create(
        self, art: ArtifactName, rel: str, flags: int, mode: int, owner: tuple[int, int] | None
    ) -> tuple[int, int]:
        """Create and open file ``rel``: (handle, inode)."""
        fd = self.backing(art).create(rel, flags, mode, owner)
        self.made(art, rel)
        ino = self.inode(art, rel)
        return self._opened(fd, ino, opened_for_writing(flags)), ino

    def mkdir(self, art: ArtifactName, rel: str, mode: int, owner: tuple[int, int] | None) -> None:
        self.backing(art).mkdir(rel, mode, owner)
        self.made(art, rel)

    def mknod(
        self, art: ArtifactName, rel: str, mode: int, rdev: int, owner: tuple[int, int] | None
    ) -> None:
        self.backing(art).mknod(rel, mode, rdev, owner)
        self.made(art, rel)

    def symlink(
        self, art: ArtifactName, rel: str, target: bytes, owner: tuple[int, int] | None
    ) -> None:
        self.backing(art).symlink(rel, os.fsdecode(target), owner)
        self.made(art, rel)

    def unlink(self, art: ArtifactName, rel: str, *, directory: bool) -> None:
        backing = self.backing(art)
        (backing.rmdir if directory else backing.unlink)(rel)
        self._moved(self.paths.detach(_key(art), rel))

    def rename(self, art: ArtifactName, old: str, new: str, *, noreplace: bool) -> None:
        if self.backing(art).rename(old, new, noreplace=noreplace):
            self._moved(self.paths.move(_key(art), old, new))

    def link(self, art: ArtifactName, ino: int, rel: str, new: str) -> None:
        """A hard link ``new`` to ``rel`` (inode ``ino``): every name shows one inode."""
        st = self.backing(art).link(rel, new)
        self.paths.link(_key(art), ino, (st.st_dev, st.st_ino), [rel, new])

    def setattr(self, art: ArtifactName, rel: str, change: AttrChange, fh: int | None) -> None:
        fd = self.staged_fd(fh) if fh else None
        self.backing(art).setattr(rel, change, fd)

    def made(self, art: ArtifactName, rel: str) -> None:
        """``rel`` was just made: a new file, so not the inode its path had. (A commit by the
        CLI, or one while the kernel held the names, removed the file that had it behind the
        kernel's back; reusing the number gave a new file the inode of a committed one still
        open, whose other names it then took for its own.)"""
        self._moved(self.paths.detach(_key(art), rel))

    def _moved(self, moved: list[tuple[int, str]]) -> None:
        """Held nodes now reached by another path (a rename, or the name of a hard-linked
        file they were reached by went)."""
        for ino, rel in moved:
            self._relocate(ino, rel)


def checked_name(name: bytes) -> str:
    """A name a process may create in staging (EINVAL otherwise)."""
    return check_component(manifest.decode_path(name))


def _key(art: ArtifactName) -> ArtifactKey:
    return (art.project, art.name)


__all__ = ["OpenFile", "StagedStat", "StagingView", "checked_name"]
