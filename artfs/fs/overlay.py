"""What the mount needs of a staging based on a version, beyond the store's format API.

The format (base record, whiteouts, opaque and redirect markers) and the resolution of a
staging path to the base are :mod:`artfs.store.staging`'s; this module keeps the base records
the daemon has read (re-read when the record file changes), turns a base entry into what
``stat`` shows, and keeps what a base file open for reading holds (read like a version's file,
through :func:`artfs.fs.reader.open_reader`).
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass

from artfs.fs.backing import Backing, join
from artfs.fs.reader import FileReader
from artfs.names import ArtifactName
from artfs.store import manifest, staging
from artfs.store.manifest import FileEntry
from artfs.store.repository import PinnedChunks, Store

# A record file's identity: (inode, mtime, size); None when there is no record.
_Signature = tuple[int, int, int] | None


class BaseCache:
    """The base record of each artifact's staging, read again only when its file changed.

    A commit through the CLI, ``artfs stage`` or another daemon replaces the record (a new
    file renamed into place), so its inode number changes: a ``stat`` per look-up notices.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: dict[ArtifactName, tuple[_Signature, staging.Base | None]] = {}

    def get(self, art: ArtifactName) -> staging.Base | None:
        """The base of ``art``'s staging now (None: none). CorruptData for a damaged record."""
        signature = self._signature(art)
        known = self._known.get(art)
        if known is not None and known[0] == signature:
            return known[1]
        base = None if signature is None else staging.base_of(self.store, art)
        self._known[art] = (signature, base)
        return base

    def _signature(self, art: ArtifactName) -> _Signature:
        try:
            st = os.stat(staging.record_path(self.store, art))
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)


def base_path(store: Store, art: ArtifactName, rel: str) -> str | None:
    """The path in the base that staging path ``rel`` shows (it differs from ``rel`` below a
    renamed directory); None when no base entry is shown there."""
    return staging.base_path(store, art, rel)


@dataclass(frozen=True, slots=True)
class BaseRead:
    """A base file open for reading through staging: read like a version's file."""

    reader: FileReader
    pins: PinnedChunks
    base: staging.Base
    path: str  # in the base version


def entry_mode(entry: FileEntry) -> int:
    """The mode a base entry shows in staging: its own, writable bits included."""
    kind = stat.S_IFDIR if entry.is_dir else stat.S_IFREG
    return kind | stat.S_IMODE(entry.mode)


