"""Terminal output for the CLI (the one module importing ``rich``).

Results go to stdout (tables, JSON, refs: what scripts read); progress, notes and errors go to
stderr, so ``ref=$(artfs put ...)`` captures only the ref.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_line(text: str) -> None:
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    err.print(text, markup=False)


def error(text: str) -> None:
    sys.stderr.write(f"artfs: error: {text}\n")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if not out.is_terminal:
        # Plain tab-separated lines when piped: stable for scripts, no wrapping.
        print_line("\t".join(headers))
        for row in rows:
            print_line("\t".join("" if c is None else str(c) for c in row))
        return
    table = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*("" if c is None else str(c) for c in row))
    out.print(table)


@contextmanager
def progress(total: int, description: str, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A byte progress bar on a terminal; a no-op when quiet or not on a terminal."""
    if quiet or not err.is_terminal:
        yield lambda n: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
