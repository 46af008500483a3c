"""Commands that look after a store: gc, verify, config, upgrade."""

from __future__ import annotations

import sys

import click

from artfs import porcelain, views
from artfs.cli import console, render
from artfs.cli.context import Context
from artfs.cli.params import parse_ref, pass_ctx, remote_option
from artfs.errors import InvalidName
from artfs.names import check_name
from artfs.store import backfill
from artfs.store import upgrade as formats
from artfs.store.gc import collect
from artfs.store.settings import DEFAULTS, ENTITY_KEY, parse_bool
from artfs.store.verify import check


@click.command()
@remote_option("Collect on a remote (default: the only one) instead of in this store.")
@click.option(
    "--grace",
    metavar="DURATION",
    help="With --remote: how long an unused pack stays condemned before it is deleted; "
    "must exceed the longest push (default 1h, at least 10m).",
)
@pass_ctx
def gc(ctx: Context, remote_name: str | None, grace: str | None) -> None:
    """Delete expired versions and reclaim space no version references."""
    if remote_name is not None:
        _gc_remote(ctx, remote_name or None, grace or "1h")
        return
    if grace is not None:
        raise InvalidName("--grace is for 'artfs gc --remote': local gc needs no grace period")
    with ctx.existing_store() as store:
        report = collect(store)
    if report.expiry_failed is not None:
        console.note(f"warning: expired versions not deleted: {report.expiry_failed}")
    for ref in report.expired:
        console.print_line(f"expired {ref}")
    for ref in report.kept_expired:
        console.print_line(f"kept {ref}: its TTL has passed but it holds an alias")
    console.print_line(
        f"reclaimed {views.human_size(report.bytes_before - report.bytes_after)}: "
        f"{report.chunks_removed} chunks, {report.packs_removed} packs removed, "
        f"{report.packs_rewritten} packs compacted; "
        f"store is {views.human_size(report.bytes_after)}"
    )


def _gc_remote(ctx: Context, remote_name: str | None, grace: str) -> None:
    from artfs.remote.gc import check_grace

    seconds = render.parse_duration(grace)
    check_grace(seconds)  # before the store is opened: a bad option changes nothing
    with ctx.existing_store() as store:
        config, report = porcelain.gc_remote(store, seconds, remote_name=remote_name)
    for ref in report.records_removed:
        console.print_line(f"removed the record of deleted version {ref}")
    console.print_line(
        f"reclaimed {views.human_size(report.bytes_reclaimed)} on {config.name}: "
        f"{report.packs_deleted} packs deleted, {len(report.records_removed)} records removed; "
        f"{report.packs_condemned} packs condemned (a gc at least {grace} from now deletes them "
        f"if still unused), {report.packs_spared} spared, {report.packs_live} in use"
    )


@click.command(name="verify")
@click.argument("ref", required=False)
@pass_ctx
def verify_(ctx: Context, ref: str | None) -> None:
    """Re-hash every chunk of REF (or of every version); exit 1 naming broken files."""
    with ctx.existing_store() as store:
        if ref:
            records = [store.resolve(parse_ref(ref))]
        else:
            records = [r for p in store.projects() for _, vs in store.artifacts(p) for r in vs]
        total = sum(r.size for r in records)
        with console.progress(total, "verify", quiet=ctx.quiet) as advance:
            found = check(store, records, advance)
    problems = found.problems
    for problem in problems:
        console.print_line(f"BROKEN {problem.ref} {problem.path}: {problem.reason}")
    if problems:
        console.error(f"{len(problems)} broken files in {len({p.ref for p in problems})} versions")
        sys.exit(1)
    unchecked = (
        f"; {views.counted(found.references, 'reference')} not checked "
        "(not in the store: 'artfs get' fetches and checks them)"
        if found.references
        else ""
    )
    checked = f"{views.counted(len(records), 'version')}, {views.counted(found.files, 'file')}"
    console.print_line(f"ok: {checked} verified{unchecked}")


@click.command()
@click.argument("key", required=False)
@click.argument("value", required=False)
@pass_ctx
def config(ctx: Context, key: str | None, value: str | None) -> None:
    """Show the store's settings, one setting, or set one: artfs config KEY true|false

    'artfs config entity NAME' sets the W&B entity the store answers for ('none' clears it,
    and is what an unset entity shows)."""
    if key == ENTITY_KEY:
        _entity_setting(ctx, value)
        return
    if key is not None and key not in DEFAULTS:
        known = ", ".join(sorted([*DEFAULTS, ENTITY_KEY]))
        raise InvalidName(f"unknown setting {key!r}: known settings are {known}")
    setting = None if value is None or key is None else parse_bool(value)
    # Only setting something makes a store; showing needs one there.
    with ctx.store() if setting is not None else ctx.existing_store() as store:
        if setting is not None and key is not None:
            store.set_setting(key, setting)
        current = store.settings()
        entity = store.entity()
    if key is None:
        _print_entity(entity)
    for name, setting in current.items():
        if key is None or name == key:
            console.print_line(f"{name} = {str(setting).lower()}")


def _entity_setting(ctx: Context, value: str | None) -> None:
    with ctx.store() if value is not None else ctx.existing_store() as store:
        if value is not None:
            store.set_entity(None if value == "none" else check_name(value, "entity"))
        current = store.entity()
    _print_entity(current)


def _print_entity(entity: str | None) -> None:
    console.print_line(f"{ENTITY_KEY} = {entity or 'none'}")


@click.command()
@pass_ctx
def upgrade(ctx: Context) -> None:
    """Bring the store to this artfs's format, in place (opening it does the same), and write
    the block digests of large raw chunks an older artfs stored without them.

    Each such chunk is read and verified first; one that fails gets none, the others are
    written all the same, and the command then exits 1."""
    with ctx.existing_store() as store:
        before = store.opened_format
        if before == formats.FORMAT:
            console.print_line(f"the store at {ctx.home} has format {before}, this artfs's own")
        else:
            console.print_line(
                f"upgraded the store at {ctx.home} from format {before} to {formats.FORMAT}"
            )
        total = backfill.lacking_bytes(store)
        with console.progress(total, "block digests", quiet=ctx.quiet) as advance:
            report = backfill.backfill(store, advance)
    if report.chunks:
        console.print_line(
            f"wrote the block digests of {report.chunks} large raw chunks stored without them "
            f"({views.human_size(report.bytes_read)} read and verified)"
        )
    if report.unsound:
        count = len(report.unsound)
        console.error(
            f"{count} chunk{'s' if count != 1 else ''} could not be read or failed verification "
            "and got no block digests: 'artfs verify' names the files they are in ('artfs gc' "
            "removes those no version uses)"
        )
        sys.exit(1)