class CopyOnWrite:
    """The changes of a based staging, written as the format says: copy-ups, whiteouts,
    opaque and redirect markers in the upper directory (through :class:`Backing`, so never
    through a symlink). ``rel`` paths are staging paths; each method is for a staging whose
    base is ``base``."""

    def __init__(self, store: Store, art: ArtifactName, base: staging.Base) -> None:
        self.store = store
        self.art = art
        self.base = base
        self.backing = Backing(staging.path(store, art))

    def entry(self, rel: str) -> FileEntry | None:
        """The base entry at ``rel`` (shown unless an upper entry shadows it)."""
        if not rel:
            return None
        return staging.base_entry(self.store, self.art, rel, self.base)

    def upper(self, rel: str) -> os.stat_result | None:
        try:
            return self.backing.lstat(rel)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def shown(self, rel: str) -> bool:
        """Whether the merged view has anything at ``rel``."""
        return self.upper(rel) is not None or self.entry(rel) is not None

    def names(self, rel: str, *, limit: int | None = None) -> list[str]:
        """Names the merged directory ``rel`` shows (at least ``limit`` when it has them)."""
        found = [n for n in self.backing.names(rel) if not staging.is_reserved(n)]
        if limit is not None and len(found) >= limit:
            return found
        listed = staging.base_listing(self.store, self.art, rel, limit=limit, base=self.base)
        return found + [entry.name for entry in listed]

    def upper_dirs(self, rel: str) -> None:
        """Make directory ``rel`` and its ancestors exist in the upper directory: a base
        directory is copied up as an empty directory of its mode (its base entries still
        show through it)."""
        done = ""
        self.backing.root.mkdir(parents=True, exist_ok=True)
        for part in rel.split("/") if rel else ():
            done = join(done, part)
            st = self.upper(done)
            if st is not None:
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, f"{done} is not a directory")
                continue
            entry = self.entry(done)
            if entry is None or not entry.is_dir:
                raise FileNotFoundError(errno.ENOENT, f"{done} does not exist in staging")
            self.backing.mkdir(done, entry.mode, None)

    def copy_up(self, rel: str, entry: FileEntry, *, empty: bool = False) -> None:
        """Materialize base file ``entry`` at ``rel`` in the upper directory with its mode and
        mtime (``empty``: no content, for an open with O_TRUNC or a truncation to 0)."""
        parent = rel.rpartition("/")[0]
        self.upper_dirs(parent)
        pieces: Iterable[bytes] = ()
        if not empty:
            if entry.is_reference:
                pieces = [self.store.reference_copy(entry).read_bytes()]
            else:
                pieces = self.store.iter_file(entry)
        temp = f"{staging.MARKER_PREFIX}.copy-up.{os.getpid()}.{next(_COPIES)}"
        # Emptied for a truncation: a non-empty file truncated takes the time of the change.
        mtime = time.time_ns() if empty and entry.size else entry.mtime_ns
        self.backing.put_file(rel, pieces, entry.mode, mtime, temp)

    def check_deletable(self, rel: str) -> None:
        """ENAMETOOLONG, before anything changes, for a base entry whose whiteout's name
        would be longer than a name may be (a name of more than 245 bytes)."""
        if _whiteout_of(rel) is None:
            raise OSError(errno.ENAMETOOLONG, f"{rel}: too long a name to delete from the base")

    def whiteout(self, rel: str) -> None:
        """Delete the base entry ``rel``. ENAMETOOLONG for a name longer than 245 bytes: its
        whiteout's name would be longer than a name may be."""
        self.check_deletable(rel)
        parent, _, name = rel.rpartition("/")
        self.upper_dirs(parent)
        self.backing.put_marker(join(parent, staging.whiteout_name(name)))

    def has_whiteout(self, rel: str) -> bool:
        marker = _whiteout_of(rel)
        return marker is not None and self.upper(marker) is not None

    def unwhite(self, rel: str) -> None:
        marker = _whiteout_of(rel)
        if marker is not None:
            self.backing.remove_file(marker)

    def marker(self, rel: str, marker: str, data: bytes = b"") -> None:
        self.backing.put_marker(join(rel, marker), data)

    def has_marker(self, rel: str, marker: str) -> bool:
        return self.upper(join(rel, marker)) is not None

    def clear_markers(self, rel: str) -> None:
        """Remove the markers of upper directory ``rel`` (before it is removed or replaced:
        the merged view showed it empty)."""
        for name in self.backing.names(rel):
            if staging.is_reserved(name):
                self.backing.remove_file(join(rel, name))

    def base_dir_shown(self, rel: str) -> str | None:
        """The base path whose entries the upper directory ``rel`` merges by its position
        (not through a redirect marker of its own); None when it shows none."""
        if self.has_marker(rel, staging.REDIRECT) or self.has_marker(rel, staging.OPAQUE):
            return None
        entry = self.entry(rel)
        if entry is None or not entry.is_dir:
            return None
        return base_path(self.store, self.art, rel)


_COPIES = itertools.count()
_NAME_MAX = 255


def _whiteout_of(rel: str) -> str | None:
    """The whiteout marker of ``rel``; None when its name would be too long to exist."""
    parent, _, name = rel.rpartition("/")
    marker = staging.whiteout_name(name)
    if len(manifest.encode_path(marker)) > _NAME_MAX:
        return None
    return join(parent, marker)


__all__ = ["BaseCache", "BaseRead", "CopyOnWrite", "base_path", "entry_mode"]
