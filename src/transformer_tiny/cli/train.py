"""``scripts/train.py`` / ``transformer-tiny train``: train a model, print a one-line summary."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import build_config
from ..logs import require_tensorboard
from ..run_state import resumed_config
from ..train_eval import train
from .common import Parser, add_config_arguments, overrides_from_args


def train_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    p = Parser(prog=prog,
               description="Train a seq2seq Transformer on a toy task (default: reverse).")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (same model and data)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log to TensorBoard, in OUT/tensorboard (needs the tensorboard "
                        "package: the [tensorboard] extra)")
    p.add_argument("--overwrite", action="store_true",
                   help="train into --out even if it holds files that are not a training run")
    add_config_arguments(p, ("model", "data", "train"))
    args = p.parse_args(argv)
    if args.tensorboard:
        require_tensorboard()  # fail now, not after training
    overrides = overrides_from_args(args)
    cfg = resumed_config(overrides) if args.resume else build_config(None, overrides)
    summary = train(cfg, resume=args.resume, tensorboard=args.tensorboard,
                    overwrite=args.overwrite)
    if not summary["is_main"]:  # several processes (torchrun): the main one reports
        return 0
    now = summary["steps"] - summary["resumed_at"]  # the steps of this process
    steps = f"{now} step{'' if now == 1 else 's'}"
    if summary["resumed_at"]:  # the seconds are this process's too
        steps += f" ({summary['steps']} in all)"
    print(f"trained {steps} in {summary['seconds']} s; best validation exact "
          f"match {summary['best_val_exact_match']:.4f}; checkpoints in {summary['out']}")
    return 0
