"""The public API of the store is pinned: changing it is a deliberate act."""

import importlib

import pytest

PUBLIC = {
    "artfs.store": ["GcReport", "PutResult", "Store", "VerifyProblem", "default_home"],
    "artfs.cli": ["main"],
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_all_is_pinned_sorted_and_importable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__all__ == PUBLIC[module_name]
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
