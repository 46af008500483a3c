"""Chunk compression (the one module importing ``zstandard``).

A chunk is stored zstd-compressed at level 1 or raw. Level 1 measured 14.6x at 1.18 GB/s on
generated CSV here against 12.0x at 0.66 GB/s for level 3, so the faster level wins: ingest is
bounded by compression. Incompressible data (float32 weights, JPEGs) is detected by compressing
a 4 KiB sample from the middle first: when the sample does not shrink by at least 5% the chunk
is stored raw, which costs one sample compression instead of a full one (on 6,000 random 2-30 KiB
files this cut encoding from 0.17 s to 0.03 s).
"""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import zstandard

from artfs.errors import CorruptData
from artfs.store.hashing import ChunkId, chunk_id

Buffer = bytes | bytearray | memoryview
# The content of a dictionary chunk by id; raises CorruptData when it cannot be had intact.
Dictionaries = Callable[[ChunkId], bytes]

LEVEL = 1
# The modules of zstandard's compiled code (its C extension, or its cffi one): what
# ``artfs.fs.direct.map_code`` maps in before a cold read.
COMPILED = ("zstandard.backend_c", "zstandard._cffi")
# Below this size a zstd frame's own overhead eats most of the gain: store raw.
_TINY = 128
_SAMPLE = 4 << 10
# Compressed only when zstd saves at least a tenth: below that a chunk is stored raw, because
# every cold read of a compressed chunk pays its decoding (~0.6 ms per MiB of float32 weights
# here, which level 1 shrinks only to ~0.93) for a few percent of disk, and a raw chunk's
# read is a copy and BLAKE3 (issue 17: random reads of checkpoints went from decode-bound).
_WORTH = 0.90


# Chunks up to this size are tried with a dictionary, when their file's kind has one.
DICT_MAX_INPUT = 32 << 10
DICT_REF = 32  # a dictionary-coded payload starts with the dictionary's chunk id
# Each thread keeps (de)compressors for this many dictionaries (a commit trains a few).
_DICTS_PER_THREAD = 16


class Codec(enum.IntEnum):
    RAW = 0
    ZSTD = 1
    ZSTD_DICT = 2  # the dictionary's chunk id, then a bare zstd frame made with it


class Dictionary:
    """A trained zstd dictionary and its chunk id (BLAKE3 of ``content``)."""

    __slots__ = ("content", "id")

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.id = chunk_id(content)


_local = threading.local()
_BARE = dict(
    format=zstandard.FORMAT_ZSTD1_MAGICLESS,
    write_content_size=False,
    write_dict_id=False,
    write_checksum=False,
)


def _compressor() -> zstandard.ZstdCompressor:
    # Compressor objects are not safe to share between threads; keep one per thread.
    comp = getattr(_local, "compressor", None)
    if comp is None:
        comp = _local.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec


def _per_thread(name: str, key: ChunkId, make: Callable[[], object]) -> object:
    cache: OrderedDict[ChunkId, object] | None = getattr(_local, name, None)
    if cache is None:
        cache = OrderedDict()
        setattr(_local, name, cache)
    found = cache.get(key)
    if found is None:
        found = cache[key] = make()
        if len(cache) > _DICTS_PER_THREAD:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return found


def _dict_compressor(dictionary: Dictionary) -> zstandard.ZstdCompressor:
    def make() -> zstandard.ZstdCompressor:
        params = zstandard.ZstdCompressionParameters.from_level(LEVEL, **_BARE)
        data = zstandard.ZstdCompressionDict(dictionary.content)
        return zstandard.ZstdCompressor(dict_data=data, compression_params=params)

    return _per_thread("dict_compressors", dictionary.id, make)  # type: ignore[return-value]


def _dict_decompressor(dict_id: ChunkId, dictionaries: Dictionaries) -> zstandard.ZstdDecompressor:
    def make() -> zstandard.ZstdDecompressor:
        data = zstandard.ZstdCompressionDict(dictionaries(dict_id))
        return zstandard.ZstdDecompressor(dict_data=data, format=zstandard.FORMAT_ZSTD1_MAGICLESS)

    return _per_thread("dict_decompressors", dict_id, make)  # type: ignore[return-value]


def train(samples: Sequence[bytes], size: int) -> Dictionary | None:
    """A dictionary of at most ``size`` bytes for data like ``samples``; None when zstd finds
    nothing to learn (too few or too short samples). Releases the GIL while it trains.

    One fixed FastCover setting (k=64, d=8, one step) instead of zstd's parameter search:
    on 512 JSON labels it trains in ~6 ms instead of ~25 ms and the result compresses them
    within 5% as well.
    """
    try:
        trained = zstandard.train_dictionary(size, list(samples), k=64, d=8, steps=1, level=LEVEL)
    except zstandard.ZstdError:
        return None
    return Dictionary(trained.as_bytes())


def compression_ratio(data: Buffer) -> float:
    """How much plain zstd at the store's level shrinks ``data`` (raw size / compressed)."""
    size = memoryview(data).nbytes
    return size / max(1, len(_compressor().compress(data)))


