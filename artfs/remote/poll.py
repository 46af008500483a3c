"""Keeping a long-lived process's index current with its default remote (the daemon's poller).

A mount of a remote-backed store shows versions committed on other machines because the daemon
calls :meth:`RemotePoller.poll` every ``--poll`` seconds in a worker thread. Each round reads
the default remote setting again, so the poller follows a remote set, switched or unset while
the daemon runs (a mount of a local store starts polling once ``artfs remote add --default`` or
a clone gives it one). A remote that cannot be reached is logged once, and again when it is
back, and so is a version that cannot be adopted.

The object-store modules are imported only once a store has a default remote, so a daemon
serving a local store never loads obstore.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from artfs.errors import ArtfsError
from artfs.store.repository import Store
from artfs.store.settings import RemoteConfig

if TYPE_CHECKING:  # obstore loads only in a remote-backed store
    from artfs.remote.remote import Remote
    from artfs.remote.sync import RefreshResult

log = logging.getLogger(__name__)

T = TypeVar("T")


class RemotePoller:
    """Refreshes ``store``'s index from its default remote, one :meth:`poll` at a time.

    :meth:`finish` asks a running round to stop and waits for it, so the store is never closed
    under its write transaction (or under any read of a round the caller abandoned).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.stop = threading.Event()
        self._done = threading.Condition()
        self._running = False
        self._following: RemoteConfig | None = None
        self._remote: Remote | None = None
        self._failing = False
        self._reported: set[str] = set()

    def poll(self) -> None:
        """One round (blocking: run it in a worker thread): follow the default remote and
        refresh from it; failures are logged, never raised. Nothing once stopping."""
        self._guarded(self._poll)

    def refresh(self, remote: Remote) -> RefreshResult | None:
        """One refresh of the index from ``remote``; None once stopping."""
        from artfs.remote.sync import refresh

        return self._guarded(lambda: refresh(self.store, remote, self.stop))

    def finish(self, timeout: float) -> bool:
        """Stop polling; False if a round is still running after ``timeout`` seconds."""
        self.stop.set()
        with self._done:
            return self._done.wait_for(lambda: not self._running, timeout)

    def _guarded(self, work: Callable[[], T]) -> T | None:
        with self._done:
            if self.stop.is_set() or self._running:
                return None
            self._running = True
        try:
            return work()
        finally:
            with self._done:
                self._running = False
                self._done.notify_all()

    def _poll(self) -> None:
        try:
            config = self.store.default_remote()
        except ArtfsError as exc:  # an index read failed: keep serving, try again later
            log.warning("cannot read the default remote (will retry): %s", exc)
            return
        if config != self._following:
            self._following, self._remote, self._failing = config, None, False
            if config is not None:
                self._remote = _open_remote(self.store, config)
        if self._remote is None or self._following is None:
            return
        name = self._following.name
        from artfs.remote.sync import refresh

        try:
            result = refresh(self.store, self._remote, self.stop)
        except Exception as exc:
            if not self._failing:
                log.warning("cannot refresh from remote %s (will retry): %s", name, exc)
            self._failing = True
            return
        if self._failing:
            log.info("remote %s answers again", name)
        self._failing = False
        log_refresh(name, result, self._reported)


def _open_remote(store: Store, config: RemoteConfig) -> Remote | None:
    """The remote to poll; None (logged) for one that cannot be configured: the index is then
    served as it is."""
    from artfs.remote.fetch import check_settings
    from artfs.remote.remote import open_remote

    try:
        check_settings()  # a remote set after the daemon started was not checked at the start
        remote = open_remote(store, config)
    except ArtfsError as exc:
        log.error("not polling remote %s: %s", config.name, exc)
        return None
    log.info("polling remote %s for new versions", config.name)
    return remote


def log_refresh(name: str, result: RefreshResult, reported: set[str]) -> None:
    """One line per refresh that changed something; a skipped version only the first time."""
    skipped = [line for line in result.skipped if line not in reported]
    reported.update(skipped)
    if result.adopted or result.deleted or result.aliases or skipped:
        log.info(
            "remote %s: %d new versions, %d deleted, %d alias changes, %d skipped %s",
            name,
            len(result.adopted),
            len(result.deleted),
            len(result.aliases),
            len(skipped),
            "; ".join(skipped),
        )
