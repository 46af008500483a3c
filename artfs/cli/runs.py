"""Commands on runs and lineage: run, runs (and runs show), lineage."""

from __future__ import annotations

import json
import sys

import click

from artfs import porcelain, views
from artfs.cli import console, render
from artfs.cli.context import Context
from artfs.cli.params import parse_metadata, pass_ctx
from artfs.cli.runner import check_command, run_command
from artfs.lineage import Lineage


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--project", default="default", show_default=True, help="Project of the run.")
@click.option("--job-type", default="job", show_default=True, help="Kind of job, e.g. train.")
@click.option("--name", help="Run name (default: JOB_TYPE-ID).")
@click.option("--config", help="JSON object of run configuration.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def run(
    ctx: Context,
    project: str,
    job_type: str,
    name: str | None,
    config: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as a recorded run: artfs run --job-type train -- python train.py"""
    check_command(list(command))
    metadata = parse_metadata(config, "--config")
    with ctx.store() as store:
        record, code = run_command(
            Lineage(store),
            list(command),
            project=project,
            job_type=job_type,
            name=name,
            config=metadata,
        )
    if not ctx.quiet:
        console.note(f"run {record.id} ({record.project}/{record.name}) exited with {code}")
    sys.exit(code)


@click.group(invoke_without_command=True)
@click.option("--project", help="Only runs of this project.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def runs(click_ctx: click.Context, project: str | None, as_json: bool) -> None:
    """List runs; 'artfs runs show ID' shows one with its inputs and outputs."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    with ctx.existing_store() as store:
        found = porcelain.runs(store, project, refresh=True, warn=console.note)
    if as_json:
        console.print_json([views.run_json(r) for r in found])
        return
    console.print_table(
        ["id", "project", "job_type", "name", "state", "started", "command"],
        [
            [
                r.id,
                r.project,
                r.job_type,
                r.name,
                r.state,
                views.iso(r.started),
                render.clipped(" ".join(r.command), 60),
            ]
            for r in found
        ],
    )


SHOWN_ROWS = 10  # history rows 'artfs runs show' prints; --json gives every row


@runs.command(name="show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def runs_show(ctx: Context, run_id: str, as_json: bool) -> None:
    """One run with the versions it used and logged."""
    with ctx.existing_store() as store:
        details = porcelain.run_details(
            store,
            run_id,
            last=None if as_json else SHOWN_ROWS,
            refresh=True,
            warn=console.note,
        )
    metrics = details.metrics
    data = views.run_json(
        details.record, [r.ref for r in details.inputs], [r.ref for r in details.outputs]
    )
    if as_json:
        console.print_json({**data, **views.metrics_json(metrics)})
        return
    for key, value in data.items():
        if isinstance(value, list):
            value = " ".join(value) if key == "command" else ", ".join(value)
        elif isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        console.print_line(f"{key + ':':<11}{'' if value is None else value}")
    console.print_line(f"{'summary:':<11}{json.dumps(metrics.summary, sort_keys=True)}")
    console.print_line(f"{'history:':<11}{render.history_note(metrics, SHOWN_ROWS)}")
    for row in metrics.rows:
        console.print_line("  " + json.dumps(row, sort_keys=True))


@click.command()
@click.argument("ref")
@click.option(
    "--direction", type=click.Choice(["up", "down", "both"]), default="both", show_default=True
)
@click.option("--depth", type=click.IntRange(min=1), help="At most this many edges away.")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["tree", "json", "dot"]),
    default="tree",
    show_default=True,
)
@pass_ctx
def lineage(ctx: Context, ref: str, direction: str, depth: int | None, format_: str) -> None:
    """Where REF came from (up) and where it went (down): versions and runs."""
    with ctx.existing_store() as store:
        graph = porcelain.lineage_graph(
            store, ref, direction, depth, refresh=True, warn=console.note
        )
    if format_ == "json":
        console.print_json(graph)
        return
    lines = render.lineage_dot(graph) if format_ == "dot" else render.lineage_tree(graph, direction)
    for line in lines:
        console.print_line(line)
