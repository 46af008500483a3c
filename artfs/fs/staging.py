"""Staging as the mount shows it: ``MNT/<project>/<name>/staging`` and the control files.

Pure (no pyfuse3). :class:`StagingView` owns everything of staging that lives in the daemon:
the inode numbers of staged paths (:class:`~artfs.fs.staged_paths.StagedPaths`), the open
staged and virtual files (one handle space, from ``STAGED_FH_BASE`` up), and the last commit
result per artifact. :class:`artfs.vfs.Vfs` keeps the node table, and its staging half
(:class:`artfs.fs.staged_tree.StagedTree`) hands every staging request over here by artifact
and path (``rel``, relative to the staging directory, "" being the directory itself); it
hears of nodes now reached by another path through ``relocate``.

Every path goes to the artifact's backing directory through :class:`~artfs.fs.backing.Backing`
(one component at a time, ``O_NOFOLLOW``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from artfs.errors import ArtfsError, NotFound
from artfs.fs import staging_files
from artfs.fs.backing import (
    AttrChange,
    Backing,
    check_component,
    identity_of,
    join,
    opened_for_writing,
)
from artfs.fs.errors import BadRequest, CommitFailed, ReadOnly
from artfs.fs.overlay import BaseCache, BaseRead, CopyOnWrite, base_path, entry_mode
from artfs.fs.reader import ChunkCache, ChunkHolders, Pinned, open_reader, pins_for
from artfs.fs.staged_paths import ArtifactKey, StagedPaths
from artfs.fs.staging_files import (
    BASE_FILE,
    CONTROL_FILE,
    REGISTER_FILE,
    STAGED_FH_BASE,
    STORE_FILE,
    BackingFile,
    BaseControl,
    BaseRequest,
    CommitRequest,
    ConstantFile,
    ControlFile,
    RegisterFile,
)
from artfs.lineage import check_run_id
from artfs.names import NAME_RE, ArtifactName
from artfs.procinfo import proc_stat
from artfs.store import manifest, staging
from artfs.store.manifest import FileEntry
from artfs.store.repository import PinnedChunks, PutResult, Store
from artfs.usage import UsageRecorder

# An open staged or virtual file (handles from STAGED_FH_BASE up).
OpenFile = BackingFile | BaseRead | ControlFile | BaseControl | RegisterFile | ConstantFile
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

    def __init__(
        self, store: Store, cache: ChunkCache, holders: ChunkHolders, *, relocate: Relocate
    ) -> None:
        self.store = store
        self.cache = cache
        self.holders = holders  # a base file open for reading holds its chunks (FileReader)
        self.bases = BaseCache(store)
        self.recorder: UsageRecorder | None = None
        self.paths = StagedPaths()
        self._relocate = relocate
        self._files: dict[int, OpenFile] = {}
        self._open: dict[int, set[int]] = {}  # staged inode -> its open backing handles
        self._next_handle = STAGED_FH_BASE
        self._results: OrderedDict[tuple[str, str, int | None], bytes] = OrderedDict()
        self._owner_is_root = os.geteuid() == 0
        self._uid, self._gid = os.getuid(), os.getgid()

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

    def cow(self, art: ArtifactName) -> CopyOnWrite | None:
        """The copy-on-write view of ``art``'s staging; None when it has no base."""
        base = self.bases.get(art)
        return None if base is None else CopyOnWrite(self.store, art, base)

    def child(self, art: ArtifactName, rel: str) -> int | None:
        """The inode of staged path ``rel``; None when there is nothing there."""
        if staging.is_reserved(rel.rpartition("/")[2]):
            return None  # markers never show
        try:
            st = self.backing(art).lstat(rel)
        except (FileNotFoundError, NotADirectoryError):
            cow = self.cow(art)
            if cow is None or cow.entry(rel) is None:
                return None
            return self.inode(art, rel)
        return self.inode(art, rel, st)

    def listing(self, art: ArtifactName, rel: str) -> list[tuple[str, int, StagedStat]]:
        """(name, inode, stat) of the entries of staged directory ``rel``, in name order: the
        upper directory's, and those of the base it shows (see :mod:`artfs.store.staging`)."""
        cow = self.cow(art)
        try:
            entries = self.backing(art).listdir(rel)
        except (FileNotFoundError, NotADirectoryError):
            if cow is None:
                raise
            entries = []  # a directory of the base not copied up
        found = []
        for name, st in entries:
            if not staging.is_reserved(name):
                ino = self.inode(art, join(rel, name), st)
                found.append((name, ino, self._open_stat(ino) or StagedStat.of(st)))
        if cow is not None:
            for entry in staging.base_listing(self.store, art, rel, base=cow.base):
                ino = self.inode(art, entry.path)
                found.append((entry.name, ino, self._base_stat(entry)))
        return sorted(found)

    def _open_stat(self, ino: int) -> StagedStat | None:
        for fh in self._open.get(ino, ()):
            handle = self._files.get(fh)
            if isinstance(handle, BackingFile):
                return StagedStat.of(os.fstat(handle.fd))  # right after an unlink or a rename
        return None

    def stat(self, art: ArtifactName, rel: str, ino: int) -> StagedStat | None:
        """What ``rel`` (inode ``ino``) shows; None for a staging directory not made yet."""
        found = self._open_stat(ino)
        if found is not None:
            return found
        try:
            return StagedStat.of(self.backing(art).lstat(rel))
        except (FileNotFoundError, NotADirectoryError):
            cow = self.cow(art)
            entry = None if cow is None else cow.entry(rel)
            if entry is not None:
                return self._base_stat(entry)
            if not rel:
                return None  # no backing directory yet: an empty staging
            raise NotFound(f"{rel} does not exist in staging") from None

    def _base_stat(self, entry: FileEntry) -> StagedStat:
        """What a base entry shows: its mode and times, the daemon's user as owner."""
        size = 0 if entry.is_dir else entry.size
        nlink = 2 if entry.is_dir else 1
        mtime = entry.mtime_ns
        blocks = (size + 511) // 512
        return StagedStat(
            entry_mode(entry), nlink, size, mtime, self._uid, self._gid, mtime, mtime, blocks
        )

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

    def base_to_read(self, art: ArtifactName, rel: str, flags: int) -> FileEntry | None:
        """The base entry an open of ``rel`` with ``flags`` reads from the store (a based
        staging's file that only the base has, opened for reading), else None. Its slow part
        (a reference file's fetch, a large file's pins) may be done first, off the caller's
        event loop, and handed to :meth:`open`."""
        if opened_for_writing(flags) or flags & os.O_TRUNC:
            return None
        cow = self.cow(art)
        if cow is None or cow.upper(rel) is not None:
            return None
        entry = cow.entry(rel)
        return None if entry is None or entry.is_dir else entry

    def open(
        self,
        art: ArtifactName,
        rel: str,
        ino: int,
        flags: int,
        pinned: Pinned | None = None,
        fetched: tuple[FileEntry, Path] | None = None,
    ) -> int:
        """Open a staged file; a writer holds a shared flock (a commit then refuses). A base
        file opened for reading is read from the store; for writing it is copied up first
        (with O_TRUNC: an empty file of its mode, nothing copied).

        What the caller did first for the file :meth:`base_to_read` named, used if staging
        still shows that base file: ``pinned``, the entry and its chunks pinned (the handle
        takes the pins over; the caller unpins them if it did not, see :meth:`holds_pins`),
        ``fetched``, a reference file's entry and its verified copy."""
        writable = opened_for_writing(flags)
        try:
            fd = self.backing(art).open(rel, flags)
        except (FileNotFoundError, NotADirectoryError):
            cow = self.cow(art)
            entry = None if cow is None else cow.entry(rel)
            if cow is None or entry is None:
                # Removed behind the kernel's back (a commit by the CLI emptied staging):
                # ESTALE makes the kernel look the name up again and retry, so `echo > f`
                # creates anew.
                raise OSError(errno.ESTALE, f"{rel} is no longer in staging") from None
            if not (writable or flags & os.O_TRUNC):
                return self._open_base(cow, rel, entry, pinned, fetched)
            cow.copy_up(rel, entry, empty=bool(flags & os.O_TRUNC))
            fd = self.backing(art).open(rel, flags & ~os.O_TRUNC)
        return self._opened(fd, ino, writable)

    def copy_up_due(self, art: ArtifactName, rel: str, flags: int) -> bool:
        """Whether opening ``rel`` with ``flags`` copies a base file's content up (a write
        without O_TRUNC of a file only the base has): the caller may do it first, off its
        event loop, with :meth:`copy_up`."""
        if not opened_for_writing(flags) or flags & os.O_TRUNC:
            return False
        cow = self.cow(art)
        if cow is None or cow.upper(rel) is not None:
            return False
        entry = cow.entry(rel)
        return entry is not None and not entry.is_dir

    def copy_up(self, art: ArtifactName, rel: str) -> None:
        """Copy base file ``rel`` up if only the base still has it (blocking: chunk reads)."""
        cow = self.cow(art)
        if cow is not None:
            _copy_up_if_base(cow, rel, empty=False)

    def _open_base(
        self,
        cow: CopyOnWrite,
        rel: str,
        entry: FileEntry,
        pinned: Pinned | None,
        fetched: tuple[FileEntry, Path] | None,
    ) -> int:
        if entry.is_reference:
            if fetched is not None and fetched[0] == entry:
                return self.open_copy(fetched[1])
            # Not fetched first (or the staging was based anew meanwhile): fetched here.
            return self.open_copy(self.store.reference_copy(entry))
        path = base_path(self.store, cow.art, rel) or rel
        pins = pins_for(pinned, entry)  # None: made for another file (based anew): pinned here
        reader, pins = open_reader(self.store, replace(entry, path=path), self.cache, pins=pins)
        fh = self.new_handle(BaseRead(reader, pins, cow.base, path))
        self.holders.hold(fh, entry.chunks)  # its handle number: a key of its own
        return fh

    def base_read(self, fh: int) -> BaseRead | None:
        """The base file a handle reads, if it is one (read like a version's file)."""
        handle = self._files.get(fh)
        return handle if isinstance(handle, BaseRead) else None

    def holds_pins(self, fh: int, pins: PinnedChunks) -> bool:
        """Whether handle ``fh`` took ``pins`` over (see :meth:`open`)."""
        read = self.base_read(fh)
        return read is not None and read.pins is pins

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

    def open_base_control(self, art: ArtifactName, flags: int) -> int:
        """Open ``staging/.artfs-base``: reads give the base's ref, a ref written sets it."""
        return self.new_handle(BaseControl(art.project, art.name, opened_for_writing(flags)))

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
        if isinstance(handle, BaseControl):
            base = self.bases.get(ArtifactName(handle.project, handle.name))
            return (b"" if base is None else f"{base.ref}\n".encode())[offset : offset + size]
        if isinstance(handle, BaseRead):
            return bytes(handle.reader.read(offset, size))
        return b""

    def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self._handle(fh)
        if isinstance(handle, BackingFile):
            return os.pwrite(handle.fd, data, offset)
        if isinstance(handle, ControlFile):
            if not handle.writable:
                raise BadRequest(f"{CONTROL_FILE} is not open for writing")
            return handle.write(offset, data)
        if isinstance(handle, BaseControl):
            if not handle.writable:
                raise BadRequest(f"{BASE_FILE} is not open for writing")
            return handle.write(offset, data)
        if isinstance(handle, ConstantFile):
            raise ReadOnly(f"{STORE_FILE} is read-only")
        if isinstance(handle, BaseRead):
            raise OSError(errno.EBADF, "not open for writing")
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

    def commit_due(self, fh: int) -> CommitRequest | BaseRequest | None:
        """After a write: the commit (or base) a control file now asks for (see
        Vfs.commit_due)."""
        handle = self._files.get(fh)
        return handle.take() if isinstance(handle, (ControlFile, BaseControl)) else None

    def set_base(self, request: BaseRequest) -> None:
        """Base the staging on the version ``request`` names (blocking: a worker thread),
        as ``artfs stage --from`` does: refused (EBUSY) while staging holds changes."""
        art = ArtifactName(request.project, request.name)
        try:
            ref = request.parsed()
            record = None if ref is None else self.store.resolve(ref)
            staging.rebase(self.store, art, record, reset=False)
        except NotFound:
            raise
        except ArtfsError as exc:
            raise staging_files.commit_error(exc) from None

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
        return False, not isinstance(handle, (BackingFile, BaseRead))

    def release(self, fh: int) -> None:
        handle = self._files.pop(fh, None)
        if isinstance(handle, BaseRead):
            self.store.unpin_chunks(handle.pins)
            self.holders.release(fh)
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

    def _new_entry(self, art: ArtifactName, rel: str) -> CopyOnWrite | None:
        """Before making ``rel``: in a based staging, refuse a name the base shows there and
        copy the parent directory up. Returns the view (None: no base)."""
        cow = self.cow(art)
        if cow is not None:
            if cow.upper(rel) is None and cow.entry(rel) is not None:
                raise FileExistsError(errno.EEXIST, f"{rel} exists")
            cow.upper_dirs(rel.rpartition("/")[0])
        return cow

    def _made_new(self, cow: CopyOnWrite | None, art: ArtifactName, rel: str) -> None:
        if cow is not None:
            cow.unwhite(rel)  # a whiteout of the name: the new entry replaces it
        self.made(art, rel)

    def create(
        self, art: ArtifactName, rel: str, flags: int, mode: int, owner: tuple[int, int] | None
    ) -> tuple[int, int]:
        """Create and open file ``rel``: (handle, inode)."""
        cow = self._new_entry(art, rel)
        fd = self.backing(art).create(rel, flags, mode, owner)
        self._made_new(cow, art, rel)
        ino = self.inode(art, rel)
        return self._opened(fd, ino, opened_for_writing(flags)), ino

    def mkdir(self, art: ArtifactName, rel: str, mode: int, owner: tuple[int, int] | None) -> None:
        """A new directory; in a based staging one made where a base entry was deleted is
        opaque (nothing of the base below it shows)."""
        cow = self._new_entry(art, rel)
        whited = cow is not None and cow.has_whiteout(rel)
        self.backing(art).mkdir(rel, mode, owner)
        if cow is not None and whited:
            cow.marker(rel, staging.OPAQUE)
        self._made_new(cow, art, rel)

    def mknod(
        self, art: ArtifactName, rel: str, mode: int, rdev: int, owner: tuple[int, int] | None
    ) -> None:
        cow = self._new_entry(art, rel)
        self.backing(art).mknod(rel, mode, rdev, owner)
        self._made_new(cow, art, rel)

    def symlink(
        self, art: ArtifactName, rel: str, target: bytes, owner: tuple[int, int] | None
    ) -> None:
        cow = self._new_entry(art, rel)
        self.backing(art).symlink(rel, os.fsdecode(target), owner)
        self._made_new(cow, art, rel)

    def unlink(self, art: ArtifactName, rel: str, *, directory: bool) -> None:
        """Remove ``rel``; in a based staging a base entry is whited out, and a directory
        must be empty in the merged view."""
        cow = self.cow(art)
        if cow is None:
            backing = self.backing(art)
            (backing.rmdir if directory else backing.unlink)(rel)
        else:
            _remove_merged(cow, rel, directory=directory)
        self._moved(self.paths.detach(_key(art), rel))

    def rename(self, art: ArtifactName, old: str, new: str, *, noreplace: bool) -> None:
        cow = self.cow(art)
        if cow is None:
            if not self.backing(art).rename(old, new, noreplace=noreplace):
                return
        elif not _rename_merged(cow, old, new, noreplace=noreplace):
            return
        self._moved(self.paths.move(_key(art), old, new))

    def link(self, art: ArtifactName, ino: int, rel: str, new: str) -> None:
        """A hard link ``new`` to ``rel`` (inode ``ino``): every name shows one inode. A base
        file is copied up first."""
        cow = self._new_entry(art, new)
        if cow is not None:
            _copy_up_if_base(cow, rel, empty=False)
        st = self.backing(art).link(rel, new)
        if cow is not None:
            cow.unwhite(new)
        self.paths.link(_key(art), ino, (st.st_dev, st.st_ino), [rel, new])

    def setattr(self, art: ArtifactName, rel: str, change: AttrChange, fh: int | None) -> None:
        """Apply ``change``; a base entry is copied up first (truncated to 0: nothing
        copied), a base directory as an empty upper directory."""
        fd = self.staged_fd(fh) if fh else None
        cow = self.cow(art) if fd is None and rel else None
        if cow is not None:
            _copy_up_if_base(cow, rel, empty=change.size == 0)
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


