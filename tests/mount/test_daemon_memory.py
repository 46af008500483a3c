"""The daemon's tables stay bounded by what is alive: processes, versions the kernel holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from artfs.lineage import Lineage
from artfs.names import ArtifactName, Ref
from artfs.store import Store
from artfs.usage import UsageRecorder
from artfs.vfs import ROOT_INODE, Vfs


def test_implicit_runs_of_exited_process_groups_are_forgotten(tmp_path: Path) -> None:
    with Store.open(tmp_path / "home") as store:
        recorder = UsageRecorder(Lineage(store))
        for _ in range(5):
            # Each reader is its own process group (a shell pipeline, a job): one implicit run.
            child = subprocess.Popen(
                [sys.executable, "-c", "import sys; sys.stdin.read()"],
                stdin=subprocess.PIPE,
                start_new_session=True,
            )
            first = recorder.run_for(child.pid, "proj")
            assert recorder.run_for(child.pid, "proj") == first
            assert child.stdin is not None
            child.stdin.close()
            child.wait()
            recorder.sweep()
        assert recorder.known_groups == 0
        assert recorder.cached_processes == 0
        recorder.flush(recorder.take())
        recorder.close()


def test_deleted_versions_the_kernel_holds_are_listed_for_invalidation(tmp_path: Path) -> None:
    with Store.open(tmp_path / "home") as store:
        for i in range(3):
            src = tmp_path / f"src{i}"
            src.mkdir()
            (src / "f.txt").write_text(str(i))
            store.put(src, ArtifactName("p", "a"))
        vfs = Vfs.create(store, lineage=False)
        project = vfs.lookup(ROOT_INODE, b"p").ino
        artifact = vfs.lookup(project, b"a").ino
        for i in range(3):
            version = vfs.lookup(artifact, f"v{i}".encode()).ino
            vfs.lookup(version, b"f.txt")
        assert vfs.deleted_versions() == []
        store.delete_version(Ref.parse("p/a:v1"))
        assert vfs.deleted_versions() == [(artifact, b"v1")]
