"""The object layout of a remote and the formats of its objects (pure: no I/O).

Keys, relative to the remote's ``s3://bucket/prefix``::

    packs/<blake3 of the pack>.pack            immutable pack, the local pack format
    packs/<blake3 of the pack>.idx             JSON: the chunks of that pack and where they are
    versions/<project>/<name>/<number>.json    a version record, created once (If-None-Match)
    digests/<project>/<name>/<digest>.json     {"version": n}: dedup of pushes of one content
    aliases/<project>/<name>/<alias>.json      {"version": n}: moved by compare-and-swap

    format.json                                {"format": "artfs-remote/2"}: written by the first
                                               push of a version in the tree format

A version record (``artfs-version/3``, :class:`TreeVersion`) names the root of its file tree
(see :mod:`artfs.store.trees`) with its digest and counts, nothing more. Tree pages live in
*tree packs*: packs of the same format as chunk packs (a page is stored like a chunk, named by
its tree id, which is the BLAKE3 of its bytes as a chunk id is), whose index says
``"trees": true``. A push uploads the pages the remote lacks in one or a few tree packs, so a
version costs the pages of the directories it changed, and a reader finds a page's location
in the pack indexes as it finds a chunk's.

Records written before trees (``artfs-version/1`` and ``/2``, :class:`RemoteVersion`) carry
their whole file tree and, for every chunk they use, the pack and byte range holding it; they
are still read (and written by nothing any more). In those "every chunk it uses"
includes the compression dictionaries its dictionary-coded chunks need (see
:mod:`artfs.store.codec`): no file names them, the record lists them all the same, so readers and
remote gc find them from the record alone. A pack index also says which dictionary each
dictionary-coded chunk of its pack needs, so a writer reusing a chunk already on the remote knows
which dictionary the record must list without reading the chunk. Version numbers are
decimal without padding; listings are sorted numerically by the reader.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from artfs.errors import CorruptData
from artfs.names import ArtifactName
from artfs.store.catalog import VersionRecord
from artfs.store.chunkstore import RemoteChunk
from artfs.store.codec import dictionary_of
from artfs.store.hashing import ChunkId, FileDigest, TreeId, chunk_id, version_digest
from artfs.store.manifest import ChunkRef, FileEntry, Kind, encode_path
from artfs.store.packs import MAGIC, record_header

# The remote as a whole: written create-only by the first push of a tree-format record. A
# remote without it was written before trees (or is empty); a higher one is refused.
REMOTE_FORMAT_KEY = "format.json"
REMOTE_FORMAT = "artfs-remote/2"
KNOWN_REMOTE_FORMATS = ("artfs-remote/2",)
# A record naming its root tree; an artfs from before trees refuses it ("unknown format").
VERSION_FORMAT_TREES = "artfs-version/3"
VERSION_FORMAT = "artfs-version/1"
# A record that lists compression dictionaries: an artfs from before dictionaries refuses it
# ("unknown format") instead of reporting its dictionary-coded chunks as damaged.
VERSION_FORMAT_DICTIONARIES = "artfs-version/2"
PACK_INDEX_FORMAT = "artfs-pack-index/1"
# The index of a pack holding dictionary-coded chunks: a version of artfs that predates
# dictionaries refuses it instead of reusing such a chunk without listing its dictionary in a
# record (which remote gc would then collect).
PACK_INDEX_FORMAT_DICTIONARIES = "artfs-pack-index/2"


def pack_key(pack: str) -> str:
    return f"packs/{pack}.pack"


def pack_index_key(pack: str) -> str:
    return f"packs/{pack}.idx"


def versions_prefix(art: ArtifactName) -> str:
    return f"versions/{art.project}/{art.name}/"


def version_key(art: ArtifactName, number: int) -> str:
    return f"{versions_prefix(art)}{number}.json"


def digest_key(art: ArtifactName, digest: str) -> str:
    return f"digests/{art.project}/{art.name}/{digest}.json"


def aliases_prefix(art: ArtifactName) -> str:
    return f"aliases/{art.project}/{art.name}/"


def alias_key(art: ArtifactName, alias: str) -> str:
    return f"{aliases_prefix(art)}{alias}.json"


def parse_version_key(key: str) -> tuple[ArtifactName, int] | None:
    """``versions/p/n/7.json`` -> (p/n, 7); None for anything else under ``versions/``."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "versions" or not parts[3].endswith(".json"):
        return None
    stem = parts[3][: -len(".json")]
    if not stem.isdigit():
        return None
    return ArtifactName(parts[1], parts[2]), int(stem)


