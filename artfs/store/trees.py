"""Trees: a version's directories as immutable, content-addressed pages (pure; no I/O).

A directory is a sequence of entries sorted by name (bytes). The sequence is cut into *leaf
pages* at content-defined boundaries: after an entry whose name hashes to ``k`` low zero bits
(with a minimum and a maximum page size), so inserting or deleting a name rewrites the page
around it and the cuts after it fall where they were. A directory of more than one leaf gets
*index pages* over its leaves (each item: a leaf's first name, its id and how many entries it
holds), cut the same way, level upon level until one page remains: the directory's *root
page*, whose id is the directory's tree id. A lookup reads one page per level (a 1 M-entry
directory has three), never the whole directory. An entry of a subdirectory holds the
subdirectory's tree id, so an unchanged directory keeps its id in every version that has it
and is stored once (git's and restic's trees; a prolly tree of pages like lakeFS's ranges)::

    page  := 0x01 level:u8 count:varint item*count
    item  := name_length:u16 body_length:u32 name body
    body  := (level 0) entry | (level > 0) child_tree_id:32 entries_below:varint
    entry := flags:u8 mode:u32 size:u64 mtime_ns:i64
             (dir: tree_id:32 | file: digest:32 [n:u32 (chunk_id:32 length:u32)*n] [uri])

``flags``: bits 0-1 the kind (1 file, 2 directory); bit 2 "one chunk, named by the file digest"
(a single-chunk file's chunk id *is* its digest: both are the BLAKE3 of the same bytes, so the
list is left out, 40 bytes per small file); bit 3 a reference's URI ends the entry. Fields are
fixed-width: LEB128 varints saved ~7 bytes an entry and tripled the time to encode and decode
(0.74 s against 2.4 s to build a 100,000-file tree). Encoding is deterministic (one byte string
per content), and a page is named by the BLAKE3 of its bytes, so two builds of the same content
have the same root id.

Storage goes through two callables: ``get(tree_id) -> bytes`` (KeyError when absent) and
``put(tree_id, data)`` (keeps an existing object). Builders call ``put`` for every page they
make; the pages of unchanged content already exist, so a version stores what changed.
"""

from __future__ import annotations

import struct
import threading
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from artfs.store.hashing import ChunkId, FileDigest, TreeId, tree_id
from artfs.store.manifest import ChunkRef, FileEntry, Kind, decode_path, encode_path

Get = Callable[[TreeId], bytes]
Put = Callable[[TreeId, bytes], object]  # keeps an existing object; the result is unused

PAGE_FORMAT = 1
_SINGLE = 0x04
_URI = 0x08
_KIND = 0x03
KIND_MASK = _KIND  # flags & KIND_MASK: an entry's Kind (see entry_heads)
# Implicit parents (a path whose directory has no entry of its own) get these attributes.
_DIR_MODE = 0o755


class Item(NamedTuple):
    key: bytes
    body: bytes


class Ref(NamedTuple):
    """A page as its parent sees it: its first name, its id, the entries below it."""

    key: bytes
    page: TreeId
    entries: int


@dataclass(frozen=True, slots=True)
class Cutter:
    """Where a level's item sequence is cut into pages (a pure function of the items).

    A cut follows the item where ``hash(key) & mask == 0`` once the page holds
    ``min_items``, or wherever it reaches ``max_items`` or ``max_bytes``. The decision for an
    item depends only on the items since the last cut, which is what lets an edit re-cut a
    few pages and meet the old cuts again.
    """

    min_items: int
    mask: int
    max_items: int
    max_bytes: int
    salt: bytes

    def __post_init__(self) -> None:
        if self.min_items < 2:
            raise ValueError("pages of at least 2 items, or a level of index pages may not shrink")

    def cut_after(self, count: int, size: int, key: bytes) -> bool:
        if count >= self.max_items or size >= self.max_bytes:
            return True
        return (
            count >= self.min_items
            and _spread(zlib.crc32(key, zlib.crc32(self.salt))) & (self.mask) == 0
        )


def _spread(value: int) -> int:
    # CRC-32 is linear; a multiply by the golden ratio mixes its bits before taking the low
    # ones. Cut points need to be well spread, not unforgeable: a page is named by BLAKE3.
    return ((value * 0x9E3779B1) & 0xFFFFFFFF) >> 7


