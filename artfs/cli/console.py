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


# What a path shows as on a line of text output, as ``ls -b`` shows it: a byte that is not
# UTF-8 (a name stored before artfs refused them) as \xNN, any other character that does not
# print (a newline, a tab, C1 controls) escaped, and the backslash, so that every path is one
# unambiguous line that stdout can encode.
_NAMED = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def shown_path(path: str) -> str:
    """``path`` for a line of text output (``--json`` gives it as it is)."""
    if path.isprintable() and "\\" not in path:
        return path
    return "".join(_shown_char(c) for c in path)


def _shown_char(c: str) -> str:
    code = ord(c)
    if c in _NAMED:
        return _NAMED[c]
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte it stands for
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    return c if c.isprintable() or c == " " else f"\\u{code:04x}"


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
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a name that is not UTF-8, stored before artfs refused them
        text = json.dumps(data, indent=2, sort_keys=True)  # escaped, as \\udcNN
    sys.stdout.write(text + "\n")


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
