"""``add_reference``: file:// and http(s):// entries recorded without copying their bytes,
fetched and verified by ``download()`` and ``artfs get``."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import artfs
from artfs import Artifact, InputError, ReferenceChanged, ReferenceMissing
from tests.helpers import packs_bytes, random_bytes, read_tree


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, directory) of an HTTP server on 127.0.0.1 serving that directory."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def outside(tmp_path: Path, make_tree: Any) -> Path:
    """Files that live outside the store."""
    return make_tree(
        tmp_path / "bucket",
        {"a.bin": random_bytes(50_000, seed=2), "sub/b.txt": "bee", "sub/c.txt": "sea"},
    )


# --- file:// ----------------------------------------------------------------------------------


def test_a_file_reference_records_size_and_digest_but_stores_no_bytes(
    run: artfs.Run, outside: Path, home: Path, tmp_path: Path
) -> None:
    art = Artifact("refs", "dataset")
    [entry] = art.add_reference((outside / "a.bin").as_uri())
    assert (entry.path, entry.size, entry.ref) == ("a.bin", 50_000, (outside / "a.bin").as_uri())
    assert len(entry.digest) == 64
    before = packs_bytes(home)
    run.log_artifact(art)
    assert packs_bytes(home) == before  # nothing copied into the store
    logged = art.get_entry("a.bin")
    assert (logged.digest, logged.ref) == (entry.digest, entry.ref)
    root = art.download(tmp_path / "out")
    assert (Path(root) / "a.bin").read_bytes() == (outside / "a.bin").read_bytes()
    art.verify(root)


def test_verify_says_it_did_not_check_references(
    run: artfs.Run, outside: Path, home: Path, run_cli: Any
) -> None:
    art = Artifact("refs", "dataset")
    art.add_reference((outside / "a.bin").as_uri())
    art.add_file(outside / "sub" / "b.txt")
    run.log_artifact(art)
    (outside / "a.bin").write_bytes(b"changed since it was logged")
    verified = run_cli("verify", "proj/refs:v0", check=True)
    assert verified.last_line == (
        "ok: 1 version, 1 file verified; 1 reference not checked "
        "(not in the store: 'artfs get' fetches and checks them)"
    )


def test_a_directory_reference_expands_to_one_entry_per_file(
    run: artfs.Run, outside: Path, tmp_path: Path
) -> None:
    art = Artifact("refs", "dataset")
    entries = art.add_reference(outside.as_uri(), max_objects=3)
    # W&B puts the files of an unnamed directory reference at the artifact's root.
    assert [e.path for e in entries] == ["a.bin", "sub/b.txt", "sub/c.txt"]
    assert entries[1].ref == (outside / "sub" / "b.txt").as_uri()
    art.add_reference((outside / "sub").as_uri(), name="again")
    assert sorted(art.manifest) == [
        "a.bin",
        "again/b.txt",
        "again/c.txt",
        "sub/b.txt",
        "sub/c.txt",
    ]
    run.log_artifact(art)
    root = Path(art.download(tmp_path / "out"))
    assert read_tree(root / "sub") == read_tree(outside / "sub")
    assert read_tree(root / "again") == read_tree(outside / "sub")


def test_max_objects_is_a_limit_and_nothing_is_added_beyond_it(outside: Path) -> None:
    art = Artifact("refs", "dataset")
    with pytest.raises(InputError, match=r"max_objects=2"):
        art.add_reference(outside.as_uri(), max_objects=2)
    assert art.files() == []


def test_a_missing_file_reference_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothing-here"):
        Artifact("refs", "dataset").add_reference((tmp_path / "nothing-here").as_uri())


def test_a_changed_target_is_an_error_naming_the_uri(
    run: artfs.Run, outside: Path, tmp_path: Path
) -> None:
    art = Artifact("refs", "dataset")
    art.add_reference((outside / "sub").as_uri(), name="sub")
    run.log_artifact(art)
    (outside / "sub" / "b.txt").write_text("BEE")  # same size, other bytes
    uri = (outside / "sub" / "b.txt").as_uri()
    with pytest.raises(ReferenceChanged, match=uri):
        art.download(tmp_path / "out")
    assert not (tmp_path / "out" / "sub" / "b.txt").exists()  # nothing wrong is written
    assert issubclass(ReferenceChanged, artfs.CorruptData)


def test_a_vanished_target_is_an_error_or_skipped_when_allowed(
    run: artfs.Run, outside: Path, tmp_path: Path
) -> None:
    art = Artifact("refs", "dataset")
    art.add_reference((outside / "sub").as_uri(), name="sub")
    run.log_artifact(art)
    (outside / "sub" / "b.txt").unlink()
    with pytest.raises(ReferenceMissing, match=r"b\.txt"):
        art.download(tmp_path / "out")
    root = Path(art.download(tmp_path / "out2", allow_missing_references=True))
    assert read_tree(root) == {"sub": None, "sub/c.txt": b"sea"}
    assert issubclass(ReferenceMissing, artfs.NotFound)


def test_checksum_false_records_only_the_uri_and_fetches_unchecked(
    run: artfs.Run, outside: Path, tmp_path: Path
) -> None:
    art = Artifact("refs", "dataset")
    [entry] = art.add_reference((outside / "sub" / "b.txt").as_uri(), checksum=False)
    assert (entry.digest, entry.ref) == ("", (outside / "sub" / "b.txt").as_uri())
    run.log_artifact(art)
    (outside / "sub" / "b.txt").write_text("changed and longer")
    root = Path(art.download(tmp_path / "out"))
    assert (root / "b.txt").read_text() == "changed and longer"


def test_references_round_trip_through_artfs_get(
    run: artfs.Run, outside: Path, tmp_path: Path, run_cli: Any
) -> None:
    art = Artifact("refs", "dataset")
    art.add_reference(outside.as_uri())
    run.log_artifact(art)
    run_cli("get", "proj/refs:v0", tmp_path / "got", check=True)
    assert read_tree(tmp_path / "got") == read_tree(outside)
    (outside / "sub" / "c.txt").write_text("SEA")
    rc, _, err = run_cli("get", "proj/refs:v0", tmp_path / "got2")
    assert rc != 0
    assert (outside / "sub" / "c.txt").as_uri() in err
    assert "Traceback" not in err


def test_gs_references_are_refused_clearly() -> None:
    # s3:// references are tested against a real server in tests/remote/test_s3_references.py.
    art = Artifact("refs", "dataset")
    with pytest.raises(InputError, match=r"gs:// references are not supported.*https://"):
        art.add_reference("gs://bucket/dir/")
    assert art.files() == []


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(InputError, match="unsupported reference scheme"):
        Artifact("refs", "dataset").add_reference("ftp://host/file")


# --- http(s):// -------------------------------------------------------------------------------


def test_an_http_reference_records_size_and_digest_and_round_trips(
    run: artfs.Run, served: tuple[str, Path], tmp_path: Path, home: Path, run_cli: Any
) -> None:
    base, www = served
    (www / "weights.bin").write_bytes(random_bytes(300_000, seed=3))
    art = Artifact("remote", "model")
    [entry] = art.add_reference(f"{base}/weights.bin")
    assert (entry.path, entry.size, entry.ref) == ("weights.bin", 300_000, f"{base}/weights.bin")
    assert len(entry.digest) == 64
    before = packs_bytes(home)
    run.log_artifact(art)
    assert packs_bytes(home) == before
    path = art.file(tmp_path / "dl")
    assert Path(path).read_bytes() == (www / "weights.bin").read_bytes()
    run_cli("get", "proj/remote:v0", tmp_path / "got", check=True)
    assert (tmp_path / "got" / "weights.bin").read_bytes() == (www / "weights.bin").read_bytes()


def test_an_http_reference_with_a_name_and_without_checksum(
    run: artfs.Run, served: tuple[str, Path]
) -> None:
    base, www = served
    (www / "x.csv").write_text("1,2\n")
    art = Artifact("remote", "dataset")
    [entry] = art.add_reference(f"{base}/x.csv", name="tables/x.csv", checksum=False)
    assert (entry.path, entry.digest, entry.ref) == ("tables/x.csv", "", f"{base}/x.csv")
    run.log_artifact(art)
    assert art.get_entry("tables/x.csv").ref == f"{base}/x.csv"


def test_a_changed_or_vanished_http_target(
    run: artfs.Run, served: tuple[str, Path], tmp_path: Path
) -> None:
    base, www = served
    (www / "a.txt").write_text("alpha")
    (www / "b.txt").write_text("beta")
    art = Artifact("remote", "dataset")
    art.add_reference(f"{base}/a.txt")
    art.add_reference(f"{base}/b.txt")
    run.log_artifact(art)
    (www / "a.txt").write_text("ALPHA")
    with pytest.raises(ReferenceChanged, match=f"{base}/a.txt"):
        art.download(tmp_path / "out", path_prefix="a.txt")
    (www / "b.txt").unlink()
    with pytest.raises(ReferenceMissing, match=f"{base}/b.txt.*404"):
        art.download(tmp_path / "out", path_prefix="b.txt")
    (www / "a.txt").write_text("alpha")
    root = Path(art.download(tmp_path / "out", allow_missing_references=True))
    assert read_tree(root) == {"a.txt": b"alpha"}


def test_an_unreachable_or_missing_url_cannot_be_added(served: tuple[str, Path]) -> None:
    base, _ = served
    art = Artifact("remote", "dataset")
    with pytest.raises(ReferenceMissing, match="404"):
        art.add_reference(f"{base}/absent.bin")
    with pytest.raises(InputError, match="cannot fetch"):
        art.add_reference("http://127.0.0.1:9/nothing")  # the discard port: refused
    assert art.files() == []
