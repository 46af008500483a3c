"""What goes in comes out: dedup, chunk reuse, empty files, symlinks, refused inputs, reads."""

import os
import random
from pathlib import Path
from typing import Any

import pytest

from artfs.errors import InputError
from artfs.names import ArtifactName
from artfs.store import Store
from artfs.store.chunking import MAX_CHUNK
from artfs.store.export import materialize
from artfs.store.ingest import scan
from artfs.store.manifest import Kind

ART = ArtifactName("proj", "data")


def content_of(store: Store, record: Any) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for entry in store.entries(record):
        found[entry.path] = None if entry.is_dir else b"".join(store.iter_file(entry))
    return found


def state(store: Store, home: Path) -> tuple[Any, ...]:
    packs = sorted((p.name, p.stat().st_size) for p in (home / "packs").iterdir())
    catalogue = [
        (r.ref, r.digest, r.aliases)
        for p in store.projects()
        for _, versions in store.artifacts(p)
        for r in versions
    ]
    return packs, catalogue


def test_put_and_read_back_a_tree(store: Store, tmp_path: Path, make_tree: Any) -> None:
    spec = {
        "a.txt": "hello\n",
        "sub/b.bin": random.Random(1).randbytes(3 << 20),
        "sub/deeper/c.csv": "x,y\n1,2\n" * 1000,
        "empty.txt": b"",
        "emptydir": None,
        "sub/emptytoo": None,
    }
    src = make_tree(tmp_path / "src", spec)
    result = store.put(src, ART)
    assert result.created
    record = result.record
    assert record.files == 4
    assert record.size == sum(len(v) for v in spec.values() if v is not None)
    got = content_of(store, record)
    expected = {k: (v.encode() if isinstance(v, str) else v) for k, v in spec.items()}
    expected["sub"] = expected["sub/deeper"] = None
    assert got == expected
    kinds = {e.path: e.kind for e in store.entries(record)}
    assert kinds["emptydir"] == Kind.DIR and kinds["empty.txt"] == Kind.FILE
    assert [e.path for e in store.files(record)] == sorted(
        k for k, v in spec.items() if v is not None
    )


def test_a_single_file_is_stored_under_its_name(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"weights")
    record = store.put(path, ART).record
    assert content_of(store, record) == {"model.pt": b"weights"}