# Leaves: ~72 entries on average (a 1-4 KiB file's entry is ~60 bytes + its name, so ~6 KiB a
# page): a one-file change rewrites one such page per directory on its path.
LEAF_CUTTER = Cutter(min_items=8, mask=63, max_items=512, max_bytes=64 << 10, salt=b"leaf")
# Index items are ~50 bytes: ~136 a page, so 1 M entries need two index levels.
INDEX_CUTTER = Cutter(min_items=8, mask=127, max_items=1024, max_bytes=64 << 10, salt=b"index")


# --- varints ----------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


# --- entries ----------------------------------------------------------------------------------


_HEAD = struct.Struct("<BIQq")  # flags, mode, size, mtime_ns
_CHUNK = struct.Struct("<32sI")
_COUNT = struct.Struct("<I")
_ITEM = struct.Struct("<HI")  # name length, body length
_SIZE = struct.Struct("<Q")


def encode_entry(entry: FileEntry, subtree: TreeId | None = None) -> bytes:
    """The body of ``entry`` in a leaf page; a directory's body names its ``subtree``."""
    if entry.is_dir:
        if subtree is None:
            raise ValueError(f"directory entry {entry.path!r} needs its tree id")
        return _HEAD.pack(Kind.DIR, entry.mode, entry.size, entry.mtime_ns) + subtree
    chunks = entry.chunks
    flags = int(Kind.FILE)
    digest = bytes(entry.digest)
    if len(chunks) == 1 and bytes(chunks[0].chunk_id) == digest and chunks[0].length == entry.size:
        flags |= _SINGLE
        body = digest
    else:
        body = digest + _COUNT.pack(len(chunks))
        body += b"".join(_CHUNK.pack(c.chunk_id, c.length) for c in chunks)
    if entry.uri is not None:
        flags |= _URI
        body += entry.uri.encode()
    return _HEAD.pack(flags, entry.mode, entry.size, entry.mtime_ns) + body


def decode_entry(path: str, body: bytes) -> tuple[FileEntry, TreeId | None]:
    """The entry at ``path`` and, for a directory, its subtree id."""
    flags, mode, size, mtime_ns = _HEAD.unpack_from(body)
    pos = _HEAD.size
    if flags & _KIND == Kind.DIR:
        return FileEntry(path, Kind.DIR, mode, size, mtime_ns), TreeId(body[pos : pos + 32])
    digest = FileDigest(body[pos : pos + 32])
    pos += 32
    chunks: tuple[ChunkRef, ...]
    if flags & _SINGLE:
        chunks = (ChunkRef(ChunkId(digest), size),)
    else:
        (count,) = _COUNT.unpack_from(body, pos)
        pos += _COUNT.size
        end = pos + count * _CHUNK.size
        chunks = tuple(
            ChunkRef(ChunkId(cid), length) for cid, length in _CHUNK.iter_unpack(body[pos:end])
        )
        pos = end
    uri = body[pos:].decode() if flags & _URI else None
    return FileEntry(path, Kind.FILE, mode, size, mtime_ns, digest, chunks, uri), None


def entry_head(body: bytes) -> tuple[int, int, int, int]:
    """(flags, mode, size, mtime_ns) of one entry's ``body`` (see :func:`entry_heads`)."""
    head: tuple[int, int, int, int] = _HEAD.unpack_from(body)
    return head


def entry_heads(bodies: Sequence[bytes], start: int = 0) -> Iterator[tuple[int, int, int, int]]:
    """(flags, mode, size, mtime_ns) of each of ``bodies`` from ``start`` on, in order, without
    decoding the rest (digest, chunks, subtree): what a listing shows of its entries. C-level
    ``map``s with no Python step per entry, and none for the entries before ``start`` (a
    readdir resumes a large directory there hundreds of times). ``flags & KIND_MASK`` is the
    entry's :class:`Kind`."""
    return map(_HEAD.unpack_from, map(bodies.__getitem__, range(start, len(bodies))))


