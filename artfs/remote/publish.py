"""Remote-backed stores: a store whose default remote is set publishes every commit there.

- :class:`RemotePublisher` is the store's :class:`~artfs.store.ports.Publisher`:
  ``Store.commit`` writes and fsyncs the chunks into local packs, then the publisher uploads
  the chunks the remote lacks and creates the version record at the remote's next number, and
  only then does the local index add the version, at that number. Alias moves and removals,
  and deletions (``Store.delete``, TTL expiry), go to the remote first too.
- :func:`set_default` makes a remote the default. It is refused while the store holds a
  version that the remote does not have at the same number: a remote-backed store numbers its
  versions as its remote does, and a local number cannot change afterwards.

Every remote failure is one line naming the remote and saying what to do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from artfs.errors import Conflict, RemoteError
from artfs.names import ArtifactName, Ref, check_name
from artfs.objectstore import RemoteUrl
from artfs.remote.layout import TreeVersion
from artfs.remote.remote import Remote, open_remote
from artfs.remote.sync import publish_version
from artfs.store.catalog import VersionRecord
from artfs.store.chunkstore import RemoteChunk
from artfs.store.hashing import ChunkId
from artfs.store.manifest import FileEntry
from artfs.store.ports import ChunkReader, PageReader, Published
from artfs.store.repository import Store
from artfs.store.settings import RemoteConfig


class RemotePublisher:
    """Publishes the commits and alias moves of a store on its default remote."""

    def __init__(self, remote: Remote, name: str) -> None:
        self.remote = remote
        self.name = name

    @classmethod
    def open(cls, store: Store, config: RemoteConfig) -> RemotePublisher:
        return cls(open_remote(store, config), config.name)

    def check(self, art: ArtifactName, type_: str) -> None:
        with self._failing(f"cannot commit {art}", "nothing was committed"):
            self.remote.check_type(art, type_)

    def publish(
        self,
        draft: VersionRecord,
        entries: list[FileEntry],
        read_chunk: ChunkReader,
        read_page: PageReader,
    ) -> Published:
        art = draft.artifact
        with self._failing(f"publishing {art} failed", "run the commit again"):
            sent = publish_version(self.remote, draft, entries, read_chunk, read_page)
            if sent.created:
                record = dataclasses.replace(draft, number=sent.number, aliases=[])
                where = _encoded(sent.locations)
                return Published(record, entries, True, where, self.name, sent.bytes)
            version = self.remote.read_version(art, sent.number)
            if isinstance(version, TreeVersion):
                # Adopted without its pages (read when wanted), which the store finds where
                # its remote's pack indexes say.
                where = _encoded(self.remote.chunk_map())
                return Published(version.record, [], False, where, self.name)
            where = _encoded(version.chunks)
            return Published(version.record, version.entries, False, where, self.name)

    def move_alias(self, art: ArtifactName, alias: str, number: int) -> None:
        with self._failing(f"cannot move {art}:{alias} to v{number}", "nothing was changed"):
            self.remote.move_alias(art, alias, number)

    def remove_alias(self, art: ArtifactName, alias: str) -> None:
        with self._failing(f"cannot remove {art}:{alias}", "nothing was changed"):
            self.remote.remove_alias(art, alias)

    def delete_version(
        self, ref: Ref, *, force: bool = False, digest: str | None = None
    ) -> VersionRecord:
        with self._failing(f"cannot delete {ref}", "nothing was deleted"):
            return self.remote.delete_version(ref, force=force, digest=digest)

    def delete_artifact(self, art: ArtifactName) -> list[VersionRecord]:
        with self._failing(f"cannot delete {art}", "nothing was deleted"):
            return self.remote.delete_artifact(art)

    @contextmanager
    def _failing(self, what: str, then: str) -> Iterator[None]:
        """A remote failure as one line: what was being done, on which remote, what now."""
        try:
            yield
        except RemoteError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RemoteError(f"{what}, {then}: remote {self.name}: {reason}") from None


def _encoded(locations: dict[ChunkId, RemoteChunk]) -> dict[ChunkId, bytes]:
    return {cid: loc.encode() for cid, loc in locations.items()}


# --- the default remote -----------------------------------------------------------------------


def set_default(store: Store, name: str | None) -> RemoteConfig | None:
    """Make remote ``name`` the default (None: no default, the store is local again).

    Conflict while the store holds a version the remote lacks at the same number.
    """
    if name is None:
        store.set_default_remote(None)
        return None
    config = store.remote(name)
    check_backing(store, config)
    store.set_default_remote(name)
    return config


def add_default(
    store: Store, name: str, url: str, endpoint: str | None, region: str | None
) -> RemoteConfig:
    """Add a remote and make it the default; nothing is recorded if that is refused."""
    config = RemoteConfig(name, str(RemoteUrl.parse(url)), endpoint, region)
    check_name(name, "remote name")
    if any(c.name == name for c in store.remotes()):
        raise Conflict(f"a remote named {name!r} exists: see 'artfs remote ls'")
    check_backing(store, config)
    store.add_remote(config)
    store.set_default_remote(name)
    return config


def check_backing(store: Store, config: RemoteConfig) -> None:
    """Every version of the store must be on the remote at its number, with its content.

    The digest marker answers the common case with one small GET. The remote may hold the
    same content twice (two writers committing it at once, a record published without its
    marker), and the marker names one of them: otherwise the record at the local number
    decides.
    """
    remote = open_remote(store, config)
    for record in _local_versions(store):
        found = remote.find_digest(record.artifact, record.digest)
        if found == record.number or _digest_at(remote, record) == record.digest:
            continue
        if found is None:
            raise Conflict(
                f"{record.ref} is not on remote {config.name}: push every version first "
                f"('artfs push --all --remote {config.name}'), then make it the default"
            )
        raise Conflict(
            f"{record.ref} is {record.artifact}:v{found} on remote {config.name}: a "
            "remote-backed store numbers versions as its remote does; start one with "
            f"'artfs clone {config.url}' in a new store"
        )


def _digest_at(remote: Remote, record: VersionRecord) -> str | None:
    """The digest of the live version at ``record``'s number on the remote (None: none)."""
    art = record.artifact
    if record.number not in remote.version_numbers(art):
        return None
    return remote.read_version(art, record.number).record.digest


def has_versions(store: Store) -> bool:
    return any(True for _ in _local_versions(store))


def _local_versions(store: Store) -> Iterator[VersionRecord]:
    for project in store.projects():
        for _, records in store.artifacts(project):
            yield from records
