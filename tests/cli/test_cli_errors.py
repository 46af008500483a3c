"""Every error a user can cause: one ``artfs: error:`` line, no traceback, non-zero exit, and
the store exactly as it was (packs, index file, ``artfs ls --json``).

The cases run ``artfs.cli.main`` in this process (``run_cli_here``: the same parsing, error
handling and output, without a Python start per case); usage errors go through the console
script, as does every command in tests/cli/test_cli_commands.py."""

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli_here


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("errors")
    home = root / "home"
    good = root / "good"
    (good / "sub").mkdir(parents=True)
    (good / "a_big.bin").write_bytes(random.Random(1).randbytes(1 << 20))
    (good / "sub" / "x.txt").write_text("x")
    run_cli_here("put", good, "proj/mnist", "--alias", "best", home=home, check=True)
    (good / "sub" / "x.txt").write_text("y")
    run_cli_here("put", good, "proj/mnist", home=home, check=True)
    run_cli_here("put", good, "proj/model", "--type", "model", home=home, check=True)
    paths = {"root": root, "home": home, "good": good}
    for name in ("fifo", "dangling", "loop", "selfloop", "marker", "control", "nonutf8"):
        bad = root / name
        (bad / "d").mkdir(parents=True)
        (bad / "a_big.bin").write_bytes(random.Random(2).randbytes(1 << 20))
        paths[name] = bad
    os.mkfifo(paths["fifo"] / "d" / "pipe")
    (paths["dangling"] / "d" / "link").symlink_to(root / "nowhere")
    (paths["loop"] / "d" / "up").symlink_to("..")
    (paths["selfloop"] / "d" / "me").symlink_to("me")
    (paths["marker"] / "d" / ".artfs-wh.a").touch()  # names staging keeps for itself
    (paths["control"] / ".artfs-commit").write_text("{}")
    (paths["nonutf8"] / os.fsdecode(b"d/not-utf8-\xff")).touch()
    os.mkfifo(root / "lonely-fifo")
    (root / "a-file").write_text("not a directory")
    return paths


CASES: dict[str, tuple[str, ...]] = {
    "put-missing-path": ("put", "{root}/does-not-exist", "proj/mnist"),
    "run-missing-command": ("run", "--project", "proj", "--", "{root}/no-such-program"),
    "run-not-executable": ("run", "--project", "proj", "--", "{root}/a-file"),
    "put-fifo-in-tree": ("put", "{fifo}", "proj/mnist"),
    "put-fifo-as-source": ("put", "{root}/lonely-fifo", "proj/mnist"),
    "put-dangling-link": ("put", "{dangling}", "proj/mnist"),
    "put-symlink-loop": ("put", "{loop}", "proj/mnist"),
    "put-self-loop": ("put", "{selfloop}", "proj/new"),
    "put-staging-marker-name": ("put", "{marker}", "proj/mnist"),
    "put-staging-control-name": ("put", "{control}", "proj/mnist"),
    "put-name-not-utf8": ("put", "{nonutf8}", "proj/mnist"),
    "put-bad-project": ("put", "{good}", "bad project/mnist"),
    "put-bad-name": ("put", "{good}", "proj/-mnist"),
    "put-no-name": ("put", "{good}", "proj"),
    "put-with-version": ("put", "{good}", "proj/mnist:v3"),
    "put-type-clash": ("put", "{fifo}/a_big.bin", "proj/mnist", "--type", "model"),
    "put-bad-metadata": ("put", "{fifo}/a_big.bin", "proj/mnist", "--metadata", "{{bad"),
    "put-metadata-not-object": ("put", "{fifo}/a_big.bin", "proj/mnist", "--metadata", "[1]"),
    "put-alias-latest": ("put", "{fifo}/a_big.bin", "proj/mnist", "--alias", "latest"),
    "put-alias-version": ("put", "{fifo}/a_big.bin", "proj/mnist", "--alias", "v3"),
    "put-bad-tag": ("put", "{fifo}/a_big.bin", "proj/mnist", "--tag", "no spaces"),
    "put-bad-ttl": ("put", "{fifo}/a_big.bin", "proj/mnist", "--ttl", "3 years"),
    "get-unknown-version": ("get", "proj/mnist:v9", "{root}/out"),
    "get-unknown-alias": ("get", "proj/mnist:nope", "{root}/out"),
    "get-unknown-project": ("get", "nope/mnist", "{root}/out"),
    "get-into-a-file": ("get", "proj/mnist", "{root}/a-file"),
    "get-below-a-file": ("get", "proj/mnist", "{root}/a-file/sub"),
    "get-prefix-matches-nothing": ("get", "proj/mnist", "{root}/out", "--path-prefix", "zzz"),
    "ls-unknown-project": ("ls", "nope"),
    "ls-unknown-artifact": ("ls", "proj/nope"),
    "ls-bad-name": ("ls", "proj/bad name"),
    "info-unknown-version": ("info", "proj/mnist:v9"),
    "info-bad-ref": ("info", "proj/mnist:"),
    "files-unknown-alias": ("files", "proj/mnist:nope"),
    "diff-unknown": ("diff", "proj/mnist:v0", "proj/mnist:v7"),
    "alias-missing-version": ("alias", "proj/mnist:v7", "prod"),
    "alias-latest": ("alias", "proj/mnist:v0", "latest"),
    "alias-staging": ("alias", "proj/mnist:v0", "staging"),
    "alias-version-shaped": ("alias", "proj/mnist:v0", "v3"),
    "alias-remove-unknown": ("alias", "--remove", "proj/mnist", "nope"),
    "alias-remove-latest": ("alias", "--remove", "proj/mnist", "latest"),
    "edit-unknown-version": ("edit", "proj/mnist:v9", "--description", "x"),
    "edit-bad-metadata": ("edit", "proj/mnist:v0", "--metadata", "not json"),
    "edit-bad-ttl": ("edit", "proj/mnist:v0", "--ttl", "soon"),
    "edit-bad-tag": ("edit", "proj/mnist:v0", "--tag", "a/b"),
    "edit-nothing": ("edit", "proj/mnist:v0"),
    "stage-unknown-artifact": ("stage", "proj/nothere"),
    "rm-with-alias": ("rm", "proj/mnist:v0"),
    "rm-without-version": ("rm", "proj/mnist"),
    "rm-unknown-version": ("rm", "proj/mnist:v9"),
    "rm-all-unknown": ("rm", "proj/nope", "--all"),
    "verify-unknown": ("verify", "proj/mnist:v9"),
}


