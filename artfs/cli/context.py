"""What every command gets from the group: the store's home and whether to keep quiet."""

from __future__ import annotations

from pathlib import Path

from artfs.store import Store
from artfs.stores import open_store


class Context:
    def __init__(self, home: Path, quiet: bool) -> None:
        self.home = home
        self.quiet = quiet

    def store(self) -> Store:
        return open_store(self.home)
