"""Command-line entry points behind ``scripts/train.py``, ``eval.py`` and ``infer.py``, and the
``transformer-tiny COMMAND`` console command (:func:`main`) that dispatches to them.

Every expected failure (bad flag, bad config value, missing or corrupted checkpoint, unreadable
input, input too long) prints one ``error: ...`` line to stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint_info
from .config import (
    ConfigError,
    TrainConfig,
    add_config_arguments,
    build_config,
    overrides_from_args,
)
from .data import DataModule, draw_inputs
from .logs import require_tensorboard
from .tasks import task_for
from .tokenizer import ByteTokenizer
from .train_eval import evaluate, predict, train
from .utils import pick_device, set_threads

DEFAULT_RUN = "runs/quickstart"
TRAIN_HINT = "train one first: python scripts/train.py --epochs 3 --batch-size 128"


class UsageError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main`` and turn expected failures into one ``error:`` line and exit code 2."""
    try:
        return main(argv)
    except (UsageError, ConfigError, CheckpointError, ValueError, OSError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, UnicodeError):
            message = f"text cannot be encoded: {e.reason}"
        if isinstance(e, OSError) and e.filename is not None:
            message = f"{e.strerror or message}: {e.filename}"
        printable = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        print(f"error: {printable}", file=sys.stderr)  # one line, whatever the input held
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _load(path: str, device: str):
    try:
        return load_checkpoint(path, pick_device(device))
    except CheckpointError as e:
        if not Path(path).exists():
            raise CheckpointError(f"{e}; {TRAIN_HINT}") from None
        raise


