"""A fault-injecting HTTP proxy on loopback, in front of the test S3 server.

The proxy forwards each request to the upstream endpoint unchanged (the ``Host`` header too, so
the client's SigV4 signature still matches) and applies the first rule that matches the request's
method and path. Every response is sent with the connection closed after it, so one client
connection carries one request and a fault never leaks into the next request.

API (``FaultProxy``; the ``fault_proxy`` fixture of ``tests/remote/conftest.py`` gives one in front
of the session's SeaweedFS, started and stopped around each test, and the ``proxied`` fixture an
``S3Server`` whose ``endpoint``, ``store(prefix)`` and ``url(prefix)`` go through it)::

    proxy.endpoint                     # http://127.0.0.1:PORT, what the client talks to
    proxy.add(Fault.drop_response("PUT", r"/versions/"), count=1)
    proxy.add(Fault.status(503), probability=0.2, seed=7)
    proxy.go_offline()                 # the port refuses connections: the remote is gone
    proxy.go_online()                  # the same port listens again
    proxy.clear()                      # no more faults
    proxy.log                          # every request seen: Seen(method, path, action, status)
    proxy.chosen("latency")            # requests a rule took, a delayed one still waiting too

Faults (``Fault`` class methods; ``method`` and ``path`` default to any, ``path`` is a regular
expression searched in the request path, query included, e.g. ``r"/versions/.*\\.json$"``):

- ``drop_response(method, path)``: forward the request (it reaches the server, which commits it),
  then close the client's connection without a response, as when a response is lost on the way;
- ``status(code, method, path)``: answer ``code`` (409, 500, 503, ...) with an S3 XML error body
  without forwarding;
- ``latency(seconds, method, path)``: wait, then forward;
- ``reset(method, path)``: close the connection as soon as the request is read, not forwarded;
- ``truncate(method, path)``: forward, then send the status line, the headers and half of the
  body, and close: a response cut mid-body.

A rule applies to the next ``count`` matching requests (``None``: to all of them), each with
``probability`` (a seeded random generator, so a run is repeatable). ``stop()`` closes every
socket and joins every thread; the fixture calls it also when the test failed.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

_IO_TIMEOUT = 30.0
_REASONS = {
    409: ("Conflict", "OperationAborted"),
    500: ("Internal Server Error", "InternalError"),
    503: ("Service Unavailable", "SlowDown"),
}


@dataclass(frozen=True)
class Fault:
    """What to do with a matching request; build one with the class methods."""

    action: str  # "drop_response", "status", "latency", "reset", "truncate"
    method: str | None = None
    path: str | None = None
    code: int = 0
    seconds: float = 0.0

    @classmethod
    def drop_response(cls, method: str | None = None, path: str | None = None) -> Fault:
        return cls("drop_response", method, path)

    @classmethod
    def status(cls, code: int, method: str | None = None, path: str | None = None) -> Fault:
        return cls("status", method, path, code=code)

    @classmethod
    def latency(cls, seconds: float, method: str | None = None, path: str | None = None) -> Fault:
        return cls("latency", method, path, seconds=seconds)

    @classmethod
    def reset(cls, method: str | None = None, path: str | None = None) -> Fault:
        return cls("reset", method, path)

    @classmethod
    def truncate(cls, method: str | None = None, path: str | None = None) -> Fault:
        return cls("truncate", method, path)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path is None or re.search(self.path, path) is not None


@dataclass
class _Rule:
    fault: Fault
    remaining: int | None
    probability: float
    rng: random.Random
    applied: int = 0


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it: the action taken and the status the client got
    (None when it got no response)."""

    method: str
    path: str
    action: str  # "forward" or a fault's action
    status: int | None