def encode(data: Buffer, dictionary: Dictionary | None = None) -> tuple[Codec, bytes]:
    """Return the codec chosen for ``data`` and the bytes to store. With ``dictionary``, a
    small chunk is coded with it when that beats the other choices, its reference included."""
    view = memoryview(data)
    size = view.nbytes
    if dictionary is not None and size <= DICT_MAX_INPUT:
        packed = _dict_compressor(dictionary).compress(view)
        if DICT_REF + len(packed) <= _WORTH * size:
            plain = _compressor().compress(view) if size >= _TINY else b""
            if not plain or DICT_REF + len(packed) < len(plain):
                return Codec.ZSTD_DICT, dictionary.id + packed
    if size < _TINY:
        return Codec.RAW, bytes(view)
    if size > 2 * _SAMPLE:
        middle = size // 2
        sample = view[middle : middle + _SAMPLE]
        if len(_compressor().compress(sample)) > _WORTH * _SAMPLE:
            return Codec.RAW, bytes(view)
    packed = _compressor().compress(view)
    if len(packed) > _WORTH * size:
        return Codec.RAW, bytes(view)
    return Codec.ZSTD, packed


def dictionary_of(codec: int, payload: bytes) -> ChunkId | None:
    """The id of the dictionary a stored chunk needs to be decoded, if any."""
    if codec == Codec.ZSTD_DICT and len(payload) >= DICT_REF:
        return ChunkId(bytes(payload[:DICT_REF]))
    return None


def decode(
    codec: int, payload: bytes, raw_length: int, dictionaries: Dictionaries | None = None
) -> bytes:
    """Inverse of :func:`encode`; raises CorruptData when the payload cannot be decoded (also
    when it needs a dictionary that ``dictionaries`` cannot give)."""
    if codec == Codec.RAW:
        return payload
    try:
        if codec == Codec.ZSTD:
            return _decompressor().decompress(payload, max_output_size=raw_length)
        if codec == Codec.ZSTD_DICT:
            dict_id = dictionary_of(codec, payload)
            if dict_id is None or dictionaries is None:
                raise CorruptData("a dictionary-coded chunk, and no dictionary to decode it")
            frame = memoryview(payload)[DICT_REF:]
            return _dict_decompressor(dict_id, dictionaries).decompress(
                frame, max_output_size=raw_length
            )
    except zstandard.ZstdError as exc:
        raise CorruptData(f"compressed chunk does not decode: {exc}") from exc
    raise CorruptData(f"unknown chunk codec {codec}")


def decode_into(codec: int, payload: Buffer, out: memoryview) -> int:
    """Decode a zstd-coded chunk into ``out``, sized to its raw length, with no buffer of its
    own; how many bytes it wrote (fewer than ``len(out)``: the payload is short or damaged,
    and the caller's hash check refuses it). CorruptData when the payload does not decode, or
    is coded otherwise (a raw chunk needs no decoding, a dictionary-coded one a dictionary)."""
    if codec != Codec.ZSTD:
        raise CorruptData(f"chunk codec {codec} is not decoded into a buffer")
    written = 0
    try:
        reader = _decompressor().stream_reader(payload)
        while written < len(out):
            count = reader.readinto(out[written:])
            if not count:
                break
            written += count
    except zstandard.ZstdError as exc:
        raise CorruptData(f"compressed chunk does not decode: {exc}") from exc
    return written


def verified(
    cid: ChunkId,
    codec: int,
    payload: bytes,
    raw_length: int,
    dictionaries: Dictionaries | None = None,
) -> bytes | None:
    """The raw bytes of stored chunk ``cid`` if its payload decodes to ``raw_length`` bytes
    that hash to ``cid``, else None: the one check every reader of stored chunks makes (local
    packs, remote fetches, the remote chunk cache) before a byte is used. A dictionary is
    checked by ``dictionaries`` (as the chunk it is) before it is used."""
    try:
        return checked(cid, codec, payload, raw_length, dictionaries)
    except CorruptData:
        return None


def checked(
    cid: ChunkId,
    codec: int,
    payload: bytes,
    raw_length: int,
    dictionaries: Dictionaries | None = None,
) -> bytes:
    """As :func:`verified`, but CorruptData says why a chunk is refused: its dictionary's own
    error (damaged, or held where it cannot be read) when the chunk needs one that could not
    be had, else that it does not match its hash."""
    failed: list[CorruptData] = []

    def lookup(dict_id: ChunkId) -> bytes:
        assert dictionaries is not None
        try:
            return dictionaries(dict_id)
        except CorruptData as exc:
            failed.append(exc)
            raise

    try:
        raw = decode(codec, payload, raw_length, lookup if dictionaries is not None else None)
    except (CorruptData, ValueError):
        raw = None
    if raw is None or len(raw) != raw_length or chunk_id(raw) != cid:
        if failed:
            raise CorruptData(
                f"chunk {cid.hex()[:16]} needs compression dictionary "
                f"{bytes(payload[:DICT_REF]).hex()[:16]}, which cannot be read: {failed[0]}"
            )
        raise CorruptData(f"chunk {cid.hex()[:16]} does not match its hash")
    return raw
