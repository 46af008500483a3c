"""``artfsd``: mount an artfs store and serve it until unmounted or signalled.

The one place that wires the daemon: options, logging, the mountpoint checks, the store, the
FUSE session, the trio nursery, signals and readiness (systemd ``READY=1`` and, for
``artfs mount``, a line on ``--ready-fd``). The daemon always runs in the foreground; ``artfs
mount`` backgrounds it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import logging
import mmap
import os
import resource
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import trio

from artfs.errors import ArtfsError
from artfs.fs.chunkloader import LoaderProcess, map_decoders
from artfs.remote.poll import RemotePoller
from artfs.store.repository import Store, default_home
from artfs.stores import open_store
from artfs.usage import RECORD_STEP, UsageRecorder
from artfs.vfs import DEFAULT_CACHE_BYTES, Vfs
from artfsd import session
from artfsd.mountpoint import FSNAME, prepare
from artfsd.operations import ArtfsOperations, invalidate_entries

log = logging.getLogger("artfsd")
# Kernel read-ahead on the mount: 1 MiB turns a sequential reader's 128 KiB FUSE requests into
# 1 MiB ones (438 requests for the 57 MB of large files instead of 56).
READ_AHEAD_KIB = 1024


def whole_number(least: int) -> Callable[[str], int]:
    """An option's type: a whole number of at least ``least`` (``--threads 0`` would leave
    every load that needs a worker thread waiting for ever)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is too small: use {least} or more")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="artfsd",
        description="Mount an artfs store: every version read-only, staging writable.",
    )
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--home", type=Path, help="store directory (default: $ARTFS_HOME)")
    parser.add_argument(
        "--allow-other", action="store_true", help="let other users (and containers) read it"
    )
    parser.add_argument(
        "--cache-mb",
        type=whole_number(0),
        default=DEFAULT_CACHE_BYTES >> 20,
        help="memory for decompressed chunks (default %(default)s MiB)",
    )
    parser.add_argument(
        "--index-mb",
        type=whole_number(0),
        default=DEFAULT_INDEX_HOLD_BYTES >> 20,
        help="read the store's index into memory at start and keep it there if it is at most "
        "this many MiB (0: never; default %(default)s)",
    )
    parser.add_argument(
        "--threads", type=whole_number(1), default=4, help="chunk-loading worker threads"
    )
    parser.add_argument(
        "--loaders",
        type=whole_number(0),
        default=DEFAULT_LOADERS,
        help="threads of the chunk-loader process, which reads, decompresses and verifies "
        "chunks beside the daemon (0: none, chunks load in the daemon's own threads; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        help="seconds between looks at the default remote for new versions, moved aliases "
        "and deletions (remote-backed stores; 0: never; default %(default)s)",
    )
    parser.add_argument("--debug", action="store_true", help="log every request")
    parser.add_argument(
        "--no-lineage",
        action="store_true",
        help="do not record which runs read which versions (for benchmarks)",
    )
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s artfsd[%(process)d] %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def mount_options(allow_other: bool) -> set[str]:
    # Not ro: staging directories are writable; every version node answers EROFS itself.
    # default_permissions: the kernel checks modes and ownership, we never see the request.
    options = {"default_permissions", f"fsname={FSNAME}", f"subtype={FSNAME}"}
    if allow_other:
        options.add("allow_other")
    return options


def sd_notify(message: str) -> None:
    """Send ``message`` to systemd's notify socket, if we run under a Type=notify unit."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


class Readiness:
    """Tells whoever started us whether the mount came up (``--ready-fd``), exactly once."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def send(self, line: str) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._fd, (line + "\n").encode())
            os.close(self._fd)
        self._fd = None


async def announce_ready(ops: ArtfsOperations, mountpoint: Path, ready: Readiness) -> None:
    # A stat through the mount needs the loop to answer INIT and GETATTR: once it returns,
    # the mount is serving.
    root = await trio.to_thread.run_sync(os.stat, mountpoint)
    ops.device = root.st_dev
    raise_read_ahead(root.st_dev, READ_AHEAD_KIB)
    tune_collector()
    log.info("serving %s", mountpoint)
    ready.send("READY")
    sd_notify("READY=1\nSTATUS=serving " + str(mountpoint))


async def watch_signals(ops: ArtfsOperations) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("%s: unmounting", signal.Signals(signum).name)
            sd_notify("STOPPING=1")
            break
        # While this loop still answers reads: a store waits for a page that a read queued
        # for it holds, which would never be answered once the session stops. Signals that
        # come meanwhile are taken here (left queued, the receiver's exit would deliver them
        # to the default handlers, which end the process without an unmount).
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_ignore_signals, signals)
            await trio.to_thread.run_sync(ops.stop_page_stores)
            nursery.cancel_scope.cancel()
        session.stop()


