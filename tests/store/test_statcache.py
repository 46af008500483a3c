"""The stat cache's byte format (pure): what a put with a parent records per directory."""

from __future__ import annotations

import pytest

from artfs.store.ingest import ROW, Listing
from artfs.store.statcache import ONE_CHUNK, Recorded, decode_dir, encode_dir

_COUNTS = (ONE_CHUNK, 0, 2, 3)


def _recorded() -> Recorded:
    rows = [
        ROW.pack(4096, 10**18, 10**18 + 5, 12345, 2049, 0o100644),
        ROW.pack(0, 1, 2, 3, 4, 0o100600),
        ROW.pack(3 << 20, -1, 7, 2**63, 0, 0o100755),
        ROW.pack(5, 1, 2, 3, 4, 0o100644),
    ]
    lists = [(b"\x01" * 32, 1 << 20), (b"\x02" * 32, 2 << 20)] + [
        (bytes([i]) * 32, i) for i in (4, 5, 6)
    ]
    return Recorded(
        "a/größer",
        True,
        "\0".join(["eins.bin", "empty", "großes bild.png", "zwei"]).encode(),
        b"".join(rows),
        b"sub\0\xff-not-utf8".decode("utf-8", "surrogateescape").encode("utf-8", "surrogateescape"),
        ROW.pack(4096, 5, 6, 7, 8, 0o40755) * 2,
        bytes(range(32)) + bytes(32) + b"\xff" * 32 + b"\x03" * 32,
        b"".join(n.to_bytes(4, "little") for n in _COUNTS),
        b"".join(cid + length.to_bytes(4, "little") for cid, length in lists),
    )


def test_a_directory_record_round_trips() -> None:
    recorded = _recorded()
    back = decode_dir(encode_dir(recorded))
    assert back == recorded
    assert back.chunks(0, 4096)[0].chunk_id == bytes(range(32))  # one chunk: the digest
    assert back.chunks(1, 0) == ()
    assert [(c.chunk_id, c.length) for c in back.chunks(3, 5)] == [
        (bytes([i]) * 32, i) for i in (4, 5, 6)
    ]
    assert [c.length for c in back.chunks(2, 3 << 20)] == [1 << 20, 2 << 20]
    assert back.pairs(b"a/") == [
        (b"a/eins.bin", bytes(range(32))),
        (b"a/empty", bytes(32)),
        ("a/großes bild.png".encode(), b"\xff" * 32),
        (b"a/zwei", b"\x03" * 32),
    ]


def test_a_record_matches_only_its_exact_listing() -> None:
    recorded = _recorded()
    listing = Listing(
        recorded.path,
        "/src",
        recorded.files.decode().split("\0"),
        recorded.file_rows,
        recorded.dirs.decode("utf-8", "surrogateescape").split("\0"),
        recorded.dir_rows,
    )
    assert recorded.matches(listing)
    assert recorded.find("zwei", recorded.file_rows[3 * ROW.size :]) == 3
    touched = ROW.pack(5, 1, 2, 3, 4, 0o100600)  # zwei after a chmod (with its ctime kept)
    assert recorded.find("zwei", touched) is None
    listing.file_rows = recorded.file_rows[: 3 * ROW.size] + touched
    assert not recorded.matches(listing)


def test_a_record_of_another_format_is_refused() -> None:
    value = bytearray(encode_dir(_recorded()))
    value[0] = 1
    with pytest.raises(ValueError, match="format"):
        decode_dir(bytes(value))
    with pytest.raises(ValueError, match="truncated"):
        decode_dir(encode_dir(_recorded())[:60])