# --- packs ------------------------------------------------------------------------------------


# A dictionary-coded chunk of a pack -> the dictionary it needs (its payload's first 32 bytes).
PackDictionaries = dict[ChunkId, ChunkId]


class PackBuilder:
    """Gathers stored chunk payloads into one pack in memory (same format as local packs)."""

    def __init__(self) -> None:
        self.data = bytearray(MAGIC)
        self.chunks: list[tuple[ChunkId, int, int, int, int]] = []
        self.dictionaries: PackDictionaries = {}

    def add(self, cid: ChunkId, codec: int, payload: bytes, raw_length: int) -> None:
        self.data += record_header(cid, codec, raw_length, len(payload))
        self.chunks.append((cid, len(self.data), len(payload), raw_length, codec))
        self.data += payload
        dict_id = dictionary_of(codec, payload)
        if dict_id is not None:
            self.dictionaries[cid] = dict_id

    def finish(self) -> tuple[str, bytes, dict[ChunkId, RemoteChunk], PackDictionaries]:
        """The pack's name (BLAKE3 of its bytes), its bytes, where each chunk is in it and the
        dictionary each dictionary-coded chunk needs."""
        data = bytes(self.data)
        name = chunk_id(data).hex()
        where = {
            cid: RemoteChunk(name, offset, stored, raw, codec)
            for cid, offset, stored, raw, codec in self.chunks
        }
        return name, data, where, dict(self.dictionaries)


def encode_pack_index(
    pack: str,
    chunks: dict[ChunkId, RemoteChunk],
    dictionaries: PackDictionaries | None = None,
    *,
    trees: bool = False,
) -> bytes:
    """The index object of a pack. ``dictionaries`` go under a key of their own, in a format
    that readers predating dictionaries refuse; ``trees``: the pack holds tree pages only."""
    rows = [
        [cid.hex(), c.offset, c.stored_length, c.raw_length, c.codec] for cid, c in chunks.items()
    ]
    doc: dict[str, Any] = {"format": PACK_INDEX_FORMAT, "pack": pack, "chunks": rows}
    if trees:
        doc["trees"] = True
    if dictionaries:
        doc["format"] = PACK_INDEX_FORMAT_DICTIONARIES
        doc["dictionaries"] = {cid.hex(): d.hex() for cid, d in dictionaries.items()}
    return json.dumps(doc).encode()


