"""Generated, deterministic datasets for the benchmarks: a mixed ML-style tree.

``make_mixed`` writes thousands of small binary files (stand-ins for JPEG-like, incompressible
samples), a tiny JSON label per sample, tens of MB of CSV text and float32 checkpoints.
``mutate`` applies the second-version edit the store benchmark measures.
"""

from __future__ import annotations

import array
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Mutation:
    new_bytes: int  # bytes that are truly new in the second version
    edited_regions: int  # places where existing files changed


def make_mixed(root: Path, *, scale: float = 1.0, seed: int = 0) -> int:
    """Write the mixed set under ``root``; returns its size in bytes."""
    rng = random.Random(seed)
    samples = int(3000 * scale)
    images = root / "images"
    labels = root / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    for i in range(samples):
        (images / f"{i:06d}.bin").write_bytes(rng.randbytes(rng.randint(2 << 10, 30 << 10)))
        label = {
            "id": i,
            "class": rng.randrange(10),
            "bbox": [rng.randrange(256) for _ in range(4)],
        }
        (labels / f"{i:06d}.json").write_text(json.dumps(label))
    tables = root / "tables"
    tables.mkdir()
    for part in range(2):
        with open(tables / f"part-{part}.csv", "w") as f:
            f.write("id,feature_a,feature_b,category,text\n")
            for row in range(int(250_000 * scale)):
                f.write(
                    f"{row},{rng.random():.6f},{rng.gauss(0, 1):.5f},cat_{rng.randrange(40)},"
                    f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(WORDS)}\n"
                )
    ckpt = root / "checkpoints"
    ckpt.mkdir()
    for n in range(2):
        weights = array.array("f", (rng.gauss(0, 0.02) for _ in range(int(4_000_000 * scale))))
        (ckpt / f"model-{n}.f32").write_bytes(weights.tobytes())
    return tree_size(root)


def mutate(root: Path, *, seed: int = 1) -> Mutation:
    """The second version: 4 KiB overwritten in a checkpoint, 100 bytes inserted near the start
    of a CSV file, 300 small files added and 300 deleted."""
    rng = random.Random(seed)
    new = 0
    with open(root / "checkpoints" / "model-0.f32", "r+b") as f:
        f.seek(os.path.getsize(f.name) // 2)
        f.write(rng.randbytes(4096))
    new += 4096
    csv = root / "tables" / "part-0.csv"
    data = csv.read_bytes()
    insert = rng.randbytes(50).hex().encode()  # 100 bytes of text
    csv.write_bytes(data[:1000] + insert + data[1000:])
    new += len(insert)
    images = sorted((root / "images").iterdir())
    for path in images[:300]:
        path.unlink()
    added = root / "images_new"
    added.mkdir()
    for i in range(300):
        blob = rng.randbytes(rng.randint(2 << 10, 30 << 10))
        (added / f"{i:06d}.bin").write_bytes(blob)
        new += len(blob)
    return Mutation(new_bytes=new, edited_regions=2)


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


WORDS = (  # noqa: SIM905
    "the model learns a robust representation of noisy labels across many training epochs "
    "while validation loss keeps falling and the optimizer settles into a flat minimum"
).split()


def make_annotations(root: Path, count: int = 3000, *, seed: int = 2) -> int:
    """One COCO-style annotation file per image (a few hundred bytes to a few KB of JSON):
    small files of one kind, what zstd dictionaries are for. Returns the bytes written."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    total = 0
    for i in range(count):
        doc = {
            "image_id": i,
            "file_name": f"{i:012d}.jpg",
            "height": rng.choice((480, 640)),
            "width": 640,
            "annotations": [
                {
                    "id": i * 100 + k,
                    "category_id": rng.randrange(1, 91),
                    "bbox": [round(rng.uniform(0, 600), 2) for _ in range(4)],
                    "area": round(rng.uniform(50, 90000), 4),
                    "iscrowd": 0,
                    "segmentation": [[round(rng.uniform(0, 640), 1) for _ in range(16)]],
                }
                for k in range(rng.randrange(1, 8))
            ],
        }
        data = json.dumps(doc).encode()
        (root / f"{i:012d}.json").write_bytes(data)
        total += len(data)
    return total
