"""``./dev demo``: the main job on a small generated dataset, as a shell transcript.

Everything lives under ``.artfs-demo/`` in the current directory (the store, the sample data
and the mountpoint) and is recreated on every run. Each step runs the real ``artfs`` command.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

ARTFS = str(Path(sys.executable).parent / "artfs")


def make_sample(root: Path, images: int, seed: int) -> None:
    """A tiny MNIST-shaped dataset: binary 'images' plus a labels CSV."""
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = ["file,label"]
    for i in range(images):
        (root / "images" / f"{i:05d}.png").write_bytes(rng.randbytes(784))
        rows.append(f"images/{i:05d}.png,{rng.randrange(10)}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def step(*args: str, env: dict[str, str], check: bool = True) -> None:
    shown = " ".join("artfs" if a == ARTFS else a for a in args)
    print(f"\n$ {shown}", flush=True)
    subprocess.run(list(args), env=env, check=check)


def main() -> None:
    base = Path(".artfs-demo").resolve()
    if base.exists():
        mnt = base / "mnt"
        if os.path.ismount(mnt):
            subprocess.run([ARTFS, "umount", str(mnt)], check=False)
        shutil.rmtree(base)
    source = base / "mnist"
    env = {**os.environ, "ARTFS_HOME": str(base / "store")}
    print(f"demo store: {env['ARTFS_HOME']}")

    make_sample(source, 500, seed=0)
    step(
        ARTFS,
        "put",
        str(source),
        "demo/mnist",
        "--alias",
        "baseline",
        "--description",
        "500 handwritten digits",
        env=env,
    )
    make_sample(source, 600, seed=1)  # relabelled, 100 more images
    step(ARTFS, "put", str(source), "demo/mnist", "--metadata", '{"images": 600}', env=env)
    step(ARTFS, "put", str(source), "demo/mnist", env=env)  # unchanged: no new version
    step(ARTFS, "ls", env=env)
    step(ARTFS, "ls", "demo", env=env)
    step(ARTFS, "ls", "demo/mnist", env=env)
    step(ARTFS, "info", "demo/mnist:latest", env=env)
    step("sh", "-c", f"{ARTFS} diff demo/mnist:baseline demo/mnist:v1 | tail -n 3", env=env)
    step(ARTFS, "verify", env=env)

    mnt = base / "mnt"
    mnt.mkdir()
    step(ARTFS, "mount", str(mnt), env=env)
    try:
        step("ls", "-l", str(mnt / "demo" / "mnist"), env=env)
        step("sh", "-c", f"ls {mnt}/demo/mnist/v1/images | head -n 3", env=env)
        step("head", "-n", "3", str(mnt / "demo" / "mnist" / "latest" / "labels.csv"), env=env)
        step("getfattr", "-d", str(mnt / "demo" / "mnist" / "v1"), env=env, check=False)
    finally:
        step(ARTFS, "umount", str(mnt), env=env)
    print("\ndemo done: the store stays in .artfs-demo/ (ARTFS_HOME=.artfs-demo/store)")


if __name__ == "__main__":
    main()