# --- pages ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """A decoded page: level 0 holds entries, a higher level refs to the level below."""

    level: int
    keys: list[bytes]
    bodies: list[bytes]

    def encode(self) -> bytes:
        parts = [bytes((PAGE_FORMAT, self.level)), _varint(len(self.keys))]
        pack = _ITEM.pack
        for key, body in zip(self.keys, self.bodies, strict=True):
            parts += (pack(len(key), len(body)), key, body)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Page:
        if len(data) < 3 or data[0] != PAGE_FORMAT:
            raise ValueError("not a tree page of a format this artfs knows")
        count, pos = _read_varint(data, 2)
        if count >= _UNIFORM_MIN_ITEMS and (same := _decode_uniform(data, pos, count)) is not None:
            return cls(data[1], *same)
        keys, bodies = [], []
        unpack, head = _ITEM.unpack_from, _ITEM.size
        for _ in range(count):
            key_length, body_length = unpack(data, pos)
            pos += head
            keys.append(data[pos : pos + key_length])
            pos += key_length
            bodies.append(data[pos : pos + body_length])
            pos += body_length
        return cls(data[1], keys, bodies)

    def ref(self, page: TreeId) -> Ref:
        return Ref(self.keys[0], page, self.entries())

    def entries(self) -> int:
        if self.level == 0:
            return len(self.keys)
        return sum(_read_varint(body, 32)[0] for body in self.bodies)

    def child(self, index: int) -> TreeId:
        return TreeId(self.bodies[index][:32])


# Pages of fewer items are read item by item: the one-pass split costs ~0.7 us a page more
# to set up, and wins from ~10 items (a leaf holds ~72 on average: 9.8 against 17.7 us).
_UNIFORM_MIN_ITEMS = 12
_UNIFORM_LAYOUTS = 256  # compiled item layouts kept; a directory's names share a handful
_uniform: dict[tuple[int, int], struct.Struct] = {}


def _decode_uniform(data: bytes, pos: int, count: int) -> tuple[list[bytes], list[bytes]] | None:
    """The keys and bodies of a page whose ``count`` items from ``pos`` all have the first
    one's name and body lengths (as a directory of same-length names of small files has:
    each such body is 53 bytes), split by one ``struct`` pass in C: ~0.13 us an item against
    ~0.26 for the item-by-item loop of :meth:`Page.decode`, plus ~0.7 us a page. None for
    any other page (the loop reads it); for a page of ``bytes`` the two give the same."""
    key_length, body_length = _ITEM.unpack_from(data, pos)
    if pos + count * (_ITEM.size + key_length + body_length) != len(data):
        return None
    layout = _uniform.get((key_length, body_length))
    if layout is None:
        if len(_uniform) >= _UNIFORM_LAYOUTS:
            _uniform.clear()
        layout = _uniform[key_length, body_length] = struct.Struct(
            f"<HI{key_length}s{body_length}s"
        )
    key_lengths, body_lengths, keys, bodies = zip(
        *layout.iter_unpack(memoryview(data)[pos:]), strict=True
    )
    if key_lengths.count(key_length) != count or body_lengths.count(body_length) != count:
        return None
    return list(keys), list(bodies)


EMPTY_PAGE = Page(0, [], []).encode()
EMPTY_TREE = tree_id(EMPTY_PAGE)


class PageCache:
    """Decoded pages by id, shared by threads. A page never changes, so a decoded one serves
    every later read of any version that has it. A hit is one dict lookup (no lock, no
    reordering: a lookup reads a page per directory level, and keeping an LRU order cost
    more than the rest of it); when full, the oldest-inserted page goes first."""

    def __init__(self, capacity: int = 4096) -> None:
        self._pages: dict[TreeId, Page] = {}
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, page: TreeId) -> Page | None:
        return self._pages.get(page)

    def add(self, page: TreeId, decoded: Page) -> None:
        with self._lock:
            self._pages[page] = decoded
            while len(self._pages) > self._capacity:
                del self._pages[next(iter(self._pages))]


class Pages:
    """Decoded pages by id: from ``cache``, else read through ``get`` and decoded."""

    def __init__(self, get: Get, cache: PageCache | None = None) -> None:
        self._get = get
        self._cache = PageCache() if cache is None else cache

    def __call__(self, page: TreeId) -> Page:
        found = self._cache.get(page)
        if found is None:
            found = EMPTY if page == EMPTY_TREE else Page.decode(self._get(page))
            self._cache.add(page, found)
        return found


EMPTY = Page(0, [], [])


def _write(put: Put, level: int, items: list[Item]) -> Ref:
    page = Page(level, [i.key for i in items], [i.body for i in items])
    data = page.encode()
    page_id = tree_id(data)
    put(page_id, data)
    return page.ref(page_id)


def _ref_item(ref: Ref) -> Item:
    return Item(ref.key, ref.page + _varint(ref.entries))