def files_state(home: Path) -> dict[str, str]:
    """Every file of the store with a hash of its bytes: the index file is byte-identical when
    no write transaction committed, so this is stricter than comparing listings."""
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name not in ("lock.mdb", "store.lock")
    }


@pytest.fixture(scope="module")
def baseline(world: dict[str, Path], store_state_of: Any) -> dict[str, Any]:
    return {"files": files_state(world["home"]), "state": store_state_of(world["home"])}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_error_is_one_line_and_changes_nothing(
    case: str, world: dict[str, Path], baseline: dict[str, Any]
) -> None:
    args = [a.format(**{k: str(v) for k, v in world.items()}) for a in CASES[case]]
    result = run_cli_here(*args, home=world["home"])
    assert result.returncode != 0, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith("artfs: error: "), result
    assert "Traceback" not in result.stderr
    assert result.stdout == "", result
    assert files_state(world["home"]) == baseline["files"]
    assert not (world["root"] / "out").exists()


def test_after_all_errors_listings_are_as_before(
    world: dict[str, Path], baseline: dict[str, Any], store_state_of: Any
) -> None:
    assert store_state_of(world["home"]) == baseline["state"]
    assert len(baseline["state"]["ls"]["proj/mnist"]) == 2


def test_usage_errors_are_one_line_naming_the_help_to_read(
    world: dict[str, Path], artfs_cli: Any
) -> None:
    cases = {
        ("put",): "Missing argument 'PATH'; see 'artfs put --help'",
        ("nosuchcommand",): "No such command 'nosuchcommand'",
        ("ls", "--bogus"): "No such option '--bogus'",
        ("diff", "proj/mnist"): "Missing argument 'REF_B'; see 'artfs diff --help'",
        ("lineage", "proj/mnist:v1", "--direction", "sideways"): "'sideways' is not one of",
    }
    for args, said in cases.items():
        result = artfs_cli(*args, home=world["home"])
        assert result.returncode == 2
        assert result.stderr.startswith("artfs: error: ") and said in result.stderr, result
        assert len(result.stderr.splitlines()) == 1, result


@pytest.mark.parametrize(
    "args",
    [
        ("ls",),
        ("info", "proj/mnist:v0"),
        ("files", "proj/mnist:v0"),
        ("get", "proj/mnist:v0", "{out}"),
        ("alias", "proj/mnist:v0", "best"),
        ("rm", "proj/mnist:v0"),
        ("runs",),
        ("lineage", "proj/mnist:v0"),
        ("verify",),
        ("gc",),
        ("diff", "proj/mnist:v0", "proj/mnist:v1"),
        ("edit", "proj/mnist:v0", "--description", "x"),
        ("commit", "proj/mnist"),
        ("stage", "proj/mnist"),
        ("config",),
        ("config", "entity"),
        ("push", "proj/mnist:v0"),
        ("pull", "proj/mnist:v0"),
        ("remote", "ls"),
        ("remote", "default", "origin"),
    ],
)
def test_a_home_with_no_store_is_one_line_and_makes_none(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    home = tmp_path / "mistyped-home"
    result = run_cli_here(*(a.format(out=tmp_path / "out") for a in args), home=home)
    assert result.returncode == 1, result
    assert result.stderr.splitlines() == [
        f"artfs: error: no artfs store at {home}: give --home (or ARTFS_HOME) of one, "
        "or store something first (artfs put PATH PROJECT/NAME)"
    ]
    assert not home.exists() and not (tmp_path / "out").exists()


def test_a_command_that_cannot_run_makes_no_store_and_no_run(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    result = run_cli_here("run", "--", str(tmp_path / "no-such-program"), home=home)
    assert result.returncode != 0 and "no such command" in result.stderr, result
    assert not home.exists()


def test_a_group_given_no_command_shows_its_help(artfs_cli: Any, tmp_path: Path) -> None:
    result = artfs_cli("cache", home=tmp_path / "h")
    shown = result.stdout + result.stderr
    assert "Commands:" in shown and "prune" in shown and "artfs: error" not in shown, result
