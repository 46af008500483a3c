"""Tree pages (artfs.store.trees): encoding, lookups, paging, incremental builds, diff."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artfs.store import trees
from artfs.store.hashing import ChunkId, FileDigest, TreeId, file_digest, tree_id
from artfs.store.manifest import ChunkRef, FileEntry, Kind
from artfs.store.trees import Cutter, Page, Pages


class Objects:
    """An in-memory object store that counts reads and remembers what was put."""

    def __init__(self) -> None:
        self.data: dict[TreeId, bytes] = {}
        self.reads = 0
        self.new: set[TreeId] = set()

    def get(self, page: TreeId) -> bytes:
        self.reads += 1
        return self.data[page]

    def put(self, page: TreeId, data: bytes) -> None:
        assert tree_id(data) == page
        if page not in self.data:
            self.data[page] = data
            self.new.add(page)

    def pages(self) -> Pages:
        return Pages(self.get)


def file(path: str, content: bytes = b"x", mtime_ns: int = 1, mode: int = 0o644) -> FileEntry:
    digest = file_digest(content)
    chunks = (ChunkRef(ChunkId(digest), len(content)),) if content else ()
    return FileEntry(path, Kind.FILE, mode, len(content), mtime_ns, digest, chunks)


def directory(path: str, mtime_ns: int = 5) -> FileEntry:
    return FileEntry(path, Kind.DIR, 0o755, 0, mtime_ns)


def reachable_pages(objects: Objects, root: TreeId) -> set[TreeId]:
    seen: set[TreeId] = set()
    for _ in trees.reachable(objects.pages(), root, seen):
        pass
    return seen


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny pages, so that a few dozen names make several leaves and index levels."""
    monkeypatch.setattr(trees, "LEAF_CUTTER", Cutter(2, 3, 6, 1 << 20, b"leaf"))
    monkeypatch.setattr(trees, "INDEX_CUTTER", Cutter(2, 3, 4, 1 << 20, b"index"))


# --- encoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        file("a", b"hello"),
        file("b", b""),
        file("c", b"z", mtime_ns=-1_500_000_000_123, mode=0o100755),
        FileEntry(
            "d",
            Kind.FILE,
            0o644,
            10,
            7,
            FileDigest(bytes(range(32))),
            (ChunkRef(ChunkId(b"\x01" * 32), 4), ChunkRef(ChunkId(b"\x02" * 32), 6)),
        ),
        FileEntry("e", Kind.FILE, 0o444, 3, 9, FileDigest(bytes(32)), (), "https://x/y?z"),
        FileEntry("f", Kind.FILE, 0o444, 2**40, 2**62, file_digest(b"big"), (), "s3://b/k"),
    ],
)
def test_entry_round_trip(entry: FileEntry) -> None:
    body = trees.encode_entry(entry)
    assert trees.decode_entry(entry.path, body) == (entry, None)


def test_single_chunk_file_stores_no_chunk_list() -> None:
    one = trees.encode_entry(file("a", b"hello"))
    two = FileEntry(
        "a", Kind.FILE, 0o644, 5, 1, file_digest(b"hello"), (ChunkRef(ChunkId(b"\1" * 32), 5),)
    )
    assert len(one) + 40 == len(trees.encode_entry(two))  # no count, no (id, length)


def test_directory_entry_names_its_subtree() -> None:
    sub = TreeId(b"\x07" * 32)
    body = trees.encode_entry(directory("d"), sub)
    assert trees.decode_entry("d", body) == (directory("d"), sub)
    with pytest.raises(ValueError):
        trees.encode_entry(directory("d"))


def test_page_round_trip_and_unknown_format() -> None:
    page = Page(0, [b"a", b"b\xff"], [b"1", b""])
    assert Page.decode(page.encode()) == page
    with pytest.raises(ValueError):
        Page.decode(b"\x09" + page.encode()[1:])


def _decode_item_by_item(data: bytes) -> tuple[int, list[bytes], list[bytes]]:
    """The page format read the plain way, as the reference the one-pass split must match."""
    count, pos = trees._read_varint(data, 2)
    keys, bodies = [], []
    for _ in range(count):
        key_length, body_length = trees._ITEM.unpack_from(data, pos)
        pos += trees._ITEM.size
        keys.append(data[pos : pos + key_length])
        pos += key_length
        bodies.append(data[pos : pos + body_length])
        pos += body_length
    return data[1], keys, bodies


