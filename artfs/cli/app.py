"""The ``artfs`` command line (the one module importing ``click``).

Commands parse their arguments, call the store, and print through :mod:`artfs.cli.console`.
Every :class:`~artfs.errors.ArtfsError` becomes one ``artfs: error: ...`` line and a non-zero
exit status in :func:`main`; nothing here catches errors of its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from artfs import views
from artfs.cli import console, render
from artfs.cli.context import Context
from artfs.cli.runner import current_run_id, run_command
from artfs.cli.ui import ui
from artfs.errors import ArtfsError, InvalidName, NotFound
from artfs.lineage import Lineage, build_graph, check_run_id
from artfs.names import ArtifactName, Ref, check_name
from artfs.run_ends import settle
from artfs.run_metrics import RunMetrics
from artfs.store import Store, default_home, references, staging
from artfs.store.export import diff, materialize, select
from artfs.store.gc import collect
from artfs.store.ingest import SourceTree, scan
from artfs.store.repository import EditRequest, PutResult
from artfs.store.settings import ENTITY_KEY, check_key, parse_bool
from artfs.store.verify import verify

if TYPE_CHECKING:  # artfs.remote loads only in the commands that use it (obstore)
    from artfs.objectstore import ObjectStore
    from artfs.remote.lineage_sync import RemoteLineage
    from artfs.store.catalog import VersionRecord


pass_ctx = click.make_pass_decorator(Context)


def _ref(text: str) -> Ref:
    return Ref.parse(text)


def _artifact(text: str) -> ArtifactName:
    return ArtifactName.parse(text)


def _metadata(text: str | None, option: str = "--metadata") -> dict[str, Any] | None:
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


def _ttl(text: str | None) -> float | None:
    return None if text is None or text == "none" else render.parse_duration(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="ARTFS_HOME",
    help="Store directory (default: $ARTFS_HOME, else ~/.local/share/artfs).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or notes.")
@click.version_option(package_name="artfs")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, quiet: bool) -> None:
    """Versioned, deduplicated artifacts for ML: datasets, models and checkpoints."""
    ctx.obj = Context(home or default_home(), quiet)


@cli.command()
@click.argument("path")
@click.argument("ref")
@click.option("--type", "type_", default="dataset", show_default=True, help="Artifact type.")
@click.option("--alias", "aliases", multiple=True, help="Alias for the new version (repeatable).")
@click.option("--description", help="Free-text description.")
@click.option("--metadata", help="JSON object of metadata.")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.option("--ttl", help="Time to live, e.g. 30d; 'artfs gc' deletes expired versions.")
@click.option(
    "--no-checksum",
    is_flag=True,
    help="s3:// PATH: record size and ETag only, do not read the objects to hash them.",
)
@pass_ctx
def put(
    ctx: Context,
    path: str,
    ref: str,
    type_: str,
    aliases: tuple[str, ...],
    description: str | None,
    metadata: str | None,
    tags: tuple[str, ...],
    ttl: str | None,
    no_checksum: bool,
) -> None:
    """Store a file or directory PATH as the next version of REF (project/name).

    PATH may be s3://bucket/key-or-prefix: the version then holds references to the objects
    (size and ETag recorded; content fetched and verified when read)."""
    art = _artifact(ref)
    meta, ttl_seconds = _metadata(metadata), _ttl(ttl)
    with ctx.store() as store:
        if path.startswith("s3://"):
            tree = SourceTree(ready=references.describe(path, checksum=not no_checksum))
        else:
            tree = scan(Path(path))
        logged_by = current_run_id(Lineage(store), art.project)
        with console.progress(tree.total_bytes, f"put {art}", quiet=ctx.quiet) as advance:
            result = store.commit(
                tree,
                art,
                logged_by=logged_by,
                type_=type_,
                aliases=list(aliases),
                description=description,
                metadata=meta,
                tags=list(tags),
                ttl_seconds=ttl_seconds,
                progress=advance,
            )
    _report_commit(ctx, result)


def _report_commit(ctx: Context, result: PutResult) -> None:
    """A note on stderr, then the resulting ref as the last line on stdout."""
    record = result.record
    if not ctx.quiet:
        if result.created:
            uploaded = (
                f", {views.human_size(result.uploaded_bytes)} uploaded to remote {result.remote}"
                if result.remote
                else ""
            )
            console.note(
                f"stored {record.files} files, {views.human_size(record.size)} "
                f"({views.human_size(result.new_bytes)} new in the store{uploaded})"
            )
        else:
            console.note(f"unchanged: identical to {record.ref}, no new version")
    console.print_line(record.ref)


@cli.command()
@click.argument("ref")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--path-prefix", help="Only files whose path starts with this prefix.")
@click.option(
    "--allow-missing-references", is_flag=True, help="Skip references whose target is gone."
)
@pass_ctx
def get(
    ctx: Context, ref: str, dest: Path, path_prefix: str | None, allow_missing_references: bool
) -> None:
    """Write the files of version REF into directory DEST (verified as written)."""
    with ctx.store() as store:
        record = store.resolve(_ref(ref))
        lineage = Lineage(store)
        run_id = current_run_id(lineage, record.project)
        if run_id is not None:
            lineage.use(run_id, record)
        total = sum(e.size for e in select(store.files(record), path_prefix))
        with console.progress(total, f"get {record.ref}", quiet=ctx.quiet) as advance:
            written = materialize(
                store,
                record,
                dest,
                path_prefix=path_prefix,
                progress=advance,
                allow_missing_references=allow_missing_references,
            )
    if not ctx.quiet:
        console.note(f"wrote {len(written)} files of {record.ref} to {dest}")


@cli.command(name="ls")
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--offline", is_flag=True, help="Do not look at the default remote first.")
@pass_ctx
def ls_(ctx: Context, target: str | None, as_json: bool, offline: bool) -> None:
    """List projects, the artifacts of PROJECT, or the versions of PROJECT/NAME."""
    with ctx.store() as store:
        if not offline and store.default_remote() is not None:
            if target is None:
                _refresh(store)
            elif "/" in target:
                _refresh(store, artifact=_artifact(target))
            else:
                _refresh(store, project=check_name(target, "project"))
        if target is None:
            projects = store.projects()
            if as_json:
                console.print_json(projects)
            else:
                for project in projects:
                    console.print_line(project)
        elif "/" in target:
            art = _artifact(target)
            # An artifact made by mkdir through the mount has staging but no version yet.
            only_staged = store.artifact(art) is None and staging.path(store, art).is_dir()
            records = [] if only_staged else store.versions(art)
            if as_json:
                console.print_json([views.version_json(r) for r in records])
            else:
                console.print_table(
                    ["version", "aliases", "files", "size", "created", "digest"],
                    [render.version_row(r) for r in records],
                )
        else:
            staged = staging.artifacts_with_staging(store, target)
            try:
                found = store.artifacts(target)
            except NotFound:
                if not staged:
                    raise
                found = []  # a project whose only artifacts are being staged
            known = {a.name for a, _ in found}
            staged = [n for n in staged if n not in known]
            if as_json:
                console.print_json(
                    [
                        {
                            "name": a.name,
                            "type": a.type,
                            "versions": len(vs),
                            "latest": vs[-1].version if vs else None,
                        }
                        for a, vs in found
                    ]
                    + [{"name": n, "type": None, "versions": 0, "latest": None} for n in staged]
                )
            else:
                console.print_table(
                    ["name", "type", "versions", "latest", "size"],
                    [
                        [
                            a.name,
                            a.type,
                            len(vs),
                            vs[-1].version if vs else "-",
                            views.human_size(vs[-1].size) if vs else "-",
                        ]
                        for a, vs in found
                    ]
                    + [[n, "-", 0, "-", "-"] for n in staged],
                )


@cli.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def info(ctx: Context, ref: str, as_json: bool) -> None:
    """Show the record of one version, with the runs that consumed it."""
    with ctx.store() as store:
        record = store.resolve(_ref(ref))
        _shared_lineage(store, lambda shared: shared.fetch_versions(store, [record]))
        consumers = Lineage(store).consumers(record)
    data = views.version_info_json(record)
    data["consumers"] = [views.consumer_json(run, usage) for run, usage in consumers]
    if as_json:
        console.print_json(data)
        return
    for key in (
        "ref",
        "type",
        "aliases",
        "digest",
        "files",
        "size",
        "created",
        "description",
        "tags",
        "metadata",
        "logged_by",
        "expires",
    ):
        value = data[key]
        if isinstance(value, list):
            value = ", ".join(value)
        elif isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        elif key == "size":
            value = f"{views.human_size(value)} ({value} bytes)"
        console.print_line(f"{key + ':':<13}{'' if value is None else value}")
    console.print_line(f"{'consumers:':<13}{len(consumers)}")
    for consumer in data["consumers"]:
        console.print_line(
            f"  run {consumer['run_id']} {consumer['job_type']}/{consumer['name']}: "
            f"{consumer['files']} files, {consumer['first']} .. {consumer['last']}"
        )


@cli.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def files(ctx: Context, ref: str, as_json: bool) -> None:
    """List the files of one version with size and digest."""
    with ctx.store() as store:
        entries = store.files(store.resolve(_ref(ref)))
    if as_json:
        console.print_json(
            [
                {"path": e.path, "size": e.size, "digest": e.digest.hex(), "mode": oct(e.mode)}
                for e in entries
            ]
        )
    else:
        console.print_table(
            ["path", "size", "digest"], [[e.path, e.size, e.digest.hex()[:12]] for e in entries]
        )


@cli.command(name="diff")
@click.argument("ref_a")
@click.argument("ref_b")
@pass_ctx
def diff_(ctx: Context, ref_a: str, ref_b: str) -> None:
    """Files added, removed and changed from REF_A to REF_B."""
    with ctx.store() as store:
        changes = diff(store, store.resolve(_ref(ref_a)), store.resolve(_ref(ref_b)))
    for mark, paths in (("+", changes.added), ("-", changes.removed), ("M", changes.changed)):
        for path in paths:
            console.print_line(f"{mark} {path}")
    if not ctx.quiet:
        console.note(
            f"{len(changes.added)} added, {len(changes.removed)} removed, "
            f"{len(changes.changed)} changed"
        )


@cli.command()
@click.argument("ref")
@click.argument("alias")
@click.option("--remove", is_flag=True, help="Remove ALIAS from artifact REF (project/name).")
@pass_ctx
def alias(ctx: Context, ref: str, alias: str, remove: bool) -> None:
    """Point ALIAS at version REF, moving it if another version holds it."""
    with ctx.store() as store:
        if remove:
            store.remove_alias(_artifact(ref), alias)
            if not ctx.quiet:
                console.note(f"removed alias {alias} from {ref}")
            return
        record = store.set_alias(_ref(ref), alias)
    console.print_line(f"{record.project}/{record.name}:{alias} -> {record.version}")


@cli.command()
@click.argument("ref")
@click.option("--description", help="New description.")
@click.option("--metadata", help="New metadata (JSON object; replaces the old one).")
@click.option("--tag", "tags", multiple=True, help="Add a tag (repeatable).")
@click.option("--untag", "untags", multiple=True, help="Remove a tag (repeatable).")
@click.option("--ttl", help="Time to live from creation, e.g. 30d; 'none' removes it.")
@pass_ctx
def edit(
    ctx: Context,
    ref: str,
    description: str | None,
    metadata: str | None,
    tags: tuple[str, ...],
    untags: tuple[str, ...],
    ttl: str | None,
) -> None:
    """Change what may change after logging: description, metadata, tags, TTL."""
    request = EditRequest(
        description=description,
        metadata=_metadata(metadata),
        add_tags=list(tags),
        remove_tags=list(untags),
        ttl_seconds=_ttl(ttl),
        clear_ttl=ttl == "none",
    )
    with ctx.store() as store:
        record = store.edit(_ref(ref), request)
    console.print_line(record.ref)


F = TypeVar("F", bound=Callable[..., Any])


def _remote_option(help_: str) -> Callable[[F], F]:
    """``--remote [NAME]``: a flag whose value, when given, names the remote ("" = default)."""
    return click.option(
        "--remote", "remote_name", is_flag=False, flag_value="", metavar="[NAME]", help=help_
    )


@cli.command()
@click.argument("ref")
@click.option("--force", is_flag=True, help="Also delete a version holding custom aliases.")
@click.option("--all", "all_", is_flag=True, help="Delete the artifact with all its versions.")
@_remote_option("Delete on a remote (default: the only one); a remote-backed store always does.")
@pass_ctx
def rm(ctx: Context, ref: str, force: bool, all_: bool, remote_name: str | None) -> None:
    """Delete a version (REF) or a whole artifact (project/name --all)."""
    if not all_ and ":" not in ref:
        raise InvalidName(
            f"'artfs rm {ref}' needs a version: use {ref}:vN, or --all for every version"
        )
    target = _artifact(ref) if all_ else _ref(ref)
    with ctx.store() as store:
        backing = store.default_remote()
        if remote_name is not None and (backing is None or remote_name not in ("", backing.name)):
            names = _rm_on_remote(store, target, force, remote_name or None)
        else:  # a local store, or a remote-backed one: its default remote first, then here
            deletion = store.delete(target, force=force)
            where = f" on {deletion.remote}" if deletion.remote else ""
            names = [
                r.ref + where + (" and here" if where and r.ref in deletion.here else "")
                for r in deletion.records
            ]
    for name in names:
        console.print_line(f"deleted {name}")
    if not ctx.quiet:
        remote = " --remote" if remote_name is not None or backing is not None else ""
        console.note(f"run 'artfs gc{remote}' to reclaim the space")


def _rm_on_remote(
    store: Store, target: Ref | ArtifactName, force: bool, remote_name: str | None
) -> list[str]:
    """Delete on a remote that is not the store's default (this store is left alone)."""
    from artfs.remote.gc import delete_on_remote
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import remote_config

    config = remote_config(store, remote_name)
    deleted, _ = delete_on_remote(open_remote(store, config), target, force=force)
    return [f"{r.ref} on {config.name}" for r in deleted]


