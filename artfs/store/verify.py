"""Verification: re-read every chunk of every file and check it against its hash.

A chunk found bad is reported for every file that uses it without being read again; a file whose
chunks are all sound is also checked against its whole-file digest.
"""

from __future__ import annotations

from collections.abc import Callable

from artfs.errors import CorruptData
from artfs.store.catalog import VersionRecord
from artfs.store.hashing import ChunkId, FileHasher
from artfs.store.repository import Store, VerifyProblem


def verify(
    store: Store, records: list[VersionRecord], progress: Callable[[int], None] | None = None
) -> list[VerifyProblem]:
    problems: list[VerifyProblem] = []
    bad: dict[ChunkId, str] = {}
    for record in records:
        for entry in store.files(record):
            hasher = FileHasher()
            reason = None
            for ref in entry.chunks:
                if ref.chunk_id in bad:
                    reason = bad[ref.chunk_id]
                    break
                try:
                    data = store.read_chunk(ref)
                except CorruptData as exc:
                    reason = bad[ref.chunk_id] = str(exc)
                    break
                hasher.update(data)
                if progress:
                    progress(ref.length)
            if reason is None and hasher.digest() != entry.digest:
                reason = "content does not match the file digest"
            if reason is not None:
                problems.append(VerifyProblem(record.ref, entry.path, reason))
    return problems