def _cut(items: Iterable[Item], cutter: Cutter, put: Put, level: int) -> list[Ref]:
    """Pages of ``items`` cut from scratch."""
    refs: list[Ref] = []
    page: list[Item] = []
    size = 0
    for item in items:
        page.append(item)
        size += len(item.key) + len(item.body) + 4
        if cutter.cut_after(len(page), size, item.key):
            refs.append(_write(put, level, page))
            page, size = [], 0
    if page:
        refs.append(_write(put, level, page))
    return refs


def _root(leaves: list[Ref], put: Put) -> TreeId:
    """The root page id over a directory's leaves (index levels cut from scratch: they hold
    one item per leaf, so re-cutting them costs little next to the leaves)."""
    refs, level = leaves, 0
    while len(refs) > 1:
        level += 1
        refs = _cut((_ref_item(r) for r in refs), INDEX_CUTTER, put, level)
    if not refs:
        put(EMPTY_TREE, EMPTY_PAGE)
        return EMPTY_TREE
    return refs[0].page


def _leaves(pages: Pages, root: TreeId) -> list[Ref]:
    """The leaf refs of a directory, read from its index pages only."""
    page = pages(root)
    if page.level == 0:
        return [page.ref(root)] if page.keys else []
    refs = _children(page)
    for _ in range(page.level - 1):
        refs = [ref for parent in refs for ref in _children(pages(parent.page))]
    return refs


def _children(page: Page) -> list[Ref]:
    """The refs an index page holds."""
    return [
        Ref(key, page.child(i), _read_varint(body, 32)[0])
        for i, (key, body) in enumerate(zip(page.keys, page.bodies, strict=True))
    ]


class _Cursor:
    """The items of old leaf pages from ``start`` on, loading each page when reached."""

    def __init__(self, leaves: list[Ref], start: int, pages: Pages) -> None:
        self._leaves, self.next_page, self._pages = leaves, start, pages
        self._page: Page = EMPTY
        self._pos = 0

    def peek(self) -> Item | None:
        while self._pos == len(self._page.keys):
            if self.next_page == len(self._leaves):
                return None
            self._page = self._pages(self._leaves[self.next_page].page)
            self.next_page += 1
            self._pos = 0
        return Item(self._page.keys[self._pos], self._page.bodies[self._pos])

    def take(self) -> None:
        self._pos += 1

    def at_page_end(self) -> bool:
        """True when the next item (if any) is the first of old page ``next_page``."""
        return self._pos == len(self._page.keys)


Edit = tuple[bytes, bytes | None]  # (name, new body or None to delete)


def _edit_leaves(leaves: list[Ref], edits: list[Edit], pages: Pages, put: Put) -> list[Ref]:
    """New leaf refs of a directory after ``edits`` (sorted by name), writing only the pages
    around the edits: re-cutting starts at the page holding an edit and stops at the first cut
    that falls where an old page ended (the cuts after it depend only on items that did not
    change). The result equals :func:`_cut` of the edited sequence."""
    firsts = [ref.key for ref in leaves]
    out: list[Ref] = []
    done = 0  # old leaves before this one are copied or re-cut
    e = 0
    while e < len(edits):
        start = max(bisect_right(firsts, edits[e][0]) - 1, done)
        out.extend(leaves[done:start])
        cursor = _Cursor(leaves, start, pages)
        page: list[Item] = []
        size = 0
        while True:
            old = cursor.peek()
            if e < len(edits) and (old is None or edits[e][0] <= old.key):
                name, body = edits[e]
                e += 1
                if old is not None and name == old.key:
                    cursor.take()
                if body is None:
                    continue
                item = Item(name, body)
            elif old is not None:
                item = old
                cursor.take()
            else:
                break
            page.append(item)
            size += len(item.key) + len(item.body) + 4
            if LEAF_CUTTER.cut_after(len(page), size, item.key):
                out.append(_write(put, 0, page))
                page, size = [], 0
                if cursor.at_page_end():
                    break
        if page:
            out.append(_write(put, 0, page))
        done = cursor.next_page  # at an old page end: re-cut pages met old cuts, or all done
    out.extend(leaves[done:])
    return out


# --- reading ----------------------------------------------------------------------------------


def find(pages: Pages, directory: TreeId, name: bytes) -> bytes | None:
    """The body of ``name`` in a directory: one page per level."""
    found = _find(pages, directory, name, ranked=False)
    return None if found is None else found[1]


