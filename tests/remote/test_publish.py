"""Remote-backed stores: put, commit and alias publish on the default remote (SeaweedFS).

Every check is what a user on another machine would see: a second store cloned from the same
remote lists the version at the same number and gets the same bytes back.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import artfs
from artfs.errors import Conflict, TypeMismatch
from artfs.names import ArtifactName
from artfs.remote import layout
from artfs.remote.remote import Remote
from artfs.stores import open_store
from tests.helpers import ARTFS, make_tree, random_bytes, read_tree, store_state, text_bytes
from tests.mount.mountutil import Mounts, eventually
from tests.remote.faultproxy import Fault, FaultProxy
from tests.remote.remoteutil import artfs_ok, remote_env, run_artfs
from tests.remote.seaweed import S3Server

ART = ArtifactName("team", "data")


_artfs = run_artfs


_ok = artfs_ok


def _backed(server: S3Server, prefix: str, home: Path) -> Path:
    """A new remote-backed store at ``home``: an empty store with a default remote."""
    url = server.url(prefix)
    out = _ok(
        server, home, "remote", "add", "origin", url, "--endpoint", server.endpoint, "--default"
    )
    assert "(default)" in out
    return home


def _clone(server: S3Server, prefix: str, home: Path) -> Path:
    out = _ok(server, home, "clone", server.url(prefix), "--endpoint", server.endpoint)
    assert "default remote" in out
    return home


def _remote(server: S3Server, prefix: str, tmp_path: Path) -> Remote:
    return Remote(server.store(prefix, writer_id="reader"), "reader", tmp_path / "reader-cache")


def _tree(root: Path, seed: int) -> Path:
    return make_tree(
        root,
        {
            "train.csv": text_bytes(200_000, seed),
            "weights.bin": random_bytes(1_500_000, seed),
            "sub/label.json": f'{{"seed": {seed}}}',
        },
    )


def _ls(server: S3Server, home: Path, art: ArtifactName = ART) -> dict[int, dict[str, object]]:
    rows = json.loads(_ok(server, home, "ls", str(art), "--json"))
    return {int(row["version"].removeprefix("v")): row for row in rows}


def _unchanged_by(server: S3Server, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command that must fail and leave the store as it was: every file byte-identical
    (compared right around the command: ``artfs ls`` itself refreshes the index from the
    remote) and the same listing."""
    listed = store_state(home)
    files = _files_state(home)
    done = _artfs(server, home, *args)
    assert done.returncode != 0, done
    assert _files_state(home) == files
    after = store_state(home)
    assert (after["ls"], after["packs"]) == (listed["ls"], listed["packs"])
    return done


def _files_state(home: Path) -> dict[str, str]:
    """Every file of the store with a hash of its bytes, lock files aside, and the copies of
    the remote's pack indexes under ``remotes/`` (a cache of immutable remote objects)."""
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
        and p.name not in ("lock.mdb", "store.lock", "gc.gate")
        and p.relative_to(home).parts[0] != "remotes"
    }


