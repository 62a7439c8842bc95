"""Length generalization by position scheme and task: the README's table, in one run.

For each task (reverse, copy) and each position scheme (sinusoidal or rope, with or without
randomized indices) this trains the quickstart recipe (3 epochs of 16,000 printable-ASCII
strings of lengths 1-32) and measures whole-sequence exact match on the held-out test strings
(lengths 1-32) and on fresh strings in longer length buckets.

    python benchmarks/positions_table.py            # about 8 trainings of 1-2 minutes each
    python benchmarks/positions_table.py --epochs 1 --samples 50   # a quicker, rougher table

Results go to ``benchmarks/results/positions.json`` and the table is printed as Markdown.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from provenance import stamp  # noqa: E402

from transformer_tiny.checkpoint import load_checkpoint  # noqa: E402
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from transformer_tiny.data import draw_inputs, heldout_inputs  # noqa: E402
from transformer_tiny.metrics import evaluate  # noqa: E402
from transformer_tiny.train_eval import train  # noqa: E402
from transformer_tiny.utils import atomic_write_json, set_threads  # noqa: E402

SCHEMES = {  # name: (position_scheme, randomize_positions)
    "sinusoidal": ("sinusoidal", False),
    "sinusoidal + randomized": ("sinusoidal", True),
    "rope": ("rope", False),
    "rope + randomized (default)": ("rope", True),
}
BUCKETS = [(1, 32), (33, 64), (65, 128), (129, 256)]


def measure(task: str, scheme: str, randomized: bool, args: argparse.Namespace) -> dict:
    """Train one model and return its exact match per length bucket."""
    out = Path(args.runs) / f"{task}-{scheme}-{'rand' if randomized else 'plain'}"
    cfg = RunConfig(ModelConfig(position_scheme=scheme, randomize_positions=randomized),
                    DataConfig(task=task, alphabet="printable"),
                    TrainConfig(epochs=args.epochs, out=str(out), progress=False))
    t = time.perf_counter()
    train(cfg)
    seconds = time.perf_counter() - t
    model, _, _ = load_checkpoint(out / "best.json")
    exact = {}
    for i, (lo, hi) in enumerate(BUCKETS):
        inputs = heldout_inputs(cfg.data)[1][: args.samples] if hi <= cfg.data.max_len else \
            draw_inputs(cfg.data, args.samples, seed=10_000 + i, min_len=lo, max_len=hi)
        exact[f"{lo}-{hi}"] = evaluate(model, inputs, task).exact_match
    return {"train_seconds": round(seconds, 1), "exact_match": exact}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--samples", type=int, default=200, help="strings per length bucket")
    p.add_argument("--runs", default="runs/positions", help="where the trained models go")
    p.add_argument("--out", default=str(HERE / "results" / "positions.json"))
    args = p.parse_args()
    set_threads(0)
    rows = []
    for task in ("reverse", "copy"):
        for name, (scheme, randomized) in SCHEMES.items():
            res = measure(task, scheme, randomized, args)
            rows.append({"task": task, "scheme": name, **res})
            print(f"{task:8} {name:28} " + " ".join(
                f"{k}: {v:.3f}" for k, v in res["exact_match"].items()), flush=True)
    atomic_write_json(args.out, {**stamp(), "epochs": args.epochs, "samples": args.samples,
                                 "rows": rows})
    heads = [f"{lo}-{hi}" for lo, hi in BUCKETS]
    print("\n| task | position scheme | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    for r in rows:
        print(f"| {r['task']} | {r['scheme']} | "
              + " | ".join(f"{r['exact_match'][h]:.3f}" for h in heads) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