async def _ignore_signals(signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        log.info("%s: already unmounting", signal.Signals(signum).name)


# Usage events reach the index this often (the issue asks for durability within 2 s).
USAGE_FLUSH_SECONDS = 0.5


async def flush_usage(recorder: UsageRecorder) -> None:
    """Write recorded opens in batches, off the event loop; forget exited processes."""
    while True:
        await trio.sleep(USAGE_FLUSH_SECONDS)
        await write_usage(recorder)
        recorder.sweep()


async def write_usage(recorder: UsageRecorder) -> None:
    """Record the opens noted, ``RECORD_STEP`` at a time with the requests that wait answered
    between steps, then write them in a worker thread."""
    while recorder.record_noted(RECORD_STEP):
        await trio.lowlevel.checkpoint()
    events = recorder.take()  # nothing noted since the last step: no checkpoint between
    try:
        await trio.to_thread.run_sync(recorder.flush, events)
    except Exception:
        log.exception("recording %d usage events failed", len(events))


# How often the daemon lets go of what others deleted: cached descriptors of packs gc
# removed (so their space is freed while mounted; reads also sweep, at most every few
# seconds) and the kernel's entries of deleted versions (so the node table forgets them).
HOUSEKEEPING_SECONDS = 5.0


async def housekeeping(ops: ArtfsOperations) -> None:
    while True:
        await trio.sleep(HOUSEKEEPING_SECONDS)
        ops.vfs.store.chunks.drop_unlinked()  # one fstat per cached pack: inline
        stale = ops.vfs.deleted_versions()  # one index get per version held: inline
        if stale:
            # Blocks until the kernel is done with the entries: never on the event loop.
            await trio.to_thread.run_sync(invalidate_entries, stale)


# A remote-backed store's daemon looks at its remote this often: a version committed on another
# machine shows in the mount within this (plus the mount's ~1 s of attribute caching).
DEFAULT_POLL_SECONDS = 10.0
# Threads of the chunk-loader process: one per core the daemon may run on, two to four. On
# the 2-core VM of the twenty-third pass three read the large files cold 3-5% faster than
# two, a gain near the rounds' spread; on the faster host of the thirty-third, two read them
# as fast (0.996-0.997 of the time, 16 rounds) and a 200 MiB file read at random 7-13% faster
# (0.904-0.928 through mmap, 0.873 with pread): a third thread took the cores from the thread
# that hands the file's pages to the kernel and from the reader (docs/perf.md, "Thirty-third
# pass"). At least two: one reads while the other decodes. Four at most: a cold read of a
# few files keeps no more busy.
DEFAULT_LOADERS = max(2, min(4, len(os.sched_getaffinity(0))))
# How long the mount waits for the loader to start (a loaded machine's Python start-up): well
# inside the systemd units' TimeoutStartSec (30 s), so the daemon still mounts without it.
LOADER_START_SECONDS = 10.0


# At shutdown, a refresh running in its worker thread gets this long to end (after the artifact
# it is at) before the store is closed: one remote request is bounded by ARTFS_REMOTE_TIMEOUT.
REFRESH_STOP_SECONDS = 60.0


async def poll_remote(poller: RemotePoller, seconds: float) -> None:
    """A round of ``poller`` (follow the default remote, refresh from it) every ``seconds``,
    in a worker thread. The trio task does not wait for a running round when it is cancelled:
    the shutdown does, through ``poller.finish``, before it closes the store."""
    while True:
        await trio.to_thread.run_sync(poller.poll, abandon_on_cancel=True)
        await trio.sleep(seconds)


def check_remote_settings(store: Store) -> None:
    """Refuse to mount a remote-backed store with a bad ``ARTFS_CACHE_MAX``,
    ``ARTFS_CACHE_MIN_FREE`` or ``ARTFS_REMOTE_TIMEOUT`` (StoreError): the mount would list
    everything and fail every read of a chunk it has to fetch."""
    if store.default_remote() is None:
        return
    from artfs.remote.fetch import check_settings  # obstore: remote-backed stores only

    check_settings()


def log_remote_reads(store: Store) -> None:
    """What the lazy read path fetched during this mount (read amplification, cache use)."""
    source = store.remote_source_made()  # None: nothing was fetched
    counters = getattr(source, "counters", None)
    cache = getattr(source, "cache", None)
    if counters is not None and cache is not None:
        log.info(
            "remote reads: %d chunks in %d GETs, %d bytes; cache %d hits, %d misses",
            counters.chunks,
            counters.gets,
            counters.bytes,
            cache.hits,
            cache.misses,
        )


# glibc's mallopt parameters (the bench's floor sets the first two as well).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


# Allocations between two young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_collector() -> None:
    """Collect cycles less often, and never look at what startup made again.

    The daemon's objects are long-lived (listings, nodes, the chunk cache's index) and its
    per-request garbage is freed by reference counts; but every 700 allocations CPython
    collects the young generation, and every tenth of those the next one up, whose traversal
    grows with every listing and node kept. A first cold epoch over the bench's 6,000 small
    files ran 73 collections in 41 ms of the daemon's loop; frozen and at 10,000, 4 in 6 ms.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def start_loader(store: Store, workers: int, cache_bytes: int) -> LoaderProcess | None:
    """The chunk-loader process (see artfs.fs.chunkloader), or None for none (``workers`` 0,
    or it cannot start: then the daemon's threads load every chunk, as they can anyway).

    Its arena is twice the chunk cache, so chunks (in whole 64 KiB units, first fit; a raw
    chunk's place may take one unit more than its length, see chunkloader.place_of) find
    room when freed runs are fragmented; only its first ``cache_bytes`` stay in memory once
    written, the pages of chunks freed beyond that are given back."""
    if workers <= 0 or cache_bytes <= 0:  # no cache: a loaded chunk could not be kept
        return None
    try:
        return LoaderProcess.start(store.pack_directory, 2 * cache_bytes, workers, cache_bytes)
    except (OSError, ValueError) as exc:
        log.warning("no chunk-loader process (%s): chunks load in the daemon's threads", exc)
        return None


# The largest index the daemon reads whole at start and keeps mapped (see hold_index).
DEFAULT_INDEX_HOLD_BYTES = 256 << 20


def hold_index(store: Store, limit: int) -> mmap.mmap | None:
    """The store's index read into memory and kept there while the mapping is open, if it
    is at most ``limit`` bytes: a cold mount's first lookups and listings then find it in
    memory instead of waiting for the disk (its first fault reads as much as the disk reads
    ahead, the rest of a large index comes in fault by fault). One sequential read at start
    (~2 ms for a 2 MB index here), made while the chunk loader starts; None, logged, if the
    index is larger, cannot be mapped, or ``limit`` is 0."""
    if limit == 0:
        return None
    try:
        held = store.index.hold_in_memory(limit)
    except (OSError, ValueError, OverflowError) as exc:
        log.warning("the index stays on disk until read (%s)", exc)
        return None
    if held is None:
        log.info("the index is larger than --index-mb (%d MiB): it is read as used", limit >> 20)
    else:
        log.info("the index (%.1f MiB) is held in memory", len(held) / (1 << 20))
    return held


def loader_ready(loader: LoaderProcess, timeout: float = LOADER_START_SECONDS) -> bool:
    """Wait for the loader to say it is ready (it has faulted in the start of its arena), so
    the first reads after the mount have it; False, and it is killed, if it does not within
    ``timeout`` seconds."""
    if loader.wait_ready(timeout):
        log.info("the chunk loader (pid %d) is ready", loader.process.pid)
        return True
    log.warning("the chunk loader did not start: chunks load in the daemon's threads")
    loader.kill()
    return False


def tune_allocator() -> None:
    """Reuse freed chunk buffers from one heap whose free top is kept small.

    By default glibc raises its mmap threshold each time a large mapped block is freed (up to
    32 MiB); decompressed chunks (256 KiB - 4 MiB) then come from the heap arenas, one per
    worker thread, and freed ones stay there: in the soak, malloc's in-use bytes stayed at ~40
    MB while its arenas grew from 70 to 180 MB. Mapping every block of 128 KiB and more
    instead kept RSS flat but cost ~18% of a cold read in page faults (each fresh page is
    faulted in and zeroed).

    So chunk buffers come from the heap (threshold fixed above MAX_CHUNK, which also stops the
    dynamic raise), all threads share one arena (two arenas grew by 19 MB in the 4-minute
    soak), and the heap is trimmed once its free top passes 8 MiB, about two of the largest
    chunks (with 32 MiB it grew by 12 MB). Measured against the 128 KiB threshold: cold read
    of the bench's large files 0.130 -> 0.096 s (median of 9, as fast as glibc's default);
    4-minute soak RSS growth +1 and -3 MB in two runs (vs +1 MB), though the level sits
    higher: 93-97 MB at the end and a 108 MB peak (vs 78 and 82 MB).
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, 1)
        libc.mallopt(M_MMAP_THRESHOLD, 8 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 8 << 20)
    except (OSError, AttributeError) as exc:  # not glibc
        log.info("allocator left as is: %s", exc)


def raise_fd_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard one: every open version file holds its packs
    open (see Store.pin_chunks) and staged files hold descriptors too; 1024 is low for that."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.info("descriptor limit stays at %d: %s", soft, exc)


def raise_read_ahead(dev: int, kib: int) -> None:
    """Let the kernel read ahead ``kib`` KiB on the mount ``dev`` (FUSE requests grow with it).

    The kernel gives a FUSE mount 128 KiB of read-ahead, so a sequential reader costs one
    request per 128 KiB. Best effort: only root may write the bdi's sysfs knob.
    """
    knob = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    try:
        knob.write_text(f"{kib}\n")
    except OSError as exc:
        log.info("read-ahead stays at the kernel default (%s: %s)", knob, exc.strerror)


async def serve(
    ops: ArtfsOperations, mountpoint: Path, ready: Readiness, poll: float, poller: RemotePoller
) -> None:
    recorder = ops.vfs.recorder
    async with trio.open_nursery() as nursery:
        ops.nursery = nursery
        nursery.start_soon(watch_signals, ops)
        nursery.start_soon(announce_ready, ops, mountpoint, ready)
        nursery.start_soon(housekeeping, ops)
        nursery.start_soon(ops.ahead.run)
        if poll > 0:
            nursery.start_soon(poll_remote, poller, poll)
        if recorder is not None:
            nursery.start_soon(flush_usage, recorder)
        if ops.loads is not None:
            nursery.start_soon(ops.loads.serve)
        await session.serve()
        nursery.cancel_scope.cancel()
    if recorder is not None:
        await write_usage(recorder)  # what was read up to the unmount
        recorder.close()


def run(args: argparse.Namespace, ready: Readiness) -> None:
    mountpoint = prepare(args.mountpoint)
    raise_fd_limit()  # before the store sizes its descriptor cache from the limit
    tune_allocator()
    store = open_store(args.home or default_home())  # clears stale LMDB reader slots
    poller = RemotePoller(store)
    with contextlib.ExitStack() as stack:
        stack.callback(close_store, store, poller)
        # Started first, so its start-up (~0.1 s) overlaps the daemon's own; the mount waits
        # for it.
        loader = start_loader(store, args.loaders, args.cache_mb << 20)
        if loader is not None:
            stack.callback(loader.stop)
        check_remote_settings(store)
        held = hold_index(store, args.index_mb << 20)
        if held is not None:
            stack.callback(held.close)
        vfs = Vfs.create(store, cache_bytes=args.cache_mb << 20, lineage=not args.no_lineage)
        if vfs.recorder is not None:
            vfs.recorder.prepare()
        map_decoders()  # the daemon decodes too: small files, and every chunk with --loaders 0
        ops = ArtfsOperations(vfs, threads=args.threads)
        if loader is not None and loader_ready(loader):
            ops.use_loader(loader, args.loaders)
        try:
            session.mount(ops, mountpoint, mount_options(args.allow_other))
        except RuntimeError:
            raise ArtfsError(
                f"mounting {mountpoint} failed: see the log above"
                + (
                    "; --allow-other needs user_allow_other in /etc/fuse.conf"
                    if args.allow_other and os.getuid() != 0
                    else ""
                )
            ) from None
        ops.enable_page_stores()
        try:
            trio.run(serve, ops, mountpoint, ready, args.poll, poller)
        finally:
            try:
                stuck = not ops.stop_page_stores()
                # A store waits for a page a read that nothing will answer holds: with the
                # connection ended it goes on, and it must be done before the session is.
                if stuck and ops.device is not None and session.abort(ops.device):
                    ops.stop_page_stores()
            finally:
                session.unmount()
            log.info("unmounted %s", mountpoint)
            log_remote_reads(store)


def close_store(store: Store, poller: RemotePoller) -> None:
    if poller.finish(REFRESH_STOP_SECONDS):
        store.close()
    else:  # closing LMDB under its write transaction could crash; exiting is safe
        log.warning("a refresh from the remote still runs: the index is left to the exit")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(args.debug)
    ready = Readiness(args.ready_fd)
    try:
        run(args, ready)
    except ArtfsError as exc:
        log.error("%s", exc)
        ready.send(f"ERROR {exc}")
        sys.exit(exc.exit_code)
    except BaseException as exc:
        ready.send(f"ERROR the daemon failed: {exc!r}")
        raise
    ready.send("ERROR the daemon stopped before the mount was ready")


if __name__ == "__main__":
    main()