def test_a_page_of_same_length_items_decodes_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # Names of one length, bodies of one length (a directory of img-00001.jpg ...): split by
    # one struct pass, which must give what the item-by-item loop gives.
    keys = [f"img-{i:05d}.jpg".encode() for i in range(300)]
    bodies = [bytes([i % 251]) * 53 for i in range(300)]
    data = Page(0, keys, bodies).encode()
    split: list[int] = []
    real = trees._decode_uniform

    def spied(data: bytes, pos: int, count: int) -> tuple[list[bytes], list[bytes]] | None:
        found = real(data, pos, count)
        split.append(found is not None)
        return found

    monkeypatch.setattr(trees, "_decode_uniform", spied)
    assert Page.decode(data) == Page(0, keys, bodies)
    assert split == [True]
    # A page of a few items is read item by item: the one pass costs more there.
    assert Page.decode(Page(0, keys[:3], bodies[:3]).encode()) == Page(0, keys[:3], bodies[:3])
    assert split == [True]


def test_a_page_whose_items_only_share_a_width_is_read_item_by_item() -> None:
    # Every item is 11 bytes, so the page's length fits a uniform layout, but the second
    # item's name is longer and its body shorter: the one-pass split must refuse it.
    keys = [b"ab", b"cde"] + [b"fg"] * 12
    bodies = [b"123", b"45"] + [b"678"] * 12
    data = Page(0, keys, bodies).encode()
    count, pos = trees._read_varint(data, 2)
    assert trees._decode_uniform(data, pos, count) is None
    assert Page.decode(data) == Page(0, keys, bodies)
    # The same for a page whose names agree and whose bodies only share their total.
    same_names = Page(0, [b"ab"] * 14, [b"1234", b"12"] * 7).encode()
    assert trees._decode_uniform(same_names, *trees._read_varint(same_names, 2)[::-1]) is None
    # A page with bytes after its last item is not uniform either, and reads as it always did.
    assert trees._decode_uniform(data + b"x", pos, count) is None
    assert Page.decode(data + b"x") == Page(0, keys, bodies)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.binary(min_size=0, max_size=6), st.binary(min_size=0, max_size=6)),
        max_size=40,
    ),
    st.integers(min_value=0, max_value=3),
)
def test_page_decode_matches_encode_whatever_the_lengths(
    items: list[tuple[bytes, bytes]], level: int
) -> None:
    page = Page(level, [k for k, _ in items], [b for _, b in items])
    assert Page.decode(page.encode()) == page


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=9),
    st.integers(min_value=0, max_value=40),
    st.data(),
)
def test_page_decode_matches_the_plain_reading_of_damaged_pages(
    key_length: int, body_length: int, count: int, data: st.DataObject
) -> None:
    """Pages of one layout (the one-pass split's), then damaged: a byte changed, bytes cut or
    added. Whatever the plain item-by-item reading makes of them, Page.decode makes too, or
    both fail."""
    keys = [data.draw(st.binary(min_size=key_length, max_size=key_length)) for _ in range(count)]
    bodies = [data.draw(st.binary(min_size=body_length, max_size=body_length)) for _ in keys]
    encoded = bytearray(Page(1, keys, bodies).encode())
    damage = data.draw(st.sampled_from(["none", "byte", "cut", "add"]))
    if damage == "byte" and len(encoded) > 3:
        at = data.draw(st.integers(min_value=2, max_value=len(encoded) - 1))
        encoded[at] = data.draw(st.integers(min_value=0, max_value=255))
    elif damage == "cut":
        del encoded[data.draw(st.integers(min_value=3, max_value=len(encoded))) :]
    elif damage == "add":
        encoded += data.draw(st.binary(min_size=1, max_size=8))
    page_bytes = bytes(encoded)
    try:
        expected = _decode_item_by_item(page_bytes)
    except Exception as exc:  # whichever error the plain reading raises, decode raises too
        with pytest.raises(type(exc)):
            Page.decode(page_bytes)
        return
    assert Page.decode(page_bytes) == Page(*expected)


