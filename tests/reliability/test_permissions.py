"""Permissions through a real mount, checked as a second, unprivileged user.

The daemon runs as root (the test suite does). A throwaway system user ``artfs-test`` is
created if missing; its commands run through ``runuser`` with the system python (the
project's venv lives under /root, which that user cannot read).

- Without ``--allow-other`` that user cannot even stat the mount (EACCES).
- With it, version files are readable per their recorded modes (a 0600 file is not), staging
  obeys modes and ownership (``default_permissions``), and the user cannot commit into an
  artifact whose staging they cannot write (the control file takes the staging's mode).
- Only users who may write the store (root, the owner of ``ARTFS_HOME``) change it through a
  shared mount: anyone else gets ``EACCES`` registering a run, creating a project or an
  artifact, changing staging (even a staging directory they own) or committing, and nothing is
  recorded; the owner of ``ARTFS_HOME`` can do all of it.
- Run records keep nothing of a process's environment but ``ARTFS_RUN_ID``, and with
  ``artfs config record_command_lines false`` no command line either.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from artfs.lineage import Lineage
from artfs.store import Store
from tests.helpers import ARTFS, make_tree
from tests.mount.mountutil import RECORDED_WITHIN, StartMount, eventually, put

pytestmark = [
    pytest.mark.mount,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create and become a user"),
]

USER = "artfs-test"
SYSTEM_PYTHON = "/usr/bin/python3"

# Runs as the other user: performs one operation and prints its outcome as JSON.
PROBE = r"""
import errno, json, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "list":
        out = sorted(os.listdir(path))
    elif op == "read":
        out = open(path, "rb").read().decode()
    elif op == "write":
        with open(path, "w") as f:
            f.write(sys.argv[3])
        st = os.stat(path)
        out = [st.st_uid, oct(st.st_mode & 0o7777)]
    elif op == "commit":
        f = open(path, "w")
        f.write("{}")
        f.close()
        out = open(path).read()
    elif op == "mkdir":
        os.mkdir(path)
        out = True
    elif op == "remove":
        os.unlink(path)
        out = True
    elif op == "register":  # register run argv[3], then read file argv[4] as that run
        with open(path, "w") as f:
            f.write(sys.argv[3] + "\n")
        out = open(sys.argv[4], "rb").read().decode()
    print(json.dumps({"ok": out}))
except OSError as exc:
    print(json.dumps({"errno": errno.errorcode.get(exc.errno, str(exc.errno))}))
