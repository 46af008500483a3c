"""What the index tables mean: projects, artifacts, versions, aliases and file trees.

Functions here take an open :class:`~artfs.store.index.Txn`, so a caller composes several of them
into one atomic transaction (a commit adds the version, its files, its digest and its aliases
together or not at all). Invariants kept here:

- version numbers of an artifact only grow and are never reused, even after a delete;
- ``latest`` is not stored: it is always the newest committed version;
- a custom alias names at most one version of its artifact;
- a deleted version keeps its record (``state: "deleted"``) for lineage, but loses its tree,
  its aliases and its digest entry;
- a committed version's record names its root tree (see :mod:`artfs.store.trees`); tree pages
  are shared by every version that has the same directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from artfs.errors import CorruptData, NotFound, TypeMismatch
from artfs.names import ArtifactName, Ref
from artfs.store import runs, trees
from artfs.store.hashing import TreeId
from artfs.store.index import Table, Txn
from artfs.store.manifest import FileEntry

COMMITTED = "committed"
DELETED = "deleted"


def artifact_key(art: ArtifactName) -> bytes:
    return f"{art.project}/{art.name}".encode()


def version_key(art: ArtifactName, number: int) -> bytes:
    return artifact_key(art) + b"\0" + number.to_bytes(4, "big")


def _sub_key(art: ArtifactName, suffix: bytes) -> bytes:
    return artifact_key(art) + b"\0" + suffix


@dataclass
class ArtifactRecord:
    project: str
    name: str
    type: str
    created: float
    next_version: int = 0

    @property
    def artifact(self) -> ArtifactName:
        return ArtifactName(self.project, self.name)


@dataclass
class VersionRecord:
    """Everything recorded about one version except its files."""

    project: str
    name: str
    number: int
    digest: str
    type: str
    created: float
    size: int
    files: int
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    logged_by: str | None = None
    expires: float | None = None
    state: str = COMMITTED
    # The root tree id (hex) of a committed version's files; a deleted version names none.
    tree: str | None = None
    # Filled from the alias table when read; never stored in the record itself.
    aliases: list[str] = field(default_factory=list)

    @property
    def artifact(self) -> ArtifactName:
        return ArtifactName(self.project, self.name)

    @property
    def version(self) -> str:
        return f"v{self.number}"

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.name}:v{self.number}"

    @property
    def key(self) -> bytes:
        return version_key(self.artifact, self.number)

    def encode(self) -> bytes:
        data = asdict(self)
        del data["aliases"]
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> VersionRecord:
        return cls(**json.loads(data))


# --- projects and artifacts -------------------------------------------------------------------


def ensure_project(txn: Txn, project: str) -> None:
    key = project.encode()
    if txn.get(Table.PROJECTS, key) is None:
        txn.put(Table.PROJECTS, key, json.dumps({"created": time.time()}).encode())


def projects(txn: Txn) -> list[str]:
    return [key.decode() for key, _ in txn.scan(Table.PROJECTS)]


def has_project(txn: Txn, project: str) -> bool:
    return txn.get(Table.PROJECTS, project.encode()) is not None


def project_created(txn: Txn, project: str) -> float | None:
    """When ``project`` was made (seconds since the epoch); None if there is no such project."""
    data = txn.get(Table.PROJECTS, project.encode())
    return float(json.loads(data)["created"]) if data else None


def project_versions(txn: Txn, project: str) -> list[tuple[ArtifactRecord, list[VersionRecord]]]:
    """Every artifact of ``project`` with its committed versions (aliases attached, ``latest``
    first on the newest), in three range scans for the whole project: a per-artifact read
    scans the version and alias tables three times an artifact (110-200 ms for a project of
    1,000 artifacts of 2 versions, against 26-40 ms for these scans)."""
    prefix = project.encode() + b"/"
    versions: dict[str, list[VersionRecord]] = {}
    for _, value in txn.scan(Table.VERSIONS, prefix):
        record = VersionRecord.decode(value)
        if record.state == COMMITTED:
            versions.setdefault(record.name, []).append(record)  # key order: by number
    held: dict[tuple[str, int], list[str]] = {}
    for key, value in txn.scan(Table.ALIASES, prefix):
        name, _, alias = key[len(prefix) :].partition(b"\0")
        held.setdefault((name.decode(), int.from_bytes(value, "big")), []).append(alias.decode())
    result = []
    for art in artifacts(txn, project):
        records = versions.get(art.name, [])
        for record in records:
            record.aliases = sorted(held.get((art.name, record.number), []))
        if records:
            records[-1].aliases.insert(0, "latest")
        result.append((art, records))
    return result


def get_artifact(txn: Txn, art: ArtifactName) -> ArtifactRecord | None:
    data = txn.get(Table.ARTIFACTS, artifact_key(art))
    return None if data is None else ArtifactRecord(**json.loads(data))


def require_artifact(txn: Txn, art: ArtifactName) -> ArtifactRecord:
    record = get_artifact(txn, art)
    if record is None:
        if txn.get(Table.PROJECTS, art.project.encode()) is None:
            raise NotFound(f"project {art.project!r} does not exist: see 'artfs ls'")
        raise NotFound(f"artifact {art} does not exist: see 'artfs ls {art.project}'")
    return record


def put_artifact(txn: Txn, record: ArtifactRecord) -> None:
    txn.put(Table.ARTIFACTS, artifact_key(record.artifact), json.dumps(asdict(record)).encode())


def artifacts(txn: Txn, project: str) -> list[ArtifactRecord]:
    return [
        ArtifactRecord(**json.loads(value))
        for _, value in txn.scan(Table.ARTIFACTS, project.encode() + b"/")
    ]


# --- versions and aliases ---------------------------------------------------------------------


def aliases_by_version(txn: Txn, art: ArtifactName) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    prefix = _sub_key(art, b"")
    for key, value in txn.scan(Table.ALIASES, prefix):
        found.setdefault(int.from_bytes(value, "big"), []).append(key[len(prefix) :].decode())
    return found


def _decorate(txn: Txn, records: list[VersionRecord]) -> list[VersionRecord]:
    """Attach aliases (with the derived ``latest``) to committed records of one artifact."""
    if not records:
        return records
    held = aliases_by_version(txn, records[0].artifact)
    newest = latest_number(txn, records[0].artifact)
    for record in records:
        record.aliases = sorted(held.get(record.number, []))
        if record.number == newest:
            record.aliases.insert(0, "latest")
    return records


def _raw_versions(txn: Txn, art: ArtifactName) -> Iterator[VersionRecord]:
    for _, value in txn.scan(Table.VERSIONS, _sub_key(art, b"")):
        yield VersionRecord.decode(value)


def versions(txn: Txn, art: ArtifactName, *, include_deleted: bool = False) -> list[VersionRecord]:
    records = [r for r in _raw_versions(txn, art) if include_deleted or r.state == COMMITTED]
    return _decorate(txn, records)


def latest_number(txn: Txn, art: ArtifactName) -> int | None:
    newest = None
    for record in _raw_versions(txn, art):
        if record.state == COMMITTED:
            newest = record.number
    return newest


def get_version(txn: Txn, art: ArtifactName, number: int) -> VersionRecord | None:
    data = txn.get(Table.VERSIONS, version_key(art, number))
    if data is None:
        return None
    record = VersionRecord.decode(data)
    if record.state == COMMITTED:
        _decorate(txn, [record])
    return record


def version_at(txn: Txn, vkey: bytes) -> VersionRecord | None:
    """The version whose key is ``vkey`` (deleted ones too), with its aliases; None if there
    is no such version."""
    data = txn.get(Table.VERSIONS, vkey)
    if data is None:
        return None
    record = VersionRecord.decode(data)
    return get_version(txn, record.artifact, record.number)


def resolve(txn: Txn, ref: Ref) -> VersionRecord:
    """The committed version ``ref`` names; NotFound says what exists instead."""
    art = ref.artifact
    require_artifact(txn, art)
    number = ref.version
    if number is None:
        if ref.selector == "latest":
            number = latest_number(txn, art)
            if number is None:
                raise NotFound(f"{art} has no versions")
        else:
            data = txn.get(Table.ALIASES, _sub_key(art, ref.selector.encode()))
            if data is None:
                raise NotFound(
                    f"{art} has no alias {ref.selector!r}: see 'artfs ls {art}' for its aliases"
                )
            number = int.from_bytes(data, "big")
    record = get_version(txn, art, number)
    if record is None or record.state != COMMITTED:
        raise NotFound(f"{art} has no version v{number}: see 'artfs ls {art}'")
    return record


def version_by_digest(txn: Txn, art: ArtifactName, digest: str) -> int | None:
    data = txn.get(Table.DIGESTS, _sub_key(art, bytes.fromhex(digest)))
    return None if data is None else int.from_bytes(data, "big")


def put_version(txn: Txn, record: VersionRecord) -> None:
    txn.put(Table.VERSIONS, record.key, record.encode())


def add_version(
    txn: Txn,
    record: VersionRecord,
    entries: list[FileEntry],
    tree: PreparedTree | None = None,
) -> None:
    """Insert a new committed version with its file tree and digest entry.

    The tree is ``tree`` (prepared from ``entries`` before the transaction, so the writer
    lock is not held while it is built) or built here from ``entries``; whatever tree id the
    record came with (say from a remote) is replaced. Only pages this store lacks are
    written, so a version costs the pages of the directories it changed.
    """
    if tree is None:
        add_tree(txn, record, entries)
    else:
        put = _put_page(txn)
        for page, data in tree.pages.items():
            put(page, data)
        record.tree = tree.root.hex()
    put_version(txn, record)
    txn.put(
        Table.DIGESTS,
        _sub_key(record.artifact, bytes.fromhex(record.digest)),
        record.number.to_bytes(4, "big"),
    )
    vkey = record.key
    if record.logged_by:
        txn.put(Table.USAGE, runs.output_key(record.logged_by, vkey), b"")


def set_alias(txn: Txn, art: ArtifactName, alias: str, number: int) -> int | None:
    """Point ``alias`` at version ``number``; return the version it moved from, if any.

    When it was set goes into its own table, with the version it was set to: the alias value
    stays the 4 bytes an older artfs reads, and an alias an older artfs moved (leaving the
    time of another version behind) falls back to its version's creation time.
    """
    key = _sub_key(art, alias.encode())
    old = txn.get(Table.ALIASES, key)
    txn.put(Table.ALIASES, key, number.to_bytes(4, "big"))
    txn.put(Table.ALIAS_TIMES, key, number.to_bytes(4, "big") + time.time_ns().to_bytes(8, "big"))
    return None if old is None else int.from_bytes(old, "big")


def remove_alias(txn: Txn, art: ArtifactName, alias: str) -> None:
    key = _sub_key(art, alias.encode())
    if not txn.delete(Table.ALIASES, key):
        raise NotFound(f"{art} has no alias {alias!r}")
    txn.delete(Table.ALIAS_TIMES, key)


def alias_target(txn: Txn, art: ArtifactName, alias: str) -> tuple[int, int] | None:
    """(version, when it was set in ns) of ``alias`` (``latest`` included), None if unset.

    ``latest`` was set when its version was committed; an alias without a recorded time (set
    before times were kept, or moved by an older artfs) is dated by its version's creation.
    """
    if alias == "latest":
        number = latest_number(txn, art)
        stamp = None
    else:
        key = _sub_key(art, alias.encode())
        data = txn.get(Table.ALIASES, key)
        number = None if data is None else int.from_bytes(data, "big")
        stamp = txn.get(Table.ALIAS_TIMES, key)
    if number is None:
        return None
    if stamp is not None and int.from_bytes(stamp[:4], "big") == number:
        return number, int.from_bytes(stamp[4:12], "big")
    record = get_version(txn, art, number)
    return number, int(record.created * 1e9) if record is not None else 0


def mark_deleted(txn: Txn, record: VersionRecord) -> None:
    """Drop a version's tree, aliases and digest, and the keys that counted which of its
    files each run opened (the edges keep their counts, and nothing opens the files again);
    keep its record as a tombstone (gc deletes the tree pages no other version shares)."""
    record.tree = None
    runs.drop_opened_files(txn, record.key)
    for alias in aliases_by_version(txn, record.artifact).get(record.number, []):
        txn.delete(Table.ALIASES, _sub_key(record.artifact, alias.encode()))
        txn.delete(Table.ALIAS_TIMES, _sub_key(record.artifact, alias.encode()))
    record.state = DELETED
    record.aliases = []
    put_version(txn, record)
    _drop_digest(txn, record)


def _drop_digest(txn: Txn, record: VersionRecord) -> None:
    """Point the digest entry of a deleted version at another live version with the same
    content (a remote may hold content twice), or drop it."""
    key = _sub_key(record.artifact, bytes.fromhex(record.digest))
    if version_by_digest(txn, record.artifact, record.digest) != record.number:
        return  # it names another version already
    twin = next(
        (
            r.number
            for r in _raw_versions(txn, record.artifact)
            if r.state == COMMITTED and r.digest == record.digest and r.number != record.number
        ),
        None,
    )
    if twin is None:
        txn.delete(Table.DIGESTS, key)
    else:
        txn.put(Table.DIGESTS, key, twin.to_bytes(4, "big"))


def check_type(record: ArtifactRecord | None, art: ArtifactName, type_: str) -> None:
    if record is not None and record.type != type_:
        raise TypeMismatch(
            f"{art} is of type {record.type!r}, not {type_!r}: give type {record.type!r} "
            "(--type, the SDK's Artifact type, 'type' in .artfs-commit) or another artifact name"
        )


# --- file trees -------------------------------------------------------------------------------

# Decoded tree pages of every store this process opens: a page is named by its content, so
# one cache serves all. A decoded page of ~72 small files takes ~10.6 KiB (measured), so 2048
# pages are ~22 MB for ~150,000 entries.
PAGE_CACHE = trees.PageCache(2048)


def pages(txn: Txn) -> trees.Pages:
    """Tree pages read in ``txn``; a missing page is CorruptData."""
    return trees.Pages(_page_reader(txn), PAGE_CACHE)


def _page_reader(txn: Txn) -> trees.Get:
    """A page's bytes read in ``txn`` (see :func:`page_bytes`)."""
    return lambda page: page_bytes(txn, page)


