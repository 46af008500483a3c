"""A version directory's ``readdir`` replies filled ahead, while the event loop waits.

A walk (``find``, ``du``, ``ls -R``, ``os.walk``) reads a version's directories one after the
other, and between two of its requests the daemon waits: the kernel takes a reply of ~780
children in 4-5 ms (an inode and a dentry each), and the walker then ``stat``s what it listed.
The daemon's own part of a reply, an attributes object filled per child, took ~2 ms of that
round; a directory's first reply also waited for its listing to be read from the tree pages.
:class:`RepliesAhead` does that work in the waits, so that a reply mostly only sends
(docs/perf.md, "Thirtieth pass"):

- after each reply of a directory that has more children, the objects of its next reply (as
  many children as the last one held) are filled, first of all;
- after the first reply of a version directory, the listings of its first child directories
  are read, and the objects of their first replies filled, in name order.

The work goes in steps (:data:`STEP` children filled, :data:`SCAN_STEP` looked at for
directories, or one tree page read), with a checkpoint after each, so that a request waits at
most one step; the next replies asked for meanwhile go before the next step of a child
directory. A reply sends the object filled for each child and
hands it back to be filled again (pyfuse3 copies a reply into the kernel's buffer); a child
with none is filled in the reply's one shared object, as before. What was filled and not sent
is bounded (:data:`MADE_LIMIT` objects, :data:`LISTINGS_LIMIT` directories, the directory
touched least recently given up first; child directories take at most half of each) and given
up when its directory is read to its end or its handle closed. A directory's children are
looked at once a listing (a polled ``ls`` reads nothing ahead again), its first
:data:`SCAN_LIMIT` only, and a child of more than :data:`CHILD_ENTRIES` is not read ahead.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import pyfuse3
import trio

from artfs.errors import ArtfsError
from artfs.fs.listings import Listing
from artfs.vfs import Vfs, listing_base

log = logging.getLogger("artfsd")

# Children filled, and children looked at for directories, between two checkpoints: ~0.1-0.2
# ms of the event loop each.
STEP = 64
SCAN_STEP = 128
# Objects filled and not sent yet, over every directory (a reply of the bench's walk holds
# ~780), ~250 bytes each, and directories holding some.
MADE_LIMIT = 16384
LISTINGS_LIMIT = 64
# Child directories read ahead after a directory's first reply, among its first SCAN_LIMIT
# children, and at most CHILD_ENTRIES children each; next replies and directories whose
# children wait to be looked at, queued at most.
CHILDREN_AHEAD = 16
SCAN_LIMIT = 4096
CHILD_ENTRIES = 65536
QUEUED = 16
# Listings whose children were looked at, remembered: each only once.
LOOKED_AT = 1024
# The children of a first reply filled ahead until a reply cut short by the kernel's buffer
# says how many fit (the bench's walk: ~780).
FIRST_REPLY = 512

NewReply = Callable[[], pyfuse3.EntryAttributes]  # an object with a version child's fixed fields
# Fills an object for child ``index`` of a listing numbered from ``base``.
FillReply = Callable[[pyfuse3.EntryAttributes, Listing, int, int], None]


class RepliesAhead:
    """Replies of version directories filled ahead. :meth:`run` is the task that fills them;
    :meth:`made_for`, :attr:`spare` and :meth:`sent` are the ``readdir`` handler's."""

    def __init__(self, vfs: Vfs, new: NewReply, fill: FillReply) -> None:
        self._vfs = vfs
        self._new = new
        self._fill = fill
        # Taken up in this order: (listing, first child, children) of the next replies of
        # directories being read; (parent, child index) of child directories to read ahead;
        # directories whose children are to be looked at.
        self._next: deque[tuple[Listing, int, int]] = deque(maxlen=QUEUED)
        self._children: deque[tuple[Listing, int]] = deque(maxlen=CHILDREN_AHEAD)
        self._parents: deque[Listing] = deque(maxlen=QUEUED)
        # Objects filled and not sent, by listing (the one touched least recently first) and
        # child index; no listing with none.
        self._made: dict[Listing, dict[int, pyfuse3.EntryAttributes]] = {}
        # id() of the listings whose children were looked at, the oldest first: a listing read
        # again after the cache let it go is looked at again (its object is new; an id reused
        # by another listing only costs that one its read-ahead).
        self._looked_at: dict[int, None] = {}
        # Objects sent, to be filled again.
        self.spare: list[pyfuse3.EntryAttributes] = []
        self._reply_size = FIRST_REPLY
        self._wake = trio.Event()

    @property
    def made(self) -> int:
        """Objects filled and not sent."""
        return sum(map(len, self._made.values()))

    def made_for(self, listing: Listing) -> dict[int, pyfuse3.EntryAttributes] | None:
        """The objects filled for ``listing``'s children, by index. A reply deletes each it
        sends and puts it in :attr:`spare`."""
        return self._made.get(listing)

    def sent(self, listing: Listing, start: int, stop: int) -> None:
        """A reply held children ``start`` to ``stop`` of ``listing``: fill its next one,
        and after a directory's first reply, read its child directories ahead."""
        if stop >= len(listing) or stop == start:
            self.drop(listing)  # read to its end (or nothing fits: nothing to fill)
        else:
            self._reply_size = stop - start
            self._next.append((listing, stop, stop - start))
            if self._made.get(listing) == {}:
                del self._made[listing]
        if start == 0 and stop > start and id(listing) not in self._looked_at:
            self._parents.append(listing)
        self._wake.set()

    def drop(self, listing: Listing) -> None:
        """Give up what was filled for ``listing`` (read to its end, or its handle closed)."""
        made = self._made.pop(listing, None)
        if made:
            room = max(MADE_LIMIT - len(self.spare), 0)
            self.spare += list(made.values())[:room]

    async def run(self) -> None:
        """Fill what was asked for, next replies first, until cancelled. A defect ends it
        (logged), not the daemon: replies are then filled as they are sent."""
        try:
            while True:
                if self._next:
                    await self._fill_reply(*self._next.popleft())
                elif self._children:
                    await self._read_child(*self._children.popleft())
                elif self._parents:
                    await self._look_for_directories(self._parents.popleft())
                else:
                    await self._wake.wait()
                    self._wake = trio.Event()
        except Exception:
            log.exception("readdir replies are no longer filled ahead")
            self._made.clear()

    async def _fill_reply(
        self, listing: Listing, start: int, children: int, *, urgent: bool = True
    ) -> None:
        """Fill children ``start`` to ``start + children`` of ``listing``; a directory not
        read yet (not ``urgent``) only while the objects filled stay under half the limit."""
        made = self._made.pop(listing, None) or {}
        self._made[listing] = made  # touched now: the last to be given up
        fill, base, spare = self._fill, listing_base(listing), self.spare
        stop = min(start + children, len(listing))
        for step in range(start, stop, STEP):
            if self._made.get(listing) is not made:
                return  # read to its end, or given up for room, meanwhile
            if not urgent and (
                self.made + STEP > MADE_LIMIT // 2 or len(self._made) > LISTINGS_LIMIT // 2
            ):
                break
            self._make_room(listing)
            try:
                for index in range(step, min(step + STEP, stop)):
                    if index not in made:
                        reply = spare.pop() if spare else self._new()
                        fill(reply, listing, base, index)
                        made[index] = reply
            except KeyError:  # a kind no artfs knows: the readdir that reaches it says so
                break
            await self._step(urgent=urgent)
        if not made and self._made.get(listing) is made:
            del self._made[listing]

    async def _read_child(self, parent: Listing, index: int) -> None:
        try:
            steps = self._vfs.child_listing_steps(parent, index, CHILD_ENTRIES)
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    child: Listing | None = done.value
                    break
                await self._step(urgent=False)
        except (ArtfsError, ValueError) as exc:  # a readdir of it says so, if one comes
            log.debug("a listing read ahead failed: %s", exc)
            return
        if child is not None:
            await self._fill_reply(child, 0, self._reply_size, urgent=False)

    async def _look_for_directories(self, parent: Listing) -> None:
        if id(parent) in self._looked_at:
            return
        self._looked_at[id(parent)] = None
        if len(self._looked_at) > LOOKED_AT:
            del self._looked_at[next(iter(self._looked_at))]
        found = 0
        for start in range(0, min(len(parent), SCAN_LIMIT), SCAN_STEP):
            for index in parent.directories(start, min(start + SCAN_STEP, SCAN_LIMIT)):
                self._children.append((parent, index))
                found += 1
                if found == CHILDREN_AHEAD:
                    return
            await self._step(urgent=False)

    async def _step(self, *, urgent: bool) -> None:
        """A checkpoint after a step; after a step for a directory not read yet (not
        ``urgent``), the next replies asked for meanwhile are filled first."""
        await trio.lowlevel.checkpoint()
        while not urgent and self._next:
            await self._fill_reply(*self._next.popleft())

    def _make_room(self, listing: Listing) -> None:
        """Give up the objects of the listings touched least recently (not ``listing``'s)
        while the next step could go over the limits."""
        for oldest in list(self._made):
            if self.made + STEP <= MADE_LIMIT and len(self._made) <= LISTINGS_LIMIT:
                return
            if oldest is not listing:
                self.drop(oldest)


__all__ = ["RepliesAhead"]
