"""Commands on artifacts and their versions: put, commit, get, ls, info, files, diff, alias,
edit, rm."""

from __future__ import annotations

import json
from pathlib import Path

import click

from artfs import porcelain, views
from artfs.cli import console, render
from artfs.cli.context import Context
from artfs.cli.params import (
    parse_artifact,
    parse_metadata,
    parse_ref,
    parse_ttl,
    pass_ctx,
    remote_option,
)
from artfs.errors import Conflict, InvalidName, NotFound
from artfs.names import check_name
from artfs.store import staging
from artfs.store.export import diff
from artfs.store.repository import EditRequest, PutResult


@click.command()
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
@click.option(
    "--rehash",
    is_flag=True,
    help="Read every file, also those unchanged (size, times, inode) since the last put of PATH.",
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
    rehash: bool,
) -> None:
    """Store a file or directory PATH as the next version of REF (project/name).

    Files whose size, mtime, ctime, inode and device are what the last put of PATH into REF
    saw are not read again (--rehash reads them all); the version is the same either way.

    PATH may be s3://bucket/key-or-prefix: the version then holds references to the objects
    (size and ETag recorded; content fetched and verified when read)."""
    art = parse_artifact(ref)
    meta, ttl_seconds = parse_metadata(metadata), parse_ttl(ttl)
    with ctx.store() as store:
        parent = porcelain.parent_of(path, art, rehash=rehash)
        tree = porcelain.source_tree(path, checksum=not no_checksum)
        logged_by = porcelain.current_run(store, art.project)
        with console.progress(tree.total_bytes, f"put {art}", quiet=ctx.quiet) as advance:
            result = porcelain.put(
                store,
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
                parent=parent,
            )
    _report_commit(
        ctx,
        result,
        {"--description": description, "--metadata": metadata, "--tag": tags, "--ttl": ttl},
    )


def _report_commit(ctx: Context, result: PutResult, given: dict[str, object]) -> None:
    """A note on stderr, then the resulting ref as the last line on stdout. ``given``: the
    options only a new version takes (an unchanged put or commit makes none), by name, None
    or empty where not given."""
    options = [name for name, value in given.items() if value is not None and value != ()]
    record = result.record
    if not ctx.quiet:
        if result.created:
            uploaded = (
                f", {views.human_size(result.uploaded_bytes)} uploaded to remote {result.remote}"
                if result.remote
                else ""
            )
            console.note(
                f"stored {views.counted(record.files, 'file')}, "
                f"{views.human_size(record.size)} "
                f"({views.human_size(result.new_bytes)} new in the store{uploaded})"
            )
        elif options:
            console.note(
                f"unchanged: identical to {record.ref}, no new version; {', '.join(options)} "
                f"not applied to it (change them with 'artfs edit {record.ref}')"
            )
        else:
            console.note(f"unchanged: identical to {record.ref}, no new version")
    console.print_line(record.ref)


@click.command()
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
    with ctx.existing_store() as store:
        record = store.resolve(parse_ref(ref))
        run_id = porcelain.current_run(store, record.project)
        total = porcelain.get_size(store, record, path_prefix)
        with console.progress(total, f"get {record.ref}", quiet=ctx.quiet) as advance:
            written = porcelain.get(
                store,
                record,
                dest,
                path_prefix=path_prefix,
                allow_missing_references=allow_missing_references,
                used_by=run_id,
                progress=advance,
            )
    if not ctx.quiet:
        console.note(f"wrote {views.counted(len(written), 'file')} of {record.ref} to {dest}")


@click.command(name="ls")
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--offline", is_flag=True, help="Do not look at the default remote first.")
@pass_ctx
def ls_(ctx: Context, target: str | None, as_json: bool, offline: bool) -> None:
    """List projects, the artifacts of PROJECT, or the versions of PROJECT/NAME."""
    refresh = not offline
    with ctx.existing_store() as store:
        if target is None:
            projects = porcelain.projects(store, refresh=refresh, warn=console.note)
            if as_json:
                console.print_json(projects)
            else:
                for project in projects:
                    console.print_line(project)
        elif "/" in target:
            art = parse_artifact(target)
            records = porcelain.versions(store, art, refresh=refresh, warn=console.note)
            if as_json:
                console.print_json([views.version_json(r) for r in records])
            else:
                console.print_table(
                    ["version", "aliases", "files", "size", "created", "digest"],
                    [render.version_row(r) for r in records],
                )
        else:
            found = porcelain.artifacts(store, target, refresh=refresh, warn=console.note)
            if as_json:
                console.print_json(
                    [
                        {
                            "name": a.name,
                            "type": a.type,
                            "versions": len(a.versions),
                            "latest": a.versions[-1].version if a.versions else None,
                            "size": a.versions[-1].size if a.versions else None,
                        }
                        for a in found
                    ]
                )
            else:
                console.print_table(
                    ["name", "type", "versions", "latest", "size"],
                    [
                        [
                            a.name,
                            a.type or "-",
                            len(a.versions),
                            a.versions[-1].version if a.versions else "-",
                            views.human_size(a.versions[-1].size) if a.versions else "-",
                        ]
                        for a in found
                    ],
                )


@click.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def info(ctx: Context, ref: str, as_json: bool) -> None:
    """Show the record of one version, with the runs that consumed it."""
    with ctx.existing_store() as store:
        record = store.resolve(parse_ref(ref))
        consumers = porcelain.consumers(store, record, refresh=True, warn=console.note)
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


