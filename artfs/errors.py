"""Domain exceptions.

Every error a user can cause is an :class:`ArtfsError` whose message names the thing that is
wrong and says what to do; the CLI prints it as one line and exits non-zero. Anything else
escaping to the top is a bug.

W&B's exception names (``wandb.errors``) are defined here too and sit in the hierarchy, so a
script ported with ``import artfs as wandb`` catches artfs's errors with the clauses it has:
``Error`` is :class:`ArtfsError`; ``CommError`` (W&B: the backend refused or failed) is the base
of what the store reports (:class:`NotFound`, :class:`Conflict`, :class:`CorruptData`,
:class:`StoreError`); ``UsageError`` (W&B: the SDK was called wrongly) is the base of
:class:`InvalidName`, :class:`NotLogged`, :class:`InputError` and :class:`NotASingleFile`;
``UnsupportedError`` is a W&B feature artfs does not model (media objects, for instance).
"""

from __future__ import annotations


class ArtfsError(Exception):
    """Base of every error a user can cause (bad input, missing things, conflicts)."""

    exit_code = 1


Error = ArtfsError  # W&B: wandb.errors.Error, the base of its SDK errors


class CommError(ArtfsError):
    """W&B's name for an error reported by the backend: here, by the store."""


class AuthenticationError(CommError):
    """W&B's error for a missing or wrong API key; artfs has none, so it is never raised."""


class UsageError(ArtfsError):
    """W&B's name for an SDK call that cannot work as made (bad argument, wrong order)."""


class UnsupportedError(UsageError):
    """A W&B feature that artfs does not model; the message says what to use instead."""


class InvalidName(UsageError):
    """A project, artifact, alias, ref or path inside a version is malformed."""

    exit_code = 2


class NotFound(CommError):
    """A project, artifact, version, alias or file does not exist."""


class Conflict(CommError):
    """The request clashes with the store's state (type mismatch, aliases held, ...)."""


class InputError(UsageError):
    """The files given to put cannot be stored (missing, unreadable, special files)."""


class CorruptData(CommError):
    """Stored bytes do not match their recorded hash; nothing wrong is ever returned."""


class StoreError(CommError):
    """The store itself cannot be used (unwritable home, disk full, wrong format)."""


class TypeMismatch(Conflict):
    """An artifact is used or logged with a type other than the one fixed by its first version."""


class AliasesHeld(Conflict):
    """A version that holds custom aliases was asked to be deleted without dropping them."""


class DuplicateEntry(Conflict):
    """A path is added to a draft artifact twice with different content."""


class ArtifactFinalized(Conflict):
    """The files of a logged version were asked to change; versions are immutable."""


class NotLogged(UsageError):
    """A method that needs a logged version was called on a draft artifact."""


class NotASingleFile(UsageError):
    """``Artifact.file()`` was called on an artifact that does not hold exactly one file."""


class ArtifactMismatch(ArtfsError):
    """Files on disk differ from the version they should match (``Artifact.verify``)."""


class GraphvizMissing(ArtfsError):
    """Graphviz's ``dot``, which draws the lineage graph of ``artfs ui``, is not installed."""


class ReferenceChanged(CorruptData):
    """A referenced target no longer has the content recorded when it was added."""


class ReferenceMissing(NotFound):
    """A referenced target cannot be found any more."""


class RemoteError(StoreError):
    """The object store could not be used (unreachable, refused, misconfigured)."""


class RemoteMissing(NotFound):
    """An object the caller expected on the remote does not exist."""


class ObjectChanged(RemoteError):
    """An object no longer has the ETag a conditional read asked for (``If-Match`` refused)."""


class MountError(ArtfsError):
    """The mount cannot be made (bad mountpoint, FUSE missing)."""
