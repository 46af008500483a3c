"""Commands on remotes: remote add/default/ls, push, pull, clone, and the chunk cache.

artfs.remote is imported inside the commands: obstore loads only when used.
"""

from __future__ import annotations

import click

from artfs import porcelain, views
from artfs.cli import console
from artfs.cli.context import Context
from artfs.cli.params import parse_ref, pass_ctx
from artfs.errors import InvalidName


@click.group()
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


@click.group()
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
    with ctx.existing_store() as store:
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
    with ctx.existing_store() as store:
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


@click.command()
@click.argument("ref", required=False)
@click.option("--all", "all_", is_flag=True, help="Push every version of every artifact.")
@click.option("--remote", "remote_name", help="Remote to push to (default: the only one).")
@pass_ctx
def push(ctx: Context, ref: str | None, all_: bool, remote_name: str | None) -> None:
    """Publish version REF (or --all) on a remote; it gets the remote's next number."""
    if (ref is None) == (not all_):
        raise InvalidName("give a REF or --all, not both")
    with ctx.existing_store() as store:
        pushed = porcelain.push(
            store, None if all_ else parse_ref(ref or ""), remote_name=remote_name
        )
    for result in pushed.results:
        art = result.local.artifact
        state = "pushed" if result.created else "already there"
        console.print_line(f"{result.local.ref} -> {art}:v{result.number} ({state})")
    if not ctx.quiet:
        console.note(
            f"lineage: {pushed.lineage.runs} runs, {pushed.lineage.edges} usage edges published"
        )


@click.command()
@click.argument("ref")
@click.option("--remote", "remote_name", help="Remote to pull from (default: the only one).")
@pass_ctx
def pull(ctx: Context, ref: str, remote_name: str | None) -> None:
    """Fetch version REF and its missing chunks from a remote (each chunk hash-checked)."""
    with ctx.existing_store() as store:
        result = porcelain.pull(store, parse_ref(ref), remote_name=remote_name, warn=console.note)
    console.print_line(
        f"{result.record.ref}: {result.chunks_fetched} chunks, "
        f"{views.human_size(result.bytes_fetched)} fetched"
    )


@click.command()
@click.argument("url")
@click.option("--endpoint", help="S3 endpoint URL (default: $AWS_ENDPOINT_URL, else AWS).")
@click.option("--region", help="Region (default: $AWS_REGION).")
@click.option("--name", default="origin", show_default=True, help="Name of the remote.")
@pass_ctx
def clone(ctx: Context, url: str, endpoint: str | None, region: str | None, name: str) -> None:
    """Start this store from remote URL: every version into the index, no chunks. The remote
    becomes the default: put and commit publish there. Of the store's default remote: a
    refresh."""
    with ctx.store() as store:
        cloned = porcelain.clone(
            store, url, endpoint=endpoint, region=region, name=name, warn=console.note
        )
    console.print_line(
        f"cloned {len(cloned.versions)} versions from {cloned.remote.url} "
        "(index only; default remote)"
    )