@cli.command()
@_remote_option("Collect on a remote (default: the only one) instead of in this store.")
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
    with ctx.store() as store:
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
    from artfs.remote.gc import collect as collect_remote
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import remote_config

    seconds = render.parse_duration(grace)
    check_grace(seconds)
    with ctx.store() as store:
        config = remote_config(store, remote_name)
        report = collect_remote(open_remote(store, config), seconds)
    for ref in report.records_removed:
        console.print_line(f"removed the record of deleted version {ref}")
    console.print_line(
        f"reclaimed {views.human_size(report.bytes_reclaimed)} on {config.name}: "
        f"{report.packs_deleted} packs deleted, {len(report.records_removed)} records removed; "
        f"{report.packs_condemned} packs condemned (a gc at least {grace} from now deletes them "
        f"if still unused), {report.packs_spared} spared, {report.packs_live} in use"
    )


@cli.command(name="verify")
@click.argument("ref", required=False)
@pass_ctx
def verify_(ctx: Context, ref: str | None) -> None:
    """Re-hash every chunk of REF (or of every version); exit 1 naming broken files."""
    with ctx.store() as store:
        if ref:
            records = [store.resolve(_ref(ref))]
        else:
            records = [r for p in store.projects() for _, vs in store.artifacts(p) for r in vs]
        total = sum(r.size for r in records)
        with console.progress(total, "verify", quiet=ctx.quiet) as advance:
            problems = verify(store, records, advance)
    for problem in problems:
        console.print_line(f"BROKEN {problem.ref} {problem.path}: {problem.reason}")
    if problems:
        console.error(f"{len(problems)} broken files in {len({p.ref for p in problems})} versions")
        sys.exit(1)
    console.print_line(
        f"ok: {len(records)} versions, {sum(r.files for r in records)} files verified"
    )


