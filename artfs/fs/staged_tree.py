"""The staging half of the mounted tree: staged nodes and every change made through the mount.

Staging directories (``/<project>/<name>/staging/...``), their control files and the changes the
mount takes (new projects and artifacts, files, directories, links, renames, attribute changes,
commits) are handed to :class:`artfs.fs.staging.StagingView` by artifact and path; this module
maps the tree's nodes and inodes onto those calls. Pure: no pyfuse3 here.

:class:`StagedTree` is a mixin of :class:`artfs.vfs.Vfs`, which owns the node table, lookups and
reads: the staging methods need that table and hand their new entries back to a lookup, so they
share the one object the daemon talks to rather than pointing back at it.
"""

from __future__ import annotations

import errno
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from artfs.errors import Conflict
from artfs.fs.backing import AttrChange, join
from artfs.fs.errors import BadRequest, CrossDevice, NotSupported, ReadOnly
from artfs.fs.nodes import (
    STAGING_KINDS,
    Attr,
    DirEntry,
    FileHandle,
    Inode,
    Kind,
    Node,
    NodeKey,
    _art_key,
    _checked,
    _DirHandle,
    _is_control,
    entry_base,
)
from artfs.fs.reader import FileReader, Pinned
from artfs.fs.staging import StagedStat, StagingView, checked_name
from artfs.fs.staging_files import (
    BASE_FILE,
    CONTROL_FILE,
    STAGED_TIMEOUT,
    BaseRequest,
    CommitRequest,
)
from artfs.names import ArtifactName
from artfs.store import catalog, manifest, staging
from artfs.store.index import Txn
from artfs.store.manifest import FileEntry
from artfs.store.repository import PutResult, Store
from artfs.usage import FileUsage, UsageRecorder

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2  # renameat2 flags, as FUSE passes them


