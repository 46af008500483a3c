"""``./dev bench``: every performance target of the project, measured in one run.

Each figure is a ratio to a baseline measured in the same run on the same data (``cp -a``, reads
of the native copy), the median of several runs, because these machines are shared and noisy.
Results are printed as a table and written to ``.bench/results.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECTIONS = ("ingest", "reput", "trees", "stage", "mount", "listing", "remote", "ui")
DELETED_AT = "deleted-at"  # in the work directory: when the bench last deleted many files
QUIET_AFTER_DELETE = 360.0


def _mark_deleted(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / DELETED_AT).write_text(f"{time.time()}\n")


def _wait_after_delete(marker: Path) -> None:
    try:
        since = time.time() - float(marker.read_text())
    except (OSError, ValueError):
        return
    if since < QUIET_AFTER_DELETE:
        wait = QUIET_AFTER_DELETE - since
        print(f"waiting {wait:.0f} s: files were deleted {since:.0f} s ago (see bench/run.py)")
        time.sleep(wait)


def _scale(module: object, files: int) -> None:
    """Set the file count of a section, and of the bench modules it takes its data from."""
    for found in (module, *(sys.modules[n] for n in ("bench.trees",) if n in sys.modules)):
        if hasattr(found, "FILES"):
            found.FILES = files  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__)
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--runs", type=int, help="repeat each measurement this many times")
    parser.add_argument(
        "--scale",
        type=int,
        metavar="FILES",
        help="the file count of the sections that take one (reput, trees, stage; default "
        "100,000): issue 16 asks for put of 1,000,000 in at most 1 GiB",
    )
    args = parser.parse_args()
    args.workdir = args.workdir.resolve()  # as the mount table names the mounts under it
    # Nothing is deleted while figures are taken: the last run's files are deleted after this
    # run (with this one's intermediate files, next time), and a run starts at least
    # QUIET_AFTER_DELETE seconds after the last one deleted its files: on ext4 without a
    # journal (this VM's root) inodes freed in the last 60-360 s are skipped when new ones are
    # allocated, and a cp -a baseline after deleting a run's 100,000 files spent up to 4 s
    # instead of 0.22 s scanning inode bitmaps (perf: recently_deleted), for 5 minutes.
    stale = args.workdir.with_name(args.workdir.name + ".old")
    if stale.exists():
        shutil.rmtree(stale)
        _mark_deleted(args.workdir)
    if args.workdir.exists():
        _wait_after_delete(args.workdir / DELETED_AT)
        args.workdir.rename(stale)
    args.workdir.mkdir(parents=True)
    results: list[dict[str, object]] = []

    def report(name: str, value: float, unit: str, target: str = "") -> None:
        results.append({"name": name, "value": value, "unit": unit, "target": target})
        print(f"  {name:<58} {value:>10.3f} {unit:<8} {target}", flush=True)

    for section in args.only or SECTIONS:
        print(f"{section}:", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{section}")
        if args.runs and hasattr(module, "RUNS"):
            module.RUNS = args.runs
        if args.scale:
            _scale(module, args.scale)
        module.run(args.workdir / section, report)
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(stale, ignore_errors=True)
    _mark_deleted(args.workdir)
    print(f"results written to {args.workdir / 'results.json'}")


if __name__ == "__main__":
    main()