"""


def as_user(
    op: str, path: Path, *args: str, env: dict[str, str] | None = None
) -> dict[str, object]:
    done = subprocess.run(
        ["runuser", "-u", USER, "--", SYSTEM_PYTHON, "-c", PROBE, op, str(path), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def other_user() -> pwd.struct_passwd:
    if shutil.which("runuser") is None or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs runuser and /usr/bin/python3")
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", USER], check=False)
        # 9: the name is taken, by another pytest-xdist worker that got here first
        assert made.returncode in (0, 9), f"useradd {USER} exited with {made.returncode}"
        return pwd.getpwnam(USER)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A mountpoint the other user can reach (pytest's tmp_path is 0700 root); requested
    before ``start_mount`` so that it is removed after the unmount."""
    path = Path(tempfile.mkdtemp(prefix="artfs-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    src = make_tree(tmp_path / "src", {"public.txt": "for everyone\n", "secret.txt": "root only\n"})
    (src / "public.txt").chmod(0o644)
    (src / "secret.txt").chmod(0o600)
    put(tmp_path / "home", src, "proj/data")
    return tmp_path / "home"


def test_without_allow_other_no_other_user_sees_the_mount(
    other_user: pwd.struct_passwd, public_dir: Path, home: Path, start_mount: StartMount
) -> None:
    mnt = start_mount(home, public_dir / "mnt")
    assert sorted(os.listdir(mnt.path / "proj" / "data" / "v0")) == ["public.txt", "secret.txt"]
    assert as_user("list", mnt.path) == {"errno": "EACCES"}
    assert as_user("read", mnt.path / "proj" / "data" / "v0" / "public.txt") == {"errno": "EACCES"}


def test_with_allow_other_modes_and_ownership_are_obeyed(
    other_user: pwd.struct_passwd, public_dir: Path, home: Path, start_mount: StartMount
) -> None:
    mnt = start_mount(home, public_dir / "mnt", "--allow-other")
    art = mnt.path / "proj" / "data"
    # Version trees: per recorded modes.
    assert as_user("list", art / "v0") == {"ok": ["public.txt", "secret.txt"]}
    assert as_user("read", art / "v0" / "public.txt") == {"ok": "for everyone\n"}
    assert as_user("read", art / "v0" / "secret.txt") == {"errno": "EACCES"}
    assert as_user("write", art / "v0" / "public.txt", "x")["errno"] in ("EACCES", "EROFS")

    # Root's staging (0755 root): readable, not writable, not committable by the other user.
    staging = art / "staging"
    (staging / "root.txt").write_text("root's\n")
    assert as_user("read", staging / "root.txt") == {"ok": "root's\n"}
    assert as_user("write", staging / "root.txt", "overwritten") == {"errno": "EACCES"}
    assert as_user("write", staging / "new.txt", "x") == {"errno": "EACCES"}
    assert as_user("commit", staging / ".artfs-commit") == {"errno": "EACCES"}
    with Store.open(home) as store:
        assert [v.number for v in store.versions(store.resolve("proj/data").artifact)] == [0]
    assert (staging / "root.txt").read_text() == "root's\n"


def catalogue(home: Path) -> dict[str, object]:
    """Everything a change through the mount could have recorded: projects, artifacts and
    their versions, runs, and the consumers of proj/data:v0."""
    with Store.open(home) as store:
        lineage = Lineage(store)
        return {
            "projects": store.projects(),
            "versions": {
                f"{artifact.project}/{artifact.name}": [v.number for v in versions]
                for project in store.projects()
                for artifact, versions in store.artifacts(project)
            },
            "runs": sorted((run.id, run.job_type) for run in lineage.runs()),
            "consumers": sorted(
                run.id for run, _ in lineage.consumers(lineage.version("proj/data:v0"))
            ),
        }


def shared_staging(mnt: Path, owner: pwd.struct_passwd) -> Path:
    """proj/shared's staging, made by root through the mount and given to ``owner`` (so the
    kernel's mode check lets them in), holding one file of root's."""
    (mnt / "proj" / "shared").mkdir()
    staging = mnt / "proj" / "shared" / "staging"
    os.chown(staging, owner.pw_uid, owner.pw_gid)
    (staging / "by-root.txt").write_text("root's\n")
    return staging


def test_with_allow_other_only_store_writers_change_the_store(
    other_user: pwd.struct_passwd, public_dir: Path, home: Path, start_mount: StartMount
) -> None:
    mnt = start_mount(home, public_dir / "mnt", "--allow-other")
    with Store.open(home) as store:
        run_id = Lineage(store).create_run("proj", "train").id
    staging = shared_staging(mnt.path, other_user)
    public = mnt.path / "proj" / "data" / "v0" / "public.txt"
    before = catalogue(home)

    register = as_user("register", mnt.path / ".artfs-register", run_id, str(public))
    assert register == {"errno": "EACCES"}
    assert as_user("mkdir", mnt.path / "newproj") == {"errno": "EACCES"}
    assert as_user("mkdir", mnt.path / "proj" / "newart") == {"errno": "EACCES"}
    assert as_user("write", staging / "mine.txt", "x") == {"errno": "EACCES"}
    assert as_user("mkdir", staging / "mydir") == {"errno": "EACCES"}
    assert as_user("remove", staging / "by-root.txt") == {"errno": "EACCES"}
    assert as_user("commit", staging / ".artfs-commit") == {"errno": "EACCES"}
    # Reading stays open to them (and is recorded as their own implicit run, not run_id's),
    # also when their environment names run_id: only a writer may name a writer's run.
    assert as_user("read", public) == {"ok": "for everyone\n"}
    assert as_user("read", public, env={"ARTFS_RUN_ID": run_id}) == {"ok": "for everyone\n"}
    # An id the store does not know is still their external run (a container's -e).
    assert as_user("read", public, env={"ARTFS_RUN_ID": "ext12345"}) == {"ok": "for everyone\n"}

    # The last read's run in the index: the flushes go in order, so what the reads before it
    # recorded (anything kept) is there too.
    eventually(lambda: "ext12345" in catalogue(home)["consumers"], within=RECORDED_WITHIN)  # type: ignore[operator]
    after = catalogue(home)
    assert run_id not in after["consumers"]  # type: ignore[operator]
    assert "ext12345" in after["consumers"]  # type: ignore[operator]
    new_runs = set(after.pop("runs")) - set(before.pop("runs"))  # type: ignore[arg-type]
    assert ("ext12345", "external") in new_runs
    new_runs.discard(("ext12345", "external"))
    assert {job_type for _, job_type in new_runs} <= {"implicit"}  # the reads, nothing else
    after.pop("consumers"), before.pop("consumers")
    assert after == before
    assert sorted(os.listdir(staging)) == ["by-root.txt"]
    assert not (mnt.path / "newproj").exists()

    # Root, the owner here, still can: a project, an artifact, staging, a commit, a run.
    (mnt.path / "newproj").mkdir()
    (mnt.path / "proj" / "newart").mkdir()
    (staging / "root2.txt").write_text("more\n")
    control = staging / ".artfs-commit"
    control.write_text("{}")
    assert json.loads(control.read_text()) == {"ref": "proj/shared:v0", "created": True}
    (mnt.path / ".artfs-register").write_text(run_id + "\n")
    with Store.open(home) as store:
        assert store.projects() == ["newproj", "proj"]
        assert [a.name for a, _ in store.artifacts("proj")] == ["data", "shared"]


def test_the_owner_of_the_store_may_change_it_through_a_shared_mount(
    other_user: pwd.struct_passwd, public_dir: Path, home: Path, start_mount: StartMount
) -> None:
    os.chown(home, other_user.pw_uid, other_user.pw_gid)  # the daemon still runs as root
    mnt = start_mount(home, public_dir / "mnt", "--allow-other")
    with Store.open(home) as store:
        run_id = Lineage(store).create_run("proj", "train").id
    staging = shared_staging(mnt.path, other_user)
    public = mnt.path / "proj" / "data" / "v0" / "public.txt"

    register = as_user("register", mnt.path / ".artfs-register", run_id, str(public))
    assert register == {"ok": "for everyone\n"}
    made = as_user("write", staging / "mine.txt", "by the owner\n")
    assert made["ok"][0] == other_user.pw_uid  # type: ignore[index]
    committed = as_user("commit", staging / ".artfs-commit")
    assert json.loads(str(committed["ok"])) == {"ref": "proj/shared:v0", "created": True}
    assert (mnt.path / "proj" / "shared" / "v0" / "mine.txt").read_text() == "by the owner\n"
    eventually(lambda: catalogue(home)["consumers"] == [run_id], within=RECORDED_WITHIN)


def _runs_and_index(home: Path) -> tuple[str, bytes]:
    done = subprocess.run(
        [str(ARTFS), "--home", str(home), "runs", "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, (home / "index" / "data.mdb").read_bytes()


def _read_as_new_job(path: Path, *argv: str, env: dict[str, str]) -> None:
    """Read ``path`` in a new process group (its own implicit run) with extra argv words."""
    code = "import sys; open(sys.argv[1], 'rb').read()"
    subprocess.run(
        [sys.executable, "-c", code, str(path), *argv], env=env, check=True, start_new_session=True
    )


def test_run_records_hold_no_environment_and_optionally_no_command_line(
    tmp_path: Path, home: Path, start_mount: StartMount
) -> None:
    mnt = start_mount(home)
    public = mnt.path / "proj" / "data" / "v0" / "public.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
    env["SECRET_TOKEN"] = "envsecret-5b2f0c"
    _read_as_new_job(public, "--token=cmdsecret-kept", env=env)
    eventually(lambda: "cmdsecret-kept" in _runs_and_index(home)[0], within=RECORDED_WITHIN)
    runs, index = _runs_and_index(home)
    assert "cmdsecret-kept" in runs  # the default keeps command lines: the probe can see them
    assert b"envsecret-5b2f0c" not in index and "envsecret-5b2f0c" not in runs

    config = subprocess.run(
        [str(ARTFS), "--home", str(home), "config", "record_command_lines", "false"],
        capture_output=True,
        text=True,
    )
    assert config.returncode == 0, config.stderr
    known = len(json.loads(runs))
    _read_as_new_job(public, "--token=cmdsecret-dropped", env=env)
    eventually(lambda: len(json.loads(_runs_and_index(home)[0])) > known, within=RECORDED_WITHIN)
    runs, index = _runs_and_index(home)
    assert len(json.loads(runs)) == known + 1
    assert "cmdsecret-dropped" not in runs and b"cmdsecret-dropped" not in index
    assert b"envsecret-5b2f0c" not in index


# Runs as the other user with this checkout's artfs and the venv's libraries (when that user
# can read them): starts a run in the store argv[1], reads argv[2] during it, prints its id.
SDK_RUN = r"""
import sys
import artfs
run = artfs.init(project="p2", home=sys.argv[1])
open(sys.argv[2], "rb").read()
run.finish()
print(run.id)
"""


def sdk_as_user(*args: str) -> str:
    import artfs

    checkout = Path(artfs.__file__).parent.parent
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(checkout), *site])}
    probe = subprocess.run(
        ["runuser", "-u", USER, "--", SYSTEM_PYTHON, "-c", "import artfs, lmdb"],
        capture_output=True,
        env=env,
        cwd="/",
    )
    if probe.returncode != 0:
        pytest.skip(f"{USER} cannot import this checkout's artfs with {SYSTEM_PYTHON}")
    done = subprocess.run(
        ["runuser", "-u", USER, "--", SYSTEM_PYTHON, "-c", SDK_RUN, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=60,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_second_users_run_stays_in_its_own_store(
    other_user: pwd.struct_passwd, public_dir: Path, home: Path, start_mount: StartMount
) -> None:
    mnt = start_mount(home, public_dir / "mnt", "--allow-other")
    theirs = public_dir / "home2"
    theirs.mkdir()
    os.chown(theirs, other_user.pw_uid, other_user.pw_gid)
    before = catalogue(home)
    run_id = sdk_as_user(str(theirs), str(mnt.path / "proj" / "data" / "v0" / "public.txt"))
    eventually(lambda: len(catalogue(home)["consumers"]) == 1, within=RECORDED_WITHIN)  # type: ignore[arg-type]
    after = catalogue(home)
    assert run_id not in after["consumers"]  # type: ignore[operator]
    assert {job_type for _, job_type in after["runs"]} == {"implicit"}  # type: ignore[union-attr]
    assert after["projects"] == before["projects"] == ["proj"]
    assert not (mnt.path / "default").exists()
    with Store.open(theirs) as store:
        assert [r.id for r in Lineage(store).runs()] == [run_id]
