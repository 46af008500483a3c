"""Verification: re-read every chunk of every file and check it against its hash.

A chunk found bad is reported for every file that uses it without being read again; a file whose
chunks are all sound is also checked against its whole-file digest. A sound chunk's block
digests (``hashing.block_digests``, which the mount's reads in blocks check) must be its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from artfs.errors import CorruptData
from artfs.store.catalog import VersionRecord
from artfs.store.hashing import ChunkId, FileHasher, block_digests
from artfs.store.manifest import FileEntry
from artfs.store.repository import Store, VerifyProblem


@dataclass
class Verified:
    """What :func:`check` found: the problems, and the files checked and left unchecked."""

    problems: list[VerifyProblem]
    files: int  # files whose bytes were read and checked
    references: int  # reference entries: their bytes are not in the store


def verify(
    store: Store, records: list[VersionRecord], progress: Callable[[int], None] | None = None
) -> list[VerifyProblem]:
    """Every problem found in ``records``: damaged file lists, chunks and file contents (see
    :func:`check`)."""
    return check(store, records, progress).problems


def check(
    store: Store, records: list[VersionRecord], progress: Callable[[int], None] | None = None
) -> Verified:
    """Check ``records``: damaged file lists, chunks and file contents.

    References are skipped and counted: their bytes are not in the store (they are checked
    when fetched).
    """
    found = Verified([], 0, 0)
    bad: dict[ChunkId, str] = {}
    for record in records:
        try:
            files = store.files(record)
        except CorruptData as exc:
            found.problems.append(VerifyProblem(record.ref, "", str(exc)))
            continue
        for entry in files:
            if entry.is_reference:
                found.references += 1
                continue
            found.files += 1
            reason = _check_file(store, entry, bad, progress)
            if reason is not None:
                found.problems.append(VerifyProblem(record.ref, entry.path, reason))
    return found


def _check_file(
    store: Store,
    entry: FileEntry,
    bad: dict[ChunkId, str],
    progress: Callable[[int], None] | None,
) -> str | None:
    hasher = FileHasher()
    for ref in entry.chunks:
        if ref.chunk_id in bad:
            return bad[ref.chunk_id]
        try:
            data = store.read_chunk(ref)
        except CorruptData as exc:
            bad[ref.chunk_id] = str(exc)
            return bad[ref.chunk_id]
        try:
            blocks = store.chunk_blocks(ref.chunk_id)
        except CorruptData as exc:
            bad[ref.chunk_id] = f"the block digests of a sound chunk: {exc}"
            return bad[ref.chunk_id]
        if blocks is not None and blocks != block_digests(data):
            # The bytes are sound; reads at random of them fall back to whole chunks.
            bad[ref.chunk_id] = (
                f"the block digests of chunk {ref.chunk_id.hex()[:16]} do not match it (its "
                "bytes are sound): restore the index from a backup"
            )
            return bad[ref.chunk_id]
        hasher.update(data)
        if progress:
            progress(ref.length)
    if hasher.digest() != entry.digest:
        return "content does not match the file digest"
    return None
