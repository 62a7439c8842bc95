"""``scripts/eval.py`` / ``transformer-tiny eval``: exact match, per-character accuracy and
token and character error rates of a checkpoint on its held-out set (with the task's hard
slice), on fresh strings of other lengths, on the lines of a file, or, for task pairs, on
another file of pairs (``--test-file``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import DATA_LIMITS, DataConfig, RunConfig
from ..data import HeldOutSet, bucket_inputs, hard_inputs, held_out_set
from ..metrics import Buckets, EvalResult, evaluate, even_buckets, outside_buckets
from ..pairs import trained_on_note
from ..tasks import Task, task_for
from ..utils import json_text
from .common import (
    MAX_SAMPLES,
    Parser,
    add_beam_argument,
    add_checkpoint_arguments,
    check_buckets,
    load_model,
    nonempty,
    parse_bool,
    parse_buckets,
    read_lines,
)
from .errors import UsageError


def _parser(prog: str | None) -> Parser:
    p = Parser(prog=prog,
               description="Evaluate a checkpoint: exact match and per-character accuracy.")
    add_checkpoint_arguments(p)
    p.add_argument("--split", choices=("test", "val"),
                   help="held-out set to score (default: test)")
    p.add_argument("--file", metavar="FILE", type=nonempty,
                   help="evaluate on the lines of this UTF-8 text file")
    p.add_argument("--lengths", metavar="LO-HI,...",
                   help="fresh strings in these length buckets, e.g. 33-64,65-128 (with --file: "
                        "the buckets of its lines, which may start at 0)")
    p.add_argument("--samples", type=int, default=200, metavar="N",
                   help="strings per bucket with --lengths (default: %(default)s)")
    p.add_argument("--alphabet", metavar="NAME", type=nonempty,
                   help="alphabet for --lengths (default: the training one)")
    p.add_argument("--examples", type=int, default=5, metavar="N",
                   help="examples to print (default: %(default)s)")
    p.add_argument("--hard", type=int, default=200, metavar="N",
                   help="with the held-out set, also N strings of the task's hard slice (0: "
                        "none; default: %(default)s)")
    p.add_argument("--test-file", metavar="FILE", type=nonempty,
                   help="task pairs: evaluate on every input<TAB>output line (or .jsonl) of FILE "
                        f"(at most {DATA_LIMITS['test_samples']:,} inputs)")
    p.add_argument("--skip-bad-lines", type=parse_bool, metavar="{true,false}",
                   help="task pairs: skip the lines of the files read that cannot be pairs, "
                        "with a warning (default: as the run was trained)")
    add_beam_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    return p


def _pairs(args: argparse.Namespace, cfg: RunConfig, info: dict[str, Any]
           ) -> tuple[list[str], list[list[str]], Buckets, str]:
    """Inputs and accepted outputs of the ``pairs`` task, their length buckets and where they
    came from: ``--test-file``, or the split of the files the checkpoint was trained on (with a
    warning if they changed since)."""
    data = cfg.data  # the files and the held-out split of training
    if args.skip_bad_lines is not None:
        data = replace(data, skip_bad_lines=args.skip_bad_lines)
    if args.test_file:  # all of another file, not the training run's number of test inputs
        data = replace(data, test_file=args.test_file, test_samples=DATA_LIMITS["test_samples"])
    split = "test" if args.test_file else args.split
    held = _held_out(data, split, cfg.model.max_input_bytes, info)
    source = f"pairs of {args.test_file}" if args.test_file else f"{split} set"
    if not held.inputs:
        raise UsageError(f"task pairs: the {source} holds no pairs")
    if args.test_file:
        _warn_of_test_file(args.test_file, held, cfg, info)
    buckets = even_buckets(1, max(len(x) for x in held.inputs))
    return held.inputs, held.references or [], buckets, source


def _warn_of_test_file(path: str, held: HeldOutSet, cfg: RunConfig, info: dict[str, Any]) -> None:
    """Warnings on a ``--test-file``: more inputs than a test set takes, inputs trained on."""
    record = next(f for f in held.files if f.role == "test")
    n = len(held.inputs)
    if record.inputs > n:  # past the limit of a test set
        print(f"warning: {path} holds {record.inputs:,} inputs: {n:,} of them are scored, "
              "chosen by hash", file=sys.stderr)
    note = trained_on_note(cfg.data, held.inputs, path, cfg.model.max_input_bytes,
                           info.get("data_files"))
    if note:
        print(f"warning: {note}", file=sys.stderr)


def _held_out(data: DataConfig, split: str, max_input_bytes: int, info: dict[str, Any]
              ) -> HeldOutSet:
    """:func:`~transformer_tiny.data.held_out_set`, its notes printed as warnings."""
    held = held_out_set(data, split, max_input_bytes, info)
    for note in held.notes:
        print(f"warning: {note}", file=sys.stderr)
    return held


def _hard_slice(args: argparse.Namespace, model, cfg: RunConfig) -> dict:
    """Scores on the task's hard slice (``--hard`` strings of it)."""
    task = task_for(cfg.data)
    result = evaluate(model, hard_inputs(cfg.data, args.hard), task, beam=args.beam)
    return {"description": task.hard, "exact_match": result.exact_match,
            "char_accuracy": result.char_accuracy, "n": result.n}


