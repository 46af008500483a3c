"""Cached listings of versions, without a kernel: what lookup and readdir answer from them,
and that they stay right when versions are deleted, collected and new ones committed."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyfuse3
import pytest
import trio
import trio.testing
from artfsd import ahead
from artfsd.operations import ArtfsOperations

from artfs.errors import NotFound
from artfs.fs.errors import NoAttribute
from artfs.fs.listings import Listing, ListingCache, ListingKey
from artfs.fs.nodes import Kind, Node, NodeKey, UsageNames, entry_base
from artfs.names import ArtifactName, Ref
from artfs.store import Store, catalog
from artfs.store.catalog import VersionRecord
from artfs.store.gc import collect
from artfs.store.trees import KIND_MASK
from artfs.vfs import READ_ONLY_BITS, ROOT_INODE, SHOWN_KINDS, ListedRow, Vfs
from tests.mount.mountutil import put


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def walk_to(vfs: Vfs, path: str) -> int:
    ino = ROOT_INODE
    for part in path.split("/"):
        ino = vfs.lookup(ino, part.encode()).ino
    return ino


def names_in(vfs: Vfs, ino: int, start: int = 0) -> list[bytes]:
    fh = vfs.opendir(ino)
    try:
        return [entry.name for entry in vfs.readdir(fh, start)]
    finally:
        vfs.releasedir(fh)


def shown_rows(listing: Listing, base: int) -> list[ListedRow]:
    """What the daemon's readdir sends of each child of ``listing`` (numbered from ``base``):
    its heads as SHOWN_KINDS says."""
    rows = []
    for index, (flags, mode, size, mtime_ns) in enumerate(listing.heads()):
        type_bits, nlink, size_mask = SHOWN_KINDS[flags & KIND_MASK]
        shown_mode = type_bits | mode & READ_ONLY_BITS
        rows.append((base + index, shown_mode, nlink, size & size_mask, mtime_ns))
    return rows


def open_listed(vfs: Vfs, ino: int) -> tuple[int, Listing, list[ListedRow]]:
    """A handle on version directory ``ino``, its listing and what readdir shows of it."""
    fh = vfs.opendir(ino)
    listed = vfs.listed(fh)
    assert listed is not None
    listing, base = listed
    return fh, listing, shown_rows(listing, base)


def read(vfs: Vfs, ino: int) -> bytes:
    fh = vfs.open(ino, os.O_RDONLY)
    try:
        return bytes(vfs.reader(fh).read(0, 1 << 20))
    finally:
        vfs.release(fh)


FILES = {f"d/{i:03d}.bin": bytes([i]) * (100 + i) for i in range(40)} | {"top.txt": b"top\n"}


def test_lookup_and_readdir_agree_with_the_version_from_one_listing(tmp_path: Path) -> None:
    put(tmp_path / "home", tree(tmp_path / "src", FILES), "proj/set")
    with Store.open(tmp_path / "home") as store:
        vfs = Vfs.create(store, lineage=False)
        d = walk_to(vfs, "proj/set/v0/d")
        listed = names_in(vfs, d)
        assert listed == sorted(n.split("/")[1].encode() for n in FILES if n.startswith("d/"))
        assert names_in(vfs, d, 35) == listed[35:]  # a seekdir to any position
        for name in listed:
            attr = vfs.lookup(d, name)
            assert attr.size == len(FILES[f"d/{name.decode()}"])
            assert read(vfs, attr.ino) == FILES[f"d/{name.decode()}"]
        with pytest.raises(NotFound):
            vfs.lookup(d, b"missing.bin")
        # Both directories of the version were read once each, whatever was asked.
        assert vfs.listings.entries == 2 + 40  # v0: d and top.txt; d: its 40 files


def test_listed_rows_are_what_a_node_of_each_child_shows(tmp_path: Path) -> None:
    """What readdir shows (from entry heads, no node per child) matches the attributes and
    inode numbers that looking each child up gives, for files and directories."""
    files = FILES | {"d/sub/deep.txt": b"deep\n", "e/x.txt": b"x"}
    src = tree(tmp_path / "src", files)
    os.chmod(src / "top.txt", 0o751)
    put(tmp_path / "home", src, "proj/set")
    with Store.open(tmp_path / "home") as store:
        vfs = Vfs.create(store, lineage=False)
        for directory in ("proj/set/v0", "proj/set/v0/d"):
            ino = walk_to(vfs, directory)
            fh, listing, rows = open_listed(vfs, ino)
            vfs.releasedir(fh)
            assert len(rows) == len(listing.names) > 2
            for name, (row_ino, mode, nlink, size, mtime_ns) in zip(
                listing.names, rows, strict=True
            ):
                assert vfs.lookup_listed(ino, name) == (row_ino, mode, nlink, size, mtime_ns)
                attr = vfs.lookup(ino, name)
                assert (row_ino, mode, nlink, size, mtime_ns) == (
                    attr.ino,
                    attr.mode,
                    attr.nlink,
                    attr.size,
                    attr.mtime_ns,
                )
        top = vfs.lookup(walk_to(vfs, "proj/set/v0"), b"top.txt")
        assert top.mode & 0o777 == 0o551  # read-only: the write bits dropped
        with pytest.raises(NotFound):
            vfs.lookup_listed(walk_to(vfs, "proj/set/v0"), b"missing.txt")
        assert vfs.lookup_listed(walk_to(vfs, "proj"), b"set") is None  # not in a version
        fh = vfs.opendir(walk_to(vfs, "proj/set"))
        assert vfs.listed(fh) is None  # not a version's directory: readdir lists it
        vfs.releasedir(fh)


@contextmanager
def d_listed(
    tmp_path: Path,
) -> Iterator[tuple[Vfs, int, int, int, Listing, list[ListedRow]]]:
    """FILES put as proj/set, and a tree over it with ``v0/d`` open and listed: (the tree, d's
    inode, the node count before the listing, the handle, d's listing and rows)."""
    put(tmp_path / "home", tree(tmp_path / "src", FILES), "proj/set")
    with Store.open(tmp_path / "home") as store:
        vfs = Vfs.create(store, lineage=False)
        d = walk_to(vfs, "proj/set/v0/d")
        before = vfs.node_count
        yield (vfs, d, before, *open_listed(vfs, d))


def test_children_sent_by_readdir_are_counted_without_nodes_until_used(
    tmp_path: Path,
) -> None:
    """A child readdir passed on is held by the kernel with no node made; the first request
    for its inode makes the node with every reference counted, and forgetting them all
    leaves neither the node nor the listed child behind."""
    with d_listed(tmp_path) as (vfs, d, before, fh, listing, rows):
        for _ in range(2):  # two walks, as the kernel counts them
            for row in rows:
                vfs.remember_listed(listing, row[0])
        vfs.releasedir(fh)
        assert vfs.node_count == before + len(rows)
        first, second = rows[0][0], rows[1][0]
        assert read(vfs, first) == FILES["d/000.bin"]  # its node made on first use
        assert vfs.lookup(d, listing.names[1]).ino == second  # a lookup counts a third
        assert vfs.lookup_listed(d, listing.names[2]) == rows[2]  # and one from its row
        vfs.forget(rows[2][0], 1)
        vfs.forget(first, 1)
        assert read(vfs, first) == FILES["d/000.bin"]  # one reference left
        vfs.forget(first, 1)
        vfs.forget(second, 3)
        for index, row in enumerate(rows[2:], 2):
            vfs.forget(row[0], 1)
            assert vfs.getattr(row[0]).size == len(FILES[f"d/{index:03d}.bin"])
            vfs.forget(row[0], 1)
        assert vfs.node_count == before
        for ino in (first, second, rows[-1][0]):
            with pytest.raises(NotFound):
                vfs.getattr(ino)


def walk_listed(vfs: Vfs, ino: int) -> tuple[Listing, list[ListedRow]]:
    """One readdir pass over a version directory as the daemon makes it: every child sent
    from its row and counted as the kernel's reference."""
    fh, listing, rows = open_listed(vfs, ino)
    vfs.releasedir(fh)
    vfs.remember_listed_range(listing, 0, len(rows))
    return listing, rows


@pytest.mark.parametrize("by", ["range", "child"])
def test_a_readdir_range_counts_what_one_remember_per_child_counts(tmp_path: Path, by: str) -> None:
    """The counts a readdir's range adds (in bulk when the kernel holds none of them, child
    by child otherwise) are those of one remember per child: a node held before, children
    sent twice and once are each forgotten after exactly their references."""
    with d_listed(tmp_path) as (vfs, d, before, fh, listing, rows):
        assert vfs.lookup(d, listing.names[5]).ino == rows[5][0]  # held before any readdir

        def send(start: int, stop: int) -> None:
            if by == "range":
                vfs.remember_listed_range(listing, start, stop)
            else:
                for index in range(start, stop):
                    vfs.remember_listed(listing, rows[index][0])

        send(20, 40)  # none held yet
        send(0, 20)  # one held as a node
        send(10, 40)  # all held, as listed children
        vfs.releasedir(fh)
        assert vfs.node_count == before + len(rows)  # each child in one table, not both
        held = []
        for row in rows:
            count = 0
            while True:
                try:
                    vfs.getattr(row[0])
                except NotFound:
                    break
                vfs.forget(row[0], 1)
                count += 1
            held.append(count)
        assert held == [1] * 5 + [2] + [1] * 4 + [2] * 30
        assert vfs.node_count == before


def test_listed_counts_survive_eviction_and_too_large_directories(tmp_path: Path) -> None:
    """A listing evicted and read again is a new object; the kernel's references counted on
    the old one still count, wherever the next one comes from (a lookup through the new
    listing, a node made on first use, a directory over the whole budget answered through the
    index); forgetting them all leaves nothing behind."""
    files = FILES | {f"e/{i:03d}.txt": b"e" for i in range(30)}
    put(tmp_path / "home", tree(tmp_path / "src", files), "proj/set")
    with Store.open(tmp_path / "home") as store:
        vfs = Vfs.create(store, lineage=False)
        vfs.listings = ListingCache(budget_entries=45)  # d (40) or e (30), not both
        d, e = walk_to(vfs, "proj/set/v0/d"), walk_to(vfs, "proj/set/v0/e")
        before = vfs.node_count
        first, rows = walk_listed(vfs, d)
        walk_listed(vfs, e)  # evicts d's listing
        again, rows_again = walk_listed(vfs, d)
        assert again is not first and rows_again == rows
        assert vfs.lookup_listed(d, again.names[0]) == rows[0]
        assert vfs.getattr(rows[0][0]).ino == rows[0][0]  # its node made: 3 references
        for row in rows:
            vfs.forget(row[0], 2)
        vfs.forget(rows[0][0], 1)
        for row in walk_listed(vfs, e)[1]:
            vfs.forget(row[0], 2)
        assert vfs.node_count == before
        vfs.listings = ListingCache(budget_entries=10)  # d is now over the whole budget
        listing, rows = walk_listed(vfs, d)
        assert vfs.lookup_listed(d, listing.names[1]) is None  # answered through the index
        assert vfs.lookup(d, listing.names[1]).ino == rows[1][0]
        for row in rows:
            vfs.forget(row[0], 1)
        vfs.forget(rows[1][0], 1)
        assert vfs.node_count == before
        with pytest.raises(NotFound):
            vfs.getattr(rows[1][0])


def test_deleted_version_drops_its_listings_and_a_new_version_lists_its_own_files(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    put(home, tree(tmp_path / "a", {"x/old.txt": b"old\n", "x/both.txt": b"same\n"}), "p/art")
    with Store.open(home) as store:
        vfs = Vfs.create(store, lineage=False)
        x = walk_to(vfs, "p/art/v0/x")
        assert names_in(vfs, x) == [b"both.txt", b"old.txt"]
        store.delete(Ref.parse("p/art:v0"), force=True)
        collect(store)  # v0's own chunks are gone
        stale = vfs.deleted_versions()
        art = walk_to(vfs, "p/art")
        assert (art, b"v0") in stale
        assert vfs.listings.entries == 0  # v0's listings went with it
        with pytest.raises(NotFound):
            vfs.lookup(art, b"v0")
        store.put(
            tree(tmp_path / "b", {"x/new.txt": b"new\n", "x/both.txt": b"same\n"}),
            ArtifactName("p", "art"),
        )
        x1 = walk_to(vfs, "p/art/v1/x")
        assert names_in(vfs, x1) == [b"both.txt", b"new.txt"]
        assert read(vfs, vfs.lookup(x1, b"new.txt").ino) == b"new\n"
        assert read(vfs, vfs.lookup(x1, b"both.txt").ino) == b"same\n"
        with pytest.raises(NotFound):
            vfs.lookup(x1, b"old.txt")


def test_listing_cache_stays_within_its_budget_and_keys_recreated_versions_apart() -> None:
    cache = ListingCache(budget_entries=5)

    def listing(version: bytes, created: float, count: int) -> Listing:
        names = [f"{i}".encode() for i in range(count)]
        return Listing(ListingKey(version, created, ""), names, [b""] * count)

    cache.put(listing(b"v0", 1.0, 3))
    cache.put(listing(b"v1", 1.0, 3))  # over budget: v0's goes
    assert cache.get(ListingKey(b"v0", 1.0, "")) is None
    assert cache.get(ListingKey(b"v1", 1.0, "")) is not None
    assert cache.get(ListingKey(b"v1", 2.0, "")) is None  # the same number, made again
    cache.put(listing(b"v2", 1.0, 6))  # larger than the whole budget: not kept
    assert cache.get(ListingKey(b"v2", 1.0, "")) is None and cache.entries == 3
    assert cache.drop_version(b"v1") == 1 and cache.entries == 0


def test_xattrs_ls_asks_for_are_absent_and_artfs_ones_present(tmp_path: Path) -> None:
    put(tmp_path / "home", tree(tmp_path / "src", {"f.txt": b"f\n"}), "proj/set")
    with Store.open(tmp_path / "home") as store:
        vfs = Vfs.create(store, lineage=False)
        f = walk_to(vfs, "proj/set/v0/f.txt")
        for name in (b"security.selinux", b"system.posix_acl_access", b"user.other"):
            with pytest.raises(NoAttribute):
                vfs.getxattr(f, name)
        assert len(vfs.getxattr(f, b"user.artfs.digest")) == 64
        vfs.forget(f, 1)
        with pytest.raises(NotFound) as caught:  # the inode is gone: ENOENT, not ENODATA
            vfs.getxattr(f, b"security.selinux")
        assert not isinstance(caught.value, NoAttribute)


def test_the_daemon_answers_xattrs_of_listed_children_without_making_their_nodes(
    tmp_path: Path,
) -> None:
    """getxattr of a name outside ``user.artfs.`` (two per entry of ``ls -l``) is ENODATA for
    a child readdir passed on, with no node made for it; ENOENT for an inode not known; an
    artfs name is answered as before."""
    put(tmp_path / "home", tree(tmp_path / "src", FILES), "proj/set")
    with Store.open(tmp_path / "home") as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        vfs = ops.vfs
        d = walk_to(vfs, "proj/set/v0/d")
        fh, listing, rows = open_listed(vfs, d)
        vfs.remember_listed_range(listing, 0, len(rows))
        vfs.releasedir(fh)
        nodes = vfs.node_count
        child = rows[3][0]

        def errno_of(ino: int, name: bytes) -> int:
            with pytest.raises(pyfuse3.FUSEError) as caught:
                trio.run(ops.getxattr, ino, name, None)
            return caught.value.errno

        unknown = rows[-1][0] + 1000
        # Answered before any domain error (a listed child, a node's inode), or not.
        assert vfs.lacks_xattr(child, b"security.selinux") and vfs.lacks_xattr(d, b"user.x")
        assert not vfs.lacks_xattr(child, b"user.artfs.digest")
        assert not vfs.lacks_xattr(unknown, b"security.selinux")
        assert errno_of(child, b"security.selinux") == errno.ENODATA
        assert errno_of(child, b"system.posix_acl_access") == errno.ENODATA
        assert errno_of(d, b"security.selinux") == errno.ENODATA
        assert vfs.node_count == nodes and listing.children[3] is None  # no node made
        assert errno_of(child, b"user.artfs.nothing") == errno.ENODATA
        assert errno_of(unknown, b"security.selinux") == errno.ENOENT
        digest = trio.run(ops.getxattr, child, b"user.artfs.digest", None)
        assert digest == vfs.getxattr(child, b"user.artfs.digest") and len(digest) == 64


def test_directory_larger_than_the_listing_budget_lists_and_looks_up_right(
    tmp_path: Path,
) -> None:
    put(tmp_path / "home", tree(tmp_path / "src", FILES), "proj/set")
    with Store.open(tmp_path / "home") as store:
        vfs = Vfs.create(store, lineage=False)
        vfs.listings = ListingCache(budget_entries=10)  # d/ has 40 entries
        d = walk_to(vfs, "proj/set/v0/d")
        fh = vfs.opendir(d)
        try:
            batch = []
            for entry in vfs.readdir(fh, 0):  # resumed in batches of 7, as the kernel does
                batch.append(entry)
                if len(batch) == 7:
                    break
            listed = [e.name for e in batch] + [e.name for e in vfs.readdir(fh, 7)]
        finally:
            vfs.releasedir(fh)
        assert listed == sorted(n.split("/")[1].encode() for n in FILES if n.startswith("d/"))
        for name in listed[::5]:
            assert read(vfs, vfs.lookup(d, name).ino) == FILES[f"d/{name.decode()}"]
        with pytest.raises(NotFound):
            vfs.lookup(d, b"missing.bin")
        assert vfs.listings.entries <= 10  # d's listing was not kept


def test_entries_are_numbered_by_position_from_their_directory_base(tmp_path: Path) -> None:
    """A version's entries get base + position in their directory: what readdir's nodes and
    rows, a lookup, a lookup in a directory over the listing budget (counted through the
    index) and another mount's tree all give, every number distinct."""
    files = FILES | {"d/na\u00efve \u2603.txt": b"snow\n", "d/sub/deep.txt": b"deep\n"}
    put(tmp_path / "home", tree(tmp_path / "src", files), "proj/set")
    with Store.open(tmp_path / "home") as store:
        vfs = Vfs.create(store, lineage=False)
        seen: dict[int, str] = {}
        for path in ("proj/set/v0", "proj/set/v0/d", "proj/set/v0/d/sub"):
            directory = walk_to(vfs, path)
            node = vfs.node(directory)
            assert node.record is not None
            base = entry_base(node.record, node.key.path)
            fh = vfs.opendir(directory)
            try:
                nodes = [entry.node for entry in vfs.readdir(fh, 0)]
            finally:
                vfs.releasedir(fh)
            assert [n.ino for n in nodes] == list(range(base, base + len(nodes)))
            fh, listing, rows = open_listed(vfs, directory)
            vfs.releasedir(fh)
            assert [row[0] for row in rows] == [n.ino for n in nodes]
            for index, name in enumerate(listing.names):
                assert vfs.lookup(directory, name).ino == base + index
                seen[base + index] = f"{path}/{name.decode()}"
            other = Vfs.create(store, lineage=False)  # another mount, over the budget
            other.listings = ListingCache(budget_entries=1)
            other_dir = walk_to(other, path)
            assert names_in(other, other_dir) == listing.names
            other_node = other.node(other_dir)
            assert other.listings.too_large(other._listing_key(other_node)) == (len(nodes) > 1)
            for index, name in enumerate(listing.names):
                assert other.lookup(other_dir, name).ino == base + index
        assert len(seen) == 2 + 42 + 1  # v0: d, top.txt; d: 41 files and sub; sub: deep.txt
        with pytest.raises(ValueError, match="base"):
            nodes[0].key.inode()  # an entry's key alone does not say its number


def test_numbers_kept_across_releases_are_those_earlier_ones_gave() -> None:
    """A version's inode (the same across releases, so a kernel's or a tool's idea of a file
    stays true) is what the code before entries were numbered by position gave (its
    NodeKey.inode(), 82aaa8a); so is the key hash that named a version file in usage edges
    until issue 17's twenty-second pass."""
    file = NodeKey(Kind.ENTRY, "proj", "set", 3, path="d/a.bin")
    assert file.key_hash() == 1083848828576802735
    assert NodeKey(Kind.VERSION, "proj", "set", 3).inode() == 74728504116078766


def test_a_version_file_s_usage_name_is_its_inode_number() -> None:
    """What the daemon records for a file (counted once per run, so a name that changed
    across remounts would count a file again): the version's key and the file's inode
    number, which depends on the version and the path only."""
    record = VersionRecord("proj", "set", 3, "digest", "dataset", 0.0, 0, 2)
    names = UsageNames()
    base = entry_base(record, "d")
    for index, name in [(0, "a.bin"), (1, "b.bin"), (0, "a.bin")]:
        key = NodeKey(Kind.ENTRY, "proj", "set", 3, path=f"d/{name}")
        node = Node(key, record=record, known_ino=base + index)
        assert names.of(node) == (record.key, (base + index).to_bytes(8, "big"))
    assert base == 1738305474678057418  # pinned: the names stay the same across releases


def test_the_daemons_readdir_sends_what_lookup_answers_and_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's readdir of a version directory, its buffer filling after a few children
    each time (as the kernel's does): every child once, in order, with the inode, type,
    permissions, links, size, blocks and times a lookup of it answers."""
    files = FILES | {"d/sub/deep.txt": b"deep\n", "e/x.txt": b"x"}
    src = tree(tmp_path / "src", files)
    os.chmod(src / "top.txt", 0o751)
    put(tmp_path / "home", src, "proj/set")
    sent: list[tuple[bytes, int, int, int, int, int, int, int, int, int]] = []
    room = [0]

    def reply(token: object, name: bytes, attr: pyfuse3.EntryAttributes, next_id: int) -> bool:
        if not room[0]:
            return False
        room[0] -= 1
        times = (attr.st_atime_ns, attr.st_mtime_ns, attr.st_ctime_ns)
        shown = (attr.st_ino, attr.st_mode, attr.st_nlink, attr.st_size, attr.st_blocks)
        sent.append((name, *shown, *times, next_id))
        return True

    monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
    with Store.open(tmp_path / "home") as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        vfs = ops.vfs
        for directory in ("proj/set/v0", "proj/set/v0/d"):
            ino = walk_to(vfs, directory)
            fh = vfs.opendir(ino)
            sent.clear()
            start = 0
            while True:
                room[0] = 7
                trio.run(ops.readdir, fh, start, None)
                if not sent or sent[-1][-1] == start:
                    break
                start = sent[-1][-1]
            vfs.releasedir(fh)
            rel = directory.removeprefix("proj/set/v0").lstrip("/")
            below = [p.removeprefix(rel + "/") for p in files if not rel or p.startswith(rel + "/")]
            children = {p.split("/")[0] for p in below}
            assert [s[0] for s in sent] == sorted(c.encode() for c in children)
            assert [s[-1] for s in sent] == list(range(1, len(sent) + 1))
            for name, *shown, atime, mtime, ctime, _ in sent:
                attr = vfs.lookup(ino, name)
                assert shown == [attr.ino, attr.mode, attr.nlink, attr.size, attr.blocks]
                assert atime == mtime == ctime == attr.mtime_ns


AHEAD_FILES = (
    {f"a/{i:03d}.bin": bytes([i]) * (600 + i) for i in range(40)}
    | {f"b/{i:03d}.txt": b"b" * i for i in range(30)}
    | {"b/sub/deep.txt": b"deep\n", "top.txt": b"top\n"}
)


class _Sent:
    """``pyfuse3.readdir_reply`` for readdirs run without a kernel: room for ``room``
    children a reply, recording each child's fields and whether it went in the handler's one
    shared object (filled as it was sent) or in one filled ahead."""

    def __init__(self, ops: ArtfsOperations, room: int) -> None:
        self.ops, self.room, self.left = ops, room, 0
        self.children: list[tuple[bytes, int, int, int, int, int, int, int, int, int]] = []
        self.ahead: list[bool] = []

    def __call__(self, token: object, name: bytes, attr: pyfuse3.EntryAttributes, nid: int) -> bool:
        if not self.left:
            return False
        self.left -= 1
        times = (attr.st_atime_ns, attr.st_mtime_ns, attr.st_ctime_ns)
        shown = (attr.st_ino, attr.st_mode, attr.st_nlink, attr.st_size, attr.st_blocks)
        self.children.append((name, *shown, *times, nid))
        self.ahead.append(attr is not self.ops._listed_reply)
        return True

    async def read_dir(self, ino: int) -> list[bool]:
        """Every child of directory ``ino``, reply after reply, the filling task let run to
        its end between two (as it runs while the kernel takes a reply in); for each reply,
        whether all its children went in objects filled ahead."""
        fh, start, replies = self.ops.vfs.opendir(ino), 0, []
        self.children.clear()
        self.ahead.clear()
        while True:
            self.left = self.room
            await self.ops.readdir(fh, start, None)  # type: ignore[arg-type]
            await trio.testing.wait_all_tasks_blocked()
            if not self.children or self.children[-1][-1] == start:
                break
            replies.append(all(self.ahead[start:]))
            start = self.children[-1][-1]
        self.ops.vfs.releasedir(fh)
        return replies

    def check(self, ino: int) -> None:
        """The children sent are what lookups of them answer, each once, in order."""
        assert [c[-1] for c in self.children] == list(range(1, len(self.children) + 1))
        assert [c[0] for c in self.children] == sorted(c[0] for c in self.children)
        for name, *shown, atime, mtime, ctime, _ in self.children:
            attr = self.ops.vfs.lookup(ino, name)
            assert shown == [attr.ino, attr.mode, attr.nlink, attr.size, attr.blocks]
            assert atime == mtime == ctime == attr.mtime_ns


def test_a_directory_s_next_replies_and_its_child_directories_are_filled_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the daemon's filling task running between requests (artfsd.ahead): a
    directory's replies after its first go in objects filled ahead, a directory whose parent
    was listed has even its first one filled and its listing read ahead, and every child
    goes once, in order, as a lookup of it answers, filled ahead or not."""
    src = tree(tmp_path / "src", AHEAD_FILES)
    os.chmod(src / "a" / "007.bin", 0o751)
    put(tmp_path / "home", src, "proj/set")
    with Store.open(tmp_path / "home") as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        vfs, sent = ops.vfs, _Sent(ops, room=7)
        monkeypatch.setattr(pyfuse3, "readdir_reply", sent)

        async def walk() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ops.ahead.run)
                a = walk_to(vfs, "proj/set/v0/a")  # its parent never listed
                assert await sent.read_dir(a) == [False] + [True] * 5
                sent.check(a)
                assert len(sent.children) == 40
                v0 = walk_to(vfs, "proj/set/v0")
                assert await sent.read_dir(v0) == [False]  # a, b, top.txt: one reply
                fh = vfs.opendir(v0)
                listed = vfs.listed(fh)
                vfs.releasedir(fh)
                assert listed is not None
                key = listed[0].key
                b_listing = vfs.listings.get(ListingKey(key.version_key, key.created, "b"))
                assert b_listing is not None  # read ahead
                b = walk_to(vfs, "proj/set/v0/b")
                assert await sent.read_dir(b) == [True] * 5  # 31 children, 7 a reply
                sent.check(b)
                assert len(sent.children) == 31
                assert ops.ahead.made_for(b_listing) is None  # read to its end: none left
                assert ops.ahead.spare  # what was sent is filled again
                nursery.cancel_scope.cancel()

        trio.run(walk)


def test_objects_filled_ahead_stay_under_their_limit_and_go_with_their_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Directories whose reading stopped part way (``ls | head``) keep what was filled for
    them only until others need the room, the one touched least recently giving it up first
    (not the one being read), or until their handle is closed."""
    files = {f"{d}/{i:03d}": b"x" for d in "pqr" for i in range(100)}
    put(tmp_path / "home", tree(tmp_path / "src", files), "proj/set")
    monkeypatch.setattr(ahead, "STEP", 16)
    monkeypatch.setattr(ahead, "MADE_LIMIT", 96)
    with Store.open(tmp_path / "home") as store:
        ops = ArtfsOperations(Vfs.create(store, lineage=False))
        vfs, sent = ops.vfs, _Sent(ops, room=40)
        monkeypatch.setattr(pyfuse3, "readdir_reply", sent)

        async def reply(fh: int, start: int) -> Listing:
            sent.left = 40
            await ops.readdir(fh, start, None)  # type: ignore[arg-type]
            await trio.testing.wait_all_tasks_blocked()
            assert ops.ahead.made <= 96
            listed = vfs.listed(fh)
            assert listed is not None
            return listed[0]

        async def replies() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ops.ahead.run)
                fhs = [vfs.opendir(walk_to(vfs, f"proj/set/v0/{d}")) for d in "pqr"]
                p = await reply(fhs[0], 0)
                q = await reply(fhs[1], 0)
                assert sorted(ops.ahead.made_for(q) or ()) == list(range(40, 80))
                await reply(fhs[0], 40)  # p touched again: its last 20 filled
                assert sorted(ops.ahead.made_for(p) or ()) == list(range(80, 100))
                r = await reply(fhs[2], 0)  # 20 + 40 + 40 > 96: q gives way
                assert ops.ahead.made_for(q) is None
                assert sorted(ops.ahead.made_for(p) or ()) == list(range(80, 100))
                assert sorted(ops.ahead.made_for(r) or ()) == list(range(40, 80))
                spare = len(ops.ahead.spare)
                await ops.releasedir(fhs[2])
                assert ops.ahead.made_for(r) is None  # closed: given up
                assert len(ops.ahead.spare) == spare + 40  # to be filled again
                for fh in fhs[:2]:
                    await ops.releasedir(fh)
                assert ops.ahead.made == 0
                nursery.cancel_scope.cancel()

        trio.run(replies)


def test_a_listing_read_in_steps_is_the_one_read_at_once_unless_it_is_too_large(
    tmp_path: Path,
) -> None:
    """What the daemon reads ahead a tree page a step is the listing a readdir reads, and a
    directory larger than asked for is not read at all (its size from its top page)."""
    files = {f"d/{i:04d}": b"x" for i in range(3000)} | {"top.txt": b"top\n"}
    put(tmp_path / "home", tree(tmp_path / "src", files), "proj/set")
    with Store.open(tmp_path / "home") as store:
        record = store.versions(ArtifactName("proj", "set"))[0]
        key = ListingKey(record.key, record.created, "d")
        with store.index.read() as txn:
            whole = Listing.read(txn, record, key)
            sizes = [catalog.directory_size(txn, record, d) for d in ("", "d", "top.txt", "no")]
        assert sizes == [2, 3000, 0, 0]
        steps = Listing.read_in_steps(store.index, record, key, 3000)
        pages = 0
        while True:
            try:
                next(steps)
                pages += 1
            except StopIteration as done:
                stepped = done.value
                break
        assert pages > 1  # a page a step
        assert stepped is not None and stepped.names == whole.names
        assert list(stepped.heads()) == list(whole.heads())
        assert stepped.directories(0, 3000) == []
        too_large = Listing.read_in_steps(store.index, record, key, 2999)
        with pytest.raises(StopIteration) as done:
            next(too_large)
        assert done.value.value is None
