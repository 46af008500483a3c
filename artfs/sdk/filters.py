"""W&B's run filters (``Api().runs(path, filters=...)``), the MongoDB-style subset that makes
sense for a local store.

Fields: ``state``, ``display_name`` (or ``name``), ``jobType`` (or ``job_type``), ``group``,
``tags``, ``entity``, ``createdAt`` / ``created_at`` (seconds since the epoch),
``config.KEY`` and ``summary_metrics.KEY`` (``summary.KEY``); W&B's ``config.KEY.value`` form
is accepted. Operators: equality, ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``,
``$nin``, ``$exists``, ``$regex``, and ``$and`` / ``$or`` / ``$nor`` over lists of filters.
A list field (tags) matches when any element does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from artfs.errors import UsageError

if TYPE_CHECKING:
    from artfs.sdk.run_data import RunData

_MISSING = object()


def _field(run: RunData, name: str) -> Any:
    record = run.record
    simple: dict[str, Callable[[], Any]] = {
        "state": lambda: record.state,
        "display_name": lambda: record.name,
        "name": lambda: record.id,
        "id": lambda: record.id,
        "jobType": lambda: record.job_type,
        "job_type": lambda: record.job_type,
        "group": lambda: record.group,
        "tags": lambda: record.tags,
        "entity": lambda: record.entity,
        "project": lambda: record.project,
        "createdAt": lambda: record.started,
        "created_at": lambda: record.started,
        "notes": lambda: record.notes,
    }
    if name in simple:
        return simple[name]()
    head, _, key = name.partition(".")
    if head == "config":
        return _dig(run.config, key.removesuffix(".value"))
    if head in ("summary_metrics", "summary"):
        return _dig(run.summary, key)
    raise UsageError(
        f"cannot filter runs on {name!r}: use state, display_name, jobType, group, tags, "
        "createdAt, config.KEY or summary_metrics.KEY"
    )


def _dig(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _compare(value: Any, op: str, arg: Any) -> bool:
    if op == "$exists":
        return (value is not _MISSING) == bool(arg)
    if value is _MISSING:
        return op in ("$ne", "$nin")
    if isinstance(value, list) and op in ("$eq", "$in", "$regex"):
        return any(_compare(v, op, arg) for v in value)
    try:
        return _OPS[op](value, arg)
    except KeyError:
        raise UsageError(f"unknown filter operator {op!r}") from None
    except TypeError:
        return False


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda v, a: bool(v == a),
    "$ne": lambda v, a: bool(v != a) and not (isinstance(v, list) and a in v),
    "$gt": lambda v, a: bool(v > a),
    "$gte": lambda v, a: bool(v >= a),
    "$lt": lambda v, a: bool(v < a),
    "$lte": lambda v, a: bool(v <= a),
    "$in": lambda v, a: v in a,
    "$nin": lambda v, a: (not any(x in a for x in v)) if isinstance(v, list) else v not in a,
    "$regex": lambda v, a: isinstance(v, str) and re.search(a, v) is not None,
}


def matches(run: RunData, filters: dict[str, Any]) -> bool:
    """Whether ``run`` passes every condition of ``filters``."""
    for key, cond in filters.items():
        if key == "$and":
            ok = all(matches(run, f) for f in cond)
        elif key == "$or":
            ok = any(matches(run, f) for f in cond)
        elif key == "$nor":
            ok = not any(matches(run, f) for f in cond)
        else:
            value = _field(run, key)
            if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
                ok = all(_compare(value, op, arg) for op, arg in cond.items())
            else:
                ok = _compare(value, "$eq", cond)
        if not ok:
            return False
    return True


def order_key(order: str) -> tuple[Callable[[RunData], Any], bool]:
    """W&B's ``order`` (``+created_at``, ``-summary_metrics.acc``, ...) as a sort key."""
    reverse = order.startswith("-")
    name = order.lstrip("+-")

    def key(run: RunData) -> Any:
        value = _field(run, name)
        # Runs without the field sort last whatever the direction.
        return (value is _MISSING or value is None) != reverse, _sortable(value)

    return key, reverse


def _sortable(value: Any) -> Any:
    if value is _MISSING or value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))
