"""Staging: a writable directory per artifact whose content becomes the next version.

Each artifact's staging area is a real directory, ``HOME/staging/<project>/<name>/``, so data
written into it survives a daemon restart; the mount shows it as ``MNT/<project>/<name>/staging``.
A staging directory may exist before its artifact has any version (``mkdir MNT/proj/NEW``):
the artifact then appears in listings with no versions.

Committing (:func:`commit`) stores the staging tree like ``artfs put`` and then removes what it
stored. Rules:

- one commit per artifact at a time: a second one fails at once with a clear message;
- a file open for writing blocks the commit (unless ``force``): whoever writes a staging file
  through the mount holds a shared ``flock`` on it, and the commit probes each file with a
  non-blocking exclusive lock, so a half-written file is never captured;
- symlinks may only point inside the staging directory; FIFOs, sockets and devices are refused;
- after the commit staging is empty but for what changed during it: a file is removed only if
  it is unchanged since it was scanned (same path, inode, size and mtime), a symlink or
  directory only if it is the one there before the scan (same inode), so a file rewritten,
  replaced, renamed or newly linked during the commit stays for the next one; a directory
  left with such a file stays too;
- errors name paths as the user sees them through the mount (``proj/name/staging/d/f``), never
  the backing directory inside ``ARTFS_HOME``;
- each file is read through a descriptor checked to be the very file scanned, so swapping a
  path for a symlink to elsewhere after the scan cannot pull that file into a version.

A staging may be *based* on a version (:func:`set_base`, :func:`rebase`; the format is
:mod:`artfs.store.overlay`): the directory then holds only what changed against it, the mount
shows the base through it (:func:`base_entry`, :func:`base_listing`), and a commit stores the
changes alone (:mod:`artfs.store.delta`), then bases the staging on the version it made.
Without a base everything above holds unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from artfs.errors import Conflict, InputError
from artfs.names import NAME_RE, ArtifactName, Ref, check_name
from artfs.store import catalog, delta, overlay, trees
from artfs.store.catalog import VersionRecord
from artfs.store.export import Diff
from artfs.store.hashing import TreeId
from artfs.store.ingest import SourceFile, scan
from artfs.store.manifest import FileEntry, decode_path, encode_path
from artfs.store.overlay import BASES_DIR as BASES_DIR
from artfs.store.overlay import COPY_UP as COPY_UP
from artfs.store.overlay import MARKER_PREFIX as MARKER_PREFIX
from artfs.store.overlay import OPAQUE as OPAQUE
from artfs.store.overlay import REDIRECT as REDIRECT
from artfs.store.overlay import STAGING_DIR as STAGING_DIR
from artfs.store.overlay import Base as Base
from artfs.store.overlay import Source, read_base, resolve, whited_out, write_base
from artfs.store.overlay import add_whiteout as add_whiteout
from artfs.store.overlay import is_reserved as is_reserved
from artfs.store.overlay import make_opaque as make_opaque
from artfs.store.overlay import remove_whiteout as remove_whiteout
from artfs.store.overlay import set_redirect as set_redirect
from artfs.store.overlay import whiteout_name as whiteout_name
from artfs.store.repository import PutResult, Store


def root(store: Store) -> Path:
    return store.home / STAGING_DIR


def path(store: Store, art: ArtifactName) -> Path:
    return root(store) / art.project / art.name


def project_path(store: Store, project: str) -> Path:
    """Where the stagings of ``project``'s artifacts are (``mkdir MNT/project`` makes it)."""
    return root(store) / check_name(project, "project")


_upper_root = path  # for functions whose argument named ``path`` hides it


def ensure(store: Store, art: ArtifactName) -> Path:
    staging = path(store, art)
    staging.mkdir(parents=True, exist_ok=True)
    return staging


