"""``artfs ui``: server time of its heaviest pages on large stores.

Three stores, each built through the store's own API:

- 1,000 artifacts (10 projects of 100, two versions each): the home page lists them all;
- one version of 100,000 files in one directory: its version page (record, lineage, first
  page of the listing);
- a version with 200 runs around it (one producer that used an input, 199 consumers that each
  logged a version): its lineage page, the whole graph laid out by ``dot``;
- a run that logged 100,000 history rows (the most a run keeps) of four metrics: its run page
  (summary, one chart per metric from the outline kept as it logged, the last rows), and the
  same rows stored as artfs did before outlines (charted from every row).

Server time is the app's time for one request through its WSGI interface (routing, index
reads, template, ``dot``): what ``Server-Timing`` reports, without the network. The lineage
page is timed with its layout cache emptied before each request (every request runs ``dot``)
and again warm (the same graph asked again); the run page likewise with a new app before
each request (every request draws its charts) and again warm (its charts kept). Each figure
comes as wall time and as CPU time (the app's and ``dot``'s), which a busy machine moves
less.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from artfs.lineage import Lineage
from artfs.names import ArtifactName
from artfs.run_metrics import RunMetrics
from artfs.store import Store, history
from artfs.ui import create_app, graph, open_readonly

RUNS = 7
TARGET = "target < 300 ms"
Report = Callable[..., None]


def _put_tiny(store: Store, scratch: Path, art: ArtifactName, text: str, **options: object) -> None:
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "file.txt").write_text(text)
    store.put(scratch, art, **options)


def build_many_artifacts(home: Path, scratch: Path) -> None:
    with Store.open(home) as store:
        for p in range(10):
            for a in range(100):
                art = ArtifactName(f"project{p}", f"artifact{a:03d}")
                for v in range(2):
                    _put_tiny(store, scratch, art, f"{p} {a} {v}", aliases=[f"tag{v}"])


def build_large_version(home: Path, scratch: Path, files: int = 100_000) -> str:
    root = scratch / "large"
    root.mkdir(parents=True)
    for i in range(files):
        (root / f"sample-{i:06d}.txt").write_bytes(f"{i}\n".encode())
    with Store.open(home) as store:
        return store.put(root, ArtifactName("bench", "large")).record.version


def build_lineage(home: Path, scratch: Path, runs: int = 200) -> str:
    with Store.open(home) as store:
        lineage = Lineage(store)
        source = ArtifactName("bench", "source")
        _put_tiny(store, scratch / "source", source, "source")
        producer = lineage.create_run("bench", "prepare", command=["prepare.py"])
        lineage.use(producer.id, store.resolve(f"{source}:latest"))
        center = ArtifactName("bench", "center")
        _put_tiny(store, scratch / "center", center, "center", logged_by=producer.id)
        record = store.resolve(f"{center}:latest")
        for i in range(runs - 1):
            run = lineage.create_run("bench", "train", command=["train.py", f"--seed={i}"])
            lineage.use(run.id, record)
            out = ArtifactName("bench", f"model{i:03d}")
            _put_tiny(store, scratch / "out", out, f"model {i}", type_="model", logged_by=run.id)
            lineage.finish_run(run.id)
        return record.version


def _logged_rows(first: int, end: int, rows: int, started: float) -> list[dict[str, object]]:
    return [
        {
            "_step": step,
            "_timestamp": started + step * 0.01,
            "_runtime": step * 0.01,
            "loss": 1.0 / (1 + step / 1000) + (step % 7) * 1e-3,
            "acc": step / rows,
            "lr": 0.1 * 0.5 ** (step // 20_000),
            "epoch": step // 1000,
        }
        for step in range(first, end)
    ]


def build_logged_runs(home: Path, rows: int = 100_000, batch: int = 5_000) -> tuple[str, str]:
    """Two finished runs whose histories hold ``rows`` rows of loss, acc, lr and epoch (with
    the SDK's _step, _timestamp and _runtime): one written in batches as ``log`` flushes
    them, one with the rows only, as artfs stored them before it kept outlines."""
    with Store.open(home) as store:
        lineage = Lineage(store)
        outlined, rows_only = (
            lineage.create_run("bench", "train", command=["train.py"]) for _ in range(2)
        )
        metrics = RunMetrics(store)
        started = time.time()
        for first in range(0, rows, batch):
            logged = _logged_rows(first, min(rows, first + batch), rows, started)
            metrics.record(outlined.id, logged, dict(logged[-1]))
            with store.index.write() as txn:
                history.append(txn, rows_only.id, [history.encode_row(r) for r in logged])
        for run in (outlined, rows_only):
            lineage.finish_run(run.id)
        return outlined.id, rows_only.id


def _cpu() -> float:
    """CPU seconds of this process and of its waited-for children (``dot``)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def server_time(
    home: Path, url: str, before: Callable[[], None] | None = None, new_app: bool = False
) -> tuple[float, float]:
    """Median wall and CPU seconds the app takes for ``url`` (after one warm-up request;
    with ``new_app``, each request goes to an app made for it, outside the timing, so
    nothing an app keeps between requests helps). CPU time is the figure a busy machine
    moves least: wall time here includes waiting for a core while other jobs run."""
    store = open_readonly(home)
    try:
        client = create_app(store).test_client()
        assert client.get(url).status_code == 200, url
        walls, cpus = [], []
        for _ in range(RUNS):
            if before is not None:
                before()
            if new_app:
                client = create_app(store).test_client()
            started, cpu = time.perf_counter(), _cpu()
            response = client.get(url)
            walls.append(time.perf_counter() - started)
            cpus.append(_cpu() - cpu)
            assert response.status_code == 200, url
        return statistics.median(walls), statistics.median(cpus)
    finally:
        store.close()


def _report(report: Report, name: str, times: tuple[float, float], target: str = "") -> None:
    report(name, times[0] * 1e3, "ms", target)
    report(f"{name}, CPU", times[1] * 1e3, "ms")


def run(workdir: Path, report: Report) -> None:
    scratch = workdir / "src"

    many = workdir / "many"
    build_many_artifacts(many, scratch / "many")
    _report(report, "ui home page, 1,000 artifacts", server_time(many, "/"), TARGET)

    large = workdir / "large"
    version = build_large_version(large, scratch)
    url = f"/v/bench/large/{version}"
    _report(report, "ui version page, 100,000-file version", server_time(large, url), TARGET)
    middle = server_time(large, f"{url}?after=sample-050000.txt")
    _report(report, "ui version page, a page in the middle", middle)

    around = workdir / "lineage"
    center = build_lineage(around, scratch)
    url = f"/lineage/bench/center/{center}"
    cold = server_time(around, url, before=graph.render_svg.cache_clear)
    _report(report, "ui lineage page, 200 runs (dot each time)", cold, TARGET)
    _report(report, "ui lineage page, same graph again (cached)", server_time(around, url))

    logged = workdir / "logged"
    outlined, rows_only = build_logged_runs(logged)
    url = f"/run/{outlined}"
    cold = server_time(logged, url, new_app=True)
    _report(report, "ui run page, 100,000 history rows (new app each time)", cold, TARGET)
    _report(report, "ui run page, same run again (charts kept)", server_time(logged, url))
    old = server_time(logged, f"/run/{rows_only}", new_app=True)
    _report(report, "ui run page, 100,000 rows logged before outlines", old)
    _report(
        report, "ui run JSON, 100,000 history rows (every row)", server_time(logged, "/api" + url)
    )
