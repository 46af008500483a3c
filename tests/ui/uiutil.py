"""Helpers for the ``artfs ui`` tests: one small store with lineage, and ``artfs ui`` served.

The store (built once per session, then only read) holds::

    proj/raw      dataset  v0 (alias best, tag gold), v1 (TTL 30 d, metadata)
    proj/model    model    v0, logged by a train run that used raw:v1
    proj/report   dataset  v0, logged by an eval run that used model:v0
    other/notes   dataset  v0
    other/refs    dataset  v0, one file:// reference (big.txt)

and a run of proj made through the SDK as a W&B user writes it (``import artfs as wandb``)
that logged ``LOGGED_STEPS`` rows of loss and acc (a NaN loss among them, a string note, a
step without acc) and set a summary value.

raw's versions have a CSV, a JSON, a text, a PNG, an HTML and a binary file, a sub/ directory
and a many/ directory of ``MANY`` files (more than one page of a listing).
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from artfs.lineage import Lineage
from artfs.names import ArtifactName
from artfs.store import Store, references
from artfs.store.ingest import SourceTree
from tests.helpers import ARTFS

MANY = 450  # > 2 pages of 200 entries
LOGGED_STEPS = 30


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG (red), made without an image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\0" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


CSV = "id,label,score\n" + "".join(f"{i},label_{i % 3},{i / 10}\n" for i in range(80))
JSON = '{"classes": ["cat", "dog"], "count": 2}'


def raw_tree(version: int) -> dict[str, bytes]:
    files = {
        "table.csv": CSV.encode(),
        "meta.json": JSON.encode(),
        "readme.txt": f"readme of version {version}\n".encode(),
        "pixel.png": png_bytes(),
        "page.html": b"<script>alert(1)</script>",
        "blob.bin": bytes(range(256)) * 4,
        "sub/deep.txt": b"deep\n",
    }
    files |= {f"many/f{i:04d}.txt": f"{i}\n".encode() for i in range(MANY)}
    if version == 1:
        files["readme.txt"] = b"changed readme\n"
        del files["blob.bin"]
        files["added.txt"] = b"new in v1\n"
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


@dataclass(frozen=True)
class UiStore:
    home: Path
    run_id: str
    metrics_run_id: str


TRAIN_SCRIPT = f"""
import artfs as wandb

run = wandb.init(project="proj", job_type="fit", config={{"epochs": 3}})
for step in range({LOGGED_STEPS}):
    row = {{"loss": 1.0 / (step + 1), "acc": step / {LOGGED_STEPS}}}
    if step == 7:
        row["loss"] = float("nan")  # kept as "nan": a value a chart cannot draw
        row["note"] = "<b>warm-up</b>"
    if step == 8:
        del row["acc"]
    wandb.log(row)
run.summary["best_acc"] = 0.9
run.finish()
print(run.id)
"""


def log_metrics(home: Path, scratch: Path) -> str:
    """A run that logged metrics through the SDK with W&B's calls, in a script of its own as
    a user runs one (the SDK keeps its store open for the process); returns the run's id."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "train.py").write_text(TRAIN_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
    done = subprocess.run(
        [sys.executable, "train.py"],
        cwd=scratch,
        env=env | {"ARTFS_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def build_store(home: Path, scratch: Path) -> UiStore:
    with Store.open(home) as store:
        lineage = Lineage(store)
        raw = ArtifactName("proj", "raw")
        store.put(
            write_tree(scratch / "raw0", raw_tree(0)),
            raw,
            aliases=["best"],
            tags=["gold"],
            description="raw images",
        )
        v1 = store.put(
            write_tree(scratch / "raw1", raw_tree(1)),
            raw,
            metadata={"source": "camera", "rows": 80},
            ttl_seconds=30 * 86400,
        ).record
        run = lineage.create_run(
            "proj", "train", config={"lr": 0.01}, command=["python", "train.py", "--epochs", "3"]
        )
        lineage.use(run.id, v1)
        model = write_tree(scratch / "model", {"weights.bin": b"\1\2\3" * 100})
        store.put(model, ArtifactName("proj", "model"), type_="model", logged_by=run.id)
        lineage.finish_run(run.id)
        evaluation = lineage.create_run("proj", "eval", command=["python", "eval.py"])
        lineage.use(evaluation.id, store.resolve("proj/model:v0"))
        report = write_tree(scratch / "report", {"scores.json": b'{"accuracy": 0.93}'})
        store.put(report, ArtifactName("proj", "report"), logged_by=evaluation.id)
        lineage.finish_run(evaluation.id)
        notes = write_tree(scratch / "notes", {"n.txt": b"note\n"})
        store.put(notes, ArtifactName("other", "notes"))
        target = write_tree(scratch / "outside", {"big.txt": b"held outside the store\n"})
        uri = (target / "big.txt").as_uri()
        store.commit(SourceTree(ready=references.describe(uri)), ArtifactName("other", "refs"))
    return UiStore(home, run.id, log_metrics(home, scratch / "fit"))


def store_bytes(home: Path) -> dict[str, str]:
    """The SHA-256 of every file of the store but LMDB's lock file (where readers take their
    slots, by design of LMDB: it holds no data)."""
    return {
        str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(home.rglob("*"))
        if path.is_file() and path.name != "lock.mdb"
    }


@dataclass
class Served:
    url: str  # as printed: http://HOST:PORT/?token=TOKEN
    process: subprocess.Popen[str]
    stderr: Any

    @property
    def base(self) -> str:
        return self.url.partition("?")[0]

    @property
    def token(self) -> str:
        return self.url.partition("?token=")[2]

    def at(self, path: str) -> str:
        """The URL of ``path`` (with its own query, if any) carrying the token."""
        return f"{self.base}{path}{'&' if '?' in path else '?'}token={self.token}"


def start_ui(home: Path, *args: str) -> Served:
    """``artfs ui --port 0 ARGS`` started; returns once it printed its URL (or fails)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFS_")}
    process = subprocess.Popen(
        [str(ARTFS), "--home", str(home), "ui", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("http://"):
        process.kill()
        _, err = process.communicate(timeout=10)
        pytest.fail(f"artfs ui did not print a URL: {line!r}, stderr: {err}")
    return Served(line, process, process.stderr)


def stop_ui(served: Served) -> int:
    """Ctrl-C, as a user stops it; killed if it does not exit within 10 s."""
    served.process.send_signal(signal.SIGINT)
    try:
        return served.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait(timeout=10)
        raise
