"""``artfs ui``: browse the store in a web browser (the app itself is :mod:`artfs.ui`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from artfs.cli import console

if TYPE_CHECKING:
    from artfs.cli.context import Context
    from artfs.ui.server import Serving


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="TCP port (0: any free one).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (a token printed at start is required on any).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the URL in a web browser.")
@click.pass_obj
def ui(ctx: Context, port: int, host: str, open_browser: bool) -> None:
    """Serve a read-only web app over the store until interrupted; the URL is printed last."""
    from artfs.ui.reads import open_readonly
    from artfs.ui.server import serve

    def ready(serving: Serving) -> None:
        if not ctx.quiet:
            console.note(f"serving {ctx.home} read-only; Ctrl-C stops")
            console.note(f"token: {serving.token} (every request needs it: use the URL)")
        console.print_line(serving.url)
        sys.stdout.flush()  # the URL is read by whoever started us, before any request
        if open_browser:
            import webbrowser

            webbrowser.open(serving.url)

    store = open_readonly(ctx.home)
    try:
        serve(store, host, port, ready)
    finally:
        store.close()
