"""A ceiling for the mount benchmark: the fastest read-only filesystem pyfuse3 serves here.

artfs answers every LOOKUP, OPEN, READ and RELEASE with a Python coroutine on a trio loop, and
its file pages go through the kernel's FUSE page cache. This null filesystem keeps exactly that
path and drops everything artfs does on it: at start it reads a source tree entirely into memory
(attributes built once, each file's bytes held whole), then answers every request with a dict
look-up or a memoryview slice, never awaiting anything (and ENODATA for every extended
attribute, as artfs answers the names ``ls -l`` asks for). It mounts with artfsd's options, the
entry and attribute timeouts and ``keep_cache`` of artfs's immutable version nodes, and the same
read-ahead, so what a workload reaches through it is what any pyfuse3 filesystem can reach on
this machine. An artfs figure close to this one is bound by pyfuse3 and the kernel, not by artfs.

    python -m bench.ceiling SOURCE MOUNTPOINT [--take-queued]

writes ``ready`` to stdout once the mount answers, and serves until it is unmounted or gets
SIGTERM or SIGINT (then it unmounts itself). It serves requests as stock pyfuse3 does: each
waits for a pass of trio's scheduler. ``--take-queued`` gives it artfsd's request loop instead
(``artfsd.session``), to see what that loop alone is worth.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pyfuse3
import trio
from artfsd import session
from artfsd.main import READ_AHEAD_KIB, mount_options, raise_read_ahead

from artfs.vfs import IMMUTABLE_TIMEOUT

FSNAME = "pyfuse3-ceiling"
STATFS_BLOCK = 4096
NO_CONTENT = memoryview(b"")  # what a directory holds


@dataclass(slots=True)
class Node:
    """One file or directory: its attributes as the kernel gets them, and what it holds."""

    attr: pyfuse3.EntryAttributes
    content: memoryview = NO_CONTENT
    children: dict[bytes, int] = field(default_factory=dict)  # name -> inode
    listing: list[tuple[bytes, int]] = field(default_factory=list)  # (name, inode), by name


def entry_attributes(ino: int, st: os.stat_result) -> pyfuse3.EntryAttributes:
    """What artfs answers for a version node: no write bits, hour-long timeouts, one time."""
    out = pyfuse3.EntryAttributes()
    out.st_ino = ino
    out.entry_timeout = out.attr_timeout = IMMUTABLE_TIMEOUT
    out.st_mode = st.st_mode & ~0o222
    out.st_nlink = 2 if stat.S_ISDIR(st.st_mode) else 1
    out.st_uid, out.st_gid = st.st_uid, st.st_gid
    out.st_size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    out.st_blksize = 128 << 10
    out.st_blocks = (out.st_size + 511) // 512
    out.st_atime_ns = out.st_mtime_ns = out.st_ctime_ns = st.st_mtime_ns
    return out


def load_tree(source: Path) -> dict[int, Node]:
    """Every directory and regular file under ``source`` by inode; the root is ROOT_INODE."""
    nodes: dict[int, Node] = {}
    _load(os.fsencode(source), os.stat(source), nodes)
    return nodes


def _load(path: bytes, st: os.stat_result, nodes: dict[int, Node]) -> int:
    ino = pyfuse3.ROOT_INODE + len(nodes)
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as file:
            nodes[ino] = Node(entry_attributes(ino, st), memoryview(file.read()))
        return ino
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{os.fsdecode(path)}: only directories and regular files are served")
    node = nodes[ino] = Node(entry_attributes(ino, st))
    with os.scandir(path) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        child = _load(entry.path, entry.stat(follow_symlinks=False), nodes)
        node.children[entry.name] = child
        node.listing.append((entry.name, child))
    return ino


class NullOperations(pyfuse3.Operations):
    """Read-only answers from memory; a file or directory handle is its inode."""

    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, nodes: dict[int, Node]) -> None:
        super().__init__()
        self.nodes = nodes
        self.total_bytes = sum(len(node.content) for node in nodes.values())

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        child = self.nodes[parent_inode].children.get(name)
        if child is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.nodes[child].attr

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.nodes[inode].attr

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        listing = self.nodes[fh].listing
        for position in range(start_id, len(listing)):
            name, child = listing[position]
            if not pyfuse3.readdir_reply(token, name, self.nodes[child].attr, position + 1):
                return

    async def releasedir(self, fh: int) -> None:
        pass

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> memoryview:  # type: ignore[override]
        # pyfuse3 replies from any buffer, as artfs's reads rely on: a view, no copy.
        return self.nodes[fh].content[off : off + size]

    async def release(self, fh: int) -> None:
        pass

    # Extended attributes as artfs answers a name it does not have: ENODATA, a round trip each.
    # Answering ENOSYS instead would make the kernel stop asking (no xattrs on the whole
    # mount), but artfs serves user.artfs.*, so every `ls -l` of it costs two GETXATTR round
    # trips per file (security.selinux, system.posix_acl_access); the floor pays them too.
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        raise pyfuse3.FUSEError(errno.ENODATA)

    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return []

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        out = pyfuse3.StatvfsData()
        out.f_bsize = out.f_frsize = STATFS_BLOCK
        out.f_blocks = -(-self.total_bytes // STATFS_BLOCK)
        out.f_files = len(self.nodes)
        out.f_namemax = 255
        return out


def ceiling_options() -> set[str]:
    """artfsd's mount options under a name of its own, so nothing takes this mount for artfs."""
    names = ("fsname=", "subtype=")
    options = {option for option in mount_options(False) if not option.startswith(names)}
    return options | {f"fsname={FSNAME}", f"subtype={FSNAME}"}


async def announce_ready(mountpoint: Path) -> None:
    # The stat needs the loop to answer INIT and GETATTR: once it returns, the mount serves.
    root = await trio.to_thread.run_sync(os.stat, mountpoint)
    raise_read_ahead(root.st_dev, READ_AHEAD_KIB)
    print("ready", flush=True)


async def stop_on_signal() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            pyfuse3.terminate()
            return


async def serve(mountpoint: Path) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signal)
        nursery.start_soon(announce_ready, mountpoint)
        await session.serve()  # as artfsd
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("source", type=Path, help="directory tree to serve from memory")
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument(
        "--take-queued", action="store_true", help="take queued requests as artfsd does"
    )
    args = parser.parse_args(argv)
    operations = NullOperations(load_tree(args.source))
    pyfuse3.init(operations, str(args.mountpoint), ceiling_options())
    if args.take_queued:
        session.take_queued_requests()
    try:
        trio.run(serve, args.mountpoint)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
