"""How long the ``pairs`` task takes to load and check a file of 100,000 tab-separated pairs.

Writes a file of random word pairs (10-byte inputs, 30-byte outputs by default), then times
building the task's data (``DataModule``: every line read, hashed, decoded and checked, the
held-out split made, the training pairs tokenized) and prints the median of the repeats.

    python benchmarks/pairs_load.py                # 100,000 pairs, 5 repeats
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from transformer_tiny.config import DataConfig  # noqa: E402
from transformer_tiny.data import DataModule  # noqa: E402


def write_pairs(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            word = "".join(rng.choices(string.ascii_lowercase, k=10))
            f.write(f"{word}\t{' '.join(word.upper())}{'x' * 11}\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.tsv"
        write_pairs(path, args.pairs)
        cfg = DataConfig(task="pairs", train_file=str(path))
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            dm = DataModule(cfg)
            dm.train_dataset(0)
            times.append(time.perf_counter() - t0)
        size = path.stat().st_size
    print(f"{args.pairs:,} pairs ({size / 1e6:.1f} MB): loaded and checked in "
          f"{statistics.median(times):.2f} s (median of {args.repeats}; "
          f"min {min(times):.2f} s, max {max(times):.2f} s); {dm.train_size:,} training pairs")


if __name__ == "__main__":
    main()
