"""The ``artfs`` command line: the group, its options, and the registration of every command.

Commands live one module per command group (:mod:`artfs.cli.artifacts`, :mod:`artfs.cli.runs`,
:mod:`artfs.cli.remotes`, :mod:`artfs.cli.staging`, :mod:`artfs.cli.maintenance`,
:mod:`artfs.cli.mount`, :mod:`artfs.cli.ui`); they parse their arguments, call the porcelain
or the store, and print through :mod:`artfs.cli.console`. Every
:class:`~artfs.errors.ArtfsError` becomes one ``artfs: error: ...`` line and a non-zero exit
status in :func:`main`; nothing in the commands catches errors of its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.exceptions import NoArgsIsHelpError

from artfs.cli import artifacts, console, maintenance, mount, remotes, runs, staging
from artfs.cli.context import Context
from artfs.cli.ui import ui
from artfs.errors import ArtfsError
from artfs.store import default_home


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="ARTFS_HOME",
    help="Store directory (default: $ARTFS_HOME, else $XDG_DATA_HOME/artfs, else "
    "~/.local/share/artfs).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or notes.")
@click.version_option(package_name="artfs")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, quiet: bool) -> None:
    """Versioned, deduplicated artifacts for ML: datasets, models and checkpoints."""
    ctx.obj = Context(home or default_home(), quiet)


def _quiet(click_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        click_ctx.ensure_object(Context).quiet = True


def _add_quiet(group: click.Group) -> None:
    """Accept ``-q/--quiet`` after any command too (``artfs put ... --quiet``)."""
    for command in group.commands.values():
        command.params.append(
            click.Option(
                ["-q", "--quiet"],
                is_flag=True,
                expose_value=False,
                callback=_quiet,
                help="No progress bars or notes.",
            )
        )
        if isinstance(command, click.Group):
            _add_quiet(command)


for command in (
    artifacts.put,
    artifacts.commit,
    staging.stage,
    artifacts.get,
    artifacts.ls_,
    artifacts.info,
    artifacts.files,
    artifacts.diff_,
    artifacts.alias,
    artifacts.edit,
    artifacts.rm,
    maintenance.gc,
    maintenance.verify_,
    maintenance.config,
    maintenance.upgrade,
    runs.run,
    runs.runs,
    runs.lineage,
    mount.mount,
    mount.umount,
    remotes.cache,
    remotes.remote,
    remotes.push,
    remotes.pull,
    remotes.clone,
    ui,
):
    cli.add_command(command)
_add_quiet(cli)


def main(argv: list[str] | None = None) -> None:
    try:
        status = cli.main(args=argv, prog_name="artfs", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a group given no command: its help, as asked
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # a mistyped command line: one line, as for every mistake
        where = exc.ctx.command_path if exc.ctx is not None else "artfs"
        console.error(f"{exc.format_message().rstrip('.')}; see '{where} --help'")
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        console.error(exc.format_message())
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)
    except ArtfsError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(141)
    except OSError as exc:
        # Not a user mistake the store anticipated (e.g. too many open files): still one line.
        where = f"{exc.filename}: " if exc.filename else ""
        console.error(f"{where}{exc.strerror or exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)


__all__ = ["cli", "main"]
