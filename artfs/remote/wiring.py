"""The remote's implementation of the store's ports (``artfs.store.repository.RemotePorts``).

:func:`artfs.stores.open_store` hands :data:`REMOTE_PORTS` to every store it opens. Each port
is made for one remote when the store first needs it; the modules behind them (and with them
the object-store client, obstore) are imported only then, so a store that is not
remote-backed never loads them.
"""

from __future__ import annotations

from artfs.store.ports import ChunkSource, LineageSink, Publisher
from artfs.store.repository import Store
from artfs.store.settings import RemoteConfig


class RemoteWiring:
    """Makes a store's chunk source, publisher and lineage sink for one of its remotes."""

    def chunk_source(self, store: Store, config: RemoteConfig) -> ChunkSource:
        from artfs.remote.fetch import RemoteChunks

        return RemoteChunks.for_store(store, config)

    def publisher(self, store: Store, config: RemoteConfig) -> Publisher:
        from artfs.remote.publish import RemotePublisher

        return RemotePublisher.open(store, config)

    def lineage_sink(self, store: Store, config: RemoteConfig) -> LineageSink:
        from artfs.remote.lineage_sync import RemoteLineage

        return RemoteLineage.for_store(store, config)


REMOTE_PORTS = RemoteWiring()
