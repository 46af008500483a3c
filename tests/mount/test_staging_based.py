"""A staging based on a version, through a real mount (issue 16 item 2): ``.artfs-base``, the
merged view, copy-up, whiteouts, opaque directories, renames, hard links, commits that go on
from the version they made."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from artfs.lineage import Lineage
from artfs.store import Store
from tests.mount.mountutil import (
    ARTFS,
    RECORDED_WITHIN,
    Mount,
    StartMount,
    errno_of,
    eventually,
    put,
)

pytestmark = pytest.mark.mount

BASE_FILES = {
    "a.txt": b"alpha\n",
    "d/x.txt": b"x" * 5000,
    "d/y.txt": b"why\n",
    "d/sub/z.txt": b"zed\n",
    "e/w.txt": b"double-u\n",
}
MTIME_NS = 1_600_000_000_000_000_000


def make_source(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, 0o640 if rel == "a.txt" else 0o644)
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
    return root


@pytest.fixture
def based(tmp_path: Path, start_mount: StartMount) -> Mount:
    """proj/data v0 = BASE_FILES, mounted, its staging based on v0 through .artfs-base."""
    home = tmp_path / "home"
    put(home, make_source(tmp_path / "src", BASE_FILES), "proj/data")
    mnt = start_mount(home)
    (mnt.path / "proj/data/staging/.artfs-base").write_text("v0\n")
    return mnt


def staged(mnt: Mount) -> Path:
    return mnt.path / "proj/data/staging"


def view(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content (directories by their files)."""
    found = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def commit(mnt: Mount) -> dict[str, object]:
    control = staged(mnt) / ".artfs-commit"
    control.write_text("\n")
    result: dict[str, object] = json.loads(control.read_text())
    return result


def version_files(home: Path, ref: str) -> dict[str, bytes]:
    with Store.open(home) as store:
        record = store.resolve(ref)
        return {e.path: b"".join(store.iter_file(e)) for e in store.files(record) if not e.is_dir}


def test_base_file_reads_back_and_the_view_is_the_version(based: Mount) -> None:
    root = staged(based)
    assert (root / ".artfs-base").read_text() == "proj/data:v0\n"
    assert view(root) == BASE_FILES
    st = os.stat(root / "a.txt")
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime_ns == MTIME_NS
    assert sorted(os.listdir(root)) == ["a.txt", "d", "e"]  # control files stay unlisted
    # Nothing was copied into the upper directory by reading.
    upper = based.home / "staging/proj/data"
    assert sorted(os.listdir(upper)) == []


def test_setting_a_base_over_changes_is_busy_and_a_bad_ref_is_invalid(based: Mount) -> None:
    root = staged(based)
    assert errno_of(lambda: (root / ".artfs-base").write_text("v9\n")) == errno.ENOENT
    assert errno_of(lambda: (root / ".artfs-base").write_text("no such ref!\n")) == errno.EINVAL
    # Bytes that can never become a ref are refused at the write, line or not: close() could
    # not report it (the mount answers no FLUSH), and the base would silently stay.
    for junk in (".artfs-base", "a/../.x", "v 1", "-v1"):
        assert errno_of(lambda j=junk: (root / ".artfs-base").write_text(j)) == errno.EINVAL, junk
    assert (root / ".artfs-base").read_text() == "proj/data:v0\n"
    (root / "new.txt").write_bytes(b"n")
    assert errno_of(lambda: (root / ".artfs-base").write_text("v0\n")) == errno.EBUSY
    assert (root / ".artfs-base").read_text() == "proj/data:v0\n"


