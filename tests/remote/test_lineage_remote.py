"""Shared lineage on a real S3 server: runs and usage edges recorded on one store (machine A)
are seen from another (machine B), through push/clone and through remote-backed stores that
publish as they record (the SDK, ``artfs run``, reads through a mount)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from artfs.errors import CorruptData
from artfs.lineage import Lineage, UsageEvent
from artfs.names import ArtifactName
from artfs.objectstore import MemoryObjectStore
from artfs.remote.lineage_sync import LineageCounts, RemoteLineage
from artfs.store import Store
from artfs.stores import open_store
from tests.helpers import make_tree, random_bytes
from tests.mount.mountutil import Mounts
from tests.remote.faultproxy import Fault, FaultProxy
from tests.remote.remoteutil import artfs_ok, remote_env, run_artfs
from tests.remote.seaweed import S3Server

# A script run as its own process on machine A: a run that uses the data and logs a model.
TRAIN = """
import sys, artfs
with artfs.init(project="team", job_type="train", home=sys.argv[1]) as run:
    run.use_artifact("data:v0")
    model = artfs.Artifact("model", "model")
    with model.new_file("weights.bin", "wb") as f:
        f.write(b"w" * 1000)
    run.log_artifact(model)
    print(run.id)
"""


_artfs = run_artfs


_ok = artfs_ok


def _json(server: S3Server, home: Path, *args: str) -> Any:
    return json.loads(_ok(server, home, *args, "--json"))


def _graph(server: S3Server, home: Path, ref: str) -> dict[str, Any]:
    graph = json.loads(_ok(server, home, "lineage", ref, "--format", "json"))
    assert isinstance(graph, dict)
    return graph


def _remote_backed(server: S3Server, home: Path, url: str) -> None:
    """A store on ``url`` as its default remote (what 'artfs clone' makes)."""
    if not (home / "index").exists() or "origin" not in _ok(server, home, "remote", "ls"):
        _ok(server, home, "remote", "add", "origin", url, "--endpoint", server.endpoint)
    with open_store(home) as store:
        if store.default_remote() is None:
            store.set_default_remote("origin")


def _machine_a(server: S3Server, tmp_path: Path, url: str) -> Path:
    """Machine A: team/data:v0 on the remote, A backed by it."""
    home = tmp_path / "a"
    src = make_tree(tmp_path / "src", {"train.bin": random_bytes(200_000, 3), "test.bin": "t"})
    _ok(server, home, "put", str(src), "team/data")
    _ok(server, home, "remote", "add", "origin", url, "--endpoint", server.endpoint)
    _ok(server, home, "push", "team/data:v0")
    _remote_backed(server, home, url)
    return home


def _train(server: S3Server, home: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, str(home)],
        capture_output=True,
        text=True,
        env=remote_env(server, home),
        timeout=90,
    )
    assert done.returncode == 0, done
    assert "warning" not in done.stderr, done.stderr  # published without a hitch
    return done.stdout.strip()


def test_an_sdk_run_on_a_is_visible_from_b(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    url = s3_env.url(prefix)
    a = _machine_a(s3_env, tmp_path, url)
    b = tmp_path / "b"
    _ok(s3_env, b, "clone", url, "--endpoint", s3_env.endpoint)
    _remote_backed(s3_env, b, url)
    # Recorded on A after B cloned: B reads it from the remote when asked.
    run_id = _train(s3_env, a)
    _ok(s3_env, a, "push", "team/model:v0")  # already there when A's commits publish
    _ok(s3_env, b, "pull", "team/model:v0")
    graph = _graph(s3_env, b, "team/data:v0")
    run_node = f"run:{run_id}"
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[run_node]["job_type"] == "train" and nodes[run_node]["state"] == "finished"
    assert {"from": "version:team/data:v0", "to": run_node, "kind": "used"} in graph["edges"]
    assert {"from": run_node, "to": "version:team/model:v0", "kind": "logged"} in graph["edges"]
    up = json.loads(
        _ok(s3_env, b, "lineage", "team/model:v0", "--direction", "up", "--format", "json")
    )
    assert {"from": "version:team/data:v0", "to": run_node, "kind": "used"} in up["edges"]
    consumers = _json(s3_env, b, "info", "team/data:v0")["consumers"]
    assert [c["run_id"] for c in consumers] == [run_id]
    shown = _json(s3_env, b, "runs", "show", run_id)
    assert shown["state"] == "finished" and shown["inputs"] == ["team/data:v0"]
    assert run_id in [r["id"] for r in _json(s3_env, b, "runs")]


def test_push_all_carries_the_lineage_of_a_local_store(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    url = s3_env.url(prefix)
    a, b = tmp_path / "a", tmp_path / "b"
    src = make_tree(tmp_path / "src", {"x.bin": random_bytes(50_000, 1)})
    _ok(s3_env, a, "put", str(src), "team/data")
    run_id = _train(s3_env, a)  # A is not remote-backed: lineage stays local
    _ok(s3_env, a, "remote", "add", "origin", url, "--endpoint", s3_env.endpoint)
    done = _artfs(s3_env, a, "push", "--all")
    assert done.returncode == 0, done
    assert "lineage: 1 runs, 1 usage edges published" in done.stderr
    _ok(s3_env, b, "clone", url, "--endpoint", s3_env.endpoint)  # brings the lineage along
    with open_store(b) as store:
        store.set_default_remote(None)  # B reads only its index from here on
    consumers = _json(s3_env, b, "info", "team/data:v0")["consumers"]
    assert [(c["run_id"], c["job_type"]) for c in consumers] == [(run_id, "train")]
    assert _json(s3_env, b, "info", "team/model:v0")["logged_by"] == run_id
    again = _artfs(s3_env, a, "push", "--all")  # every record exists: nothing new, no error
    assert again.returncode == 0 and "lineage: 1 runs, 1 usage edges" in again.stderr


@pytest.mark.mount
def test_a_read_through_a_mount_on_a_is_a_consumer_seen_from_b(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    url = s3_env.url(prefix)
    a = _machine_a(s3_env, tmp_path, url)
    b = tmp_path / "b"
    _ok(s3_env, b, "clone", url, "--endpoint", s3_env.endpoint)
    _remote_backed(s3_env, b, url)
    mounts = Mounts(tmp_path)
    try:
        mount = mounts.start(a)
        target = mount.path / "team" / "data" / "v0" / "test.bin"
        done = _artfs(
            s3_env, a, "run", "--project", "team", "--job-type", "eval", "--", "cat", str(target)
        )
        assert done.returncode == 0, done
        assert done.stdout == "t"
        found = re.search(r"run (\w{8}) ", done.stderr)
        assert found is not None, done.stderr
        run_id = found.group(1)
        # The daemon flushes usage every 0.5 s and publishes from a worker thread.
        deadline = time.monotonic() + 30
        consumers: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            consumers = _json(s3_env, b, "info", "team/data:v0")["consumers"]
            if consumers:
                break
            time.sleep(0.3)
        assert [(c["run_id"], c["job_type"], c["files"]) for c in consumers] == [
            (run_id, "eval", 1)
        ]
        assert "cat" in _json(s3_env, b, "runs", "show", run_id)["command"]
    finally:
        mounts.close(show_logs=True)  # pytest shows the logs only when the test failed


@pytest.mark.mount
def test_the_daemon_retries_edges_the_remote_refused(
    s3_env: S3Server, proxied: S3Server, fault_proxy: FaultProxy, prefix: str, tmp_path: Path
) -> None:
    """Machine A reaches the remote through a proxy that refuses every usage upload for a while;
    reads go on, and once the remote takes uploads again the edge arrives without a new read."""
    a = _machine_a(proxied, tmp_path, proxied.url(prefix))
    fault_proxy.add(Fault.status(503, "PUT", r"/usage/"), count=None)
    mounts = Mounts(tmp_path)
    try:
        mount = mounts.start(a)
        target = mount.path / "team" / "data" / "v0" / "test.bin"
        done = _artfs(proxied, a, "run", "--project", "team", "--", "cat", str(target))
        assert done.returncode == 0 and done.stdout == "t", done
        found = re.search(r"run (\w{8}) ", done.stderr)
        assert found is not None, done.stderr
        digest = _json(proxied, a, "info", "team/data:v0")["digest"]
        key = f"usage/team/data/{digest}/{found.group(1)}.json"
        # The client retries a 503 a few times itself; then the daemon logs and retries later.
        failed = "publishing lineage failed (retried at the next flush)"
        _poll(lambda: failed in mount.log_text(), "the daemon never gave up an upload")
        assert s3_env.store(prefix).head(key) is None
        fault_proxy.clear()
        _poll(lambda: s3_env.store(prefix).head(key) is not None, f"{key} never arrived")
    finally:
        mounts.close(show_logs=True)  # pytest shows the logs only when the test failed


def _poll(check: Callable[[], bool], failure: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, failure
        time.sleep(0.2)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_remote_warns_and_shows_local_lineage(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    a = tmp_path / "a"
    src = make_tree(tmp_path / "src", {"x.bin": random_bytes(10_000, 1)})
    _ok(s3_env, a, "put", str(src), "team/data")
    gone = f"http://127.0.0.1:{_closed_port()}"
    _ok(s3_env, a, "remote", "add", "gone", s3_env.url(prefix), "--endpoint", gone)
    with open_store(a) as store:
        store.set_default_remote("gone")
    # A run and a usage recorded against a remote that is gone stay local, with one warning.
    slow = {"ARTFS_REMOTE_TIMEOUT": "3"}
    ran = _artfs(s3_env, a, "run", "--project", "team", "--", "true", **slow)
    assert ran.returncode == 0, ran
    found = re.search(r"run (\w{8}) ", ran.stderr)
    assert found is not None, ran.stderr
    run_id = found.group(1)
    assert "warning: lineage not published" in ran.stderr and "Traceback" not in ran.stderr
    got = _artfs(
        s3_env, a, "get", "team/data:v0", str(tmp_path / "out"), ARTFS_RUN_ID=run_id, **slow
    )
    assert got.returncode == 0, got
    assert "warning: lineage not published" in got.stderr
    done = _artfs(s3_env, a, "lineage", "team/data:v0", "--format", "json", **slow)
    assert done.returncode == 0, done
    graph = json.loads(done.stdout)
    assert {"from": "version:team/data:v0", "to": f"run:{run_id}", "kind": "used"} in graph["edges"]
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "gone" in warnings[0] and "showing local" in warnings[0]
    assert "Traceback" not in done.stderr


# --- merge rules, in process against the in-memory object store ------------------------------


def _two_stores(tmp_path: Path) -> tuple[Store, Store, Any]:
    """Store A with team/data:v0, store B holding the same version (as a pull leaves it)."""
    src = make_tree(tmp_path / "src", {"f.bin": random_bytes(5_000, 4)})
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    record = a.put(src, ArtifactName("team", "data")).record
    b.adopt_version(record, a.entries(record))
    return a, b, record


def test_adopting_twice_counts_once_and_an_ended_run_replaces_a_running_one(
    tmp_path: Path,
) -> None:
    a, b, record = _two_stores(tmp_path)
    try:
        remote = RemoteLineage(MemoryObjectStore())
        on_a = Lineage(a)
        run = on_a.create_run("team", "eval")
        on_a.record_usage([UsageEvent(run.id, record.key, 100.0, files=3)])
        assert remote.push_all(a) == LineageCounts(runs=1, edges=1)
        for _ in range(2):  # the same records again: merged, not added up
            remote.fetch_versions(b, [b.resolve("team/data:v0")])
        [(seen, usage)] = Lineage(b).consumers(b.resolve("team/data:v0"))
        assert (seen.id, seen.state, usage.files, usage.first) == (run.id, "running", 3, 100.0)
        on_a.finish_run(run.id, exit_code=2)
        remote.push_all(a)  # the running record on the remote is replaced by the ended one
        remote.fetch_runs(b, [run.id])
        ended = Lineage(b).run(run.id)
        assert (ended.state, ended.exit_code) == ("failed", 2)
    finally:
        a.close()
        b.close()


def test_a_damaged_remote_record_is_one_clear_error(tmp_path: Path) -> None:
    a, b, record = _two_stores(tmp_path)
    try:
        objects = MemoryObjectStore()
        objects.put(f"usage/team/data/{record.digest}/abcd1234.json", b"{not json")
        with pytest.raises(CorruptData, match=r"usage record usage/team/data/.* cannot be read"):
            RemoteLineage(objects).fetch_versions(b, [b.resolve("team/data:v0")])
        assert Lineage(b).consumers(b.resolve("team/data:v0")) == []
    finally:
        a.close()
        b.close()
