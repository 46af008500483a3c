"""The files staging opens through the mount: staged files, and the virtual control files.

Pure (no pyfuse3). ``staging/.artfs-commit`` takes a commit's options and commits on the write
that completes them; ``MNT/.artfs-register`` takes a run id; ``MNT/.artfs-store`` gives the
store's id. Their handles share one number space with staged files, from
:data:`STAGED_FH_BASE` up (version files number below it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from artfs.errors import ArtfsError, Conflict, InputError, InvalidName
from artfs.fs.errors import BadRequest, CommitBusy, CommitFailed, CommitInvalid
from artfs.names import NAME_RE, STAGING_BASE_FILE, STAGING_CONTROL_FILE, ArtifactName, Ref

STAGED_FH_BASE = 1 << 62
# Staged files change under the kernel (a commit empties staging): a short cache only.
STAGED_TIMEOUT = 0.2
CONTROL_FILE = STAGING_CONTROL_FILE  # staging/.artfs-commit: write options, close -> commit
REGISTER_FILE = ".artfs-register"  # MNT/.artfs-register: write a run id -> this process's run
STORE_FILE = ".artfs-store"  # MNT/.artfs-store: the store's id (read-only), see vfs
CONTROL_MAX_BYTES = 64 << 10
BASE_FILE = STAGING_BASE_FILE  # staging/.artfs-base: write a ref -> staging based on it
_BASE_MAX_BYTES = 4096
# What a ref can start as: name characters, '/' and ':' between parts, no part starting with
# '.' or '-'; a line ends it. Bytes that can never become a ref are refused at the write,
# since close() cannot report an error (the mount answers no FLUSH).
_BASE_PREFIX_RE = re.compile(
    rb"(?:[A-Za-z0-9][A-Za-z0-9._-]*)?(?:[/:](?:[A-Za-z0-9][A-Za-z0-9._-]*)?)*\n?"
)


def commit_error(exc: ArtfsError) -> ArtfsError:
    """The control-file error (and so the errno ``close()`` returns) for a failed commit."""
    if isinstance(exc, (CommitBusy, CommitInvalid, CommitFailed)):
        return exc
    if isinstance(exc, Conflict):
        return CommitBusy(str(exc))
    if isinstance(exc, (InputError, InvalidName)):
        return CommitInvalid(str(exc))
    return CommitFailed(str(exc))


def parse_commit_options(data: bytes) -> dict[str, Any]:
    """The options written to ``.artfs-commit``: nothing, or a JSON object with any of
    ``aliases``, ``type``, ``description``, ``metadata``, ``tags``, ``force``."""
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise CommitInvalid(f"{CONTROL_FILE}: not JSON ({exc})") from None
    if not isinstance(options, dict):
        raise CommitInvalid(f'{CONTROL_FILE}: write a JSON object, e.g. {{"aliases": ["best"]}}')
    allowed = {"aliases", "type", "description", "metadata", "tags", "force"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise CommitInvalid(
            f"{CONTROL_FILE}: unknown option {unknown[0]!r}; allowed: {sorted(allowed)}"
        )
    for key in ("aliases", "tags"):
        value = options.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CommitInvalid(f"{CONTROL_FILE}: {key!r} must be a list of strings")
    if not isinstance(options.get("metadata", {}), dict):
        raise CommitInvalid(f"{CONTROL_FILE}: 'metadata' must be a JSON object")
    for key in ("type", "description"):
        if key in options and not isinstance(options[key], str):
            raise CommitInvalid(f"{CONTROL_FILE}: {key!r} must be a string")
    return options


@dataclass
class BackingFile:
    """A staged file open through the mount. A writer holds a shared ``flock`` on it until
    release, so a commit (which probes with an exclusive one) refuses while it is open."""

    fd: int
    writable: bool


@dataclass
class ControlFile:
    """An open ``staging/.artfs-commit``: bytes written are the commit's options."""

    project: str
    name: str
    pid: int
    session: int | None
    writable: bool
    run_id: str | None = None  # the opener's run: the new version's logged_by
    data: bytearray = field(default_factory=bytearray)
    pending: bool = False  # written since the last commit

    def complete(self) -> bool:
        """Whether the options written so far are a whole request: a JSON object, or
        anything ending with a newline (``echo ... > F``; what does not parse is then an
        error). Options split over several writes commit on the write that completes them."""
        text = bytes(self.data)
        if text.endswith(b"\n"):
            return True
        try:
            return isinstance(json.loads(text), dict)
        except ValueError:
            return False

    def take(self) -> CommitRequest | None:
        """The commit asked for, once a write completed the options (see :meth:`complete`).
        Only a write starts one; opening and closing the file does not."""
        if not self.pending or not self.complete():
            return None
        request = CommitRequest(
            self.project, self.name, self.session, self.run_id, bytes(self.data)
        )
        self.pending = False
        self.data.clear()
        return request

    def write(self, offset: int, data: bytes) -> int:
        if offset + len(data) > CONTROL_MAX_BYTES:
            raise BadRequest(f"{CONTROL_FILE}: options larger than {CONTROL_MAX_BYTES} bytes")
        self.pending = True
        return _put(self.data, offset, data)


