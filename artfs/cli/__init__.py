"""The ``artfs`` command line; :func:`main` is the console script."""

from artfs.cli.app import main

__all__ = ["main"]
