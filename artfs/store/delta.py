"""Incremental commits: a staging based on a version becomes the next version at the cost of
what changed (the format: :mod:`artfs.store.overlay`).

Only the upper directory is read: its files are stored, its markers become removals (whiteouts)
and grafts (an opaque directory is emptied, a redirected one takes the subtree of its target in
O(1)), and :func:`artfs.store.trees.update` applies them to the base's tree, writing the pages
on the paths of the changes only. The version digest keeps its meaning (a hash over every
file's sorted path and digest), so it reads every leaf page of the new tree once without
decoding whole entries; that walk is the one part proportional to the version's size
(measured by ``./dev bench --only stage``).
"""

from __future__ import annotations

import errno
import os
import posixpath
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artfs.errors import Conflict, InputError, StoreError
from artfs.names import ArtifactName
from artfs.store import catalog, overlay, trees
from artfs.store.commits import checked_draft, checked_target
from artfs.store.export import Diff, classify
from artfs.store.hashing import FileHasher, TreeId, version_digest
from artfs.store.index import Table, Txn
from artfs.store.ingest import Ingest, Progress, SourceFile, SourceTree
from artfs.store.manifest import FileEntry, Kind
from artfs.store.overlay import Base, Source
from artfs.store.repository import BuiltVersion, PutResult, Store


@dataclass
class Changes:
    """What an upper directory changes in its base, as paths of the new version."""

    files: list[SourceFile] = field(default_factory=list)  # stored from the upper directory
    ready: list[FileEntry] = field(default_factory=list)  # entries whose chunks are stored
    dirs: dict[str, FileEntry] = field(default_factory=dict)  # directories made
    removed: list[str] = field(default_factory=list)  # whited out
    grafts: dict[str, TreeId] = field(default_factory=dict)  # opaque (empty) or redirected
    markers: list[SourceFile] = field(default_factory=list)  # marker files read

    def entries(self, stored: list[FileEntry]) -> dict[str, FileEntry | None]:
        """The changes for :func:`trees.update`, with the ``stored`` entries of ``files``."""
        found: dict[str, FileEntry | None] = dict.fromkeys(self.removed)
        found.update(self.dirs)
        found.update((e.path, e) for e in self.ready)
        found.update((e.path, e) for e in stored)
        return found


def draft_changes(base: Mapping[str, FileEntry], tree: SourceTree) -> Changes:
    """What a draft holding ``tree`` changes in the version whose entries (files and
    directories, by path) are ``base``: its files to store, the entries it took from
    elsewhere or changed, its new directories, and what of ``base`` it no longer holds (a
    directory removed whole is one removal). Every parent of ``tree``'s paths gets an entry
    first, as in a commit from scratch."""
    tree.complete_dirs(time.time_ns())
    wanted = {e.path for e in [*tree.ready, *tree.dirs]} | {f.path for f in tree.files}
    gone = {path for path in base if path not in wanted}
    return Changes(
        files=list(tree.files),
        ready=[e for e in tree.ready if base.get(e.path) != e],
        dirs={d.path: d for d in tree.dirs if base.get(d.path) != d},
        removed=sorted(p for p in gone if not _below(p, gone)),
    )


def _below(path: str, dirs: set[str]) -> bool:
    """Whether an ancestor of ``path`` is in ``dirs``."""
    parent = path.rpartition("/")[0]
    while parent:
        if parent in dirs:
            return True
        parent = parent.rpartition("/")[0]
    return False


def changes(store: Store, base: Base, upper: Path, tree: SourceTree) -> Changes:
    """Read the scanned upper directory ``tree`` (its paths relative to ``upper``) against
    ``base``. InputError for a reserved name that is not a marker."""
    found = Changes()
    for source in tree.files:
        name = posixpath.basename(source.path)
        if name.startswith(overlay.COPY_UP):
            continue  # the mount's copy-up in progress (or left by a crash): not a change
        (found.markers if overlay.is_reserved(name) else found.files).append(source)
    with store.index.read() as txn:
        _directories(txn, base, upper, tree.dirs, found)
    for marker in found.markers:
        parent, _, name = marker.path.rpartition("/")
        gone = overlay.whited_out(name)
        if gone is not None and not os.path.lexists(upper / parent / gone):
            found.removed.append(posixpath.join(parent, gone))
    return found


def _directories(txn: Txn, base: Base, upper: Path, dirs: list[FileEntry], found: Changes) -> None:
    """Which upper directories are new, emptied (opaque) or redirected (parents first)."""
    pages = catalog.pages(txn)
    sources = {"": overlay.root_source(upper)}
    if sources[""].path is None:
        found.grafts[""] = trees.EMPTY_TREE
    for entry in sorted(dirs, key=lambda d: d.path.count("/")):
        parent, _, name = entry.path.rpartition("/")
        if overlay.is_reserved(name):
            raise InputError(
                f"{entry.path}: names starting with {overlay.MARKER_PREFIX} are reserved "
                "in staging: rename it"
            )
        source = sources[entry.path] = overlay.dir_source(upper / parent, sources[parent], name)
        target = overlay.redirect_of(upper / entry.path)
        if target is not None:
            subtree = trees.resolve_dir(pages, base.redirect_tree, target)
            found.grafts[entry.path] = subtree or trees.EMPTY_TREE
            found.dirs[entry.path] = entry
        elif source.path is None:
            if sources[parent].path is not None:
                found.grafts[entry.path] = trees.EMPTY_TREE
            found.dirs[entry.path] = entry
        elif _base_dir(pages, base, source) is None:
            found.dirs[entry.path] = entry