def decode_pack_dictionaries(data: bytes, where: str) -> PackDictionaries:
    """The dictionary of each dictionary-coded chunk of a pack index (empty for an index
    written before dictionaries: its chunks then count as of unknown dictionary)."""
    try:
        doc = json.loads(data)
        found = doc.get("dictionaries") or {}
        return {ChunkId(bytes.fromhex(c)): ChunkId(bytes.fromhex(d)) for c, d in found.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise CorruptData(f"pack index {where} cannot be read: {exc}") from None


def is_tree_pack_index(data: bytes) -> bool:
    """Whether a (decodable) pack index says its pack holds tree pages."""
    return bool(json.loads(data).get("trees"))


def decode_pack_index(data: bytes, where: str) -> dict[ChunkId, RemoteChunk]:
    try:
        doc = json.loads(data)
        if doc.get("format") not in (PACK_INDEX_FORMAT, PACK_INDEX_FORMAT_DICTIONARIES):
            raise ValueError(f"unknown format {doc.get('format')!r}")
        pack = str(doc["pack"])
        return {
            ChunkId(bytes.fromhex(cid)): RemoteChunk(pack, int(off), int(st), int(raw), int(co))
            for cid, off, st, raw, co in doc["chunks"]
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptData(f"pack index {where} cannot be read: {exc}") from None


# --- version records --------------------------------------------------------------------------


def _entry_to_json(entry: FileEntry) -> list[Any]:
    chunks = [[c.chunk_id.hex(), c.length] for c in entry.chunks]
    return [
        entry.path,
        int(entry.kind),
        entry.mode,
        entry.size,
        entry.mtime_ns,
        entry.digest.hex(),
        chunks,
        entry.uri,
    ]


def _entry_from_json(value: list[Any]) -> FileEntry:
    path, kind, mode, size, mtime_ns, digest, chunks, uri = value
    return FileEntry(
        str(path),
        Kind(kind),
        int(mode),
        int(size),
        int(mtime_ns),
        FileDigest(bytes.fromhex(digest)),
        tuple(ChunkRef(ChunkId(bytes.fromhex(cid)), int(length)) for cid, length in chunks),
        None if uri is None else str(uri),
    )


def _record_json(record: VersionRecord) -> dict[str, Any]:
    """The record as remotes hold it: without the local root tree id (the remote format is
    unchanged by local trees, so an older artfs still reads it; a reader builds the tree)."""
    doc: dict[str, Any] = json.loads(record.encode())
    doc.pop("tree", None)
    return doc


@dataclass
class RemoteVersion:
    record: VersionRecord
    entries: list[FileEntry]
    chunks: dict[ChunkId, RemoteChunk]

    def encode(self) -> bytes:
        doc = {
            "format": VERSION_FORMAT_DICTIONARIES if self.dictionaries() else VERSION_FORMAT,
            "version": _record_json(self.record),
            "files": [_entry_to_json(e) for e in self.entries],
            "chunks": {cid.hex(): loc.to_json() for cid, loc in self.chunks.items()},
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> RemoteVersion:
        """Parse and check a record: its file list must hash to its digest and every chunk it
        uses must have a location. CorruptData names ``where`` otherwise."""
        try:
            doc = json.loads(data)
            if doc.get("format") not in (VERSION_FORMAT, VERSION_FORMAT_DICTIONARIES):
                raise ValueError(f"unknown format {doc.get('format')!r}")
            record = VersionRecord.decode(json.dumps(doc["version"]).encode())
            entries = [_entry_from_json(e) for e in doc["files"]]
            chunks = {
                ChunkId(bytes.fromhex(cid)): RemoteChunk.from_json(loc)
                for cid, loc in doc["chunks"].items()
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptData(f"version record {where} cannot be read: {exc}") from None
        version = cls(record, entries, chunks)
        version.check(where)
        return version

    def dictionaries(self) -> list[ChunkId]:
        """The chunks the record lists that no file names: the compression dictionaries its
        dictionary-coded chunks need."""
        named = {ref.chunk_id for entry in self.entries for ref in entry.chunks}
        return [cid for cid in self.chunks if cid not in named]

    def check(self, where: str) -> None:
        files = [(encode_path(e.path), bytes(e.digest)) for e in self.entries if not e.is_dir]
        if len(files) != self.record.files or version_digest(files).hex() != self.record.digest:
            raise CorruptData(f"version record {where}: the file list does not match its digest")
        for entry in self.entries:
            for ref in entry.chunks:
                if ref.chunk_id not in self.chunks:
                    raise CorruptData(
                        f"version record {where}: no location for a chunk of {entry.path}"
                    )


@dataclass
class TreeVersion:
    """A record in the tree format: the version (its digest, file count and size) and the id of
    its root tree page, whose pages are in tree packs. ``record.tree`` is the root (hex)."""

    record: VersionRecord

    @property
    def root(self) -> TreeId:
        assert self.record.tree is not None  # checked by decode, set by the writer
        return TreeId(bytes.fromhex(self.record.tree))

    def encode(self) -> bytes:
        doc = {"format": VERSION_FORMAT_TREES, "version": json.loads(self.record.encode())}
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def decode_doc(cls, doc: dict[str, Any], where: str) -> TreeVersion:
        try:
            record = VersionRecord.decode(json.dumps(doc["version"]).encode())
            if record.tree is None or len(bytes.fromhex(record.tree)) != 32:
                raise ValueError("no root tree")
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptData(f"version record {where} cannot be read: {exc}") from None
        return cls(record)


AnyVersion = RemoteVersion | TreeVersion


def decode_version(data: bytes, where: str) -> AnyVersion:
    """A record of any format this artfs reads; CorruptData naming ``where`` otherwise."""
    try:
        doc = json.loads(data)
        found = doc.get("format")
    except (ValueError, AttributeError) as exc:
        raise CorruptData(f"version record {where} cannot be read: {exc}") from None
    if found == VERSION_FORMAT_TREES:
        return TreeVersion.decode_doc(doc, where)
    return RemoteVersion.decode(data, where)


def encode_remote_format(writer: str) -> bytes:
    return json.dumps({"format": REMOTE_FORMAT, "writer": writer}).encode()


def check_remote_format(data: bytes, where: str) -> None:
    """CorruptData for a format marker this artfs cannot read (one line: what to do)."""
    try:
        found = json.loads(data).get("format")
    except (ValueError, AttributeError) as exc:
        raise CorruptData(f"{where} cannot be read: {exc}") from None
    if found not in KNOWN_REMOTE_FORMATS:
        raise CorruptData(
            f"{where} says format {found!r}, which this artfs does not know (it reads "
            f"{', '.join(KNOWN_REMOTE_FORMATS)}): upgrade artfs to use this remote"
        )


def encode_pointer(number: int, writer: str) -> bytes:
    """Body of an alias or digest object."""
    return json.dumps({"version": number, "writer": writer}).encode()


def decode_pointer(data: bytes, where: str) -> int:
    try:
        return int(json.loads(data)["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptData(f"{where} cannot be read: {exc}") from None


# --- deletion and gc (artfs rm --remote, artfs gc --remote) ----------------------------------
#
#   deleted/<project>/<name>/<number>.json     tombstone: that version is deleted (kept forever,
#                                              so that its number is never given out again)
#   gc/condemned/<pack>.json                   that pack was unreferenced: a later gc deletes it
#   gc/clock.json                              rewritten by gc to read the server's clock

CONDEMNED_PREFIX = "gc/condemned/"
GC_CLOCK_KEY = "gc/clock.json"


def deleted_prefix(art: ArtifactName) -> str:
    return f"deleted/{art.project}/{art.name}/"


def tombstone_key(art: ArtifactName, number: int) -> str:
    return f"{deleted_prefix(art)}{number}.json"


def parse_tombstone_key(key: str) -> tuple[ArtifactName, int] | None:
    """``deleted/p/n/7.json`` -> (p/n, 7); None for anything else."""
    if not key.startswith("deleted/"):
        return None
    return parse_version_key("versions/" + key[len("deleted/") :])


def encode_tombstone(number: int, writer: str, when: float) -> bytes:
    return json.dumps({"version": number, "writer": writer, "time": when}).encode()


def condemned_key(pack: str) -> str:
    return f"{CONDEMNED_PREFIX}{pack}.json"


def encode_condemned(pack: str, writer: str, when: float) -> bytes:
    return json.dumps({"pack": pack, "writer": writer, "time": when}).encode()


def pack_of_key(key: str) -> str | None:
    """The pack a ``packs/<pack>.pack``/``.idx`` or ``gc/condemned/<pack>.json`` key names."""
    for prefix, suffixes in (("packs/", (".pack", ".idx")), (CONDEMNED_PREFIX, (".json",))):
        if key.startswith(prefix):
            for suffix in suffixes:
                if key.endswith(suffix):
                    return key[len(prefix) : -len(suffix)] or None
    return None


def salt_pack(
    data: bytes, chunks: dict[ChunkId, RemoteChunk], dictionaries: PackDictionaries | None = None
) -> PackBuilder:
    """The same chunks at the same offsets followed by one record of 32 random bytes, so the
    pack gets another name: a writer must not re-create a pack that gc has condemned."""
    builder = PackBuilder()
    builder.data = bytearray(data)
    builder.dictionaries = dict(dictionaries or {})
    for cid, loc in chunks.items():
        builder.chunks.append((cid, loc.offset, loc.stored_length, loc.raw_length, loc.codec))
    filler = secrets.token_bytes(32)
    builder.add(chunk_id(filler), 0, filler, len(filler))
    return builder
