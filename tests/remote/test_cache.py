"""The local chunk cache of remote-backed stores: bounds, LRU eviction, crash-safe inserts,
damaged entries, and the ``artfs cache ls|prune`` commands. No server needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from artfs.errors import InvalidName
from artfs.remote.cache import DiskChunkCache, parse_size
from artfs.store import codec
from artfs.store.hashing import ChunkId, chunk_id
from tests.helpers import ARTFS, random_bytes, text_bytes

KIB = 1 << 10


def _chunk(seed: int, size: int = 64 * KIB) -> tuple[ChunkId, int, bytes, int, bytes]:
    """A chunk as the cache takes it: (id, codec, stored payload, raw length, raw bytes)."""
    raw = text_bytes(size, seed)
    codec_id, payload = codec.encode(raw)
    return chunk_id(raw), int(codec_id), payload, len(raw), raw


def _cache(root: Path, max_bytes: int = 1 << 30, min_free: int | None = 0) -> DiskChunkCache:
    cache = DiskChunkCache(root, max_bytes, min_free)
    (root / "chunks").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    return cache


def _entry_path(cache: DiskChunkCache, cid: ChunkId) -> Path:
    return cache.root / "chunks" / cid.hex()[:2] / cid.hex()


def test_a_chunk_comes_back_verified_and_counts_hits(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "c")
    cid, codec_id, payload, raw_length, raw = _chunk(1)
    assert cache.get(cid) is None
    assert cache.put(cid, codec_id, payload, raw_length)
    assert cache.get(cid) == raw
    assert (cache.hits, cache.misses) == (1, 1)
    usage = cache.usage()
    assert usage.entries == 1 and usage.bytes == _entry_path(cache, cid).stat().st_size
    assert list((cache.root / "tmp").iterdir()) == []  # the temporary file was renamed


def test_a_damaged_entry_is_dropped_never_returned(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "c")
    cid, codec_id, payload, raw_length, raw = _chunk(2)
    cache.put(cid, codec_id, payload, raw_length)
    path = _entry_path(cache, cid)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    assert cache.get(cid) is None
    assert not path.exists() and cache.dropped == 1
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"short")  # a torn entry (as if written without the rename)
    assert cache.get(cid) is None and not path.exists()
    cache.put(cid, codec_id, payload, raw_length)  # the caller fetches it again
    assert cache.get(cid) == raw


def _raw_chunk(seed: int, size: int) -> tuple[ChunkId, int, bytes, int, bytes]:
    raw = random_bytes(size, seed)  # incompressible: stored raw, entries of known size
    return chunk_id(raw), int(codec.Codec.RAW), raw, size, raw


def test_the_size_limit_evicts_least_recently_used(tmp_path: Path) -> None:
    chunks = [_raw_chunk(seed, 100 * KIB) for seed in range(5)]
    cache = _cache(tmp_path / "c", max_bytes=int(3.5 * 100 * KIB))
    for cid, codec_id, payload, raw_length, _ in chunks[:3]:
        cache.put(cid, codec_id, payload, raw_length)
    # Make the order of use explicit: 0 oldest, then 2, then 1 (read just now).
    now = time.time()
    for age, index in ((300, 0), (200, 1), (100, 2)):
        os.utime(_entry_path(cache, chunks[index][0]), (now - age, now - age))
    assert cache.get(chunks[1][0]) == chunks[1][4]  # a hit refreshes an old entry's position

    def cached() -> list[int]:
        return [i for i, c in enumerate(chunks) if _entry_path(cache, c[0]).exists()]

    cache.put(*chunks[3][:4])  # a fourth entry passes the limit: the oldest goes
    assert cached() == [1, 2, 3]
    cache.put(*chunks[4][:4])  # then 2, last used before 1 was read
    assert cached() == [1, 3, 4]
    assert cache.usage().bytes <= cache.max_bytes


def test_a_free_space_floor_above_the_free_space_keeps_nothing(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    cache = _cache(tmp_path / "c", min_free=free + (1 << 40))
    cid, codec_id, payload, raw_length, _ = _chunk(3)
    assert cache.put(cid, codec_id, payload, raw_length) is False
    assert cache.usage().entries == 0 and cache.usage().min_free_bytes == free + (1 << 40)


def test_a_chunk_that_cannot_fit_is_refused_without_emptying_the_cache(tmp_path: Path) -> None:
    small = [_raw_chunk(seed, 100 * KIB) for seed in range(2)]
    cache = _cache(tmp_path / "c", max_bytes=300 * KIB)
    for cid, codec_id, payload, raw_length, _ in small:
        assert cache.put(cid, codec_id, payload, raw_length)
    big = _raw_chunk(9, 400 * KIB)  # larger than the whole cache may hold
    assert cache.put(*big[:4]) is False
    assert cache.usage().entries == 2
    assert [cache.get(c[0]) for c in small] == [c[4] for c in small]
    # Nor when the free-space floor could not be kept even with the cache emptied.
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    floored = DiskChunkCache(cache.root, 1 << 30, free + (1 << 40))
    assert floored.put(*_raw_chunk(10, 100 * KIB)[:4]) is False
    assert cache.usage().entries == 2


_WRITER = """
import sys
from pathlib import Path
from artfs.remote.cache import DiskChunkCache
from artfs.store import codec
from artfs.store.hashing import chunk_id
from tests.helpers import random_bytes

