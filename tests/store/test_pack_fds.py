"""Pack descriptors: a bounded cache, closed once gc unlinks a pack, pinned by open files.

Before the bound, a process kept one descriptor per pack it ever read: a store of many small
packs (one per commit until gc merges them) ran out of descriptors, and a mount kept deleted
packs' space allocated for as long as it ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from artfs.names import ArtifactName, Ref
from artfs.store import Store
from artfs.store import packs as packs_module
from artfs.store.gc import collect
from artfs.store.packs import LocalPackStore
from artfs.vfs import ROOT_INODE, FileHandle, Vfs
from tests.helpers import random_bytes


def deleted_fds(store: Store) -> int:
    """Descriptors of this process on packs of ``store`` that were unlinked."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(str(store.chunks.root)) and target.endswith(" (deleted)")
    return count


def one_pack_per_artifact(store: Store, tmp_path: Path, make_tree: Any, count: int) -> None:
    for i in range(count):
        store.put(
            make_tree(tmp_path / f"src{i}", {"f.txt": f"artifact {i}\n"}),
            ArtifactName("p", f"a{i}"),
        )


def test_many_packs_read_and_verify_under_a_low_descriptor_limit(
    store: Store, home: Path, tmp_path: Path, make_tree: Any
) -> None:
    one_pack_per_artifact(store, tmp_path, make_tree, 260)
    assert len(store.chunks.pack_ids()) == 260
    script = textwrap.dedent(
        """
        import resource, sys
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
        from artfs.store import Store
        from artfs.store.verify import verify
        with Store.open(sys.argv[1]) as store:
            records = [r for p in store.projects() for _, vs in store.artifacts(p) for r in vs]
            assert len(records) == 260, len(records)
            for _ in range(2):
                for record in records:
                    (entry,) = store.files(record)
                    data = b"".join(store.iter_file(entry))
                    assert data == f"artifact {record.name[1:]}\\n".encode(), data
            assert verify(store, records) == []
            assert store.chunks.open_count <= 50, store.chunks.open_count
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(home)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_descriptor_cache_is_a_bounded_lru(
    store: Store, home: Path, tmp_path: Path, make_tree: Any
) -> None:
    one_pack_per_artifact(store, tmp_path, make_tree, 10)
    records = [r for _, vs in store.artifacts("p") for r in vs]
    packs = LocalPackStore(home / "packs", max_open=4)
    locations = []
    for record in records:
        (entry,) = store.files(record)
        loc = store.chunk_location(entry.chunks[0].chunk_id)
        assert loc is not None
        locations.append(loc)
    for _ in range(3):
        for loc in locations:
            assert packs.read(loc) == store.chunks.read(loc)
            assert packs.open_count <= 4
    packs.close()
    assert packs.open_count == 0


def test_descriptors_of_unlinked_packs_are_closed(
    store: Store, home: Path, tmp_path: Path, make_tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_pack_per_artifact(store, tmp_path, make_tree, 3)
    records = [r for _, vs in store.artifacts("p") for r in vs]
    pack_of = {}
    for record in records:
        (entry,) = store.files(record)
        store.read_chunk(entry.chunks[0])
        loc = store.chunk_location(entry.chunks[0].chunk_id)
        assert loc is not None
        pack_of[record.name] = loc.pack_id
    assert deleted_fds(store) == 0
    # Another process's gc unlinks two packs; this one still caches their descriptors.
    doomed = [pack_of[record.name] for record in records[:2]]
    for pack_id in doomed:
        os.unlink(store.chunks.path(pack_id))
    assert deleted_fds(store) == 2
    # The sweep runs at most every few seconds from reads; make it due now.
    monkeypatch.setattr(store.chunks, "_next_sweep", 0.0)
    (entry,) = store.files(records[2])
    loc = store.chunk_location(entry.chunks[0].chunk_id)
    assert loc is not None and loc.pack_id not in doomed
    store.read_chunk(entry.chunks[0])
    assert deleted_fds(store) == 0
    assert store.chunks.drop_unlinked() == 0
    assert packs_module.UNLINKED_SWEEP_SECONDS <= 10


# --- open files pin their packs ------------------------------------------------------------


def open_version_file(vfs: Vfs, path: str) -> FileHandle:
    ino = int(ROOT_INODE)
    for name in path.split("/"):
        ino = vfs.lookup(ino, name.encode()).ino
    return vfs.open(ino, os.O_RDONLY)


def test_open_file_reads_through_delete_and_gc_until_released(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    content = random_bytes(5 << 20, 7)
    store.put(make_tree(tmp_path / "doomed", {"big.bin": content}), ArtifactName("p", "doomed"))
    store.put(make_tree(tmp_path / "kept", {"k.txt": "kept\n"}), ArtifactName("p", "kept"))
    vfs = Vfs.create(store, cache_bytes=1 << 20, lineage=False)  # too small to hold the file
    fh = open_version_file(vfs, "p/doomed/v0/big.bin")
    reader = vfs.reader(fh)
    assert bytes(reader.read(0, 4096)) == content[:4096]
    store.delete_version(Ref.parse("p/doomed:v0"))
    report = collect(store)
    assert report.chunks_removed > 0 and report.packs_removed + report.packs_rewritten > 0
    # Index entries gone, pack unlinked: the handle still reads, every chunk verified.
    got = bytearray()
    while len(got) < len(content):
        got += reader.read(len(got), 1 << 20)
    assert got == content
    assert deleted_fds(store) == 1
    vfs.release(fh)
    store.chunks.drop_unlinked()  # the daemon runs this every few seconds
    assert deleted_fds(store) == 0
    assert vfs.open_files == 0


def test_open_file_reads_its_old_location_after_gc_compacts_the_pack(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    first = random_bytes(3 << 20, 1)
    store.put(make_tree(tmp_path / "a", {"a.bin": first}), ArtifactName("p", "a"))
    store.put(
        make_tree(tmp_path / "b", {"b.bin": random_bytes(1 << 20, 2)}), ArtifactName("p", "b")
    )
    vfs = Vfs.create(store, cache_bytes=1 << 20, lineage=False)
    fh = open_version_file(vfs, "p/a/v0/a.bin")
    old = set(store.chunks.pack_ids())
    report = collect(store)  # two small packs: both rewritten into a new one
    assert report.packs_rewritten == 2 and not old & set(store.chunks.pack_ids())
    reader = vfs.reader(fh)
    assert bytes(reader.read(0, len(first))) == first
    vfs.release(fh)
    again = open_version_file(vfs, "p/a/v0/a.bin")  # a new open reads the new location
    assert bytes(vfs.reader(again).read(0, len(first))) == first
    vfs.release(again)
    assert store.chunks.open_count <= store.chunks.max_open
