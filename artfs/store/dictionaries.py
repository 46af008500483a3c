"""Which small files of a commit are compressed with a trained zstd dictionary.

Files are grouped by kind, which is their name's suffix (``.json``, ``.txt``; none is a kind
too). A kind with at least :data:`MIN_FILES` files small enough for a dictionary is probed:
:data:`_PROBES` of them, spread over the tree, are read and hashed. The kind gets no dictionary
when every probe is already stored (a new version of data stored before, whose chunks are
mostly known: training would be wasted), when the probes average under :data:`_MIN_AVERAGE`
bytes (a dictionary-coded payload names its dictionary in 32 bytes, which a file of a few dozen
bytes cannot win back), or when the probes joined together do not compress at least
:data:`_SHARED_RATIO` times (what a dictionary captures is structure that files share; random
blobs such as JPEGs have none). Otherwise up to :data:`_SAMPLES` files spread over the
kind are read and a dictionary is trained, on a worker thread while the ingest goes through the
large files (zstd releases the GIL while it trains).

A dictionary is stored as a chunk only when a chunk is coded with it (see :class:`Ingest`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from artfs.store import codec
from artfs.store.chunking import read_small
from artfs.store.hashing import ChunkId, chunk_id

MIN_FILES = 64
_PROBES = 16
_SHARED_RATIO = 1.5
_MIN_AVERAGE = 96
_SAMPLES = 512
_SAMPLE_BYTES = 4 << 20
_MAX_DICT = 32 << 10
_MIN_DICT = 1 << 10


class SmallFile(Protocol):
    @property
    def path(self) -> str: ...  # in the version

    @property
    def source(self) -> str | os.PathLike[str]: ...  # on disk

    @property
    def size(self) -> int: ...


def kind(path: str) -> str:
    """The kind of a file, for dictionary purposes: its suffix, lower-cased (none for a name
    with no dot or only a leading one, as ``posixpath.splitext`` has it, at a third of its
    cost: this runs for every small file of a commit)."""
    name = path[path.rfind("/") + 1 :]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 and name[:dot].strip(".") else ""


class DictionaryPlan:
    """The dictionaries of one commit's small files, trained ahead on ``pool``."""

    def __init__(
        self,
        files: Sequence[SmallFile],
        known: Callable[[ChunkId], bool],
        pool: ThreadPoolExecutor,
    ) -> None:
        self._training: dict[str, Future[codec.Dictionary | None]] = {}
        groups: dict[str, list[tuple[str | os.PathLike[str], int]]] = {}
        limit = codec.DICT_MAX_INPUT
        for f in files:
            if 0 < f.size <= limit:
                groups.setdefault(kind(f.path), []).append((f.source, f.size))
        for name, members in groups.items():
            if len(members) >= MIN_FILES and _worth_training(members, known):
                self._training[name] = pool.submit(_train, members)

    def for_path(self, path: str) -> codec.Dictionary | None:
        """The dictionary for a small file at ``path`` in the version, if its kind has one."""
        future = self._training.get(kind(path)) if self._training else None
        return None if future is None else future.result()


def _spread(members: list[tuple[str | os.PathLike[str], int]], count: int) -> list[int]:
    step = max(1, len(members) // count)
    return list(range(0, len(members), step))[:count]


def _read(source: str | os.PathLike[str], size: int) -> bytes | None:
    try:
        return read_small(source, size)
    except OSError:
        return None  # the ingest reports it, with the file's name


def _worth_training(
    members: list[tuple[str | os.PathLike[str], int]], known: Callable[[ChunkId], bool]
) -> bool:
    probes = [_read(*members[i]) for i in _spread(members, _PROBES)]
    data = [p for p in probes if p]
    if not data or sum(map(len, data)) < _MIN_AVERAGE * len(data):
        return False
    if all(known(chunk_id(p)) for p in data):
        return False
    return codec.compression_ratio(b"".join(data)) >= _SHARED_RATIO


def _train(members: list[tuple[str | os.PathLike[str], int]]) -> codec.Dictionary | None:
    samples, total = [], 0
    for i in _spread(members, _SAMPLES):
        data = _read(*members[i])
        if data:
            samples.append(data)
            total += len(data)
            if total >= _SAMPLE_BYTES:
                break
    size = min(_MAX_DICT, total // 8)
    if size < _MIN_DICT:
        return None
    return codec.train(samples, size)
