"""Serving the app: the listening socket, the token, the URL (the one module importing
``waitress``).

waitress is a pure-Python WSGI server with a thread pool: the app's work is synchronous LMDB
reads (microseconds) and the odd ``dot`` layout, which threads serve well, and it needs no
compiler or event loop. The socket is bound here before the app is made, so the app knows the
port it answers on (for the Host check) even when the port was 0 (any free one).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass

import waitress

from artfs.errors import ArtfsError
from artfs.store import Store
from artfs.ui.app import create_app

THREADS = 4


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host.strip("[]"), port), family=family, backlog=64)
    except OSError as exc:
        raise ArtfsError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}: pick another --port or --host"
        ) from None


@dataclass(frozen=True)
class Serving:
    url: str
    token: str


def _url(host: str, port: int, token: str) -> str:
    """The URL to open; on a wildcard address, by this machine's name (what others can use)."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "[::]") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}/?token={token}"


def serve(store: Store, host: str, port: int, ready: Callable[[Serving], None]) -> None:
    """Serve ``store`` on ``host:port`` until interrupted (Ctrl-C returns normally).

    Every request needs a fresh random token, which is part of the URL handed to ``ready``:
    on loopback too, where every local user can connect, though ``ARTFS_HOME`` may be readable
    by its owner only. On loopback the Host header must also name the loopback (DNS rebinding).
    """
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    loopback = is_loopback(host)
    token = secrets.token_urlsafe(24)
    hosts = None
    if loopback:
        hosts = {f"{name}:{bound}" for name in ("127.0.0.1", "localhost", "[::1]", host)}
    app = create_app(store, token=token, allowed_hosts=hosts)
    # waitress warns of every request that waits for a free thread ("Task queue depth is 4"):
    # a burst of a page's requests is normal here, not something to print.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = waitress.create_server(app, sockets=[sock], threads=THREADS, ident="artfs-ui")
    ready(Serving(_url(host, bound, token), token))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
