"""Moving versions between a local store and a remote: push, pull, clone.

- push uploads the chunks the remote lacks as new content-addressed packs (each pack before its
  index), with the compression dictionaries they need, then the tree pages the remote lacks
  (walking down from the version's root and stopping at every page the remote has, see
  :mod:`artfs.remote.pages`) in tree packs, then creates the version record, which names the
  root, at the remote's next number, then moves the aliases the version holds locally;
- pull fetches a record, the tree pages the local store lacks (down from the root, stopping at
  pages held here) and, with ranged GETs coalesced per pack, the chunks it lacks (the
  dictionaries they need first); every page and chunk is decompressed and hashed before
  anything is written, and the files must hash to the record's digest, so a changed object on
  the remote is refused and the local store is left as it was;
- clone copies every record into the local index, with no page beyond what the record names
  and no chunk: the pages come on first lookup or listing, the chunks on first read (in a
  remote-backed store), or with a later pull.

Records written before trees (a file list and every chunk's location) are read too.

Version numbers are the remote's: a pushed version lands at the remote's next number, which may
differ from its local number; a pulled version lands at its remote number.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from artfs.errors import Conflict, CorruptData, InvalidName, NotFound
from artfs.names import ArtifactName, Ref
from artfs.objectstore import RemoteUrl
from artfs.remote import pages
from artfs.remote.cache import DiskChunkCache
from artfs.remote.layout import PackBuilder, TreeVersion
from artfs.remote.ranged import coalesce, fetch_group, verified_chunk
from artfs.remote.remote import Remote
from artfs.store import codec
from artfs.store.catalog import VersionRecord
from artfs.store.chunkstore import RemoteChunk
from artfs.store.hashing import ChunkId, TreeId, version_digest
from artfs.store.locks import file_lock
from artfs.store.manifest import FileEntry, encode_path
from artfs.store.ports import ChunkReader, PageReader
from artfs.store.repository import Store
from artfs.store.settings import RemoteConfig

# Remote packs are built in memory and uploaded in one PUT: 64 MiB keeps memory bounded and is
# far above the size where per-request overhead matters.
REMOTE_PACK_SIZE = 64 << 20


@dataclass
class PushResult:
    local: VersionRecord
    number: int  # the version's number on the remote
    created: bool  # False when the remote already had this content
    chunks_uploaded: int = 0
    bytes_uploaded: int = 0
    aliases: list[str] = field(default_factory=list)


@dataclass
class PullResult:
    record: VersionRecord
    created: bool  # False when the local store already had the version
    chunks_fetched: int = 0
    bytes_fetched: int = 0


def remote_config(store: Store, name: str | None) -> RemoteConfig:
    """The named remote; without a name the only one, else ``origin``."""
    if name is not None:
        return store.remote(name)
    configured = store.remotes()
    if len(configured) == 1:
        return configured[0]
    names = [c.name for c in configured]
    if "origin" in names:
        return store.remote("origin")
    if not names:
        raise NotFound("this store has no remote: add one with 'artfs remote add NAME s3://...'")
    raise InvalidName(f"several remotes ({', '.join(names)}): choose one with --remote NAME")


# --- push -------------------------------------------------------------------------------------


def push(store: Store, remote: Remote, ref: Ref) -> PushResult:
    record = store.resolve(ref)
    entries = store.entries(record)
    art = record.artifact

    def read_chunk(cid: ChunkId) -> tuple[bytes, int, int]:
        try:
            return store.stored_chunk(cid)
        except NotFound:
            raise NotFound(
                f"a chunk of {record.ref} is not in this store (a clone holds only the index): "
                f"'artfs pull {record.ref}' first"
            ) from None

    sent = publish_version(remote, record, entries, read_chunk, store.tree_page)
    result = PushResult(record, sent.number, sent.created, sent.chunks, sent.bytes)
    for alias in record.aliases:
        if alias != "latest":
            remote.move_alias(art, alias, result.number)
            result.aliases.append(alias)
    return result


def push_all(store: Store, remote: Remote) -> list[PushResult]:
    results = []
    for project in store.projects():
        for _, records in store.artifacts(project):
            results += [push(store, remote, Ref(r.artifact, r.version)) for r in records]
    return results


@dataclass
class Upload:
    """What publishing one version did: its number on the remote, whether the record was
    created (False: the content was there already) and the chunks it had to send."""

    number: int
    created: bool
    chunks: int = 0
    bytes: int = 0  # chunk and tree pack bytes sent
    pages: int = 0  # tree pages sent
    locations: dict[ChunkId, RemoteChunk] = field(default_factory=dict)  # of a created record


def publish_version(
    remote: Remote,
    record: VersionRecord,
    entries: list[FileEntry],
    read_chunk: ChunkReader,
    read_page: PageReader,
) -> Upload:
    """Create ``record`` (whose ``tree`` names the root of ``entries``) at the remote's next
    number unless its content is there already.

    The chunks the remote lacks are read with ``read_chunk`` (which checks them) and uploaded
    as new packs, each before its index, then the tree pages it lacks (read with
    ``read_page``), all before the record: a record never names a page or chunk that is not on
    the remote. The same holds for the compression dictionaries the version's chunks are coded
    with *as stored on the remote*: they are uploaded when missing (no file names them; a
    reader finds each from the index of its chunk's pack, and remote gc keeps them so).
    """
    existing = remote.find_digest(record.artifact, record.digest)
    if existing is not None:
        return Upload(existing, created=False)
    needed = _chunk_ids(entries)
    # One listing only: gc's safety rests on the time of this chunk map (a pack gc condemns
    # later is spared while a record names it), so the packs uploaded below are merged in
    # under the names they got instead of listing again (which would drop a pack condemned
    # meanwhile).
    known = remote.chunk_map()
    upload = Upload(-1, created=True)
    missing, dictionaries = _missing(remote, needed, known)
    sent, used = _upload(remote, missing, read_chunk, upload, known)
    known.update(sent)
    dictionaries.update(dict.fromkeys(used))
    upload.locations = {cid: known[cid] for cid in [*needed, *dictionaries]}
    assert record.tree is not None, "a version to publish names its root tree"
    root = TreeId(bytes.fromhex(record.tree))
    new = pages.missing_pages(root, lambda page: ChunkId(page) in known, read_page)
    landed, sent_bytes = pages.upload_pages(remote, new)
    upload.pages, upload.bytes = len(new), upload.bytes + sent_bytes
    upload.locations.update(landed)
    upload.number = remote.publish(TreeVersion(record))
    return upload


def _missing(
    remote: Remote, needed: list[ChunkId], known: dict[ChunkId, RemoteChunk]
) -> tuple[list[ChunkId], dict[ChunkId, None]]:
    """The chunks to upload, and the dictionaries the copies already on the remote need (in
    first-use order). The dictionary of the remote's copy, not of the local one: two stores
    code the same content with dictionaries of their own, and the record names the remote's
    copy. Its pack index says which (no chunk is read)."""
    missing: list[ChunkId] = []
    dictionaries: dict[ChunkId, None] = {}
    for cid in needed:
        loc = known.get(cid)
        dict_id = None if loc is None else remote.chunk_dictionary(cid, loc)
        if loc is None or (loc.codec == codec.Codec.ZSTD_DICT and dict_id not in known):
            # Not there, or coded with a dictionary that is not (or that a pack index written
            # before dictionaries does not name): our own copy is sent.
            missing.append(cid)
        elif dict_id is not None:
            dictionaries[dict_id] = None
    return missing, dictionaries


def _chunk_ids(entries: list[FileEntry]) -> list[ChunkId]:
    return list(dict.fromkeys(ref.chunk_id for e in entries for ref in e.chunks))


def _upload(
    remote: Remote,
    missing: list[ChunkId],
    read_chunk: ChunkReader,
    upload: Upload,
    known: dict[ChunkId, RemoteChunk],
) -> tuple[dict[ChunkId, RemoteChunk], list[ChunkId]]:
    """Upload ``missing`` in packs of up to REMOTE_PACK_SIZE, each dictionary one of them is
    coded with (and ``known`` lacks) just before the first chunk needing it. Returns where
    each chunk landed and the dictionaries the uploaded chunks need."""
    builder = PackBuilder()
    landed: dict[ChunkId, RemoteChunk] = {}
    used: dict[ChunkId, None] = {}

    def add(cid: ChunkId, payload: bytes, codec_id: int, raw_length: int) -> None:
        nonlocal builder
        builder.add(cid, codec_id, payload, raw_length)
        upload.chunks += 1
        upload.bytes += len(payload)
        if len(builder.data) >= REMOTE_PACK_SIZE:
            landed.update(remote.upload_pack(*builder.finish()))
            builder = PackBuilder()

    queued: set[ChunkId] = set()
    for cid in missing:
        if cid in queued:
            continue
        payload, codec_id, raw_length = read_chunk(cid)
        dict_id = codec.dictionary_of(codec_id, payload)
        if dict_id is not None:
            used[dict_id] = None
            if dict_id not in known and dict_id not in queued:
                queued.add(dict_id)
                add(dict_id, *read_chunk(dict_id))
        queued.add(cid)
        add(cid, payload, codec_id, raw_length)
    if builder.chunks:
        landed.update(remote.upload_pack(*builder.finish()))
    return landed, list(used)


# --- pull and clone ---------------------------------------------------------------------------


def pull(store: Store, remote: Remote, ref: Ref) -> PullResult:
    art = ref.artifact
    number = remote.resolve(ref)
    version = remote.read_version(art, number)
    if isinstance(version, TreeVersion):
        return _pull_tree(store, remote, version)
    # Every chunk the record lists: the files' and the dictionaries they are coded with.
    missing = store.missing_chunks([*_chunk_ids(version.entries), *version.dictionaries()])
    fetched = _Fetch(remote, version.record, version.chunks, missing, store.dictionary)
    fetched.listed = set(version.dictionaries())
    created = store.adopt_version(version.record, version.entries, fetched.chunks())
    _adopt_aliases(store, remote, art, {number})
    record = store.resolve(Ref(art, f"v{number}"))
    return PullResult(record, created, fetched.count, fetched.bytes)


def _pull_tree(store: Store, remote: Remote, version: TreeVersion) -> PullResult:
    """Pull a tree-format version: the pages this store lacks (down from the root, stopping at
    pages it holds), then the chunks it lacks, all verified before anything is written; the
    files must hash to the record's digest."""
    record = version.record
    where = remote.locations()
    got, page_bytes = pages.fetch_tree(remote, version.root, store.has_tree_page, where, record.ref)
    entries = store.tree_entries(version.root, got)
    _check_digest(record, entries, remote)
    missing = store.missing_chunks(_chunk_ids(entries))
    dictionaries = _dictionaries_of(remote, missing, where)
    wanted = store.missing_chunks([*dictionaries, *missing])
    fetched = _Fetch(remote, record, where, wanted, store.dictionary)
    fetched.listed, fetched.bytes = dictionaries, page_bytes
    created = store.adopt_version(record, [], fetched.chunks(), pages=got)
    _adopt_aliases(store, remote, record.artifact, {record.number})
    fresh = store.resolve(Ref(record.artifact, f"v{record.number}"))
    return PullResult(fresh, created, fetched.count, fetched.bytes)


def _check_digest(record: VersionRecord, entries: list[FileEntry], remote: Remote) -> None:
    files = [(encode_path(e.path), bytes(e.digest)) for e in entries if not e.is_dir]
    if len(files) != record.files or version_digest(files).hex() != record.digest:
        raise CorruptData(
            f"{record.ref} on {remote.describe()}: its file tree does not match its digest; "
            "nothing was stored"
        )


def _dictionaries_of(
    remote: Remote, ids: list[ChunkId], where: dict[ChunkId, RemoteChunk]
) -> set[ChunkId]:
    """The dictionaries the remote's copies of ``ids`` are coded with (from pack indexes)."""
    found = set()
    for cid in ids:
        loc = where.get(cid)
        dict_id = None if loc is None else remote.chunk_dictionary(cid, loc)
        if dict_id is not None:
            found.add(dict_id)
    return found


def clone(store: Store, remote: Remote) -> list[VersionRecord]:
    """Every version of the remote into the local index, without chunks (where each chunk is
    on the remote is recorded, so a remote-backed store reads them lazily)."""
    return refresh(store, remote).adopted


@dataclass
class RefreshResult:
    adopted: list[VersionRecord] = field(default_factory=list)  # new versions in the index
    deleted: list[str] = field(default_factory=list)  # refs deleted on the remote, so here
    aliases: list[str] = field(default_factory=list)  # "art:alias -> vN", "art:alias removed"
    skipped: list[str] = field(default_factory=list)  # remote versions not adopted, and why
    located: bool = False  # the locations of the remote's packs were recorded

    def __bool__(self) -> bool:
        return bool(self.adopted or self.deleted or self.aliases or self.skipped)


def refresh(
    store: Store,
    remote: Remote,
    stop: threading.Event | None = None,
    *,
    project: str | None = None,
    artifact: ArtifactName | None = None,
) -> RefreshResult:
    """Bring the local index up to date with the remote, incrementally (the clone of a store
    that already has the rest): versions the remote lists for the first time are adopted
    (record, file tree and chunk locations; no chunk), versions it deleted are deleted here,
    aliases follow the remote. Only new records are read: per artifact one listing of
    versions, two of tombstones, one of aliases and one GET per alias, plus one GET per new
    version and per newly deleted one.

    A version is deleted here only on positive evidence: its tombstone on the remote and a
    local record that is the remote's (the same digest as the remote's record; once gc removed
    that record, a number adopted from the remote). A version that cannot be adopted (another
    version at its number here, an unreadable record) is reported in ``skipped`` and tried
    again next time. Refreshes of one store run one at a time (a lock file under
    ``HOME/remotes``), so none acts on a listing older than what another one adopted. With
    ``stop`` set, the refresh ends after the artifact it is at. With ``project`` or
    ``artifact``, only those artifacts are refreshed (what ``artfs ls`` of one is about to
    show: no listing of the whole remote).
    """
    result = RefreshResult()
    with _refresh_lock(store):
        seen = store.remote_seen()
        if artifact is not None:
            scope = {artifact}
        else:
            scope = set(remote.artifacts(project)) | {
                art for art in seen if project is None or art.project == project
            }
        for art in sorted(scope, key=str):
            if stop is not None and stop.is_set():
                break
            _refresh_artifact(store, remote, art, seen.get(art, set()), result)
    return result


def record_locations(store: Store, remote: Remote) -> None:
    """Record where the chunks and tree pages of the remote's packs are, for those packs this
    store has not recorded yet (a LIST of ``packs/``, and the pack indexes not cached)."""
    recorded = store.recorded_remote_packs(remote.describe())
    live = {loc.pack for loc in remote.chunk_map().values()}
    new = {pack: remote.pack_chunks(pack) for pack in sorted(live - recorded)}
    if new:
        store.record_remote_packs(remote.describe(), new)


@contextmanager
def _refresh_lock(store: Store) -> Iterator[None]:
    folder = store.home / "remotes"
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / "refresh.lock", exclusive=True):
        yield


