"""CLI round trips through the installed ``artfs`` console script (the contract of issue 2)."""

import json
import os
import pty
import random
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from artfs.cli.console import shown_path
from tests.helpers import ARTFS

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
LS_KEYS = {"version", "aliases", "digest", "size", "files", "created"}
INFO_KEYS = LS_KEYS | {"type", "description", "metadata", "tags", "logged_by"}


@pytest.fixture
def src(tmp_path: Path, make_tree: Any) -> Path:
    return make_tree(
        tmp_path / "src",
        {
            "train/images.bin": random.Random(1).randbytes(1_500_000),
            "train/labels.json": '{"cat": 0, "dog": 1}',
            "test/data.csv": "a,b\n1,2\n" * 5000,
            "README": "mnist\n",
            "empty.txt": b"",
            "emptydir": None,
        },
    )


def put(run_cli: Any, path: Path, ref: str, *args: str) -> str:
    result = run_cli("put", path, ref, *args, check=True)
    return result.last_line


def test_put_prints_the_ref_last_and_defaults_to_dataset(run_cli: Any, src: Path) -> None:
    result = run_cli("put", src, "proj/mnist", check=True)
    assert result.last_line == "proj/mnist:v0"
    assert result.stdout.strip().splitlines() == ["proj/mnist:v0"]
    (src / "README").write_text("changed\n")
    assert put(run_cli, src, "proj/mnist") == "proj/mnist:v1"
    info = run_cli("info", "proj/mnist:v1", "--json", check=True).json()
    assert info["type"] == "dataset"
    one = run_cli("put", src / "README", "proj/readme", check=True)
    assert "stored 1 file, " in one.stderr


def test_quiet_put_prints_only_the_ref(run_cli: Any, src: Path) -> None:
    result = run_cli("--quiet", "put", src, "proj/mnist", check=True)
    assert (result.stdout, result.stderr) == ("proj/mnist:v0\n", "")


