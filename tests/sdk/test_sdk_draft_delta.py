"""``Artifact.new_draft()`` logged as changes to the version it started from
(artfs.store.delta): the version is exactly what the draft holds, with the digest a log of
the same files from scratch gets."""

from __future__ import annotations

from pathlib import Path

import pytest

import artfs
from artfs import Artifact
from artfs.errors import Conflict
from artfs.names import ArtifactName, Ref
from artfs.store import gc
from artfs.store.ingest import scan
from artfs.stores import open_store
from tests.helpers import make_tree, read_tree

ART = ArtifactName("proj", "ds")


def _files(count: int) -> dict[str, bytes | str | None]:
    return {f"shard-{i % 7}/f{i:04}.txt": f"file {i}\n" for i in range(count)}


def _logged_content(home: Path, ref: str, tmp_path: Path) -> dict[str, bytes | None]:
    out = tmp_path / ref.replace("/", "_").replace(":", "_")
    with open_store(home) as store:
        record = store.resolve(Ref.parse(ref))
        for entry in store.files(record):
            target = out / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"".join(store.iter_file(entry)))
    return read_tree(out)


def test_a_new_draft_logs_exactly_its_changes(home: Path, run: artfs.Run, tmp_path: Path) -> None:
    spec = _files(700)
    first = Artifact("ds", "dataset")
    first.add_dir(make_tree(tmp_path / "v0", spec))
    run.log_artifact(first)

    draft = first.new_draft()
    (tmp_path / "changed.txt").write_text("changed\n")
    draft.add_file(tmp_path / "changed.txt", name="shard-1/f0001.txt", overwrite=True)
    draft.remove("shard-2")  # a whole directory
    (tmp_path / "back.txt").write_text("back\n")
    draft.add_file(tmp_path / "back.txt", name="shard-2/new.txt")  # into the removed one
    draft.remove("shard-3/f0003.txt")
    draft.add_dir(make_tree(tmp_path / "extra", {"a/b.txt": "b", "c.txt": "c"}), name="extra")
    assert draft.get_entry("extra/a/b.txt").size == 1
    second = run.log_artifact(draft)
    assert second.version == "v1"

    expected = {p: v for p, v in spec.items() if not p.startswith("shard-2/")}
    del expected["shard-3/f0003.txt"]
    expected |= {
        "shard-1/f0001.txt": "changed\n",
        "shard-2/new.txt": "back\n",
        "extra/a/b.txt": "b",
        "extra/c.txt": "c",
    }
    got = _logged_content(home, "proj/ds:v1", tmp_path)
    assert {p: v for p, v in got.items() if v is not None} == {
        p: v.encode() for p, v in expected.items() if isinstance(v, str)
    }
    with open_store(tmp_path / "scratch") as scratch:
        fresh = scratch.commit(scan(make_tree(tmp_path / "expected", expected)), ART).record
    assert second.digest == fresh.digest
    assert run.log_artifact(second.new_draft()).version == "v1"  # unchanged: the same version


def test_a_draft_whose_version_was_collected_is_one_clear_error(
    home: Path, run: artfs.Run, tmp_path: Path
) -> None:
    first = Artifact("ds", "dataset")
    first.add_dir(make_tree(tmp_path / "v0", _files(50)))
    run.log_artifact(first)
    draft = first.new_draft()
    (tmp_path / "n.txt").write_text("n")
    draft.add_file(tmp_path / "n.txt")
    with open_store(home) as store:
        store.delete_version(Ref(ART, "v0"))
        gc.collect(store)
    with pytest.raises(Conflict, match=r"proj/ds:v0.*deleted and its data removed by gc"):
        run.log_artifact(draft)
