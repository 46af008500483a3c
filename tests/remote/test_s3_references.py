"""s3:// references against a real S3 server: size and ETag recorded, content fetched on read
(SDK download, ``artfs get``, a mount) and refused once the object changed or is gone."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import artfs
from artfs import Artifact, InputError, ReferenceChanged, ReferenceMissing
from artfs.objectstore import S3ObjectStore
from tests.helpers import random_bytes, read_tree
from tests.mount.mountutil import Mounts
from tests.remote.remoteutil import run_artfs
from tests.remote.seaweed import S3Server


@pytest.fixture
def bucket(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, reachable through the environment as any AWS client finds it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env.endpoint)
    return s3_env


@pytest.fixture
def objects(bucket: S3Server, prefix: str) -> S3ObjectStore:
    """This test's own key prefix of the bucket, holding ``data/`` with three objects."""
    store = bucket.store(prefix)
    store.put("data/train.bin", random_bytes(300_000, seed=1))
    store.put("data/test.bin", random_bytes(2_000, seed=2))
    store.put("data/sub/labels.csv", b"a,b\n1,2\n")
    return store


@pytest.fixture
def run(home: Path) -> Iterator[artfs.Run]:
    with artfs.init(project="proj", job_type="test", home=home) as started:
        yield started


def _uri(bucket: S3Server, prefix: str, key: str) -> str:
    return f"s3://{bucket.bucket}/{prefix}/{key}"


def test_an_object_is_recorded_with_size_and_etag_and_read_back(
    bucket: S3Server, objects: S3ObjectStore, prefix: str, run: artfs.Run, tmp_path: Path
) -> None:
    art = Artifact("weights", "model")
    [entry] = art.add_reference(_uri(bucket, prefix, "data/train.bin"))
    info = objects.head("data/train.bin")
    assert info is not None
    assert entry.path == "train.bin" and entry.size == 300_000
    assert entry.ref == f"{_uri(bucket, prefix, 'data/train.bin')}#etag={info.etag.strip(chr(34))}"
    assert len(entry.digest) == 64  # checksum=True: the content was hashed (BLAKE3)
    logged = run.log_artifact(art)
    root = Path(logged.download(tmp_path / "out"))
    assert (root / "train.bin").read_bytes() == random_bytes(300_000, seed=1)
    logged.verify(root)


def test_a_prefix_expands_to_every_object_below_it(
    bucket: S3Server, objects: S3ObjectStore, prefix: str, run: artfs.Run, tmp_path: Path
) -> None:
    art = Artifact("data", "dataset")
    art.add_reference(_uri(bucket, prefix, "data"), name="raw", checksum=False)
    assert sorted(art.manifest) == ["raw/sub/labels.csv", "raw/test.bin", "raw/train.bin"]
    assert all(e.digest == "" for e in art.files())  # checksum=False: size and ETag only
    assert art.manifest["raw/test.bin"].size == 2_000
    logged = run.log_artifact(art)
    got = read_tree(Path(logged.download(tmp_path / "out")))
    assert got["raw/sub/labels.csv"] == b"a,b\n1,2\n"
    assert got["raw/train.bin"] == random_bytes(300_000, seed=1)
    with pytest.raises(InputError, match="more than max_objects=2 objects"):
        Artifact("d2", "dataset").add_reference(_uri(bucket, prefix, "data/"), max_objects=2)
    with pytest.raises(InputError, match="no object and no prefix"):
        Artifact("d3", "dataset").add_reference(_uri(bucket, prefix, "nothing-here"))


@pytest.mark.parametrize("checksum", [True, False])
def test_a_changed_object_is_refused_and_a_deleted_one_is_missing(
    bucket: S3Server,
    objects: S3ObjectStore,
    prefix: str,
    run: artfs.Run,
    tmp_path: Path,
    checksum: bool,
) -> None:
    art = Artifact("refs", "dataset")
    art.add_reference(_uri(bucket, prefix, "data/test.bin"), checksum=checksum)
    art.add_reference(_uri(bucket, prefix, "data/sub/labels.csv"), checksum=checksum)
    logged = run.log_artifact(art)
    # Same size, other bytes: only the ETag tells (checksum=False hashes nothing).
    objects.put("data/test.bin", random_bytes(2_000, seed=99))
    with pytest.raises(ReferenceChanged, match=r"test\.bin: the object changed"):
        logged.download(tmp_path / "a")
    assert not (tmp_path / "a" / "test.bin").exists()  # nothing wrong was written
    objects.delete("data/sub/labels.csv")
    with pytest.raises(ReferenceMissing, match=r"labels\.csv: the referenced object is gone"):
        logged.get_entry("labels.csv").download(tmp_path / "b")


def _artfs(server: S3Server, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_artfs(server, home, *args, AWS_ENDPOINT_URL=server.endpoint)


def test_artfs_put_of_a_prefix_stores_references_and_get_verifies_them(
    bucket: S3Server, objects: S3ObjectStore, prefix: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    uri = _uri(bucket, prefix, "data")
    done = _artfs(bucket, home, "put", uri, "proj/raw")
    assert done.returncode == 0, done
    assert done.stdout.strip() == "proj/raw:v0"
    listed = _artfs(bucket, home, "files", "proj/raw", "--json")
    assert sorted(f["path"] for f in _json(listed)) == ["sub/labels.csv", "test.bin", "train.bin"]
    again = _artfs(bucket, home, "put", uri, "proj/raw")  # same objects, same ETags
    assert again.returncode == 0 and again.stdout.strip() == "proj/raw:v0", again
    got = _artfs(bucket, home, "get", "proj/raw:v0", str(tmp_path / "out"))
    assert got.returncode == 0, got
    assert (tmp_path / "out" / "train.bin").read_bytes() == random_bytes(300_000, seed=1)
    objects.put("data/train.bin", b"replaced")
    broken = _artfs(bucket, home, "get", "proj/raw:v0", str(tmp_path / "out2"))
    assert broken.returncode != 0
    [line] = broken.stderr.strip().splitlines()
    assert line.startswith("artfs: error: ") and "train.bin: the object changed" in line
    assert "#etag" not in line
    missing = _artfs(bucket, home, "put", _uri(bucket, prefix, "none"), "proj/other")
    assert missing.returncode != 0 and "no object and no prefix" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert _artfs(bucket, home, "ls", "proj/other").returncode != 0  # nothing was stored


def _json(done: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    import json

    assert done.returncode == 0, done
    value = json.loads(done.stdout)
    assert isinstance(value, list)
    return value


@pytest.mark.mount
def test_a_mount_reads_s3_references_and_refuses_changed_ones(
    bucket: S3Server, objects: S3ObjectStore, prefix: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    done = _artfs(bucket, home, "put", "--no-checksum", _uri(bucket, prefix, "data"), "proj/raw")
    assert done.returncode == 0, done
    mounts = Mounts(tmp_path)
    try:
        mount = mounts.start(home)  # the daemon inherits AWS_ENDPOINT_URL and the credentials
        version = mount.path / "proj" / "raw" / "v0"
        assert (version / "train.bin").read_bytes() == random_bytes(300_000, seed=1)
        objects.put("data/test.bin", random_bytes(2_000, seed=7))
        with pytest.raises(OSError):
            (version / "test.bin").read_bytes()
        # What was fetched and verified before the change stays readable (a local copy).
        assert (version / "train.bin").read_bytes() == random_bytes(300_000, seed=1)
    finally:
        mounts.close(show_logs=False)