# --- reading ----------------------------------------------------------------------------------


def test_build_then_read_back() -> None:
    objects = Objects()
    entries = [
        directory("data"),
        file("data/b.csv", b"b"),
        file("data/a.csv", b"a"),
        file("data/sub/deep.bin", b"d"),  # data/sub has no entry: an implicit parent
        file("top.txt", b"t"),
        directory("empty"),
    ]
    root = trees.build(objects.put, entries)
    pages = objects.pages()
    assert trees.lookup(pages, root, "data/a.csv") == file("data/a.csv", b"a")
    assert trees.lookup(pages, root, "data") == directory("data")
    assert trees.lookup(pages, root, "data/sub") == FileEntry("data/sub", Kind.DIR, 0o755, 0, 0)
    assert trees.lookup(pages, root, "data/nope") is None
    assert trees.lookup(pages, root, "top.txt/x") is None
    assert trees.lookup(pages, root, "missing/x") is None
    assert [e.path for e in trees.list_dir(pages, root, "data")] == [
        "data/a.csv",
        "data/b.csv",
        "data/sub",
    ]
    assert [e.path for e in trees.list_dir(pages, root, "data", start_after="a.csv")] == [
        "data/b.csv",
        "data/sub",
    ]
    assert list(trees.list_dir(pages, root, "empty")) == []
    assert list(trees.list_dir(pages, root, "top.txt")) == []
    assert [e.path for e in trees.walk(pages, root)] == [
        "data",
        "data/a.csv",
        "data/b.csv",
        "data/sub",
        "data/sub/deep.bin",
        "empty",
        "top.txt",
    ]


def test_same_content_same_root_in_any_order() -> None:
    entries = [file(f"d{i % 7}/f{i}", b"%d" % i) for i in range(300)]
    a, b = Objects(), Objects()
    assert trees.build(a.put, entries) == trees.build(b.put, list(reversed(entries)))
    assert a.data == b.data


def test_empty_version() -> None:
    objects = Objects()
    root = trees.build(objects.put, [])
    assert root == trees.EMPTY_TREE
    assert list(trees.walk(objects.pages(), root)) == []


def test_large_directory_is_paged_and_a_lookup_reads_one_page_per_level() -> None:
    objects = Objects()
    names = [f"img_{i:06d}.jpg" for i in range(30_000)]
    root = trees.build(objects.put, [file(n, n.encode()) for n in names])
    top = Page.decode(objects.data[root])
    assert top.level >= 1
    assert len(objects.data) > 30_000 // 512  # many pages, none holding everything
    assert max(len(d) for d in objects.data.values()) < 64 << 10
    for name in ["img_000000.jpg", "img_017321.jpg", "img_029999.jpg"]:
        objects.reads = 0
        assert trees.lookup(objects.pages(), root, name) == file(name, name.encode())
        assert objects.reads == top.level + 1
    objects.reads = 0
    listed = trees.list_dir(objects.pages(), root, start_after="img_020000.jpg")
    assert [next(listed).path for _ in range(3)] == [
        "img_020001.jpg",
        "img_020002.jpg",
        "img_020003.jpg",
    ]
    assert objects.reads == top.level + 1
    assert [e.path for e in trees.list_dir(objects.pages(), root)] == names
    assert top.entries() == 30_000


def test_one_insertion_rewrites_one_leaf_of_a_large_directory() -> None:
    objects = Objects()
    entries = {f"f{i:06d}": file(f"f{i:06d}", b"%d" % i) for i in range(50_000)}
    old = trees.build(objects.put, entries.values())
    objects.new.clear()
    new = trees.update(objects.get, objects.put, old, {"f025000x": file("f025000x", b"new")})
    leaves = [p for p in objects.new if Page.decode(objects.data[p]).level == 0]
    assert len(leaves) <= 2
    assert len(objects.new) <= 6  # the leaf (or two), its index pages up to the root
    entries["f025000x"] = file("f025000x", b"new")
    assert new == trees.build(Objects().put, entries.values())