def _refresh_artifact(
    store: Store, remote: Remote, art: ArtifactName, known: set[int], result: RefreshResult
) -> None:
    here = _committed(store, art)
    listed = remote.version_numbers(art)
    matched = {
        n
        for n in listed
        if (n in known and n in here) or _adopt_remote(store, remote, art, n, result)
    }
    doomed = _deleted_here(remote, art, here, known, result)
    aliases = {alias: n for alias, (n, _) in remote.aliases(art).items()}
    deleted, moved = store.mirror_remote(art, matched, doomed, aliases)
    result.deleted += deleted
    result.aliases += moved


def _adopt_remote(
    store: Store, remote: Remote, art: ArtifactName, number: int, result: RefreshResult
) -> bool:
    """Adopt remote version ``number``; True when this store now holds it at that number."""
    try:
        version = remote.read_version(art, number)
        if isinstance(version, TreeVersion):
            # The record only: pages and chunks are fetched when first wanted, from where
            # the pack indexes say, recorded before the version shows (once per refresh: the
            # packs a record uses are on the remote before it, so listed now).
            if not result.located:
                record_locations(store, remote)
                result.located = True
            _cache_root(store, remote, version)
            adopted = store.adopt_version(version.record, [])
        else:
            where = {cid: loc.encode() for cid, loc in version.chunks.items()}
            adopted = store.adopt_version(version.record, version.entries, remote_chunks=where)
        if adopted:
            result.adopted.append(version.record)
    except (Conflict, CorruptData) as exc:
        # Another version at that number here (made before the store was backed by this
        # remote), or a record this artfs cannot read: the local one stays, the rest goes on.
        result.skipped.append(f"{art}:v{number}: {exc}")
        return False
    except NotFound:  # deleted (and collected) since the listing
        return False
    return True


