"""The pyfuse3 ``Operations`` for artfs: translation only.

Inodes, file handles and request contexts become :class:`~artfs.vfs.Vfs` calls; domain errors
become ``FUSEError`` through :func:`errno_for`'s one table (``getxattr`` takes its answer for a
name no node has from it, without making the error). Chunk loads (pack reads,
decompression, hashing) run in worker threads under one capacity limiter: a read's own chunks
in its own hop, read-ahead up to ``_LOADS_PER_HOP`` chunks per hop; what is already cached is
answered on the event loop without a thread hop.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import pyfuse3
import trio

from artfs.errors import ArtfsError, CorruptData, InvalidName, NotFound, StoreError
from artfs.fs.backing import AttrChange
from artfs.fs.chunkloader import LoaderProcess
from artfs.fs.errors import (
    BadRequest,
    CommitBusy,
    CommitFailed,
    CommitInvalid,
    CrossDevice,
    IsADirectory,
    NoAttribute,
    NotADirectory,
    NotASymlink,
    NotSupported,
    ReadOnly,
)
from artfs.fs.listings import DEFAULT_LISTING_ENTRIES, Listing
from artfs.fs.staging_files import STAGED_FH_BASE
from artfs.store.trees import KIND_MASK
from artfs.vfs import (
    BLOCK_SIZE,
    IMMUTABLE_TIMEOUT,
    READ_ONLY_BITS,
    SHOWN_KINDS,
    Attr,
    FileReader,
    Inode,
    ListedRow,
    ReadBuffer,
    Vfs,
    unknown_kind,
)
from artfsd.ahead import RepliesAhead
from artfsd.loads import ChunkLoads
from artfsd.pagestores import PageStores

log = logging.getLogger("artfsd")

P = ParamSpec("P")
# Read failures are logged once per file; this many files are remembered (then forgotten).
_FAILED_FILES_REMEMBERED = 10_000
_MAX_READ = 1 << 20
# Tasks loading one file's read-ahead at once, in worker threads. Two keep both cores of the
# bench machine busy beside the read's own load; more only make the chunk wanted next wait
# longer (and hold limiter tokens a read may be waiting for).
_READAHEAD_LOADERS = 2
# Chunks a loader takes from the queue per worker-thread hop (while it has any). A hop per
# chunk cost the daemon ~10% of its CPU in hand-overs between the loop and the threads on a
# sequential read of large files; the queue's order is kept, as each is taken from its front
# when the one before is loaded (issue 17, seventh pass). A hop holds its limiter token
# throughout: one that starts while anything waits for a token loads a single chunk, and a
# read that comes during a longer hop waits for its rest (three chunk loads at most) only if
# every other token is taken too (two files read ahead at once with the default four).
_LOADS_PER_HOP = 4
T = TypeVar("T")

_ERRNO: tuple[tuple[type[BaseException], int], ...] = (
    (NoAttribute, errno.ENODATA),
    (NotFound, errno.ENOENT),
    (ReadOnly, errno.EROFS),
    (NotADirectory, errno.ENOTDIR),
    (IsADirectory, errno.EISDIR),
    (NotASymlink, errno.EINVAL),
    (CrossDevice, errno.EXDEV),
    (BadRequest, errno.EINVAL),
    (NotSupported, errno.EOPNOTSUPP),
    (CommitBusy, errno.EBUSY),
    (CommitInvalid, errno.EINVAL),
    (CommitFailed, errno.EIO),
    (InvalidName, errno.ENOENT),
    (CorruptData, errno.EIO),
)

_NO_ATTRIBUTE = dict(_ERRNO)[NoAttribute]  # getxattr's answer without the error (see there)


def errno_for(exc: BaseException) -> int:
    """The one mapping from a domain error to what a filesystem caller sees."""
    for kind, code in _ERRNO:
        if isinstance(exc, kind):
            return code
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO


def translated(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run an operation; domain errors become FUSEError, bugs are logged and become EIO."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except CorruptData as exc:
            log.error("refusing corrupt data: %s", exc)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except (ArtfsError, OSError) as exc:
            raise pyfuse3.FUSEError(errno_for(exc)) from None
        except Exception:
            log.exception("%s failed", method.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


def entry_attributes(attr: Attr) -> pyfuse3.EntryAttributes:
    out = pyfuse3.EntryAttributes()
    out.st_ino = attr.ino
    out.generation = 0
    out.entry_timeout = attr.timeout
    out.attr_timeout = attr.timeout
    out.st_mode = attr.mode
    out.st_nlink = attr.nlink
    out.st_uid = attr.uid
    out.st_gid = attr.gid
    out.st_rdev = attr.rdev
    out.st_size = attr.size
    out.st_blksize = BLOCK_SIZE
    out.st_blocks = attr.blocks
    out.st_atime_ns = attr.atime_ns if attr.atime_ns >= 0 else attr.mtime_ns
    out.st_mtime_ns = attr.mtime_ns
    out.st_ctime_ns = attr.ctime_ns if attr.ctime_ns >= 0 else attr.mtime_ns
    return out


def fill_listed(reply: pyfuse3.EntryAttributes, head: tuple[int, int, int, int], ino: int) -> None:
    """Fill ``reply`` for a version's child of ``head`` (``Listing.heads``) numbered ``ino``,
    as SHOWN_KINDS says (KeyError: a kind it does not know)."""
    flags, mode, size, mtime_ns = head
    type_bits, reply.st_nlink, size_mask = SHOWN_KINDS[flags & KIND_MASK]
    reply.st_ino = ino
    reply.st_mode = type_bits | mode & READ_ONLY_BITS
    reply.st_size = size = size & size_mask
    reply.st_blocks = (size + 511) // 512
    reply.st_atime_ns = reply.st_mtime_ns = reply.st_ctime_ns = mtime_ns


def fill_child(reply: pyfuse3.EntryAttributes, listing: Listing, base: int, index: int) -> None:
    """:func:`fill_listed` for child ``index`` of ``listing``, numbered from ``base``."""
    fill_listed(reply, listing.head(index), base + index)


class Replies:
    """The replies made for attributes that never change (nodes inside versions), by the
    :class:`Attr` they were made from; bounded: emptied when it holds ``limit``.

    A version's nodes keep their attributes (one object each, see ``artfs.fs.listings``), and
    a walk sends them again on every ``readdir`` (the kernel never caches a listing): building
    a ``pyfuse3.EntryAttributes`` was ~1.3 us of the ~3 us a warm entry cost the daemon.
    pyfuse3 copies a reply into the kernel's buffer, so one object serves every request.
    """

    def __init__(self, limit: int = DEFAULT_LISTING_ENTRIES) -> None:
        self.limit = limit
        # id(attr) -> (attr, reply): the attr is held, so its id names no other object.
        self._made: dict[int, tuple[Attr, pyfuse3.EntryAttributes]] = {}

    def __len__(self) -> int:
        return len(self._made)

    def of(self, attr: Attr) -> pyfuse3.EntryAttributes:
        if attr.timeout != IMMUTABLE_TIMEOUT:
            return entry_attributes(attr)  # may change: made afresh, not kept
        kept = self._made.get(id(attr))
        if kept is not None:
            return kept[1]
        if len(self._made) >= self.limit:
            self._made.clear()
        reply = self._made[id(attr)] = (attr, entry_attributes(attr))
        return reply[1]


def attr_change(attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields) -> AttrChange:
    return AttrChange(
        size=attr.st_size if fields.update_size else None,
        mode=attr.st_mode if fields.update_mode else None,
        uid=attr.st_uid if fields.update_uid else None,
        gid=attr.st_gid if fields.update_gid else None,
        atime_ns=attr.st_atime_ns if fields.update_atime else None,
        mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
    )


def invalidate_entries(entries: Sequence[tuple[int, bytes]]) -> None:
    """Make the kernel forget these (parent inode, name) entries; blocks until it has.

    Never call it on the event loop: the kernel waits for pending requests on the parent.
    """
    for parent, name in entries:
        try:
            pyfuse3.invalidate_entry(parent, name)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # ENOENT: the kernel did not cache it
                log.warning("cannot invalidate %r in inode %d: %s", name, parent, exc)


class ArtfsOperations(pyfuse3.Operations):
    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, vfs: Vfs, *, threads: int = 4) -> None:
        super().__init__()
        self.vfs = vfs
        self.limiter = trio.CapacityLimiter(threads)
        # Large files' pins at open (see open): threads of their own, so an open never waits
        # behind loads, copies up or fetches.
        self._pin_limiter = trio.CapacityLimiter(2)
        # Where read-ahead tasks run; set by the daemon once its nursery is open. Without one
        # (operations tests) reads simply do no read-ahead.
        self.nursery: trio.Nursery | None = None
        # Chunk loads by the loader process (see loads.py); None: every load is in threads.
        self.loads: ChunkLoads | None = None
        # The pages of files read at random handed to the kernel as they load (see
        # pagestores.py); with the loader, once pyfuse3 is mounted.
        self.page_stores = PageStores(pyfuse3.notify_store)  # type: ignore[arg-type]
        self.device: int | None = None  # the mount's device number, once it serves
        self._failed_files: set[bytes] = set()  # digests of files whose read failure was logged
        # Small files' content put into the kernel's page cache at open (see _store_in_kernel);
        # set by the daemon once pyfuse3 is mounted (notify_store needs its session).
        self._stores_pages = False
        # For reads served on the event loop; the largest read the kernel sends (libfuse asks
        # for 256 pages per request).
        self._scratch = bytearray(_MAX_READ)
        self._copy_ups = trio.Lock()  # base files copied up for writing (based staging)
        # Open files whose read-ahead is loading, by handle: a release drops what is queued.
        self._reading_ahead: dict[int, FileReader] = {}
        self.replies = Replies()
        # What a version's child is sent as by readdir, refilled per child (_readdir_listed):
        # its fixed fields are those of any version node's attributes.
        self._listed_attr = Attr(Inode(0), 0, 1, 0, 0, vfs.uid, vfs.gid, IMMUTABLE_TIMEOUT)
        self._listed_reply = entry_attributes(self._listed_attr)
        # Replies of version directories filled ahead; its task runs in the daemon's nursery.
        self.ahead = RepliesAhead(vfs, self._new_listed_reply, fill_child)

    # --- names and attributes -------------------------------------------------------------

    @translated
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        row = self.vfs.lookup_listed(parent_inode, name)
        if row is not None:  # a version's child: sent from its row, no node made yet
            # The one shared reply object: pyfuse3 copies it as this returns, so nothing may
            # be awaited between filling it and returning it.
            return self._listed_entry(row)
        return self.replies.of(self.vfs.lookup(parent_inode, name))

    @translated
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.replies.of(self.vfs.getattr(inode))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for inode, count in inode_list:
            self.vfs.forget(inode, count)

    @translated
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return self.vfs.readlink(inode)

    # --- directories ----------------------------------------------------------------------

    @translated
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return self.vfs.opendir(inode)

    @translated
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        listed = self.vfs.listed(fh)
        if listed is not None:
            self._readdir_listed(*listed, start_id, token)
            return
        entries = self.vfs.readdir(fh, start_id)
        try:
            for entry in entries:
                if not pyfuse3.readdir_reply(
                    token, entry.name, self.replies.of(entry.attr), entry.next_id
                ):
                    break
                self.vfs.remember(entry.node)
        finally:
            entries.close()  # type: ignore[attr-defined]

    def _readdir_listed(
        self, listing: Listing, base: int, start_id: int, token: pyfuse3.ReaddirToken
    ) -> None:
        """A version directory's children straight from their heads in its listing, numbered
        from ``base``, with no node, row or call into the tree per child; the kernel asks for
        a node by inode when it needs one. Each child goes as the object filled for it ahead
        (see artfsd.ahead) or else in the one reply object filled for it (pyfuse3 copies
        a reply into the kernel's buffer)."""
        names, send = listing.names, pyfuse3.readdir_reply
        index, end, full = start_id, len(names), False
        made = self.ahead.made_for(listing)
        if made:
            spare = self.ahead.spare
            while index < end and (reply := made.get(index)) is not None:
                if not send(token, names[index], reply, index + 1):
                    full = True
                    break
                del made[index]
                spare.append(reply)
                index += 1
        if not full:
            reply, fill = self._listed_reply, fill_listed
            try:
                for head in listing.heads(index):
                    fill(reply, head, base + index)
                    if not send(token, names[index], reply, index + 1):
                        break
                    index += 1
            except KeyError:
                raise unknown_kind(names[index]) from None
        # Counted once the loop is done: pyfuse3 hands the kernel the entries only when this
        # returns (an exception sends an error and none of them).
        self.vfs.remember_listed_range(listing, start_id, index)
        self.ahead.sent(listing, start_id, index)

    def _new_listed_reply(self) -> pyfuse3.EntryAttributes:
        """A reply object for version children, its fixed fields set (see artfsd.ahead)."""
        return entry_attributes(self._listed_attr)

    def _listed_entry(self, row: ListedRow) -> pyfuse3.EntryAttributes:
        """The one reply object for version children, filled from ``row``: pyfuse3 copies it
        into the kernel's buffer before this loop runs another request."""
        reply = self._listed_reply
        ino, mode, nlink, size, mtime_ns = row
        reply.st_ino = ino
        reply.st_mode = mode
        reply.st_nlink = nlink
        reply.st_size = size
        reply.st_blocks = (size + 511) // 512
        reply.st_atime_ns = reply.st_mtime_ns = reply.st_ctime_ns = mtime_ns
        return reply

    @translated
    async def releasedir(self, fh: int) -> None:
        listing = self.vfs.releasedir(fh)
        if listing is not None:
            self.ahead.drop(listing)

    # --- files ----------------------------------------------------------------------------

    @translated
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            self.vfs.check_writer(ctx.uid)
            await self._copy_up(inode, flags)
        entry = self.vfs.entry_to_prepare(inode, flags)
        if entry is not None and entry.is_reference:
            # Fetching and verifying a referenced file is network or disk work: off the loop.
            copy = await trio.to_thread.run_sync(
                self.vfs.store.reference_copy, entry, limiter=self.limiter
            )
            fh = self.vfs.open_reference(inode, flags, entry, copy, ctx.pid, uid=ctx.uid)
        else:
            pinned = None
            if entry is not None:  # one index get per chunk: thousands for a large checkpoint
                pins = await trio.to_thread.run_sync(
                    self.vfs.store.pin_chunks, entry.chunks, limiter=self._pin_limiter
                )
                pinned = (entry, pins)
            fh = self.vfs.open(inode, flags, ctx.pid, pinned, uid=ctx.uid)
        if fh >= STAGED_FH_BASE:
            keep_cache, direct_io = self.vfs.caching(fh)
            return pyfuse3.FileInfo(fh=fh, keep_cache=keep_cache, direct_io=direct_io)
        try:
            # Asked at every open, so that the node knows the kernel has its pages from now on
            # (a reopen reads nothing), also where pages cannot be stored.
            content = self.vfs.content_for_kernel(inode, fh, flags)
            if content is not None and self._stores_pages:
                self._store_in_kernel(inode, content)
        except BaseException:  # the kernel gets no handle, and will not release it
            self.vfs.release(fh)
            raise
        # Version files never change: the kernel may keep their pages across opens.
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    def enable_page_stores(self) -> None:
        """Put small files' content into the kernel's page cache as they are opened, and,
        with the loader process, the chunks of files read at random as they load; only once
        pyfuse3.init has mounted."""
        self._stores_pages = True
        if self.loads is not None:
            self.page_stores.start()

    def stop_page_stores(self) -> bool:
        """End the stores of pages (see pagestores.py): at a signal while the event loop
        still answers reads (in a worker thread), and again before the session closes, when
        no store may use it any more; False, logged, if one still waits for the kernel."""
        if self.page_stores.stop():
            return True
        log.warning("a store of pages into the kernel still waits for a page")
        return False

    def _store_in_kernel(self, inode: int, content: memoryview) -> None:
        """Put a small file's content into the kernel's page cache before its open is
        answered (FUSE_NOTIFY_STORE): its reads are then served by the kernel, with no read
        request, which is a round trip through this loop saved per file. A kernel that cannot
        (ENOSYS) is not asked again; another failure (the inode gone meanwhile) only means
        that the read comes here."""
        try:
            pyfuse3.notify_store(inode, 0, content)  # type: ignore[arg-type]  # any buffer
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                self._stores_pages = False

    async def _copy_up(self, inode: int, flags: int) -> None:
        """A base file opened for writing (or changed: chmod, touch, truncate, a hard link)
        in a based staging: its content is copied into the upper directory in a worker
        thread (chunk reads), one copy-up at a time, so a second opener finds it done."""
        if not self.vfs.copy_up_due(inode, flags):
            return
        async with self._copy_ups:
            if self.vfs.copy_up_due(inode, flags):
                await trio.to_thread.run_sync(self.vfs.copy_up, inode, limiter=self.limiter)

    @translated
    async def read(self, fh: int, off: int, size: int) -> ReadBuffer:  # type: ignore[override]
        # pyfuse3 replies from any buffer (PyObject_GetBuffer), not only bytes as its stub says.
        if fh >= STAGED_FH_BASE:
            based = self.vfs.base_reader(fh)  # a base file of a based staging
            if based is None:
                return self.vfs.read_other(fh, off, size)
            reader = based
        else:
            reader = self.vfs.reader(fh)
        held = reader.held
        if held is None and reader.keeps_own:  # a small file's first read (see load_own)
            held = reader.load_own()
        if held is not None:  # a small file held whole: a slice, nothing to load or plan
            return held[off : off + size]
        in_blocks = False
        if self.nursery is not None:
            # Before this read awaits anything: the next chunks load while this one does.
            planned = reader.plan(off, size)
            in_blocks = reader.in_blocks
            if reader.keeps_all and self.page_stores.running:
                inode = self.vfs.page_cache_inode(fh)  # None for a staged handle too
                if inode is not None:
                    self.page_stores.watch(fh, inode, reader)
            if self.loads is not None and self.loads.alive:
                if planned:
                    self.loads.read_ahead(fh, reader, off, size)
                if reader.reached_end() and fh < STAGED_FH_BASE and self.loads.alive:
                    self.loads.follow(self.vfs.next_file_chunks(fh))
            elif planned:
                self._start_loaders(fh, reader)
        # Read on the event loop, a multi-chunk read is copied into one reused buffer: pyfuse3
        # replies from it before this loop runs another read.
        data = reader.read_cached(off, size, self._scratch)
        try:
            if data is None and reader.cheap(off, size):
                # Small chunks whose pack bytes are in the page cache: here, no thread hop.
                data = reader.read_inline(off, size, self._scratch)
            if data is None and in_blocks:
                # A read at random in large raw chunks: only the blocks it covers.
                data = await trio.to_thread.run_sync(
                    reader.read_blocks, off, size, limiter=self.limiter
                )
            if data is None and self.loads is not None:
                # Large chunks: loaded by the loader process, no thread hop.
                data = await self.loads.read(reader, off, size, self._scratch)
            if data is None:
                data = await trio.to_thread.run_sync(reader.read, off, size, limiter=self.limiter)
        except StoreError as exc:
            # A remote that cannot be reached: EIO for each read, one log line per file.
            self._log_once(reader, logging.ERROR, "%s", exc)
            raise
        return data

    def use_loader(self, loader: LoaderProcess, workers: int) -> None:
        """Send chunk loads to ``loader``, which said it is ready (``wait_ready``); run
        ``self.loads.serve`` in the nursery."""
        self.loads = ChunkLoads(
            loader, self.vfs.cache, workers, self._start_loaders, self.page_stores.landed
        )

    def _start_loaders(self, fh: int, reader: FileReader) -> None:
        """Up to ``_READAHEAD_LOADERS`` tasks loading ``reader``'s queued read-ahead."""
        assert self.nursery is not None
        self._reading_ahead[fh] = reader
        while reader.loaders < _READAHEAD_LOADERS:
            reader.loaders += 1
            self.nursery.start_soon(self._prefetch, fh, reader)

    async def _prefetch(self, fh: int, reader: FileReader) -> None:
        """Load ``reader``'s read-ahead queue, front first, up to ``_LOADS_PER_HOP`` chunks
        per worker-thread hop (one while anything waits for a limiter token); a failed chunk
        is logged (its read says why) and the next one loads."""
        try:
            while reader.ahead:
                count = 1 if self.limiter.statistics().tasks_waiting else _LOADS_PER_HOP
                try:
                    await trio.to_thread.run_sync(reader.fetch_some, count, limiter=self.limiter)
                except ArtfsError as exc:
                    failed = "read-ahead of %s failed: %s"
                    self._log_once(reader, logging.WARNING, failed, reader.entry.path, exc)
        finally:
            reader.loaders -= 1
            if not reader.loaders and self._reading_ahead.get(fh) is reader:
                del self._reading_ahead[fh]

    def _log_once(self, reader: FileReader, level: int, message: str, *args: object) -> None:
        """Log a read failure the first time it happens to a file's content (a remote that is
        gone fails every read of every uncached chunk: one line per file is enough)."""
        if reader.entry.digest in self._failed_files:
            return
        if len(self._failed_files) >= _FAILED_FILES_REMEMBERED:
            self._failed_files.clear()
        self._failed_files.add(reader.entry.digest)
        log.log(level, message, *args)

    @translated
    async def release(self, fh: int) -> None:
        loading = self._reading_ahead.pop(fh, None)
        if loading is not None:  # a closed file's queued read-ahead would load for nothing
            loading.drop_ahead()
        if self.loads is not None:
            self.loads.forget(fh)
        if fh >= STAGED_FH_BASE:
            self.vfs.release_other(fh)
            return
        self.page_stores.forget(fh, self.vfs.page_cache_inode(fh))
        self.vfs.release(fh)

    # --- extended attributes and statfs ---------------------------------------------------

    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        if self.vfs.lacks_xattr(inode, name):
            # `ls -l` asks every entry for two names artfs never has: answered here, with no
            # domain error made, raised and translated (2.0 -> 0.84 us a request in process; the
            # null filesystem's 0.5).
            raise pyfuse3.FUSEError(_NO_ATTRIBUTE)
        return await self._getxattr(inode, name)

    @translated
    async def _getxattr(self, inode: int, name: bytes) -> bytes:
        return self.vfs.getxattr(inode, name)

    @translated
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return [name.encode() for name in self.vfs.xattrs(inode)]

    @translated
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        found = self.vfs.statfs()
        out = pyfuse3.StatvfsData()
        out.f_bsize = found.block_size
        out.f_frsize = found.fragment_size
        out.f_blocks = found.blocks
        out.f_bfree = found.blocks_free
        out.f_bavail = found.blocks_available
        out.f_files = found.files
        out.f_ffree = found.files_free
        out.f_favail = found.files_available
        out.f_namemax = found.name_max
        return out

    # --- staging (writable), mkdir of projects and artifacts; versions answer EROFS -------

    @translated
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self.vfs.check_writer(ctx.uid)
        fh, attr = self.vfs.create_file(
            parent_inode, name, flags, mode, ctx.uid, ctx.gid, ctx.umask
        )
        return pyfuse3.FileInfo(fh=fh), entry_attributes(attr)

    @translated
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        written = self.vfs.write(fh, off, buf)
        control = self.vfs.commit_due(fh)
        if control is not None:
            # A commit chunks, hashes and fsyncs: seconds for big staging, off the loop.
            # The write that completed the options returns when it is done, with its error.
            try:
                await trio.to_thread.run_sync(self.vfs.commit_control, control)
            finally:
                # The commit removed files from staging and moved latest: drop what the
                # kernel cached before the write returns, so `echo > staging/f` right after
                # works on a fresh entry (the async variant raced it: ENOENT on create).
                # In a worker thread: the call blocks until related requests are answered.
                stale = self.vfs.stale_entries(control.project, control.name)
                await trio.to_thread.run_sync(invalidate_entries, stale)
        return written

    # No flush(): pyfuse3 answers ENOSYS and the kernel stops sending FLUSH on close().

    @translated
    async def fsync(self, fh: int, datasync: bool) -> None:
        fd = self.vfs.staged_fd(fh)
        if fd is not None:
            await trio.to_thread.run_sync(os.fdatasync if datasync else os.fsync, fd)

    @translated
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        self.vfs.check_writer(ctx.uid)
        change = attr_change(attr, fields)
        if change.size != 0:
            # chmod, touch or a truncation of a base file copies it up: off the loop, as an
            # open for writing does (a truncation to 0 copies nothing).
            await self._copy_up(inode, os.O_WRONLY)
        return entry_attributes(self.vfs.setattr(inode, change, fh))

    @translated
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self.vfs.check_writer(ctx.uid)
        attr = self.vfs.mkdir(parent_inode, name, mode, ctx.uid, ctx.gid, ctx.umask)
        return entry_attributes(attr)

    @translated
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self.vfs.check_writer(ctx.uid)
        attr = self.vfs.mknod(parent_inode, name, mode, rdev, ctx.uid, ctx.gid, ctx.umask)
        return entry_attributes(attr)

    @translated
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self.vfs.check_writer(ctx.uid)
        return entry_attributes(self.vfs.symlink(parent_inode, name, target, ctx.uid, ctx.gid))

    @translated
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.vfs.check_writer(ctx.uid)
        self.vfs.unlink(parent_inode, name)

    @translated
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.vfs.check_writer(ctx.uid)
        self.vfs.unlink(parent_inode, name, directory=True)

    @translated
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        self.vfs.check_writer(ctx.uid)
        self.vfs.rename(parent_inode_old, name_old, parent_inode_new, name_new, flags)

    @translated
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self.vfs.check_writer(ctx.uid)
        await self._copy_up(inode, os.O_WRONLY)  # a hard link to a base file copies it up
        return entry_attributes(self.vfs.link(inode, new_parent_inode, new_name))

    @translated
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        self.vfs.refuse_change(inode, "an extended attribute")

    @translated
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.vfs.refuse_change(inode, "an extended attribute")
