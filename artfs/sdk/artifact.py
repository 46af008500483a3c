"""``Artifact``: W&B's artifact object on the artfs store.

An artifact is a *draft* until a run logs it, then a *logged* version. A draft collects files
(``add_file``, ``add_dir``, ``new_file``), references (``add_reference``) and removals; logging
stores it as the next version (or finds the identical one). A logged artifact reads its files
(``download``, ``checkout``, ``verify``, ``file``, ``files``) and edits what W&B lets change
after logging (``description``, ``metadata``, ``aliases``, ``tags`` through ``save()``); its
files never change: ``new_draft()`` starts the next version from it, and logging that draft
stores only what changed.

``PublicRun`` is a run read back (W&B's public ``Run``: ``Api().run``, ``logged_by``,
``used_by``) with the artifacts it logged and used. It lives beside ``Artifact`` because each
builds the other; the live run of ``artfs.init`` (:mod:`artfs.sdk.run`) extends it, so
nothing here imports the live run.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from artfs import porcelain
from artfs.errors import (
    AliasesHeld,
    ArtifactFinalized,
    ArtifactMismatch,
    DuplicateEntry,
    InputError,
    NotASingleFile,
    NotFound,
    NotLogged,
    TypeMismatch,
    UnsupportedError,
)
from artfs.lineage import Lineage
from artfs.names import ArtifactName, Ref, check_alias, check_name, check_stored_path
from artfs.sdk import paths
from artfs.sdk.run_data import RunData
from artfs.store import Store, references
from artfs.store.catalog import VersionRecord
from artfs.store.export import digest_file
from artfs.store.ingest import SourceFile, SourceTree, scan, stored_mode
from artfs.store.manifest import NO_DIGEST, FileEntry
from artfs.store.repository import EditRequest, PutResult

DRAFT, COMMITTED, DELETED = "PENDING", "COMMITTED", "DELETED"


class ArtifactTTL(enum.Enum):
    """W&B's ``ArtifactTTL.INHERIT``: take the TTL policy of the team. artfs has no team
    policy, so inheriting means no TTL."""

    INHERIT = 0


TTL = timedelta | ArtifactTTL | None


@dataclass
class ArtifactManifestEntry:
    """One file of an artifact: ``path`` inside it, ``digest`` (hex BLAKE3), ``size``, and
    ``ref`` (the URI of a reference, else None)."""

    path: str
    digest: str
    size: int
    ref: str | None = None
    local_path: str | None = None
    _artifact: Artifact | None = None

    def download(self, root: str | os.PathLike[str] | None = None) -> str:
        """Write this one file below ``root`` (default: the artifact's download root)."""
        if self._artifact is None:
            raise NotLogged(f"{self.path}: only files of a logged artifact can be downloaded")
        target_root = self._artifact.download(root, path_prefix=self.path)
        return str(Path(target_root) / self.path)


class Artifact:
    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        incremental: bool = False,
        use_as: str | None = None,
    ) -> None:
        self._name = check_name(name, "artifact name")
        self.incremental = incremental
        self._ttl: TTL = ArtifactTTL.INHERIT
        self._ttl_changed = False
        self._type = check_name(type, "type")
        self.description = description
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.aliases: list[str] = []
        self.tags: list[str] = []
        self._files: dict[str, SourceFile] = {}
        self._ready: dict[str, FileEntry] = {}
        self._dirs: dict[str, FileEntry] = {}
        self._tmpdir: str | None = None
        self._store: Store | None = None
        self._record: VersionRecord | None = None
        self._project: str | None = None
        # new_draft(): the version this draft starts from, with its entries by path; logging
        # then stores only what the draft changes (artfs.store.delta).
        self._base: tuple[VersionRecord, dict[str, FileEntry]] | None = None

    # --- identity ---------------------------------------------------------------------------

    @property
    def type(self) -> str:
        return self._type

    @property
    def name(self) -> str:
        """``name`` for a draft, ``name:vN`` once logged (as in W&B)."""
        return self._name if self._record is None else f"{self._name}:v{self._record.number}"

    @property
    def qualified_name(self) -> str:
        return f"{self.project}/{self.name}"

    @property
    def project(self) -> str | None:
        return self._project

    @property
    def version(self) -> str:
        return self._logged().version

    @property
    def state(self) -> str:
        if self._record is None:
            return DRAFT
        return DELETED if self._record.state == "deleted" else COMMITTED

    @property
    def digest(self) -> str:
        return self._logged().digest

    @property
    def size(self) -> int:
        if self._record is not None:
            return self._record.size
        return sum(f.size for f in self._files.values()) + sum(e.size for e in self._ready.values())

    @property
    def created_at(self) -> str | None:
        if self._record is None:
            return None
        return datetime.fromtimestamp(self._record.created, UTC).isoformat(timespec="seconds")

    @property
    def manifest(self) -> dict[str, ArtifactManifestEntry]:
        """Path -> entry for every file of the artifact."""
        return {e.path: e for e in self.files()}

    @property
    def entity(self) -> str | None:
        """The store's entity (``artfs config entity``), if the artifact is logged in one."""
        return None if self._store is None else self._store.entity()

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def source_project(self) -> str | None:
        return self.project

    @property
    def source_qualified_name(self) -> str:
        return self.qualified_name

    @property
    def source_version(self) -> str:
        return self.version

    @property
    def file_count(self) -> int:
        if self._record is not None:
            return self._record.files
        return len(self._files) + len(self._ready)

    @property
    def url(self) -> None:
        """W&B's page of the artifact; artfs has none ('artfs show REF' prints it)."""
        return None

    def is_draft(self) -> bool:
        return self._record is None

    def wait(self, timeout: int | None = None) -> Artifact:
        """W&B waits for the upload to finish; artfs logs synchronously, so a logged artifact
        is ready at once. A draft was never logged: NotLogged."""
        self._logged()
        return self

    # --- ttl --------------------------------------------------------------------------------

    @property
    def ttl(self) -> timedelta | None:
        """How long the version lives from its creation; ``None`` is for ever. Set a
        ``timedelta``, ``None`` or ``ArtifactTTL.INHERIT`` (no TTL: artfs has no team
        policy); a logged version keeps the change once ``save()`` is called, and
        ``artfs gc`` deletes expired versions."""
        if self._ttl_changed or self._record is None:
            return self._ttl if isinstance(self._ttl, timedelta) else None
        if self._record.expires is None:
            return None
        return timedelta(seconds=round(self._record.expires - self._record.created))

    @ttl.setter
    def ttl(self, ttl: TTL) -> None:
        if ttl is not None and not isinstance(ttl, timedelta | ArtifactTTL):
            raise InputError(
                f"ttl takes a timedelta, None or ArtifactTTL.INHERIT, not {type(ttl).__name__}"
            )
        if isinstance(ttl, timedelta) and ttl.total_seconds() <= 0:
            raise InputError(f"ttl must be positive, not {ttl}")
        self._ttl, self._ttl_changed = ttl, True

    def _ttl_seconds(self) -> float | None:
        return self._ttl.total_seconds() if isinstance(self._ttl, timedelta) else None

    def __repr__(self) -> str:
        return f"<Artifact {self.qualified_name if self._project else self._name} ({self.state})>"

    # --- drafting ---------------------------------------------------------------------------

    def add_file(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        is_tmp: bool | None = False,
        skip_cache: bool | None = False,
        policy: str | None = "mutable",
        overwrite: bool = False,
    ) -> ArtifactManifestEntry:
        """Add one file as ``name`` (default: its base name). W&B's ``is_tmp``,
        ``skip_cache`` and ``policy`` have no effect: artfs reads the file when it is logged."""
        self._draft()
        source = Path(local_path)
        try:
            st = source.stat()
        except OSError:
            raise InputError(f"{source}: no such file; add_file takes an existing file") from None
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{source}: not a regular file (use add_dir for directories)")
        path = check_stored_path(name or source.name)
        self._claim(path, lambda: digest_file(source).hex(), overwrite)
        self._files[path] = SourceFile(
            path,
            source,
            st.st_size,
            stored_mode(st.st_mode),
            st.st_mtime_ns,
        )
        return self.get_entry(path)

    def add_dir(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        skip_cache: bool | None = False,
        policy: str | None = "mutable",
        merge: bool = False,
    ) -> None:
        """Add a directory tree below ``name`` (default: the root). A path already added
        with other content is a DuplicateEntry unless ``merge`` (then the new file wins)."""
        self._draft()
        tree = scan(Path(local_path), prefix=check_stored_path(name) if name else "")
        for source in tree.files:
            self._claim(source.path, lambda s=source: digest_file(s.source).hex(), merge)
        for source in tree.files:
            # Read by path at log time, like add_file: a file replaced meanwhile is stored as is.
            self._files[source.path] = dataclasses.replace(source, identity=None)
        for entry in tree.dirs:
            self._dirs[entry.path] = entry

    @contextmanager
    def new_file(
        self, name: str, mode: str = "x", encoding: str | None = None
    ) -> Iterator[IO[Any]]:
        """Write a new file into the artifact; it joins the artifact when closed."""
        self._draft()
        path = check_stored_path(name)
        if path in self._files or path in self._ready:
            raise DuplicateEntry(f"{self._name} already has a file {path!r}")
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="artfs-draft-")
        local = Path(self._tmpdir) / path
        local.parent.mkdir(parents=True, exist_ok=True)
        with open(local, mode, encoding=encoding) as handle:
            yield handle
        self.add_file(local, path)

    def add_reference(
        self,
        uri: str,
        name: str | None = None,
        checksum: bool = True,
        max_objects: int | None = None,
    ) -> list[ArtifactManifestEntry]:
        self._draft()
        entries = references.describe(uri, name, checksum=checksum, max_objects=max_objects)
        for entry in entries:
            self._claim(entry.path, lambda e=entry: e.digest.hex(), False)
        for entry in entries:
            self._ready[entry.path] = entry
        return [self.get_entry(e.path) for e in entries]

    def add(
        self, obj: Any, name: str | None = None, overwrite: bool = False
    ) -> ArtifactManifestEntry | list[ArtifactManifestEntry] | None:
        """Add a file or directory (a path) or a reference (a ``scheme://`` URI). W&B's media
        objects (``wandb.Table``, ``wandb.Image``, ...) are not modelled by artfs: write them
        to a file and add that."""
        if isinstance(obj, str) and "://" in obj:
            return self.add_reference(obj, name)
        if isinstance(obj, str | os.PathLike):
            if Path(obj).is_dir():
                self.add_dir(obj, name)
                return None
            return self.add_file(obj, name, overwrite=overwrite)
        raise UnsupportedError(
            f"{type(obj).__name__} is not a path or URI: artfs stores files, not W&B media "
            "objects; write it to a file (a table as CSV or JSON, an image as PNG) and add that"
        )

    def remove(self, item: str | os.PathLike[str] | ArtifactManifestEntry) -> None:
        """Take a file, or a directory with everything below it, out of the draft (W&B takes
        a path or a manifest entry)."""
        self._draft()
        path = item.path if isinstance(item, ArtifactManifestEntry) else os.fspath(item)
        prefix = path.rstrip("/") + "/"
        doomed = [p for p in [*self._files, *self._ready] if p == path or p.startswith(prefix)]
        if not doomed:
            raise NotFound(f"{self._name} has no file or directory {path!r}")
        for p in doomed:
            self._files.pop(p, None)
            self._ready.pop(p, None)
        for d in [d for d in self._dirs if d == path or d.startswith(prefix)]:
            del self._dirs[d]

    def get_entry(self, name: str) -> ArtifactManifestEntry:
        if self._record is None:  # a draft: one lookup, not a listing of every file
            found = self._drafted(name)
            if found is None:
                raise NotFound(f"{self.name} has no file {name!r}")
            return found
        for entry in self.files():
            if entry.path == name:
                return entry
        raise NotFound(f"{self.name} has no file {name!r}")

    get_path = get_entry

    def _claim(self, path: str, digest: Any, overwrite: bool) -> None:
        """Allow ``path`` into the draft unless it holds different content (W&B's rule)."""
        existing = self._files.get(path) or self._ready.get(path)
        if existing is None or overwrite:
            self._files.pop(path, None)
            self._ready.pop(path, None)
            return
        old = (
            digest_file(existing.source).hex()
            if isinstance(existing, SourceFile)
            else existing.digest.hex()
        )
        if old != digest():
            raise DuplicateEntry(
                f"{self._name} already has a different file at {path!r}: "
                "pass overwrite=True to replace it"
            )

    def _draft(self) -> None:
        if self._record is not None:
            raise ArtifactFinalized(
                f"{self.qualified_name} is logged and its files cannot change: "
                "call new_draft() to start the next version"
            )

    def _source_tree(self) -> SourceTree:
        return SourceTree(
            files=list(self._files.values()),
            dirs=list(self._dirs.values()),
            ready=list(self._ready.values()),
        )

    # --- logging (called by Run) ------------------------------------------------------------

    def _log(
        self,
        store: Store,
        project: str,
        run_id: str | None,
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Artifact:
        """Store the draft; ``aliases`` and ``tags`` join the draft's own only if it works."""
        self._draft()
        art = ArtifactName(check_name(project, "project name"), self._name)
        if self.incremental:
            self._add_base(store, art)
        try:
            result = self._put(
                store,
                art,
                type_=self._type,
                aliases=[
                    check_alias(a) for a in [*self.aliases, *(aliases or [])] if a != "latest"
                ],
                description=self.description,
                metadata=self.metadata,
                tags=[*self.tags, *(tags or [])],
                logged_by=run_id,
                ttl_seconds=self._ttl_seconds(),
            )
        except TypeMismatch:
            # The store's message speaks CLI (--type); say it in SDK terms. In a remote-backed
            # store the type may be fixed by remote versions not here yet: its message stands.
            known = store.artifact(art)
            if known is None:
                raise
            fixed = known.type
            raise TypeMismatch(
                f"{art} is of type {fixed!r}, not {self._type!r}: "
                f"create the Artifact with type={fixed!r} or use another name"
            ) from None
        self._bind(store, result.record)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        return self

    def _put(self, store: Store, art: ArtifactName, **options: Any) -> PutResult:
        """Store the draft: from scratch, or as the changes to the version it started from."""
        if self._base is None:
            return porcelain.put(store, self._source_tree(), art, **options)
        base, entries = self._base
        return porcelain.put_onto(store, base, entries, self._source_tree(), art, **options)

    def _add_base(self, store: Store, art: ArtifactName) -> None:
        """W&B's ``incremental=True``: the files of the latest version that this draft does
        not replace join it, so the new version is the latest plus the draft's changes."""
        if not store.versions(art):
            return
        base = store.resolve(Ref(art))
        drafted = {*self._files, *self._ready}
        for entry in store.entries(base):
            if entry.is_dir:
                self._dirs.setdefault(entry.path, entry)
            elif entry.path not in drafted:
                self._ready[entry.path] = entry

    def _bind(self, store: Store, record: VersionRecord) -> None:
        self._store, self._record, self._project = store, record, record.project
        self._name, self._type = record.name, record.type
        self.description = record.description
        self.metadata = dict(record.metadata)
        self.aliases = list(record.aliases)
        self.tags = list(record.tags)
        self._ttl, self._ttl_changed = ArtifactTTL.INHERIT, False
        self._files.clear()
        self._ready.clear()
        self._dirs.clear()
        self._base = None

    @classmethod
    def _from_record(cls, store: Store, record: VersionRecord) -> Artifact:
        artifact = cls(record.name, record.type)
        artifact._bind(store, record)
        return artifact

    def _logged(self) -> VersionRecord:
        if self._record is None:
            raise NotLogged(f"artifact {self._name!r} is not logged yet: log it with a run first")
        return self._record

    def _logged_store(self) -> Store:
        self._logged()
        assert self._store is not None
        return self._store

    @property
    def _ref(self) -> Ref:
        record = self._logged()
        return Ref(record.artifact, record.version)

    # --- reading a logged version -----------------------------------------------------------

    def files(
        self, names: list[str] | None = None, per_page: int = 50
    ) -> list[ArtifactManifestEntry]:
        """The entries of the artifact (only those at ``names`` when given), by path."""
        found = self._all_files()
        if names is not None:
            wanted = set(names)
            found = [e for e in found if e.path in wanted]
        return found

    def _drafted(self, path: str) -> ArtifactManifestEntry | None:
        """The manifest entry of a draft's file at ``path``, if any."""
        source = self._files.get(path)
        if source is not None:
            return ArtifactManifestEntry(path, "", source.size, local_path=str(source.source))
        entry = self._ready.get(path)
        return (
            None
            if entry is None
            else ArtifactManifestEntry(path, _hex(entry), entry.size, ref=entry.uri)
        )

    def _all_files(self) -> list[ArtifactManifestEntry]:
        if self._record is None:
            drafted = [self._drafted(path) for path in sorted({*self._files, *self._ready})]
            return [e for e in drafted if e is not None]
        store = self._logged_store()
        return [
            ArtifactManifestEntry(e.path, _hex(e), e.size, ref=e.uri, _artifact=self)
            for e in store.files(self._record)
        ]

    def _default_root(self) -> Path:
        return Path("artifacts") / self.name

    def download(
        self,
        root: str | os.PathLike[str] | None = None,
        allow_missing_references: bool = False,
        skip_cache: bool | None = None,
        path_prefix: str | None = None,
        multipart: bool | None = None,
    ) -> str:
        """Write the files below ``root`` (default ``./artifacts/NAME:vN``); files already
        there with the right digest are not rewritten. Returns the root. (W&B's
        ``skip_cache`` and ``multipart`` concern its download cache: no effect here.)"""
        target = Path(root) if root is not None else self._default_root()
        porcelain.get(
            self._logged_store(),
            self._logged(),
            target,
            path_prefix=path_prefix,
            allow_missing_references=allow_missing_references,
        )
        return str(target)

    def checkout(self, root: str | os.PathLike[str] | None = None) -> str:
        """Make ``root`` hold exactly this version: download, then delete files not in it."""
        target = Path(self.download(root))
        wanted = {e.path for e in self.files()}
        for path in sorted(target.rglob("*"), reverse=True):
            rel = path.relative_to(target).as_posix()
            if path.is_file() or path.is_symlink():
                if rel not in wanted:
                    path.unlink()
            elif (
                path.is_dir()
                and not any(path.iterdir())
                and not any(w.startswith(rel + "/") for w in wanted)
            ):
                path.rmdir()
        return str(target)

    def verify(self, root: str | os.PathLike[str] | None = None) -> None:
        """Raise ArtifactMismatch unless ``root`` holds exactly this version's files."""
        target = Path(root) if root is not None else self._default_root()
        wanted = {e.path: e for e in self.files()}
        present = (
            {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
            if target.is_dir()
            else set()
        )
        for path, entry in wanted.items():
            if path not in present:
                raise ArtifactMismatch(
                    f"{target / path}: missing (expected from {self.qualified_name})"
                )
            if entry.digest and digest_file(target / path).hex() != entry.digest:
                raise ArtifactMismatch(
                    f"{target / path}: content differs from {self.qualified_name}"
                )
        extra = sorted(present - wanted.keys())
        if extra:
            raise ArtifactMismatch(f"{target / extra[0]}: not part of {self.qualified_name}")

    def file(self, root: str | os.PathLike[str] | None = None) -> str:
        """The path of the downloaded file of a single-file artifact."""
        entries = self.files()
        if len(entries) != 1:
            raise NotASingleFile(
                f"{self.qualified_name} holds {len(entries)} files, not one: use download()"
            )
        return str(Path(self.download(root)) / entries[0].path)

    # --- lineage ----------------------------------------------------------------------------

    def logged_by(self) -> PublicRun | None:
        """The run that logged this version (a run read back, as ``Api().run`` gives)."""
        record = self._logged()
        if not record.logged_by:
            return None
        store = self._logged_store()
        return PublicRun(store, Lineage(store).run(record.logged_by))

    def used_by(self) -> list[PublicRun]:
        """The runs that used this version, read back."""
        store = self._logged_store()
        return [PublicRun(store, r) for r, _ in porcelain.consumers(store, self._logged())]

    # --- after logging ----------------------------------------------------------------------

    def link(self, target_path: str, aliases: list[str] | None = None) -> Artifact:
        """Make this logged version a member of ``target_path`` (a registry collection
        ``wandb-registry-NAME/COLLECTION`` or ``[entity/]project/collection``): a version of
        its own there with the same files (their chunks are stored once) and ``aliases``.
        Returns the member. ``Run.link_artifact`` does the same and records the lineage."""
        return self._link(target_path, aliases, None)

    def _link(self, target_path: str, aliases: list[str] | None, run_id: str | None) -> Artifact:
        store = self._logged_store()
        project, name = paths.collection_name(store, target_path.partition(":")[0], None)
        return self._draft_named(name)._log(store, project, run_id, aliases)

    def finalize(self) -> None:
        """W&B freezes a draft here; artfs freezes it when it is logged, so nothing to do."""

    def get(self, name: str) -> Any:
        raise UnsupportedError(
            f"get({name!r}) returns a W&B media object, which artfs does not model: "
            "read the file with get_entry(name).download() instead"
        )

    def new_draft(self) -> Artifact:
        """A mutable copy of this version; logging it makes the next version and stores only
        the files that changed."""
        record = self._logged()
        draft = self._draft_named(record.name)
        draft._project = record.project
        draft._base = (record, {**draft._ready, **draft._dirs})
        return draft

    def _draft_named(self, name: str) -> Artifact:
        """A draft called ``name`` holding this version's files, description and metadata."""
        record = self._logged()
        draft = Artifact(name, record.type, record.description, dict(record.metadata))
        for entry in self._logged_store().entries(record):
            if entry.is_dir:
                draft._dirs[entry.path] = entry
            else:
                draft._ready[entry.path] = entry
        return draft

    def save(self, project: str | None = None, settings: Any = None) -> None:
        """Persist edits to description, metadata, aliases, tags and ttl of a logged version.
        (W&B's ``save`` also logs a draft; here a draft is logged with ``run.log_artifact``.)"""
        if self._record is None:
            raise NotLogged(
                f"artifact {self._name!r} is a draft: log it with run.log_artifact(artifact)"
            )
        record = self._logged()
        store = self._logged_store()
        wanted = {check_alias(a) for a in self.aliases if a != "latest"}
        held = {a for a in record.aliases if a != "latest"}
        tags = [check_name(t, "tag") for t in self.tags]
        # The edit first: a remote-backed store refuses a changed description, metadata or
        # tags (a published version never changes), and then no alias has moved either.
        store.edit(
            self._ref,
            EditRequest(
                description=self.description,
                metadata=self.metadata,
                add_tags=tags,
                remove_tags=sorted(set(record.tags) - set(tags)),
                ttl_seconds=self._ttl_seconds() if self._ttl_changed else None,
                clear_ttl=self._ttl_changed and self._ttl_seconds() is None,
            ),
        )
        for alias in sorted(wanted - held):
            store.set_alias(self._ref, alias)
        for alias in sorted(held - wanted):
            store.remove_alias(record.artifact, alias)
        self._bind(store, store.resolve(self._ref))

    def delete(self, delete_aliases: bool = False) -> None:
        """Delete this version; one holding custom aliases needs ``delete_aliases=True``."""
        store = self._logged_store()
        try:
            self._record = store.delete_version(self._ref, force=delete_aliases)
        except AliasesHeld as exc:
            # The store's message speaks CLI (--force); say it in SDK terms.
            record = store.resolve(self._ref)
            held = ", ".join(a for a in record.aliases if a != "latest")
            if not held:  # aliases on the remote that this index has not seen yet
                sdk = str(exc).replace("pass --force", "pass delete_aliases=True")
                raise AliasesHeld(sdk) from None
            raise AliasesHeld(
                f"{record.ref} holds the alias(es) {held}: remove them from aliases and save(), "
                "or pass delete_aliases=True"
            ) from None
        self.aliases = []


class PublicRun(RunData):
    """A run read back (``Api().run``, ``logged_by``, ``used_by``): W&B's public ``Run``,
    its record, config, summary and history (:class:`RunData`) with its artifacts. The live
    run of ``artfs.init`` extends it (:class:`artfs.sdk.run.Run`)."""

    def logged_artifacts(self) -> list[Artifact]:
        return [
            Artifact._from_record(self._store, r) for r in Lineage(self._store).outputs(self.id)
        ]

    def used_artifacts(self) -> list[Artifact]:
        return [Artifact._from_record(self._store, r) for r in Lineage(self._store).inputs(self.id)]

    def log_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Artifact:
        """Log a new version (or report the identical existing one); ``latest`` follows it."""
        artifact = self._draft_of(artifact_or_path, name, type)
        if self.disabled:
            return artifact  # W&B's disabled mode: nothing is logged
        project = artifact.project or self.project
        return artifact._log(self._store, project, self.id, aliases, tags)

    def use_artifact(
        self,
        artifact_or_name: Artifact | str,
        type: str | None = None,
        aliases: list[str] | None = None,
        use_as: str | None = None,
    ) -> Artifact:
        """The logged version named ``name:alias``, ``name:v3``, ``project/name:v3`` or
        ``entity/project/name:v3`` (a bare ``name`` means latest, in this run's project);
        records run -> version (not in disabled mode). ``aliases`` are added to it."""
        if isinstance(artifact_or_name, Artifact):
            record = artifact_or_name._logged()
        else:
            record = self._store.resolve(
                paths.artifact_ref(self._store, artifact_or_name, self.project)
            )
        if type is not None and record.type != type:
            raise TypeMismatch(
                f"{record.ref} is of type {record.type!r}, not {type!r}: pass type={record.type!r}"
            )
        if not self.disabled:
            porcelain.use(self._store, self.id, record)
        used = Artifact._from_record(self._store, record)
        if aliases:
            used.aliases = sorted({*used.aliases, *aliases})
            used.save()
        return used

    def _draft_of(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None,
        type: str | None,
    ) -> Artifact:
        """The artifact given, or a draft of a path (file or directory) or a reference URI,
        named after its last component unless ``name`` is given."""
        if isinstance(artifact_or_path, Artifact):
            return artifact_or_path
        base = Path(str(artifact_or_path).rstrip("/")).name
        artifact = Artifact(name or base, type or "unspecified")
        artifact.add(artifact_or_path)
        return artifact


def _hex(entry: FileEntry) -> str:
    return "" if entry.digest == NO_DIGEST else entry.digest.hex()
