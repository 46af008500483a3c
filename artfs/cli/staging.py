"""Commands on staging directories: ``artfs stage`` (base, changes, reset). ``artfs commit``
is with the artifact commands."""

from __future__ import annotations

import click

from artfs import porcelain
from artfs.cli import console
from artfs.cli.context import Context
from artfs.cli.params import parse_artifact, parse_ref, pass_ctx
from artfs.errors import InvalidName
from artfs.store.export import Diff
from artfs.store.staging import Base


@click.command()
@click.argument("artifact")
@click.option("--from", "from_", metavar="REF", help="Base staging on version REF.")
@click.option("--reset", is_flag=True, help="Discard the changes (the base stays).")
@click.option("--empty", is_flag=True, help="With --reset: drop the base too.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def stage(
    ctx: Context, artifact: str, from_: str | None, reset: bool, empty: bool, as_json: bool
) -> None:
    """Show or set what the staging of ARTIFACT (project/name) is based on.

    Without options, list what a commit would change against the base: + added, - removed,
    M changed (as 'artfs diff' prints). With --from REF, staging shows version REF and a
    commit stores only what changed (refused while staging holds changes). --reset discards
    the changes, --reset --from REF starts over from REF, --reset --empty from nothing."""
    art = parse_artifact(artifact)
    if empty and (not reset or from_ is not None):
        raise InvalidName(
            "--empty goes with --reset and without --from: 'artfs stage P/N --reset --empty'"
        )
    with ctx.existing_store() as store:  # staging is a store's; --from names its version
        if from_ is not None:
            base: Base | None = porcelain.stage_from(store, art, parse_ref(from_), reset=reset)
        elif empty:
            base = None
            porcelain.stage_empty(store, art)
        elif reset:
            base = porcelain.stage_reset(store, art)
        else:
            base, changes = porcelain.stage_changes(store, art)
            _print_changes(ctx, art_name=str(art), base=base, changes=changes, as_json=as_json)
            return
    _print_base(ctx, str(art), base, as_json)


def _print_base(ctx: Context, art: str, base: Base | None, as_json: bool) -> None:
    if as_json:
        console.print_json({"artifact": art, "base": base.ref if base else None})
        return
    console.print_line(
        f"{art}: staging based on {base.ref}" if base else f"{art}: staging from scratch"
    )


def _print_changes(
    ctx: Context, *, art_name: str, base: Base | None, changes: Diff, as_json: bool
) -> None:
    if as_json:
        console.print_json(
            {
                "artifact": art_name,
                "base": base.ref if base else None,
                "added": changes.added,
                "removed": changes.removed,
                "changed": changes.changed,
            }
        )
        return
    for mark, paths in (("+", changes.added), ("-", changes.removed), ("M", changes.changed)):
        for path in paths:
            console.print_line(f"{mark} {console.shown_path(path)}")
    if not ctx.quiet:
        against = f"against {base.ref}" if base else "(no base: a version from scratch)"
        console.note(
            f"{len(changes.added)} added, {len(changes.removed)} removed, "
            f"{len(changes.changed)} changed {against}"
        )
