"""``artfs ui``: a read-only web app over a store (pages and their JSON under ``/api``)."""

from artfs.ui.app import create_app
from artfs.ui.reads import open_readonly
from artfs.ui.server import serve

__all__ = ["create_app", "open_readonly", "serve"]