def _copy_up_if_base(cow: CopyOnWrite, rel: str, *, empty: bool) -> None:
    """Copy ``rel`` up when only the base has it (a directory: as an empty upper one)."""
    if cow.upper(rel) is not None:
        return
    entry = cow.entry(rel)
    if entry is None:
        raise FileNotFoundError(errno.ENOENT, f"{rel} does not exist in staging")
    if entry.is_dir:
        cow.upper_dirs(rel)
    else:
        cow.copy_up(rel, entry, empty=empty)


def _is_dir(st: os.stat_result | None, entry: FileEntry | None) -> bool:
    if st is not None:
        return stat.S_ISDIR(st.st_mode)
    return entry is not None and entry.is_dir


def _remove_merged(cow: CopyOnWrite, rel: str, *, directory: bool) -> None:
    """unlink or rmdir ``rel`` of a based staging."""
    st, entry = cow.upper(rel), cow.entry(rel)
    if st is None and entry is None:
        raise FileNotFoundError(errno.ENOENT, f"{rel} does not exist in staging")
    is_dir = _is_dir(st, entry)
    if directory and not is_dir:
        raise NotADirectoryError(errno.ENOTDIR, f"{rel} is not a directory")
    if not directory and is_dir:
        raise IsADirectoryError(errno.EISDIR, f"{rel} is a directory")
    if directory and cow.names(rel, limit=1):
        raise OSError(errno.ENOTEMPTY, f"{rel} is not empty")
    if entry is not None:
        cow.check_deletable(rel)
    if st is not None:
        if directory:
            cow.clear_markers(rel)
            cow.backing.rmdir(rel)
        else:
            cow.backing.unlink(rel)
    if entry is not None:
        cow.whiteout(rel)


