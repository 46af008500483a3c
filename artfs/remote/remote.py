"""A remote's catalogue: versions, aliases and chunk locations on an object store.

Writers coordinate only through the store's conditional writes, so there is no artfs server:

- a version is a create-only PUT of ``versions/<project>/<name>/<n>.json`` at the next free
  number; a writer that loses the race (412) lists again and retries at the next number after a
  jittered backoff, so concurrent writers get distinct, contiguous numbers and none is lost;
- an alias is moved by compare-and-swap on its object's ETag (created with a create-only PUT);
- packs and their index objects are named by the BLAKE3 of the pack, so writing one twice is
  harmless and never needs a condition.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from artfs.errors import (
    AliasesHeld,
    Conflict,
    CorruptData,
    NotFound,
    RemoteError,
    RemoteMissing,
    TypeMismatch,
)
from artfs.names import ArtifactName, Ref
from artfs.objectstore import ObjectStore, RemoteUrl, S3ObjectStore, backoff, new_writer_id
from artfs.remote import layout
from artfs.remote.layout import AnyVersion, PackDictionaries, TreeVersion
from artfs.store.catalog import VersionRecord
from artfs.store.chunkstore import RemoteChunk
from artfs.store.codec import Codec
from artfs.store.hashing import ChunkId, TreeId
from artfs.store.repository import Store
from artfs.store.settings import RemoteConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

# A writer gives up after this many lost races in a row (each a list + a PUT): with N writers
# racing, a writer loses at most N-1 rounds before it wins one.
_PUBLISH_ATTEMPTS = 64


class Remote:
    """The artfs objects under one remote URL. ``cache_dir``, when given, keeps copies of pack
    index objects (immutable) so that a push lists packs but fetches only new indexes.

    Safe to share between threads (the daemon's readers do). The on-disk copies are only a
    cache: one that cannot be written is skipped, one that cannot be read is fetched again.
    """

    def __init__(self, objects: ObjectStore, writer_id: str, cache_dir: Path | None) -> None:
        self.objects = objects
        self.writer_id = writer_id
        self._cache_dir = cache_dir
        self._lock = threading.Lock()  # guards _pack_chunks and _pack_dictionaries
        self._pack_chunks: dict[str, dict[ChunkId, RemoteChunk]] = {}
        self._pack_dictionaries: dict[str, PackDictionaries] = {}
        self._tree_packs: set[str] = set()  # packs whose index says they hold tree pages
        self._format_checked = False
        # (type, digest) of records read for a commit's checks. A record never changes, so a
        # commit reads the newest record once, not for each check (tens of MB for a large
        # tree): the type check, the digest lookup and the publish's own type check.
        self._record_heads: dict[tuple[ArtifactName, int], tuple[str, str]] = {}

    def describe(self) -> str:
        return self.objects.describe()

    @property
    def cache_dir(self) -> Path | None:
        """Where copies of pack indexes are kept (its parent holds this remote's other
        copies), or None."""
        return self._cache_dir

    # --- versions -----------------------------------------------------------------------------

    def artifacts(self, project: str | None = None) -> list[ArtifactName]:
        """Artifacts (of ``project``, else of every project) with at least one version that
        is not deleted."""
        within = f"{project}/" if project is not None else ""
        records = {
            parsed
            for info in self.objects.list(f"versions/{within}")
            if (parsed := layout.parse_version_key(info.key)) is not None
        }
        deleted = {
            parsed
            for info in self.objects.list(f"deleted/{within}")
            if (parsed := layout.parse_tombstone_key(info.key)) is not None
        }
        return sorted({art for art, _ in records - deleted}, key=str)

    def version_numbers(self, art: ArtifactName) -> list[int]:
        """The numbers of the versions of ``art`` that are not deleted, ascending."""
        return sorted(set(self._record_numbers(art)) - self.deleted_numbers(art))

    def _record_numbers(self, art: ArtifactName) -> list[int]:
        """Every number with a record object, deleted versions included (until gc)."""
        numbers = []
        for info in self.objects.list(layout.versions_prefix(art)):
            parsed = layout.parse_version_key(info.key)
            if parsed is not None and parsed[0] == art:
                numbers.append(parsed[1])
        return sorted(numbers)

    def deleted_numbers(self, art: ArtifactName) -> set[int]:
        """Numbers with a tombstone: deleted, and never given out again."""
        found = set()
        for info in self.objects.list(layout.deleted_prefix(art)):
            parsed = layout.parse_tombstone_key(info.key)
            if parsed is not None and parsed[0] == art:
                found.add(parsed[1])
        return found

    def is_deleted(self, art: ArtifactName, number: int) -> bool:
        return self.objects.head(layout.tombstone_key(art, number)) is not None

    def _next_number(self, art: ArtifactName) -> tuple[int, int | None]:
        """The number a new version of ``art`` gets, and the newest live one (if any).

        Records are listed before tombstones: gc removes a record only long after (the grace
        period) its tombstone was created, so a number whose record is gone is always seen in
        the tombstone listing, and no number is ever given out twice.
        """
        records = self._record_numbers(art)
        deleted = self.deleted_numbers(art)
        live = [n for n in records if n not in deleted]
        taken = max([*records, *deleted], default=-1)
        return taken + 1, (live[-1] if live else None)

    def check_format(self) -> None:
        """CorruptData (one line) when the remote's format marker names a format this artfs
        does not know; a remote without one was written before trees (or is empty). Read once
        per client."""
        if self._format_checked:
            return
        try:
            data, _ = self.objects.get(layout.REMOTE_FORMAT_KEY)
        except RemoteMissing:
            data = None
        if data is not None:
            where = f"remote {self.describe()}: {layout.REMOTE_FORMAT_KEY}"
            layout.check_remote_format(data, where)
        self._format_checked = True

    def _mark_format(self) -> None:
        """Write the format marker before the first tree-format record (create-only: a
        marker there already was checked by :meth:`check_format`)."""
        self.check_format()
        if self.objects.head(layout.REMOTE_FORMAT_KEY) is None:
            marker = layout.encode_remote_format(self.writer_id)
            self.objects.put_new(layout.REMOTE_FORMAT_KEY, marker)

    def read_version(self, art: ArtifactName, number: int) -> AnyVersion:
        """The record of ``art:v<number>`` in either format (see :mod:`artfs.remote.layout`)."""
        self.check_format()
        key = layout.version_key(art, number)
        try:
            data, _ = self.objects.get(key)
        except RemoteMissing:
            raise NotFound(f"{art}:v{number} is not on {self.describe()}") from None
        version = layout.decode_version(data, f"{key} on {self.describe()}")
        record = version.record
        if (record.project, record.name, record.number) != (art.project, art.name, number):
            raise CorruptData(f"{key} on {self.describe()} holds {record.ref}")
        return version

    def version_packs(self, art: ArtifactName, number: int, etag: str) -> set[str] | TreeId:
        """The packs version ``number`` (its record object having ``etag``) refers to, or for
        a tree-format record its root tree id (gc marks through its pages). Records never
        change, so this is cached next to the pack indexes: gc reads each record once."""
        tag = "".join(c for c in etag if c.isalnum())[:64]
        cached = None
        if self._cache_dir is not None:
            cached = self._cache_dir.parent / "record-packs" / art.project / art.name
            cached = cached / f"{number}-{tag}.json"
            found = _read_cached(cached, _decode_pack_names)
            if found is not None:
                return found
        version = self.read_version(art, number)
        found = (
            version.root
            if isinstance(version, TreeVersion)
            else {loc.pack for loc in version.chunks.values()}
        )
        if cached is not None:
            stored = found.hex() if isinstance(found, bytes) else sorted(found)
            _write_cached(cached, json.dumps(stored).encode())
        return found

    def resolve(self, ref: Ref) -> int:
        """The version number ``ref`` names on the remote."""
        art = ref.artifact
        if ref.version is not None:
            if self.is_deleted(art, ref.version):
                raise NotFound(f"{art}:v{ref.version} was deleted on {self.describe()}")
            return ref.version
        if ref.selector == "latest":
            numbers = self.version_numbers(art)
            if not numbers:
                raise NotFound(f"{art} has no versions on {self.describe()}")
            return numbers[-1]
        aliases = self.aliases(art)
        if ref.selector not in aliases:
            raise NotFound(f"{art} has no alias {ref.selector!r} on {self.describe()}")
        return aliases[ref.selector][0]

    def find_digest(self, art: ArtifactName, digest: str) -> int | None:
        """The live version holding this content; None also when that version was deleted.

        A push cut off after its record's create committed, before the digest marker was
        written, leaves a record without a marker: the newest live record is checked too (and
        its marker written), so that pushing again does not publish the content twice.
        """
        found = self._digest_marker(art, digest)
        if found is None:
            return self._unmarked_newest(art, digest)
        if self.is_deleted(art, found[0]):
            return None
        return found[0]

    def _unmarked_newest(self, art: ArtifactName, digest: str) -> int | None:
        _, newest = self._next_number(art)
        if newest is None or self._record_head(art, newest)[1] != digest:
            return None
        self._mark_digest(art, digest, newest)
        return newest

    def _digest_marker(self, art: ArtifactName, digest: str) -> tuple[int, str] | None:
        key = layout.digest_key(art, digest)
        try:
            data, etag = self.objects.get(key)
        except RemoteMissing:
            return None
        return layout.decode_pointer(data, f"{key} on {self.describe()}"), etag

    def publish(self, version: AnyVersion) -> int:
        """Create the record at the next free number of its artifact; return that number.

        The record's own number is rewritten to the one it lands at. A version of another type
        than the artifact's newest is refused (TypeMismatch).
        """
        art = version.record.artifact
        if isinstance(version, TreeVersion):
            self._mark_format()
        for attempt in range(_PUBLISH_ATTEMPTS):
            number, newest = self._next_number(art)
            if newest is not None and attempt == 0:
                self._check_type(art, newest, version.record.type)
            record = dataclasses.replace(version.record, number=number, aliases=[])
            body = dataclasses.replace(version, record=record).encode()
            if self.objects.put_new(layout.version_key(art, number), body):
                self._mark_digest(art, record.digest, number)
                return number
            backoff(attempt)
        raise RemoteError(
            f"could not publish a version of {art} on {self.describe()}: "
            f"lost {_PUBLISH_ATTEMPTS} races in a row to other writers; try again"
        )

    def _mark_digest(self, art: ArtifactName, digest: str, number: int) -> None:
        """Point the digest marker at ``number``; a marker left by a deleted version is
        replaced (compare-and-swap), one of a live version is left alone."""
        key = layout.digest_key(art, digest)
        body = layout.encode_pointer(number, self.writer_id)
        if self.objects.put_new(key, body):
            return
        found = self._digest_marker(art, digest)
        if found is not None and self.is_deleted(art, found[0]):
            self.objects.put_if(key, body, found[1])

    def _record_head(self, art: ArtifactName, number: int) -> tuple[str, str]:
        """(type, digest) of record ``number``, read once per Remote."""
        head = self._record_heads.get((art, number))
        if head is None:
            record = self.read_version(art, number).record
            head = self._record_heads[(art, number)] = (record.type, record.digest)
        return head

    def _check_type(self, art: ArtifactName, newest: int, type_: str) -> None:
        existing = self._record_head(art, newest)[0]
        if existing != type_:
            raise TypeMismatch(f"{art} is of type {existing!r} on {self.describe()}, not {type_!r}")

    # --- aliases ------------------------------------------------------------------------------

    def aliases(self, art: ArtifactName) -> dict[str, tuple[int, str]]:
        """Every alias of ``art``: name -> (version number, ETag of the alias object)."""
        found = {}
        prefix = layout.aliases_prefix(art)
        deleted = self.deleted_numbers(art)
        for info in self.objects.list(prefix):
            name = info.key[len(prefix) :].removesuffix(".json")
            try:
                data, etag = self.objects.get(info.key)
            except RemoteMissing:
                continue  # removed since the listing
            number = layout.decode_pointer(data, info.key)
            if number not in deleted:  # an alias of a deleted version is absent
                found[name] = (number, etag)
        return found

    def move_alias(self, art: ArtifactName, alias: str, number: int) -> None:
        """Point ``alias`` at ``number`` by compare-and-swap, whatever other writers do."""
        key = layout.alias_key(art, alias)
        body = layout.encode_pointer(number, self.writer_id)
        for attempt in range(_PUBLISH_ATTEMPTS):
            try:
                data, etag = self.objects.get(key)
            except RemoteMissing:
                if self.objects.put_new(key, body):
                    return
            else:
                if layout.decode_pointer(data, key) == number:
                    return
                if self.objects.put_if(key, body, etag) is not None:
                    return
            backoff(attempt)
        raise RemoteError(f"could not move {art}:{alias} on {self.describe()}: try again")

    def remove_alias(self, art: ArtifactName, alias: str) -> None:
        """Remove ``alias`` (absent already is fine). S3 has no conditional delete: a move by
        another writer at the same instant may be undone, as if it came first."""
        self.objects.delete(layout.alias_key(art, alias))

    def check_type(self, art: ArtifactName, type_: str) -> None:
        """TypeMismatch if ``art`` has versions of another type on the remote."""
        numbers = self.version_numbers(art)
        if numbers:
            self._check_type(art, numbers[-1], type_)

    # --- deleting -----------------------------------------------------------------------------

    def delete_version(
        self, ref: Ref, *, force: bool = False, digest: str | None = None
    ) -> VersionRecord:
        """Delete the version ``ref`` names by creating its tombstone; return its record.

        The record stays until ``artfs gc --remote`` removes it, the tombstone forever, so the
        number is never given out again. A version holding custom aliases needs ``force`` (its
        aliases then count as absent). With ``digest``, a version holding other content is
        refused (Conflict): a caller deleting what it holds never deletes another version.
        """
        art = ref.artifact
        number = self.resolve(ref)
        record = self.read_version(art, number).record
        if digest is not None and record.digest != digest:
            raise Conflict(
                f"{art}:v{number} on {self.describe()} holds other content than the version "
                "to delete: nothing was deleted"
            )
        held = sorted(a for a, (n, _) in self.aliases(art).items() if n == number)
        if held and not force:
            raise AliasesHeld(
                f"{art}:v{number} holds the alias(es) {', '.join(held)} on {self.describe()}: "
                "move them first or pass --force to delete the version with its aliases"
            )
        body = layout.encode_tombstone(number, self.writer_id, time.time())
        self.objects.put_new(layout.tombstone_key(art, number), body)  # False: deleted already
        return dataclasses.replace(record, aliases=held)

    def delete_artifact(self, art: ArtifactName) -> list[VersionRecord]:
        """Delete every version of ``art`` (aliases included)."""
        numbers = self.version_numbers(art)
        if not numbers:
            raise NotFound(f"{art} has no versions on {self.describe()}")
        return [self.delete_version(Ref(art, f"v{n}"), force=True) for n in numbers]

    # --- chunks -------------------------------------------------------------------------------

    def chunk_map(self) -> dict[ChunkId, RemoteChunk]:
        """Every chunk stored on the remote in a pack a new version may use.

        Packs that gc has condemned are left out: a writer uploads those chunks again in a new
        pack, so a record created from this map refers to a condemned pack only if gc condemned
        it after this call, and gc deletes a condemned pack only when, a whole grace period
        later, no record refers to it (see :mod:`artfs.remote.gc`).
        """
        condemned = self.condemned_packs()
        live = {
            pack
            for info in self.objects.list("packs/")
            if info.key.endswith(".idx")
            and (pack := layout.pack_of_key(info.key)) is not None
            and pack not in condemned
        }
        with self._lock:
            new = sorted(live - self._pack_chunks.keys())
        fetched = {pack: self._pack_index(pack) for pack in new}
        found: dict[ChunkId, RemoteChunk] = {}
        with self._lock:
            for pack, (chunks, dictionaries, trees) in fetched.items():
                self._remember(pack, chunks, dictionaries, trees)
            for pack in self._pack_chunks.keys() - live:  # deleted or condemned since
                del self._pack_chunks[pack]
                self._pack_dictionaries.pop(pack, None)
            for pack in sorted(live):
                found.update(self._pack_chunks[pack])
        return found

    def condemned_packs(self) -> set[str]:
        return {
            pack
            for info in self.objects.list(layout.CONDEMNED_PREFIX)
            if (pack := layout.pack_of_key(info.key)) is not None
        }

    def pack_chunks(self, pack: str) -> dict[ChunkId, RemoteChunk]:
        """Every chunk of one pack (its index object; kept in memory and on disk once read)."""
        with self._lock:
            chunks = self._pack_chunks.get(pack)
        if chunks is None:
            chunks, dictionaries, trees = self._pack_index(pack)
            with self._lock:
                self._remember(pack, chunks, dictionaries, trees)
        return chunks

    def _remember(
        self,
        pack: str,
        chunks: dict[ChunkId, RemoteChunk],
        dictionaries: PackDictionaries,
        trees: bool,
    ) -> None:
        """Keep a pack's index in memory (under ``_lock``)."""
        self._pack_chunks[pack] = chunks
        self._pack_dictionaries[pack] = dictionaries
        if trees:
            self._tree_packs.add(pack)

    def is_tree_pack(self, pack: str) -> bool:
        """Whether ``pack`` holds tree pages (its index is read if it was not yet)."""
        self.pack_chunks(pack)
        with self._lock:
            return pack in self._tree_packs

    def locations(self) -> dict[ChunkId, RemoteChunk]:
        """Where every chunk and tree page on the remote is, for readers: a copy in a pack gc
        has not condemned where there is one, else one in a condemned pack (a version that
        still uses it keeps it: gc spares a condemned pack it finds in use)."""
        found: dict[ChunkId, RemoteChunk] = {}
        for chunks in self.every_pack().values():
            found.update(chunks)
        found.update(self.chunk_map())
        return found

    def every_pack(self) -> dict[str, dict[ChunkId, RemoteChunk]]:
        """Every pack with an index, condemned ones included, and its chunks (gc's view)."""
        stored = {
            pack
            for info in self.objects.list("packs/")
            if info.key.endswith(".idx") and (pack := layout.pack_of_key(info.key)) is not None
        }
        return {pack: self.pack_chunks(pack) for pack in sorted(stored)}

    def chunk_dictionary(self, cid: ChunkId, loc: RemoteChunk) -> ChunkId | None:
        """The dictionary the copy of ``cid`` at ``loc`` is coded with, as its pack index says;
        None when it needs none, or when the index does not say (written before dictionaries).
        """
        if loc.codec != Codec.ZSTD_DICT:
            return None
        self.pack_chunks(loc.pack)  # reads the index if it was not read yet
        with self._lock:
            return self._pack_dictionaries.get(loc.pack, {}).get(cid)

    def _pack_index(self, pack: str) -> tuple[dict[ChunkId, RemoteChunk], PackDictionaries, bool]:
        key = layout.pack_index_key(pack)
        cached = self._cache_dir / f"{pack}.idx" if self._cache_dir else None
        if cached is not None:
            found = _read_cached(cached, lambda data: _decode_pack_index(data, str(cached)))
            if found is not None:
                return found
        data, _ = self.objects.get(key)
        decoded = _decode_pack_index(data, f"{key} on {self.describe()}")
        if cached is not None:
            _write_cached(cached, data)
        return decoded

    def upload_pack(
        self,
        pack: str,
        data: bytes,
        chunks: dict[ChunkId, RemoteChunk],
        dictionaries: PackDictionaries | None = None,
        *,
        trees: bool = False,
    ) -> dict[ChunkId, RemoteChunk]:
        """Put a pack, then its index: an index never names a pack that is not there.
        ``dictionaries``: the dictionary of each dictionary-coded chunk, for the index;
        ``trees``: the pack holds tree pages (its index says so).

        A pack of the same name that gc has condemned is not re-used: the pack gets one record
        of random filler and so another name. Returns where the chunks are (the final name).
        """
        dictionaries = dictionaries or {}
        if self.objects.head(layout.condemned_key(pack)) is not None:
            pack, data, chunks, dictionaries = layout.salt_pack(data, chunks, dictionaries).finish()
        if self.objects.head(layout.pack_key(pack)) is None:
            self.objects.put(layout.pack_key(pack), data)
        index = layout.encode_pack_index(pack, chunks, dictionaries, trees=trees)
        self.objects.put(layout.pack_index_key(pack), index)
        with self._lock:
            self._remember(pack, chunks, dictionaries, trees)
        return chunks


def _decode_pack_index(
    data: bytes, where: str
) -> tuple[dict[ChunkId, RemoteChunk], PackDictionaries, bool]:
    chunks = layout.decode_pack_index(data, where)
    return chunks, layout.decode_pack_dictionaries(data, where), layout.is_tree_pack_index(data)


def _decode_pack_names(data: bytes) -> set[str] | TreeId:
    """A cached mark of one record: its pack names, or its root tree id (hex)."""
    found = json.loads(data)
    if isinstance(found, str) and len(found) == 64:
        return TreeId(bytes.fromhex(found))
    if not isinstance(found, list) or not all(isinstance(n, str) for n in found):
        raise ValueError("not a list of pack names")
    return set(found)


def _read_cached(path: Path, decode: Callable[[bytes], T]) -> T | None:
    """The decoded copy at ``path``; None when there is none, or it cannot be read or decoded
    (a damaged copy is removed, so the object is fetched again and the copy rewritten)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read the cached copy %s (%s): fetching it again", path, exc)
        return None
    try:
        return decode(data)
    except (ValueError, CorruptData) as exc:
        log.warning("the cached copy %s is damaged (%s): fetching it again", path, exc)
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def _write_cached(path: Path, data: bytes) -> None:
    """Write a cache copy whole or not at all, best effort: a full disk or a permission
    problem costs a fetch next time, never the operation the copy serves. The temporary file
    has a random name, so threads and processes writing the same copy at once do not meet."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot keep a copy of %s (%s): it is fetched again next time", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


def open_remote(store: Store, config: RemoteConfig) -> Remote:
    """A client of remote ``config`` for ``store`` (its pack indexes cached under
    ``HOME/remotes/NAME/pack-index``), with a writer id of its own."""
    writer_id = new_writer_id()
    objects = S3ObjectStore.open(
        RemoteUrl.parse(config.url),
        endpoint=config.endpoint,
        region=config.region,
        writer_id=writer_id,
    )
    return Remote(objects, writer_id, store.home / "remotes" / config.name / "pack-index")