@dataclass(frozen=True)
class CommitRequest:
    """A commit asked for through ``.artfs-commit``: by whom, with which options (JSON)."""

    project: str
    name: str
    session: int | None
    run_id: str | None
    options: bytes


@dataclass
class RegisterFile:
    """An open ``MNT/.artfs-register``: the run id written becomes the opener's run."""

    pid: int
    data: bytearray = field(default_factory=bytearray)

    def complete(self) -> bool:
        """A whole line (``echo ID > F``), or a JSON object, has been written."""
        return self.data.endswith(b"\n") or self.data.strip().endswith(b"}")

    def run_id(self) -> str:
        text = self.data.decode("ascii", "replace").strip()
        if text.startswith("{"):
            try:
                text = str(json.loads(text).get("run_id", ""))
            except (ValueError, AttributeError):
                raise BadRequest(f"{REGISTER_FILE}: write a run id") from None
        return text


def result_json(ref: str | None = None, created: bool = False, error: str | None = None) -> bytes:
    if error is not None:
        return (json.dumps({"error": error.splitlines()[0] if error else "failed"}) + "\n").encode()
    return (json.dumps({"ref": ref, "created": created}) + "\n").encode()


@dataclass(frozen=True, slots=True)
class ConstantFile:
    """An open read-only virtual file whose bytes never change (``MNT/.artfs-store``)."""

    data: bytes


@dataclass
class BaseControl:
    """An open ``staging/.artfs-base``: a ref written (a line, or one write of a whole ref)
    bases the staging on that version; an empty line removes the base."""

    project: str
    name: str
    writable: bool
    data: bytearray = field(default_factory=bytearray)
    pending: bool = False

    def write(self, offset: int, data: bytes) -> int:
        if offset + len(data) > _BASE_MAX_BYTES:
            raise BadRequest(f"{BASE_FILE}: write one ref, e.g. v3 or proj/name:v3")
        ahead = bytearray(self.data)
        _put(ahead, offset, data)
        if not _BASE_PREFIX_RE.fullmatch(ahead):
            raise BadRequest(
                f"{BASE_FILE}: {bytes(ahead)[:80]!r} is not a ref: write e.g. v3, latest or "
                "proj/name:v3"
            )
        self.pending = True
        return _put(self.data, offset, data)

    def take(self) -> BaseRequest | None:
        """The base asked for, once a write completed a line or a ref."""
        text = bytes(self.data)
        if not self.pending or not (text.endswith(b"\n") or _whole_ref(text)):
            return None
        self.pending = False
        self.data.clear()
        return BaseRequest(self.project, self.name, text.decode("utf-8", "replace").strip())


@dataclass(frozen=True)
class BaseRequest:
    """A base asked for through ``.artfs-base``: ``ref`` as written ('' for none)."""

    project: str
    name: str
    ref: str

    def parsed(self) -> Ref | None:
        """The version asked for: ``proj/name:vN`` (or an alias), or ``vN``/an alias of this
        artifact; None for no base. InvalidName for anything else."""
        if not self.ref:
            return None
        if "/" in self.ref:
            return Ref.parse(self.ref)
        if not NAME_RE.fullmatch(self.ref):
            raise InvalidName(
                f"{BASE_FILE}: invalid ref {self.ref!r}: write e.g. v3, latest or proj/name:v3"
            )
        return Ref(ArtifactName(self.project, self.name), self.ref)


def _whole_ref(text: bytes) -> bool:
    try:
        return BaseRequest("p", "n", text.decode()).parsed() is not None
    except (InvalidName, UnicodeDecodeError):
        return False


def _put(buffer: bytearray, offset: int, data: bytes) -> int:
    """Write ``data`` into ``buffer`` at ``offset`` (a gap reads as zeros); its length."""
    if len(buffer) < offset:
        buffer += b"\0" * (offset - len(buffer))
    buffer[offset : offset + len(data)] = data
    return len(data)
