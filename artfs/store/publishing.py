"""The hook through which a remote-backed store publishes what it commits.

A store whose default remote is set (``artfs remote default NAME``) is remote-backed: every
commit, alias move and deletion happens on the remote first, and the local index follows at
the remote's version number. The store layer does not know object stores; it talks to a
:class:`Publisher`, which :mod:`artfs.remote.publish` implements. :func:`open_publisher` is the
one place that reaches up to it, lazily, so obstore is imported only by remote-backed stores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from artfs.names import ArtifactName, Ref
from artfs.store.catalog import VersionRecord
from artfs.store.hashing import ChunkId
from artfs.store.manifest import FileEntry

if TYPE_CHECKING:
    from artfs.store.repository import Store

# A chunk's stored form as held locally: (payload, codec id, raw length). The reader checks
# the payload against the chunk id, so damage is never published.
ChunkReader = Callable[[ChunkId], tuple[bytes, int, int]]


@dataclass
class Published:
    """A version as it is on the remote: its record at the remote's number and its files."""

    record: VersionRecord
    entries: list[FileEntry]
    created: bool  # False when the remote already held identical content (no new version)
    # Where each chunk of the version is on the remote (encoded, opaque to the store layer).
    remote_chunks: dict[ChunkId, bytes] = field(default_factory=dict)
    remote: str = ""  # the remote's name
    uploaded_bytes: int = 0  # chunk bytes sent (those the remote lacked)


class Publisher(Protocol):
    """What a remote-backed store needs from its default remote.

    Every method either completes on the remote or raises an :class:`~artfs.errors.ArtfsError`
    whose one-line message names the remote; the store changes its index only afterwards.
    """

    name: str  # the remote's name

    def check(self, art: ArtifactName, type_: str) -> None:
        """Before anything is written: TypeMismatch if ``art`` has another type on the
        remote; RemoteError if the remote cannot be reached."""
        ...

    def publish(
        self, draft: VersionRecord, entries: list[FileEntry], read_chunk: ChunkReader
    ) -> Published:
        """Upload the chunks the remote lacks and create the version at the remote's next
        number (``draft.number`` is ignored); identical content already there is returned
        with ``created=False``."""
        ...

    def move_alias(self, art: ArtifactName, alias: str, number: int) -> None: ...

    def remove_alias(self, art: ArtifactName, alias: str) -> None: ...

    def delete_version(
        self, ref: Ref, *, force: bool = False, digest: str | None = None
    ) -> VersionRecord:
        """Tombstone the version ``ref`` names on the remote; its record there. AliasesHeld
        when it holds custom aliases there and not ``force``; with ``digest``, Conflict when
        the remote's version holds other content (nothing is deleted either way)."""
        ...

    def delete_artifact(self, art: ArtifactName) -> list[VersionRecord]:
        """Tombstone every version of ``art`` on the remote (aliases included)."""
        ...


def open_publisher(store: Store) -> Publisher | None:
    """The publisher of ``store``'s default remote; None for a store that is not remote-backed.

    A fresh one per operation: it holds no state worth keeping (pack indexes are cached on disk
    under ``HOME/remotes/NAME/``) and the default remote may have changed meanwhile.
    """
    config = store.default_remote()
    if config is None:
        return None
    # Imported here, not at the top: the store layer sits below artfs.remote, and a store that
    # is not remote-backed never loads the object-store client.
    from artfs.remote.publish import RemotePublisher

    return RemotePublisher.open(store, config)