def test_writes_copy_up_keeping_mode_mtime_and_inode(based: Mount) -> None:
    root, upper = staged(based), based.home / "staging/proj/data"
    before = os.stat(root / "d/x.txt")
    with open(root / "d/x.txt", "ab") as f:
        f.write(b"+")
    after = os.stat(root / "d/x.txt")
    assert after.st_ino == before.st_ino and stat.S_IMODE(after.st_mode) == 0o644
    assert (root / "d/x.txt").read_bytes() == b"x" * 5000 + b"+"
    assert (upper / "d/x.txt").read_bytes() == b"x" * 5000 + b"+"
    assert not (upper / "d/y.txt").exists()  # the rest of d stays in the base
    # O_TRUNC copies nothing; chmod copies up keeping the mtime.
    (root / "d/y.txt").write_bytes(b"new")
    assert (root / "d/y.txt").read_bytes() == b"new"
    os.chmod(root / "a.txt", 0o600)
    st = os.stat(root / "a.txt")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime_ns == MTIME_NS
    assert (root / "a.txt").read_bytes() == b"alpha\n"
    os.truncate(root / "e/w.txt", 3)
    assert (root / "e/w.txt").read_bytes() == b"dou"


def test_unlink_rmdir_and_mkdir_over_a_whiteout(based: Mount) -> None:
    root = staged(based)
    os.unlink(root / "a.txt")
    assert not (root / "a.txt").exists() and "a.txt" not in os.listdir(root)
    assert errno_of(lambda: os.rmdir(root / "d")) == errno.ENOTEMPTY
    assert errno_of(lambda: os.unlink(root / "d")) == errno.EISDIR
    assert errno_of(lambda: os.rmdir(root / "e/w.txt")) == errno.ENOTDIR
    os.unlink(root / "e/w.txt")
    os.rmdir(root / "e")
    assert sorted(os.listdir(root)) == ["d"]
    os.mkdir(root / "e")  # opaque: nothing of the base's e shows
    assert os.listdir(root / "e") == []
    (root / "a.txt").write_bytes(b"again")
    assert view(root) == {
        "a.txt": b"again",
        "d/x.txt": BASE_FILES["d/x.txt"],
        "d/y.txt": BASE_FILES["d/y.txt"],
        "d/sub/z.txt": BASE_FILES["d/sub/z.txt"],
    }


def test_renames_of_base_files_and_directories(based: Mount) -> None:
    root, upper = staged(based), based.home / "staging/proj/data"
    ino = os.stat(root / "d").st_ino
    os.rename(root / "d", root / "moved")
    assert os.stat(root / "moved").st_ino == ino
    assert not (upper / "moved/x.txt").exists()  # O(1): nothing copied
    os.rename(root / "a.txt", root / "moved/sub/a.txt")
    os.rename(root / "e", root / "moved/e")
    assert view(root) == {
        "moved/x.txt": BASE_FILES["d/x.txt"],
        "moved/y.txt": BASE_FILES["d/y.txt"],
        "moved/sub/z.txt": BASE_FILES["d/sub/z.txt"],
        "moved/sub/a.txt": BASE_FILES["a.txt"],
        "moved/e/w.txt": BASE_FILES["e/w.txt"],
    }
    # A directory renamed over a base directory emptied first hides what the base had there.
    os.mkdir(root / "fresh")
    (root / "fresh/f").write_bytes(b"f")
    os.rename(root / "moved/e/w.txt", root / "w.txt")
    os.rename(root / "fresh", root / "moved/e")
    assert sorted(os.listdir(root / "moved/e")) == ["f"]
    with pytest.raises(OSError) as caught:
        os.rename(root / "w.txt", root / "moved")
    assert caught.value.errno == errno.EISDIR


def test_hard_link_of_a_base_file_copies_it_up(based: Mount) -> None:
    root = staged(based)
    os.link(root / "d/y.txt", root / "y-again")
    a, b = os.stat(root / "d/y.txt"), os.stat(root / "y-again")
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert (root / "y-again").read_bytes() == BASE_FILES["d/y.txt"]


def test_reserved_names_are_refused_and_hidden(based: Mount) -> None:
    root = staged(based)
    os.unlink(root / "a.txt")  # a whiteout now exists in the upper directory
    assert ".artfs-wh.a.txt" not in os.listdir(root)
    assert not (root / ".artfs-wh.a.txt").exists()
    for make in (
        lambda: (root / ".artfs-wh.x").write_bytes(b""),
        lambda: os.mkdir(root / ".artfs-wh.d"),
        lambda: os.rename(root / "d/y.txt", root / ".artfs-wh.y"),
        lambda: os.symlink("d", root / ".artfs-wh.l"),
    ):
        assert errno_of(make) == errno.EINVAL