# ----------------------------------------------------------------------------- train
def train_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    p = Parser(prog=prog,
               description="Train a seq2seq Transformer on a toy task (default: reverse).")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (same model and data)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log to TensorBoard, in OUT/tensorboard (needs the tensorboard "
                        "package: the [tensorboard] extra)")
    add_config_arguments(p, ("model", "data", "train"))
    args = p.parse_args(argv)
    if args.tensorboard:
        require_tensorboard()  # fail now, not after training
    overrides = overrides_from_args(args)
    base = None
    if args.resume:
        out = overrides.get("train", {}).get("out", TrainConfig().out)
        base = read_checkpoint_info(Path(out) / "last.json")[2].to_dict()
    cfg = build_config(base, overrides)
    if base is not None:
        for section in ("model", "data"):
            changed = [k for k, v in cfg.to_dict()[section].items() if base[section][k] != v]
            if changed:
                raise UsageError(f"--resume cannot change {section} config ({changed[0]})")
    out = Path(cfg.train.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    summary = train(cfg, resume=args.resume, tensorboard=args.tensorboard)
    if summary.get("rank", 0) != 0:  # several processes (torchrun): rank 0 reports
        return 0
    print(f"trained {summary['steps']} steps in {summary['seconds']} s; best validation exact "
          f"match {summary['best_val_exact_match']:.4f}; checkpoints in {summary['out']}")
    return 0


# ----------------------------------------------------------------------------- eval
def parse_buckets(text: str) -> list[tuple[int, int]]:
    """``"1-8,9-16"`` -> ``[(1, 8), (9, 16)]``."""
    try:
        edges = [tuple(int(x) for x in part.split("-")) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--lengths must look like 1-8,9-16; got {text!r}") from None
    if not all(len(e) == 2 and 0 <= e[0] <= e[1] for e in edges):
        raise UsageError(f"--lengths must look like 1-8,9-16; got {text!r}")
    return [(lo, hi) for lo, hi in edges]


def even_buckets(lo: int, hi: int, n: int = 4) -> list[tuple[int, int]]:
    step = max(1, -(-(hi - lo + 1) // n))
    return [(a, min(hi, a + step - 1)) for a in range(lo, hi + 1, step)]


def eval_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    p = Parser(prog=prog,
               description="Evaluate a checkpoint: exact match and per-character accuracy.")
    p.add_argument("--checkpoint", default=DEFAULT_RUN,
                   help="run dir or .json (default: %(default)s)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--file", help="evaluate on the lines of this UTF-8 text file instead")
    p.add_argument("--lengths", help="fresh strings in these length buckets, e.g. 33-64,65-128")
    p.add_argument("--samples", type=int, default=200, help="strings per bucket with --lengths")
    p.add_argument("--alphabet", help="alphabet for --lengths (default: the training one)")
    p.add_argument("--examples", type=int, default=5, help="examples to print")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = p.parse_args(argv)
    if args.samples <= 0 or args.examples < 0:
        raise UsageError("--samples must be > 0 and --examples >= 0")
    set_threads(0)
    model, cfg, _ = _load(args.checkpoint, args.device)
    if args.alphabet is not None:
        build_config(cfg.to_dict(), {"data": {"alphabet": args.alphabet}})  # validates the name
    if args.file:
        inputs = read_lines(Path(args.file).read_bytes(), args.file)
        if not inputs:
            raise UsageError(f"{args.file} has no lines")
        longest_line = max(len(x) for x in inputs)
        buckets = parse_buckets(args.lengths) if args.lengths else even_buckets(1, longest_line)
        source = f"lines of {args.file}"
    elif args.lengths:
        buckets = parse_buckets(args.lengths)
        inputs = [x for k, (lo, hi) in enumerate(buckets)
                  for x in draw_inputs(cfg.data, args.samples, 10_000 + k, min_len=lo, max_len=hi,
                                       alphabet=args.alphabet)]
        source = f"{args.samples} fresh strings per bucket"
    else:
        dm = DataModule(cfg.data)
        inputs = dm.test_inputs if args.split == "test" else dm.val_inputs
        buckets = even_buckets(cfg.data.min_len, cfg.data.max_len)
        source = f"{args.split} set"
    longest = max(len(ByteTokenizer().encode(x)) for x in inputs) + 2
    model.check_length(longest)
    result = evaluate(model, inputs, task_for(cfg.data), buckets, args.examples)
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "task": cfg.data.task, "source": source,
                          **result.to_dict()}, ensure_ascii=False))
        return 0
    print(f"task {cfg.data.task}, {source}: {result.n} strings")
    print(f"exact match {result.exact_match:.4f}   per-character accuracy "
          f"{result.char_accuracy:.4f}")
    print(f"{'length':>10} {'n':>6} {'exact':>8} {'char':>8}")
    for name, b in result.buckets.items():
        print(f"{name:>10} {b['n']:>6} {b['exact_match']:>8.4f} {b['char_accuracy']:>8.4f}")
    for ex in result.examples:
        print(f"\ninput : {ex['input']!r}\ntarget: {ex['target']!r}\npred  : {ex['pred']!r}")
    return 0


# ----------------------------------------------------------------------------- infer
def read_lines(data: bytes, name: str) -> list[str]:
    """Lines of UTF-8 ``data`` (without their line ends); invalid UTF-8 is a ``UsageError``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UsageError(f"{name} is not valid UTF-8 (line {line}, byte {e.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def infer_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    p = Parser(prog=prog,
               description="Run a trained model on --text strings or on lines from stdin.")
    p.add_argument("--text", action="append", help="input string (repeatable); else stdin lines")
    p.add_argument("--checkpoint", default=DEFAULT_RUN,
                   help="run dir or .json (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="output length limit in bytes (default: input length + 16)")
    p.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    args = p.parse_args(argv)
    if not 1 <= args.beam <= 64:
        raise UsageError("--beam must be in [1, 64]")
    set_threads(0)
    model, cfg, _ = _load(args.checkpoint, args.device)
    task = task_for(cfg.data)
    texts = args.text if args.text is not None else read_lines(sys.stdin.buffer.read(), "stdin")
    if not texts:
        return 0
    texts = [task.model_input(t) for t in texts]  # e.g. add's zero-padding
    limit = model.cfg.max_positions - 1
    if args.max_new_tokens is not None and not 1 <= args.max_new_tokens <= limit:
        raise UsageError(f"--max-new-tokens must be in [1, {limit}]")
    tok = ByteTokenizer()
    for n, (ids, ended) in enumerate(predict(model, texts, args.max_new_tokens,
                                                      beam=args.beam), 1):
        if not ended:
            print(f"warning: output {n} hit --max-new-tokens before its end", file=sys.stderr)
        if tok.is_valid_utf8(ids):
            print(task.shown(tok.decode(ids)))
        else:
            print(f"warning: output {n} is not valid UTF-8; shown with U+FFFD", file=sys.stderr)
            print(tok.to_bytes(ids).decode("utf-8", errors="replace"))
    return 0


# ----------------------------------------------------------------------------- transformer-tiny
COMMAND = "transformer-tiny"
COMMANDS = {
    "train": "train a model (as python scripts/train.py)",
    "eval": "evaluate a checkpoint (as python scripts/eval.py)",
    "infer": "run a trained model on strings (as python scripts/infer.py)",
    "export": "export a trained model",
    "plot": "draw attention maps, training curves, accuracy by length (as python scripts/plot.py)",
}


def _with_prog(main: Callable[..., int], prog: str) -> Callable[[Sequence[str] | None], int]:
    """``main`` with its usage line naming ``prog``, if it takes a ``prog`` argument."""
    return partial(main, prog=prog) if "prog" in inspect.signature(main).parameters else main


def _command(name: str) -> Callable[..., int]:
    """The ``*_main`` function of command ``name``; ``export`` and ``plot`` are imported only
    when asked for, so that the other commands never depend on them."""
    if name == "export":
        try:
            from .export import export_main
        except ImportError as e:
            if getattr(e, "name", None) == f"{__package__}.export":
                raise UsageError("the export command is not available in this installation "
                                 f"({__package__}.export is missing)") from None
            raise UsageError(f"the export command cannot start: {e}") from None
        return export_main
    if name == "plot":
        from .plots import plot_main

        return plot_main
    return {"train": train_main, "eval": eval_main, "infer": infer_main}[name]


def usage() -> str:
    """The text of ``transformer-tiny --help``."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {COMMAND} COMMAND [options]", "",
             "A from-scratch seq2seq Transformer for toy string tasks (default: reverse).", "",
             "commands:", *(f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()), "",
             f"'{COMMAND} COMMAND --help' lists the options of a command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``transformer-tiny COMMAND [options]``: the same commands, output and exit codes as the
    scripts (one ``error:`` line and exit code 2 for bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not args or args[0] not in COMMANDS:
        given = f"unknown command {args[0]!r}" if args else "a command is required"
        message = f"error: {given}; choose from {', '.join(COMMANDS)} ({COMMAND} --help)"
        print("".join(c if c.isprintable() else repr(c)[1:-1] for c in message), file=sys.stderr)
        return 2
    name = args[0]
    return run_cli(lambda rest: _with_prog(_command(name), f"{COMMAND} {name}")(rest), args[1:])
