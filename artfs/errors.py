"""Domain exceptions.

Every error a user can cause is an :class:`ArtfsError` whose message names the thing that is
wrong and says what to do; the CLI prints it as one line and exits non-zero. Anything else
escaping to the top is a bug.
"""

from __future__ import annotations


class ArtfsError(Exception):
    """Base of every error a user can cause (bad input, missing things, conflicts)."""

    exit_code = 1


class InvalidName(ArtfsError):
    """A project, artifact, alias, ref or path inside a version is malformed."""

    exit_code = 2


class NotFound(ArtfsError):
    """A project, artifact, version, alias or file does not exist."""


class Conflict(ArtfsError):
    """The request clashes with the store's state (type mismatch, aliases held, ...)."""


class InputError(ArtfsError):
    """The files given to put cannot be stored (missing, unreadable, special files)."""


class CorruptData(ArtfsError):
    """Stored bytes do not match their recorded hash; nothing wrong is ever returned."""


class StoreError(ArtfsError):
    """The store itself cannot be used (unwritable home, disk full, wrong format)."""


class TypeMismatch(Conflict):
    """An artifact is used or logged with a type other than the one fixed by its first version."""


class AliasesHeld(Conflict):
    """A version that holds custom aliases was asked to be deleted without dropping them."""


class DuplicateEntry(Conflict):
    """A path is added to a draft artifact twice with different content."""


class ArtifactFinalized(Conflict):
    """The files of a logged version were asked to change; versions are immutable."""


class NotLogged(ArtfsError):
    """A method that needs a logged version was called on a draft artifact."""


class NotASingleFile(ArtfsError):
    """``Artifact.file()`` was called on an artifact that does not hold exactly one file."""


class ArtifactMismatch(ArtfsError):
    """Files on disk differ from the version they should match (``Artifact.verify``)."""


class ReferenceChanged(CorruptData):
    """A referenced target no longer has the content recorded when it was added."""


class ReferenceMissing(NotFound):
    """A referenced target cannot be found any more."""
