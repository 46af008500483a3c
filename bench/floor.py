"""The least a Python ingest must do, as its own process: read every file of a tree, hash it
with BLAKE3 and append it to one file, then fsync that file. No chunking, compression, index or
version record: ``./dev bench`` times it against ``cp -a`` to show how much of ``artfs put``'s
time any Python ingest would spend. It imports ``blake3`` itself, not through
``artfs.store.hashing`` (whose package import loads the store, ~60 ms): with ``bench/ceiling.py``
(pyfuse3) the only modules outside ``artfs`` and ``daemon`` that import a library artfs wraps,
because each measures what artfs would cost without artfs.

Usage: python bench/floor.py SOURCE_DIR OUTPUT_FILE
"""

from __future__ import annotations

import os
import sys

from blake3 import blake3

_READ = 1 << 20
_WRITE = 8 << 20


def main(source: str, output: str) -> None:
    out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    pending = bytearray()
    for root, dirs, files in os.walk(source):
        dirs.sort()
        for name in sorted(files):
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                while data := os.read(fd, _READ):
                    blake3(data).digest()
                    pending += data
                    if len(pending) >= _WRITE:
                        os.write(out, pending)
                        pending.clear()
            finally:
                os.close(fd)
    os.write(out, pending)
    os.fsync(out)
    os.close(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
