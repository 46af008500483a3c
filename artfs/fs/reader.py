"""Reading a version's files: a shared cache of verified chunks and one reader per open file.

Pure: no pyfuse3 here. A :class:`FileReader` serves byte ranges of one file from its chunks,
which a :class:`ChunkCache` holds decompressed and verified (a chunk enters the cache only after
its bytes hashed to its id), and plans read-ahead: a window ahead of a sequential reader, the
whole file for one read at random (see :meth:`FileReader.plan`). :func:`open_reader` makes one
for a stored file, a version's or a based staging's base file alike.
"""

from __future__ import annotations

import bisect
import mmap
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from artfs.errors import ArtfsError, CorruptData
from artfs.fs import direct
from artfs.store.chunkstore import ChunkLocation
from artfs.store.codec import Codec
from artfs.store.hashing import (
    BLOCK_DIGEST_SIZE,
    BLOCK_SIZE,
    ChunkId,
    block_matches,
    has_blocks,
)
from artfs.store.manifest import ChunkRef, FileEntry
from artfs.store.packs import pack_name
from artfs.store.repository import PinnedChunks, Store

DEFAULT_CACHE_BYTES = 256 << 20
# Read-ahead, in bytes of chunks ahead of a sequential reader: it starts at the first read
# and doubles per read up to the maximum (and at most a quarter of the chunk cache).
READAHEAD_START_BYTES = 4 << 20
MAX_READAHEAD_BYTES = 32 << 20
# A read this close to where the previous one ended still counts as sequential.
SEQUENTIAL_SLACK = 256 << 10
# A file read at random whose size is at most this (and a quarter of the chunk cache) has all
# its chunks loaded ahead: random 4 KiB page faults on a 16 MB mapping then find their chunks
# loaded, two at a time, instead of each waiting for its own whole chunk in turn (see
# docs/perf.md, "Random reads and the order of read-ahead").
RANDOM_READAHEAD_BYTES = 64 << 20
# A larger file read at random is planned whole too once its reader's seeks have landed in one
# of every this many of its chunks (they are spread over the file, and will come to most of
# it), if it fits in the chunk cache with an eighth of the cache to spare and its chunks are
# all in this store's packs: loaded while the reader reads, its chunks no longer load one at
# a time as each read waits for its own (a 200 MiB array read through numpy's mmap:
# docs/perf.md, "Twenty-fifth pass"). Else it loads per read. Seeks within two chunks (a
# header and one tensor of a large checkpoint) plan nothing.
CHUNKS_PER_SEEK_TO_PLAN_WHOLE = 16
# ... or sooner, once this many reads in a row have each been a seek into a chunk no earlier
# seek began in: a reader at random across the file, whose first eleven page faults on that
# 200 MiB array otherwise each waited for their own chunks, one after the other, the plan
# coming at the twelfth 50-90 ms into the pass (docs/perf.md, "Twenty-eighth pass"). A run in
# order between seeks (a tensor read through), a seek back into a chunk sought before or read
# first from the file's start (a header), or a read past the end starts the count again.
NEW_CHUNK_SEEKS_TO_PLAN_WHOLE = 3
# Seeks (reads that are not sequential) before a file counts as read at random: one is often a
# header or footer read. A file no larger than the read-ahead window's maximum whose first read
# is not at its start is planned whole at that read all the same: loading it costs no more
# than a sequential reader's window, and a reader through mmap waited a whole read for it
# (docs/perf.md, "Seventeenth pass"); not when a chunk of it is held only on a remote, which
# would fetch the file for one read. Only at this many seeks does it keep its chunks.
RANDOM_AFTER_SEEKS = 2
# A sequential reader drops a chunk from the cache once it has read this far past the chunk's
# end (see FileReader._drop_behind): the kernel keeps reads of up to 1 MiB in flight behind the
# newest one (its read-ahead), and those must still find their chunks.
DROP_BEHIND_BYTES = 4 << 20
# Chunks up to this size are loaded without a thread hop (see FileReader.cheap).
INLINE_LOAD_BYTES = 64 << 10
# A version file of more chunks has them pinned at open in a worker thread, not on the event
# loop (see Vfs.entry_to_prepare): an index get per chunk, ~3 us each with the index in the page
# cache (a 2 GiB file's 1,880 chunks: 5.5 ms; a cold index reads a page per get), which held up
# every other request. The hop costs the open itself more than 30-odd gets: a thread's start
# and its share of the GIL (that 2 GiB file's open: ~6.0 -> ~6.5 ms).
PIN_ON_LOOP_CHUNKS = 64


# --- the chunk cache --------------------------------------------------------------------------


# A chunk's verified bytes: loaded in this process, or a read-only view of the chunk arena the
# loader process wrote it into (see artfs.fs.chunkloader).
Chunk = bytes | memoryview


@dataclass
class _Loading:
    # Made by the first thread that waits for this load: most loads have no waiter, and an
    # Event (a Condition and a Lock) costs more to make than a small chunk's lookup.
    done: threading.Event | None = None
    data: Chunk | None = None
    error: BaseException | None = None