cache = DiskChunkCache.open(Path(sys.argv[1]))
for seed in range(100_000):
    raw = random_bytes(512 << 10, seed)
    codec_id, payload = codec.encode(raw)
    cache.put(chunk_id(raw), int(codec_id), payload, len(raw))
"""


def test_a_writer_killed_mid_insert_leaves_only_whole_entries(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "ARTFS_CACHE_DIR": str(tmp_path / "c"), "ARTFS_CACHE_MIN_FREE": "0"}
    cache = _cache(tmp_path / "c", 1 << 40)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(home)], env=env)
    try:
        deadline = time.monotonic() + 60
        while cache.usage().entries < 5 and writer.poll() is None:
            assert time.monotonic() < deadline, "the writer made no entries"
            time.sleep(0.05)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    entries = sorted((tmp_path / "c" / "chunks").glob("*/*"))
    assert len(entries) >= 5
    for path in entries:
        assert cache.get(ChunkId(bytes.fromhex(path.name))) is not None, path
    assert cache.dropped == 0
    # What the killed writer had half-written is a temporary file, removed once stale.
    for tmp in (tmp_path / "c" / "tmp").iterdir():
        os.utime(tmp, (0, 0))
    cache.prune()
    assert list((tmp_path / "c" / "tmp").iterdir()) == []


def _cli(home: Path, cache_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
    env |= {"ARTFS_CACHE_DIR": str(cache_dir), "ARTFS_CACHE_MIN_FREE": "0"}
    return subprocess.run(
        [str(ARTFS), "--home", str(home), *args], capture_output=True, text=True, env=env
    )


def test_cache_ls_and_prune_commands(tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    cache = _cache(cache_dir)
    for seed in range(4):
        cache.put(*_raw_chunk(seed, 300 * KIB)[:4])
    done = _cli(tmp_path / "h", cache_dir, "cache", "ls", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["entries"] == 4 and listed["directory"] == str(cache_dir)
    assert listed["max_bytes"] == 10 << 30 and listed["bytes"] > 4 * 300 * KIB
    done = _cli(tmp_path / "h", cache_dir, "cache", "prune", "--max-size", "700K")
    assert done.returncode == 0, done.stderr
    assert "removed 2 chunks" in done.stdout
    assert cache.usage().entries == 2
    assert "entries    2" in _cli(tmp_path / "h", cache_dir, "cache", "ls").stdout
    done = _cli(tmp_path / "h", cache_dir, "cache", "prune", "--max-size", "lots")
    assert done.returncode == 2 and "invalid size 'lots'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("text", "size"), [("4096", 4096), ("10G", 10 << 30), ("512MiB", 512 << 20), ("1.5k", 1536)]
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_refuses_nonsense() -> None:
    with pytest.raises(InvalidName, match=r"e\.g\. 10G"):
        parse_size("-3G")
