"""Terminal output for the CLI (the one module importing ``rich``).

Results go to stdout (tables, JSON, refs: what scripts read); progress, notes and errors go to
stderr, so ``ref=$(artfs put ...)`` captures only the ref.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

# rich is imported only when something is drawn on a terminal: piped and quiet runs (scripts,
# CI, the common ``ref=$(artfs put ...)``) never pay its ~25 ms import.


@functools.cache
def _console(stderr: bool) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _on_terminal(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


# What a path shows as on a line of text output, as ``ls -b`` shows it: a control character
# (a newline, a tab) escaped, and the backslash, so that every path is one unambiguous line.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), 0x7F)} | {
    ord("\\"): "\\\\",
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    ord("\r"): "\\r",
}


def shown_path(path: str) -> str:
    """``path`` for a line of text output (``--json`` gives it as it is)."""
    return path.translate(_ESCAPES)


def print_line(text: str) -> None:
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    if sys.stderr is None:  # started with stderr closed (2>&-): notes go nowhere
        return
    if _on_terminal(sys.stderr):
        _console(stderr=True).print(text, markup=False)
    else:
        sys.stderr.write(text + "\n")


def error(text: str) -> None:
    if sys.stderr is not None:
        sys.stderr.write(f"artfs: error: {text}\n")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if not _on_terminal(sys.stdout):
        # Plain tab-separated lines when piped: stable for scripts, no wrapping.
        print_line("\t".join(headers))
        for row in rows:
            print_line("\t".join("" if c is None else str(c) for c in row))
        return
    from rich.table import Table

    table = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*("" if c is None else str(c) for c in row))
    _console(stderr=False).print(table)


@contextmanager
def progress(total: int, description: str, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A byte progress bar on a terminal; a no-op when quiet or not on a terminal."""
    if quiet or not _on_terminal(sys.stderr):
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
