"""Store-wide settings, kept in the index's ``meta`` table (``artfs config``).

Known settings and their defaults are listed in :data:`DEFAULTS`; anything else is refused, so
a typo cannot silently configure nothing.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass

from artfs.errors import InvalidName
from artfs.store.index import Table, Txn

# record_command_lines: whether run records keep the command line of the process (command
# lines can hold secrets such as tokens passed as arguments).
DEFAULTS: dict[str, bool] = {"record_command_lines": True}
_PREFIX = b"setting:"


def check_key(key: str) -> None:
    if key not in DEFAULTS:
        known = ", ".join(sorted(DEFAULTS))
        raise InvalidName(f"unknown setting {key!r}: known settings are {known}")


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise InvalidName(f"invalid value {text!r}: use true or false")


def get(txn: Txn, key: str) -> bool:
    check_key(key)
    data = txn.get(Table.META, _PREFIX + key.encode())
    return DEFAULTS[key] if data is None else bool(json.loads(data))


def put(txn: Txn, key: str, value: bool) -> None:
    check_key(key)
    txn.put(Table.META, _PREFIX + key.encode(), json.dumps(value).encode())


def all_settings(txn: Txn) -> dict[str, bool]:
    return {key: get(txn, key) for key in sorted(DEFAULTS)}


# --- the store's identity ---------------------------------------------------------------------

# A random id made once per store (at creation, or on the first open of a store made before
# ids existed) and never changed: what a mount shows as MNT/.artfs-store, so a run registers
# only with mounts of its own store. 128 random bits as 32 hex digits.
_STORE_ID = b"store-id"


def store_id(txn: Txn) -> str | None:
    data = txn.get(Table.META, _STORE_ID)
    return None if data is None else data.decode()


def ensure_store_id(txn: Txn) -> str:
    """The store's id, made now if it has none (the first writer to get here wins)."""
    txn.put(Table.META, _STORE_ID, secrets.token_hex(16).encode(), overwrite=False)
    found = store_id(txn)
    assert found is not None
    return found


# --- remotes (artfs remote add/ls): where a store pushes and pulls; never credentials --------

_REMOTE_PREFIX = b"remote:"


@dataclass(frozen=True)
class RemoteConfig:
    name: str
    url: str  # s3://bucket/prefix
    endpoint: str | None = None
    region: str | None = None


def put_remote(txn: Txn, config: RemoteConfig) -> None:
    txn.put(Table.META, _REMOTE_PREFIX + config.name.encode(), json.dumps(asdict(config)).encode())


def get_remote(txn: Txn, name: str) -> RemoteConfig | None:
    data = txn.get(Table.META, _REMOTE_PREFIX + name.encode())
    return None if data is None else RemoteConfig(**json.loads(data))


def remotes(txn: Txn) -> list[RemoteConfig]:
    return [RemoteConfig(**json.loads(value)) for _, value in txn.scan(Table.META, _REMOTE_PREFIX)]


# The default remote: a store with one is remote-backed (put/commit publish to it, reads of
# chunks not held locally fetch them from it, ls and mounts see its versions).
_DEFAULT_REMOTE = b"default-remote"


def default_remote(txn: Txn) -> RemoteConfig | None:
    data = txn.get(Table.META, _DEFAULT_REMOTE)
    return None if data is None else get_remote(txn, data.decode())


def put_default_remote(txn: Txn, name: str | None) -> None:
    if name is None:
        txn.delete(Table.META, _DEFAULT_REMOTE)
    else:
        txn.put(Table.META, _DEFAULT_REMOTE, name.encode())


# --- the store's entity (W&B's team or user name; see docs/sdk.md) ---------------------------

ENTITY_KEY = "entity"
_ENTITY = b"entity"


def entity(txn: Txn) -> str | None:
    """The entity this store answers for, or None: then any entity is accepted."""
    data = txn.get(Table.META, _ENTITY)
    return None if data is None else data.decode()


def put_entity(txn: Txn, name: str | None) -> None:
    if name is None:
        txn.delete(Table.META, _ENTITY)
    else:
        txn.put(Table.META, _ENTITY, name.encode())