def page_bytes(txn: Txn, page: TreeId) -> bytes:
    """A tree page's bytes: from the index, else (a version adopted from a remote without
    its pages) through the transaction's ``missing_page``; CorruptData when neither has it."""
    data = txn.get(Table.TREES, page)
    if data is None and txn.missing_page is not None:
        data = txn.missing_page(txn, page)  # verified against its id by the reader
    if data is None:
        raise missing_page(page)
    return data


def missing_page(page: TreeId) -> CorruptData:
    """The error for a tree page the index should hold and does not."""
    return CorruptData(
        f"the tree page {page.hex()} is missing from the index: "
        "run 'artfs verify' and restore the store from a backup"
    )


def _put_page(txn: Txn) -> trees.Put:
    def put(page: TreeId, data: bytes) -> None:
        txn.put(Table.TREES, page, data, overwrite=False)

    return put


@dataclass(frozen=True)
class PreparedTree:
    """A version's tree built in memory: its root and every page of it."""

    root: TreeId
    pages: dict[TreeId, bytes]


def prepare_tree(entries: list[FileEntry]) -> PreparedTree:
    """Build the tree of ``entries`` without the index (CPU work: 0.4-0.75 s for 100,000
    files, which a commit does before taking the writer lock)."""
    pages: dict[TreeId, bytes] = {}
    root = trees.build(pages.setdefault, entries)
    return PreparedTree(root, pages)


