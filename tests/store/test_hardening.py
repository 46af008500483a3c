"""Hardening found by review: each case once let a version point at missing data, crashed a
process, or let a commit read a file it should not."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import artfs
from artfs.errors import Conflict, InputError
from artfs.names import ArtifactName
from artfs.store import Store
from artfs.store.chunking import MIN_CHUNK, chunk_file
from artfs.store.export import materialize
from artfs.store.gc import collect
from artfs.store.ingest import scan
from tests.helpers import make_tree, random_bytes, read_tree

ART = ArtifactName("proj", "data")


def test_a_draft_whose_parent_was_deleted_and_collected_is_refused(
    tmp_path: Path, home: Path
) -> None:
    src = make_tree(tmp_path / "src", {"a.bin": random_bytes(300_000, 1)})
    with artfs.init(project="proj", home=home) as run:
        parent = run.log_artifact(src, name="data", type="dataset")
        draft = parent.new_draft()
        parent.delete()
        with Store.open(home) as store:
            collect(store)
            with pytest.raises(Conflict, match="removed by gc"):
                run.log_artifact(draft)
            assert store.versions(ART) == []


def test_a_file_truncated_while_it_is_read_gives_a_short_read_not_a_crash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "growing.log"
    size = 64 << 20  # larger than the chunker's read buffer: the rest is read after the cut
    path.write_bytes(random_bytes(size, 2))
    chunks = chunk_file(path, size)
    first = next(chunks)
    os.truncate(path, len(first) + 10)  # with an mmapped file, the next access was SIGBUS
    rest = sum(len(c) for c in chunks)
    assert len(first) + rest < size  # the caller reports "changed while it was stored"


@pytest.mark.parametrize("size", [100, MIN_CHUNK * 2], ids=["one-chunk", "chunked"])
def test_a_staged_path_swapped_for_a_symlink_after_the_scan_is_refused(
    tmp_path: Path, home: Path, size: int
) -> None:
    staged = make_tree(tmp_path / "staging", {"model.bin": random_bytes(size, 3)})
    secret = tmp_path / "secret.bin"
    secret.write_bytes(random_bytes(size, 4))
    tree = scan(staged, confine=True)
    (staged / "model.bin").unlink()
    os.symlink(secret, staged / "model.bin")  # same size as what was scanned
    with Store.open(home) as store:
        with pytest.raises(InputError, match="changed while it was being stored"):
            store.commit(tree, ART)
        assert store.artifact(ART) is None


def test_a_path_that_is_both_a_file_and_a_directory_is_refused(tmp_path: Path, home: Path) -> None:
    one = make_tree(tmp_path / "one", {"x": "file"})
    two = make_tree(tmp_path / "two", {"y": "inner"})
    art = artfs.Artifact("data", type="dataset")
    art.add_file(one / "x", name="a")
    art.add_file(two / "y", name="a/b")
    with (
        artfs.init(project="proj", home=home) as run,
        pytest.raises(InputError, match="is a file and also the directory"),
    ):
        run.log_artifact(art)
    with Store.open(home) as store:
        assert store.artifact(ART) is None


def test_setuid_and_setgid_bits_never_enter_a_version(tmp_path: Path, home: Path) -> None:
    src = make_tree(tmp_path / "src", {"tool": "#!/bin/sh\n"})
    os.chmod(src / "tool", 0o6755)
    with Store.open(home) as store:
        record = store.put(src, ART).record
        assert store.files(record)[0].mode == 0o755
        materialize(store, record, tmp_path / "out")
    assert (tmp_path / "out" / "tool").stat().st_mode & 0o7777 == 0o755


def test_two_gets_into_one_directory_at_once(tmp_path: Path, home: Path) -> None:
    src = make_tree(tmp_path / "src", {f"f{i}.bin": random_bytes(200_000, i) for i in range(20)})
    dest = tmp_path / "shared-cache"
    with Store.open(home) as store:
        record = store.put(src, ART).record
        errors: list[BaseException] = []

        def get() -> None:
            try:
                materialize(store, record, dest)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=get) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert read_tree(dest) == read_tree(src)
