"""The command layer: ``scripts/*.py``, ``python -m transformer_tiny`` and the
``transformer-tiny COMMAND`` console command (:func:`main`), one module per command.

Every expected failure (bad flag, bad config value, missing or corrupted checkpoint, unreadable
input, input too long) prints one ``error: ...`` line to stderr and exits with code 2. The
library below never imports this package.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from .errors import UsageError, run_cli

COMMAND = "transformer-tiny"
COMMANDS = {  # name: (module, function, description)
    "train": ("train", "train_main", "train a model (as python scripts/train.py)"),
    "eval": ("eval", "eval_main", "evaluate a checkpoint (as python scripts/eval.py)"),
    "infer": ("infer", "infer_main", "run a trained model on strings (as python scripts/infer.py)"),
    "export": ("export", "export_main", "export a trained model to ONNX (as python "
               "scripts/export.py)"),
    "plot": ("plot", "plot_main", "draw attention maps, training curves, accuracy by length (as "
             "python scripts/plot.py)"),
}


def command(name: str) -> Callable[..., int]:
    """The ``*_main`` function of command ``name``, imported only when asked for, so that no
    command depends on another's optional extras."""
    module_name, function, _ = COMMANDS[name]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as e:
        raise UsageError(f"the {name} command cannot start: {e}") from None
    return getattr(module, function)


def usage() -> str:
    """The text of ``transformer-tiny --help``."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {COMMAND} COMMAND [options]", "",
             "A from-scratch seq2seq Transformer for toy string tasks (default: reverse).", "",
             "commands:",
             *(f"  {name:<{width}}  {text}" for name, (_, _, text) in COMMANDS.items()),
             "", f"'{COMMAND} COMMAND --help' lists the options of a command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``transformer-tiny COMMAND [options]``: the same commands, output and exit codes as the
    scripts (one ``error:`` line and exit code 2 for bad input)."""
    return run_cli(_dispatch, list(sys.argv[1:] if argv is None else argv))


def _dispatch(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not args or args[0] not in COMMANDS:
        given = f"unknown command {args[0]!r}" if args else "a command is required"
        raise UsageError(f"{given}; choose from {', '.join(COMMANDS)} ({COMMAND} --help)")
    name = args[0]
    return command(name)(args[1:], prog=f"{COMMAND} {name}")