def _find(
    pages: Pages, directory: TreeId, name: bytes, *, ranked: bool
) -> tuple[int, bytes] | None:
    """(position among the directory's children, body) of ``name``; the position is counted
    only if ``ranked`` (else 0), from the entry counts index pages keep of the pages before."""
    page, rank = pages(directory), 0
    while page.level > 0:
        index = bisect_right(page.keys, name) - 1
        if index < 0:
            return None
        if ranked:
            rank += sum(_read_varint(body, 32)[0] for body in page.bodies[:index])
        page = pages(page.child(index))
    index = bisect_left(page.keys, name)
    if index < len(page.keys) and page.keys[index] == name:
        return rank + index, page.bodies[index]
    return None


def items(pages: Pages, directory: TreeId, start_after: bytes | None = None) -> Iterator[Item]:
    """A directory's (name, body) items in name order, after ``start_after`` if given;
    reaching the first costs one page per level."""
    stack: list[tuple[Page, int]] = []
    page = pages(directory)
    while True:
        if start_after is None:
            index = 0
        elif page.level > 0:
            index = max(bisect_right(page.keys, start_after) - 1, 0)
        else:
            index = bisect_right(page.keys, start_after)
        if page.level == 0:
            stack.append((page, index))
            break
        stack.append((page, index + 1))
        page = pages(page.child(index)) if page.keys else EMPTY
    while stack:
        page, index = stack.pop()
        if page.level == 0:
            yield from (
                Item(k, b) for k, b in zip(page.keys[index:], page.bodies[index:], strict=True)
            )
            continue
        if index < len(page.keys):
            stack.append((page, index + 1))
            child = pages(page.child(index))
            stack.append((child, 0))


def _join(parent: str, name: bytes) -> str:
    return f"{parent}/{decode_path(name)}" if parent else decode_path(name)


def resolve_dir(pages: Pages, root: TreeId, directory: str) -> TreeId | None:
    """The tree id of ``directory`` ('' is the root); None when it is not a directory."""
    tree = root
    for part in directory.split("/") if directory else []:
        body = find(pages, tree, encode_path(part))
        if body is None or body[0] & _KIND != Kind.DIR:
            return None
        tree = TreeId(body[_HEAD.size : _HEAD.size + 32])  # a directory's body ends with it
    return tree


def lookup(pages: Pages, root: TreeId, path: str) -> FileEntry | None:
    found = _lookup(pages, root, path, ranked=False)
    return None if found is None else found[1]


def lookup_ranked(pages: Pages, root: TreeId, path: str) -> tuple[int, FileEntry] | None:
    """:func:`lookup`, with the entry's position among its directory's children in name
    order (what a listing of the directory would index it by)."""
    return _lookup(pages, root, path, ranked=True)


def _lookup(pages: Pages, root: TreeId, path: str, *, ranked: bool) -> tuple[int, FileEntry] | None:
    parent, _, name = path.rpartition("/")
    tree = resolve_dir(pages, root, parent)
    if tree is None:
        return None
    found = _find(pages, tree, encode_path(name), ranked=ranked)
    return None if found is None else (found[0], decode_entry(path, found[1])[0])


def list_dir(
    pages: Pages, root: TreeId, directory: str = "", start_after: str | None = None
) -> Iterator[FileEntry]:
    """Direct children of ``directory`` in name (byte) order, after ``start_after``."""
    tree = resolve_dir(pages, root, directory)
    if tree is None:
        return
    after = None if start_after is None else encode_path(start_after)
    for item in items(pages, tree, after):
        yield listed_entry(directory, item)


def list_columns(
    pages: Pages, root: TreeId, directory: str = ""
) -> tuple[list[bytes], list[bytes]]:
    """The names and the bodies of ``directory``'s direct children in name order, not
    decoded (decode one with :func:`listed_entry`, show them with :func:`entry_heads`): the
    leaf pages' own lists joined, with no object made per child."""
    names: list[bytes] = []
    bodies: list[bytes] = []
    for page_id in leaf_ids(pages, root, directory):
        page = leaf(pages, page_id)
        names += page.keys
        bodies += page.bodies
    return names, bodies


def leaf_ids(pages: Pages, root: TreeId, directory: str = "") -> list[TreeId]:
    """The ids of ``directory``'s leaf pages in name order, read from its index pages only
    (none when it is not a directory): :func:`list_columns` a page at a time."""
    tree = resolve_dir(pages, root, directory)
    return [] if tree is None else [ref.page for ref in _leaves(pages, tree)]


def directory_size(pages: Pages, root: TreeId, directory: str = "") -> int:
    """How many children ``directory`` has (0: none, or not a directory), read from its top
    page only (an index page's refs count the entries below them)."""
    tree = resolve_dir(pages, root, directory)
    return 0 if tree is None else pages(tree).entries()


