"""Store benchmarks: put vs ``cp -a``, store size, second-version growth, get vs ``cp -a``.

``artfs put`` and ``artfs get`` are timed as whole commands (interpreter start included), each
against ``cp -a`` of the same tree in the same run with a warm page cache for both. ``put``
fsyncs its packs and index; ``cp -a`` syncs nothing, so the comparison favours ``cp``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from artfs.store.chunking import AVG_CHUNK
from bench.common import artfs, du, median_time, sh
from bench.dataset import make_mixed, mutate

RUNS = 5
Report = Callable[..., None]


def run(workdir: Path, report: Report) -> None:
    data = workdir / "data"
    raw = make_mixed(data)
    report("dataset size", raw / 1e6, "MB")

    copies = workdir / "copies"

    def fresh_copies() -> None:
        shutil.rmtree(copies, ignore_errors=True)

    cp_time = median_time(lambda: sh("cp", "-a", data, copies), RUNS, setup=fresh_copies)
    stores = workdir / "stores"

    def fresh_store() -> None:
        shutil.rmtree(stores, ignore_errors=True)

    put_time = median_time(lambda: artfs(stores, "put", data, "bench/mixed"), RUNS, fresh_store)
    report("put time / cp -a time", put_time / cp_time, "x", "target <= 1.0")
    report("put throughput", raw / put_time / 1e6, "MB/s")

    size = du(stores)
    report("store size / raw size", size / raw, "x")

    second = workdir / "second"
    shutil.copytree(data, second)
    change = mutate(second)
    packs, index = du(stores / "packs"), du(stores / "index")
    artfs(stores, "put", second, "bench/mixed")
    pack_growth, index_growth = du(stores / "packs") - packs, du(stores / "index") - index
    growth = pack_growth + index_growth
    report("v1 truly new bytes", change.new_bytes / 1e6, "MB")
    report("v1 store growth / truly new bytes", growth / change.new_bytes, "x", "restic: 1.9")
    allowed = change.new_bytes + change.edited_regions * AVG_CHUNK
    report(
        "v1 pack growth / (new bytes + 1 avg chunk per edit)", pack_growth / allowed, "x", "<= 1.0"
    )
    report("v1 store growth / (new bytes + 1 avg chunk per edit)", growth / allowed, "x", "<= 1.0")
    report("v1 index growth (new file tree of 6,000 entries)", index_growth / 1e6, "MB")

    out = workdir / "out"

    def fresh_out() -> None:
        shutil.rmtree(out, ignore_errors=True)

    get_time = median_time(lambda: artfs(stores, "get", "bench/mixed:v0", out), RUNS, fresh_out)
    report("get time / cp -a time", get_time / cp_time, "x")
    sh("diff", "-r", data, out)  # a fast get that writes wrong bytes would be no result
