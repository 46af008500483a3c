"""Tree pages on a remote: which ones a push uploads, fetching them verified, marking for gc.

A version's file tree is a graph of immutable pages named by their BLAKE3 (see
:mod:`artfs.store.trees`). On a remote a page is stored like a chunk, in a *tree pack* (a pack
of the chunk-pack format whose index says ``"trees": true``), so a reader finds it in the pack
indexes and fetches it with the same coalesced ranged GETs and the same check (decompress, hash
against its id) as a chunk. Because a page names its children by their ids, a page present on
the remote stands for its whole subtree: a push walks down from the new root and stops at every
page the remote has, so an unchanged subtree costs one lookup in the chunk map, and a pull or a
refresh walks down and stops at every page the local store has.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from artfs.errors import CorruptData
from artfs.remote.layout import PackBuilder
from artfs.remote.ranged import coalesce, fetch_group, verified_chunk
from artfs.remote.remote import Remote
from artfs.store import codec, trees
from artfs.store.chunkstore import RemoteChunk
from artfs.store.hashing import ChunkId, TreeId, tree_id
from artfs.store.manifest import FileEntry

# Tree packs are cut at the size of chunk packs; a first push of 100,000 files makes ~1,500
# pages (~10 MB before compression), so one or two PUTs.
TREE_PACK_SIZE = 64 << 20

PageReader = Callable[[TreeId], bytes]


def children(data: bytes) -> list[TreeId]:
    """The pages a page points to: an index page's children, a leaf's subdirectory trees."""
    page = trees.Page.decode(data)
    if page.level > 0:
        return [page.child(i) for i in range(len(page.keys))]
    found = []
    for body in page.bodies:
        _, subtree = trees.decode_entry("", body)
        if subtree is not None:
            found.append(subtree)
    return found


def files(data: bytes) -> Iterator[FileEntry]:
    """The file entries a leaf page holds (names left out: callers want chunks)."""
    page = trees.Page.decode(data)
    if page.level == 0:
        for body in page.bodies:
            entry, subtree = trees.decode_entry("", body)
            if subtree is None:
                yield entry


def missing_pages(
    root: TreeId, present: Callable[[TreeId], bool], read_page: PageReader
) -> dict[TreeId, bytes]:
    """The pages of the tree at ``root`` for which ``present`` is false, read with
    ``read_page``, in breadth-first order (a reader listing the tree top down then finds
    neighbouring pages next to each other). A present page is not read: its subtree is
    taken as present too."""
    found: dict[TreeId, bytes] = {}
    level = [root]
    while level:
        following: list[TreeId] = []
        for page in level:
            if page in found or present(page):
                continue
            data = found[page] = read_page(page)
            following += children(data)
        level = following
    return found


def upload_pages(
    remote: Remote, pages: dict[TreeId, bytes]
) -> tuple[dict[ChunkId, RemoteChunk], int]:
    """Upload ``pages`` in tree packs (each before its index); where each landed and the bytes
    of page payloads sent (as a push counts chunk bytes: record headers left out)."""
    landed: dict[ChunkId, RemoteChunk] = {}
    sent = 0
    builder = PackBuilder()
    for page, data in pages.items():
        codec_id, payload = codec.encode(data)
        builder.add(ChunkId(page), codec_id, payload, len(data))
        sent += len(payload)
        if len(builder.data) >= TREE_PACK_SIZE:
            landed.update(remote.upload_pack(*builder.finish(), trees=True))
            builder = PackBuilder()
    if builder.chunks:
        landed.update(remote.upload_pack(*builder.finish(), trees=True))
    return landed, sent


def fetch_pages(
    remote: Remote, ids: Iterable[TreeId], where: dict[ChunkId, RemoteChunk], what: str
) -> tuple[dict[TreeId, bytes], int]:
    """The verified bytes of pages ``ids`` (coalesced ranged GETs per pack) and the bytes
    fetched. CorruptData naming ``what`` for a page no pack holds or one that does not hash
    to its id."""
    by_pack: dict[str, list[tuple[ChunkId, RemoteChunk]]] = defaultdict(list)
    for page in dict.fromkeys(ids):
        loc = where.get(ChunkId(page))
        if loc is None:
            raise CorruptData(
                f"tree page {page.hex()[:16]} of {what} is not on {remote.describe()}: "
                "the remote is damaged (run 'artfs gc --remote' only on a sound remote)"
            )
        by_pack[loc.pack].append((ChunkId(page), loc))
    found: dict[TreeId, bytes] = {}
    fetched = 0
    for _, chunks in sorted(by_pack.items()):
        chunks.sort(key=lambda item: item[1].offset)
        for _, _, group in coalesce(chunks):
            size, pieces = fetch_group(remote, group)
            fetched += size
            for cid, loc, payload in pieces:
                found[TreeId(cid)] = verified_page(cid, loc, payload, what, remote)
    return found, fetched


def verified_page(
    cid: ChunkId, loc: RemoteChunk, payload: bytes, what: str, remote: Remote
) -> bytes:
    """A fetched page's bytes, hashed against its id (CorruptData saying it is a tree page)."""
    try:
        return verified_chunk(cid, loc, payload, what, remote)
    except CorruptData as exc:
        raise CorruptData(str(exc).replace("chunk ", "tree page ", 1)) from None


def fetch_tree(
    remote: Remote,
    root: TreeId,
    have: Callable[[TreeId], bool],
    where: dict[ChunkId, RemoteChunk],
    what: str,
) -> tuple[dict[TreeId, bytes], int]:
    """Every page of the tree at ``root`` that ``have`` says is missing, one level at a time
    (one coalesced GET per level and pack), stopping at pages held: their subtrees are
    complete where they are held. Returns the pages and the bytes fetched."""
    got: dict[TreeId, bytes] = {}
    fetched = 0
    level = [root]
    while level:
        wanted = [p for p in dict.fromkeys(level) if p not in got and not have(p)]
        found, size = fetch_pages(remote, wanted, where, what)
        got.update(found)
        fetched += size
        level = [child for page in wanted for child in children(found[page])]
    return got, fetched


class PageFiles:
    """Pages kept on disk by id (gc's copies: a page never changes), checked when read."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def get(self, page: TreeId) -> bytes | None:
        if self.folder is None:
            return None
        try:
            data = (self.folder / page.hex()).read_bytes()
        except OSError:
            return None
        return data if tree_id(data) == page else None

    def put(self, page: TreeId, data: bytes) -> None:
        if self.folder is None:
            return
        path = self.folder / page.hex()
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:  # only a copy: fetched again next time
            with contextlib.suppress(OSError):
                tmp.unlink()