@click.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def files(ctx: Context, ref: str, as_json: bool) -> None:
    """List the files of one version with size and digest."""
    with ctx.existing_store() as store:
        entries = store.files(store.resolve(parse_ref(ref)))
    if as_json:
        console.print_json(
            [
                {"path": e.path, "size": e.size, "digest": e.digest.hex(), "mode": oct(e.mode)}
                for e in entries
            ]
        )
    else:
        console.print_table(
            ["path", "size", "digest"],
            [[console.shown_path(e.path), e.size, e.digest.hex()[:12]] for e in entries],
        )


@click.command(name="diff")
@click.argument("ref_a")
@click.argument("ref_b")
@pass_ctx
def diff_(ctx: Context, ref_a: str, ref_b: str) -> None:
    """Files added, removed and changed from REF_A to REF_B."""
    with ctx.existing_store() as store:
        changes = diff(store, store.resolve(parse_ref(ref_a)), store.resolve(parse_ref(ref_b)))
    for mark, paths in (("+", changes.added), ("-", changes.removed), ("M", changes.changed)):
        for path in paths:
            console.print_line(f"{mark} {console.shown_path(path)}")
    if not ctx.quiet:
        console.note(
            f"{len(changes.added)} added, {len(changes.removed)} removed, "
            f"{len(changes.changed)} changed"
        )


@click.command()
@click.argument("ref")
@click.argument("alias")
@click.option("--remove", is_flag=True, help="Remove ALIAS from artifact REF (project/name).")
@pass_ctx
def alias(ctx: Context, ref: str, alias: str, remove: bool) -> None:
    """Point ALIAS at version REF, moving it if another version holds it."""
    with ctx.existing_store() as store:
        if remove:
            store.remove_alias(parse_artifact(ref), alias)
            if not ctx.quiet:
                console.note(f"removed alias {alias} from {ref}")
            return
        record = store.set_alias(parse_ref(ref), alias)
    console.print_line(f"{record.project}/{record.name}:{alias} -> {record.version}")


@click.command()
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
    if description is None and metadata is None and not tags and not untags and ttl is None:
        raise InvalidName(
            "'artfs edit' needs something to change: --description, --metadata, --tag, "
            "--untag or --ttl"
        )
    request = EditRequest(
        description=description,
        metadata=parse_metadata(metadata),
        add_tags=list(tags),
        remove_tags=list(untags),
        ttl_seconds=parse_ttl(ttl),
        clear_ttl=ttl == "none",
    )
    with ctx.existing_store() as store:
        record = store.edit(parse_ref(ref), request)
    console.print_line(record.ref)


@click.command()
@click.argument("ref")
@click.option("--force", is_flag=True, help="Also delete a version holding custom aliases.")
@click.option("--all", "all_", is_flag=True, help="Delete the artifact with all its versions.")
@remote_option("Delete on a remote (default: the only one); a remote-backed store always does.")
@pass_ctx
def rm(ctx: Context, ref: str, force: bool, all_: bool, remote_name: str | None) -> None:
    """Delete a version (REF), a whole artifact (project/name --all), or an empty project."""
    if ":" not in ref and "/" not in ref:
        _rm_project(ctx, check_name(ref, "project"), force or all_ or remote_name is not None)
        return
    if not all_ and ":" not in ref:
        raise InvalidName(
            f"'artfs rm {ref}' needs a version: use {ref}:vN, or --all for every version"
        )
    target = parse_artifact(ref) if all_ else parse_ref(ref)
    with ctx.existing_store() as store:
        backing = store.default_remote()
        deletion = porcelain.delete(store, target, force=force, remote_name=remote_name)
    where = f" on {deletion.remote}" if deletion.remote else ""
    names = [
        r.ref + where + (" and here" if where and r.ref in deletion.here else "")
        for r in deletion.records
    ]
    for name in names:
        console.print_line(f"deleted {name}")
    if deletion.staging_removed:
        console.print_line(f"deleted {target} (no versions; its empty staging)")
        return
    if not ctx.quiet:
        remote = " --remote" if remote_name is not None or backing is not None else ""
        console.note(f"run 'artfs gc{remote}' to reclaim the space")


def _rm_project(ctx: Context, project: str, options: bool) -> None:
    """``artfs rm PROJECT``: a project that holds nothing (``mkdir MNT/PROJECT``) goes; one
    that holds artifacts is refused, saying how to delete them."""
    if options:
        raise InvalidName(
            f"'artfs rm {project}' takes no option: it deletes an empty project; give "
            f"project/name:vN or project/name --all for an artifact"
        )
    with ctx.existing_store() as store:
        if not staging.delete_empty_project(store, project):
            if project not in porcelain.projects(store):
                raise NotFound(f"project {project!r} does not exist: see 'artfs ls'")
            raise Conflict(
                f"project {project} holds artifacts: delete them first "
                f"('artfs ls {project}', then 'artfs rm {project}/NAME --all')"
            )
    console.print_line(f"deleted project {project} (it held nothing)")


@click.command()
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
    art = parse_artifact(artifact)
    meta = parse_metadata(metadata)
    with ctx.existing_store() as store:
        result = porcelain.commit(
            store,
            art,
            force=force,
            type_=type_,
            aliases=list(aliases),
            description=description,
            metadata=meta,
            tags=list(tags),
        )
    _report_commit(
        ctx, result, {"--description": description, "--metadata": metadata, "--tag": tags}
    )