def artifacts_with_staging(store: Store, project: str) -> list[str]:
    """Names of the artifacts of ``project`` that have a staging directory."""
    try:
        names = [e.name for e in os.scandir(root(store) / project) if e.is_dir()]
    except FileNotFoundError:
        return []
    return sorted(n for n in names if NAME_RE.fullmatch(n))


def projects_with_staging(store: Store) -> list[str]:
    try:
        names = [e.name for e in os.scandir(root(store)) if e.is_dir()]
    except FileNotFoundError:
        return []
    return sorted(n for n in names if NAME_RE.fullmatch(n))  # not .locks


def commit(
    store: Store,
    art: ArtifactName,
    *,
    force: bool = False,
    type_: str | None = None,
    **options: Any,
) -> PutResult:
    """Store the staging tree of ``art`` as its next version and empty it.

    ``options`` are those of :meth:`Store.commit` (aliases, description, metadata, tags,
    logged_by, ...). The artifact's type defaults to its existing type, else ``dataset``.
    """
    staging = path(store, art)
    if not staging.is_dir() and base_of(store, art) is None:
        raise InputError(f"{art} has no staging directory: write files into it first")
    lock_fd = _lock_artifact(store, art)
    try:
        base = base_of(store, art)  # read under the lock: a commit moves it
        if base is not None:
            staging.mkdir(parents=True, exist_ok=True)
            return _commit_based(store, art, staging, base, force, type_, options)
        return _commit_locked(store, art, staging, force, type_, options)
    except InputError as exc:  # scanning or reading a file: it names a backing path
        raise InputError(shown(str(exc), staging, art)) from None
    finally:
        os.close(lock_fd)


def _commit_locked(
    store: Store,
    art: ArtifactName,
    staging: Path,
    force: bool,
    type_: str | None,
    options: dict[str, Any],
) -> PutResult:
    # Symlinks and directories as they are before the scan: what the clear may remove.
    others = _links_and_dirs(staging)
    tree = scan(staging, confine=True, markers=True)
    if not tree.files:
        raise InputError(f"staging of {art} is empty: write files into it before committing")
    if not force:
        _refuse_open_writers(tree.files, staging)
    if type_ is None:
        existing = store.artifact(art)
        type_ = existing.type if existing else "dataset"
    result = store.commit(tree, art, type_=type_, **options)
    _clear(staging, tree.files, others)
    return result


def _commit_based(
    store: Store,
    art: ArtifactName,
    staging: Path,
    base: Base,
    force: bool,
    type_: str | None,
    options: dict[str, Any],
) -> PutResult:
    """Commit a staging based on ``base`` from its upper directory only (artfs.store.delta);
    then base it on the version made and clear what was committed: first the markers (while
    the record names the tree they were written against), then the files."""
    others = _links_and_dirs(staging)
    found = delta.changes(store, base, staging, scan(staging, confine=True, markers=True))
    if not force:
        _refuse_open_writers(found.files, staging)
    if type_ is None:
        existing = store.artifact(art)
        type_ = existing.type if existing else "dataset"
    result = delta.commit(store, art, base, found, type_=type_, **options)
    after = base_for(result.record)  # a version just committed, or found identical
    if found.markers:
        write_base(root(store), art, dataclasses.replace(after, markers_tree=base.redirect_tree))
        _remove_unchanged(found.markers)
    write_base(root(store), art, after)
    _clear(staging, found.files, others)
    return result


def _remove_unchanged(files: list[SourceFile]) -> None:
    """Unlink each file still the one scanned (same inode)."""
    for source in files:
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(source.source)
            if (st.st_dev, st.st_ino) == source.identity:
                os.unlink(source.source)