def _file_lines(args: argparse.Namespace, cfg: RunConfig) -> tuple[list[str], Buckets]:
    """The lines of ``--file`` and their length buckets (``--lengths``, or four even ones); a
    warning counts the lines that fall in none."""
    with Path(args.file).open("rb") as f:
        inputs = read_lines(f, args.file, cfg.model.max_input_bytes)
    if not inputs:
        raise UsageError(f"{args.file} has no lines")
    shortest = 0 if "" in inputs else 1  # an empty line is scored: it has a bucket too
    buckets = args.buckets or even_buckets(shortest, max(len(x) for x in inputs))
    note = outside_buckets(inputs, buckets)
    if note:
        print(f"warning: {args.file}: {note}", file=sys.stderr)
    return inputs, buckets


def _inputs(args: argparse.Namespace, cfg: RunConfig, info: dict[str, Any]
            ) -> tuple[list[str], None, Buckets, str]:
    """The strings of a generated task to score (their answers are the task's), their length
    buckets, and where they came from."""
    if args.file:
        inputs, buckets = _file_lines(args, cfg)
        return inputs, None, buckets, f"lines of {args.file}"
    if args.buckets:
        check_buckets(args.buckets, cfg, args.samples, args.alphabet)
        inputs = bucket_inputs(cfg.data, args.buckets, args.samples, alphabet=args.alphabet)
        return inputs, None, args.buckets, f"{args.samples} fresh strings per bucket"
    inputs = _held_out(cfg.data, args.split, cfg.model.max_input_bytes, info).inputs
    buckets = even_buckets(cfg.data.min_len, cfg.data.max_len)
    return inputs, None, buckets, f"{args.split} set"


def _check_task_flags(args: argparse.Namespace, task: Task) -> None:
    """The flags that go with one kind of task only: pairs read from files, or generated."""
    if task.reads_files and (args.file or args.lengths):
        raise UsageError("task pairs: evaluate on a file of pairs with --test-file")
    if not task.reads_files and args.skip_bad_lines is not None:
        raise UsageError(f"--skip-bad-lines is for task pairs; this model is task {task.name}")
    if not task.reads_files and args.test_file:
        raise UsageError(f"--test-file is for task pairs; this model is task {task.name} "
                         "(--file scores the lines of a file)")


def _check_arguments(args: argparse.Namespace) -> None:
    """The numeric flags, ``--lengths`` and the flags that only go with some others, checked
    before the model is loaded (sets ``args.split`` and ``args.buckets``)."""
    if args.samples <= 0 or args.examples < 0:
        raise UsageError("--samples must be > 0 and --examples >= 0")
    if not 0 <= args.hard <= MAX_SAMPLES:
        raise UsageError(f"--hard must be in [0, {MAX_SAMPLES}]")
    given = {"--file": args.file, "--lengths": args.lengths, "--test-file": args.test_file}
    other = next((flag for flag, value in given.items() if value is not None), None)
    if args.split is not None and other:
        raise UsageError(f"--split picks a held-out set: {other} scores other strings")
    if args.alphabet is not None and (args.lengths is None or args.file):
        raise UsageError("--alphabet is for the fresh strings of --lengths" +
                         ("; --file scores its own lines" if args.file else ""))
    args.split = args.split or "test"
    args.buckets = None if args.lengths is None else parse_buckets(args.lengths,
                                                                   empty=args.file is not None)


def _print_table(task: str, source: str, result: EvalResult) -> None:
    print(f"task {task}, {source}: {result.n} strings")
    print(f"exact match {result.exact_match:.4f}   per-character accuracy "
          f"{result.char_accuracy:.4f}")
    print(f"token error rate {result.token_error_rate:.4f}   character error rate "
          f"{result.char_error_rate:.4f}")
    print(f"{'length':>10} {'n':>6} {'exact':>8} {'char':>8}")
    for name, b in result.buckets.items():
        print(f"{name:>10} {b['n']:>6} {b['exact_match']:>8.4f} {b['char_accuracy']:>8.4f}")
    for ex in result.examples:
        print(f"\ninput : {ex['input']!r}\ntarget: {ex['target']!r}\npred  : {ex['pred']!r}")


def eval_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    _check_arguments(args)
    model, cfg, info = load_model(args)
    task = task_for(cfg.data)
    _check_task_flags(args, task)
    inputs, references, buckets, source = (_pairs if task.reads_files else _inputs)(args, cfg,
                                                                                    info)
    result = evaluate(model, inputs, task, buckets, args.examples, references=references,
                      beam=args.beam)
    asks_hard = args.hard > 0 and not (args.file or args.lengths)  # with the held-out set only
    hard = _hard_slice(args, model, cfg) if asks_hard and task.make_hard else None
    if args.json:
        extra = {"hard": hard} if hard else {}
        print(json_text({"checkpoint": args.checkpoint, "task": cfg.data.task,
                          "source": source, **result.to_dict(), **extra}))
        return 0
    _print_table(cfg.data.task, source, result)
    if hard:
        print(f"\nhard slice ({hard['description']}): exact match {hard['exact_match']:.4f}   "
              f"per-character accuracy {hard['char_accuracy']:.4f} ({hard['n']} strings)")
    elif asks_hard and not task.reads_files:  # a toy task without a slice
        print(f"\nno hard slice: task {cfg.data.task} registers none (make_hard in tasks.py)")
    return 0
