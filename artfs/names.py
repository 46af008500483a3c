"""Names, refs and paths: what is allowed, parsed in one place.

- project and artifact names: ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``;
- aliases: the same, but never ``vN``-shaped and never a reserved word (``latest``, ``staging``);
- refs: ``project/name`` (the latest version), ``project/name:vN`` or ``project/name:ALIAS``;
- paths inside a version: relative POSIX paths without ``.``/``..``, NUL or empty components,
  each component at most 255 bytes; a new version's must also be UTF-8 and not a name
  staging keeps for itself (:func:`check_stored_path`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from artfs.errors import InvalidName

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
VERSION_RE = re.compile(r"v(0|[1-9][0-9]{0,8})")
RESERVED_ALIASES = frozenset({"latest", "staging"})
MAX_COMPONENT_BYTES = 255


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a valid project or artifact name, else raise InvalidName."""
    if not NAME_RE.fullmatch(name):
        raise InvalidName(
            f"invalid {what} {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if a user may set it; ``latest`` is managed by artfs itself."""
    check_name(alias, "alias")
    if VERSION_RE.fullmatch(alias):
        raise InvalidName(f"invalid alias {alias!r}: names like v3 are version numbers")
    if alias in RESERVED_ALIASES:
        raise InvalidName(f"invalid alias {alias!r}: it is reserved by artfs")
    return alias


def parse_version(text: str) -> int | None:
    """``'v3'`` -> 3; anything not version-shaped -> None."""
    return int(text[1:]) if VERSION_RE.fullmatch(text) else None


@dataclass(frozen=True, order=True)
class ArtifactName:
    """A ``project/name`` pair, both validated."""

    project: str
    name: str

    def __str__(self) -> str:
        return f"{self.project}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ArtifactName:
        project, sep, name = text.partition("/")
        if not sep or ":" in text:
            raise InvalidName(f"invalid artifact {text!r}: expected PROJECT/NAME, e.g. proj/mnist")
        return cls(check_name(project, "project name"), check_name(name, "artifact name"))


@dataclass(frozen=True)
class Ref:
    """A reference to one version: ``project/name[:vN|:ALIAS]``; no selector means latest."""

    artifact: ArtifactName
    selector: str = "latest"

    def __str__(self) -> str:
        return f"{self.artifact}:{self.selector}"

    @property
    def version(self) -> int | None:
        """The number when the selector is ``vN``, else None (an alias)."""
        return parse_version(self.selector)

    @classmethod
    def parse(cls, text: str) -> Ref:
        base, sep, selector = text.partition(":")
        artifact = ArtifactName.parse(base)
        if not sep:
            return cls(artifact)
        if parse_version(selector) is None and not NAME_RE.fullmatch(selector):
            raise InvalidName(f"invalid ref {text!r}: after ':' give a version (v3) or an alias")
        return cls(artifact, selector)


# Names staging keeps for itself (artfs.store.overlay's markers, artfs.fs.staging_files'
# control files): a version holding one could not be shown through a staging based on it.
STAGING_MARKER_PREFIX = ".artfs-wh."  # in any directory
STAGING_CONTROL_FILE = ".artfs-commit"  # at the top
STAGING_BASE_FILE = ".artfs-base"  # at the top


def check_stored_path(path: str, *, markers: bool = False) -> str:
    """:func:`check_path` for a path a new version is to hold, which must also be text (valid
    UTF-8, as W&B's manifests and artfs's JSON name files) and, unless ``markers`` (a
    staging's own markers, read apart by its commit), not a name staging keeps for itself;
    return it unchanged."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path)  # the bytes, not the escapes that stand for them
        raise InvalidName(f"invalid path {shown!r}: it is not valid UTF-8: rename it") from None
    parts = check_path(path).split("/")
    if markers:
        return path
    top = (STAGING_CONTROL_FILE, STAGING_BASE_FILE)
    if parts[0] in top or any(part.startswith(STAGING_MARKER_PREFIX) for part in parts):
        raise InvalidName(
            f"invalid path {path!r}: staging keeps names starting with "
            f"{STAGING_MARKER_PREFIX!r}, and {top[0]!r} and {top[1]!r} at the top, for itself: "
            "rename it"
        )
    return path


def check_path(path: str) -> str:
    """Validate a relative POSIX path inside a version; return it unchanged."""
    if not path:
        raise InvalidName("invalid path '': a path inside a version cannot be empty")
    if "\0" in path:
        raise InvalidName(f"invalid path {path!r}: it contains a NUL byte")
    if path.startswith("/"):
        raise InvalidName(f"invalid path {path!r}: paths inside a version are relative")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidName(f"invalid path {path!r}: empty, '.' and '..' components are refused")
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            raise InvalidName(f"invalid path {path!r}: a component is longer than 255 bytes")
    return path