def _lock_artifact(store: Store, art: ArtifactName) -> int:
    locks = root(store) / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(locks / f"{art.project}--{art.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Conflict(f"another commit of {art} is running: wait for it and try again") from None
    return fd


def _refuse_open_writers(files: list[SourceFile], staging: Path) -> None:
    for source in files:
        try:
            fd = os.open(source.source, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # vanished or unreadable: the ingest reports it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise Conflict(
                    f"{staging.parent.name}/{staging.name}/{STAGING_DIR}/{source.path} is "
                    "still open for writing: close it first, or commit with --force"
                ) from None
            raise
        finally:
            os.close(fd)


def shown(message: str, staging: Path, art: ArtifactName) -> str:
    """``message`` with the backing directory's path replaced by the one users see through a
    mount (``proj/name/staging``); the store's layout is nobody's business."""
    return message.replace(str(staging), f"{art.project}/{art.name}/{STAGING_DIR}")


Identity = tuple[int, int]  # (st_dev, st_ino)


def _walk(staging: Path) -> list[tuple[str, os.stat_result]]:
    """Every entry under ``staging`` with its ``lstat``, children before their directory;
    symlinks are not followed."""
    found: list[tuple[str, os.stat_result]] = []
    for dirpath, dirnames, filenames in os.walk(staging, topdown=False):
        for name in filenames + dirnames:  # os.walk lists symlinks to dirs with the dirs
            path = os.path.join(dirpath, name)
            with contextlib.suppress(FileNotFoundError):
                found.append((path, os.lstat(path)))
    return found


def _links_and_dirs(staging: Path) -> set[Identity]:
    return {
        (st.st_dev, st.st_ino)
        for _, st in _walk(staging)
        if stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode)
    }


def _clear(staging: Path, committed: list[SourceFile], others: set[Identity]) -> None:
    """Remove what the commit stored: regular files at a path it stored, unchanged since the
    scan (each name of a hard-linked file is a path it stored), the symlinks and directories
    in ``others`` (from before the scan), deepest first; the staging directory itself stays.
    A name made during the commit (a rename, a new hard link) is not in the version: it stays.
    """
    stored = {
        (os.path.normpath(source.source), source.identity): (source.size, source.mtime_ns)
        for source in committed
    }
    for path, st in _walk(staging):
        ident = (st.st_dev, st.st_ino)
        if stat.S_ISDIR(st.st_mode):
            if ident in others:
                # Not empty: it holds what was written during the commit.
                with contextlib.suppress(OSError):
                    os.rmdir(path)
        elif stat.S_ISLNK(st.st_mode):
            if ident in others:
                os.unlink(path)
        elif stored.get((os.path.normpath(path), ident)) == (st.st_size, st.st_mtime_ns):
            os.unlink(path)


def holds_changes(store: Store, art: ArtifactName) -> bool:
    """Whether the upper directory of ``art``'s staging holds anything (files, directories
    or markers)."""
    try:
        with os.scandir(path(store, art)) as found:
            return next(found, None) is not None
    except (FileNotFoundError, NotADirectoryError):
        return False


def changes(store: Store, art: ArtifactName) -> tuple[Base | None, Diff]:
    """What a commit of ``art``'s staging would change against its base: files added,
    removed and changed (by content). Without a base every staged file is added."""
    staging = path(store, art)
    base = base_of(store, art)
    try:
        tree = scan(staging, confine=True, markers=True) if staging.is_dir() else None
        if base is None:
            added = sorted(f.path for f in tree.files) if tree else []
            return None, Diff(added=added)
        if tree is None:
            return base, Diff()
        return base, delta.preview(store, base, delta.changes(store, base, staging, tree))
    except InputError as exc:
        raise InputError(shown(str(exc), staging, art)) from None


def rebase(
    store: Store, art: ArtifactName, record: VersionRecord | None, *, reset: bool
) -> Base | None:
    """Base the staging of ``art`` on ``record`` (None: no base). Without ``reset`` a staging
    that holds changes is refused (they were made against the other base); with it they are
    discarded first. Holds the artifact's commit lock, and the store's (gc keeps the base)."""
    lock_fd = _lock_artifact(store, art)
    try:
        if not reset and holds_changes(store, art):
            raise Conflict(
                f"the staging of {art} holds changes: commit them first, or discard them "
                f"with 'artfs stage {art} --reset --from REF'"
            )
        if reset:
            empty(store, art)
        ensure(store, art)
        with store.commit_lock():
            if record is not None:  # still committed: gc cannot collect it from here on
                record = store.resolve(Ref(record.artifact, record.version))
            return set_base(store, art, record)
    finally:
        os.close(lock_fd)