@dataclass
class _Request:
    method: str
    path: str
    head: bytes  # request line and headers, as received, with Connection: close
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FaultProxy:
    """See the module docstring. Create with :meth:`start`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.log: list[Seen] = []
        self.port = 0
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()

    @classmethod
    def start(cls, upstream_endpoint: str) -> FaultProxy:
        host, _, port = upstream_endpoint.removeprefix("http://").partition(":")
        proxy = cls((host, int(port)))
        proxy.go_online()
        return proxy

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- rules --------------------------------------------------------------------------------

    def add(
        self,
        fault: Fault,
        *,
        count: int | None = 1,
        probability: float = 1.0,
        seed: int = 0,
    ) -> None:
        with self._lock:
            self._rules.append(_Rule(fault, count, probability, random.Random(seed)))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def applied(self, action: str) -> int:
        """How many requests got ``action`` so far."""
        with self._lock:
            return sum(1 for seen in self.log if seen.action == action)

    def chosen(self, action: str) -> int:
        """How many requests a rule with ``action`` was applied to so far, counted as the rule
        is chosen: a request a latency rule still holds counts here, not yet in :meth:`applied`."""
        with self._lock:
            return sum(rule.applied for rule in self._rules if rule.fault.action == action)

    def _choose(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining == 0 or not rule.fault.matches(method, path):
                    continue
                if rule.rng.random() >= rule.probability:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.applied += 1
                return rule.fault
        return None

    def _record(self, request: _Request, action: str, status: int | None) -> None:
        with self._lock:
            self.log.append(Seen(request.method, request.path, action, status))

    # --- lifecycle ----------------------------------------------------------------------------

    def go_online(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener,), name=f"faultproxy-{self.port}", daemon=True
        )
        self._acceptor.start()

    def go_offline(self) -> None:
        """Stop listening and cut every open connection: connecting is refused until
        :meth:`go_online`."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=10)
            self._acceptor = None
        self._cut_connections()

    def stop(self) -> None:
        """Close everything and join every thread (idempotent)."""
        self._stopping.set()
        self.go_offline()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=10)
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"fault proxy threads did not stop: {alive}")

    def _cut_connections(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by go_offline
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self._threads.add(thread)
                self._sockets.add(client)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(_IO_TIMEOUT)
            request = _read_request(client)
            if request is not None:
                self._handle(client, request)
        except OSError:
            pass  # the client went away, or the proxy is stopping
        finally:
            client.close()
            with self._lock:
                self._sockets.discard(client)
                self._threads.discard(threading.current_thread())

    # --- one request --------------------------------------------------------------------------

    def _handle(self, client: socket.socket, request: _Request) -> None:
        fault = self._choose(request.method, request.path)
        action = fault.action if fault is not None else "forward"
        if fault is not None and fault.action == "reset":
            self._record(request, action, None)
            # Linger 0: close() sends a reset, as a crashed or firewalled server would.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if fault is not None and fault.action == "status":
            self._record(request, action, fault.code)
            client.sendall(_error_response(fault.code, request.path))
            return
        if fault is not None and fault.action == "latency" and self._stopping.wait(fault.seconds):
            return
        response = self._forward(request)
        status = _status_of(response)
        if fault is not None and fault.action == "drop_response":
            self._record(request, action, None)
            return  # the server has done the work; the client hears nothing
        self._record(request, action, status)
        if fault is not None and fault.action == "truncate":
            head, _, body = response.partition(b"\r\n\r\n")
            response = head + b"\r\n\r\n" + body[: len(body) // 2]
        client.sendall(response)

    def _forward(self, request: _Request) -> bytes:
        with socket.create_connection(self.upstream, timeout=_IO_TIMEOUT) as upstream:
            with self._lock:
                self._sockets.add(upstream)
            try:
                upstream.sendall(request.head + request.body)
                return b"".join(_read_until_closed(upstream))
            finally:
                with self._lock:
                    self._sockets.discard(upstream)


# --- HTTP/1.1, just enough ---------------------------------------------------------------------


def _read_request(sock: socket.socket) -> _Request | None:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    kept = [lines[0]]
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
        if name.strip().lower() not in ("connection", "keep-alive"):
            kept.append(line)
    kept.append("Connection: close")
    if "chunked" in headers.get("transfer-encoding", ""):
        body = _read_chunked(sock, rest)
    else:
        body = _read_exactly(sock, rest, int(headers.get("content-length", "0")))
    raw_head = ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1")
    return _Request(method, unquote(target), raw_head, body, headers)


def _read_exactly(sock: socket.socket, have: bytes, length: int) -> bytes:
    parts = [have]
    got = len(have)
    while got < length:
        data = sock.recv(min(1 << 20, length - got))
        if not data:
            raise OSError("client closed during the body")
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _read_chunked(sock: socket.socket, have: bytes) -> bytes:
    """A chunked body, returned as received (chunk framing included)."""
    buffer = have
    while not _chunked_complete(buffer):
        data = sock.recv(65536)
        if not data:
            raise OSError("client closed during the body")
        buffer += data
    return buffer


def _chunked_complete(buffer: bytes) -> bool:
    position = 0
    while True:
        end = buffer.find(b"\r\n", position)
        if end < 0:
            return False
        size = int(buffer[position:end].split(b";")[0], 16)
        if size == 0:
            return buffer.find(b"\r\n\r\n", end) >= 0  # the last chunk, then any trailers
        position = end + 2 + size + 2
        if position > len(buffer):
            return False


def _read_until_closed(sock: socket.socket) -> Iterator[bytes]:
    while data := sock.recv(1 << 20):
        yield data


def _status_of(response: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    return int(match.group(1)) if match else None


def _error_response(code: int, resource: str) -> bytes:
    reason, s3_code = _REASONS.get(code, ("Error", "InternalError"))
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{s3_code}</Code><Message>injected by the fault proxy</Message>"
        f"<Resource>{resource}</Resource><RequestId>faultproxy</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body
