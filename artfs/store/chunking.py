"""Content-defined chunking (the one module importing ``pyfastcdc``).

Files are cut with FastCDC so that an insertion re-stores only the chunks around the edit. The
chunk size bounds trade dedup granularity against index size: 256 KiB minimum, about 1 MiB on
average (pyfastcdc's average is ``avg_size + min_size``), 4 MiB maximum. A file no larger than
the minimum is one chunk and is read with a plain ``read`` (no mmap set-up for small files).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from pyfastcdc import FastCDC

from artfs.errors import InputError

MIN_CHUNK = 256 << 10
AVG_CHUNK = 1 << 20
MAX_CHUNK = 4 << 20

_chunker = FastCDC(AVG_CHUNK - MIN_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


def chunk_buffer(data: bytes | memoryview) -> Iterator[memoryview]:
    """Cut an in-memory buffer; yields views into ``data``."""
    if len(data) <= MIN_CHUNK:
        yield memoryview(data)
        return
    for chunk in _chunker.cut_buf(data):
        yield chunk.data


def chunk_file(
    path: str | os.PathLike[str], size: int, identity: tuple[int, int] | None = None
) -> Iterator[memoryview]:
    """Cut the file at ``path`` of expected ``size``; each chunk is its own buffer.

    With ``identity`` (st_dev, st_ino seen when the tree was scanned), the opened file must be
    that file: a path swapped for a symlink to somewhere else between scan and read is
    refused, so staging cannot be tricked into storing a file its writer may not read. The
    file is read through its descriptor, never mmapped: a file truncated while it is read
    gives a short read (reported by the caller as a changed file), not SIGBUS.
    """
    if size <= MIN_CHUNK:
        data = read_small(path, size, identity)
        if data:
            yield memoryview(data)
        return
    fd = _open(path, identity)
    try:
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as stream:
            for chunk in _chunker.cut_stream(stream):
                # A streamed chunk's view is reused for the next one: keep a copy.
                yield memoryview(bytes(chunk.data))
    finally:
        os.close(fd)


def read_small(
    path: str | os.PathLike[str], size: int, identity: tuple[int, int] | None = None
) -> bytes:
    """The content of a file expected to be ``size <= MIN_CHUNK`` bytes (one chunk), checked
    as :func:`chunk_file` checks it, in one ``read``: one byte more is asked for, so a file
    that grew shows up as a size mismatch. ``os.read`` on a raw descriptor: a third of the
    cost of ``open().read()`` here."""
    fd = _open(path, identity)
    try:
        return os.read(fd, size + 1)
    finally:
        os.close(fd)


def _open(path: str | os.PathLike[str], identity: tuple[int, int] | None) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    if identity is not None:
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        if (st.st_dev, st.st_ino) != identity:
            os.close(fd)
            raise InputError(f"{path}: changed while it was being stored; try again")
    return fd