class ChunkCache:
    """A bounded LRU of verified, decompressed chunks shared by every open file.

    ``get`` blocks (run it in a worker thread); two threads wanting the same chunk load it once.
    ``peek`` never blocks and is safe on the event loop.
    """

    def __init__(self, load: Callable[[ChunkRef], bytes], budget_bytes: int) -> None:
        self._load = load
        self.budget_bytes = budget_bytes
        self._chunks: OrderedDict[bytes, Chunk] = OrderedDict()
        self._loading: dict[bytes, _Loading] = {}
        self._size = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    def __contains__(self, ref: ChunkRef) -> bool:
        return ref.chunk_id in self._chunks or ref.chunk_id in self._loading

    def peek(self, ref: ChunkRef) -> Chunk | None:
        with self._lock:
            data = self._chunks.get(ref.chunk_id)
            if data is not None:
                self._chunks.move_to_end(ref.chunk_id)
            return data

    def get(self, ref: ChunkRef, load: Callable[[ChunkRef], bytes] | None = None) -> Chunk:
        """The chunk, loaded with ``load`` (default: the cache's own) on a miss."""
        while True:
            with self._lock:
                data = self._chunks.get(ref.chunk_id)
                if data is not None:
                    self._chunks.move_to_end(ref.chunk_id)
                    return data
                loading = self._loading.get(ref.chunk_id)
                owner = loading is None
                if loading is None:
                    loading = self._loading[ref.chunk_id] = _Loading()
                elif loading.done is None:
                    loading.done = threading.Event()
                done = loading.done
            if owner:
                break
            assert done is not None
            done.wait()
            if loading.error is not None:
                raise loading.error
            if loading.data is not None:
                return loading.data
            # A claim settled without bytes (see settle): load it here after all.
        try:
            loading.data = (load or self._load)(ref)
        except BaseException as exc:
            loading.error = exc
            raise
        finally:
            with self._lock:
                del self._loading[ref.chunk_id]
                if loading.data is not None:
                    self._insert(ref.chunk_id, loading.data)
                done = loading.done  # a waiter that came after this cannot find the load
            if done is not None:
                done.set()
        return loading.data

    def claim(self, ref: ChunkRef) -> bool:
        """Take the load of ``ref`` for the caller, who ends it with :meth:`settle`; False when
        it is cached or being loaded. Meanwhile ``ref in cache`` holds and :meth:`get` waits
        for it."""
        with self._lock:
            if ref.chunk_id in self._chunks or ref.chunk_id in self._loading:
                return False
            self._loading[ref.chunk_id] = _Loading()
            return True

    def settle(self, ref: ChunkRef, data: Chunk | None) -> None:
        """End a :meth:`claim`: keep ``data`` (verified bytes of ``ref``), or, given None,
        leave the load to whoever wants the chunk next (a :meth:`get` waiting loads it)."""
        with self._lock:
            loading = self._loading.pop(ref.chunk_id)
            loading.data = data
            if data is not None:
                self._insert(ref.chunk_id, data)
            done = loading.done
        if done is not None:
            done.set()

    def discard(self, ref: ChunkRef) -> None:
        """Forget ``ref``'s bytes if they are cached (a load under way is left to finish)."""
        with self._lock:
            data = self._chunks.pop(ref.chunk_id, None)
            if data is not None:
                self._size -= len(data)

    def put(self, ref: ChunkRef, data: Chunk) -> None:
        """Keep ``data``, verified bytes of ``ref`` loaded by the caller."""
        with self._lock:
            self._insert(ref.chunk_id, data)

    def _insert(self, chunk_id: bytes, data: Chunk) -> None:
        if len(data) > self.budget_bytes:
            return
        if chunk_id not in self._chunks:
            self._size += len(data)
        self._chunks[chunk_id] = data
        while self._size > self.budget_bytes:
            _, evicted = self._chunks.popitem(last=False)
            self._size -= len(evicted)


class ChunkHolders:
    """Which open files hold each chunk, so a reader drops behind it only chunks no other open
    file holds. An open file is a key: a version file's inode (its handles share one kernel
    page cache, so they count once), minus the handle number of one opened ``O_DIRECT`` (it
    reads past that cache), or a staged handle's number (from ``STAGED_FH_BASE``, above every
    version inode). Event loop only; O(chunks) at a file's first handle."""

    def __init__(self) -> None:
        self._files: dict[int, tuple[int, frozenset[bytes]]] = {}  # key -> handles, chunk ids
        self._holders: Counter[bytes] = Counter()  # chunk id -> open files holding it

    def hold(self, file: int, chunks: Sequence[ChunkRef]) -> None:
        """A handle of open file ``file``, whose content is ``chunks``, was opened."""
        handles, ids = self._files.get(file, (0, frozenset()))
        if not handles:
            ids = frozenset(ref.chunk_id for ref in chunks)
            self._holders.update(ids)
        self._files[file] = (handles + 1, ids)

    def release(self, file: int) -> None:
        """A handle of ``file`` was released (KeyError if none is held)."""
        handles, ids = self._files.pop(file)
        if handles > 1:
            self._files[file] = (handles - 1, ids)
            return
        for chunk_id in ids:
            left = self._holders[chunk_id] - 1
            if left:
                self._holders[chunk_id] = left
            else:
                del self._holders[chunk_id]

    def __len__(self) -> int:
        """Open files holding chunks."""
        return len(self._files)

    def elsewhere(self, ref: ChunkRef) -> bool:
        """Whether another open file than the asker's holds ``ref`` too."""
        return self._holders.get(ref.chunk_id, 0) > 1


# --- open files -------------------------------------------------------------------------------

# What a read returns: a view into a cached chunk when the range lies in one chunk (no copy),
# else the pieces joined. Any of them is a buffer the daemon can reply from.
ReadBuffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class BlockReads:
    """What a reader needs to read a raw chunk in blocks: the chunk's block digests (None
    when the store has none), and ``length`` bytes of a pack (by id) from an offset in it,
    unchecked (``direct.PackRanges``)."""

    digests: Callable[[ChunkId], bytes | None]
    read: Callable[[int, int, int], bytes]