def test_put_lands_on_the_remote_and_other_stores_see_it(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    a = _backed(s3_env, prefix, tmp_path / "a")
    src = _tree(tmp_path / "src", 1)
    assert _ok(s3_env, a, "put", str(src), str(ART), "--description", "first").strip() == (
        "team/data:v0"
    )
    b = _clone(s3_env, prefix, tmp_path / "b")
    (src / "extra.txt").write_text("from b")
    # b holds no chunk (a clone): it stores them all, but uploads only the one the remote lacks
    # (6 bytes, stored raw) and the tree pages it lacks (one tree pack: its pages and record
    # headers, in the local pack format)
    before = {o.key for o in s3_env.store(prefix).list("packs/")}
    put_b = _artfs(s3_env, b, "put", str(src), str(ART))
    assert put_b.returncode == 0 and put_b.stdout.strip() == "team/data:v1", put_b
    new = [o for o in s3_env.store(prefix).list("packs/") if o.key not in before]
    sent = sum(o.size for o in new if o.key.endswith(".pack"))
    found = re.search(r"(\d+) B uploaded to remote origin", put_b.stderr)
    assert len(new) == 4 and found is not None and 6 < int(found[1]) < sent, put_b.stderr
    # a has not seen v1: its next commit still gets the remote's next number
    (src / "extra.txt").write_text("from a")
    assert _ok(s3_env, a, "put", str(src), str(ART)).strip() == "team/data:v2"

    remote = _remote(s3_env, prefix, tmp_path)
    assert remote.version_numbers(ART) == [0, 1, 2]
    listed_a, listed_b = _ls(s3_env, a), _ls(s3_env, b)
    assert 2 in listed_a and 1 in listed_b
    for number, listed in [(0, listed_a), (2, listed_a), (0, listed_b), (1, listed_b)]:
        assert listed[number]["digest"] == remote.read_version(ART, number).record.digest
    assert remote.read_version(ART, 0).record.description == "first"

    c = _clone(s3_env, prefix, tmp_path / "c")
    assert sorted(_ls(s3_env, c)) == [0, 1, 2]
    for number, extra in [(1, b"from b"), (2, b"from a")]:
        _ok(s3_env, c, "pull", f"{ART}:v{number}")
        out = tmp_path / f"out{number}"
        _ok(s3_env, c, "get", f"{ART}:v{number}", str(out))
        assert read_tree(out) == read_tree(src) | {"extra.txt": extra}
    assert "ok:" in _ok(s3_env, c, "verify")


_WRITER = """
import sys
from pathlib import Path
from artfs.names import ArtifactName
from artfs.stores import open_store

home, writer, each = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with open_store(home) as store:
    for k in range(each):
        src = Path(sys.argv[4]) / f"{writer}-{k}"
        src.mkdir(parents=True)
        (src / "data.bin").write_bytes(f"{writer} {k} ".encode() * 5000)
        record = store.put(src, ArtifactName("team", "shared")).record
        print(record.number, flush=True)
"""


def test_concurrent_commits_from_two_stores_get_distinct_contiguous_numbers(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    homes = [_backed(s3_env, prefix, tmp_path / "h0"), _clone(s3_env, prefix, tmp_path / "h1")]
    per_home, each = 2, 3
    procs = [
        (
            home,
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, str(home), f"w{i}-{j}", str(each), str(tmp_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=remote_env(s3_env, home),
            ),
        )
        for i, home in enumerate(homes)
        for j in range(per_home)
    ]
    mine: dict[Path, list[int]] = {home: [] for home in homes}
    try:
        for home, proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            mine[home] += [int(line) for line in out.split()]
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    total = len(homes) * per_home * each
    assert sorted(mine[homes[0]] + mine[homes[1]]) == list(range(total))
    shared = ArtifactName("team", "shared")
    remote = _remote(s3_env, prefix, tmp_path)
    assert remote.version_numbers(shared) == list(range(total))
    digests = {n: remote.read_version(shared, n).record.digest for n in range(total)}
    assert len(set(digests.values())) == total  # none overwritten, none lost
    for home in homes:  # each store holds its own commits at their remote numbers
        listed = _ls(s3_env, home, shared)
        for number in mine[home]:
            assert listed[number]["digest"] == digests[number]


def test_identical_content_is_no_new_version(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    a = _backed(s3_env, prefix, tmp_path / "a")
    b = _clone(s3_env, prefix, tmp_path / "b")  # cloned while the remote is empty
    src = _tree(tmp_path / "src", 2)
    _ok(s3_env, a, "put", str(src), str(ART))
    again = _artfs(s3_env, a, "put", str(src), str(ART))
    assert again.returncode == 0 and again.stdout.strip() == "team/data:v0"
    assert "unchanged" in again.stderr
    # b never saw v0: the same content there is reported as v0 and adopted, not published
    elsewhere = _artfs(s3_env, b, "put", str(src), str(ART))
    assert elsewhere.returncode == 0 and elsewhere.stdout.strip() == "team/data:v0"
    assert "unchanged" in elsewhere.stderr
    assert _remote(s3_env, prefix, tmp_path).version_numbers(ART) == [0]
    assert sorted(_ls(s3_env, b)) == [0]
    out = tmp_path / "out"
    _ok(s3_env, b, "get", f"{ART}:v0", str(out))
    assert read_tree(out) == read_tree(src)


def test_aliases_move_on_the_remote(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    a = _backed(s3_env, prefix, tmp_path / "a")
    src = _tree(tmp_path / "src", 3)
    _ok(s3_env, a, "put", str(src), str(ART), "--alias", "prod", "--alias", "best")
    remote = _remote(s3_env, prefix, tmp_path)
    assert {k: v[0] for k, v in remote.aliases(ART).items()} == {"prod": 0, "best": 0}
    (src / "more.txt").write_text("v1")
    _ok(s3_env, a, "put", str(src), str(ART))
    assert _ok(s3_env, a, "alias", f"{ART}:v1", "prod").strip() == "team/data:prod -> v1"
    assert {k: v[0] for k, v in remote.aliases(ART).items()} == {"prod": 1, "best": 0}
    _ok(s3_env, a, "alias", str(ART), "best", "--remove")
    assert {k: v[0] for k, v in remote.aliases(ART).items()} == {"prod": 1}
    b = _clone(s3_env, prefix, tmp_path / "b")
    assert "prod" in _ls(s3_env, b)[1]["aliases"]
    assert "best" not in _ls(s3_env, b)[0]["aliases"]
    # an edit would change a published record: refused, nothing changed
    done = _unchanged_by(s3_env, a, "edit", f"{ART}:v1", "--description", "new")
    assert done.returncode == 1 and "never changes" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_alias_removed_on_the_remote_is_removed_on_other_machines(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    a = _backed(s3_env, prefix, tmp_path / "a")
    src = _tree(tmp_path / "src", 4)
    _ok(s3_env, a, "put", str(src), str(ART), "--alias", "prod", "--alias", "best")
    b = _clone(s3_env, prefix, tmp_path / "b")
    assert {"prod", "best"} <= set(_ls(s3_env, b)[0]["aliases"])
    _ok(s3_env, a, "alias", str(ART), "best", "--remove")
    aliases = _ls(s3_env, b)[0]["aliases"]  # ls refreshes b from the remote
    assert "prod" in aliases and "best" not in aliases
    done = _artfs(s3_env, b, "get", f"{ART}:best", str(tmp_path / "out"))
    assert done.returncode != 0 and "no alias 'best'" in done.stderr


def test_type_mismatch_with_the_remote_is_refused(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    a = _backed(s3_env, prefix, tmp_path / "a")
    b = _clone(s3_env, prefix, tmp_path / "b")  # knows nothing of team/data yet
    src = _tree(tmp_path / "src", 4)
    _ok(s3_env, a, "put", str(src), str(ART), "--type", "model")
    (src / "other.txt").write_text("other")
    _ok(s3_env, b, "put", str(tmp_path / "src" / "other.txt"), "team/else")
    done = _unchanged_by(s3_env, b, "put", str(src), str(ART), "--type", "dataset")
    assert done.returncode == 1, done
    assert "type 'model'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert _remote(s3_env, prefix, tmp_path).version_numbers(ART) == [0]


def _dead_endpoint() -> str:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_an_unreachable_remote_is_one_line_and_commits_nothing(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    home = _backed(s3_env, prefix, tmp_path / "h")
    src = _tree(tmp_path / "src", 5)
    _ok(s3_env, home, "put", str(src), str(ART), "--alias", "prod")
    dead = _dead_endpoint()
    _ok(s3_env, home, "remote", "add", "dead", s3_env.url(prefix), "--endpoint", dead)
    # The remote goes away: set the default directly (the CLI would check the versions there).
    with open_store(home) as store:
        store.set_default_remote("dead")
    listing = json.loads(_ok(s3_env, home, "remote", "ls", "--json"))
    assert [r["name"] for r in listing if r["default"]] == ["dead"]
    (src / "new.txt").write_text("never stored")
    for args in (
        ("put", str(src), str(ART)),
        ("alias", f"{ART}:v0", "best"),
        ("alias", str(ART), "prod", "--remove"),
    ):
        done = _unchanged_by(s3_env, home, *args)
        assert done.returncode == 1, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "remote dead" in lines[0] and dead in lines[0], lines
        assert "Traceback" not in done.stderr
    # unsetting the default makes the store local again
    _ok(s3_env, home, "remote", "default", "--unset")
    assert _ok(s3_env, home, "put", str(src), str(ART)).strip() == "team/data:v1"


def test_default_remote_is_refused_while_local_versions_are_not_there(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    src = _tree(tmp_path / "src", 6)
    _ok(s3_env, home, "put", str(src), str(ART))
    url, endpoint = s3_env.url(prefix), s3_env.endpoint
    before = _files_state(home)
    done = _artfs(s3_env, home, "remote", "add", "origin", url, "--endpoint", endpoint, "--default")
    assert done.returncode == 1 and "artfs push --all" in done.stderr, done
    assert _files_state(home) == before  # not even the remote was recorded
    _ok(s3_env, home, "remote", "add", "origin", url, "--endpoint", endpoint)
    done = _artfs(s3_env, home, "remote", "default", "origin")
    assert done.returncode == 1 and "team/data:v0 is not on remote origin" in done.stderr
    _ok(s3_env, home, "push", "--all")
    assert "default remote: origin" in _ok(s3_env, home, "remote", "default", "origin")
    (src / "next.txt").write_text("next")
    assert _ok(s3_env, home, "put", str(src), str(ART)).strip() == "team/data:v1"
    assert _remote(s3_env, prefix, tmp_path).version_numbers(ART) == [0, 1]


def test_clone_into_a_store_with_other_versions_is_refused_and_changes_nothing(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    a = _backed(s3_env, prefix, tmp_path / "a")
    _ok(s3_env, a, "put", str(_tree(tmp_path / "src", 7)), str(ART), "--alias", "prod")
    home = tmp_path / "h"
    _ok(s3_env, home, "put", str(_tree(tmp_path / "mine", 8)), str(ART))  # other content at v0
    url, endpoint = s3_env.url(prefix), s3_env.endpoint
    done = _unchanged_by(s3_env, home, "clone", url, "--endpoint", endpoint)
    assert done.returncode == 1 and "team/data:v0" in done.stderr, done
    assert len(done.stderr.strip().splitlines()) == 1
    assert "origin" not in _ok(s3_env, home, "remote", "ls")  # not even the remote was added


def test_clone_skips_an_unreadable_record_and_clones_the_rest(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    a = _backed(s3_env, prefix, tmp_path / "a")
    other = ArtifactName("team", "other")
    _ok(s3_env, a, "put", str(_tree(tmp_path / "src", 10)), str(ART))
    _ok(s3_env, a, "put", str(_tree(tmp_path / "src", 11)), str(other))
    future = json.dumps({"format": "artfs-version/2"}).encode()  # a newer artfs wrote it
    s3_env.store(prefix, writer_id="future").put(layout.version_key(ART, 1), future)
    url, endpoint = s3_env.url(prefix), s3_env.endpoint
    done = _artfs(s3_env, tmp_path / "b", "clone", url, "--endpoint", endpoint)
    assert done.returncode == 0 and "cloned 2 versions" in done.stdout, done
    assert "warning: not adopted: team/data:v1: " in done.stderr
    assert sorted(_ls(s3_env, tmp_path / "b")) == [0]
    assert sorted(_ls(s3_env, tmp_path / "b", other)) == [0]


def test_clone_of_the_default_remote_is_a_refresh(
    proxied: S3Server, fault_proxy: FaultProxy, prefix: str, tmp_path: Path
) -> None:
    a = _clone(proxied, prefix, tmp_path / "a")
    src = _tree(tmp_path / "src", 9)
    _ok(proxied, a, "put", str(src), str(ART))
    b = _clone(proxied, prefix, tmp_path / "b")
    (src / "more.txt").write_text("from b")
    _ok(proxied, b, "put", str(src), str(ART))
    start = len(fault_proxy.log)
    # the node recipe runs this at every start: no check of every local version on the remote
    out = _ok(proxied, a, "clone", proxied.url(prefix), "--endpoint", proxied.endpoint)
    assert out.startswith("cloned 1 versions")
    assert not [seen.path for seen in fault_proxy.log[start:] if "/digests/" in seen.path]
    assert sorted(_ls(proxied, a)) == [0, 1]


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    made = Mounts(tmp_path)
    try:
        yield made
    finally:
        made.close(show_logs=True)


@pytest.mark.mount
def test_staging_commit_through_a_mount_publishes(
    s3_env: S3Server, prefix: str, tmp_path: Path, mounts: Mounts
) -> None:
    home = _backed(s3_env, prefix, tmp_path / "h")
    src = _tree(tmp_path / "src", 7)
    _ok(s3_env, home, "put", str(src), str(ART))
    mount = mounts.start(home)
    staging = mount.path / "team" / "data" / "staging"
    (staging / "notes.txt").write_bytes(b"written through the mount\n")
    with open(staging / ".artfs-commit", "w") as control:
        control.write('{"aliases": ["fresh"]}\n')
    result = json.loads((staging / ".artfs-commit").read_text())
    assert result == {"ref": "team/data:v1", "created": True}
    remote = _remote(s3_env, prefix, tmp_path)
    assert remote.version_numbers(ART) == [0, 1]
    assert remote.aliases(ART)["fresh"][0] == 1
    eventually(lambda: (mount.path / "team" / "data" / "v1" / "notes.txt").exists(), 10)
    other = _clone(s3_env, prefix, tmp_path / "other")
    _ok(s3_env, other, "pull", f"{ART}:fresh")
    out = tmp_path / "out"
    _ok(s3_env, other, "get", f"{ART}:v1", str(out))
    assert read_tree(out) == {"notes.txt": b"written through the mount\n"}


def test_sdk_log_artifact_publishes(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    a = _backed(s3_env, prefix, tmp_path / "a")
    b = _clone(s3_env, prefix, tmp_path / "b")
    weights = tmp_path / "model.pt"
    weights.write_bytes(random_bytes(300_000, 8))
    with artfs.init(project="team", job_type="train", home=a) as run:
        model = artfs.Artifact("data", type="model", description="logged by the SDK")
        model.add_file(str(weights))
        run.log_artifact(model, aliases=["best"])
    remote = _remote(s3_env, prefix, tmp_path)
    assert remote.version_numbers(ART) == [0]
    assert remote.read_version(ART, 0).record.description == "logged by the SDK"
    assert remote.aliases(ART)["best"][0] == 0
    # b has not seen team/data: the type fixed on the remote is still enforced
    with artfs.init(project="team", job_type="train", home=b) as run:
        other = artfs.Artifact("data", type="dataset")
        other.add_file(str(weights))
        with pytest.raises(TypeMismatch, match="type 'model'"):
            run.log_artifact(other)
    assert remote.version_numbers(ART) == [0]
    # save(): aliases move on the remote; a changed description is refused before any move
    logged = artfs.Api(home=a).artifact(f"{ART}:v0")
    logged.aliases.append("prod")
    logged.save()
    assert {k: v[0] for k, v in remote.aliases(ART).items()} == {"best": 0, "prod": 0}
    logged.aliases.append("candidate")
    logged.description = "changed"
    with pytest.raises(Conflict, match="never changes"):
        logged.save()
    assert set(remote.aliases(ART)) == {"best", "prod"}
    assert remote.read_version(ART, 0).record.description == "logged by the SDK"


def test_a_remote_refusing_the_record_commits_nothing(
    s3_env: S3Server, proxied: S3Server, fault_proxy: FaultProxy, prefix: str, tmp_path: Path
) -> None:
    home = _backed(proxied, prefix, tmp_path / "h")
    src = _tree(tmp_path / "src", 9)
    _ok(proxied, home, "put", str(src), str(ART))
    (src / "new.txt").write_text("refused")
    fault_proxy.add(Fault.status(503, "PUT", r"/versions/"), count=None)
    done = _unchanged_by(proxied, home, "put", str(src), str(ART))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "remote origin" in lines[0], lines
    assert _remote(s3_env, prefix, tmp_path).version_numbers(ART) == [0]
    fault_proxy.clear()
    assert _ok(proxied, home, "put", str(src), str(ART)).strip() == "team/data:v1"


def test_a_commit_cut_off_after_its_record_is_found_again(
    s3_env: S3Server, proxied: S3Server, fault_proxy: FaultProxy, prefix: str, tmp_path: Path
) -> None:
    """The record is created, then its digest marker cannot be written: the commit fails, the
    version is on the remote only, and committing the same content again reports it (and adds
    it here) instead of publishing it twice. A lost answer to the record's create is retried
    and recognised as ours: one version."""
    home = _backed(proxied, prefix, tmp_path / "h")
    src = _tree(tmp_path / "src", 10)
    fault_proxy.add(Fault.status(503, "PUT", r"/digests/"), count=None)
    done = _artfs(proxied, home, "put", str(src), str(ART))
    assert done.returncode == 1 and "run the commit again" in done.stderr, done
    remote = _remote(s3_env, prefix, tmp_path)
    assert remote.version_numbers(ART) == [0]
    fault_proxy.clear()
    again = _artfs(proxied, home, "put", str(src), str(ART), "--alias", "prod")
    assert again.returncode == 0 and again.stdout.strip() == "team/data:v0", again
    assert remote.version_numbers(ART) == [0] and remote.aliases(ART)["prod"][0] == 0
    out = tmp_path / "out"
    _ok(proxied, home, "get", f"{ART}:prod", str(out))
    assert read_tree(out) == read_tree(src)

    (src / "next.txt").write_text("next")
    fault_proxy.add(Fault.drop_response("PUT", r"/versions/"), count=1)
    assert _ok(proxied, home, "put", str(src), str(ART)).strip() == "team/data:v1"
    assert remote.version_numbers(ART) == [0, 1]
    assert any(seen.action == "drop_response" for seen in fault_proxy.log)


def test_a_local_store_never_loads_the_object_store_client(tmp_path: Path) -> None:
    code = """
import sys
from pathlib import Path
from artfs.names import ArtifactName, Ref
from artfs.stores import open_store

src = Path(sys.argv[1]) / "src"
src.mkdir()
(src / "a.txt").write_text("local")
with open_store(Path(sys.argv[1]) / "home") as store:
    store.put(src, ArtifactName("team", "data"), aliases=["prod"])
    store.set_alias(Ref.parse("team/data:v0"), "best")
    store.remove_alias(ArtifactName("team", "data"), "prod")
print("obstore" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_local_index_of_a_remote_backed_store_can_be_thrown_away_and_rebuilt(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    """The remote is the truth: deleting a remote-backed store's index loses nothing, a clone
    into the same home brings every version, alias and run back (chunks are fetched again, or
    found in the chunk cache, which is kept)."""
    home = tmp_path / "home"
    url = s3_env.url(prefix)
    assert (
        run_artfs(
            s3_env, home, "remote", "add", "origin", url, "--endpoint", s3_env.endpoint, "--default"
        ).returncode
        == 0
    )
    first = {"a.txt": text_bytes(5000, 1), "w/b.bin": random_bytes(3 << 20, 2)}
    second = first | {"c.txt": text_bytes(300, 3)}
    for n, files in enumerate((first, second)):
        src = make_tree(tmp_path / f"src{n}", files)
        done = run_artfs(
            s3_env,
            home,
            "run",
            "--",
            str(ARTFS),
            "--home",
            str(home),
            "put",
            str(src),
            "team/data",
            "--alias",
            "prod",
        )
        assert done.returncode == 0, done.stderr
    before = json.loads(run_artfs(s3_env, home, "ls", "team/data", "--json").stdout)

    shutil.rmtree(home / "index")
    done = run_artfs(s3_env, home, "clone", url, "--endpoint", s3_env.endpoint)
    assert done.returncode == 0, done.stderr

    assert json.loads(run_artfs(s3_env, home, "ls", "team/data", "--json").stdout) == before
    for version, files in (("v0", first), ("prod", second)):
        out = tmp_path / f"out-{version}"
        done = run_artfs(s3_env, home, "get", f"team/data:{version}", str(out))
        assert done.returncode == 0, done.stderr
        assert {p: d for p, d in read_tree(out).items() if d is not None} == files
    runs = json.loads(run_artfs(s3_env, home, "runs", "--json").stdout)
    assert len(runs) == 2
