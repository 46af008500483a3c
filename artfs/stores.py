"""Opening a store: the one place where a store gets its remote wired (the composition root).

The store layer declares what it needs from a remote as ports (:mod:`artfs.store.ports`) and
never imports :mod:`artfs.remote`; :func:`open_store` opens a store with the remote's
implementation of them. The CLI, the SDK and the daemon open every store through it.
"""

from __future__ import annotations

from pathlib import Path

from artfs.errors import NotFound, StoreError
from artfs.remote.wiring import REMOTE_PORTS
from artfs.store import upgrade
from artfs.store.index import Index
from artfs.store.packs import LocalPackStore
from artfs.store.repository import Store


def open_store(home: Path | None = None) -> Store:
    """The store at ``home`` (default: ``default_home()``), reading, publishing and sharing
    lineage through its default remote when it has one. Close it (or use it as a context
    manager) when done."""
    return Store.open(home, ports=REMOTE_PORTS)


def open_existing_store(home: Path) -> Store:
    """:func:`open_store` for a command that needs what a store already holds: a home
    with no store (a mistyped ``--home`` or ``ARTFS_HOME``) is :class:`NotFound`, where
    :func:`open_store` would make a new, empty store there."""
    _require_store(home)
    return open_store(home)


def _require_store(home: Path) -> None:
    """:class:`NotFound`, saying what to do, unless ``home`` holds a store (its index)."""
    if not (home / "index" / "data.mdb").is_file():
        raise NotFound(
            f"no artfs store at {home}: give --home (or ARTFS_HOME) of one, "
            "or store something first (artfs put PATH PROJECT/NAME)"
        )


def open_readonly_store(home: Path) -> Store:
    """The store at ``home`` with its index opened read-only, so every write transaction
    fails (``artfs ui`` shows a store and never changes it); reads through its default remote
    as :func:`open_store`'s do. It is not in :meth:`Store.open`'s per-process registry: do not
    open the same home both ways in one process at once."""
    _require_store(home)
    index = Index.open(home / "index", readonly=True)
    try:
        upgrade.require_current(index, home)  # a read-only opener cannot upgrade
    except StoreError:
        index.close()
        raise
    return Store(home, index, LocalPackStore.open(home / "packs"), REMOTE_PORTS)