def _block_bounds(start: int, stop: int, ref: ChunkRef) -> tuple[int, int]:
    """The whole blocks of chunk ``ref`` that bytes ``start`` to ``stop`` of it fall in."""
    return start - start % BLOCK_SIZE, min(-(-stop // BLOCK_SIZE) * BLOCK_SIZE, ref.length)


# Chunks whose blocks a read wants are read at once when the next one's start is at most this
# far past the previous one's end in the same pack: a record's header lies between two chunks
# stored one after the other.
_ADJACENT_BYTES = 4096


@dataclass(frozen=True)
class _BlockRun:
    """Bytes ``start`` to ``stop`` of a raw chunk stored at ``loc``, piece ``part`` of a
    read's reply, and the blocks they fall in (``low`` to ``high``); ``digests``: the chunk's
    block digests."""

    part: int
    start: int
    stop: int
    loc: ChunkLocation
    low: int
    high: int
    digests: bytes

    def verified(self, data: memoryview) -> bool:
        """Whether ``data`` is these blocks, whole and each matching its digest."""
        if len(data) != self.high - self.low:
            return False
        first = self.low // BLOCK_SIZE
        return all(
            block_matches(data[at : at + BLOCK_SIZE], self.digests, first + n)
            for n, at in enumerate(range(0, len(data), BLOCK_SIZE))
        )


def _adjacent(runs: list[_BlockRun]) -> Iterator[list[_BlockRun]]:
    """``runs`` in groups that lie one after the other in one pack (see _ADJACENT_BYTES)."""
    group: list[_BlockRun] = []
    for run in runs:
        if group:
            last = group[-1]
            gap = run.loc.offset + run.low - (last.loc.offset + last.high)
            if run.loc.pack_id != last.loc.pack_id or not 0 <= gap <= _ADJACENT_BYTES:
                yield group
                group = []
        group.append(run)
    if group:
        yield group


# Loads a chunk, given the chunks the reader wants after it (a remote-backed store fetches
# neighbours of one pack in the same request; a local read ignores them).
ChunkLoader = Callable[[ChunkRef, Sequence[ChunkRef]], bytes]


class FileReader:
    """One open file: byte ranges served from its chunks, and read-ahead.

    :meth:`plan` is called as each read arrives, before anything is awaited, so the chunks the
    reader will want next start loading (in worker threads) while this read's own chunk loads:
    a cold 1 MiB chunk takes ~1 ms to read, decompress and verify, and two load in parallel on
    two cores. Planned chunks wait in a queue in the order they are wanted; the daemon's
    loaders take them from its front (:meth:`fetch_next`), so they load in that order whatever
    order the loaders are scheduled in.

    Given ``drop_behind`` (a version file, whose pages the kernel keeps: ``keep_cache``), a
    sequential reader's chunks leave the cache once it has read past them, unless another open
    file holds them (see :meth:`_drop_behind`). Given ``keeps_own`` (a file of one chunk of
    up to ``INLINE_LOAD_BYTES``), the first read loads the chunk into the reader itself, not
    the shared cache (see :meth:`load_own`).
    """

    def __init__(
        self,
        entry: FileEntry,
        cache: ChunkCache,
        load: ChunkLoader | None = None,
        locations: Mapping[bytes, ChunkLocation] | None = None,
        load_cached: Callable[[ChunkRef], bytes | None] | None = None,
        drop_behind: ChunkHolders | None = None,
        keeps_own: bool = False,
        blocks: BlockReads | None = None,
    ) -> None:
        self.entry = entry
        # A small file's reader that keeps its one chunk itself (see load_own) instead of
        # putting it into the shared cache.
        self.keeps_own = keeps_own
        self._drop_behind_holders = drop_behind
        self._dropped_until = 0  # this run of sequential reads has passed chunks below this
        self._dropped: bytearray | None = None  # 1 for each chunk dropped (made at the first)
        self._repeated: frozenset[bytes] | None = None  # ids of chunks the file holds twice
        self._cache = cache
        self._load = load  # None: the cache's loader (a fresh index lookup per chunk)
        # A chunk's verified bytes if its pack bytes are in the page cache, else None (never
        # waits for the disk); None: no such loads (see read_inline).
        self._load_cached = load_cached
        # Where the chunks in this store's packs are, resolved at open (None: not resolved,
        # every chunk counts as local for cheap(), and location() knows none).
        self._locations = locations
        self._positions: dict[bytes, int] | None = None  # chunk id -> first index (_position)
        self._starts: list[int] = []
        offset = 0
        for ref in entry.chunks:
            self._starts.append(offset)
            offset += ref.length
        # A small file's whole content, verified (see holding() and load_own()): every read
        # of it is a slice of this, with no chunk lookup, cache peek or plan.
        self.held: memoryview | None = None
        self._next_offset = -1  # where a sequential reader's next read starts (-1: no read yet)
        self._window = 0  # bytes of read-ahead; doubles while access stays sequential
        self._ahead_until = 0  # chunks below this index were already scheduled
        self._max_window = min(MAX_READAHEAD_BYTES, cache.budget_bytes // 4)
        self._seeks = 0  # reads that were not sequential
        self._sought: set[int] = set()  # the chunks those reads began in
        self._new_seeks = 0  # the reads in a row up to now that were seeks into new chunks
        self._local: bool | None = None  # every chunk in this store's packs (see _all_local)
        self._began_at_random = False  # the first read was not at the file's start
        self._whole_planned = False  # every chunk was planned (see _plan_whole)
        self._ahead: deque[ChunkRef] = deque()  # planned, not taken by a loader yet
        self._end_told = False  # reached_end() said so
        # Tasks loading this reader's queue; counted by the daemon on its event loop.
        self.loaders = 0
        # Reads of a raw chunk's blocks (see read_blocks); None: whole chunks only.
        self._blocks = blocks
        self._digests: dict[bytes, bytes] = {}  # chunk id -> its block digests
        # A chunk of this file had none (stored by an artfs before them): whole chunks only.
        self._no_digests = False
        # The read plan() noted last is one for read_blocks: set by plan, read right after.
        self.in_blocks = False

    @classmethod
    def holding(cls, entry: FileEntry, cache: ChunkCache, content: Chunk) -> FileReader:
        """A reader of a file whose whole ``content`` (verified, ``entry.size`` bytes) the
        caller already holds: it needs no pack, pin or index lookup for any read."""
        if len(content) != entry.size:
            raise CorruptData(f"{entry.path}: its chunks hold other than its recorded size")
        reader = cls(entry, cache)
        reader.held = memoryview(content)
        return reader

    def load_own(self) -> memoryview | None:
        """For a reader that ``keeps_own``: its file's whole content, verified, read now if its
        pack bytes are in the page cache, and then held for every later read (as by
        :meth:`holding`); None when they are not, or the load fails (a read error, a
        dictionary that cannot be had): a worker thread's :meth:`read` then loads it, and
        says why it fails.

        Held by the handle, not the shared cache: the memory is freed at release and the next
        file's content reuses it. Cached, a cold pass over many small files grew the daemon's
        heap by each file (a page fault per 4 KiB, ~15,000 over the bench's epoch) and kept
        what the kernel keeps anyway (version files are opened with ``keep_cache``)."""
        if not self.keeps_own or self._load_cached is None:
            return None
        ref = self.entry.chunks[0]
        data = self._cache.peek(ref)  # a worker thread loaded it after a miss
        if data is None:
            try:
                data = self._load_cached(ref)
            except (ArtfsError, OSError):
                return None
        if data is None or len(data) != self.entry.size:  # a size mismatch: the read says so
            return None
        self.held = memoryview(data)
        return self.held

    def _span(self, offset: int, size: int) -> range:
        end = min(offset + size, self.entry.size)
        if offset >= end:
            return range(0)
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_right(self._starts, end - 1) - 1
        return range(first, last + 1)

    def _assemble(
        self, offset: int, size: int, pieces: list[Chunk], span: range, scratch: bytearray | None
    ) -> ReadBuffer:
        end = min(offset + size, self.entry.size)
        length = end - offset
        if len(pieces) == 1:
            # A view, not a copy: a 1 MiB read of a cached chunk costs no memcpy here.
            start = offset - self._starts[span.start]
            view = memoryview(pieces[0])[start : start + length]
            self._check_filled(len(view), length)
            return view
        # A read across chunk boundaries is copied together: into ``scratch`` when it fits,
        # else into a new buffer (whose fresh pages cost more to fault in than the copy).
        out = scratch if scratch is not None and len(scratch) >= length else bytearray(length)
        # Copied through a view: a bytearray's slice assignment from anything but a bytearray
        # first copies the source into a new bytearray, whose fresh pages the daemon faulted
        # in on every such read (~200 faults and ~0.6 ms a MiB; "Seventeenth pass"). A view's
        # assignment wants a source of format "B" and the exact length: bytes, and the
        # arena's views (cast to "B", each its chunk's length) are.
        into = memoryview(out)
        position = 0
        for index, data in zip(span, pieces, strict=True):
            base = self._starts[index]
            piece = memoryview(data)[max(offset - base, 0) : min(end - base, len(data))]
            into[position : position + len(piece)] = piece
            position += len(piece)
        self._check_filled(position, length)
        return into[:length]

    def _check_filled(self, got: int, wanted: int) -> None:
        """Chunks shorter than the entry says (a damaged or forged record): an error, never a
        reply padded with what a reused buffer held before."""
        if got != wanted:
            raise CorruptData(
                f"{self.entry.path}: its chunks hold fewer bytes than its recorded size"
            )

    def plan(self, offset: int, size: int) -> list[ChunkRef]:
        """Note a read as it arrives; queue the chunks worth loading ahead of it, and return
        them (in the order they are wanted).

        A read from the start of the file, or one that continues within
        ``SEQUENTIAL_SLACK`` of where the previous one ended, is sequential: the window
        starts at ``READAHEAD_START_BYTES`` and doubles per read up to ``MAX_READAHEAD_BYTES``
        (at most a quarter of the cache). Any other read resets it, and a file of up to
        ``RANDOM_READAHEAD_BYTES`` (and a quarter of the cache) read so has every chunk not
        cached planned, once, from the one after this read's on: at its first read if that is
        not at the file's start, the file fits in the window's maximum and its chunks are all
        in this store's packs, else at its second such read (a single seek after a read from
        the start, as to a footer, plans nothing). A larger file read so is planned whole once
        its seeks have begun in one of every ``CHUNKS_PER_SEEK_TO_PLAN_WHOLE`` of its chunks,
        or its last ``NEW_CHUNK_SEEKS_TO_PLAN_WHOLE`` reads were each a seek into a chunk no
        seek, nor a first read from the file's start, began in before, if it fits in seven
        eighths of the cache and is all in this store's packs. Never blocks.

        A read at random of a file larger than the cache, whose missing chunks are large raw
        chunks, is left to :meth:`read_blocks` when that reads less (:attr:`in_blocks`): it
        queues nothing.
        """
        span = self._span(offset, size)
        if self._dropped is not None:  # only a reader that dropped chunks looks
            dropped = next((i for i in span if self._dropped[i]), None)
            if dropped is not None and self.keeps_all:
                # A chunk whose pages went to the kernel (see drop_stored) read again: the
                # kernel lost them, or a page it shares was not stored; the others hold.
                self._dropped[span.start : span.stop] = bytes(len(span))
            elif dropped is not None:
                # A read of a chunk dropped behind: the kernel lost those pages (evicted under
                # memory pressure), and likely the ones after: read ahead of it as before.
                self._dropped[dropped:] = bytes(len(self._dropped) - dropped)
        if self._next_offset < 0:
            sequential = offset == 0
            self._began_at_random = not sequential
        else:
            sequential = abs(offset - self._next_offset) <= SEQUENTIAL_SLACK
        self._next_offset = offset + size
        if sequential:
            self._new_seeks = 0
            ahead = [] if self._whole_planned else self._plan_window(span, offset + size)
            if self._drop_behind_holders is not None and not self.keeps_all:
                self._drop_behind(offset - DROP_BEHIND_BYTES, self._drop_behind_holders)
        else:
            self._window = 0
            self._ahead_until = 0
            self._seeks += 1
            # A seek back to the first chunk after a first read from the start (a header) is
            # into no new chunk either.
            header = span.start == 0 and not self._began_at_random
            new = bool(span) and span.start not in self._sought and not header
            self._new_seeks = self._new_seeks + 1 if new else 0
            if span:
                self._sought.add(span.start)
            # A run starting here passes only the chunks that begin at or after the seek: the
            # one it lands inside was read in part (its other pages are not the kernel's).
            self._dropped_until = bisect.bisect_left(self._starts, offset)
            ahead = [] if self._whole_planned else self._plan_whole(span)
        self.in_blocks = (
            not sequential and not self._whole_planned and self._blocks_pay(offset, size, span)
        )
        own = [] if self.in_blocks else self._own_chunks(span)
        self._ahead.extendleft(reversed(own))
        self._ahead.extend(ahead)
        return own + ahead

    def _blocks_pay(self, offset: int, size: int, span: range) -> bool:
        """Whether a read at random, of a file not planned whole, is better served by reading
        and checking only the blocks it covers in the raw chunks it lacks (see
        :meth:`read_blocks`): the file is larger than the chunk cache, each chunk is large
        enough to have block digests, and the blocks come to at most three quarters of those
        chunks. A page fault's 1 MiB read across two 1 MiB chunks reads about half of what
        loading both would, a 4 KiB ``pread`` 64 KiB of 1 MiB. A file the cache can hold is
        read in whole chunks, which its later reads find there: a 240 MiB file read at random
        with the 256 MiB cache took 557-562 ms in whole chunks, 647-974 ms in blocks
        (docs/perf.md, "Twenty-fifth pass")."""
        if self._blocks is None or self._locations is None or self._no_digests:
            return False
        if self.entry.size <= self._cache.budget_bytes:
            return False
        chunks, end = self.entry.chunks, min(offset + size, self.entry.size)
        wanted = whole = 0
        for index in span:
            ref = chunks[index]
            if ref in self._cache:  # cached, or loading already
                continue
            if self._in_blocks_at(ref) is None:
                return False
            base = self._starts[index]
            low, high = _block_bounds(max(offset - base, 0), min(end - base, ref.length), ref)
            wanted += high - low
            whole += ref.length
        return whole > 0 and wanted * 4 <= whole * 3

    def read_blocks(self, offset: int, size: int) -> ReadBuffer | None:
        """The bytes at ``offset``, the chunks not cached read in the blocks they cover and
        each block checked against the chunk's block digests (blocks; worker threads); None
        when a chunk has no digests, a block does not match them or the pack cannot be read by
        its name (gc deleted it since the reader pinned it): the read then loads whole chunks
        from the packs pinned, which says why a damaged one fails. Chunks that lie one after
        the other in a pack are read at once. Nothing is cached: the kernel keeps the pages it
        is given, and a reader at random seldom comes back to the rest of a chunk."""
        blocks = self._blocks
        assert blocks is not None
        chunks, end = self.entry.chunks, min(offset + size, self.entry.size)
        parts: list[ReadBuffer] = []
        wanted: list[_BlockRun] = []  # the chunks to read, in file order
        for index in self._span(offset, size):
            ref = chunks[index]
            base = self._starts[index]
            start, stop = max(offset - base, 0), min(end - base, ref.length)
            cached = self._cache.peek(ref)
            if cached is not None:
                parts.append(memoryview(cached)[start:stop])
                continue
            # A chunk cached when the read was planned may have left the cache since.
            loc = self._in_blocks_at(ref)
            if loc is None:
                return None
            digests = self._block_digests(ref)
            if digests is None:
                return None
            low, high = _block_bounds(start, stop, ref)
            wanted.append(_BlockRun(len(parts), start, stop, loc, low, high, digests))
            parts.append(memoryview(b""))  # filled below
        for group in _adjacent(wanted):
            first, last = group[0], group[-1]
            at = first.loc.offset + first.low
            try:
                read = blocks.read(first.loc.pack_id, at, last.loc.offset + last.high - at)
            except OSError:  # the pack gc deleted since, or unreadable: the pinned one loads
                return None
            data = memoryview(read)
            for run in group:
                got = data[run.loc.offset + run.low - at : run.loc.offset + run.high - at]
                if not run.verified(got):
                    return None
                parts[run.part] = got[run.start - run.low : run.stop - run.low]
        if sum(len(part) for part in parts) != end - offset:
            return None  # chunks shorter than the entry says: read() says so
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def _in_blocks_at(self, ref: ChunkRef) -> ChunkLocation | None:
        """Where ``ref`` is if it is a chunk stored raw in this store's packs and large enough
        to have block digests (``hashing.has_blocks``); else None."""
        assert self._locations is not None
        loc = self._locations.get(ref.chunk_id)
        if loc is None or not has_blocks(loc.codec == Codec.RAW, ref.length):
            return None
        return loc

    def _block_digests(self, ref: ChunkRef) -> bytes | None:
        """``ref``'s block digests, asked of the index once per reader; None when it has none
        (a chunk stored before artfs wrote them) or they are not as many as its blocks
        (damaged: the whole chunk's load says whether it is); either way this reader reads
        whole chunks from then on."""
        digests = self._digests.get(ref.chunk_id)
        if digests is None:
            assert self._blocks is not None
            try:
                digests = self._blocks.digests(ref.chunk_id)
            except CorruptData:  # a damaged row: the whole chunk's check still holds
                digests = None
            if digests is None:
                self._no_digests = True
                return None
            self._digests[ref.chunk_id] = digests
        if len(digests) != -(-ref.length // BLOCK_SIZE) * BLOCK_DIGEST_SIZE:
            self._no_digests = True  # damaged, or of another size: whole chunks from now on
            return None
        return digests

    def reached_end(self) -> bool:
        """True once, at the first read after which a reader of a file of several chunks that
        has read in order from its start has its read-ahead planned up to the last chunk: from
        then on it only waits for what is loading, and the file it opens next could load (see
        ``Vfs.next_file_chunks``). Never for a file of one chunk: a reader taking many such
        files in a random order (a DataLoader's) would have every first read look for a next
        file on the event loop, for a guess that is wrong."""
        chunks = len(self.entry.chunks)
        if (
            self._end_told
            or chunks < 2
            or self._seeks
            or self._began_at_random
            or self._ahead_until < chunks
        ):
            return False
        self._end_told = True
        return True

    def _own_chunks(self, span: range) -> list[ChunkRef]:
        """A read's chunks after its first that are not cached: they go to the front of the
        queue, so loaders take them while the read loads its first (a cold read across two
        1 MiB chunks waited for both in turn). None when the read is small enough to be
        loaded inline (see :meth:`cheap`): a loader would only make it wait for a thread."""
        if len(span) < 2:
            return []
        chunks = self.entry.chunks
        missing = [i for i in span if chunks[i] not in self._cache]
        if sum(chunks[i].length for i in missing) <= INLINE_LOAD_BYTES:
            return []
        return [chunks[i] for i in missing if i != span.start]

    def _plan_window(self, span: range, end: int) -> list[ChunkRef]:
        """The chunks of a sequential reader's window after a read of ``span`` (ending at
        ``end``) not scheduled yet; widens the window."""
        self._window = min(max(READAHEAD_START_BYTES, self._window * 2), self._max_window)
        if not span:
            return []
        chunks = self.entry.chunks
        horizon = min(end, self.entry.size) + self._window
        index = max(span.stop, self._ahead_until)
        ahead = []
        while index < len(chunks) and self._starts[index] < horizon:
            if chunks[index] not in self._cache and not self._passed(index):
                ahead.append(chunks[index])
            index += 1
        self._ahead_until = max(self._ahead_until, index)
        return ahead

    def _drop_behind(self, offset: int, holders: ChunkHolders) -> None:
        """Drop from the cache the chunks a sequential reader has passed: those that end at or
        before ``offset`` (``DROP_BEHIND_BYTES`` behind its newest read), from where its run of
        sequential reads began.

        The kernel keeps a version file's pages (``keep_cache``), so a later read of those
        bytes, by this process or another, is served from its page cache and the daemon's copy
        would be a second one. Freed, their memory is what the next chunks are read into: a
        fresh daemon otherwise faults in a new page for every 4 KiB it loads, which costs this
        VM ~0.8 ms per MiB, more than reading and hashing the MiB (docs/perf.md, "Ninth
        pass"). A chunk stays when the file holds it more than once (a run of zeros cut into
        equal chunks), or another open file holds it too (another version's copy of the same
        data, read beside this one: its kernel pages are its own); so does every chunk of a
        file read at random once it is planned whole (see :attr:`keeps_all`). Read-ahead
        skips a dropped chunk (see :meth:`_passed`). What is lost: a file that shares the
        chunk and is opened only later reads it from its pack again rather than finding it
        here, and so does a read more than ``DROP_BEHIND_BYTES`` behind the newest (several
        threads reading one handle far apart)."""
        if offset >= self.entry.size:
            stop = len(self.entry.chunks)  # past the end: every chunk ends by offset
        else:
            stop = bisect.bisect_right(self._starts, offset) - 1  # chunks below end by offset
        if stop <= self._dropped_until:
            return
        for index in range(self._dropped_until, stop):
            self._drop(index, holders)
        self._dropped_until = stop

    def _drop(self, index: int, holders: ChunkHolders) -> None:
        """Drop chunk ``index`` from the cache, marked passed (see :meth:`_passed`), unless
        the file holds it more than once or another open file holds it."""
        ref = self.entry.chunks[index]
        if ref.chunk_id in self._repeated_ids() or holders.elsewhere(ref):
            return
        if self._dropped is None:
            self._dropped = bytearray(len(self.entry.chunks))
        # Marked first: a loader thread that no longer finds it cached finds it passed.
        self._dropped[index] = 1
        self._cache.discard(ref)

    def _repeated_ids(self) -> frozenset[bytes]:
        """The ids of the chunks the file holds more than once (worked out once)."""
        if self._repeated is None:
            counts = Counter(ref.chunk_id for ref in self.entry.chunks)
            self._repeated = frozenset(cid for cid, count in counts.items() if count > 1)
        return self._repeated

    def drop_stored(self, index: int) -> None:
        """Chunk ``index``'s pages, and those it shares with its neighbours, are in the
        kernel's page cache (see artfsd.pagestores): drop it from the chunk cache as
        :meth:`_drop_behind` drops what a sequential reader passed, by the same rules, and
        marked passed, so that the read-ahead queued for the file does not load it again. Its
        place in the chunk arena is then what the next chunks load into: a fresh daemon's
        loader faulted in ~150 MiB of new arena for a 200 MiB file read at random, 0.6-0.8 ms
        of CPU per MiB (docs/perf.md, "Twenty-sixth pass"). Event loop only; only for a
        version file's reader that drops behind."""
        if self._drop_behind_holders is not None:
            self._drop(index, self._drop_behind_holders)

    def release(self) -> None:
        """The handle was released (call before its hold is): drop what its last run of
        sequential reads passed, up to where its newest read ended, as :meth:`_drop_behind`
        does ``DROP_BEHIND_BYTES`` behind a reader still reading; no read of the handle is in
        flight any more. Chunks loaded ahead and never read stay (another open may want
        them), and so does every chunk of a file read at random and planned whole (see
        :attr:`keeps_all`).

        Without this, the last 4 MiB of every file read to its end stayed until the LRU
        evicted them: a fresh daemon reading four large files in turn peaked 18 MB higher
        (docs/perf.md, "Tenth pass"). Only the last run is dropped: a reader that read a
        file through and then made one read elsewhere (a header) leaves the first run's
        last 4 MiB to the LRU."""
        holders = self._drop_behind_holders
        if holders is not None and not self.keeps_all and self._next_offset > 0:
            self._drop_behind(self._next_offset, holders)

    @property
    def keeps_all(self) -> bool:
        """Whether nothing is dropped behind this reader: a file read at random (two seeks)
        and planned whole, whose reads come back to its chunks. One planned whole at its first
        read, which may yet read on in order from there (``dd skip=``, ``tail``, a copy whose
        first pages the kernel had), drops behind its runs as any reader does."""
        return self._whole_planned and self._seeks >= RANDOM_AFTER_SEEKS

    def chunk_bytes(self, index: int) -> Chunk | None:
        """Chunk ``index``'s bytes if it is cached; never blocks."""
        return self._cache.peek(self.entry.chunks[index])

    def pages_of(self, index: int, data: Chunk) -> list[tuple[int, ReadBuffer]]:
        """The whole pages of the file that chunk ``index``, its bytes ``data``, completes, as
        (file offset, bytes): those within it (the file's last page counts as whole where the
        file ends in it), and each page it shares with neighbouring chunks when those are
        cached (the page's bytes copied from the chunks it spans); any thread. A chunk's
        bounds fall anywhere in a page, and the kernel takes a store of part of a page without
        marking the page read, so a part would save no read (see artfsd.pagestores). Never
        past the file's size, even for a chunk longer than its entry says."""
        page, size = mmap.PAGESIZE, self.entry.size
        start = self._starts[index]
        end = min(start + len(data), size)
        inner_start = -(-start // page) * page
        inner_end = end if end == size else end - end % page
        pages: list[tuple[int, ReadBuffer]] = []
        if inner_end > inner_start:
            pages.append((inner_start, memoryview(data)[inner_start - start : inner_end - start]))
        shared = {start - start % page} if start % page else set()
        if inner_end < end:
            shared.add(end - end % page)
        for at in sorted(shared):
            whole = self.read_cached(at, min(page, size - at))
            if whole is not None:
                pages.append((at, whole))
        return pages

    def _passed(self, index: int) -> bool:
        """Whether chunk ``index`` was dropped behind a sequential reader: the kernel has its
        pages, so loading it ahead of a read would be for nothing (a read of it still loads
        it)."""
        return self._dropped is not None and bool(self._dropped[index])

    def _plan_whole(self, span: range) -> list[ChunkRef]:
        """Every chunk not cached after a read of ``span``, for a file read at random that is
        small enough (or, larger, fits in the cache and is read across: see
        ``CHUNKS_PER_SEEK_TO_PLAN_WHOLE`` and ``NEW_CHUNK_SEEKS_TO_PLAN_WHOLE``); else
        none."""
        budget, size = self._cache.budget_bytes, self.entry.size
        at_random = self._seeks >= RANDOM_AFTER_SEEKS or (
            self._began_at_random and size <= self._max_window and self._all_local()
        )
        if not at_random or not span:
            return []
        if size > min(RANDOM_READAHEAD_BYTES, budget // 4):
            spread = len(self.entry.chunks) // CHUNKS_PER_SEEK_TO_PLAN_WHOLE
            across = len(self._sought) >= spread or self._new_seeks >= NEW_CHUNK_SEEKS_TO_PLAN_WHOLE
            if size > budget - budget // 8 or not across or not self._all_local():
                return []
        self._whole_planned = True
        chunks = self.entry.chunks
        order = [*range(span.stop, len(chunks)), *range(span.start)]
        return [chunks[i] for i in order if chunks[i] not in self._cache and not self._passed(i)]

    def _all_local(self) -> bool:
        """Whether every chunk is in this store's packs (or none were resolved): a first read
        that seeks in a remote-backed file (a header, a footer) must not fetch the whole file.
        Worked out once: the locations were resolved at open."""
        if self._local is None:
            locations = self._locations
            self._local = locations is None or all(
                ref.chunk_id in locations for ref in self.entry.chunks
            )
        return self._local

    def next_ahead(self) -> ChunkRef | None:
        """Take the first queued read-ahead chunk worth loading (not cached or loading, not
        dropped behind the reader); None when the queue has none. Never blocks."""
        while True:
            try:
                ref = self._ahead.popleft()
            except IndexError:
                return None
            if ref in self._cache:  # cached or loading
                continue
            index = self._position(ref)
            if index >= 0 and self._passed(index):  # the reader dropped it: the kernel has it
                continue
            return ref

    def put_back(self, ref: ChunkRef) -> None:
        """Return a chunk :meth:`next_ahead` gave to the front of the queue."""
        self._ahead.appendleft(ref)

    def fetch_next(self) -> bool:
        """Load the first queued read-ahead chunk that is not cached yet (blocks); False when
        the queue is empty. Any number of threads may call this at once."""
        ref = self.next_ahead()
        if ref is None:
            return False
        self._cache.get(ref, self._loader(self._position(ref)))
        return True

    def fetch_some(self, count: int) -> bool:
        """:meth:`fetch_next` up to ``count`` times, front first; False when the queue was
        found empty. One worker-thread hop of the daemon loads several chunks this way."""
        # all() stops at the first False: a hop ends once the queue is found empty.
        return all(self.fetch_next() for _ in range(count))

    @property
    def ahead(self) -> int:
        """Chunks queued for read-ahead and not taken by a loader yet."""
        return len(self._ahead)

    def drop_ahead(self) -> None:
        """Forget the queued read-ahead (the file was closed); loads under way finish."""
        self._ahead.clear()

    def read_cached(
        self, offset: int, size: int, scratch: bytearray | None = None
    ) -> ReadBuffer | None:
        """The bytes if every chunk they need is cached, else None; never blocks.

        A read spanning chunks is copied into ``scratch`` if it fits: the result is then only
        valid until ``scratch`` is used again (the event loop replies before its next read).
        """
        span = self._span(offset, size)
        pieces = []
        for index in span:
            data = self._cache.peek(self.entry.chunks[index])
            if data is None:
                return None
            pieces.append(data)
        return self._assemble(offset, size, pieces, span, scratch) if pieces else b""

    def missing(self, offset: int, size: int) -> list[ChunkRef]:
        """The chunks a read needs that are not cached (loading ones included), in order."""
        chunks = self.entry.chunks
        return [
            chunks[index]
            for index in self._span(offset, size)
            if self._cache.peek(chunks[index]) is None
        ]

    def location(self, ref: ChunkRef) -> ChunkLocation | None:
        """Where ``ref`` was resolved at open, if this reader pinned its locations."""
        return None if self._locations is None else self._locations.get(ref.chunk_id)

    def cheap(self, offset: int, size: int) -> bool:
        """Whether the chunks this read still needs are small enough to load inline.

        A worker-thread hop costs 0.1-0.2 ms here, more than reading, decompressing and hashing
        a 64 KiB chunk, so a small file's chunk is loaded on the event loop; big chunks never.
        Only from this store's own packs: a chunk held only on a remote (or in the disk cache
        of one) may wait up to the remote's timeout, and one that another thread is loading
        means waiting for that thread; either on the event loop would stall every request.
        """
        if self.keeps_own:  # it loads inline only through load_own, which missed
            return False
        missing = 0
        for index in self._span(offset, size):
            ref = self.entry.chunks[index]
            if self._cache.peek(ref) is None:
                if ref in self._cache or (
                    self._locations is not None and ref.chunk_id not in self._locations
                ):
                    return False
                missing += ref.length
        return missing <= INLINE_LOAD_BYTES

    def read_inline(
        self, offset: int, size: int, scratch: bytearray | None = None
    ) -> ReadBuffer | None:
        """The bytes if every chunk they need is cached or its pack bytes are in the page
        cache (then verified and cached here), else None: never waits for the disk, so a read
        of a small file that would wait goes to a worker thread instead of stalling every
        request behind it. ``scratch`` as for :meth:`read_cached`."""
        span = self._span(offset, size)
        pieces = []
        for index in span:
            ref = self.entry.chunks[index]
            data = self._cache.peek(ref)
            if data is None:
                data = None if self._load_cached is None else self._load_cached(ref)
                if data is None:
                    return None
                self._cache.put(ref, data)
            pieces.append(data)
        return self._assemble(offset, size, pieces, span, scratch) if pieces else b""

    def read(self, offset: int, size: int, scratch: bytearray | None = None) -> ReadBuffer:
        """The bytes at ``offset`` (short at end of file); blocks on chunk loads. ``scratch``
        as for :meth:`read_cached`. A reader that holds its content answers from it, whatever
        has become of its chunks since."""
        if self.held is not None:
            return self.held[offset : offset + size]
        span = self._span(offset, size)
        try:
            pieces = [self._cache.get(self.entry.chunks[i], self._loader(i)) for i in span]
        except ArtfsError as exc:
            raise type(exc)(f"{self.entry.path}: {exc}") from None
        return self._assemble(offset, size, pieces, span, scratch) if pieces else b""

    def _position(self, ref: ChunkRef) -> int:
        """Where ``ref`` first is in the file (-1: nowhere); any thread may ask."""
        positions = self._positions
        if positions is None:
            positions = {}
            for index, chunk in enumerate(self.entry.chunks):
                positions.setdefault(chunk.chunk_id, index)
            self._positions = positions
        return positions.get(ref.chunk_id, -1)

    def _loader(self, index: int) -> Callable[[ChunkRef], bytes] | None:
        """The load of chunk ``index``, naming the chunks of the read-ahead window after it."""
        load = self._load
        if load is None:
            return None
        chunks = self.entry.chunks
        if index < 0:
            return lambda ref: load(ref, ())
        horizon = self._starts[index] + chunks[index].length + self._window
        end = bisect.bisect_left(self._starts, horizon, lo=index + 1)
        return lambda ref: load(ref, chunks[index + 1 : end])


# A file's entry and its chunks pinned for it (off the event loop; see Vfs.entry_to_prepare).
Pinned = tuple[FileEntry, PinnedChunks]


def pins_for(pinned: Pinned | None, entry: FileEntry) -> PinnedChunks | None:
    """The pins of ``pinned`` if they were made for ``entry``'s chunks, else None (the file
    an open finds is not the one they were made for)."""
    if pinned is None or pinned[0].chunks != entry.chunks:
        return None
    return pinned[1]


def open_reader(
    store: Store,
    entry: FileEntry,
    cache: ChunkCache,
    drop_behind: ChunkHolders | None = None,
    keeps_own: bool = False,
    pins: PinnedChunks | None = None,
) -> tuple[FileReader, PinnedChunks]:
    """A verified reader of a stored file whose chunk locations are resolved now, with their
    packs held open until :meth:`Store.unpin_chunks` (so gc cannot take them meanwhile). One
    index get per chunk (2 and a 32-byte read for a dictionary-coded one). ``drop_behind``
    and ``keeps_own`` (a file of one small chunk): see :class:`FileReader`. ``pins``: the
    file's chunks pinned already (see :meth:`Store.repin_chunks`), taken over: if this
    raises, nothing stays pinned."""
    if pins is None:
        pins = store.pin_chunks(entry.chunks)

    def load(ref: ChunkRef, following: Sequence[ChunkRef]) -> bytes:
        return store.read_pinned(ref, pins, following)

    def load_cached(ref: ChunkRef) -> bytes | None:
        return store.read_pinned_cached(ref, pins)

    blocks = None
    if not keeps_own:
        ranges = direct.pack_ranges(store.pack_directory)
        blocks = BlockReads(
            store.chunk_blocks, lambda pack, at, length: ranges.read(pack_name(pack), at, length)
        )
    try:
        reader = FileReader(
            entry,
            cache,
            load,
            pins.locations,
            load_cached,
            drop_behind,
            keeps_own=keeps_own,
            blocks=blocks,
        )
    except BaseException:
        store.unpin_chunks(pins)
        raise
    return reader, pins


__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DROP_BEHIND_BYTES",
    "INLINE_LOAD_BYTES",
    "MAX_READAHEAD_BYTES",
    "RANDOM_READAHEAD_BYTES",
    "READAHEAD_START_BYTES",
    "SEQUENTIAL_SLACK",
    "BlockReads",
    "Chunk",
    "ChunkCache",
    "ChunkHolders",
    "ChunkLoader",
    "FileReader",
    "Pinned",
    "ReadBuffer",
    "open_reader",
    "pins_for",
]
