"""W&B's distributed artifacts: several runs (in several processes) ``upsert_artifact`` files
into one pending version named by a ``distributed_id``; ``finish_artifact`` commits it once.

The pending version is a directory of the store, ``pending/PROJECT/NAME/DISTRIBUTED_ID/``:

- ``files/``: the upserted files, each written to a temporary name and renamed into place, so
  concurrent upserts never leave a torn file and none is lost (the same path upserted twice
  keeps the last one, as in W&B);
- ``runs``: one line per upsert naming its run, appended with ``O_APPEND``;
- ``type``: the artifact type, fixed by the first upsert;
- ``done``: written by the ``finish_artifact`` that committed it, holding the version's ref;
  a later ``finish_artifact`` of the same id returns that version.

``finish_artifact`` holds the directory's lock while it commits, so exactly one commit
happens whoever calls it. The version's ``logged_by`` is the finishing run and every
contributing run is recorded as a producer (:meth:`Lineage.add_producers`): its
``logged_artifacts()`` list the version and the lineage graph names it upstream.
Upserted files are copied (W&B uploads them at once): a file changed after its upsert does not
change the pending version.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from artfs.errors import TypeMismatch, UnsupportedError, UsageError
from artfs.lineage import Lineage
from artfs.names import ArtifactName, Ref, check_name
from artfs.sdk.artifact import Artifact
from artfs.store import Store
from artfs.store.ingest import scan
from artfs.store.locks import file_lock


class Pending:
    """The pending version of one distributed artifact."""

    def __init__(self, store: Store, art: ArtifactName, distributed_id: str) -> None:
        check_name(distributed_id, "distributed_id")
        self.store = store
        self.art = art
        self.root = store.home / "pending" / art.project / art.name / distributed_id

    @property
    def files(self) -> Path:
        return self.root / "files"

    def add(self, run_id: str, artifact: Artifact, *, refs_ok: bool = False) -> None:
        """Copy the draft's files in and note the run; the type must match earlier upserts.
        References are taken only by the commit itself (``refs_ok``)."""
        if artifact._ready and not refs_ok:
            raise UnsupportedError(
                f"{artifact.name}: references cannot be upserted into a distributed artifact "
                "in artfs; add them in the finish_artifact call"
            )
        self.files.mkdir(parents=True, exist_ok=True)
        self._fix_type(artifact.type)
        for source in artifact._files.values():
            target = self.files / source.path
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upsert-")
            os.close(fd)
            shutil.copy2(source.source, tmp)
            os.replace(tmp, target)
        for entry in artifact._dirs.values():
            (self.files / entry.path).mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "runs", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (run_id + "\n").encode())
        finally:
            os.close(fd)

    def _fix_type(self, type_: str) -> None:
        path = self.root / "type"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            fixed = path.read_text()
            if fixed != type_:
                raise TypeMismatch(
                    f"distributed artifact {self.art} is being built as type {fixed!r}, "
                    f"not {type_!r}: create the Artifact with type={fixed!r}"
                ) from None
            return
        with os.fdopen(fd, "w") as handle:
            handle.write(type_)

    def finish(self, run_id: str, artifact: Artifact, aliases: list[str] | None) -> Artifact:
        """Commit the pending version once; later calls get the committed version."""
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / "lock", exclusive=True):
            done = self.root / "done"
            if done.exists():
                return Artifact._from_record(
                    self.store, self.store.resolve(Ref.parse(done.read_text()))
                )
            if artifact._files or artifact._dirs:
                self.add(run_id, artifact, refs_ok=True)
            if not self.files.is_dir():
                raise UsageError(
                    f"nothing was upserted into {self.art} with this distributed_id: "
                    "call upsert_artifact first, or log_artifact for a single run"
                )
            committed = self._commit(run_id, artifact, aliases)
            done.write_text(f"{committed.qualified_name}")
            shutil.rmtree(self.files)
        return committed

    def _commit(self, run_id: str, artifact: Artifact, aliases: list[str] | None) -> Artifact:
        draft = Artifact(
            self.art.name,
            (self.root / "type").read_text(),
            artifact.description,
            artifact.metadata,
        )
        tree = scan(self.files)
        draft._files = {f.path: f for f in tree.files}
        draft._dirs = {d.path: d for d in tree.dirs}
        draft._ready = dict(artifact._ready)
        draft.tags = list(artifact.tags)
        draft.aliases = list(artifact.aliases)
        draft._log(self.store, self.art.project, run_id, aliases)
        contributors = set((self.root / "runs").read_text().split()) - {run_id}
        Lineage(self.store).add_producers(draft._logged(), sorted(contributors))
        artifact._bind(self.store, draft._logged())
        return artifact
