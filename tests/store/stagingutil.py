"""Helpers for tests of incremental staging: what a based staging shows, read through the
format API (artfs.store.staging), as the mount's view shows it."""

from __future__ import annotations

import os
from pathlib import Path

from artfs.names import ArtifactName
from artfs.store import Store, staging
from artfs.store.hashing import file_digest


def shown(store: Store, art: ArtifactName, upper: Path, directory: str = "") -> dict[str, bytes]:
    """Every file the staging of ``art`` shows below ``directory``, path -> file digest:
    upper files hashed, base files by their recorded digest; markers left out."""
    found: dict[str, bytes] = {}
    here = upper / directory
    for name in sorted(os.listdir(here)) if here.is_dir() else []:
        if staging.is_reserved(name):
            continue
        path = f"{directory}/{name}" if directory else name
        if (here / name).is_dir():
            found |= shown(store, art, upper, path)
        else:
            found[path] = bytes(file_digest((here / name).read_bytes()))
    for entry in staging.base_listing(store, art, directory):
        if entry.is_dir:
            found |= shown(store, art, upper, entry.path)
        else:
            found[entry.path] = bytes(entry.digest)
    return found
