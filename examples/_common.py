"""What the examples share: where the store is, and the project they work in."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import artfs

PROJECT = "digits-demo"


def store_dir() -> Path:
    """The store named on the command line, else a fresh temporary one."""
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    home = Path(tempfile.mkdtemp(prefix="artfs-example-"))
    print(f"store: {home} (temporary; pass a directory to keep using one store)")
    return home


def has(home: Path, ref: str) -> bool:
    return artfs.Api(home=home).artifact_exists(f"{PROJECT}/{ref}")
