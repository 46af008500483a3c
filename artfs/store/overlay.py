"""The on-disk format of incremental staging: the base record and the upper directory's markers.

A staging based on a version is an overlay (overlayfs's and aufs's model): the *base* is an
immutable version, the *upper* directory (``HOME/staging/<project>/<name>/``) holds only what
changed. What the upper directory says beyond its files is carried by empty *markers*, regular
files whose names start with ``.artfs-wh.`` (a prefix no user may create in staging):

- ``.artfs-wh.<name>``: whiteout, the base entry ``<name>`` of this directory is deleted;
- ``.artfs-wh..opaque``: this upper directory replaces the base directory at its path;
- ``.artfs-wh..redirect``: its content (utf-8) is the base path, relative to the version root,
  whose entries this directory shows instead of the base entries at its own path (a directory
  renamed in O(1)).

The base record, ``HOME/staging/.bases/<project>--<name>.json``, names the base version; it is
replaced atomically (temporary file, fsync, rename, fsync of the directory). No record: no base.

Resolution (which base directory a staging directory shows) is written here once, against an
upper directory on disk and a callable that looks a path up in the base, so the store's commit
and the mount's view agree by construction.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from artfs.errors import CorruptData
from artfs.names import STAGING_MARKER_PREFIX, ArtifactName
from artfs.store.hashing import TreeId

MARKER_PREFIX = STAGING_MARKER_PREFIX
OPAQUE = MARKER_PREFIX + ".opaque"
REDIRECT = MARKER_PREFIX + ".redirect"
# The mount writes a copy-up to ``COPY_UP<pid>.<n>`` and renames it into place; a crash may
# leave one behind. Never read as a whiteout, never committed, never removed by a commit (one
# may be in the middle of a rename).
COPY_UP = MARKER_PREFIX + ".copy-up."
BASES_DIR = ".bases"
STAGING_DIR = "staging"  # below the store's home: one directory per project, then artifact


def is_reserved(name: str) -> bool:
    """True for a name staging keeps for itself: never listed, never committed, refused as a
    user's file or directory name."""
    return name.startswith(MARKER_PREFIX)


def whiteout_name(name: str) -> str:
    """The marker that deletes the base entry ``name`` of a directory."""
    return MARKER_PREFIX + name


def whited_out(marker: str) -> str | None:
    """The base name a marker deletes; None for the opaque and redirect markers, the mount's
    copy-up temporaries and a name that is no marker."""
    if not is_reserved(marker) or marker in (OPAQUE, REDIRECT) or marker.startswith(COPY_UP):
        return None
    return marker[len(MARKER_PREFIX) :]