@cli.command()
@click.argument("key", required=False)
@click.argument("value", required=False)
@pass_ctx
def config(ctx: Context, key: str | None, value: str | None) -> None:
    """Show the store's settings, one setting, or set one: artfs config KEY true|false

    'artfs config entity NAME' sets the W&B entity the store answers for ('none' clears it)."""
    if key == ENTITY_KEY:
        _entity_setting(ctx, value)
        return
    if key is not None:
        check_key(key)
    with ctx.store() as store:
        if value is not None and key is not None:
            store.set_setting(key, parse_bool(value))
        current = store.settings()
    for name, setting in current.items():
        if key is None or name == key:
            console.print_line(f"{name} = {str(setting).lower()}")


def _entity_setting(ctx: Context, value: str | None) -> None:
    with ctx.store() as store:
        if value is not None:
            store.set_entity(None if value == "none" else check_name(value, "entity"))
        current = store.entity()
    console.print_line(f"{ENTITY_KEY} = {current or ''}")


@cli.command()
@click.argument("artifact")
@click.option("--type", "type_", help="Artifact type (default: the artifact's, else dataset).")
@click.option("--alias", "aliases", multiple=True, help="Alias for the new version (repeatable).")
@click.option("--description", help="Free-text description.")
@click.option("--metadata", help="JSON object of metadata.")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.option("--force", is_flag=True, help="Commit even while a staging file is open for writing.")
@pass_ctx
def commit(
    ctx: Context,
    artifact: str,
    type_: str | None,
    aliases: tuple[str, ...],
    description: str | None,
    metadata: str | None,
    tags: tuple[str, ...],
    force: bool,
) -> None:
    """Store the staging directory of ARTIFACT (project/name) as its next version."""
    art = _artifact(artifact)
    meta = _metadata(metadata)
    with ctx.store() as store:
        result = staging.commit(
            store,
            art,
            force=force,
            type_=type_,
            aliases=list(aliases),
            description=description,
            metadata=meta,
            tags=list(tags),
            logged_by=current_run_id(Lineage(store), art.project),
        )
    _report_commit(ctx, result)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
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
    with ctx.store() as store:
        record, code = run_command(
            Lineage(store),
            list(command),
            project=project,
            job_type=job_type,
            name=name,
            config=_metadata(config, "--config"),
        )
    if not ctx.quiet:
        console.note(f"run {record.id} ({record.project}/{record.name}) exited with {code}")
    sys.exit(code)