def prepare_update(txn: Txn, base: TreeId, changes: Mapping[str, FileEntry | None]) -> PreparedTree:
    """The tree of ``base`` with ``changes`` applied (see :func:`trees.update`), built
    without writing: reads only the pages on the paths of the changes, and holds only the
    pages it makes (a one-file change in 100,000 files: a few pages)."""
    pages: dict[TreeId, bytes] = {}
    root = trees.update(_page_reader(txn), pages.setdefault, base, changes)
    return PreparedTree(root, pages)


def add_tree(txn: Txn, record: VersionRecord, entries: list[FileEntry]) -> None:
    """Write the pages of ``entries`` that the index lacks and name the root in ``record``
    (not stored here: the caller puts the record)."""
    record.tree = trees.build(_put_page(txn), entries).hex()


def root_tree(record: VersionRecord) -> TreeId | None:
    """The root tree id of a version; None for a deleted one."""
    return None if record.tree is None else TreeId(bytes.fromhex(record.tree))


def lookup(txn: Txn, record: VersionRecord, path: str) -> FileEntry | None:
    root = root_tree(record)
    return None if root is None else trees.lookup(pages(txn), root, path)


def lookup_ranked(txn: Txn, record: VersionRecord, path: str) -> tuple[int, FileEntry] | None:
    """:func:`lookup`, with the entry's position in its directory (``trees.lookup_ranked``)."""
    root = root_tree(record)
    return None if root is None else trees.lookup_ranked(pages(txn), root, path)