def test_progress_bar_and_table_only_on_a_terminal(run_cli: Any, src: Path, home: Path) -> None:
    """On a terminal, put draws a progress bar on stderr and ls a table; piped, both are plain
    text (no escape codes), which is what scripts read."""
    main, child = pty.openpty()
    try:
        proc = subprocess.run(
            [str(ARTFS), "--home", str(home), "put", str(src), "proj/mnist"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=child,
            timeout=60,
            check=True,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
        )
        os.close(child)
        child = -1
        drawn = b""
        while chunk := _read_pty(main):
            drawn += chunk
    finally:
        os.close(main)
        if child >= 0:
            os.close(child)
    assert proc.stdout == b"proj/mnist:v0\n"
    assert b"put proj/mnist" in drawn and b"\x1b[" in drawn  # the bar, drawn with escapes
    assert b"stored" in drawn
    piped = run_cli("put", src, "proj/other", check=True)
    assert "\x1b" not in piped.stderr and "stored" in piped.stderr
    listing = run_cli("ls", "proj", check=True).stdout
    assert "\x1b" not in listing and listing.splitlines()[0].split("\t")[0] == "name"


def test_piped_put_never_imports_rich_and_survives_a_closed_stderr(src: Path, home: Path) -> None:
    """Scripts pipe artfs: rich (~25 ms of start-up) is not imported then, and a put with
    stderr closed (``2>&-``) still prints its ref and exits 0."""
    probe = (
        "import sys\n"
        "from artfs.cli.app import main\n"
        f"sys.argv = ['artfs', '--home', {str(home)!r}, 'put', {str(src)!r}, 'proj/a']\n"
        "try:\n    main()\n"
        "finally:\n    print('rich loaded' if 'rich' in sys.modules else 'no rich')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["proj/a:v0", "no rich"], done.stderr
    closed = subprocess.run(
        ["sh", "-c", f'"{ARTFS}" --home "{home}" put "{src}" proj/b 2>&-'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (closed.returncode, closed.stdout) == (0, "proj/b:v0\n")


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side closed
        return b""


def test_identical_put_reports_the_existing_version(run_cli: Any, src: Path) -> None:
    put(run_cli, src, "proj/mnist")
    result = run_cli("put", src, "proj/mnist", check=True)
    assert result.last_line == "proj/mnist:v0"
    assert "unchanged" in result.stderr and "not applied" not in result.stderr
    assert len(run_cli("ls", "proj/mnist", "--json").json()) == 1
    again = run_cli("put", src, "proj/mnist", "--tag", "t1", "--description", "d", check=True)
    assert again.last_line == "proj/mnist:v0"
    assert "--description, --tag not applied to it" in again.stderr
    assert "artfs edit proj/mnist:v0" in again.stderr
    info = run_cli("info", "proj/mnist:v0", "--json").json()
    assert info["tags"] == [] and not info["description"]


def test_put_options_land_in_info(run_cli: Any, src: Path) -> None:
    ref = put(
        run_cli,
        src,
        "proj/model",
        "--type",
        "model",
        "--alias",
        "best",
        "--alias",
        "prod",
        "--description",
        "first try",
        "--metadata",
        '{"epochs": 10, "lr": 0.1}',
        "--tag",
        "baseline",
        "--tag",
        "cnn",
        "--ttl",
        "30d",
    )
    info = run_cli("info", ref, "--json", check=True).json()
    assert info.keys() >= INFO_KEYS
    assert info["version"] == "v0"
    assert info["type"] == "model"
    assert info["aliases"] == ["latest", "best", "prod"]
    assert info["description"] == "first try"
    assert info["metadata"] == {"epochs": 10, "lr": 0.1}
    assert info["tags"] == ["baseline", "cnn"]
    assert info["logged_by"] is None
    assert info["files"] == 5
    assert info["size"] == sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert ISO.fullmatch(info["created"])
    assert ISO.fullmatch(info["expires"])
    created = datetime.fromisoformat(info["created"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(info["expires"].replace("Z", "+00:00"))
    assert (expires - created).total_seconds() == pytest.approx(30 * 86400, abs=2)
    text = run_cli("info", "proj/model:best", check=True).stdout
    assert "first try" in text and "proj/model:v0" in text


def test_get_reproduces_files_modes_and_mtimes(run_cli: Any, src: Path, tmp_path: Path) -> None:
    os.chmod(src / "README", 0o600)
    os.chmod(src / "train", 0o700)
    os.utime(src / "README", ns=(1_234_567_890_123_456_789, 1_234_567_890_123_456_789))
    ref = put(run_cli, src, "proj/mnist")
    dest = tmp_path / "dest"
    run_cli("get", ref, dest, check=True)
    src_paths = sorted(p.relative_to(src) for p in src.rglob("*"))
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == src_paths
    for rel in src_paths:
        a, b = (src / rel).stat(), (dest / rel).stat()
        assert (a.st_mode, a.st_mtime_ns) == (b.st_mode, b.st_mtime_ns), rel
        if (src / rel).is_file():
            assert (src / rel).read_bytes() == (dest / rel).read_bytes(), rel


def test_get_with_path_prefix(run_cli: Any, src: Path, tmp_path: Path) -> None:
    put(run_cli, src, "proj/mnist")
    dest = tmp_path / "dest"
    run_cli("get", "proj/mnist:latest", dest, "--path-prefix", "train/", check=True)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "train/images.bin",
        "train/labels.json",
    ]


def test_ls_at_every_level(run_cli: Any, src: Path) -> None:
    put(run_cli, src, "proj/mnist", "--alias", "best")
    (src / "README").write_text("v1\n")
    put(run_cli, src, "proj/mnist")
    put(run_cli, src, "proj/weights", "--type", "model")
    put(run_cli, src, "other/x")
    assert run_cli("ls", "--json", check=True).json() == ["other", "proj"]
    assert run_cli("ls", check=True).stdout.split() == ["other", "proj"]
    artifacts = run_cli("ls", "proj", "--json", check=True).json()
    assert [(a["name"], a["type"], a["versions"], a["latest"]) for a in artifacts] == [
        ("mnist", "dataset", 2, "v1"),
        ("weights", "model", 1, "v0"),
    ]
    versions = run_cli("ls", "proj/mnist", "--json", check=True).json()
    assert [v["version"] for v in versions] == ["v0", "v1"]
    for v in versions:
        assert v.keys() >= LS_KEYS
        assert ISO.fullmatch(v["created"])
        assert isinstance(v["size"], int) and v["files"] == 5
        assert re.fullmatch(r"[0-9a-f]{64}", v["digest"])
    assert [v["aliases"] for v in versions] == [["best"], ["latest"]]
    assert versions[0]["digest"] != versions[1]["digest"]
    table = run_cli("ls", "proj/mnist", check=True).stdout
    assert "v0" in table and "best" in table


def test_files_json_lists_sizes_and_digests(run_cli: Any, src: Path) -> None:
    import blake3

    ref = put(run_cli, src, "proj/mnist")
    listed = run_cli("files", ref, "--json", check=True).json()
    assert [f["path"] for f in listed] == [
        "README",
        "empty.txt",
        "test/data.csv",
        "train/images.bin",
        "train/labels.json",
    ]
    for item in listed:
        data = (src / item["path"]).read_bytes()
        assert item["size"] == len(data)
        assert item["digest"] == blake3.blake3(data).hexdigest()


def test_diff_shows_added_removed_changed(run_cli: Any, src: Path) -> None:
    put(run_cli, src, "proj/mnist")
    (src / "README").write_text("changed\n")
    (src / "test/data.csv").unlink()
    (src / "new.txt").write_text("new\n")
    put(run_cli, src, "proj/mnist")
    result = run_cli("diff", "proj/mnist:v0", "proj/mnist:v1", check=True)
    assert result.stdout.splitlines() == ["+ new.txt", "- test/data.csv", "M README"]
    assert run_cli("diff", "proj/mnist:v0", "proj/mnist:v0", check=True).stdout == ""


def test_alias_set_move_and_remove(run_cli: Any, src: Path) -> None:
    put(run_cli, src, "proj/mnist")
    (src / "README").write_text("v1\n")
    put(run_cli, src, "proj/mnist")

    def aliases() -> list[list[str]]:
        return [v["aliases"] for v in run_cli("ls", "proj/mnist", "--json").json()]

    assert run_cli("alias", "proj/mnist:v0", "best", check=True).last_line == (
        "proj/mnist:best -> v0"
    )
    assert aliases() == [["best"], ["latest"]]
    run_cli("alias", "proj/mnist:v1", "best", check=True)
    assert aliases() == [[], ["latest", "best"]]
    assert run_cli("info", "proj/mnist:best", "--json").json()["version"] == "v1"
    run_cli("alias", "--remove", "proj/mnist", "best", check=True)
    assert aliases() == [[], ["latest"]]


def test_edit_changes_what_may_change(run_cli: Any, src: Path) -> None:
    ref = put(run_cli, src, "proj/mnist", "--tag", "old", "--tag", "keep")
    before = run_cli("info", ref, "--json").json()
    run_cli(
        "edit",
        ref,
        "--description",
        "cleaned",
        "--metadata",
        '{"rows": 5000}',
        "--tag",
        "new",
        "--untag",
        "old",
        "--ttl",
        "2h",
        check=True,
    )
    after = run_cli("info", ref, "--json").json()
    assert after["description"] == "cleaned"
    assert after["metadata"] == {"rows": 5000}
    assert after["tags"] == ["keep", "new"]
    assert after["expires"] is not None
    for key in ("digest", "size", "files", "created", "version"):
        assert after[key] == before[key], key
    run_cli("edit", ref, "--ttl", "none", check=True)
    assert run_cli("info", ref, "--json").json()["expires"] is None


def test_rm_refuses_custom_aliases_unless_forced(run_cli: Any, src: Path, store_state: Any) -> None:
    put(run_cli, src, "proj/mnist", "--alias", "best")
    (src / "README").write_text("v1\n")
    put(run_cli, src, "proj/mnist")
    before = store_state()
    refused = run_cli("rm", "proj/mnist:v0")
    assert refused.returncode != 0
    assert refused.stderr.startswith("artfs: error: ") and "best" in refused.stderr
    assert store_state() == before
    run_cli("rm", "proj/mnist:v0", "--force", check=True)
    assert [v["version"] for v in run_cli("ls", "proj/mnist", "--json").json()] == ["v1"]
    run_cli("rm", "proj/mnist:v1", check=True)  # latest alone does not protect
    assert run_cli("ls", "proj/mnist", "--json").json() == []


def test_rm_all_deletes_the_artifact(run_cli: Any, src: Path) -> None:
    put(run_cli, src, "proj/mnist", "--alias", "best")
    put(run_cli, src, "proj/keep")
    result = run_cli("rm", "proj/mnist", "--all", check=True)
    assert "deleted proj/mnist:v0" in result.stdout
    assert [a["name"] for a in run_cli("ls", "proj", "--json").json()] == ["keep"]
    assert run_cli("ls", "proj/mnist").returncode != 0
    # the name can be used again; version numbers continue
    assert put(run_cli, src, "proj/mnist", "--type", "model") == "proj/mnist:v1"


def packs_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "packs").iterdir())


def test_gc_reclaims_space_and_verify_passes(run_cli: Any, src: Path, home: Path) -> None:
    put(run_cli, src, "proj/mnist")
    (src / "train/images.bin").write_bytes(random.Random(2).randbytes(1_500_000))
    put(run_cli, src, "proj/mnist")
    run_cli("rm", "proj/mnist:v0", check=True)
    before = packs_bytes(home)
    result = run_cli("gc", check=True)
    assert "reclaimed" in result.stdout
    assert before - packs_bytes(home) >= 1_500_000
    verified = run_cli("verify", check=True)
    assert verified.stdout.startswith("ok: 1 version, 5 files")
    dest = home.parent / "dest"
    run_cli("get", "proj/mnist", dest, check=True)
    assert (dest / "train/images.bin").read_bytes() == (src / "train/images.bin").read_bytes()


def test_gc_expires_versions_unless_they_hold_an_alias(run_cli: Any, src: Path) -> None:
    put(run_cli, src, "proj/mnist", "--ttl", "1s")
    (src / "README").write_text("v1\n")
    put(run_cli, src, "proj/mnist", "--ttl", "1s", "--alias", "keep")
    (src / "README").write_text("v2\n")
    put(run_cli, src, "proj/mnist")
    time.sleep(1.2)
    result = run_cli("gc", check=True)
    assert "expired proj/mnist:v0" in result.stdout
    assert "kept proj/mnist:v1" in result.stdout
    versions = run_cli("ls", "proj/mnist", "--json").json()
    assert [v["version"] for v in versions] == ["v1", "v2"]


def corrupt_one_pack_byte(home: Path, run_cli: Any, ref: str, path: str) -> None:
    """Flip a byte inside the stored chunk of ``path`` (located by its digest in the pack)."""
    (pack,) = (home / "packs").iterdir()
    data = bytearray(pack.read_bytes())
    needle = random.Random(3).randbytes(64)
    offset = data.find(needle)
    assert offset > 0, "the incompressible file is stored raw, so its bytes are in the pack"
    data[offset + 10] ^= 0xFF
    pack.write_bytes(bytes(data))


def test_verify_fails_naming_the_broken_file(
    run_cli: Any, tmp_path: Path, make_tree: Any, home: Path
) -> None:
    blob = random.Random(3).randbytes(200_000)
    src = make_tree(tmp_path / "src", {"ok.txt": "fine", "sub/broken.bin": blob})
    put(run_cli, src, "proj/mnist")
    assert run_cli("verify").returncode == 0
    corrupt_one_pack_byte(home, run_cli, "proj/mnist:v0", "sub/broken.bin")
    for args in (("verify",), ("verify", "proj/mnist:v0")):
        result = run_cli(*args)
        assert result.returncode == 1
        assert "sub/broken.bin" in result.stdout
        assert "ok.txt" not in result.stdout
        assert result.stderr.startswith("artfs: error: ")
        assert "Traceback" not in result.stderr
    got = run_cli("get", "proj/mnist", tmp_path / "dest")
    assert got.returncode != 0
    assert got.stderr.count("\n") == 1 and got.stderr.startswith("artfs: error: ")
    assert "sub/broken.bin" in got.stderr
    assert not (tmp_path / "dest/sub/broken.bin").exists()


def test_home_comes_from_artfs_home(tmp_path: Path, src: Path) -> None:
    import subprocess
    import sys

    home = tmp_path / "envhome"
    artfs = Path(sys.executable).parent / "artfs"
    env = {**os.environ, "ARTFS_HOME": str(home)}
    out = subprocess.run(
        [artfs, "put", src, "proj/x"], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1] == "proj/x:v0"
    assert (home / "packs").is_dir()
    listed = subprocess.run(
        [artfs, "ls", "--json"], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(listed.stdout) == ["proj"]


def test_get_again_into_the_same_directory_restores_modes_and_mtimes(
    run_cli: Any, src: Path, tmp_path: Path
) -> None:
    ref = put(run_cli, src, "proj/mnist")
    dest = tmp_path / "dest"
    run_cli("get", ref, dest, check=True)
    os.chmod(dest / "README", 0o600)
    os.utime(dest / "README", ns=(0, 0))
    (dest / "test/data.csv").write_text("tampered")
    run_cli("get", ref, dest, check=True)
    for rel in ("README", "test/data.csv"):
        a, b = (src / rel).stat(), (dest / rel).stat()
        assert (oct(a.st_mode), a.st_mtime_ns) == (oct(b.st_mode), b.st_mtime_ns), rel
        assert (src / rel).read_bytes() == (dest / rel).read_bytes(), rel


def test_text_output_shows_a_path_with_a_newline_or_tab_on_one_line(
    run_cli: Any, tmp_path: Path
) -> None:
    src = tmp_path / "odd"
    src.mkdir()
    (src / "new\nline.txt").write_text("a")
    (src / "tab\there.txt").write_text("b")
    (src / "back\\slash.txt").write_text("c")
    put(run_cli, src, "proj/odd")
    (src / "new\nline.txt").write_text("changed")
    put(run_cli, src, "proj/odd")
    listed = run_cli("files", "proj/odd:v0", check=True).stdout.splitlines()
    assert len(listed) == 4  # a header and one line a file
    assert [line.split()[0] for line in listed[1:]] == [
        "back\\\\slash.txt",
        "new\\nline.txt",
        "tab\\there.txt",
    ]
    diff = run_cli("diff", "proj/odd:v0", "proj/odd:v1", check=True)
    assert diff.stdout == "M new\\nline.txt\n"
    as_json = run_cli("files", "proj/odd:v0", "--json", check=True).json()
    assert sorted(e["path"] for e in as_json) == [
        "back\\slash.txt",
        "new\nline.txt",
        "tab\there.txt",
    ]


def test_names_like_staging_s_own_are_stored_below_the_top(run_cli: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for name in (".artfs-commit", ".artfs-base", ".artfs-notes"):
        (src / "d" / name).write_text(name)
    (src / ".artfs-notes").write_text("top")
    put(run_cli, src, "proj/dots")
    paths = [e["path"] for e in run_cli("files", "proj/dots", "--json", check=True).json()]
    assert sorted(paths) == [".artfs-notes", "d/.artfs-base", "d/.artfs-commit", "d/.artfs-notes"]


def test_shown_path_escapes_what_does_not_print_and_bytes_that_are_not_utf8() -> None:
    assert shown_path("plain/é ü.txt") == "plain/é ü.txt"
    assert shown_path("a\nb\tc\\d\x01e\x7f") == "a\\nb\\tc\\\\d\\x01e\\x7f"
    assert shown_path("csi\x9b[31m") == "csi\\u009b[31m"  # a C1 control, as a terminal reads it
    assert shown_path(os.fsdecode(b"old-\xff-name")) == "old-\\xff-name"


def test_rm_all_after_every_version_went_says_nothing_of_a_staging(
    run_cli: Any, src: Path, home: Path
) -> None:
    put(run_cli, src, "proj/mnist")
    upper = home / "staging" / "proj" / "mnist"
    upper.mkdir(parents=True)
    (upper / "w.bin").write_text("being written")
    run_cli("rm", "proj/mnist:v0", check=True)
    result = run_cli("rm", "proj/mnist", "--all", check=True)
    assert "staging" not in result.stdout
    assert (upper / "w.bin").read_text() == "being written"
