"""Training steps in float32 against bfloat16 autocast (``--precision bf16``) on this machine.

Times the trainer's own training step (forward, backward, gradient clipping, AdamW) on the G2P
recipe's model shape (d_model 192, 4 heads, 2+2 layers, d_ff 768) and random batches of
word-length strings (11 source and 10 target tokens), alternating the two precisions so that
both see the same machine load. Prints the median time per example of each, and their ratio,
for each batch size.

    python benchmarks/precision.py                 # batches of 128 and 256, 30 rounds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from transformer_tiny.config import ModelConfig, TrainConfig  # noqa: E402
from transformer_tiny.model import Seq2SeqTransformer  # noqa: E402
from transformer_tiny.train_eval import (  # noqa: E402
    _train_step,
    make_optimizer,
    training_autocast,
)
from transformer_tiny.utils import set_threads  # noqa: E402

SHAPE = {"d_model": 192, "n_heads": 4, "n_enc_layers": 2, "n_dec_layers": 2, "d_ff": 768,
         "randomize_positions": False}
PRECISIONS = ("fp32", "bf16")


def stepper(precision: str, batch_size: int):
    """A function that runs one training step (the trainer's own) of a fresh model at
    ``precision``."""
    torch.manual_seed(0)
    model = Seq2SeqTransformer(ModelConfig(**SHAPE))
    cfg = TrainConfig(precision=precision)
    opt = make_optimizer(model, cfg)
    autocast = training_autocast(precision, torch.device("cpu"))
    src = torch.randint(3, 128, (batch_size, 11))
    tgt = torch.randint(3, 128, (batch_size, 10))
    batch = {"src": src, "tgt_in": tgt, "tgt_out": tgt}
    return lambda: _train_step(model, opt, batch, cfg.lr, cfg, autocast, 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--rounds", type=int, default=30, help="timed steps of each precision")
    args = p.parse_args()
    set_threads(0)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    for batch_size in args.batch_sizes:
        steps = {name: stepper(name, batch_size) for name in PRECISIONS}
        for step in steps.values():  # warm-up
            for _ in range(3):
                step()
        times: dict[str, list[float]] = {name: [] for name in PRECISIONS}
        for _ in range(args.rounds):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[name].append((time.perf_counter() - t0) / batch_size * 1e3)
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"batch {batch_size}: fp32 {med['fp32']:.3f} ms/example, bf16 "
              f"{med['bf16']:.3f} ms/example; bf16 is {med['fp32'] / med['bf16']:.2f}x as fast")


if __name__ == "__main__":
    main()