@dataclass(frozen=True, slots=True)
class Base:
    """The version a staging is based on.

    ``markers_tree`` is the tree redirect markers are resolved in, when it is not ``tree``:
    set only between a commit's new base and the removal of the markers it committed (a crash
    there leaves markers written against the previous base; the next commit removes them).
    """

    artifact: ArtifactName
    version: int
    tree: TreeId
    digest: str
    markers_tree: TreeId | None = None

    @property
    def ref(self) -> str:
        return f"{self.artifact}:v{self.version}"

    @property
    def redirect_tree(self) -> TreeId:
        """The tree in which a redirect marker's path is looked up."""
        return self.tree if self.markers_tree is None else self.markers_tree

    def encode(self) -> bytes:
        data: dict[str, object] = {
            "artifact": str(self.artifact),
            "version": self.version,
            "tree": self.tree.hex(),
            "digest": self.digest,
        }
        if self.markers_tree is not None:
            data["markers_tree"] = self.markers_tree.hex()
        return json.dumps(data, sort_keys=True).encode() + b"\n"

    @classmethod
    def decode(cls, data: bytes) -> Base:
        """CorruptData for a record that is not one (the caller names the file)."""
        try:
            raw = json.loads(data)
            marks = raw.get("markers_tree")
            return cls(
                ArtifactName.parse(raw["artifact"]),
                int(raw["version"]),
                TreeId(bytes.fromhex(raw["tree"])),
                str(raw["digest"]),
                None if marks is None else TreeId(bytes.fromhex(marks)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptData(f"not a staging base record ({exc})") from None


def record_path(staging_root: Path, art: ArtifactName) -> Path:
    """Where the base record of ``art`` lives under the staging root."""
    return staging_root / BASES_DIR / f"{art.project}--{art.name}.json"


def read_base(staging_root: Path, art: ArtifactName) -> Base | None:
    path = record_path(staging_root, art)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return Base.decode(data)
    except CorruptData as exc:
        raise CorruptData(
            f"{path}: {exc}: remove it to drop the base of {art}'s staging, "
            f"or set one with 'artfs stage {art} --reset --from REF'"
        ) from None


def all_bases(staging_root: Path) -> list[Base]:
    """Every base record under the staging root (a damaged one is skipped: gc must not stop
    on it, and reading that staging reports it)."""
    found = []
    try:
        names = sorted(os.listdir(staging_root / BASES_DIR))
    except FileNotFoundError:
        return []
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            with contextlib.suppress(OSError, CorruptData):
                found.append(Base.decode((staging_root / BASES_DIR / name).read_bytes()))
    return found


def write_base(staging_root: Path, art: ArtifactName, base: Base | None) -> None:
    """Replace (or with None remove) the base record of ``art``, atomically and durably."""
    path = record_path(staging_root, art)
    if base is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            _fsync_dir(path.parent)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, base.encode())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- markers ----------------------------------------------------------------------------------


def add_whiteout(upper_dir: Path, name: str) -> None:
    """Mark the base entry ``name`` of ``upper_dir`` deleted (the directory must exist)."""
    _touch(upper_dir / whiteout_name(name))


def remove_whiteout(upper_dir: Path, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(upper_dir / whiteout_name(name))


def make_opaque(upper_dir: Path) -> None:
    """Make ``upper_dir`` hide every base entry at its path."""
    _touch(upper_dir / OPAQUE)


def set_redirect(upper_dir: Path, base_path: str) -> None:
    """Make ``upper_dir`` show the base entries of ``base_path`` (atomically replaced)."""
    _write_atomic(upper_dir / REDIRECT, base_path.encode("utf-8", "surrogateescape"))


def _touch(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def has_whiteout(upper_dir: Path, name: str) -> bool:
    return os.path.lexists(upper_dir / whiteout_name(name))


def is_opaque(upper_dir: Path) -> bool:
    return os.path.lexists(upper_dir / OPAQUE)


def redirect_of(upper_dir: Path) -> str | None:
    """The base path a redirected directory shows; None when it has no redirect marker (or
    ``upper_dir`` is no real directory: symlinks are never followed)."""
    if not _real_dir(upper_dir):
        return None
    try:
        fd = os.open(upper_dir / REDIRECT, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        data = b""
        while block := os.read(fd, 1 << 16):
            data += block
    finally:
        os.close(fd)
    return data.decode("utf-8", "surrogateescape").strip("/")


def _real_dir(path: Path) -> bool:
    """Whether ``path`` is a directory itself, not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


# --- resolution -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """Where a staging directory's base entries come from: ``path`` in the base (None: it
    shows none), and whether that path came from a redirect (looked up in the base record's
    ``redirect_tree``; else in its ``tree``)."""

    path: str | None
    redirected: bool = False


NO_BASE = Source(None)


def dir_source(upper: Path, parent: Source, name: str) -> Source:
    """The source of staging directory ``name`` whose parent's source is ``parent``;
    ``upper`` is the parent's upper directory (which may not exist)."""
    child = upper / name
    target = redirect_of(child)
    if target is not None:
        return Source(target, redirected=True)
    opaque = _real_dir(child) and is_opaque(child)
    if opaque or has_whiteout(upper, name) or parent.path is None:
        return NO_BASE
    return Source(f"{parent.path}/{name}" if parent.path else name, parent.redirected)


def root_source(upper_root: Path) -> Source:
    return NO_BASE if is_opaque(upper_root) else Source("")


def resolve(upper_root: Path, path: str) -> tuple[Source, Path] | None:
    """The source and upper directory of staging path ``path`` ('' is the root); None when
    the upper directory holds something other than a directory at ``path`` or above it (a
    file or a symlink: nothing of the base shows there; symlinks are never followed)."""
    source, upper = root_source(upper_root), upper_root
    for name in path.split("/") if path else []:
        if os.path.lexists(upper / name) and not _real_dir(upper / name):
            return None
        source, upper = dir_source(upper, source, name), upper / name
    return source, upper
