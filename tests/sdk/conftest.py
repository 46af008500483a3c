"""Fixtures for SDK tests: a run on a fresh store, and closing every store a test opened.

The SDK keeps its store open for the life of the process (as W&B's SDK keeps its connection);
each LMDB environment reserves 1 TiB of address space, so a long test session must not
collect one per test: stores opened during a test are closed when it ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import artfs
from artfs.store import Store
from artfs.stores import open_store


@pytest.fixture(autouse=True)
def _close_stores_opened_by_the_test() -> Iterator[None]:
    before = set(Store._open)
    yield
    run = artfs.current()
    if run is not None:
        run.finish()
    for key in set(Store._open) - before:
        store = Store._open.get(key)
        while store is not None and key in Store._open:
            store.close()


@pytest.fixture
def run(home: Path) -> Iterator[artfs.Run]:
    """A running run in project ``proj`` of this test's store."""
    with artfs.init(project="proj", job_type="test", home=home) as started:
        yield started


@pytest.fixture
def api(home: Path, run: artfs.Run) -> artfs.Api:
    return artfs.Api(home=home)


@pytest.fixture
def data_dir(tmp_path: Path, make_tree: Any) -> Path:
    return make_tree(
        tmp_path / "data",
        {"train.csv": "a,b\n1,2\n", "test.csv": "a,b\n3,4\n", "images/0.png": b"\x89PNG0"},
    )


def catalog_state(home: Path) -> dict[str, Any]:
    """Pack sizes and every version with its aliases, tags and digest, read in-process: a
    cheap stand-in for ``store_state`` (which runs ``artfs ls --json`` at every level)."""
    from tests.helpers import pack_listing

    store = open_store(home)
    try:
        versions = {
            f"{art.project}/{art.name}": [
                (r.version, r.digest, sorted(r.aliases), r.tags, r.state) for r in records
            ]
            for project in store.projects()
            for art, records in store.artifacts(project)
        }
    finally:
        store.close()
    return {"packs": pack_listing(home), "versions": versions}


@pytest.fixture(name="catalog_state")
def catalog_state_fixture(home: Path) -> Any:
    return lambda: catalog_state(home)
