"""Opening a store: the one place where a store gets its remote wired (the composition root).

The store layer declares what it needs from a remote as ports (:mod:`artfs.store.ports`) and
never imports :mod:`artfs.remote`; :func:`open_store` opens a store with the remote's
implementation of them. The CLI, the SDK and the daemon open every store through it.
"""

from __future__ import annotations

from pathlib import Path

from artfs.remote.wiring import REMOTE_PORTS
from artfs.store.repository import Store


def open_store(home: Path | None = None) -> Store:
    """The store at ``home`` (default: ``default_home()``), reading, publishing and sharing
    lineage through its default remote when it has one. Close it (or use it as a context
    manager) when done."""
    return Store.open(home, ports=REMOTE_PORTS)
