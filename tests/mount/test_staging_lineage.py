"""Who read what through a real mount: the three run-resolution paths, forked workers, a
pid-namespace reader, commits attributed to the committing run, and lineage queries."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from artfs.lineage import Lineage, RunRecord, Usage
from artfs.store import Store
from tests.mount.mountutil import ARTFS, RECORDED_WITHIN, Mount, StartMount, eventually, put

pytestmark = pytest.mark.mount


@pytest.fixture
def home(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"part{i}.txt").write_text(f"part {i}\n")
    put(tmp_path / "home", src, "proj/data")
    return tmp_path / "home"


@pytest.fixture
def mnt(home: Path, start_mount: StartMount) -> Mount:
    return start_mount(home)


def consumers(home: Path, ref: str = "proj/data:v0") -> list[tuple[RunRecord, Usage]]:
    with Store.open(home) as store:
        lineage = Lineage(store)
        return lineage.consumers(lineage.version(ref))


def wait_consumers(home: Path, count: int = 1) -> list[tuple[RunRecord, Usage]]:
    found: list[tuple[RunRecord, Usage]] = []

    def check() -> bool:
        nonlocal found
        found = consumers(home)
        return len(found) >= count

    eventually(check, within=RECORDED_WITHIN)
    return found


def python(code: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()) -> str:
    """Run ``code`` in its own session (so its own process group), as a job would be."""
    done = subprocess.run(
        [*prefix, sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def read_code(mnt: Mount, name: str = "part0.txt") -> str:
    return f"open({str(mnt.path / 'proj/data/v0' / name)!r}).read()\n"


def test_implicit_run_for_a_plain_reader(mnt: Mount, home: Path) -> None:
    python(read_code(mnt) + "print('marker-implicit')")
    (run, usage), *rest = wait_consumers(home)
    assert rest == []
    assert run.job_type == "implicit" and run.implicit and run.project == "proj"
    assert "marker-implicit" in " ".join(run.command)
    assert run.user and run.host and run.pid and run.proc_start
    assert usage.files == 1 and usage.first <= usage.last


def test_run_id_from_the_environment(mnt: Mount, home: Path) -> None:
    with Store.open(home) as store:
        known = Lineage(store).create_run("proj", "train").id
    python(read_code(mnt), env={"ARTFS_RUN_ID": known})
    # a child of a process that has it: the nearest ancestor's variable counts
    child = read_code(mnt, "part1.txt")
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    python(code, env={"ARTFS_RUN_ID": known})
    python(read_code(mnt), env={"ARTFS_RUN_ID": "ext12345"})  # unknown: an external run
    found = {run.id: (run, usage) for run, usage in wait_consumers(home, 2)}
    assert found[known][1].files == 2
    eventually(lambda: len(consumers(home)) == 2, within=RECORDED_WITHIN)
    assert {r.id: r for r, _ in consumers(home)}["ext12345"].job_type == "external"


def test_registration_through_the_mount(mnt: Mount, home: Path) -> None:
    code = f"""
        import artfs
        run = artfs.init(project="proj", job_type="train", home={str(home)!r})
        {read_code(mnt).strip()}
        print(run.id)
    """
    run_id = python(code, env={"ARTFS_RUN_ID": "envrun01"}).strip()  # registration wins
    (run, _), *rest = wait_consumers(home)
    assert rest == [] and run.id == run_id and run.job_type == "train"
    with pytest.raises(OSError) as caught:
        (mnt.path / ".artfs-register").write_text("not a run id\n")
    assert caught.value.errno == errno.EINVAL
    assert ".artfs-register" not in os.listdir(mnt.path)


def test_forked_workers_are_one_run(mnt: Mount, home: Path) -> None:
    code = f"""
        import os
        pids = []
        for i in range(4):
            pid = os.fork()
            if pid == 0:
                open({str(mnt.path / "proj/data/v0")!r} + f"/part{{i}}.txt").read()
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
    """
    python(code)
    # Every worker's open written (in one flush or several), then counted.
    eventually(lambda: sum(u.files for _, u in consumers(home)) >= 4, within=RECORDED_WITHIN)
    found = consumers(home)
    assert len(found) == 1, [r.command for r, _ in found]
    assert found[0][1].files == 4


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root")
def test_pid_namespace_reader(mnt: Mount, home: Path) -> None:
    with Store.open(home) as store:
        known = Lineage(store).create_run("proj", "container").id
    # A new pid namespace only: --mount-proc would also need a private mount namespace, which
    # unshare cannot set up where / is not a mount point (a chroot, some containers), and the
    # reader needs neither: the daemon sees its pid as the host numbers it.
    ns = ("unshare", "--pid", "--fork")
    code = "import os; assert os.getpid() == 1, os.getpid()\n" + read_code(mnt)
    python(code, env={"ARTFS_RUN_ID": known}, prefix=ns)
    python(code + "print('marker-ns')", prefix=ns)
    found = {run.id: run for run, _ in wait_consumers(home, 2)}
    assert known in found
    implicit = [r for r in found.values() if r.implicit]
    assert len(implicit) == 1 and implicit[0].pid and implicit[0].pid > 1


def test_read_commit_pipeline_and_lineage(mnt: Mount, home: Path) -> None:
    os.mkdir(mnt.path / "proj" / "model")
    code = f"""
        data = open({str(mnt.path / "proj/data/v0/part2.txt")!r}).read()
        staging = {str(mnt.path / "proj/model/staging")!r}
        with open(staging + "/model.bin", "w") as out:
            out.write("trained on " + data)
        with open(staging + "/.artfs-commit", "w") as control:
            control.write('{{"type": "model", "aliases": ["best"]}}')
        print(open(staging + "/.artfs-commit").read())
    """
    result = json.loads(python(code))
    assert result == {"ref": "proj/model:v0", "created": True}
    ((reader, _),) = wait_consumers(home)
    with Store.open(home) as store:
        model = Lineage(store).version("proj/model:v0")
    assert model.logged_by == reader.id and model.type == "model"
    env = {**os.environ, "ARTFS_HOME": str(home)}

    def cli(*args: str) -> str:
        done = subprocess.run([str(ARTFS), *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    graph = json.loads(cli("lineage", "proj/model:v0", "--direction", "up", "--format", "json"))
    nodes = {n["id"]: n for n in graph["nodes"]}
    run = nodes[f"run:{reader.id}"]
    assert run["kind"] == "run" and "model.bin" in run["command"]
    assert run["host"] and run["user"]
    assert nodes["version:proj/data:v0"]["ref"] == "proj/data:v0"
    edges = {(e["from"], e["to"], e["kind"]) for e in graph["edges"]}
    assert ("version:proj/data:v0", f"run:{reader.id}", "used") in edges
    assert (f"run:{reader.id}", "version:proj/model:v0", "logged") in edges
    tree = cli("lineage", "proj/model:v0", "--format", "tree")
    assert "proj/data:v0" in tree and reader.id in tree
    dot = cli("lineage", "proj/data:v0", "--direction", "down", "--format", "dot")
    assert dot.lstrip().startswith("digraph") and "proj/model:v0" in dot
    info = cli("info", "proj/data:v0")
    assert reader.id in info


def test_recording_off(home: Path, start_mount: StartMount) -> None:
    mnt = start_mount(home, None, "--no-lineage")
    python(read_code(mnt))
    time.sleep(1.2)
    assert consumers(home) == []