def reset(store: Store, art: ArtifactName) -> None:
    """Discard the changes of ``art``'s staging, keeping its base (under the commit lock)."""
    lock_fd = _lock_artifact(store, art)
    try:
        empty(store, art)
    finally:
        os.close(lock_fd)


def empty(store: Store, art: ArtifactName) -> None:
    """Remove everything inside the upper directory of ``art``, keeping the directory (a
    mount may be showing it)."""
    staging = path(store, art)
    try:
        children = list(os.scandir(staging))
    except FileNotFoundError:
        return
    for child in children:
        if child.is_dir(follow_symlinks=False):
            shutil.rmtree(child.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(child.path)


def discard(store: Store, art: ArtifactName) -> None:
    """Remove an artifact's staging directory with everything in it."""
    shutil.rmtree(path(store, art), ignore_errors=True)


def remove_unversioned(store: Store, art: ArtifactName) -> bool:
    """Remove the staging of ``art``, an artifact with no version (made by ``mkdir`` on the
    mount or ``artfs stage``), with its base record: listings stop showing it. False when
    ``art`` has no staging; a staging that holds files is refused (Conflict), as they were
    never committed."""
    staging = path(store, art)
    if not staging.is_dir() and base_of(store, art) is None:
        return False
    lock_fd = _lock_artifact(store, art)  # a commit holds it while it makes a version
    try:
        if store.artifact(art) is not None:
            raise Conflict(f"{art} has versions now: 'artfs rm {art} --all' deletes them")
        held = Conflict(
            f"{art} has no versions and its staging holds files never committed: commit "
            f"them, or discard them with 'artfs stage {art} --reset --empty', then delete it"
        )
        if holds_changes(store, art):
            raise held
        try:  # before the base goes: a file written meanwhile keeps both
            staging.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno == errno.ENOTEMPTY:
                raise held from None
            raise
        write_base(root(store), art, None)
    finally:
        os.close(lock_fd)
    return True


def delete_empty_project(store: Store, project: str) -> bool:
    """Remove ``project`` if nothing is in it (``mkdir MNT/project``, or its last artifact
    deleted): no artifact, none being staged; its record and its staging directory. Whether
    anything of it went."""
    if artifacts_with_staging(store, project):
        return False
    recorded = project in store.projects()
    if recorded and not store.drop_project_record(project):
        return False  # artifacts are in it
    return _remove_project_dir(store, project) or recorded


def _remove_project_dir(store: Store, project: str) -> bool:
    """Remove ``project``'s staging directory if it holds no artifact's staging (a project
    made by ``mkdir MNT/project``, or left by the last of its unversioned artifacts): whether
    it was there and went."""
    try:
        project_path(store, project).rmdir()
    except OSError:  # none, or not empty: an artifact's staging is there
        return False
    return True


# --- incremental staging: the base and what the upper directory shows of it -------------------


def base_of(store: Store, art: ArtifactName) -> Base | None:
    """The version the staging of ``art`` is based on; None: no base (staging as always)."""
    return read_base(root(store), art)


def set_base(store: Store, art: ArtifactName, record: VersionRecord | None) -> Base | None:
    """Base the staging of ``art`` on ``record`` (None: no base), replacing the base record
    atomically; the upper directory is left as it is (callers decide whether it may hold
    anything). Returns the new base."""
    if record is None:
        write_base(root(store), art, None)
        return None
    base = base_for(record)
    write_base(root(store), art, base)
    return base


def base_for(record: VersionRecord) -> Base:
    """The base naming version ``record``; InputError for a deleted version."""
    tree = catalog.root_tree(record)
    if tree is None:
        raise InputError(f"{record.ref} is deleted: base the staging on a committed version")
    return Base(record.artifact, record.number, tree, record.digest)


def record_path(store: Store, art: ArtifactName) -> Path:
    """The file holding the base record of ``art``'s staging (replaced atomically: a reader
    may cache the record by this file's stat)."""
    return overlay.record_path(root(store), art)


def base_path(store: Store, art: ArtifactName, path: str) -> str | None:
    """The path in the base whose entry the staging path ``path`` shows (it differs from
    ``path`` below a redirected directory); None when the upper directory holds something
    else there, or the base is hidden there (whited out, opaque). Whether the base has an
    entry at that path is not checked. Redirected paths name an entry of
    ``Base.redirect_tree`` (the base's tree but between a commit's two steps)."""
    found = resolve(_upper_root(store, art), path)
    return None if found is None else found[0].path


def _base_tree(base: Base, source: Source) -> TreeId:
    return base.redirect_tree if source.redirected else base.tree


def _base_dir(pages: trees.Pages, base: Base, source: Source) -> TreeId | None:
    """The tree id of the base directory ``source`` names; None when there is none."""
    if source.path is None:
        return None
    return trees.resolve_dir(pages, _base_tree(base, source), source.path)


def base_entry(
    store: Store, art: ArtifactName, path: str, base: Base | None = None
) -> FileEntry | None:
    """The base entry the staging of ``art`` shows at ``path`` (relative to the staging
    directory) when its upper directory holds nothing of that name: resolved through the
    whiteouts, opaque and redirect markers of the upper directories on the way (one tree page
    per level). None when there is no base, or the base has nothing there, or it is hidden.
    The entry's ``path`` is ``path``; ``base`` saves re-reading the base record."""
    base = base or base_of(store, art)
    parent, _, name = path.rpartition("/")
    if base is None or not name:
        return None
    found = resolve(_upper_root(store, art), parent)
    if found is None or found[0].path is None or _whited(found[1], name):
        return None
    source, _ = found
    with store.index.read() as txn:
        pages = catalog.pages(txn)
        directory = _base_dir(pages, base, source)
        body = None if directory is None else trees.find(pages, directory, encode_path(name))
        return None if body is None else trees.decode_entry(path, body)[0]


def _whited(upper_dir: Path, name: str) -> bool:
    return os.path.lexists(upper_dir / whiteout_name(name))


def base_listing(
    store: Store,
    art: ArtifactName,
    directory: str,
    *,
    after: str | None = None,
    limit: int | None = None,
    base: Base | None = None,
) -> list[FileEntry]:
    """The base entries the staging directory ``directory`` shows ('' is the root), in name
    (byte) order after ``after``, at most ``limit`` of them: those of its base directory that
    are neither whited out nor shadowed by an upper entry of the same name. Paths are staging
    paths (``directory/name``). The merged listing is these plus the upper entries (minus
    markers: see :func:`is_reserved`)."""
    base = base or base_of(store, art)
    found = None if base is None else resolve(_upper_root(store, art), directory)
    if base is None or found is None or found[0].path is None:
        return []
    source, upper = found
    hidden = _upper_names(upper)
    shown: list[FileEntry] = []
    with store.index.read() as txn:
        pages = catalog.pages(txn)
        tree = _base_dir(pages, base, source)
        start = None if after is None else encode_path(after)
        for item in [] if tree is None else trees.items(pages, tree, start):
            name = decode_path(item.key)
            entry = trees.decode_entry(f"{directory}/{name}" if directory else name, item.body)[0]
            if entry.name in hidden:
                continue
            shown.append(entry)
            if limit is not None and len(shown) >= limit:
                break
    return shown


def _upper_names(upper_dir: Path) -> set[str]:
    """Names of ``upper_dir`` that hide a base entry: its entries and its whiteouts."""
    try:
        names = os.listdir(upper_dir)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {whited_out(n) or n for n in names}
