"""What every command gets from the group: the store's home and whether to keep quiet."""

from __future__ import annotations

from pathlib import Path

from artfs.store import Store
from artfs.stores import open_existing_store, open_store


class Context:
    def __init__(self, home: Path, quiet: bool) -> None:
        self.home = home
        self.quiet = quiet

    def store(self) -> Store:
        """The store at ``home``, made there first if there is none (the commands that store
        or set something: put, run, mount, config KEY VALUE, remote add, clone)."""
        return open_store(self.home)

    def existing_store(self) -> Store:
        """The store at ``home`` for a command that needs what a store already holds: no store
        there is an error (see :func:`open_existing_store`)."""
        return open_existing_store(self.home)
