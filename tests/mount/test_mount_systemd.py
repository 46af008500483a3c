"""The systemd units parse, and their exact ExecStart/ExecStop lines mount and unmount."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mount.mountutil import FUSE_MISSING, is_mount, put, stop_process

UNITS = Path(__file__).resolve().parents[2] / "systemd"
ARTFSD = str(Path(sys.executable).parent / "artfsd")
INSTALLED = ("/usr/local/bin/artfsd", "%h/.local/bin/artfsd")


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def local_copy(name: str, tmp_path: Path, instance: str | None = None) -> Path:
    """The unit with the installed artfsd path pointing at this checkout's artfsd."""
    text = (UNITS / name).read_text()
    for path in INSTALLED:
        text = text.replace(path, ARTFSD)
    target = tmp_path / (name.replace("@.", f"@{instance}.") if instance else name)
    if instance:  # systemd-analyze finds the template beside the instance
        (tmp_path / name).write_text(text)
    target.write_text(text)
    return target


@pytest.mark.parametrize("name", ["artfs@.service", "artfs.service", "artfs-user.service"])
def test_units_parse_and_declare_what_the_issue_asks(name: str, tmp_path: Path) -> None:
    service = unit(name)["Service"]
    assert service["Type"] == ["notify"]
    assert service["Restart"] == ["on-failure"]
    assert any("fusermount3 -u" in line for line in service["ExecStop"])
    if name != "artfs-user.service":
        assert service["StateDirectory"] == ["artfs"]
        assert service["Environment"] == ["ARTFS_HOME=/var/lib/artfs"]
        assert "/dev/fuse rw" in service["DeviceAllow"]
    for option in ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert option not in service, f"{option} gives a private mount namespace: breaks FUSE"
    # A root daemon creates staging files for other users (chown) in their directories, and
    # fetches http(s) references: a hardening that forbids either breaks the mount for users.
    for caps in service.get("CapabilityBoundingSet", []):
        for cap in ("CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE"):
            assert cap in caps.split(), f"{cap} is missing from CapabilityBoundingSet"
    for families in service.get("RestrictAddressFamilies", []):
        assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families.split())
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: only the parse above was checked")
    copy = local_copy(name, tmp_path, instance="srv-artfs" if "@" in name else None)
    # --man=no: the units name their man pages (Documentation=man:...), which a minimal machine
    # does not have; whether a man page is installed says nothing about the unit.
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.mount
@pytest.mark.skipif(FUSE_MISSING, reason="needs /dev/fuse and fusermount3")
def test_template_execstart_mounts_notifies_ready_and_execstop_unmounts(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_bytes(b"unit")
    home = tmp_path / "state"
    put(home, src, "proj/units")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    service = unit("artfs@.service")["Service"]

    def expand(line: str) -> list[str]:
        line = line.replace("%f", str(mountpoint))
        for path in INSTALLED:
            line = line.replace(path, ARTFSD)
        return shlex.split(line.lstrip("-"))

    env = dict(os.environ)
    key, _, value = service["Environment"][0].partition("=")
    assert value == "/var/lib/artfs"
    env[key] = str(home)  # StateDirectory's /var/lib/artfs, here a temporary one
    notify_path = str(tmp_path / "notify.sock")
    env["NOTIFY_SOCKET"] = notify_path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        notify.settimeout(15)
        proc = subprocess.Popen(
            expand(service["ExecStart"][0]),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            message = notify.recv(4096).decode()
            assert "READY=1" in message.splitlines()
            assert is_mount(mountpoint)
            assert (mountpoint / "proj" / "units" / "v0" / "f.txt").read_bytes() == b"unit"
            subprocess.run(expand(service["ExecStop"][0]), check=True)
            assert proc.wait(timeout=10) == 0
            assert not is_mount(mountpoint)
        finally:
            if is_mount(mountpoint):
                subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
            stop_process(proc)  # type: ignore[arg-type]