def list_dir(
    txn: Txn, record: VersionRecord, directory: str = "", *, after: str = ""
) -> Iterator[FileEntry]:
    """Direct children of ``directory`` in name (byte) order; with ``after``, only those
    whose names sort after it (reaching it reads one tree page per level, not the names
    before it)."""
    root = root_tree(record)
    if root is not None:
        yield from trees.list_dir(pages(txn), root, directory, after or None)


def list_columns(
    txn: Txn, record: VersionRecord, directory: str = ""
) -> tuple[list[bytes], list[bytes]]:
    """The names and undecoded bodies of ``directory``'s direct children, in name order: one
    pass over its tree pages, each entry decoded later and only if asked for
    (``trees.listed_entry``, ``trees.entry_heads``)."""
    root = root_tree(record)
    return ([], []) if root is None else trees.list_columns(pages(txn), root, directory)


def leaf_ids(txn: Txn, record: VersionRecord, directory: str = "") -> list[TreeId]:
    """The ids of ``directory``'s leaf pages in name order (see ``trees.leaf_ids``); read
    each with :func:`leaf`."""
    root = root_tree(record)
    return [] if root is None else trees.leaf_ids(pages(txn), root, directory)


def directory_size(txn: Txn, record: VersionRecord, directory: str = "") -> int:
    """How many children ``directory`` has (0: none, or not a directory), from its top page."""
    root = root_tree(record)
    return 0 if root is None else trees.directory_size(pages(txn), root, directory)


