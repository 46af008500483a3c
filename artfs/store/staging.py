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
- after the commit, a file is removed only if it is unchanged since it was scanned (same inode,
  size and mtime), so a file rewritten or replaced during the commit stays for the next one;
- each file is read through a descriptor checked to be the very file scanned, so swapping a
  path for a symlink to elsewhere after the scan cannot pull that file into a version.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from pathlib import Path
from typing import Any

from artfs.errors import Conflict, InputError
from artfs.names import NAME_RE, ArtifactName
from artfs.store.ingest import SourceFile, scan
from artfs.store.repository import PutResult, Store

STAGING_DIR = "staging"


def root(store: Store) -> Path:
    return store.home / STAGING_DIR


def path(store: Store, art: ArtifactName) -> Path:
    return root(store) / art.project / art.name


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
    if not staging.is_dir():
        raise InputError(f"{art} has no staging directory: write files into it first")
    lock_fd = _lock_artifact(store, art)
    try:
        tree = scan(staging, confine=True)
        if not tree.files:
            raise InputError(f"staging of {art} is empty: write files into it before committing")
        if not force:
            _refuse_open_writers(tree.files, staging)
        if type_ is None:
            existing = store.artifact(art)
            type_ = existing.type if existing else "dataset"
        result = store.commit(tree, art, type_=type_, **options)
        _clear(staging, tree.files)
        return result
    finally:
        os.close(lock_fd)


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
                    f"{source.path} in the staging of {staging.parent.name}/{staging.name} is "
                    "still open for writing: close it first, or commit with --force"
                ) from None
            raise
        finally:
            os.close(fd)


def _clear(staging: Path, committed: list[SourceFile]) -> None:
    for source in committed:
        try:
            st = os.stat(source.source)
        except FileNotFoundError:
            continue
        same_file = source.identity in (None, (st.st_dev, st.st_ino))
        if same_file and st.st_size == source.size and st.st_mtime_ns == source.mtime_ns:
            os.unlink(source.source)  # a symlink is removed, not its target
    # Remove directories left empty, deepest first; keep the staging directory itself.
    for dirpath, _, _ in sorted(os.walk(staging), key=lambda w: -len(w[0])):
        if Path(dirpath) != staging:
            # Not empty: it holds files written during the commit, or symlinks.
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def discard(store: Store, art: ArtifactName) -> None:
    """Remove an artifact's staging directory with everything in it."""
    shutil.rmtree(path(store, art), ignore_errors=True)
