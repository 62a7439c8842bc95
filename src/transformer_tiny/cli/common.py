"""What the commands share: the argument parser, the shared flags, loading a checkpoint, reading
input lines, and turning every expected failure into one ``error:`` line and exit code 2.

Library modules raise ordinary exceptions (``ValueError``, ``OSError``, ``ConfigError``,
``CheckpointError``); only the commands decide how they reach the user.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..checkpoint import CheckpointError, load_checkpoint
from ..config import DEVICES, ConfigError, RunConfig
from ..model import Seq2SeqTransformer
from ..utils import pick_device, set_threads

DEFAULT_RUN = "runs/quickstart"
TRAIN_HINT = "train one first: python scripts/train.py --epochs 3 --batch-size 128"


class UsageError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def one_line(message: str) -> str:
    """``message`` as one printable line: its first line, control characters escaped."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in first)


def error_message(e: BaseException) -> str:
    """What the user reads for an expected failure ``e``."""
    if isinstance(e, UnicodeError):
        return f"text cannot be encoded: {e.reason}"
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.strerror or e}: {e.filename}"
    return one_line(str(e)) or type(e).__name__


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main`` and turn expected failures into one ``error:`` line and exit code 2."""
    try:
        return main(argv)
    except (UsageError, ConfigError, CheckpointError, ValueError, OSError) as e:
        print(f"error: {one_line(error_message(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def add_checkpoint_arguments(p: argparse.ArgumentParser, device: bool = True) -> None:
    """The flags of every command that reads a trained model: ``--checkpoint`` (and
    ``--device``)."""
    p.add_argument("--checkpoint", default=DEFAULT_RUN, metavar="PATH",
                   help="run folder or checkpoint .json (default: %(default)s)")
    if device:
        p.add_argument("--device", default="cpu", choices=DEVICES,
                       help="where the model runs (default: %(default)s)")


def load_model(args: argparse.Namespace) -> tuple[Seq2SeqTransformer, RunConfig]:
    """The model and config of ``args.checkpoint`` on ``args.device``, with one thread per core;
    a missing checkpoint says how to train one."""
    set_threads(0)
    try:
        model, cfg, _ = load_checkpoint(args.checkpoint, pick_device(args.device))
    except CheckpointError as e:
        if not Path(args.checkpoint).exists():
            raise CheckpointError(f"{e}; {TRAIN_HINT}") from None
        raise
    return model, cfg


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


def parse_buckets(text: str) -> list[tuple[int, int]]:
    """``--lengths`` text ``"1-8,9-16"`` -> ``[(1, 8), (9, 16)]``."""
    try:
        edges = [tuple(int(x) for x in part.split("-")) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--lengths must look like 1-8,9-16; got {text!r}") from None
    if not all(len(e) == 2 and 0 <= e[0] <= e[1] for e in edges):
        raise UsageError(f"--lengths must look like 1-8,9-16; got {text!r}")
    return [(lo, hi) for lo, hi in edges]