def test_unchanged_directories_are_shared() -> None:
    objects = Objects()
    content = {f"d{d}/f{i}": file(f"d{d}/f{i}", b"%d" % i) for d in range(20) for i in range(50)}
    old = trees.build(objects.put, content.values())
    objects.new.clear()
    new = trees.update(objects.get, objects.put, old, {"d3/f7": file("d3/f7", b"changed")})
    pages = objects.pages()
    # d3's pages (one leaf, or a leaf and its index page) and the root page: nothing else
    assert len(objects.new) <= 3
    for d in range(20):
        same = trees.find(pages, old, b"d%d" % d) == trees.find(pages, new, b"d%d" % d)
        assert same == (d != 3)
    assert [p for p, _, _ in trees.diff(pages, old, new)] == ["d3/f7"]


def test_update_rejects_contradictions() -> None:
    objects = Objects()
    root = trees.build(objects.put, [file("a/b")])
    with pytest.raises(ValueError):
        trees.update(objects.get, objects.put, root, {"a": None, "a/c": file("a/c")})
    with pytest.raises(ValueError):
        trees.update(objects.get, objects.put, root, {"x": file("x"), "x/y": file("x/y")})


# --- properties: incremental equals from scratch ----------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "a.b", "a-b", "z", "\u00e9", "0", "aa"]) | st.text(
    "abcxyz0123", min_size=1, max_size=4
)
PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)


def content_of(entries: dict[str, FileEntry]) -> dict[str, FileEntry]:
    """What a version holds: the entries plus implicit parents."""
    out = dict(entries)
    for path in entries:
        parent = posixpath.dirname(path)
        while parent and parent not in out:
            out[parent] = FileEntry(parent, Kind.DIR, 0o755, 0, 0)
            parent = posixpath.dirname(parent)
    return out


def consistent(paths: dict[str, FileEntry]) -> dict[str, FileEntry]:
    """Drop files that would have entries below them (a path is a file or a directory)."""
    out: dict[str, FileEntry] = {}
    for path in sorted(paths, key=lambda p: (p.count("/"), p)):
        parents = [posixpath.dirname(path)]
        while parents[-1]:
            parents.append(posixpath.dirname(parents[-1]))
        if any(p in out and not out[p].is_dir for p in parents if p):
            continue
        out[path] = paths[path]
    return out


@st.composite
def versions(draw: st.DrawFn) -> tuple[dict[str, FileEntry], dict[str, FileEntry | None]]:
    paths = draw(st.lists(PATHS, max_size=60, unique=True))
    base = consistent(
        {
            p: directory(p, draw(st.integers(0, 3)))
            if draw(st.booleans()) and i % 4 == 0
            else file(p, draw(st.binary(max_size=3)))
            for i, p in enumerate(paths)
        }
    )
    base = content_of(base)
    changes: dict[str, FileEntry | None] = {}
    for path in draw(st.lists(PATHS, max_size=12, unique=True)):
        action = draw(st.sampled_from(["write", "delete", "dir"]))
        if action == "write":
            changes[path] = file(
                path, draw(st.binary(max_size=3)), mtime_ns=draw(st.integers(-2, 2))
            )
        elif action == "dir":
            changes[path] = directory(path, draw(st.integers(0, 3)))
        else:
            changes[path] = None
    return base, changes


def apply(
    base: dict[str, FileEntry], changes: dict[str, FileEntry | None]
) -> dict[str, FileEntry] | None:
    """The model of :func:`trees.update`; None when the changes contradict each other (a
    change below a path that is removed or becomes a file)."""
    changes = {
        path: entry
        for path, entry in changes.items()
        if entry is not None or is_dir(base, posixpath.dirname(path))
    }
    for path, entry in changes.items():
        if (entry is None or not entry.is_dir) and any(c.startswith(path + "/") for c in changes):
            return None
    out = dict(base)
    for path in sorted(changes, key=lambda p: p.count("/")):
        entry = changes[path]
        if entry is None or not entry.is_dir:
            for p in [p for p in out if p == path or p.startswith(path + "/")]:
                del out[p]
        if entry is None:
            continue
        out[path] = entry
        parent = posixpath.dirname(path)
        while parent:
            if parent not in out or not out[parent].is_dir:
                out[parent] = FileEntry(parent, Kind.DIR, 0o755, 0, 0)
            parent = posixpath.dirname(parent)
    return out


