"""The task table: train each toy task with its documented command, score it on the test set.

For every task this builds the run config from exactly the flags of its documented training
command (``python scripts/train.py --progress false ...``), times ``train()``, loads the best
checkpoint and measures exact match on the task's 2,000 held-out test inputs and on 200 inputs
of its hard slice, and records its answers to a few inputs a person tries first (``PROBES``).
Results go to ``benchmarks/results/tasks.json`` (``benchmarks/report.py`` turns them into
docs/results.md).

    python benchmarks/tasks_table.py                       # all six tasks, about 15 minutes
    python benchmarks/tasks_table.py --tasks reverse,add   # these rows only, merged into the JSON
    python benchmarks/tasks_table.py --quick --out /tmp/tasks.json   # smoke run, tiny settings
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from provenance import machine, merge_rows, out_help, results_path, stamp  # noqa: E402

from transformer_tiny.api import TinyModel  # noqa: E402
from transformer_tiny.checkpoint import load_checkpoint  # noqa: E402
from transformer_tiny.cli.common import (  # noqa: E402
    Parser,
    add_config_arguments,
    overrides_from_args,
)
from transformer_tiny.cli.errors import UsageError  # noqa: E402
from transformer_tiny.config import SECTIONS, build_config  # noqa: E402
from transformer_tiny.data import bucket_inputs, hard_inputs, heldout_inputs  # noqa: E402
from transformer_tiny.metrics import evaluate  # noqa: E402
from transformer_tiny.tasks import task_for  # noqa: E402
from transformer_tiny.train_eval import train  # noqa: E402
from transformer_tiny.utils import set_threads  # noqa: E402

TRAIN = "python scripts/train.py --progress false"
COMMANDS = {  # task: its training command, as docs/tasks.md and docs/results.md show it
    "reverse": f"{TRAIN} --task reverse --out runs/task-reverse",
    "copy": f"{TRAIN} --task copy --out runs/task-copy",
    "shift": f"{TRAIN} --task shift --alphabet printable --out runs/task-shift",
    "sort": f"{TRAIN} --task sort --alphabet printable --max-len 16 --randomize-positions false "
            "--hard-share 0.25 --epochs 24 --out runs/task-sort",
    "add": f"{TRAIN} --task add --max-len 11 --randomize-positions false --rope-stride 1 "
           "--hard-share 0.25 --epochs 10 --out runs/task-add",
    "parens": f"{TRAIN} --task parens --max-len 16 --randomize-positions false --rope-stride 1 "
              "--n-heads 16 --n-dec-layers 1 --lr 0.001 --batch-size 64 --train-samples 46080 "
              "--hard-share 0.25 --epochs 6 --out runs/task-parens",
}
PROBES = {  # inputs a person tries first
    "reverse": ["mississippi", "Hello_2025"], "copy": ["mississippi", "aaaaaaaaaaaa"],
    "shift": ["xyz XYZ", "Hello, zebra!"], "sort": ["mississippi", "aabbccaabbcc"],
    "add": ["9999+1", "99999+99999", "0+0"], "parens": ["(((([[]]))))", "((((([)]))))"],
}
LONGER = {  # task: (what, length buckets in characters) beyond the lengths its command trains on
    "reverse": ("33-64 characters", [(33, 64)]), "copy": ("33-64 characters", [(33, 64)]),
    "shift": ("33-64 characters", [(33, 64)]), "sort": ("17-32 characters", [(17, 32)]),
    "add": ("6-10 digits", [(2 * w + 1, 2 * w + 1) for w in range(6, 11)]),  # a+b, W digits each
    "parens": ("17-32 characters", [(17, 32)]),
}
LONGER_SAMPLES = 200
QUICK = {"model": {"d_model": 32, "n_heads": 2},  # --quick: a tiny model on a little data
         "data": {"train_samples": 256, "val_samples": 32, "test_samples": 64},
         "train": {"epochs": 1, "batch_size": 64, "warmup_steps": 2}}


def overrides_from_command(command: str) -> dict[str, dict[str, Any]]:
    """The config overrides that ``command``'s flags set, by section, parsed by the library's own
    config flags (as ``scripts/train.py`` parses them): ``--max-len 16`` ->
    ``{"data": {"max_len": 16}}``; every section is present. A flag that is not a config field
    is a ``ValueError`` naming the command."""
    words = shlex.split(command)
    p = Parser()
    add_config_arguments(p, tuple(SECTIONS))
    try:
        given = overrides_from_args(p.parse_args(words[words.index("scripts/train.py") + 1:]))
    except UsageError as e:
        raise ValueError(f"{e} (in {command!r})") from None
    return {section: given.get(section, {}) for section in SECTIONS}


def measure(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train ``task`` with its command's settings and score its best checkpoint."""
    overrides = overrides_from_command(COMMANDS[task])
    if args.quick:
        for section, values in QUICK.items():
            overrides[section].update(values)
        overrides["data"]["max_len"] = min(overrides["data"].get("max_len", 32), 12)
    if args.runs:  # checkpoints elsewhere than the command's own --out
        overrides["train"]["out"] = str(Path(args.runs) / Path(overrides["train"]["out"]).name)
    overrides["train"]["progress"] = False
    cfg = build_config(None, overrides)
    t = time.perf_counter()
    summary = train(cfg)
    seconds = time.perf_counter() - t
    model, cfg, _ = load_checkpoint(Path(summary["out"]) / "best.json")
    test = heldout_inputs(cfg.data)[1]
    result = evaluate(model, test, task_for(cfg.data))
    hard = evaluate(model, hard_inputs(cfg.data), task_for(cfg.data))
    what, buckets = LONGER[task]
    longer = evaluate(model, bucket_inputs(cfg.data, buckets, LONGER_SAMPLES // len(buckets)),
                      task)  # the task unbound: add's wider numbers are not re-padded
    probes = PROBES.get(task, [])
    answers = TinyModel(model, cfg).predict(probes) if probes else []
    shown = task_for(cfg.data)
    return {"command": COMMANDS[task], "train_seconds": round(seconds, 1),
            "steps": summary["steps"], "best_val_exact_match": summary["best_val_exact_match"],
            "test_exact_match": result.exact_match, "test_n": result.n,
            "hard": task_for(cfg.data).hard, "hard_exact_match": hard.exact_match,
            "hard_n": hard.n, "longer": what, "longer_exact_match": longer.exact_match,
            "longer_n": longer.n,
            "probes": [{"input": x, "answer": a,
                        "right": a == shown.shown(shown.solve(shown.model_input(x)))}
                       for x, a in zip(probes, answers, strict=True)]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default=",".join(COMMANDS),
                   help="comma-separated tasks to measure (default: all); the other rows of an "
                        "existing --out are kept")
    p.add_argument("--out", help=out_help("tasks.json"))
    p.add_argument("--runs", help="where the checkpoints go (default: each command's --out; "
                                  "a temporary folder with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: a tiny model and a little data (seconds per task)")
    args = p.parse_args()
    args.out = results_path("tasks.json", args.out, args.quick)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in COMMANDS]
    if unknown or not tasks:
        p.error(f"--tasks must name some of {', '.join(COMMANDS)}; got {args.tasks!r}")
    set_threads(0)
    head = {**stamp(), "machine": machine(), "quick": args.quick}
    measured_with = {k: head[k] for k in ("date", "commit", "machine")}
    rows = {}
    with tempfile.TemporaryDirectory(prefix="tasks-table-") as tmp:
        if args.quick and not args.runs:
            args.runs = tmp
        for task in tasks:
            rows[task] = r = {**measure(task, args), **measured_with}
            print(f"{task:8} {r['train_seconds']:7.1f} s  {r['steps']:5} steps  "
                  f"test exact match {r['test_exact_match']:.4f}  hard slice "
                  f"{r['hard_exact_match']:.4f}  {r['longer']} {r['longer_exact_match']:.4f}",
                  flush=True)
    merge_rows(args.out, "tasks", rows, list(COMMANDS), head)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