def leaf(txn: Txn, page_id: TreeId) -> trees.Page:
    """One of :func:`leaf_ids`, decoded (and shared, see :func:`pages`)."""
    return trees.leaf(pages(txn), page_id)


def next_file(
    txn: Txn,
    record: VersionRecord,
    path: str,
    wanted: Callable[[FileEntry], bool],
    steps: int,
    per_directory: int,
) -> FileEntry | None:
    """The version's first file after ``path`` in depth-first name order that ``wanted``
    accepts (see ``trees.next_file``)."""
    root = root_tree(record)
    if root is None:
        return None
    return trees.next_file(pages(txn), root, path, wanted, steps, per_directory)


def walk(txn: Txn, record: VersionRecord) -> Iterator[FileEntry]:
    """Every entry of a version (directories and files), depth first, names in byte order."""
    root = root_tree(record)
    if root is not None:
        yield from trees.walk(pages(txn), root)


def diff(
    txn: Txn, old: VersionRecord, new: VersionRecord
) -> Iterator[tuple[str, FileEntry | None, FileEntry | None]]:
    """(path, entry in ``old``, entry in ``new``) of every path whose entry differs; subtrees
    with the same id in both versions are skipped unread."""
    yield from trees.diff(
        pages(txn), root_tree(old) or trees.EMPTY_TREE, root_tree(new) or trees.EMPTY_TREE
    )
