"""A sort model on families of strings with equal counts: k distinct characters, m of each.

Each family has 200 strings (fewer where fewer exist), drawn with a fixed seed, none by the
task's own generators. The characters are either neighbours in code-point order (``abc``: the
strings a person types first, such as ``aabbccaabbcc``) or spread over printable ASCII; they
stand in random order, in runs of two repeated (``aabbccaabbcc``) or in blocks (``ccccaaaabbbb``).

    python benchmarks/sort_families.py --checkpoint runs/task-sort
"""

from __future__ import annotations

import argparse
import random
import string
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import transformer_tiny
from transformer_tiny.alphabets import ALPHABETS

SHAPES = [(2, 6), (3, 4), (4, 3), (2, 8), (3, 5), (4, 4)]  # (k distinct, m each)
SPREAD = sorted(ALPHABETS["printable"])  # printable ASCII, space included
LETTERS = string.ascii_lowercase


def arrange(rng: random.Random, chars: list[str], m: int, order: str) -> str:
    """``m`` of each of ``chars`` in random ``order``, in ``pairs`` (``aabbaabb``) or ``blocks``."""
    if order == "pairs":
        return "".join(c * 2 for c in chars) * (m // 2)
    if order == "blocks":
        blocks = [c * m for c in chars]
        rng.shuffle(blocks)
        return "".join(blocks)
    text = [c for c in chars for _ in range(m)]
    rng.shuffle(text)
    return "".join(text)


def family(rng: random.Random, pick: Callable[[int], list[str]], k: int, m: int, order: str,
           n: int = 200) -> list[str]:
    """Up to ``n`` distinct strings of the family (fewer if the family is smaller)."""
    texts: set[str] = set()
    for _ in range(50 * n):
        texts.add(arrange(rng, pick(k), m, order))
        if len(texts) == n:
            break
    return sorted(texts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="runs/task-sort")
    args = p.parse_args()
    model = transformer_tiny.load(args.checkpoint)
    rng = random.Random(2026)
    picks = {
        "neighbours": lambda k: list(LETTERS[(s := rng.randrange(27 - k)):s + k]),
        "spread": lambda k: rng.sample(SPREAD, k),
    }
    print("| characters | k x m | random order | pairs | blocks |\n|---|---|---|---|---|")
    for name, pick in picks.items():
        cells = []
        for k, m in SHAPES:
            row = []
            for order in ("random", "pairs", "blocks"):
                if order == "pairs" and m % 2:
                    row.append("")
                    continue
                texts = family(rng, pick, k, m, order)
                right = sum(out == "".join(sorted(t))
                            for out, t in zip(model.predict(texts), texts, strict=True))
                row.append(f"{right}/{len(texts)}")
            cells.append(f"| {name} | {k} x {m} | " + " | ".join(row) + " |")
        print("\n".join(cells), flush=True)
    probes = ["mississippi", "aabbccaabbcc"]
    print("; ".join(f"{t} -> {out}" for t, out in zip(probes, model.predict(probes), strict=True)))


if __name__ == "__main__":
    main()
