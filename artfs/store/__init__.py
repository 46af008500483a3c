"""The artifact store: chunking, codec, packs, index, catalogue, commits, gc and verify."""

from artfs.store.repository import GcReport, PutResult, Store, VerifyProblem, default_home

__all__ = ["GcReport", "PutResult", "Store", "VerifyProblem", "default_home"]
