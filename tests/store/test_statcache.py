"""The stat cache's byte format (pure): what a put with a parent records per directory."""

from __future__ import annotations

from artfs.store.statcache import ONE_CHUNK, Directory, decode, encode


def test_a_directory_record_round_trips() -> None:
    directory = Directory(
        {
            "one-chunk.bin": (4096, 10**18, 10**18 + 5, 12345, 2049, bytes(range(32)), ONE_CHUNK),
            "empty": (0, 1, 2, 3, 4, bytes(32), 0),
            "großes bild.png": (3 << 20, -1, 7, 2**63, 0, b"\xff" * 32, 2),
            "zwei": (5, 1, 2, 3, 4, b"\x03" * 32, 3),
        },
        {
            "großes bild.png": ((b"\x01" * 32, 1 << 20), (b"\x02" * 32, 2 << 20)),
            "zwei": ((b"\x04" * 32, 1), (b"\x05" * 32, 2), (b"\x06" * 32, 2)),
        },
    )
    back = decode(encode(directory))
    assert back == directory
    assert back.chunk_list("one-chunk.bin") is None
    assert back.chunk_list("empty") == ()
    assert back.chunk_list("zwei") == directory.chunks["zwei"]
    assert decode(encode(Directory())) == Directory()
