"""Commands that mount and unmount the store (the daemon runs as its own process)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from artfs.cli import console
from artfs.cli.context import Context
from artfs.cli.params import pass_ctx
from artfs.errors import ArtfsError, InputError
from artfs.mounts import ARTFS_FSTYPE, mount_at, mount_table
from artfs.procinfo import daemon_pidfds, wait_exited

# How long 'artfs umount' waits for the daemon to exit once unmounted (it exits within a
# second unless a remote keeps it: see umount).
DAEMON_EXIT_SECONDS = 30.0


@click.command()
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--foreground", is_flag=True, help="Serve in this process until unmounted.")
@click.option("--allow-other", is_flag=True, help="Let other users and containers read it.")
@click.option(
    "--poll",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between looks at the default remote for new versions (0: never).",
)
@pass_ctx
def mount(ctx: Context, mountpoint: Path, foreground: bool, allow_other: bool, poll: float) -> None:
    """Mount every version of the store, read-only, at MOUNTPOINT."""
    import os

    # The mountpoint as the mount table will name it (its directory's symlinks resolved, the
    # mountpoint itself not looked into), by which 'artfs umount' knows the daemon.
    point = os.path.normpath(mountpoint.absolute())
    point = os.path.join(os.path.realpath(os.path.dirname(point)), os.path.basename(point))
    # -P: the daemon imports the installed artfs, never a package of that name in the
    # caller's directory (a checkout, a project's own module), which -m would put first.
    command = [sys.executable, "-P", "-m", "artfsd", point, "--home"]
    command += [str(ctx.home.absolute()), *(["--allow-other"] if allow_other else [])]
    command += ["--poll", str(poll)]
    if foreground:
        os.execv(sys.executable, command)
    log = _start_daemon(command, ctx.home / "logs" / f"artfsd{_escape(mountpoint)}.log")
    if not ctx.quiet:
        console.note(f"mounted the store at {mountpoint} (daemon log: {log})")


def _escape(path: Path) -> str:
    return str(path.absolute()).replace("/", "-")


def _start_daemon(command: list[str], log: Path) -> Path:
    """Start the daemon detached; return once it reports the mount ready, or raise why not."""
    import os
    import select
    import subprocess

    log.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    with open(log, "ab") as log_file:
        daemon = subprocess.Popen(
            [*command, "--ready-fd", str(write_end)],
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as ready:
        if not select.select([ready], [], [], 60)[0]:
            daemon.kill()
            raise ArtfsError(f"the mount did not come up within 60 s: see {log}")
        line = ready.readline().decode(errors="replace").strip()
    if line == "READY":
        return log
    if line.startswith("ERROR "):
        daemon.wait(timeout=10)
        raise ArtfsError(line[len("ERROR ") :])
    code = daemon.wait(timeout=10)
    raise ArtfsError(f"the daemon exited with status {code} before mounting: see {log}")


@click.command()
@click.argument("mountpoint", type=click.Path(path_type=Path))
def umount(mountpoint: Path) -> None:
    """Unmount an artfs mount; its daemon exits."""
    import shutil
    import subprocess

    tool = shutil.which("fusermount3")
    if tool is None:
        raise ArtfsError(
            "fusermount3 is missing: install the fuse3 package (apt-get install fuse3)"
        )
    table = mount_table()
    mounted = mount_at(mountpoint, table) or mount_at(os.path.realpath(mountpoint), table)
    # (A dead mount's root cannot be looked at, so the table is asked first.)
    if mounted is None and not os.path.lexists(mountpoint):
        raise InputError(f"{mountpoint} does not exist: give the directory artfs is mounted on")
    if mounted is None and table:  # (an unreadable table: fusermount3 decides)
        raise InputError(f"{mountpoint} is not a mount point: there is nothing to unmount")
    if mounted is not None and mounted.fstype != ARTFS_FSTYPE:
        how = "fusermount3 -u" if mounted.fstype.startswith("fuse") else "umount"
        raise InputError(
            f"{mountpoint} is not an artfs mount (its type is {mounted.fstype}): "
            f"unmount it with {how}"
        )
    # The mount found, by the path the table gives it (fusermount3 would resolve the one given
    # again, perhaps otherwise).
    target = os.path.abspath(mountpoint) if mounted is None else mounted.point
    daemons = daemon_pidfds(target)
    try:
        done = subprocess.run([tool, "-u", target], capture_output=True, text=True)
        if done.returncode != 0:
            reason = done.stderr.strip().rpartition(": ")[2] or "failed"
            hint = ": close the files open under it" if "busy" in reason else ""
            raise ArtfsError(f"cannot unmount {mountpoint}: {reason}{hint}")
        # The daemon writes the usage of the last reads as it exits, then waits for what it
        # still sends to a remote (at most PUBLISH_WAIT_SECONDS) and for a refresh from one
        # (REFRESH_STOP_SECONDS): once its exit is seen, the lineage has every read made
        # through the mount.
        if not wait_exited(daemons, DAEMON_EXIT_SECONDS):
            console.note(
                f"{mountpoint} is unmounted; its daemon is still exiting after "
                f"{DAEMON_EXIT_SECONDS:.0f} s (a remote that does not answer?): see its log in "
                "ARTFS_HOME/logs"
            )
    finally:
        for fd in daemons:
            os.close(fd)
