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

SECTIONS = ("ingest", "mount", "remote")


def main() -> None:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__)
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--runs", type=int, help="repeat each measurement this many times")
    args = parser.parse_args()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
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
        module.run(args.workdir / section, report)
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.workdir / 'results.json'}")


if __name__ == "__main__":
    main()
