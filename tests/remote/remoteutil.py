"""Helpers for the remote tests: the ``artfs`` console script run with an S3 server's
credentials. The servers themselves are fixtures in tests/remote/conftest.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from artfs.names import ArtifactName
from artfs.remote import pages
from artfs.remote.gc import RemoteGcReport, collect
from artfs.remote.layout import TreeVersion
from artfs.remote.remote import Remote
from artfs.store.hashing import ChunkId
from artfs.store.manifest import FileEntry
from tests.helpers import ARTFS
from tests.remote.seaweed import S3Server


def remote_env(server: S3Server, home: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTFS_", "AWS_"))}
    return env | server.env | {"ARTFS_HOME": str(home)}


def run_artfs(
    server: S3Server, home: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The ``artfs`` console script on store ``home``, with the server's credentials and
    ``env`` on top; output captured, never raising on a non-zero exit."""
    return subprocess.run(
        [str(ARTFS), "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=remote_env(server, home) | env,
        timeout=90,
    )


def artfs_ok(server: S3Server, home: Path, *args: str) -> str:
    """:func:`run_artfs` that must succeed; its stdout."""
    done = run_artfs(server, home, *args)
    assert done.returncode == 0, done
    return done.stdout


def pack_keys(objects: Any, *, trees: bool) -> list[str]:
    """Keys of the ``.pack`` objects under ``packs/`` holding tree pages (``trees``) or
    chunks, told apart by their indexes."""
    found = []
    for info in objects.list("packs/"):
        if info.key.endswith(".idx"):
            index = json.loads(objects.get(info.key)[0])
            if bool(index.get("trees")) == trees:
                found.append(info.key.removesuffix(".idx") + ".pack")
    return sorted(found)


def remote_files(remote: Remote, art: ArtifactName, number: int) -> list[FileEntry]:
    """The files of a version on ``remote``, whatever the format of its record (pages
    fetched and checked through :mod:`artfs.remote.pages`)."""
    version = remote.read_version(art, number)
    if not isinstance(version, TreeVersion):
        return [e for e in version.entries if not e.is_dir]
    got, _ = pages.fetch_tree(remote, version.root, lambda _: False, remote.chunk_map(), "test")
    return [e for data in got.values() for e in pages.files(data)]


def used_packs(remote: Remote, art: ArtifactName, number: int) -> set[str]:
    """The packs holding a version's pages, chunks and the dictionaries they need (every
    copy, condemned packs included)."""
    version = remote.read_version(art, number)
    if not isinstance(version, TreeVersion):
        return {loc.pack for loc in version.chunks.values()}
    every = remote.every_pack()
    where = {cid: loc for chunks in every.values() for cid, loc in chunks.items()}
    got, _ = pages.fetch_tree(remote, version.root, lambda _: False, where, "test")
    ids = {ChunkId(p) for p in got} | {
        c.chunk_id for data in got.values() for e in pages.files(data) for c in e.chunks
    }
    ids |= {d for c in ids if (d := remote.chunk_dictionary(c, where[c])) is not None}
    return {pack for pack, chunks in every.items() if ids & chunks.keys()}


def gc_until(
    remote: Remote, done: Callable[[RemoteGcReport], bool], grace: float = 1.0, timeout: float = 30
) -> RemoteGcReport:
    """Run remote gc until ``done(total)``, where ``total`` adds up every run so far
    (``packs_live`` is the last run's). The grace period is measured by the server's clock,
    and the two packs of one push can be written in different seconds of it (on a loaded
    machine), so one run may condemn or delete one of them and the next run the other."""
    deadline = time.monotonic() + timeout
    total = RemoteGcReport()
    while True:
        report = collect(remote, grace)
        total = RemoteGcReport(
            records_removed=total.records_removed + report.records_removed,
            packs_deleted=total.packs_deleted + report.packs_deleted,
            bytes_reclaimed=total.bytes_reclaimed + report.bytes_reclaimed,
            packs_condemned=total.packs_condemned + report.packs_condemned,
            packs_spared=total.packs_spared + report.packs_spared,
            packs_live=report.packs_live,
        )
        if done(total):
            return total
        assert time.monotonic() < deadline, f"gc never got there: {total}"
        time.sleep(0.3)