class StagedTree:
    """Staged nodes, their attributes and listings, and the tree's changes (see the module).

    Every change but a new project or artifact is refused outside staging (``ReadOnly``), and
    across two artifacts' staging (``CrossDevice``)."""

    # Provided by the class that inherits this one (artfs.vfs.Vfs).
    store: Store
    staging: StagingView
    uid: int
    gid: int
    started_ns: int
    _nodes: dict[Inode, Node]

    if TYPE_CHECKING:

        def node(self, ino: int) -> Node: ...

        def remember(self, node: Node) -> Node: ...

        def lookup(self, parent: int, name: bytes) -> Attr: ...

        def getattr(self, ino: int) -> Attr: ...

        def _child(self, txn: Txn, node: Node, name: str) -> Node | None: ...

    # --- the usage recorder, shared with staging ------------------------------------------

    @property
    def recorder(self) -> UsageRecorder | None:
        """Where usage and run registrations go (None: no lineage); staging shares it."""
        return self.staging.recorder

    @recorder.setter
    def recorder(self, recorder: UsageRecorder | None) -> None:
        self.staging.recorder = recorder

    # --- staged nodes, their attributes and listings --------------------------------------

    def _relocate(self, ino: int, rel: str) -> None:
        """A held staged node is now reached by path ``rel`` (a rename, or the name of a
        hard-linked file it was reached by went)."""
        node = self._nodes.get(Inode(ino))
        if node is not None:
            node.key = replace(node.key, path=rel)

    def _staged_node(self, parent: Node, rel: str, ino: int | None = None) -> Node:
        """The node of staged path ``rel`` (``ino``: its number, if known)."""
        if ino is None:
            ino = self.staging.inode(parent.artifact, rel)
        held = self._nodes.get(Inode(ino))
        if held is not None:
            return held
        key = NodeKey(Kind.STAGED, parent.key.project, parent.key.name, path=rel)
        return Node(key, fixed_ino=ino)

    def _staged_attr(self, node: Node) -> Attr:
        found = self.staging.stat(node.artifact, node.key.path, node.ino)
        if found is None:
            mode, nlink, mtime = stat.S_IFDIR | 0o755, 2, self.started_ns
            return Attr(node.ino, mode, nlink, 0, mtime, self.uid, self.gid, STAGED_TIMEOUT)
        return self._attr_of(node, found)

    def _attr_of(self, node: Node, found: StagedStat) -> Attr:
        return Attr(
            node.ino,
            found.mode,
            found.nlink,
            found.size,
            found.mtime_ns,
            found.uid,
            found.gid,
            STAGED_TIMEOUT,
            found.atime_ns,
            found.ctime_ns,
            found.blocks_512,
            found.rdev,
        )

    def _control_attr(self, node: Node) -> Attr:
        root = self._staged_attr(Node(NodeKey(Kind.STAGING, node.key.project, node.key.name)))
        mode = stat.S_IFREG | (stat.S_IMODE(root.mode) & 0o666)
        return Attr(node.ino, mode, 1, 0, self.started_ns, root.uid, root.gid, STAGED_TIMEOUT)

    def _staged_child(self, node: Node, name: str) -> Node | None:
        if node.key.kind is Kind.STAGING and name == CONTROL_FILE:
            return Node(NodeKey(Kind.CONTROL, node.key.project, node.key.name))
        if node.key.kind is Kind.STAGING and name == BASE_FILE:
            return Node(NodeKey(Kind.CONTROL, node.key.project, node.key.name, alias=BASE_FILE))
        rel = join(node.key.path, name)
        ino = self.staging.child(node.artifact, rel)
        return None if ino is None else self._staged_node(node, rel, ino)

    def _staged_listing(self, node: Node) -> list[tuple[str, Node]]:
        return [(name, child) for name, child, _ in self._staged_attrs(node)]

    def _staged_attrs(self, node: Node) -> list[tuple[str, Node, Attr]]:
        """(name, node, attributes) of every entry of a staged directory, in name order."""
        if node.key.kind not in STAGING_KINDS:
            return []
        found = []
        for name, ino, st in self.staging.listing(node.artifact, node.key.path):
            child = self._staged_node(node, join(node.key.path, name), ino)
            found.append((name, child, self._attr_of(child, st)))
        return found

    def _staged_entries(self, handle: _DirHandle, start_id: int) -> Iterator[DirEntry]:
        """A staged directory's entries after ``start_id``: listed once per pass (a base
        directory of a based staging may be large), from a listing made at offset 0."""
        if handle.staged is None or start_id == 0:
            handle.staged = self._staged_attrs(handle.node)
        listed = handle.staged
        for position in range(start_id, len(listed)):
            name, child, attr = listed[position]
            yield DirEntry(manifest.encode_path(name), attr, position + 1, child)

    def _staged_dir(self, ino: int) -> Node:
        node = self.node(ino)
        if node.key.kind not in STAGING_KINDS:
            raise ReadOnly("only staging directories can be written")
        return node

    def _new_rel(self, parent: Node, name: bytes) -> str:
        """The staged path of a new entry ``name`` of ``parent`` (a name one may create)."""
        text = checked_name(name)
        if _is_control(parent, text):
            raise FileExistsError(errno.EEXIST, f"{text} is reserved")
        return join(parent.key.path, text)

    # --- staged and virtual files ---------------------------------------------------------

    def open_other(
        self,
        node: Node,
        flags: int,
        pid: int,
        pinned: Pinned | None = None,
        fetched: tuple[FileEntry, Path] | None = None,
        *,
        uid: int = -1,
    ) -> FileHandle:
        """Open a staged file (writers hold a shared flock) or a virtual control file;
        ``pinned`` and ``fetched``: for a base file, see :meth:`StagingView.open`."""
        key = node.key
        if key.kind is Kind.REGISTER:
            return FileHandle(self.staging.open_register(pid))
        if key.kind is Kind.CONTROL and key.alias == BASE_FILE:
            return FileHandle(self.staging.open_base_control(node.artifact, flags))
        if key.kind is Kind.CONTROL:
            return FileHandle(self.staging.open_control(node.artifact, flags, pid))
        fh = self.staging.open(node.artifact, key.path, node.ino, flags, pinned, fetched)
        read = self.staging.base_read(fh)
        if read is not None and pid and self.recorder is not None:
            # A base file is a version's file: its read is recorded like one.
            try:
                usage = self._base_usage(read.base.artifact, read.base.version, read.path)
                if usage is not None:
                    self.recorder.opened(pid, read.base.artifact.project, usage, uid)
            except BaseException:  # the kernel gets no handle, and will not release it
                self.staging.release(fh)
                raise
        return FileHandle(fh)

    def _base_usage(self, art: ArtifactName, number: int, path: str) -> FileUsage | None:
        """The usage name (see :class:`UsageNames`) of file ``path`` of version ``number`` of
        ``art``, the one a read of it through the version's own directory records; None if
        the version or the file is gone."""
        with self.store.index.read() as txn:
            record = catalog.get_version(txn, art, number)
            found = None if record is None else catalog.lookup_ranked(txn, record, path)
        if record is None or found is None:
            return None
        ino = entry_base(record, posixpath.dirname(path)) + found[0]  # as its node's
        return record.key, ino.to_bytes(8, "big")

    def copy_up_due(self, ino: int, flags: int) -> bool:
        """Whether opening ``ino`` with ``flags`` copies a base file up (see
        :meth:`copy_up`, which the daemon runs in a worker thread first)."""
        node = self.node(ino)
        if node.key.kind is not Kind.STAGED:
            return False
        return self.staging.copy_up_due(node.artifact, node.key.path, flags)

    def copy_up(self, ino: int) -> None:
        """Copy the base file ``ino`` up into the upper directory (blocking)."""
        node = self.node(ino)
        self.staging.copy_up(node.artifact, node.key.path)

    def base_reader(self, fh: int) -> FileReader | None:
        """The reader of a base file open through staging (read like a version's file)."""
        read = self.staging.base_read(fh)
        return None if read is None else read.reader

    def caching(self, fh: int) -> tuple[bool, bool]:
        """(keep_cache, direct_io) for a handle: version files keep the page cache, staged
        files do not, virtual files bypass it."""
        found = self.staging.caching(fh)
        return (True, False) if found is None else found

    def read_other(self, fh: int, offset: int, size: int) -> bytes:
        return self.staging.read(fh, offset, size)

    def write(self, fh: int, offset: int, data: bytes) -> int:
        return self.staging.write(fh, offset, data)

    def commit_due(self, fh: int) -> CommitRequest | BaseRequest | None:
        """After a write: the commit the control file now asks for, which the caller must run
        (:meth:`commit_control`) before answering the write. Committing on the write that
        completes the options, not on close, lets the daemon leave FLUSH unimplemented, so the
        kernel stops sending one on every close() of every file (about 20 us each here)."""
        return self.staging.commit_due(fh)

    def commit_control(self, control: CommitRequest | BaseRequest) -> PutResult | None:
        """Commit staging as the control file asked, or set its base as ``.artfs-base`` asked
        (blocking: run it in a worker thread); the outcome of a commit is kept for reading
        back, an error is raised as a Commit* error."""
        if isinstance(control, BaseRequest):
            self.staging.set_base(control)
            return None
        return self.staging.commit(control)

    def stale_entries(self, project: str, name: str) -> list[tuple[Inode, bytes]]:
        """(parent inode, name) of every entry the kernel may cache that a commit of
        ``project/name`` changed: staged paths (the commit removed them) and ``latest``."""
        root = NodeKey(Kind.STAGING, project, name).inode()
        found = self.staging.stale_entries(ArtifactName(project, name), root)
        found.append((NodeKey(Kind.ARTIFACT, project, name).inode(), b"latest"))
        return [(Inode(parent), leaf) for parent, leaf in found]

    def staged_fd(self, fh: int) -> int | None:
        return self.staging.staged_fd(fh)

    def release_other(self, fh: int) -> None:
        self.staging.release(fh)

    # --- changes: new entries, removals, renames, links, attributes -----------------------

    def create_file(
        self, parent: int, name: bytes, flags: int, mode: int, uid: int, gid: int, umask: int
    ) -> tuple[FileHandle, Attr]:
        node = self._staged_dir(parent)
        rel = self._new_rel(node, name)
        owner = self.staging.owner(uid, gid)
        fh, ino = self.staging.create(node.artifact, rel, flags, mode & ~umask, owner)
        child = self.remember(self._staged_node(node, rel, ino))
        return FileHandle(fh), self._staged_attr(child)

    def mkdir(self, parent: int, name: bytes, mode: int, uid: int, gid: int, umask: int) -> Attr:
        node = self.node(parent)
        text = manifest.decode_path(name)
        kind = node.key.kind
        if kind is Kind.ROOT:
            project = _checked(text, "project name")
            with self.store.index.read() as txn:
                if self._child(txn, node, project) is not None:
                    raise FileExistsError(errno.EEXIST, f"project {project} exists")
            self.store.create_project(project)
        elif kind is Kind.PROJECT:
            art = ArtifactName(node.key.project, _checked(text, "artifact name"))
            with self.store.index.read() as txn:
                if self._child(txn, node, art.name) is not None:
                    raise FileExistsError(errno.EEXIST, f"artifact {art} exists")
                known = catalog.has_project(txn, art.project)
            if not known:
                self.store.create_project(art.project)
            staging.ensure(self.store, art)
        elif kind in STAGING_KINDS:
            rel = join(node.key.path, checked_name(name))
            self.staging.mkdir(node.artifact, rel, mode & ~umask, self.staging.owner(uid, gid))
        else:
            raise ReadOnly("only staging directories, projects and the root take new entries")
        return self.lookup(parent, name)

    def mknod(
        self, parent: int, name: bytes, mode: int, rdev: int, uid: int, gid: int, umask: int
    ) -> Attr:
        node = self._staged_dir(parent)
        rel = join(node.key.path, checked_name(name))
        self.staging.mknod(node.artifact, rel, mode & ~umask, rdev, self.staging.owner(uid, gid))
        return self.lookup(parent, name)

    def symlink(self, parent: int, name: bytes, target: bytes, uid: int, gid: int) -> Attr:
        node = self._staged_dir(parent)
        rel = join(node.key.path, checked_name(name))
        self.staging.symlink(node.artifact, rel, target, self.staging.owner(uid, gid))
        return self.lookup(parent, name)

    def unlink(self, parent: int, name: bytes, *, directory: bool = False) -> None:
        if directory and self.node(parent).key.kind in (Kind.ROOT, Kind.PROJECT):
            self._remove_empty(self.node(parent), manifest.decode_path(name))
            return
        node = self._staged_dir(parent)
        text = checked_name(name)
        if _is_control(node, text):
            raise PermissionError(errno.EPERM, f"{text} cannot be removed")
        self.staging.unlink(node.artifact, join(node.key.path, text), directory=directory)

    def _remove_empty(self, parent: Node, text: str) -> None:
        """``rmdir`` of a project or an artifact: only while nothing is in it, as ``mkdir``
        made it (an artifact with no version and an empty staging; a project with no artifact),
        else ENOTEMPTY, as for any directory that holds entries."""
        with self.store.index.read() as txn:
            child = self._child(txn, parent, text)
        if child is None:
            raise FileNotFoundError(errno.ENOENT, f"{text}: no such project or artifact")
        if child.key.kind not in (Kind.PROJECT, Kind.ARTIFACT):  # .artfs-register, .artfs-store
            raise NotADirectoryError(errno.ENOTDIR, f"{text} is not a directory")
        if child.key.kind is Kind.PROJECT:
            removed = staging.delete_empty_project(self.store, text)
        else:
            removed = self._remove_unversioned(child.artifact)
        if not removed:
            raise OSError(errno.ENOTEMPTY, f"{text} holds versions or staged files")

    def _remove_unversioned(self, art: ArtifactName) -> bool:
        """Whether ``art``'s staging went: not while it is based on a version (it shows that
        version's files), holds staged files, or ``art`` has versions."""
        if staging.base_of(self.store, art) is not None:
            return False
        try:
            return staging.remove_unversioned(self.store, art)
        except Conflict:  # versions, or staged files never committed
            return False

    def rename(self, old_parent: int, old: bytes, new_parent: int, new: bytes, flags: int) -> None:
        source, target = self.node(old_parent), self.node(new_parent)
        in_source, in_target = source.key.kind in STAGING_KINDS, target.key.kind in STAGING_KINDS
        if not in_source and not in_target:
            raise ReadOnly("versions are read-only")
        if not (in_source and in_target) or _art_key(source) != _art_key(target):
            raise CrossDevice("rename only within one artifact's staging")
        if flags & RENAME_EXCHANGE:
            raise BadRequest("RENAME_EXCHANGE is not supported in staging")
        names = [checked_name(n) for n in (old, new)]
        for parent_node, text in ((source, names[0]), (target, names[1])):
            if _is_control(parent_node, text):
                raise PermissionError(errno.EPERM, f"{text} cannot be renamed")
        old_rel = join(source.key.path, names[0])
        new_rel = join(target.key.path, names[1])
        noreplace = bool(flags & RENAME_NOREPLACE)
        self.staging.rename(source.artifact, old_rel, new_rel, noreplace=noreplace)

    def link(self, ino: int, new_parent: int, name: bytes) -> Attr:
        """A hard link in staging: every name shows one inode with the right link count."""
        node, target = self.node(ino), self.node(new_parent)
        if target.key.kind not in STAGING_KINDS:
            raise ReadOnly("only staging directories take new entries")
        if node.key.kind is not Kind.STAGED or _art_key(node) != _art_key(target):
            if node.key.kind in (Kind.STAGING, Kind.CONTROL):
                raise PermissionError(errno.EPERM, "cannot link this")
            raise CrossDevice("hard links only within one artifact's staging")
        new_rel = self._new_rel(target, name)
        self.staging.link(node.artifact, node.ino, node.key.path, new_rel)
        self.remember(node)  # the new entry is one more kernel reference
        return self._staged_attr(node)

    def setattr(self, ino: int, change: AttrChange, fh: int | None) -> Attr:
        node = self.node(ino)
        if node.key.kind in (Kind.CONTROL, Kind.REGISTER):
            return self.getattr(ino)  # the truncation of `echo > .artfs-commit`: nothing to do
        if node.key.kind not in STAGING_KINDS:
            raise ReadOnly("versions are read-only")
        self.staging.setattr(node.artifact, node.key.path, change, fh)
        return self._staged_attr(node)

    def refuse_change(self, ino: int, what: str) -> None:
        """What extended attributes get: EOPNOTSUPP in staging, EROFS else."""
        node = self.node(ino)
        if node.key.kind in STAGING_KINDS:
            raise NotSupported(f"{what} is not supported in staging")
        raise ReadOnly("versions are read-only")