def leaf(pages: Pages, page_id: TreeId) -> Page:
    """The leaf page ``page_id`` (one of :func:`leaf_ids`)."""
    page = pages(page_id)
    if page.level != 0:  # the index levels above a leaf are all of one height
        raise ValueError(f"tree page {page_id.hex()[:16]} is not a leaf where one is")
    return page


def listed_entry(directory: str, item: Item) -> FileEntry:
    """The entry of ``item``, a child of ``directory`` (see :func:`list_columns`)."""
    return decode_entry(_join(directory, item.key), item.body)[0]


def walk(pages: Pages, root: TreeId, directory: str = "") -> Iterator[FileEntry]:
    """Every entry below ``directory`` (whose tree is ``root``), depth first: a directory
    comes before its contents, each directory's names in byte order."""
    stack = [(directory, items(pages, root))]
    while stack:
        parent, listing = stack[-1]
        item = next(listing, None)
        if item is None:
            stack.pop()
            continue
        entry, subtree = decode_entry(_join(parent, item.key), item.body)
        yield entry
        if subtree is not None:
            stack.append((entry.path, items(pages, subtree)))


def next_file(
    pages: Pages,
    root: TreeId,
    path: str,
    wanted: Callable[[FileEntry], bool],
    steps: int,
    per_directory: int,
) -> FileEntry | None:
    """The first file after ``path`` in a depth-first walk of ``root`` in name order (the
    order :func:`walk` gives, which ``cp -r``, ``tar`` and a reader of numbered shards follow)
    for which ``wanted`` is true; None if there is none within ``steps`` entries.

    The look passes over the rest of any directory in which ``per_directory`` entries in a row
    were neither wanted nor directories (a directory of small files, when ``wanted`` asks for
    large ones). Reaching the entries after ``path`` costs a page per level of each directory
    the look passes through, whatever their sizes."""
    directory, _, name = path.rpartition("/")
    after: bytes | None = encode_path(name)
    while steps > 0:
        tree = resolve_dir(pages, root, directory)
        if tree is None:
            return None
        # (directory, its items from where the look enters it, entries left before it is
        # passed over)
        stack = [(directory, items(pages, tree, after), per_directory)]
        while stack and steps > 0:
            parent, listing, left = stack.pop()
            item = next(listing, None) if left else None
            if item is None:
                continue
            steps -= 1
            entry, subtree = decode_entry(_join(parent, item.key), item.body)
            if subtree is None and wanted(entry):
                return entry
            stack.append((parent, listing, per_directory if subtree else left - 1))
            if subtree is not None:
                stack.append((entry.path, items(pages, subtree), per_directory))
        if not directory:
            return None
        directory, _, name = directory.rpartition("/")  # on after the directory just done
        after = encode_path(name)
    return None


def file_digests(get: Get, root: TreeId) -> Iterator[tuple[bytes, bytes, int]]:
    """(encoded path, file digest, size) of every file below ``root``, in no set order: what a
    version digest needs. Reads each page once through ``get`` and slices the fields out of
    the raw bytes (decoding pages and entries cost 4x as much at 100,000 files)."""
    head, size_at = _ITEM.unpack_from, _SIZE.unpack_from
    at, directory = _HEAD.size, int(Kind.DIR)  # a body's digest or subtree id follows its head
    todo = [(b"", root)]
    while todo:
        prefix, page_id = todo.pop()
        data = EMPTY_PAGE if page_id == EMPTY_TREE else get(page_id)
        count, pos = _read_varint(data, 2)
        below = []  # pushed in reverse: pages and subdirectories come off in name order
        for _ in range(count):
            key_length, body_length = head(data, pos)
            key = data[pos + 6 : pos + 6 + key_length]
            body = pos + 6 + key_length
            pos = body + body_length
            if data[1]:  # an index page
                below.append((prefix, TreeId(data[body : body + 32])))
            elif data[body] & _KIND == directory:
                below.append((prefix + key + b"/", TreeId(data[body + at : body + at + 32])))
            else:
                yield prefix + key, data[body + at : body + at + 32], size_at(data, body + 5)[0]
        todo.extend(reversed(below))


