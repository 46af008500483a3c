"""The mount's errors: each is answered with one errno (the table is the daemon's,
``daemon/artfsd/operations.py``), so the fs layer raises what a filesystem would return and
the FUSE adapter only translates. The store's errors (:mod:`artfs.errors`) map there too."""

from __future__ import annotations

from artfs.errors import ArtfsError, NotFound


class NotADirectory(ArtfsError):
    """A directory operation on a file (ENOTDIR)."""


class IsADirectory(ArtfsError):
    """A file operation on a directory (EISDIR)."""


class NotASymlink(ArtfsError):
    """readlink on something that is not a symlink (EINVAL)."""


class NoAttribute(NotFound):
    """The extended attribute does not exist on this node (ENODATA)."""


class ReadOnly(ArtfsError):
    """A write, create, rename, unlink or chmod on a read-only node (EROFS)."""


class CrossDevice(ArtfsError):
    """A rename between two staging directories, or into or out of staging (EXDEV)."""


class BadRequest(ArtfsError):
    """A malformed name or control-file write through the mount (EINVAL)."""


class NotSupported(ArtfsError):
    """An operation staging does not offer (hard links, extended attributes): EOPNOTSUPP."""


class CommitBusy(ArtfsError):
    """A commit through the control file refused: a file open for writing, or another commit
    of the same artifact running (EBUSY)."""


class CommitInvalid(ArtfsError):
    """A commit through the control file refused for bad input (EINVAL)."""


class CommitFailed(ArtfsError):
    """A commit through the control file failed otherwise (EIO)."""


__all__ = [
    "BadRequest",
    "CommitBusy",
    "CommitFailed",
    "CommitInvalid",
    "CrossDevice",
    "IsADirectory",
    "NoAttribute",
    "NotADirectory",
    "NotASymlink",
    "NotSupported",
    "ReadOnly",
]
