"""Fixtures for the remote tests: a real S3 server (SeaweedFS, see :mod:`tests.remote.seaweed`)
once per test session, killed at the end also when a test failed; each test works under its own
key prefix of one bucket. Also moto in server mode and a fault-injecting proxy.
"""

from __future__ import annotations

import logging
import os
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from tests.remote.faultproxy import FaultProxy
from tests.remote.seaweed import BUCKET, S3Server, free_ports, running_server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    try:
        with running_server(tmp_path_factory.mktemp("seaweedfs")) as server:
            yield server
    except RuntimeError as exc:
        pytest.fail(str(exc))


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
    [port] = free_ports(1)
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
