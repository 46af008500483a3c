"""push, pull, clone and aliases through a real S3 server (SeaweedFS on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from artfs.errors import CorruptData
from artfs.names import ArtifactName, Ref
from artfs.remote import layout
from artfs.remote.remote import Remote
from artfs.remote.sync import clone, pull, push
from artfs.store import Store
from artfs.store.hashing import BLOCK_DIGEST_SIZE, BLOCK_SIZE, BLOCKS_FROM
from artfs.store.verify import verify
from artfs.stores import open_store
from tests.helpers import make_tree, random_bytes, read_tree, text_bytes
from tests.remote.remoteutil import pack_keys, remote_env
from tests.remote.seaweed import S3Server

ART = ArtifactName("team", "data")


def _remote(server: S3Server, prefix: str, home: Path, name: str = "w") -> Remote:
    objects = server.store(prefix, writer_id=name)
    return Remote(objects, name, home / "remote-cache")


def _tree(root: Path, seed: int) -> Path:
    return make_tree(
        root,
        {
            "train.csv": text_bytes(300_000, seed),
            "weights.bin": random_bytes(2_500_000, seed),
            "sub/empty": None,
            "sub/label.json": f'{{"seed": {seed}}}',
        },
    )


def _export(store: Store, ref: str, out: Path) -> dict[str, bytes | None]:
    record = store.resolve(ref)
    for entry in store.files(record):
        path = out / entry.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(store.iter_file(entry)))
    return read_tree(out)


def test_push_then_pull_into_another_store(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", 1)
    with open_store(tmp_path / "a") as a, open_store(tmp_path / "b") as b:
        first = a.put(src, ART, aliases=["best"]).record
        (src / "extra.txt").write_text("more")
        a.put(src, ART)
        remote = _remote(s3_env, prefix, tmp_path / "a")
        pushed = [push(a, remote, Ref(ART, v)) for v in ("v0", "v1")]
        assert [(p.number, p.created) for p in pushed] == [(0, True), (1, True)]
        assert pushed[1].chunks_uploaded == 1  # only extra.txt's chunk is new
        assert push(a, remote, Ref(ART, "v1")).created is False  # same content: nothing new

        other = _remote(s3_env, prefix, tmp_path / "b")
        got = pull(b, other, Ref.parse("team/data:best"))
        assert got.created and got.record.number == 0 and "best" in got.record.aliases
        assert got.record.digest == first.digest and got.bytes_fetched > 0
        pull(b, other, Ref.parse("team/data"))
        for version in ("v0", "v1"):
            theirs = _export(a, f"team/data:{version}", tmp_path / f"ea{version}")
            ours = _export(b, f"team/data:{version}", tmp_path / f"eb{version}")
            assert theirs == ours
        assert verify(b, b.versions(ART)) == []
        assert pull(b, other, Ref.parse("team/data:v1")).chunks_fetched == 0


def test_a_pulled_version_has_the_block_digests_of_its_large_raw_chunks(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    """The mount reads a large raw file at random in verified blocks only where the index
    holds the chunks' block digests: a pulled version gets them as a version put here does."""
    src = _tree(tmp_path / "src", 4)
    with open_store(tmp_path / "a") as a, open_store(tmp_path / "b") as b:
        a.put(src, ART)
        push(a, _remote(s3_env, prefix, tmp_path / "a"), Ref(ART, "v0"))
        pull(b, _remote(s3_env, prefix, tmp_path / "b"), Ref(ART, "v0"))
        for store in (a, b):
            files = {e.path: e for e in store.files(store.resolve("team/data:v0"))}
            # 2.5 MB of random bytes: raw chunks, those large enough to be read in blocks
            large = [r for r in files["weights.bin"].chunks if r.length >= BLOCKS_FROM]
            assert large
            for ref in large:
                digests = store.chunk_blocks(ref.chunk_id)
                assert digests is not None
                assert len(digests) == -(-ref.length // BLOCK_SIZE) * BLOCK_DIGEST_SIZE
            for ref in files["train.csv"].chunks:  # compressed: read whole
                assert store.chunk_blocks(ref.chunk_id) is None
        assert verify(b, b.versions(ART)) == []  # and the digests are the data's


def test_a_changed_chunk_on_the_remote_is_refused(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    with open_store(tmp_path / "a") as a, open_store(tmp_path / "b") as b:
        a.put(_tree(tmp_path / "src", 2), ART)
        remote = _remote(s3_env, prefix, tmp_path / "a")
        push(a, remote, Ref(ART, "v0"))
        [pack] = pack_keys(remote.objects, trees=False)
        data = bytearray(remote.objects.get(pack)[0])
        data[-100] ^= 0x01  # one bit of the last chunk's payload
        remote.objects.put(pack, bytes(data))
        with pytest.raises(CorruptData, match="does not match its hash"):
            pull(b, _remote(s3_env, prefix, tmp_path / "b"), Ref(ART, "v0"))
        assert b.projects() == [] and list((tmp_path / "b" / "packs").iterdir()) == []


def test_clone_then_pull(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    with open_store(tmp_path / "a") as a:
        a.put(_tree(tmp_path / "src", 3), ART, aliases=["prod"])
        remote = _remote(s3_env, prefix, tmp_path / "a")
        push(a, remote, Ref(ART, "v0"))
    with open_store(tmp_path / "c") as c:
        remote = _remote(s3_env, prefix, tmp_path / "c")
        assert [r.ref for r in clone(c, remote)] == ["team/data:v0"]
        record = c.resolve("team/data:prod")
        assert record.number == 0 and not list((tmp_path / "c" / "packs").iterdir())
        assert verify(c, [record]) != []  # index only: the chunks are not here yet
        assert pull(c, remote, Ref(ART, "v0")).created is False
        assert verify(c, [c.resolve("team/data:v0")]) == []
        c.put(_tree(tmp_path / "src2", 4), ART)
        assert c.resolve("team/data").number == 1


def test_aliases_move_by_compare_and_swap(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    one = _remote(s3_env, prefix, tmp_path, "one")
    two = _remote(s3_env, prefix, tmp_path, "two")
    one.move_alias(ART, "best", 0)
    two.move_alias(ART, "best", 1)
    assert one.aliases(ART)["best"][0] == 1
    stale = one.aliases(ART)["best"][1]
    one.move_alias(ART, "best", 2)
    key = layout.alias_key(ART, "best")
    assert two.objects.put_if(key, layout.encode_pointer(9, "two"), stale) is None
    assert two.aliases(ART)["best"][0] == 2


_WRITER = """
import sys
from pathlib import Path
from artfs.names import ArtifactName, Ref
from artfs.objectstore import RemoteUrl, S3ObjectStore
from artfs.remote.remote import Remote
from artfs.remote.sync import push
from artfs.stores import open_store

home, endpoint, prefix, index, versions = sys.argv[1:]
art = ArtifactName("team", "shared")
with open_store(Path(home)) as store:
    objects = S3ObjectStore.open(RemoteUrl("artfs", prefix), endpoint=endpoint)
    remote = Remote(objects, objects.writer_id, None)
    for n in range(int(versions)):
        src = Path(home) / f"src{n}"
        src.mkdir()
        (src / "who.txt").write_text(f"writer {index} version {n}")
        record = store.put(src, art).record
        print(push(store, remote, Ref(art, record.version)).number, flush=True)
"""


def _writer_command(home: Path, server: S3Server, prefix: str, i: int, each: int) -> list[str]:
    return [sys.executable, "-c", _WRITER, str(home), server.endpoint, prefix, str(i), str(each)]


def run_writers(server: S3Server, prefix: str, tmp: Path, writers: int, each: int) -> list[int]:
    """Start ``writers`` processes that each put and push ``each`` versions of team/shared at
    once; the remote numbers they got. Every process is reaped, also when one fails."""
    procs = [
        subprocess.Popen(
            _writer_command(tmp / f"w{i}", server, prefix, i, each),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=remote_env(server, tmp / f"w{i}"),
        )
        for i in range(writers)
    ]
    numbers = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            numbers += [int(line) for line in out.split()]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):  # those not read when another failed
                if pipe is not None:
                    pipe.close()
    return numbers


def test_concurrent_writers_get_contiguous_distinct_numbers(
    s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    writers, each = 6, 3
    numbers = run_writers(s3_env, prefix, tmp_path, writers, each)
    assert sorted(numbers) == list(range(writers * each))
    remote = _remote(s3_env, prefix, tmp_path, "reader")
    shared = ArtifactName("team", "shared")
    assert remote.version_numbers(shared) == list(range(writers * each))
    seen = set()
    for number in range(writers * each):
        version = remote.read_version(shared, number)  # parses and checks the digest
        seen.add(version.record.digest)
    assert len(seen) == writers * each  # none overwritten, none lost
