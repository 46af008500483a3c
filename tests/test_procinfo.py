"""``artfs.procinfo``: the one parser of ``/proc/PID/stat`` (run records, run ends, the daemon)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from artfs import procinfo


def test_this_process_is_read_as_the_kernel_reports_it() -> None:
    stat = procinfo.proc_stat(os.getpid())
    assert stat is not None
    assert (stat.pid, stat.ppid, stat.pgrp, stat.session) == (
        os.getpid(),
        os.getppid(),
        os.getpgrp(),
        os.getsid(0),
    )
    assert stat.start == procinfo.start_time(os.getpid()) and stat.start > 0


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields(
    tmp_path: Path,
) -> None:
    # Field 2 is the command name in parentheses, and a name may hold ") S 9 (" itself.
    rest = " ".join(str(n) for n in range(4, 53))  # fields 4..52 (ppid is field 4)
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "stat").write_bytes(f"77 (evil) S 9 (x) R {rest}\n".encode())
    stat = procinfo.proc_stat(77, str(tmp_path))
    assert stat == procinfo.ProcStat(77, ppid=4, pgrp=5, session=6, start=22)


def test_a_process_that_is_gone_has_no_stat() -> None:
    beyond = 2**22 + 1  # pid_max is at most 2**22: no process ever has this pid
    assert procinfo.proc_stat(beyond) is None
    assert procinfo.start_time(beyond) is None


def test_a_proc_file_longer_than_one_read_is_read_whole(tmp_path: Path) -> None:
    content = b"\0".join(b"V%d=%s" % (n, b"x" * 100) for n in range(2000))  # ~210 KB
    (tmp_path / "environ").write_bytes(content)
    assert procinfo.read_proc(str(tmp_path / "environ")) == content
    big = "x" * (100 << 10)
    child = subprocess.Popen(["sleep", "30"], env={"BIG": big, "PATH": os.environ["PATH"]})
    try:
        deadline = time.monotonic() + 10
        while procinfo.command_line(child.pid)[:1] != ["sleep"] and time.monotonic() < deadline:
            time.sleep(0.01)  # until it runs sleep: before exec its environ reads empty
        environ = procinfo.read_proc(f"/proc/{child.pid}/environ")
        with open(f"/proc/{child.pid}/environ", "rb") as f:
            assert environ == f.read() and f"BIG={big}".encode() in environ
    finally:
        child.kill()
        child.wait()


def test_the_daemons_of_a_mount_are_known_by_their_command_line(tmp_path: Path) -> None:
    """As ``artfs mount`` starts one (``-m artfsd MOUNTPOINT``) and as the systemd units do
    (the ``artfsd`` script, then the mountpoint), also given relative to the daemon's working
    directory; another mountpoint's, or a process that only names the mountpoint, is not one
    of them. Each is given as a pidfd, readable once its process has exited."""
    point, other = tmp_path / "mnt", tmp_path / "other"
    point.mkdir()
    other.mkdir()
    script = tmp_path / "bin" / "artfsd"
    script.parent.mkdir()
    script.write_text("import time; time.sleep(60)\n")
    sleep = "import time; time.sleep(60)"
    python = sys.executable
    commands = {
        "module": [python, "-c", sleep, "-m", "artfsd", str(point)],
        "script": [python, str(script), str(point), "--allow-other"],
        "relative": [python, str(script), "mnt"],
        "elsewhere": [python, str(script), str(other)],
        "names it": [python, "-c", sleep, "artfsd", str(point)],
    }
    procs = {name: subprocess.Popen(argv, cwd=tmp_path) for name, argv in commands.items()}
    fds = []
    try:
        fds = procinfo.daemon_pidfds(str(point))
        pids = {
            int(Path(f"/proc/self/fdinfo/{fd}").read_text().split("Pid:")[1].split()[0])
            for fd in fds
        }
        assert pids == {procs[name].pid for name in ("module", "script", "relative")}
        assert not procinfo.wait_exited(fds, 0)
        for name in ("module", "script", "relative"):
            procs[name].kill()
        assert procinfo.wait_exited(fds, 10)
    finally:
        for fd in fds:
            os.close(fd)
        for proc in procs.values():
            proc.kill()
            proc.wait()