def test_commit_makes_the_view_and_goes_on_from_it(based: Mount) -> None:
    root = staged(based)
    os.unlink(root / "a.txt")
    (root / "d/y.txt").write_bytes(b"changed")
    os.rename(root / "e", root / "f")
    (root / "n.txt").write_bytes(b"new")
    expected = view(root)
    assert commit(based) == {"ref": "proj/data:v1", "created": True}
    assert version_files(based.home, "proj/data:v1") == expected
    assert view(based.path / "proj/data/v1") == expected
    assert (root / ".artfs-base").read_text() == "proj/data:v1\n"
    assert view(root) == expected  # staging shows the version it made
    upper = based.home / "staging/proj/data"
    assert os.listdir(upper) == []
    # And again, from v1: nothing changed is "identical content".
    (root / "n.txt").write_bytes(b"newer")
    expected["n.txt"] = b"newer"
    assert commit(based)["ref"] == "proj/data:v2"
    assert version_files(based.home, "proj/data:v2") == expected
    env = {**os.environ, "ARTFS_HOME": str(based.home)}
    out = subprocess.run(
        [str(ARTFS), "stage", "proj/data"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr


def test_a_base_file_read_is_recorded_against_the_base_version(based: Mount) -> None:
    root = staged(based)
    os.rename(root / "d", root / "moved")  # read below a redirect: the version's path counts
    # The same files read through v0 afterwards are the same two files of the version.
    version = based.path / "proj/data/v0"
    paths = [root / "a.txt", root / "moved/y.txt", version / "a.txt", version / "d/y.txt"]
    code = "; ".join(f"open({str(p)!r}, 'rb').read()" for p in paths)
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "ARTFS_RUN_ID": "base1234"}, timeout=30
    )
    assert done.returncode == 0

    def usage() -> list[tuple[str, int]]:
        with Store.open(based.home) as store:
            lineage = Lineage(store)
            return [(r.id, u.files) for r, u in lineage.consumers(lineage.version("proj/data:v0"))]

    eventually(lambda: usage() == [("base1234", 2)], within=RECORDED_WITHIN)


def test_a_base_name_too_long_for_its_whiteout_is_refused_unchanged(
    tmp_path: Path, start_mount: StartMount
) -> None:
    long = "n" * 250  # a whiteout would be named .artfs-wh. + 250 bytes: too long to exist
    home = tmp_path / "home"
    put(home, make_source(tmp_path / "src", {long: b"long", "ok": b"ok"}), "proj/data")
    mnt = start_mount(home)
    root = staged(mnt)
    (root / ".artfs-base").write_text("v0\n")
    assert errno_of(lambda: os.unlink(root / long)) == errno.ENAMETOOLONG
    assert errno_of(lambda: os.rename(root / long, root / "short")) == errno.ENAMETOOLONG
    assert view(root) == {long: b"long", "ok": b"ok"}
    (root / long).write_bytes(b"rewritten")  # a copy-up needs no whiteout
    assert (root / long).read_bytes() == b"rewritten"


def test_a_base_directory_renamed_over_an_empty_directory(based: Mount) -> None:
    root = staged(based)
    os.mkdir(root / "empty")
    (root / "empty/tmp").write_bytes(b"t")
    os.unlink(root / "empty/tmp")
    os.unlink(root / "e/w.txt")  # e: a base directory emptied by a whiteout
    os.rename(root / "d", root / "empty")
    os.rename(root / "empty", root / "e")
    assert sorted(os.listdir(root / "e")) == ["sub", "x.txt", "y.txt"]
    assert (root / "e/sub/z.txt").read_bytes() == BASE_FILES["d/sub/z.txt"]
    assert sorted(os.listdir(root)) == ["a.txt", "e"]
    assert commit(based)["ref"] == "proj/data:v1"
    assert version_files(based.home, "proj/data:v1") == {
        "a.txt": BASE_FILES["a.txt"],
        "e/x.txt": BASE_FILES["d/x.txt"],
        "e/y.txt": BASE_FILES["d/y.txt"],
        "e/sub/z.txt": BASE_FILES["d/sub/z.txt"],
    }
