"""References read through the mount: fetched on open, verified, never wrong bytes."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mount.mountutil import StartMount

pytestmark = pytest.mark.mount

LOG = """
import sys
import artfs
run = artfs.init(project="proj", job_type="register", home=sys.argv[1])
art = artfs.Artifact("external", type="dataset")
art.add_reference("file://" + sys.argv[2], name="remote.bin")
art.add_file(sys.argv[3], name="local.txt")
run.log_artifact(art)
run.finish()
"""


def test_reference_files_read_through_the_mount_and_changes_are_refused(
    tmp_path: Path, start_mount: StartMount
) -> None:
    home = tmp_path / "home"
    target = tmp_path / "target.bin"
    target.write_bytes(b"referenced bytes " * 1000)
    local = tmp_path / "local.txt"
    local.write_text("stored here")
    subprocess.run([sys.executable, "-c", LOG, str(home), str(target), str(local)], check=True)
    mount = start_mount(home)
    version = mount.path / "proj" / "external" / "v0"
    assert (version / "remote.bin").stat().st_size == target.stat().st_size
    assert (version / "remote.bin").read_bytes() == target.read_bytes()
    assert (version / "local.txt").read_text() == "stored here"

    target.write_bytes(b"changed behind our back " * 1000)
    # The verified copy fetched on the first open keeps serving the logged content.
    assert (version / "remote.bin").read_bytes() == b"referenced bytes " * 1000
    for cached in (home / "refcache").iterdir():
        cached.unlink()
    with pytest.raises(OSError) as changed:
        (version / "remote.bin").read_bytes()
    assert changed.value.errno == errno.EIO
    target.unlink()
    with pytest.raises(OSError) as gone:
        (version / "remote.bin").read_bytes()
    assert gone.value.errno == errno.ENOENT
