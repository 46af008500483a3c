"""The mounted tree through the kernel: layout, stat, reads, mmap, EROFS, ENOENT, xattrs."""

from __future__ import annotations

import errno
import mmap
import os
import random
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from artfs.store import Store
from tests.mount.mountutil import MTIME_NS, Mount, Mounts, put

pytestmark = pytest.mark.mount

Sample = tuple[Path, dict[str, bytes]]


@pytest.fixture(scope="module")
def mnt(module_mounts: Mounts, sample_home: Sample) -> Mount:
    return module_mounts.start(sample_home[0])


@pytest.fixture
def files(sample_home: Sample) -> dict[str, bytes]:
    return sample_home[1]


def v0(mnt: Mount) -> Path:
    return mnt.path / "proj" / "mnist" / "v0"


def test_layout_projects_artifacts_versions_aliases_staging(mnt: Mount) -> None:
    assert os.listdir(mnt.path) == ["proj"]
    assert os.listdir(mnt.path / "proj") == ["mnist"]
    art = mnt.path / "proj" / "mnist"
    assert sorted(os.listdir(art)) == ["best", "latest", "staging", "v0", "v1"]
    assert os.readlink(art / "latest") == "v1"
    assert os.readlink(art / "best") == "v0"
    assert (art / "latest" / "README.md").read_bytes() == b"# sample v1\n"
    assert (art / "best" / "README.md").read_bytes() == b"# sample\n"
    assert (art / "staging").is_dir() and os.listdir(art / "staging") == []


