"""How records look on the command line: JSON objects and table cells (pure)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from artfs.errors import InvalidName
from artfs.store.catalog import VersionRecord

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([0-9]+)([smhdw])")


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``1w2d``... -> seconds; InvalidName on anything else."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidName(f"invalid duration {text!r}: use a number and a unit, e.g. 30d, 12h, 90m")
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


def version_json(record: VersionRecord) -> dict[str, Any]:
    return {
        "ref": record.ref,
        "version": record.version,
        "aliases": record.aliases,
        "digest": record.digest,
        "size": record.size,
        "files": record.files,
        "created": iso(record.created),
    }


def version_info_json(record: VersionRecord) -> dict[str, Any]:
    data = version_json(record)
    data.update(
        type=record.type,
        description=record.description,
        metadata=record.metadata,
        tags=record.tags,
        logged_by=record.logged_by,
        expires=iso(record.expires),
        state=record.state,
    )
    return data


def version_row(record: VersionRecord) -> list[Any]:
    return [
        record.version,
        ",".join(record.aliases),
        record.files,
        human_size(record.size),
        iso(record.created),
        record.digest[:12],
    ]
