"""Object storage behind one small interface (the one module importing ``obstore``).

Everything artfs needs from an object store is here: a plain put, a create-only put
(``If-None-Match: *``), a compare-and-swap put (``If-Match: ETAG``), whole and ranged gets, head
and list. :class:`S3ObjectStore` speaks S3 (AWS, MinIO, SeaweedFS, R2) through obstore's sync
API; :class:`MemoryObjectStore` keeps objects in a dict for unit tests.

Conditional writes and retries: the HTTP client retries a request whose response was lost, so a
create-only put may see 412 "already exists" for the object its own first attempt wrote, and a
compare-and-swap may see 412 because its own first attempt already moved the ETag. Every
conditional write therefore carries a fresh write token (``writer id . nonce``) in the object's
user metadata (``x-amz-meta-artfs-write``); on 412 the object is read back and, when it carries
our token, the write is reported as having succeeded. A 409 (S3's "conditional request
conflict": another conditional write to the key was in flight) is retried after a jittered
backoff.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotFoundError,
    PreconditionError,
)
from obstore.store import S3Store

from artfs.errors import (
    InvalidName,
    ObjectChanged,
    RemoteError,
    RemoteMissing,
    StoreError,
)

TOKEN_KEY = "artfs-write"
# 409 retries: S3 returns 409 while another conditional write to the same key is in flight.
_CONFLICT_RETRIES = 8
_CONFLICT_BACKOFF = 0.05
# Retry waits (see backoff): the first step and the longest wait.
BACKOFF_BASE = 0.02
BACKOFF_MAX = 1.0
# The client's own retries (5xx, dropped connections): few and short, so that a remote that is
# gone is a clear error within a second (connection refused: 4 retries, ~0.5 s measured) instead
# of the client's default three minutes.
_CLIENT_RETRIES = 4
# A request that gets no complete answer within this is abandoned (a stalled or black-holed
# server), and no retry starts after it: ARTFS_REMOTE_TIMEOUT seconds overrides it. It bounds a
# whole request, so a 64 MiB pack needs more than ~2.2 MB/s at the default.
DEFAULT_TIMEOUT = 30.0
_STATUS = re.compile(r"status code: (\d{3})")
_S3_CODE = re.compile(r"<Code>(\w+)</Code>")
_RETRIES = re.compile(r"after (\d+) retries")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    modified: float = 0.0  # the server's last-modified time, seconds since the epoch


class ObjectStore(Protocol):
    """What artfs needs from an object store. Keys are relative to the store's prefix."""

    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` unconditionally; return the new ETag."""
        ...

    def put_new(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if it does not exist; False when another writer created it."""
        ...

    def put_if(self, key: str, data: bytes, etag: str) -> str | None:
        """Replace ``key`` only if its ETag is still ``etag``; the new ETag, or None if it
        changed (compare-and-swap)."""
        ...

    def get(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and ETag; RemoteMissing when there is none."""
        ...

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of ``key``."""
        ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a directory-like prefix, ending in
        ``/``), in key order."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a key that does not exist is not an error."""
        ...

    def describe(self) -> str:
        """Where the objects are, for messages (``s3://bucket/prefix at ENDPOINT``)."""
        ...


def new_writer_id() -> str:
    """A writer id unique across machines and processes: host, pid and 32 random bits."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


def write_token(writer_id: str) -> str:
    return f"{writer_id}.{secrets.token_hex(8)}"


# --- locations --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteUrl:
    """``s3://bucket/prefix``: the bucket and the key prefix (no leading or trailing slash)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> RemoteUrl:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise InvalidName(f"remote URL {url!r} is not of the form s3://bucket/prefix")
        if parts.query or parts.fragment:
            raise InvalidName(f"remote URL {url!r} must not have a query or fragment")
        return cls(parts.netloc, parts.path.strip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def _is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _status(exc: BaseException) -> int | None:
    match = _STATUS.search(str(exc))
    return int(match.group(1)) if match else None


# --- S3 ---------------------------------------------------------------------------------------


class S3ObjectStore:
    """An S3-compatible bucket through obstore.

    Credentials come from the environment as for every AWS client (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` is not read); the endpoint
    and region from the arguments, else ``AWS_ENDPOINT_URL`` / ``AWS_REGION``. Plain http is
    allowed for loopback endpoints, elsewhere only with ``ARTFS_ALLOW_HTTP=1``.
    """

    def __init__(self, url: RemoteUrl, store: Any, endpoint: str | None, writer_id: str) -> None:
        self.url = url
        self.endpoint = endpoint
        self.writer_id = writer_id
        self._store = store

    @classmethod
    def open(
        cls,
        url: RemoteUrl,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        writer_id: str | None = None,
    ) -> S3ObjectStore:
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or None
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        config: dict[str, Any] = {}
        if endpoint:
            config["endpoint"] = endpoint
            # Non-AWS servers ignore the region but the signature needs one.
            config["region"] = region or "us-east-1"
        elif region:
            config["region"] = region
        timeout = remote_timeout()
        client: dict[str, Any] = {
            "connect_timeout": timedelta(seconds=min(5.0, timeout)),
            "timeout": timedelta(seconds=timeout),
        }
        if endpoint and endpoint.startswith("http://"):
            if not (_is_loopback(endpoint) or os.environ.get("ARTFS_ALLOW_HTTP") == "1"):
                raise InvalidName(
                    f"endpoint {endpoint} is plain http: use https, or set ARTFS_ALLOW_HTTP=1 "
                    "if the network between you and it is trusted"
                )
            client["allow_http"] = True
        retry: Any = {"max_retries": _CLIENT_RETRIES, "retry_timeout": timedelta(seconds=timeout)}
        try:
            store = S3Store(
                url.bucket,
                prefix=url.prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options=client,  # type: ignore[arg-type]
                retry_config=retry,
            )
        except BaseError as exc:
            raise RemoteError(f"cannot use {url}: {exc}") from None
        return cls(url, store, endpoint, writer_id or new_writer_id())

    def describe(self) -> str:
        return f"{self.url} at {self.endpoint}" if self.endpoint else str(self.url)

    def _failed(self, what: str, key: str, exc: BaseException) -> RemoteError:
        return RemoteError(f"{what} {key} on {self.describe()} failed: {explain(exc)}")

    def _call(self, what: str, key: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except (NotFoundError, FileNotFoundError) as exc:
            if "NoSuchBucket" in str(exc):
                raise RemoteError(
                    f"bucket {self.url.bucket} does not exist on {self.describe()}: create it, "
                    "or correct the remote's URL"
                ) from None
            raise RemoteMissing(f"{key} does not exist on {self.describe()}") from None
        except BaseError as exc:
            raise self._failed(what, key, exc) from None

    def _get_or_none(self, key: str, read: Callable[[], T]) -> T | None:
        """What ``read`` (a get or head of ``key``) returns; None when ``key`` is missing; a
        :class:`RemoteError` naming ``key`` for any other failure."""
        try:
            return read()
        except (NotFoundError, FileNotFoundError):
            return None
        except BaseError as exc:
            raise self._failed("reading", key, exc) from None

    def put(self, key: str, data: bytes) -> str:
        result = self._call("writing", key, lambda: obstore.put(self._store, key, data))
        return str(result["e_tag"])

    def put_new(self, key: str, data: bytes) -> bool:
        token = write_token(self.writer_id)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                obstore.put(self._store, key, data, mode="create", attributes={TOKEN_KEY: token})
                return True
            except (AlreadyExistsError, PreconditionError) as exc:
                if _status(exc) != 409:
                    current = self._token_of(key)
                    if current is not None:
                        return current == token
            except BaseError as exc:
                if _status(exc) != 409:
                    raise self._failed("creating", key, exc) from None
            backoff(attempt, _CONFLICT_BACKOFF)
        raise RemoteError(f"creating {key} on {self.describe()}: still conflicting, try again")

    def put_if(self, key: str, data: bytes, etag: str) -> str | None:
        token = write_token(self.writer_id)
        mode: Any = {"e_tag": etag}
        for attempt in range(_CONFLICT_RETRIES):
            try:
                result = obstore.put(
                    self._store, key, data, mode=mode, attributes={TOKEN_KEY: token}
                )
                return str(result["e_tag"])
            except (PreconditionError, AlreadyExistsError, NotFoundError) as exc:
                if _status(exc) != 409:
                    return self._etag_if_ours(key, token)
            except BaseError as exc:
                if _status(exc) != 409:
                    raise self._failed("replacing", key, exc) from None
            backoff(attempt, _CONFLICT_BACKOFF)
        raise RemoteError(f"replacing {key} on {self.describe()}: still conflicting, try again")

    def _token_of(self, key: str) -> str | None:
        """The write token of ``key``, '' for an object without one, None if it is missing."""
        result = self._get_or_none(key, lambda: obstore.get(self._store, key))
        if result is None:
            return None
        return str(result.attributes.get(TOKEN_KEY, ""))

    def _etag_if_ours(self, key: str, token: str) -> str | None:
        result = self._get_or_none(key, lambda: obstore.get(self._store, key))
        if result is not None and result.attributes.get(TOKEN_KEY) == token:
            return str(result.meta["e_tag"])
        return None

    def get(self, key: str) -> tuple[bytes, str]:
        def action() -> tuple[bytes, str]:
            result = obstore.get(self._store, key)
            return bytes(result.bytes()), str(result.meta["e_tag"])

        return self._call("reading", key, action)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        data = self._call(
            "reading",
            key,
            lambda: bytes(obstore.get_range(self._store, key, start=start, end=end)),
        )
        if len(data) != end - start:
            raise RemoteError(f"{key} on {self.describe()} is shorter than {end} bytes")
        return data

    def head(self, key: str) -> ObjectInfo | None:
        meta = self._get_or_none(key, lambda: obstore.head(self._store, key))
        return None if meta is None else _info(meta)

    def list(self, prefix: str) -> list[ObjectInfo]:
        def action() -> list[ObjectInfo]:
            found = [
                _info(m)
                for batch in obstore.list(self._store, prefix=prefix, chunk_size=1000)
                for m in batch
            ]
            return sorted(found, key=lambda o: o.key)

        return self._call("listing", prefix, action)

    def stream(self, key: str, etag: str | None = None, block: int = 1 << 20) -> Iterator[bytes]:
        """The bytes of ``key`` in blocks of ``block`` bytes or more (the last may be shorter);
        with ``etag``, only while the object has that ETag (``If-Match``: ObjectChanged)."""
        options: Any = {"if_match": etag} if etag else {}
        try:
            result = obstore.get(self._store, key, options=options)
            for part in result.stream(min_chunk_size=block):
                yield bytes(part)
        except (NotFoundError, FileNotFoundError):
            raise RemoteMissing(f"{key} does not exist on {self.describe()}") from None
        except PreconditionError:
            raise ObjectChanged(f"{key} on {self.describe()} changed (ETag {etag})") from None
        except BaseError as exc:
            raise self._failed("reading", key, exc) from None

    def delete(self, key: str) -> None:
        # S3 answers 204 for a key that is not there; other servers may say 404.
        with contextlib.suppress(RemoteMissing):
            self._call("deleting", key, lambda: obstore.delete(self._store, key))


def open_bucket(bucket: str) -> S3ObjectStore:
    """A read client for a whole bucket (``s3://`` references): endpoint, region and credentials
    from the environment (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``...)."""
    return S3ObjectStore.open(RemoteUrl(bucket, ""))


def _info(meta: Any) -> ObjectInfo:
    modified = meta.get("last_modified")
    return ObjectInfo(
        str(meta["path"]),
        int(meta["size"]),
        str(meta["e_tag"]),
        modified.timestamp() if modified is not None else 0.0,
    )


def remote_timeout() -> float:
    """Seconds a request may take (``ARTFS_REMOTE_TIMEOUT``, default 30)."""
    value = os.environ.get("ARTFS_REMOTE_TIMEOUT", "")
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 86400:
        raise StoreError(
            f"ARTFS_REMOTE_TIMEOUT={value!r} is not a number of seconds: "
            "set it to one (e.g. 30) or unset it"
        )
    return seconds


def explain(exc: BaseException) -> str:
    """One line for a client error: what happened and what to do. (The client's own text runs
    to dozens of lines: the request, every retry and a debug dump.)"""
    text = str(exc)
    status = _status(exc)
    code = _S3_CODE.search(text)
    answer = f"{status} {code.group(1)}" if code else str(status)
    retries = _RETRIES.search(text)
    tried = f" after {retries.group(1)} retries" if retries else ""
    if status in (401, 403):
        return (
            f"access denied ({answer}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
            "and the bucket's permissions"
        )
    if status is not None and status >= 500:
        return f"the server answered {answer}{tried}: it is overloaded or failing, try again later"
    if status is not None:
        return f"the server answered {answer}"
    if "kind: Timeout" in text or "TimedOut" in text:
        return (
            f"no answer within {remote_timeout():g} s: check the network, or allow more time "
            "with ARTFS_REMOTE_TIMEOUT=SECONDS"
        )
    if "kind: Connect" in text or "error sending request" in text:
        reason = "connection refused" if "ConnectionRefused" in text else "cannot connect"
        return (
            f"{reason}{tried}: the object store is down or unreachable; check that it runs and "
            "that the remote's endpoint is right ('artfs remote ls'), then try again"
        )
    return text.splitlines()[0][:300] if text else type(exc).__name__


def backoff(attempt: int, base: float = BACKOFF_BASE) -> None:
    """Sleep before retry number ``attempt`` (from 0) of a lost race: full jitter, a time
    uniform in [0, min(BACKOFF_MAX, base * 2**attempt)], so that writers that collided spread
    out instead of colliding again in step. The one retry wait of artfs, used for 409s here
    and for lost publish races in the remote."""
    time.sleep(random.uniform(0, min(BACKOFF_MAX, base * 2 ** min(attempt, 30))))


# --- memory -----------------------------------------------------------------------------------


@dataclass
class _Object:
    data: bytes
    etag: str
    token: str
    modified: float = field(default_factory=time.time)


class MemoryObjectStore:
    """Objects in a dict, with the conditional-write semantics of S3 (for unit tests).

    ``lose_next_response`` makes the next conditional write happen but raise as if its response
    were lost, after which the write is retried as an HTTP client would.
    """

    def __init__(self, writer_id: str | None = None) -> None:
        self.writer_id = writer_id or new_writer_id()
        self.objects: dict[str, _Object] = {}
        self.lose_next_response = False
        self._lock = threading.Lock()
        self._counter = 0

    def describe(self) -> str:
        return "memory"

    def _etag(self) -> str:
        self._counter += 1
        return f'"m{self._counter}"'

    def _write(self, key: str, data: bytes, token: str) -> str:
        etag = self._etag()
        self.objects[key] = _Object(bytes(data), etag, token)
        return etag

    def put(self, key: str, data: bytes) -> str:
        with self._lock:
            return self._write(key, data, "")

    def put_new(self, key: str, data: bytes) -> bool:
        token = write_token(self.writer_id)
        with self._lock:
            if self.lose_next_response and key not in self.objects:
                self.lose_next_response = False
                self._write(key, data, token)
            if key not in self.objects:
                self._write(key, data, token)
                return True
            return self.objects[key].token == token

    def put_if(self, key: str, data: bytes, etag: str) -> str | None:
        token = write_token(self.writer_id)
        with self._lock:
            current = self.objects.get(key)
            if self.lose_next_response and current is not None and current.etag == etag:
                self.lose_next_response = False
                self._write(key, data, token)
                current = self.objects[key]
            if current is None:
                return None
            if current.etag == etag:
                return self._write(key, data, token)
            return current.etag if current.token == token else None

    def get(self, key: str) -> tuple[bytes, str]:
        with self._lock:
            obj = self.objects.get(key)
        if obj is None:
            raise RemoteMissing(f"{key} does not exist on memory")
        return obj.data, obj.etag

    def get_range(self, key: str, start: int, end: int) -> bytes:
        data, _ = self.get(key)
        if end > len(data):
            raise RemoteError(f"{key} on memory is shorter than {end} bytes")
        return data[start:end]

    def head(self, key: str) -> ObjectInfo | None:
        with self._lock:
            obj = self.objects.get(key)
        return None if obj is None else ObjectInfo(key, len(obj.data), obj.etag, obj.modified)

    def list(self, prefix: str) -> list[ObjectInfo]:
        with self._lock:
            return [
                ObjectInfo(k, len(o.data), o.etag, o.modified)
                for k, o in sorted(self.objects.items())
                if k.startswith(prefix)
            ]

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)
