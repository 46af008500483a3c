"""Directory listings of versions, read from the index once and kept: a version never changes.

A :class:`Listing` is the direct children of one directory of one version, in name order, read
once from the version's tree pages, so looking one name up in it is a dict get (after the
first lookup, which makes the dict).

A :class:`ListingCache` keeps listings in LRU order within a budget of entries. Listings are
keyed by :class:`ListingKey` (the version's index key, its creation time and the directory), so
a version deleted and a new one given the same number never share a listing; the tree also
drops the listings of a version it finds deleted (:meth:`ListingCache.drop_version`).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from artfs.store import catalog, trees
from artfs.store.catalog import VersionRecord
from artfs.store.index import Index, Txn
from artfs.store.manifest import FileEntry, Kind
from artfs.store.trees import Item

# Entries (names) the listings of all versions may hold together: every directory of a
# 100,000-file version, so a second walk of it reads nothing (a walk over more names than the
# budget finds none of them kept: each listing is evicted before its turn comes again). A
# small-file entry takes ~360 bytes walked (name, body, count, its slot in the tree's table of
# listed children) and ~1.2 KB once its node is made (FileEntry with its chunk refs, node and
# attributes), ~1.4 KB once opened (its chunk's location kept for reopens): ~47-185 MB at
# most.
DEFAULT_LISTING_ENTRIES = 131_072
TOO_LARGE_REMEMBERED = 1024


@dataclass(frozen=True, slots=True)
class ListingKey:
    version_key: bytes  # the version's index key (catalog.version_key)
    created: float  # the version record's creation time: a recreated number is another key
    directory: str  # '' for the version's root


class Listing:
    """The children of one directory of one version, by position (1-based in readdir's
    numbering: the entry at index ``i`` is followed by position ``i + 1``) and by name.

    Read undecoded: an entry is decoded (:meth:`entry`) only when something asks for it, and a
    walk asks for none, only for what ``readdir`` shows (:meth:`heads`).
    """

    __slots__ = (
        "_bodies",
        "_entries",
        "_positions",
        "base",
        "children",
        "counts",
        "key",
        "names",
        "record",
    )

    def __init__(
        self,
        key: ListingKey,
        names: list[bytes],
        bodies: Sequence[bytes],
        record: VersionRecord | None = None,
    ) -> None:
        self.key = key
        self.record = record  # the version's (its children's nodes carry it)
        self.names = names
        self._bodies = bodies
        self._entries: list[FileEntry | None] = [None] * len(names)
        # Index by name, made at the first find: a walk (readdir only) never needs it.
        self._positions: dict[bytes, int] | None = None
        # The tree's node for each child, kept once made (None: not yet): its attributes are
        # an object, asked for on every lookup and readdir.
        self.children: list[Any] = [None] * len(names)
        # The inode number of the first child; the others follow (None: not yet made).
        self.base: int | None = None
        # Kernel references to children it got from readdir and the tree has made no node
        # for (see Vfs.remember_listed): the node, once made, takes its count over.
        self.counts: list[int] = [0] * len(names)

    @classmethod
    def read(cls, txn: Txn, record: VersionRecord, key: ListingKey) -> Listing:
        """Every child of ``key.directory`` of ``record`` in ``txn``: one walk over the
        directory's tree pages (decoded pages are shared process-wide, see catalog.pages),
        nothing decoded per entry."""
        names, bodies = catalog.list_columns(txn, record, key.directory)
        return cls(key, names, bodies, record)

    @classmethod
    def read_in_steps(
        cls, index: Index, record: VersionRecord, key: ListingKey, largest: int
    ) -> Generator[None, None, Listing | None]:
        """:meth:`read` one tree page at a time, each in a read transaction of its own: the
        generator stops after each page (an event loop answers requests there) and returns
        the listing, or None without reading it when the directory has more than ``largest``
        children. A version's pages never change, so the steps read one listing. Pages come
        from the index only: one a lazy clone has not fetched is CorruptData here (the remote
        is not asked: this reads ahead of any request)."""
        with index.read() as txn:
            txn.missing_page = None
            if catalog.directory_size(txn, record, key.directory) > largest:
                return None
            leaves = catalog.leaf_ids(txn, record, key.directory)
        names: list[bytes] = []
        bodies: list[bytes] = []
        for page_id in leaves:
            yield
            with index.read() as txn:
                txn.missing_page = None
                page = catalog.leaf(txn, page_id)
            names += page.keys
            bodies += page.bodies
        return cls(key, names, bodies, record)

    def __len__(self) -> int:
        return len(self.names)

    def entry(self, index: int) -> FileEntry:
        """The child at ``index``, decoded on first use."""
        found = self._entries[index]
        if found is None:
            item = Item(self.names[index], self._bodies[index])
            found = self._entries[index] = trees.listed_entry(self.key.directory, item)
        return found

    def head(self, index: int) -> tuple[int, int, int, int]:
        """(flags, mode, size, mtime_ns) of the child at ``index`` (see trees.entry_heads):
        what a listing shows of it, without decoding the rest."""
        return trees.entry_head(self._bodies[index])

    def heads(self, start: int = 0) -> Iterator[tuple[int, int, int, int]]:
        """:meth:`head` of every child from ``start`` on, in order (one pass)."""
        return trees.entry_heads(self._bodies, start)

    def directories(self, start: int, stop: int) -> list[int]:
        """The indexes of the children from ``start`` to ``stop`` that are directories."""
        heads = itertools.islice(self.heads(start), max(stop - start, 0))
        directory = int(Kind.DIR)
        return [i for i, h in enumerate(heads, start) if h[0] & trees.KIND_MASK == directory]

    def find(self, name: bytes) -> int | None:
        """The index of the child ``name``, if there is one."""
        positions = self._positions
        if positions is None:
            names = self.names
            positions = self._positions = dict(zip(names, range(len(names)), strict=True))
        return positions.get(name)


class ListingCache:
    """A bounded LRU of listings; safe to use from several threads."""

    def __init__(self, budget_entries: int = DEFAULT_LISTING_ENTRIES) -> None:
        self.budget_entries = budget_entries
        self._listings: OrderedDict[ListingKey, Listing] = OrderedDict()
        self._entries = 0
        self._lock = threading.Lock()
        # Keys of listings larger than the whole budget (most recent last, bounded): looking
        # a name up in such a directory is one index get, not a walk over all its names.
        self._too_large: OrderedDict[ListingKey, None] = OrderedDict()

    @property
    def entries(self) -> int:
        return self._entries

    def get(self, key: ListingKey) -> Listing | None:
        with self._lock:
            found = self._listings.get(key)
            if found is not None:
                self._listings.move_to_end(key)
            return found

    def put(self, listing: Listing) -> None:
        """Keep ``listing``; one larger than the whole budget is not kept but remembered as
        too large (see :meth:`too_large`)."""
        if len(listing) > self.budget_entries:
            with self._lock:
                self._too_large[listing.key] = None
                while len(self._too_large) > TOO_LARGE_REMEMBERED:
                    self._too_large.popitem(last=False)
            return
        with self._lock:
            old = self._listings.pop(listing.key, None)
            if old is not None:
                self._entries -= len(old)
            self._listings[listing.key] = listing
            self._entries += len(listing)
            while self._entries > self.budget_entries:
                _, evicted = self._listings.popitem(last=False)
                self._entries -= len(evicted)

    def too_large(self, key: ListingKey) -> bool:
        """Whether the listing of ``key`` was found larger than the budget."""
        return key in self._too_large

    def drop_version(self, version_key: bytes) -> int:
        """Forget every listing of a version (deleted); how many there were."""
        with self._lock:
            gone = [key for key in self._listings if key.version_key == version_key]
            for key in gone:
                self._entries -= len(self._listings.pop(key))
        return len(gone)


__all__ = ["DEFAULT_LISTING_ENTRIES", "Listing", "ListingCache", "ListingKey"]
