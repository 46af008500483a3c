"""How records look as JSON, and sizes and times as text (pure): the shapes the CLI's
``--json`` prints and ``artfs ui`` serves, in one place so that the two cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from artfs.store.catalog import VersionRecord


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


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural but for one: "1 file", "3 files"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


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


def run_json(
    run: Any, inputs: list[str] | None = None, outputs: list[str] | None = None
) -> dict[str, Any]:
    data = {
        "id": run.id,
        "project": run.project,
        "job_type": run.job_type,
        "name": run.name,
        "config": run.config,
        "host": run.host,
        "user": run.user,
        "command": run.command,
        "cwd": run.cwd,
        "container": run.container,
        "pid": run.pid,
        "started": iso(run.started),
        "ended": iso(run.ended),
        "exit_code": run.exit_code,
        "state": run.state,
        "implicit": run.implicit,
        "entity": run.entity,
        "group": run.group,
        "tags": run.tags,
        "notes": run.notes,
    }
    if inputs is not None:
        data["inputs"] = inputs
    if outputs is not None:
        data["outputs"] = outputs
    return data


def metrics_json(metrics: Any) -> dict[str, Any]:
    """A run's summary and whole history (``runs show --json``, the UI's run page)."""
    return {
        "summary": metrics.summary,
        "history": metrics.rows,
        "history_rows": metrics.stored,
        "history_rows_dropped": metrics.dropped,
    }


def consumer_json(run: Any, usage: Any) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "project": run.project,
        "job_type": run.job_type,
        "name": run.name,
        "command": " ".join(run.command),
        "first": iso(usage.first),
        "last": iso(usage.last),
        "files": usage.files,
    }
