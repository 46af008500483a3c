"""How a run ends when the script does not call ``finish`` (W&B's own snippets don't): each
script runs in its own interpreter, with only ``import artfs as wandb`` changed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import artfs as wandb


def run_script(body: str, home: Path) -> subprocess.CompletedProcess[str]:
    script = "import artfs as wandb\n" + textwrap.dedent(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTFS_", "WANDB_"))}
    env["ARTFS_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )


def the_run(home: Path) -> wandb.Run:
    (run,) = wandb.Api(home=home).runs("proj")
    return run


START = """
run = wandb.init(project="proj")
wandb.log({"loss": 0.5})
"""


def test_a_run_not_finished_is_finished_at_exit_with_its_history(home: Path) -> None:
    proc = run_script(START, home)
    assert proc.returncode == 0, proc.stderr
    run = the_run(home)
    assert (run.state, run.record.exit_code) == ("finished", 0)
    assert run.summary["loss"] == 0.5 and len(run.history(pandas=False)) == 1


def test_sys_exit_with_a_code_fails_the_run(home: Path) -> None:
    proc = run_script(START + "import sys\nsys.exit(3)\n", home)
    assert proc.returncode == 3
    run = the_run(home)
    assert (run.state, run.record.exit_code) == ("failed", 3)


def test_an_uncaught_exception_crashes_the_run(home: Path) -> None:
    proc = run_script(START + "raise RuntimeError('boom')\n", home)
    assert proc.returncode == 1 and "RuntimeError: boom" in proc.stderr
    run = the_run(home)
    assert (run.state, run.record.exit_code) == ("crashed", 1)
    assert run.summary["loss"] == 0.5  # what was logged before the crash is kept


def test_sigterm_crashes_the_run_and_the_process_still_dies_of_it(home: Path) -> None:
    proc = run_script(START + "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", home)
    assert proc.returncode == -signal.SIGTERM
    run = the_run(home)
    assert (run.state, run.record.exit_code) == ("crashed", 128 + signal.SIGTERM)


def test_a_run_killed_silently_is_found_crashed_at_the_next_look(home: Path) -> None:
    proc = run_script(START + "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", home)
    assert proc.returncode == -signal.SIGKILL
    run = the_run(home)
    assert run.state == "crashed" and run.record.ended is not None
    assert wandb.Api(home=home).run(run.id).state == "crashed"  # and it stays so


def test_artfs_runs_finds_a_killed_run_crashed_too(home: Path, run_cli: Any) -> None:
    proc = run_script(START + "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", home)
    assert proc.returncode == -signal.SIGKILL
    (listed,) = run_cli("runs", "--json", check=True).json()
    assert listed["state"] == "crashed"


def test_a_running_run_of_a_live_process_stays_running(home: Path) -> None:
    with wandb.init(project="proj", home=home) as run:
        assert wandb.Api(home=home).run(run.id).state == "running"


def test_a_forked_worker_s_exit_or_sigterm_does_not_end_the_parent_s_run(home: Path) -> None:
    body = (
        START
        + """
import os, signal, sys
for how in ("sigterm", "exit", "raise"):
    child = os.fork()
    if child == 0:
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        if how == "raise":
            raise RuntimeError("worker failed")
        sys.exit(4)
    os.waitpid(child, 0)
print(wandb.Api().run(run.id).state, flush=True)
"""
    )
    proc = run_script(body, home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "running"  # what the children did left the run alone
    run = the_run(home)
    assert (run.state, run.record.exit_code) == ("finished", 0)