def is_dir(entries: dict[str, FileEntry], path: str) -> bool:
    return not path or (path in entries and entries[path].is_dir)


def walk_order(entries: dict[str, FileEntry]) -> list[str]:
    return sorted(
        entries, key=lambda p: [part.encode("utf-8", "surrogateescape") for part in p.split("/")]
    )


def check_listings(objects: Objects, root: TreeId, content: dict[str, FileEntry]) -> None:
    """list_dir of every directory, from the start and after each name (and between names)."""
    pages = objects.pages()
    for directory in ["", *(p for p, e in content.items() if e.is_dir)]:
        names = sorted(
            p.rpartition("/")[2].encode() for p in content if posixpath.dirname(p) == directory
        )
        # What a mount's listing reads: every child's name and body at once, leaf by leaf.
        listed_names, bodies = trees.list_columns(pages, root, directory)
        assert listed_names == names
        children = [content[posixpath.join(directory, n.decode())] for n in names]
        heads = [
            (flags & trees.KIND_MASK, mode, size, mtime_ns)
            for flags, mode, size, mtime_ns in trees.entry_heads(bodies)
        ]
        assert heads == [(e.kind, e.mode, e.size, e.mtime_ns) for e in children]
        assert list(trees.entry_heads(bodies, 1)) == list(trees.entry_heads(bodies))[1:]
        # A lookup counts the child's position on its way down (a mount's inode number).
        for index, child in enumerate(children):
            assert trees.lookup_ranked(pages, root, child.path) == (index, child)
        assert trees.lookup_ranked(pages, root, posixpath.join(directory, "\x7fnone")) is None
        for after in [None, b"", *names, *(n + b"\0" for n in names), b"\xff"]:
            start = None if after is None else after.decode("utf-8", "surrogateescape")
            listed = [e.name.encode() for e in trees.list_dir(pages, root, directory, start)]
            assert listed == [n for n in names if after is None or n > after]


def check_edit(base: dict[str, FileEntry], changes: dict[str, FileEntry | None]) -> None:
    expected = apply(base, changes)
    objects = Objects()
    old = trees.build(objects.put, base.values())
    assert [e.path for e in trees.walk(objects.pages(), old)] == walk_order(base)
    old_pages = set(objects.data)
    objects.new.clear()
    if expected is None:
        with pytest.raises(ValueError):
            trees.update(objects.get, objects.put, old, changes)
        return
    new = trees.update(objects.get, objects.put, old, changes)
    scratch = Objects()
    assert new == trees.build(scratch.put, expected.values())
    walked = {e.path: e for e in trees.walk(objects.pages(), new)}
    assert walked == expected
    check_listings(objects, new, expected)
    # shares every unchanged page: what is new was not there before, and is part of the result
    live = reachable_pages(objects, new)
    assert objects.new <= live
    assert live - old_pages == objects.new
    assert live == set(scratch.data)
    changed = {
        p: (base.get(p), expected.get(p))
        for p in base.keys() | expected.keys()
        if base.get(p) != expected.get(p)
    }
    found = {p: (a, b) for p, a, b in trees.diff(objects.pages(), old, new)}
    assert found == changed


_EDITS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}


@settings(max_examples=100, **_EDITS)
@given(versions())
def test_incremental_update_equals_scratch_build(
    small_pages: None, case: tuple[dict[str, FileEntry], dict[str, FileEntry | None]]
) -> None:
    check_edit(*case)


@pytest.mark.slow  # the same property over ten times the cases (27 s for 300 here, loaded)
@pytest.mark.timeout(600)
@settings(max_examples=1000, **_EDITS)
@given(versions())
def test_incremental_update_equals_scratch_build_at_length(
    small_pages: None, case: tuple[dict[str, FileEntry], dict[str, FileEntry | None]]
) -> None:
    check_edit(*case)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 3000), max_size=400, unique=True),
    st.lists(st.tuples(st.integers(0, 3100), st.booleans()), min_size=1, max_size=25),
)
def test_edits_of_a_large_flat_directory(
    existing: list[int], edits: list[tuple[int, bool]]
) -> None:
    base = {f"n{i}": file(f"n{i}", b"%d" % i) for i in existing}
    changes: dict[str, FileEntry | None] = {
        f"n{i}": (file(f"n{i}", b"new") if keep else None) for i, keep in edits
    }
    check_edit(base, changes)