def reachable(
    pages: Pages,
    root: TreeId,
    seen: set[TreeId],
    held: Callable[[TreeId], bool] | None = None,
) -> Iterator[FileEntry]:
    """Add every page of ``root`` not in ``seen`` to it and yield the file entries met on the
    way; subtrees already seen (shared with a version marked before) are skipped whole, and
    so are pages for which ``held`` says False (kept elsewhere, with their subtrees)."""
    todo = [root]
    while todo:
        page_id = todo.pop()
        if page_id in seen or (held is not None and not held(page_id)):
            continue
        seen.add(page_id)
        page = pages(page_id)
        if page.level > 0:
            todo.extend(page.child(i) for i in range(len(page.keys)))
            continue
        for key, body in zip(page.keys, page.bodies, strict=True):
            entry, subtree = decode_entry(decode_path(key), body)
            if subtree is not None:
                todo.append(subtree)
            else:
                yield entry


def diff(
    pages: Pages, old: TreeId, new: TreeId, directory: str = ""
) -> Iterator[tuple[str, FileEntry | None, FileEntry | None]]:
    """(path, old entry, new entry) of every path that differs, in walk order; subtrees with
    the same id are skipped unread, and everything below an added or removed directory is
    reported too."""
    if old == new:
        return
    a, b = items(pages, old), items(pages, new)
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if x is not None and (y is None or x.key < y.key):
            yield from _one_side(pages, directory, x, old_side=True)
            x = next(a, None)
        elif y is not None and (x is None or y.key < x.key):
            yield from _one_side(pages, directory, y, old_side=False)
            y = next(b, None)
        elif x is not None and y is not None:
            if x.body != y.body:
                path = _join(directory, x.key)
                before, old_sub = decode_entry(path, x.body)
                after, new_sub = decode_entry(path, y.body)
                if before != after:  # else only the contents of a directory differ
                    yield path, before, after
                if old_sub is not None and new_sub is not None:
                    yield from diff(pages, old_sub, new_sub, path)
                elif old_sub is not None:
                    yield from ((e.path, e, None) for e in walk(pages, old_sub, path))
                elif new_sub is not None:
                    yield from ((e.path, None, e) for e in walk(pages, new_sub, path))
            x, y = next(a, None), next(b, None)


def _one_side(
    pages: Pages, directory: str, item: Item, *, old_side: bool
) -> Iterator[tuple[str, FileEntry | None, FileEntry | None]]:
    entry, subtree = decode_entry(_join(directory, item.key), item.body)
    below = [] if subtree is None else list(walk(pages, subtree, entry.path))
    for e in [entry, *below]:
        yield (e.path, e, None) if old_side else (e.path, None, e)


# --- building ---------------------------------------------------------------------------------


def build(put: Put, entries: Iterable[FileEntry]) -> TreeId:
    """The root tree id of a version holding ``entries`` (files and directories, any order;
    a directory without an entry of its own gets mode 0755 and mtime 0)."""
    # The entries go in as pairs, not as a dict of every path: at a million files that dict
    # alone is ~40 MB at a put's peak.
    return _update(_absent, put, None, ((e.path, e) for e in entries), {})


def _absent(page: TreeId) -> bytes:
    raise KeyError(page)


def update(
    get: Get,
    put: Put,
    root: TreeId | None,
    changes: Mapping[str, FileEntry | None],
    grafts: Mapping[str, TreeId] | None = None,
) -> TreeId:
    """The root id of ``root`` (None: empty) with ``changes`` applied: a path mapped to an
    entry is added or replaced (a directory entry sets the directory's attributes and keeps
    its contents), a path mapped to None is removed with everything below it. Only the pages
    on the paths of the changes are written. The result is what :func:`build` gives for the
    same content, page for page.

    ``grafts`` maps directory paths to tree ids whose contents replace theirs before the
    changes apply (a directory is made, with the attributes of its entry in ``changes`` or
    of the entry it replaces, else 0755): ``EMPTY_TREE`` empties a directory, a subtree id
    of any stored version copies that directory in O(1). A path may not be removed and
    grafted (or grafted below) at once."""
    return _update(get, put, root, changes.items(), grafts or {})


