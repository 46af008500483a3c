"""Names, refs and paths: what is allowed, parsed in one place.

- project and artifact names: ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``;
- aliases: the same, but never ``vN``-shaped and never a reserved word (``latest``, ``staging``);
- refs: ``project/name`` (the latest version), ``project/name:vN`` or ``project/name:ALIAS``;
- paths inside a version: relative POSIX paths without ``.``/``..``, NUL or empty components,
  each component at most 255 bytes.
"""

from __future__ import annotations

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