def test_walk_of_deep_tree_is_not_recursive() -> None:
    path = "/".join(["d"] * 1500)
    objects = Objects()
    root = trees.build(objects.put, [file(path + "/leaf")])
    walked: Iterator[FileEntry] = trees.walk(objects.pages(), root)
    assert sum(1 for _ in walked) == 1501


@pytest.mark.slow
@pytest.mark.timeout(600)  # ~40 s on a quiet 2-core machine; minutes when it is shared
def test_a_directory_of_a_million_entries() -> None:
    objects = Objects()
    names = [f"{i:07d}.jpg" for i in range(1_000_000)]
    root = trees.build(objects.put, (file(n, n.encode()) for n in names))
    top = Page.decode(objects.data[root])
    assert top.level == 2 and top.entries() == 1_000_000
    objects.reads = 0
    assert trees.lookup(objects.pages(), root, "0765432.jpg") == file("0765432.jpg", b"0765432.jpg")
    assert objects.reads == 3
    objects.new.clear()
    trees.update(objects.get, objects.put, root, {"0765432.jpg": None})
    assert len(objects.new) <= 4  # a leaf, an index page, the root (and a leaf more at most)


def _sized(entry: FileEntry) -> bool:
    return entry.size >= 2


@settings(max_examples=100, **_EDITS)
@given(versions())
def test_next_file_is_the_next_wanted_file_of_the_walk(
    small_pages: None, case: tuple[dict[str, FileEntry], dict[str, FileEntry | None]]
) -> None:
    """With room enough to look, the next file is the walk's next one that is wanted."""
    content = case[0]
    objects = Objects()
    root = trees.build(objects.put, content.values())
    order = [p for p in walk_order(content) if not content[p].is_dir]
    for index, path in enumerate(order):
        expected = next((content[p] for p in order[index + 1 :] if _sized(content[p])), None)
        assert trees.next_file(objects.pages(), root, path, _sized, 1000, 1000) == expected


def test_next_file_climbs_out_and_passes_over_directories_of_small_files() -> None:
    """After a directory's last file the look goes on in its parent; the rest of a directory
    is passed over once ``per_directory`` entries in a row were small (a folder of labels),
    whatever follows them in it; a subdirectory met before that is entered; ``steps`` bounds
    the whole look."""
    objects = Objects()
    big = b"x" * 8
    entries = [
        file("a/shard-0.tar", big),
        file("a/shard-1.tar", big),
        file("b/labels/0.json"),
        file("b/labels/1.json"),
        file("b/labels/2.json"),
        file("b/labels/3.json"),
        file("b/labels/4.bin", big),
        file("b/n.json"),
        file("b/z/shard-2.tar", big),
        file("c/shard-3.tar", big),
    ]
    root = trees.build(objects.put, entries)

    def after(path: str, steps: int = 100, per_directory: int = 3) -> str | None:
        found = trees.next_file(objects.pages(), root, path, _large, steps, per_directory)
        return None if found is None else found.path

    def _large(entry: FileEntry) -> bool:
        return entry.size > 1

    assert after("a/shard-0.tar") == "a/shard-1.tar"
    assert after("a/shard-1.tar") == "b/z/shard-2.tar"  # b/labels passed over after 3
    assert after("a/shard-1.tar", per_directory=5) == "b/labels/4.bin"
    assert after("b/labels/1.json") == "b/labels/4.bin"  # in its own directory too
    assert after("b/z/shard-2.tar") == "c/shard-3.tar"
    assert after("c/shard-3.tar") is None
    # b, b/labels, three labels, b/n.json, b/z: 7 entries, then the shard is the 8th
    assert after("a/shard-1.tar", steps=7) is None
    assert after("a/shard-1.tar", steps=8) == "b/z/shard-2.tar"
    assert after("gone/x.tar") is None
