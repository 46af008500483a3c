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

import dataclasses
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from artfs.errors import CorruptData, NotFound, TypeMismatch
from artfs.names import ArtifactName, Ref
from artfs.remote import layout
from artfs.remote.layout import RemoteChunk, RemoteVersion
from artfs.remote.objectstore import ObjectStore, RemoteError, RemoteMissing
from artfs.store.hashing import ChunkId

# A writer gives up after this many lost races in a row (each a list + a PUT): with N writers
# racing, a writer loses at most N-1 rounds before it wins one.
_PUBLISH_ATTEMPTS = 64
_BACKOFF_BASE = 0.02
_BACKOFF_MAX = 1.0


def backoff(attempt: int) -> None:
    """Sleep a jittered, exponentially growing time (full jitter: uniform in [0, cap])."""
    time.sleep(random.uniform(0, min(_BACKOFF_MAX, _BACKOFF_BASE * 2**attempt)))


class Remote:
    """The artfs objects under one remote URL. ``cache_dir``, when given, keeps copies of pack
    index objects (immutable) so that a push lists packs but fetches only new indexes."""

    def __init__(self, objects: ObjectStore, writer_id: str, cache_dir: Path | None) -> None:
        self.objects = objects
        self.writer_id = writer_id
        self._cache_dir = cache_dir
        self._chunk_map: dict[ChunkId, RemoteChunk] = {}
        self._packs_seen: set[str] = set()

    def describe(self) -> str:
        return self.objects.describe()

    # --- versions -----------------------------------------------------------------------------

    def artifacts(self) -> list[ArtifactName]:
        found = {
            parsed[0]
            for info in self.objects.list("versions/")
            if (parsed := layout.parse_version_key(info.key)) is not None
        }
        return sorted(found, key=str)

    def version_numbers(self, art: ArtifactName) -> list[int]:
        numbers = []
        for info in self.objects.list(layout.versions_prefix(art)):
            parsed = layout.parse_version_key(info.key)
            if parsed is not None and parsed[0] == art:
                numbers.append(parsed[1])
        return sorted(numbers)

    def read_version(self, art: ArtifactName, number: int) -> RemoteVersion:
        key = layout.version_key(art, number)
        try:
            data, _ = self.objects.get(key)
        except RemoteMissing:
            raise NotFound(f"{art}:v{number} is not on {self.describe()}") from None
        version = RemoteVersion.decode(data, f"{key} on {self.describe()}")
        record = version.record
        if (record.project, record.name, record.number) != (art.project, art.name, number):
            raise CorruptData(f"{key} on {self.describe()} holds {record.ref}")
        return version

    def resolve(self, ref: Ref) -> int:
        """The version number ``ref`` names on the remote."""
        art = ref.artifact
        if ref.version is not None:
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
        key = layout.digest_key(art, digest)
        try:
            data, _ = self.objects.get(key)
        except RemoteMissing:
            return None
        return layout.decode_pointer(data, f"{key} on {self.describe()}")

    def publish(self, version: RemoteVersion) -> int:
        """Create the record at the next free number of its artifact; return that number.

        The record's own number is rewritten to the one it lands at. A version of another type
        than the artifact's newest is refused (TypeMismatch).
        """
        art = version.record.artifact
        for attempt in range(_PUBLISH_ATTEMPTS):
            numbers = self.version_numbers(art)
            if numbers and attempt == 0:
                self._check_type(art, numbers[-1], version.record.type)
            number = numbers[-1] + 1 if numbers else 0
            record = dataclasses.replace(version.record, number=number, aliases=[])
            body = dataclasses.replace(version, record=record).encode()
            if self.objects.put_new(layout.version_key(art, number), body):
                self.objects.put_new(
                    layout.digest_key(art, record.digest),
                    layout.encode_pointer(number, self.writer_id),
                )
                return number
            backoff(attempt)
        raise RemoteError(
            f"could not publish a version of {art} on {self.describe()}: "
            f"lost {_PUBLISH_ATTEMPTS} races in a row to other writers; try again"
        )

    def _check_type(self, art: ArtifactName, newest: int, type_: str) -> None:
        existing = self.read_version(art, newest).record.type
        if existing != type_:
            raise TypeMismatch(f"{art} is of type {existing!r} on {self.describe()}, not {type_!r}")

    # --- aliases ------------------------------------------------------------------------------

    def aliases(self, art: ArtifactName) -> dict[str, tuple[int, str]]:
        """Every alias of ``art``: name -> (version number, ETag of the alias object)."""
        found = {}
        prefix = layout.aliases_prefix(art)
        for info in self.objects.list(prefix):
            name = info.key[len(prefix) :].removesuffix(".json")
            try:
                data, etag = self.objects.get(info.key)
            except RemoteMissing:
                continue  # removed since the listing
            found[name] = (layout.decode_pointer(data, info.key), etag)
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

    # --- chunks -------------------------------------------------------------------------------

    def chunk_map(self) -> dict[ChunkId, RemoteChunk]:
        """Every chunk stored on the remote (from the pack index objects)."""
        for info in self.objects.list("packs/"):
            if not info.key.endswith(".idx"):
                continue
            pack = info.key[len("packs/") : -len(".idx")]
            if pack not in self._packs_seen:
                self._chunk_map.update(self._pack_index(pack))
                self._packs_seen.add(pack)
        return self._chunk_map

    def _pack_index(self, pack: str) -> dict[ChunkId, RemoteChunk]:
        key = layout.pack_index_key(pack)
        cached = self._cache_dir / f"{pack}.idx" if self._cache_dir else None
        if cached is not None and cached.exists():
            return layout.decode_pack_index(cached.read_bytes(), str(cached))
        data, _ = self.objects.get(key)
        chunks = layout.decode_pack_index(data, f"{key} on {self.describe()}")
        if cached is not None:
            _write_atomic(cached, data)
        return chunks

    def upload_pack(self, pack: str, data: bytes, chunks: dict[ChunkId, RemoteChunk]) -> None:
        """Put a pack, then its index: an index never names a pack that is not there."""
        if self.objects.head(layout.pack_key(pack)) is None:
            self.objects.put(layout.pack_key(pack), data)
        self.objects.put(layout.pack_index_key(pack), layout.encode_pack_index(pack, chunks))
        self._chunk_map.update(chunks)
        self._packs_seen.add(pack)

    def read_ranges(
        self, pack: str, ranges: list[tuple[int, int]], deliver: Callable[[int, bytes], None]
    ) -> None:
        """Fetch byte ranges of one pack, one ranged GET per range; ``deliver(start, bytes)``."""
        for start, end in ranges:
            deliver(start, self.objects.get_range(layout.pack_key(pack), start, end))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