def _update(
    get: Get,
    put: Put,
    root: TreeId | None,
    changes: Iterable[tuple[str, FileEntry | None]],
    grafts: Mapping[str, TreeId],
) -> TreeId:
    """:func:`update` with ``changes`` as (path, entry) pairs (a later pair of a path wins)."""
    pages = Pages(get)
    if "" in grafts:
        root = grafts[""]
    by_dir: dict[str, dict[bytes, FileEntry | None]] = {"": {}}
    for path in grafts:
        if path:
            _touch(by_dir, path)
    for path, entry in changes:
        parent, _, name = path.rpartition("/")
        if entry is None and _grafted_dir(pages, root, grafts, parent) is None:
            continue  # nothing to remove: its directory does not exist
        _touch(by_dir, parent)[encode_path(name)] = entry
    subdirs: dict[str, set[bytes]] = {}
    for directory in by_dir:
        if directory:
            parent, _, name = directory.rpartition("/")
            subdirs.setdefault(parent, set()).add(encode_path(name))
    build = _Build(pages, put, by_dir, subdirs, {})
    # Top down: where each rebuilt directory was (None: it was no directory); then bottom up
    # (no recursion: a path may be 2,000 directories deep).
    order = sorted(by_dir, key=lambda d: d.count("/") + (d != ""))
    old: dict[str, TreeId | None] = {"": root}
    for path in order[1:]:
        if path in grafts:
            old[path] = grafts[path]
            continue
        parent, _, name = path.rpartition("/")
        tree = old[parent]
        body = None if tree is None else find(pages, tree, encode_path(name))
        old[path] = None if body is None else decode_entry(path, body)[1]
    for path in reversed(order):
        build.built[path] = _rebuild_dir(build, old[path], path)
    return build.built[""]


def _grafted_dir(
    pages: Pages, root: TreeId | None, grafts: Mapping[str, TreeId], directory: str
) -> TreeId | None:
    """The tree of ``directory`` once ``grafts`` are applied (None: no such directory): looked
    up below the deepest graft at or above it, else below ``root``."""
    probe = directory
    while probe not in grafts and probe:
        probe = probe.rpartition("/")[0]
    tree = grafts.get(probe, root)
    rest = directory[len(probe) :].lstrip("/")
    return None if tree is None else resolve_dir(pages, tree, rest)


def _touch(
    by_dir: dict[str, dict[bytes, FileEntry | None]], directory: str
) -> dict[bytes, FileEntry | None]:
    """The changes of ``directory``, registering it and its ancestors as rebuilt."""
    found = by_dir.get(directory)
    if found is not None:
        return found
    found = by_dir[directory] = {}
    parent = directory
    while parent:
        parent = parent.rpartition("/")[0]
        if parent in by_dir:
            break
        by_dir[parent] = {}
    return found


@dataclass(frozen=True, slots=True)
class _Build:
    pages: Pages
    put: Put
    by_dir: dict[str, dict[bytes, FileEntry | None]]  # changed names of each rebuilt dir
    subdirs: dict[str, set[bytes]]  # rebuilt subdirectories of each rebuilt dir
    built: dict[str, TreeId]  # new tree ids of the rebuilt dirs done so far (deepest first)


def _rebuild_dir(build: _Build, tree: TreeId | None, path: str) -> TreeId:
    direct = build.by_dir[path]
    subdirs = build.subdirs.get(path, set())
    edits: list[Edit] = []
    for name in sorted(direct.keys() | subdirs):
        given = direct.get(name)
        if tree is None and given is not None and not given.is_dir and name not in subdirs:
            edits.append((name, encode_entry(given)))  # a new file: the common case
            continue
        child = _join(path, name)
        if name in direct and direct[name] is None:
            if child in build.by_dir:
                raise ValueError(f"{child!r} is removed and changed at once")
            edits.append((name, None))
            continue
        old_body = None if tree is None else find(build.pages, tree, name)
        old, old_sub = (None, None) if old_body is None else decode_entry(child, old_body)
        entry = direct.get(name) or old
        if child in build.by_dir and (entry is None or not entry.is_dir):
            if name in direct:
                raise ValueError(f"{child!r} is a file with entries below it")
            entry = FileEntry(child, Kind.DIR, _DIR_MODE, 0, 0)  # an implicit parent
        if entry is None:
            raise AssertionError(f"{child!r}: neither changed nor stored")  # by construction
        if not entry.is_dir:
            edits.append((name, encode_entry(entry)))
            continue
        if old is not None and not old.is_dir:
            old_sub = None
        if child in build.by_dir:
            old_sub = build.built[child]
        elif old_sub is None:
            old_sub = _root([], build.put)
        edits.append((name, encode_entry(entry, old_sub)))
    if not edits and tree is not None and tree != EMPTY_TREE:
        return tree  # a graft with nothing changed below it: its pages exist
    leaves = [] if tree is None else _leaves(build.pages, tree)
    return _root(_edit_leaves(leaves, edits, build.pages, build.put), build.put)
