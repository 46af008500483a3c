"""artfs: versioned, deduplicated ML artifacts you can mount."""

__version__ = "0.1.0"

__all__ = ["__version__"]