def _cache_root(store: Store, remote: Remote, version: TreeVersion) -> None:
    """Fetch the root page of a version being adopted into the chunk cache, checked against
    its id: a clone copies the record and its root, so the version's top directory lists at
    once (also offline later), and a record whose root is missing or damaged is refused."""
    cache = DiskChunkCache.open(store.home)
    root = ChunkId(version.root)
    if cache.contains(root) or store.has_tree_page(version.root):
        return
    where = store.remote_locations([root])
    got, _ = pages.fetch_pages(remote, [version.root], where, version.record.ref)
    data = got[version.root]
    cache.put(root, codec.Codec.RAW, data, len(data))


def _committed(store: Store, art: ArtifactName) -> dict[int, VersionRecord]:
    try:
        return {record.number: record for record in store.versions(art)}
    except NotFound:
        return {}


def _deleted_here(
    remote: Remote,
    art: ArtifactName,
    here: dict[int, VersionRecord],
    known: set[int],
    result: RefreshResult,
) -> dict[int, str]:
    """The versions of ``art`` this store holds that the remote deleted (number -> digest)."""
    doomed = {}
    for number in sorted(remote.deleted_numbers(art)):
        local = here.get(number)
        if local is None:
            continue  # not here, or deleted here already
        try:
            digest: str | None = remote.read_version(art, number).record.digest
        except NotFound:  # gc removed the record: trust a number adopted from the remote
            digest = local.digest if number in known else None
        except CorruptData as exc:
            result.skipped.append(f"{art}:v{number} (deleted on the remote): {exc}")
            continue
        if digest == local.digest:
            doomed[number] = digest
    return doomed