@cli.group(invoke_without_command=True)
@click.option("--project", help="Only runs of this project.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def runs(click_ctx: click.Context, project: str | None, as_json: bool) -> None:
    """List runs; 'artfs runs show ID' shows one with its inputs and outputs."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    with ctx.store() as store:
        _shared_lineage(store, lambda shared: shared.fetch_all_runs(store))
        lineage = Lineage(store)
        found = settle(lineage, lineage.runs(project))
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
                " ".join(r.command)[:60],
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
    with ctx.store() as store:
        lineage = Lineage(store)
        _shared_lineage(store, lambda shared: shared.fetch_runs(store, [check_run_id(run_id)]))
        (record,) = settle(lineage, [lineage.run(run_id)])
        inputs = [r.ref for r in lineage.inputs(run_id)]
        outputs = [r.ref for r in lineage.outputs(run_id)]
        metrics = RunMetrics(store).metrics(run_id, last=None if as_json else SHOWN_ROWS)
    data = views.run_json(record, inputs, outputs)
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


@cli.command()
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
    with ctx.store() as store:
        tracker = Lineage(store)
        start = tracker.version(ref)
        _shared_lineage(store, lambda shared: shared.fetch_graph(store, start, direction, depth))
        graph = build_graph(tracker, start, direction, depth).to_json()
    if format_ == "json":
        console.print_json(graph)
        return
    lines = render.lineage_dot(graph) if format_ == "dot" else render.lineage_tree(graph, direction)
    for line in lines:
        console.print_line(line)


@cli.command()
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--foreground", is_flag=True, help="Serve in this process until unmounted.")
@click.option("--allow-other", is_flag=True, help="Let other users and containers read it.")
@click.option(
    "--poll",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between looks at the default remote for new versions (0: never).",
)
@pass_ctx
def mount(ctx: Context, mountpoint: Path, foreground: bool, allow_other: bool, poll: float) -> None:
    """Mount every version of the store, read-only, at MOUNTPOINT."""
    import os

    command = [sys.executable, "-m", "artfsd", str(mountpoint.absolute()), "--home"]
    command += [str(ctx.home.absolute()), *(["--allow-other"] if allow_other else [])]
    command += ["--poll", str(poll)]
    if foreground:
        os.execv(sys.executable, command)
    log = _start_daemon(command, ctx.home / "logs" / f"artfsd{_escape(mountpoint)}.log")
    if not ctx.quiet:
        console.note(f"mounted the store at {mountpoint} (daemon log: {log})")


def _escape(path: Path) -> str:
    return str(path.absolute()).replace("/", "-")


def _start_daemon(command: list[str], log: Path) -> Path:
    """Start the daemon detached; return once it reports the mount ready, or raise why not."""
    import os
    import select
    import subprocess

    log.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    with open(log, "ab") as log_file:
        daemon = subprocess.Popen(
            [*command, "--ready-fd", str(write_end)],
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as ready:
        if not select.select([ready], [], [], 60)[0]:
            daemon.kill()
            raise ArtfsError(f"the mount did not come up within 60 s: see {log}")
        line = ready.readline().decode(errors="replace").strip()
    if line == "READY":
        return log
    if line.startswith("ERROR "):
        daemon.wait(timeout=10)
        raise ArtfsError(line[len("ERROR ") :])
    code = daemon.wait(timeout=10)
    raise ArtfsError(f"the daemon exited with status {code} before mounting: see {log}")


@cli.command()
@click.argument("mountpoint", type=click.Path(path_type=Path))
def umount(mountpoint: Path) -> None:
    """Unmount an artfs mount; its daemon exits."""
    import shutil
    import subprocess

    tool = shutil.which("fusermount3")
    if tool is None:
        raise ArtfsError(
            "fusermount3 is missing: install the fuse3 package (apt-get install fuse3)"
        )
    done = subprocess.run([tool, "-u", str(mountpoint)], capture_output=True, text=True)
    if done.returncode != 0:
        reason = done.stderr.strip().rpartition(": ")[2] or "failed"
        hint = ": close the files open under it" if "busy" in reason else ""
        raise ArtfsError(f"cannot unmount {mountpoint}: {reason}{hint}")


# --- remotes (artfs.remote is imported inside the commands: obstore loads only when used) -----


def _refresh(
    store: Store, *, project: str | None = None, artifact: ArtifactName | None = None
) -> None:
    """Bring a remote-backed store's index up to date (for one project or artifact if given);
    if the remote cannot be reached, say so on stderr and go on with the local index."""
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import refresh

    config = store.default_remote()
    assert config is not None
    try:
        refresh(store, open_remote(store, config), project=project, artifact=artifact)
    except ArtfsError as exc:
        console.note(f"warning: remote {config.name} not refreshed ({exc}); listing this store")


def _shared_lineage(store: Store, fetch: Callable[[RemoteLineage], object]) -> None:
    """In a remote-backed store, merge the remote's runs and usage edges that ``fetch`` asks
    for into the index first; if the remote fails, say so on stderr and show the local ones."""
    from artfs.remote.lineage_sync import RemoteLineage

    config = store.default_remote()
    if config is None:
        return
    try:
        fetch(RemoteLineage.for_store(store, config))
    except ArtfsError as exc:
        console.note(f"warning: lineage of remote {config.name} not read ({exc}); showing local")


def _fetch_lineage(objects: ObjectStore, store: Store, records: list[VersionRecord]) -> None:
    """Adopt the lineage of pulled or cloned versions; a failure leaves the versions in."""
    from artfs.remote.lineage_sync import RemoteLineage

    try:
        RemoteLineage(objects).fetch_versions(store, records)
    except ArtfsError as exc:
        console.note(f"warning: the lineage of these versions was not read: {exc}")


@cli.group()
def cache() -> None:
    """The local cache of chunks read from the default remote (a remote-backed store)."""


@cache.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def cache_ls(ctx: Context, as_json: bool) -> None:
    """Where the cache is, how many chunks and bytes it holds, and its limits."""
    from artfs.remote.cache import DiskChunkCache

    usage = DiskChunkCache.open(ctx.home).usage()
    if as_json:
        console.print_json({**vars(usage), "directory": str(usage.directory)})
        return
    console.print_line(f"directory  {usage.directory}")
    console.print_line(f"entries    {usage.entries}")
    console.print_line(
        f"size       {views.human_size(usage.bytes)} of {views.human_size(usage.max_bytes)}"
    )
    console.print_line(
        f"free       {views.human_size(usage.free_bytes)} on its filesystem "
        f"(kept above {views.human_size(usage.min_free_bytes)})"
    )


@cache.command(name="prune")
@click.option("--max-size", help="Shrink the cache to this size, e.g. 2G (default: its limit).")
@pass_ctx
def cache_prune(ctx: Context, max_size: str | None) -> None:
    """Delete least recently used chunks until the cache fits its limits."""
    from artfs.remote.cache import DiskChunkCache, parse_size

    limit = None if max_size is None else parse_size(max_size)
    result = DiskChunkCache.open(ctx.home).prune(limit)
    console.print_line(
        f"removed {result.removed} chunks ({views.human_size(result.freed_bytes)}); "
        f"{result.usage.entries} chunks, {views.human_size(result.usage.bytes)} remain"
    )


@cli.group()
def remote() -> None:
    """Object-store remotes (S3, MinIO, SeaweedFS, R2) to push to and pull from."""


@remote.command(name="add")
@click.argument("name")
@click.argument("url")
@click.option("--endpoint", help="S3 endpoint URL (default: $AWS_ENDPOINT_URL, else AWS).")
@click.option("--region", help="Region (default: $AWS_REGION).")
@click.option("--default", "default", is_flag=True, help="Make it the default remote too.")
@pass_ctx
def remote_add(
    ctx: Context, name: str, url: str, endpoint: str | None, region: str | None, default: bool
) -> None:
    """Add remote NAME at URL (s3://bucket/prefix); credentials come from the environment."""
    from artfs.remote.publish import add_default
    from artfs.remote.sync import add_remote

    with ctx.store() as store:
        add = add_default if default else add_remote
        config = add(store, name, url, endpoint, region)
    console.print_line(f"added remote {config.name}: {config.url}{' (default)' if default else ''}")


@remote.command(name="default")
@click.argument("name", required=False)
@click.option("--unset", is_flag=True, help="No default remote: commits stay local.")
@pass_ctx
def remote_default(ctx: Context, name: str | None, unset: bool) -> None:
    """Make remote NAME the default: put, commit and alias publish there first."""
    from artfs.remote.publish import set_default

    if (name is None) == (not unset):
        raise InvalidName("give a remote NAME, or --unset for none")
    with ctx.store() as store:
        config = set_default(store, name)
    if config is None:
        console.print_line("no default remote: commits stay in this store")
    else:
        console.print_line(f"default remote: {config.name} ({config.url})")


@remote.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def remote_ls(ctx: Context, as_json: bool) -> None:
    """List the remotes of this store."""
    with ctx.store() as store:
        configured = store.remotes()
        backing = store.default_remote()
    default = backing.name if backing else None
    if as_json:
        console.print_json([vars(c) | {"default": c.name == default} for c in configured])
        return
    rows = [
        [c.name, c.url, c.endpoint or "", c.region or "", "*" if c.name == default else ""]
        for c in configured
    ]
    console.print_table(["name", "url", "endpoint", "region", "default"], rows)


@cli.command()
@click.argument("ref", required=False)
@click.option("--all", "all_", is_flag=True, help="Push every version of every artifact.")
@click.option("--remote", "remote_name", help="Remote to push to (default: the only one).")
@pass_ctx
def push(ctx: Context, ref: str | None, all_: bool, remote_name: str | None) -> None:
    """Publish version REF (or --all) on a remote; it gets the remote's next number."""
    from artfs.remote.lineage_sync import RemoteLineage
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import push as push_one
    from artfs.remote.sync import push_all, remote_config

    if (ref is None) == (not all_):
        raise InvalidName("give a REF or --all, not both")
    with ctx.store() as store:
        target = open_remote(store, remote_config(store, remote_name))
        results = push_all(store, target) if all_ else [push_one(store, target, _ref(ref or ""))]
        shared = RemoteLineage(target.objects)
        pushed = [r.local for r in results]
        counts = shared.push_all(store) if all_ else shared.push_versions(store, pushed)
    for result in results:
        art = result.local.artifact
        state = "pushed" if result.created else "already there"
        console.print_line(f"{result.local.ref} -> {art}:v{result.number} ({state})")
    if not ctx.quiet:
        console.note(f"lineage: {counts.runs} runs, {counts.edges} usage edges published")


@cli.command()
@click.argument("ref")
@click.option("--remote", "remote_name", help="Remote to pull from (default: the only one).")
@pass_ctx
def pull(ctx: Context, ref: str, remote_name: str | None) -> None:
    """Fetch version REF and its missing chunks from a remote (each chunk hash-checked)."""
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import pull as pull_one
    from artfs.remote.sync import remote_config

    with ctx.store() as store:
        source = open_remote(store, remote_config(store, remote_name))
        result = pull_one(store, source, _ref(ref))
        _fetch_lineage(source.objects, store, [result.record])
    console.print_line(
        f"{result.record.ref}: {result.chunks_fetched} chunks, "
        f"{views.human_size(result.bytes_fetched)} fetched"
    )


@cli.command()
@click.argument("url")
@click.option("--endpoint", help="S3 endpoint URL (default: $AWS_ENDPOINT_URL, else AWS).")
@click.option("--region", help="Region (default: $AWS_REGION).")
@click.option("--name", default="origin", show_default=True, help="Name of the remote.")
@pass_ctx
def clone(ctx: Context, url: str, endpoint: str | None, region: str | None, name: str) -> None:
    """Start this store from remote URL: every version into the index, no chunks. The remote
    becomes the default: put and commit publish there. Of the store's default remote: a
    refresh."""
    from artfs.objectstore import RemoteUrl
    from artfs.remote.publish import check_backing, has_versions
    from artfs.remote.remote import open_remote
    from artfs.remote.sync import add_remote, refresh
    from artfs.store.settings import RemoteConfig

    with ctx.store() as store:
        config = RemoteConfig(name, str(RemoteUrl.parse(url)), endpoint, region)
        backing = store.default_remote() == config
        if not backing:
            if has_versions(store):  # refused before anything is recorded
                check_backing(store, config)
            add_remote(store, name, url, endpoint, region, resume=True)
        source = open_remote(store, config)
        result = refresh(store, source)
        records = result.adopted
        _fetch_lineage(source.objects, store, records)
        for line in result.skipped:  # the rest is cloned; these are tried again by a refresh
            console.note(f"warning: not adopted: {line}")
        if not backing:
            store.set_default_remote(config.name)
    console.print_line(
        f"cloned {len(records)} versions from {config.url} (index only; default remote)"
    )


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


cli.add_command(ui)
_add_quiet(cli)


def main(argv: list[str] | None = None) -> None:
    try:
        status = cli.main(args=argv, prog_name="artfs", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
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
