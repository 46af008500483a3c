"""What the commands share: the store context, and parsers for refs, names, JSON and TTLs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from artfs.cli import render
from artfs.cli.context import Context
from artfs.errors import InvalidName
from artfs.names import ArtifactName, Ref

pass_ctx = click.make_pass_decorator(Context)


def parse_ref(text: str) -> Ref:
    return Ref.parse(text)


def parse_artifact(text: str) -> ArtifactName:
    return ArtifactName.parse(text)


def parse_metadata(text: str | None, option: str = "--metadata") -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidName(
            f"{option} is not valid JSON ({exc.msg}): give an object like '{{\"k\": 1}}'"
        ) from None
    if not isinstance(value, dict):
        raise InvalidName(f"{option} must be a JSON object, like '{{\"epochs\": 10}}'")
    return value


def parse_ttl(text: str | None) -> float | None:
    return None if text is None or text == "none" else render.parse_duration(text)


F = TypeVar("F", bound=Callable[..., Any])


def remote_option(help_: str) -> Callable[[F], F]:
    """``--remote [NAME]``: a flag whose value, when given, names the remote ("" = default)."""
    return click.option(
        "--remote", "remote_name", is_flag=False, flag_value="", metavar="[NAME]", help=help_
    )
