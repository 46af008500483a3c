"""Fixtures for ``artfs ui``: the store of :func:`tests.ui.uiutil.build_store` (once per session,
then only read) and the app over it. ``serve_ui`` is in tests/conftest.py (tests/remote/ uses it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from artfs.ui import create_app, open_readonly
from tests.ui.uiutil import UiStore, build_store


@pytest.fixture(scope="session")
def ui_store(tmp_path_factory: pytest.TempPathFactory) -> UiStore:
    root = tmp_path_factory.mktemp("ui")
    return build_store(root / "home", root / "src")


@pytest.fixture(scope="session")
def client(ui_store: UiStore) -> Iterator[FlaskClient]:
    store = open_readonly(ui_store.home)
    try:
        yield create_app(store).test_client()
    finally:
        store.close()