def _base_dir(pages: trees.Pages, base: Base, source: Source) -> TreeId | None:
    tree = base.redirect_tree if source.redirected else base.tree
    return None if source.path is None else trees.resolve_dir(pages, tree, source.path)


def commit(
    store: Store,
    art: ArtifactName,
    base: Base,
    found: Changes,
    *,
    type_: str,
    aliases: list[str] | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    ttl_seconds: float | None = None,
    logged_by: str | None = None,
    progress: Progress | None = None,
) -> PutResult:
    """Store ``found`` as the next version of ``art``: ``base`` with the changes applied, or
    the identical version if there is one. Packs are written and fsynced before the version
    is indexed (one transaction), as in :meth:`Store.commit`."""
    aliases, draft = checked_draft(
        type_, aliases, description, metadata, tags, ttl_seconds, logged_by
    )
    checked_target(store, art, type_)
    with store.commit_lock():
        _require_base(store, base)
        return _commit_locked(store, art, base, found, aliases, draft, progress)


def _require_base(store: Store, base: Base) -> None:
    """Conflict when the base's tree is gone (its version deleted, then collected by gc;
    a staging base is kept, an SDK draft's is not)."""
    with store.index.read() as txn:
        if base.tree != trees.EMPTY_TREE and txn.get(Table.TREES, base.tree) is None:
            raise Conflict(
                f"{base.ref}, which this draft starts from, was deleted and its data removed "
                "by gc: start the draft again from a version that exists"
            )


def _commit_locked(
    store: Store,
    art: ArtifactName,
    base: Base,
    found: Changes,
    aliases: list[str],
    draft: dict[str, Any],
    progress: Progress | None,
) -> PutResult:
    writer = store.chunks.writer()
    try:
        with store.index.presence(Table.CHUNKS) as has_chunk:
            ingest = Ingest(writer, has_chunk, progress)
            stored = ingest.run(found.files)
        writer.commit()
        built = build(store, base, found.entries(stored), found.grafts)
        result = store.commit_built(art, built, ingest, found.ready, aliases, draft)
    except BaseException as exc:
        writer.abort()
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise StoreError(
                f"no space left on the device holding {store.home}: "
                "free some space (or run 'artfs gc') and try again"
            ) from None
        raise
    if result.created:
        result.new_bytes = ingest.stored_bytes
    elif store.publisher() is None:
        writer.abort()  # identical content: nothing new is referenced
    return result


def preview(store: Store, base: Base, found: Changes) -> Diff:
    """The files ``found`` adds, removes and changes against ``base``, as ``artfs diff``
    lists them: upper files are hashed (not stored) and the new tree is built in memory, so
    this reads the changes and the base pages on their paths only."""
    hashed = [_hashed(source) for source in found.files]
    pages: dict[TreeId, bytes] = {}
    with store.index.read() as txn:
        stored, root = _apply(txn, pages, base, found.entries(hashed), found.grafts)
        return classify(trees.diff(trees.Pages(stored), base.tree, root))


def _hashed(source: SourceFile) -> FileEntry:
    """The entry of an upper file with its digest and no chunks (a preview stores nothing)."""
    hasher = FileHasher()
    try:
        with open(source.source, "rb") as stream:
            while block := stream.read(1 << 20):
                hasher.update(block)
    except OSError as exc:
        raise InputError(f"{source.source}: cannot read it ({exc.strerror})") from None
    return FileEntry(
        source.path, Kind.FILE, source.mode, source.size, source.mtime_ns, hasher.digest()
    )


def build(
    store: Store,
    base: Base,
    entries: dict[str, FileEntry | None],
    grafts: dict[str, TreeId],
) -> BuiltVersion:
    """The new version's tree (pages in memory, base pages read from the index), digest and
    sizes."""
    pages: dict[TreeId, bytes] = {}
    with store.index.read() as txn:
        stored, root = _apply(txn, pages, base, entries, grafts)
        digest, size, files = _totals(stored, root)

    def listed() -> list[FileEntry]:
        with store.index.read() as txn:
            return list(trees.walk(trees.Pages(_reader(txn, pages)), root))

    return BuiltVersion(catalog.PreparedTree(root, pages), digest, size, files, listed)


def _apply(
    txn: Txn,
    pages: dict[TreeId, bytes],
    base: Base,
    entries: dict[str, FileEntry | None],
    grafts: dict[str, TreeId],
) -> tuple[trees.Get, TreeId]:
    """The root of ``base`` with the changes (new pages into ``pages``), and a reader of the
    pages of both."""
    stored = _reader(txn, pages)
    return stored, trees.update(stored, pages.setdefault, base.tree, entries, grafts)


def _reader(txn: Txn, fresh: dict[TreeId, bytes]) -> Callable[[TreeId], bytes]:
    """Pages of this commit (``fresh``) first, then the index's."""

    def get(page: TreeId) -> bytes:
        data = fresh.get(page)
        if data is None:
            data = txn.get(Table.TREES, page)
        if data is None:
            raise KeyError(page)
        return data

    return get


def _totals(get: trees.Get, root: TreeId) -> tuple[str, int, int]:
    """(version digest hex, bytes, files) of the tree ``root``."""
    listed = list(trees.file_digests(get, root))
    digest = version_digest([(path, digest) for path, digest, _ in listed])
    return digest.hex(), sum(size for _, _, size in listed), len(listed)