def _rename_merged(cow: CopyOnWrite, old: str, new: str, *, noreplace: bool) -> bool:
    """rename(2) in a based staging; False when it does nothing (two names of one file).
    A base file is copied up under the new name, a base directory becomes an empty upper
    directory redirected to it (O(1)); the old name of a base entry gets a whiteout."""
    src_st, src_entry = cow.upper(old), cow.entry(old)
    if src_st is None and src_entry is None:
        raise FileNotFoundError(errno.ENOENT, f"{old} does not exist in staging")
    tgt_st, tgt_entry = cow.upper(new), cow.entry(new)
    src_dir = _is_dir(src_st, src_entry)
    if tgt_st is not None or tgt_entry is not None:
        if noreplace:
            raise FileExistsError(errno.EEXIST, f"{new} exists")
        if old == new or (src_st is not None and tgt_st is not None and _same(src_st, tgt_st)):
            return False
        _check_replace(cow, new, src_dir, _is_dir(tgt_st, tgt_entry))
    if src_entry is not None:
        cow.check_deletable(old)
    cow.upper_dirs(new.rpartition("/")[0])
    whited = cow.has_whiteout(new)
    if src_st is not None:
        shown = cow.base_dir_shown(old) if src_dir else None
        cow.backing.rename(old, new, noreplace=False)
        if shown is not None:
            cow.marker(new, staging.REDIRECT, manifest.encode_path(shown))
        elif _needs_opaque(cow, new, src_dir, tgt_entry is not None or whited):
            cow.marker(new, staging.OPAQUE)
    elif src_dir:
        assert src_entry is not None
        shown = base_path(cow.store, cow.art, old)
        if tgt_st is not None:
            cow.backing.rmdir(new)  # an empty directory (markers cleared) it replaces
        cow.backing.mkdir(new, src_entry.mode, None)
        cow.marker(new, staging.REDIRECT, manifest.encode_path(shown or old))
    else:
        assert src_entry is not None
        cow.copy_up(new, src_entry)
    if src_entry is not None:
        cow.whiteout(old)
    if whited:
        cow.unwhite(new)
    return True