def _adopt_aliases(store: Store, remote: Remote, art: ArtifactName, numbers: set[int]) -> None:
    for alias, (number, _) in sorted(remote.aliases(art).items()):
        if number in numbers:
            # Local only: set_alias would publish it back from a remote-backed store.
            store.adopt_alias(art, alias, number)


class _Fetch:
    """The missing chunks of a version, fetched pack by pack with coalesced ranged GETs and
    verified (decompressed and hashed) before they are handed on.

    The missing dictionaries (``listed``) are fetched first, so that the chunks coded with
    them are checked with them; a dictionary not among them is looked up with ``local`` (the
    store's own :meth:`~artfs.store.repository.Store.dictionary`).
    """

    def __init__(
        self,
        remote: Remote,
        record: VersionRecord,
        where: dict[ChunkId, RemoteChunk],
        missing: list[ChunkId],
        local: codec.Dictionaries,
    ) -> None:
        self.remote = remote
        self.record = record
        self.where = where
        self.missing = missing
        self.local = local
        self.listed: set[ChunkId] = set()
        self.count = 0
        self.bytes = 0
        self._fetched: dict[ChunkId, bytes] = {}  # dictionaries of this fetch, raw

    def chunks(self) -> Iterator[tuple[ChunkId, int, bytes, int]]:
        listed = self.listed
        yield from self._chunks([cid for cid in self.missing if cid in listed], keep=True)
        yield from self._chunks([cid for cid in self.missing if cid not in listed], keep=False)

    def dictionary(self, dict_id: ChunkId) -> bytes:
        found = self._fetched.get(dict_id)
        return found if found is not None else self.local(dict_id)

    def _chunks(self, ids: list[ChunkId], keep: bool) -> Iterator[tuple[ChunkId, int, bytes, int]]:
        by_pack: dict[str, list[tuple[ChunkId, RemoteChunk]]] = defaultdict(list)
        for cid in ids:
            loc = self.where.get(cid)
            if loc is None:
                raise CorruptData(
                    f"a chunk of {self.record.ref} ({cid.hex()[:16]}) is in no pack on "
                    f"{self.remote.describe()}: nothing was stored"
                )
            by_pack[loc.pack].append((cid, loc))
        what = f"{self.record.ref} in"
        for _, chunks in sorted(by_pack.items()):
            chunks.sort(key=lambda item: item[1].offset)
            for _, _, group in coalesce(chunks):
                fetched, pieces = fetch_group(self.remote, group)
                self.bytes += fetched
                for cid, loc, payload in pieces:
                    raw = verified_chunk(cid, loc, payload, what, self.remote, self.dictionary)
                    if keep:
                        self._fetched[cid] = raw
                    self.count += 1
                    yield cid, loc.codec, payload, loc.raw_length


def add_remote(
    store: Store,
    name: str,
    url: str,
    endpoint: str | None,
    region: str | None,
    *,
    resume: bool = False,
) -> RemoteConfig:
    """Record a remote (its URL is checked; credentials are never stored). With ``resume``, an
    identical remote of that name is reused: a clone cut off by the network can be re-run."""
    config = RemoteConfig(name, str(RemoteUrl.parse(url)), endpoint, region)
    if resume and config in store.remotes():
        return config
    store.add_remote(config)
    return config