def test_an_empty_directory_is_a_version_with_no_files(store: Store, tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    record = store.put(tmp_path / "nothing", ART).record
    assert (record.files, record.size) == (0, 0)
    assert store.files(record) == []
    materialize(store, record, tmp_path / "dest")
    assert (tmp_path / "dest").is_dir()
    assert list((tmp_path / "dest").iterdir()) == []


def test_get_keeps_content_modes_and_mtimes(store: Store, tmp_path: Path, make_tree: Any) -> None:
    src = make_tree(
        tmp_path / "src",
        {
            "run.sh": "#!/bin/sh\n",
            "ro.txt": "read only",
            "d/x": random.Random(2).randbytes(1 << 20),
        },
    )
    os.chmod(src / "run.sh", 0o755)
    os.chmod(src / "ro.txt", 0o444)
    os.chmod(src / "d", 0o750)
    os.utime(src / "ro.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    os.utime(src / "d", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    record = store.put(src, ART).record
    dest = tmp_path / "dest"
    materialize(store, record, dest)
    for rel in ("run.sh", "ro.txt", "d", "d/x"):
        a, b = (src / rel).stat(), (dest / rel).stat()
        assert oct(a.st_mode) == oct(b.st_mode), rel
        assert a.st_mtime_ns == b.st_mtime_ns, rel
        if not (src / rel).is_dir():
            assert (src / rel).read_bytes() == (dest / rel).read_bytes()


def test_get_with_a_path_prefix(store: Store, tmp_path: Path, make_tree: Any) -> None:
    src = make_tree(tmp_path / "src", {"train/a": "1", "train/b": "2", "test/c": "3"})
    record = store.put(src, ART).record
    written = materialize(store, record, tmp_path / "dest", path_prefix="train/")
    assert sorted(e.path for e in written) == ["train/a", "train/b"]
    assert not (tmp_path / "dest" / "test").exists()


def test_insertion_near_the_start_restores_one_or_two_chunks(store: Store, tmp_path: Path) -> None:
    data = random.Random(7).randbytes(12 << 20)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    first = store.put(path, ART)
    assert first.new_bytes >= len(data)  # random data is stored raw
    path.write_bytes(data[:5000] + b"\x01" * 100 + data[5000:])
    second = store.put(path, ART)
    assert second.created
    old_chunks = set(store.files(first.record)[0].chunks)
    new_chunks = [c for c in store.files(second.record)[0].chunks if c not in old_chunks]
    assert 1 <= len(new_chunks) <= 2
    assert 0 < second.new_bytes <= 2 * MAX_CHUNK
    assert second.new_bytes <= sum(c.length for c in new_chunks) + 1000
    assert b"".join(store.iter_file(store.files(second.record)[0])) == path.read_bytes()


def test_dedup_across_versions_and_artifacts(store: Store, tmp_path: Path, make_tree: Any) -> None:
    spec = {f"f{i}.bin": random.Random(i).randbytes(300_000) for i in range(5)}
    src = make_tree(tmp_path / "src", spec)
    first = store.put(src, ART)
    assert first.new_bytes >= 5 * 300_000
    other = store.put(src, ArtifactName("other", "copy"))
    assert other.created and other.new_bytes == 0
    (src / "f0.bin").write_bytes(b"changed")
    second = store.put(src, ART)
    assert second.created and second.record.version == "v1"
    assert second.new_bytes == len(b"changed")


def test_same_chunk_twice_in_one_commit_is_stored_once(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    blob = random.Random(9).randbytes(200_000)
    src = make_tree(tmp_path / "src", {"a": blob, "b": blob, "c/d": blob})
    result = store.put(src, ART)
    assert len(blob) <= result.new_bytes < 2 * len(blob)


def test_symlinks_are_followed(store: Store, tmp_path: Path, make_tree: Any) -> None:
    outside = make_tree(tmp_path / "outside", {"shared.txt": "shared", "dir/inner": "inner"})
    src = make_tree(tmp_path / "src", {"real.txt": "real"})
    (src / "link.txt").symlink_to(outside / "shared.txt")
    (src / "linkdir").symlink_to(outside / "dir")
    (src / "rel.txt").symlink_to("real.txt")
    record = store.put(src, ART).record
    assert content_of(store, record) == {
        "link.txt": b"shared",
        "linkdir": None,
        "linkdir/inner": b"inner",
        "real.txt": b"real",
        "rel.txt": b"real",
    }


def _refused(store: Store, home: Path, src: Path, match: str) -> None:
    before = state(store, home)
    with pytest.raises(InputError, match=match):
        store.put(src, ART)
    assert state(store, home) == before


@pytest.fixture
def seeded(store: Store, tmp_path: Path, make_tree: Any) -> Path:
    """A store with one version, and a source tree whose big file sorts first."""
    store.put(make_tree(tmp_path / "seed", {"x": "seed"}), ART)
    return make_tree(tmp_path / "src", {"a_big.bin": random.Random(3).randbytes(2 << 20)})


def test_fifo_is_refused_and_nothing_is_stored(store: Store, home: Path, seeded: Path) -> None:
    os.mkfifo(seeded / "zz_fifo")
    _refused(store, home, seeded, "special file")


def test_fifo_as_the_source_is_refused(store: Store, home: Path, seeded: Path) -> None:
    os.mkfifo(seeded.parent / "fifo")
    _refused(store, home, seeded.parent / "fifo", "not a regular file")


def test_dangling_symlink_is_refused(store: Store, home: Path, seeded: Path) -> None:
    (seeded / "zz_dangling").symlink_to(seeded / "nowhere")
    _refused(store, home, seeded, "points nowhere")


def test_symlink_loop_to_a_parent_is_refused(store: Store, home: Path, seeded: Path) -> None:
    (seeded / "sub").mkdir()
    (seeded / "sub" / "up").symlink_to("..")
    _refused(store, home, seeded, "loop")


def test_self_referencing_symlink_is_refused(store: Store, home: Path, seeded: Path) -> None:
    (seeded / "zz_self").symlink_to("zz_self")
    _refused(store, home, seeded, "zz_self")


def test_missing_source_is_refused(store: Store, home: Path, seeded: Path) -> None:
    _refused(store, home, seeded / "missing", "no such file")


def test_file_changing_during_put_is_refused_and_its_packs_removed(
    store: Store, home: Path, seeded: Path
) -> None:
    tree = scan(seeded)
    with open(seeded / "a_big.bin", "ab") as f:
        f.write(b"grown after the scan")
    before = state(store, home)
    with pytest.raises(InputError, match="changed while"):
        store.commit(tree, ART)
    assert state(store, home) == before


def test_large_files_are_stored_first_and_small_ones_in_tree_order(
    store: Store, tmp_path: Path, make_tree: Any
) -> None:
    """The ingest reads large files first (their chunks compress on worker threads while the
    small files are read) and appends small files in tree order, the order readers take
    them in; the version is the same whatever the order."""
    rng = random.Random(7)
    spec: dict[str, bytes | str | None] = {f"s{i:02d}.txt": f"small {i}\n" for i in range(20)}
    spec["m-big.bin"] = rng.randbytes(3 << 20)
    spec["z-big.csv"] = "a,b\n1,2\n" * 100_000
    src = make_tree(tmp_path / "src", spec)
    record = store.put(src, ART).record
    files = {e.path: e for e in store.files(record)}
    assert sorted(files) == sorted(spec) and record.files == len(spec)
    (pack_id,) = store.chunks.pack_ids()
    order = [cid for cid, _ in store.chunks.records(pack_id)]
    big = [r.chunk_id for path in ("m-big.bin", "z-big.csv") for r in files[path].chunks]
    small = [files[f"s{i:02d}.txt"].chunks[0].chunk_id for i in range(20)]
    assert order == big + small
    assert content_of(store, record) == {
        k: v.encode() if isinstance(v, str) else v for k, v in spec.items()
    }
