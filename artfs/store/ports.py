"""The ports of the store: what it needs from a remote, declared here and implemented above.

The store layer never imports :mod:`artfs.remote`. A store whose default remote is set
(``artfs remote default NAME``) is remote-backed: it reads the chunks it lacks from a
:class:`ChunkSource`, publishes every commit, alias move and deletion through a
:class:`Publisher` first (the local index follows at the remote's version number), and shares
its lineage through a :class:`LineageSink`. It gets them from the ``RemotePorts`` it was
opened with (``Store.open(home, ports=...)``, see :mod:`artfs.store.repository`);
:func:`artfs.stores.open_store` is the one place that hands in the remote's implementation
(:mod:`artfs.remote.wiring`). A store opened without ports works as a local store and refuses
what would need its remote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from artfs.names import ArtifactName, Ref
from artfs.store.catalog import VersionRecord
from artfs.store.hashing import ChunkId, TreeId
from artfs.store.manifest import ChunkRef, FileEntry

# A chunk's stored form as held locally: (payload, codec id, raw length). The reader checks
# the payload against the chunk id, so damage is never published.
ChunkReader = Callable[[ChunkId], tuple[bytes, int, int]]
# A tree page of the version being published, by id (its bytes; the pages of a version a
# remote lacks are uploaded with it).
PageReader = Callable[[TreeId], bytes]


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
        self,
        draft: VersionRecord,
        entries: list[FileEntry],
        read_chunk: ChunkReader,
        read_page: PageReader,
    ) -> Published:
        """Upload the chunks and tree pages the remote lacks and create the version at the
        remote's next number (``draft.number`` is ignored; ``draft.tree`` names the root of
        ``entries``); identical content already there is returned with ``created=False``
        (its ``entries`` empty when the remote's record names a tree: see ``tree``)."""
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


class ChunkSource(Protocol):
    """Reads the chunks the local packs do not hold (from the default remote, through the
    local chunk cache).

    It reads tree pages as well: a version adopted from a remote (``artfs clone``, a refresh)
    comes with its record and root tree id only, and a page the index lacks is read through
    this port, named as a chunk by its tree id (both ids are the BLAKE3 of the bytes, so the
    check that a chunk matches its id checks the page). Such pages are not written to the
    index (whose pages always come with their whole subtree); the source keeps them in its
    cache.
    """

    def read(self, ref: ChunkRef, following: Sequence[ChunkRef] = ()) -> bytes:
        """The verified bytes of a chunk; ``following`` are the chunks the reader wants next,
        which the read may fetch in the same request (they never change what it returns).
        CorruptData naming the chunk when its bytes do not hash to its id, and when it is held
        nowhere this source reads from; never wrong bytes. Safe to call from many threads.
        tests/store/test_chunk_sources.py holds every chunk source to this."""
        ...


class LineageSink(Protocol):
    """Where runs and usage edges go besides the local index (``artfs.lineage`` publishes
    through it). The records are typed ``Any`` here because their types live in
    :mod:`artfs.lineage`, above the store; ``artfs.lineage.LineagePublisher`` states them."""

    def publish(self, runs: Sequence[Any], usages: Sequence[tuple[VersionRecord, Any]]) -> None:
        """Send them all; raise an ArtfsError when that failed (what went stays sent)."""
        ...