def test_every_file_reads_back_exactly(mnt: Mount, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        assert (v0(mnt) / rel).read_bytes() == content, rel


def test_stat_sizes_modes_mtimes_and_stable_inodes(mnt: Mount, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        st = os.stat(v0(mnt) / rel)
        assert st.st_size == len(content)
        assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1
        assert stat.S_IMODE(st.st_mode) == (0o555 if rel == "run.sh" else 0o444)
        assert st.st_mtime_ns == MTIME_NS
        assert st.st_blocks == (len(content) + 511) // 512
        assert os.stat(v0(mnt) / rel).st_ino == st.st_ino
    inodes = {os.stat(v0(mnt) / rel).st_ino for rel in files}
    assert len(inodes) == len(files)
    with Store.open(mnt.home) as store:
        created = store.versions(store.resolve("proj/mnist:v0").artifact)[0].created
    vdir = os.stat(v0(mnt))
    assert stat.S_ISDIR(vdir.st_mode) and stat.S_IMODE(vdir.st_mode) == 0o555
    assert abs(vdir.st_mtime - created) < 1e-3
    assert stat.S_ISLNK(os.lstat(mnt.path / "proj" / "mnist" / "latest").st_mode)


def test_a_walk_shows_each_entry_as_stat_does_on_a_mount_never_walked(
    module_mounts: Mounts, sample_home: Sample
) -> None:
    """What readdir sends with each name (the kernel keeps it for stat: ``ls -l``, ``find``)
    is what a lookup of the name answers: every field ``stat`` shows, for files and
    directories, on a fresh mount walked first and on another never listed."""
    walked, looked_up = module_mounts.start(sample_home[0]), module_mounts.start(sample_home[0])
    fields = ("st_mode", "st_ino", "st_nlink", "st_size", "st_blocks", "st_uid", "st_gid")
    fields += ("st_atime_ns", "st_mtime_ns", "st_ctime_ns")

    def shown(st: os.stat_result) -> tuple[int, ...]:
        return tuple(getattr(st, name) for name in fields)

    seen: dict[str, tuple[int, ...]] = {}
    pending = [""]
    while pending:
        rel = pending.pop()
        for entry in os.scandir(v0(walked) / rel):
            path = f"{rel}/{entry.name}".lstrip("/")
            seen[path] = shown(entry.stat(follow_symlinks=False))
            if entry.is_dir(follow_symlinks=False):
                pending.append(path)
    assert {"data", "empty_dir", "README.md"} <= seen.keys()
    assert stat.S_ISDIR(seen["data"][0]) and seen["data"][3] == 0
    assert {p: shown(os.lstat(v0(looked_up) / p)) for p in seen} == seen


def test_a_walk_of_large_directories_shows_each_entry_as_stat_does(
    module_mounts: Mounts, tmp_path: Path
) -> None:
    """Directories of a few thousand children go in several replies each (the daemon fills
    most of them ahead, while the walker takes the one before: artfsd.ahead, whose use
    test_listings checks): a walk with ``stat`` sees what lookups on a mount never listed
    answer, every field."""
    src = tmp_path / "src"
    files = {f"{d}/{i:04d}.bin": bytes([i % 251]) * (i % 700) for d in "ab" for i in range(1500)}
    files |= {"a/sub/x.txt": b"x\n", "b/sub/deeper/z.txt": b"z\n", "top.txt": b"top\n"}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    os.chmod(src / "b" / "0007.bin", 0o750)
    put(tmp_path / "home", src, "proj/big")
    walked, looked_up = (module_mounts.start(tmp_path / "home") for _ in range(2))
    fields = ("st_mode", "st_ino", "st_nlink", "st_size", "st_blocks", "st_mtime_ns", "st_ctime_ns")
    root = walked.path / "proj" / "big" / "v0"
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            seen[str(path.relative_to(root))] = tuple(getattr(path.lstat(), f) for f in fields)
    assert {rel for rel in seen if not stat.S_ISDIR(seen[rel][0])} == files.keys()
    other = looked_up.path / "proj" / "big" / "v0"
    assert {rel: tuple(getattr((other / rel).lstat(), f) for f in fields) for rel in seen} == seen


def test_scandir_types_without_following(mnt: Mount) -> None:
    kinds = {
        e.name: (e.is_dir(follow_symlinks=False), e.is_symlink())
        for e in os.scandir(mnt.path / "proj" / "mnist")
    }
    assert kinds == {
        "v0": (True, False),
        "v1": (True, False),
        "staging": (True, False),
        "latest": (False, True),
        "best": (False, True),
    }
    names = {e.name: e.is_file() for e in os.scandir(v0(mnt))}
    assert names["README.md"] and not names["data"] and not names["empty_dir"]


def test_find_du_cp_tar_see_the_same_tree(
    mnt: Mount, files: dict[str, bytes], tmp_path: Path
) -> None:
    found = subprocess.run(
        ["find", ".", "-type", "f"], cwd=v0(mnt), capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert sorted(p[2:] for p in found if p) == sorted(files)
    du = subprocess.run(["du", "-sb", str(v0(mnt))], capture_output=True, text=True, check=True)
    assert int(du.stdout.split()[0]) >= sum(map(len, files.values()))
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(v0(mnt)), str(copy)], check=True)
    for rel, content in files.items():
        assert (copy / rel).read_bytes() == content
    assert (copy / "empty_dir").is_dir()
    tar = subprocess.run(["tar", "-cf", "-", "."], cwd=v0(mnt), capture_output=True, check=True)
    assert len(tar.stdout) > sum(map(len, files.values()))


def test_mmap_and_random_preads(mnt: Mount, files: dict[str, bytes]) -> None:
    content = files["data/random.bin"]
    with open(v0(mnt) / "data/random.bin", "rb") as f:
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mapped:
            assert len(mapped) == len(content)
            assert mapped[: 1 << 20] == content[: 1 << 20]
            assert mapped[-100:] == content[-100:]
            assert mapped[:] == content
        rng = random.Random(1)
        for _ in range(200):
            offset = rng.randrange(len(content))
            assert os.pread(f.fileno(), 4096, offset) == content[offset : offset + 4096]
        assert os.pread(f.fileno(), 10, len(content) + 5) == b""


def _expect(code: int, action: Callable[[], object]) -> None:
    with pytest.raises(OSError) as caught:
        action()
    assert caught.value.errno == code, caught.value


def test_writes_creates_renames_unlinks_chmods_fail_with_erofs(mnt: Mount) -> None:
    target = v0(mnt) / "README.md"
    _expect(errno.EROFS, lambda: os.open(target, os.O_WRONLY | os.O_APPEND))
    _expect(errno.EROFS, lambda: os.open(target, os.O_RDWR))
    _expect(errno.EROFS, lambda: os.open(v0(mnt) / "new.txt", os.O_WRONLY | os.O_CREAT, 0o644))
    _expect(errno.EROFS, lambda: os.mkdir(v0(mnt) / "newdir"))
    _expect(errno.EROFS, lambda: os.rename(target, v0(mnt) / "moved"))
    _expect(errno.EROFS, lambda: os.unlink(target))
    _expect(errno.EROFS, lambda: os.rmdir(v0(mnt) / "empty_dir"))
    _expect(errno.EROFS, lambda: os.chmod(target, 0o777))
    _expect(errno.EROFS, lambda: os.truncate(target, 0))
    _expect(errno.EROFS, lambda: os.symlink("x", v0(mnt) / "link"))
    _expect(errno.EROFS, lambda: os.setxattr(target, "user.x", b"1"))
    _expect(errno.EROFS, lambda: shutil.rmtree(mnt.path / "proj" / "mnist" / "v1"))
    assert target.read_bytes() == b"# sample\n"


@pytest.mark.parametrize(
    "rel",
    [
        "nope",
        "proj/nope",
        "proj/mnist/v9",
        "proj/mnist/v01",
        "proj/mnist/nosuchalias",
        "proj/mnist/v0/nope",
        "proj/mnist/v0/data/nope",
        "proj/mnist/staging/x",
    ],
)
def test_unknown_names_are_enoent(mnt: Mount, rel: str) -> None:
    _expect(errno.ENOENT, lambda: os.stat(mnt.path / rel))


def test_file_as_directory_is_enotdir(mnt: Mount) -> None:
    _expect(errno.ENOTDIR, lambda: os.stat(v0(mnt) / "README.md" / "x"))
    _expect(errno.ENOTDIR, lambda: os.listdir(v0(mnt) / "README.md"))


def test_xattrs_on_versions_and_files(mnt: Mount) -> None:
    names = set(os.listxattr(v0(mnt)))
    for key in ("ref", "digest", "type", "created", "aliases", "description"):
        assert f"user.artfs.{key}" in names
    assert os.getxattr(v0(mnt), "user.artfs.ref") == b"proj/mnist:v0"
    assert os.getxattr(v0(mnt), "user.artfs.aliases") == b"best"
    assert os.getxattr(v0(mnt), "user.artfs.description") == b"the sample"
    assert os.getxattr(v0(mnt), "user.artfs.type") == b"dataset"
    with Store.open(mnt.home) as store:
        record = store.resolve("proj/mnist:v0")
        digest = {e.path: e.digest.hex() for e in store.files(record)}["README.md"]
    assert os.getxattr(v0(mnt) / "README.md", "user.artfs.digest") == digest.encode()
    _expect(errno.ENODATA, lambda: os.getxattr(v0(mnt) / "README.md", "user.other"))
    dump = subprocess.run(
        ["getfattr", "-d", str(v0(mnt))], capture_output=True, text=True, check=True
    ).stdout
    assert 'user.artfs.ref="proj/mnist:v0"' in dump


def test_statfs_answers(mnt: Mount) -> None:
    st = os.statvfs(mnt.path)
    assert st.f_blocks > 0 and st.f_namemax == 255
