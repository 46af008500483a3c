"""Files stored with a compression dictionary read through the mount like any other."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from artfs.store import Store
from tests.helpers import make_tree
from tests.mount.mountutil import Mount, put
from tests.store.test_dictionaries import annotations, dict_coded


def test_dictionary_coded_files_read_back_through_the_mount(
    start_mount: Callable[..., Mount], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    spec = annotations(300)
    put(home, make_tree(tmp_path / "src", spec), "proj/coco")
    with Store.open(home) as store:
        assert len(dict_coded(store)) > 200
    mount = start_mount(home)
    version = mount.path / "proj" / "coco" / "v0"
    assert {p: (version / p).read_bytes() for p in spec} == spec
