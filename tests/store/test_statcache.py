"""The stat cache's byte format (pure): what a put with a parent records per directory."""

from __future__ import annotations

from artfs.store.statcache import decode, encode


def test_a_directory_record_round_trips() -> None:
    files = {
        "one-chunk.bin": ((4096, 10**18, 10**18 + 5, 12345, 2049), bytes(range(32)), None),
        "empty": ((0, 1, 2, 3, 4), bytes(32), ()),
        "großes bild.png": (
            (3 << 20, -1, 7, 2**63, 0),
            b"\xff" * 32,
            ((b"\x01" * 32, 1 << 20), (b"\x02" * 32, 2 << 20)),
        ),
    }
    assert decode(encode(files)) == files
    assert decode(encode({})) == {}
