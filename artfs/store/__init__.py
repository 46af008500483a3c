"""The artifact store: chunking, codec, packs, index, catalogue, commits, gc and verify.

The names below load on first use (``__getattr__``): importing one module of the store (the
chunk loader imports five: codec, chunkstore, hashing, manifest, packs) does not load all of
it.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from artfs.store.repository import GcReport, PutResult, Store, VerifyProblem, default_home


def __getattr__(name: str) -> Any:
    if name in __all__:
        from artfs.store import repository

        return getattr(repository, name)
    raise AttributeError(f"module 'artfs.store' has no attribute {name!r}")


__all__ = ["GcReport", "PutResult", "Store", "VerifyProblem", "default_home"]