def _needs_opaque(cow: CopyOnWrite, new: str, src_dir: bool, base_there: bool) -> bool:
    """Whether an upper directory moved to ``new`` must hide the base entries there."""
    return src_dir and base_there and not cow.has_marker(new, staging.REDIRECT)


def _check_replace(cow: CopyOnWrite, new: str, src_dir: bool, tgt_dir: bool) -> None:
    """What rename(2) checks of the entry it replaces; an empty upper directory replaced
    loses its markers first (the merged view showed it empty)."""
    if src_dir and not tgt_dir:
        raise NotADirectoryError(errno.ENOTDIR, f"{new} is not a directory")
    if tgt_dir and not src_dir:
        raise IsADirectoryError(errno.EISDIR, f"{new} is a directory")
    if tgt_dir:
        if cow.names(new, limit=1):
            raise OSError(errno.ENOTEMPTY, f"{new} is not empty")
        if cow.upper(new) is not None:
            cow.clear_markers(new)


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def checked_name(name: bytes) -> str:
    """A name a process may create in staging (EINVAL otherwise): not one of the names
    staging keeps for its markers (``.artfs-wh.*``)."""
    text = check_component(manifest.decode_path(name))
    if staging.is_reserved(text):
        raise BadRequest(f"{text!r}: names starting with {staging.MARKER_PREFIX} are reserved")
    return text


def _key(art: ArtifactName) -> ArtifactKey:
    return (art.project, art.name)


__all__ = ["OpenFile", "StagedStat", "StagingView", "checked_name"]
