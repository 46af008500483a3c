"""``wandb.util`` names a ported script uses: ``generate_id`` for run ids."""

from __future__ import annotations

from artfs.lineage import new_run_id


def generate_id(length: int = 8) -> str:
    """A new run id: 8 lowercase letters or digits (the only length artfs takes)."""
    return new_run_id()


__all__ = ["generate_id"]
