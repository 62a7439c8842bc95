"""What the commands share: the argument parser, the shared flags (one per config field, and the
checkpoint's), loading a checkpoint, and reading input lines and length buckets. How a failure
reaches the user: :mod:`transformer_tiny.cli.errors`.
"""

from __future__ import annotations

import argparse
import difflib
import shlex
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import fields, replace
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO

from ..checkpoint import CheckpointError, load_checkpoint
from ..config import DEVICES, SECTIONS, RunConfig
from ..decoding import MAX_BEAM
from ..inputs import longest_input, widest_input_character
from ..model import Seq2SeqTransformer
from ..tasks import task_for
from ..utils import pick_device, set_threads
from .errors import UsageError

DEFAULT_RUN = "runs/quickstart"
MAX_SAMPLES = 100_000  # the most strings a command draws per length bucket, or for --hard
TRAIN_HINT = "train one first: python scripts/train.py --epochs 3 --batch-size 128"


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line (no usage dump) and exit code 2, and whose
    ``--text`` takes a value that starts with a dash (``--text -1+2``, ``--text --``), which
    argparse would read as a flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # spelled whole: --data is no --data-seed
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message + self._did_you_mean(message))

    def _did_you_mean(self, message: str) -> str:
        """``" (did you mean --train-file?)"`` for the first unrecognized flag close to one of
        ours (``--train_file``, ``--epoch``), else ``""``."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        ours = [o for o in self._option_string_actions if o.startswith("--")]
        for word in message.removeprefix("unrecognized arguments:").split():
            flag = word.split("=")[0].replace("_", "-")
            if flag.startswith("--"):
                close = difflib.get_close_matches(flag, ours, n=1, cutoff=0.75)
                if close:
                    return f" (did you mean {close[0]}?)"
        return ""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        args = list(sys.argv[1:] if args is None else args)
        if "--text" not in self._option_string_actions:  # a command without --text: as given
            return super().parse_known_args(args, namespace)
        glued, i = [], 0
        while i < len(args):
            if args[i] == "--":  # the rest are positional: as they are
                glued += args[i:]
                break
            if args[i] == "--text" and i + 1 < len(args) and args[i + 1].startswith("-"):
                glued.append(f"--text={args[i + 1]}")
                i += 2
                continue
            glued.append(args[i])
            i += 1
        parsed, rest = super().parse_known_args(glued, namespace)
        # argparse drops a value "--" (``--text=--``), leaving []: it was the text "--"
        text = getattr(parsed, "text", None)
        if isinstance(text, list):
            parsed.text = "--" if text == [] else ["--" if t == [] else t for t in text]
        return parsed, rest


def parse_bool(text: str) -> bool:
    """A flag's ``true``/``false`` (also 1/0, yes/no, on/off)."""
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


_METAVARS = {"int": "N", "float": "X", "str": "TEXT", "bool": "{true,false}"}


def add_config_arguments(parser: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    """Add one ``--field-name`` flag per dataclass field of the given sections (default: unset),
    described by the field's help text; fields with a fixed set of values list them."""
    for section in sections:
        group = parser.add_argument_group(f"{section} config")
        for f in fields(SECTIONS[section]):
            kind = {"int": int, "float": float, "str": str, "bool": parse_bool}[str(f.type)]
            choices = f.metadata.get("choices")
            choices = choices() if callable(choices) else choices
            default = str(f.default).lower() if kind is parse_bool else f.default
            group.add_argument(f"--{f.name.replace('_', '-')}", dest=f"{section}.{f.name}",
                               type=kind, default=None, choices=choices,
                               metavar=None if choices else _METAVARS[str(f.type)],
                               help=_with_default(f.metadata.get("help", ""), default))


def _with_default(text: str, default: Any) -> str:
    """A flag's help text with its default, unless the text already says it."""
    return text if "(default:" in text else f"{text} (default: {default})"


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config flags that were given, as ``{section: {field: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in vars(args).items():
        if "." in key and value is not None:
            section, name = key.split(".", 1)
            out.setdefault(section, {})[name] = value
    return out


def nonempty(text: str) -> str:
    """An argument that names a file or folder: an empty one is an error, not "not given"."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def beam_width(text: str) -> int:
    """``--beam``: an integer in ``[1, MAX_BEAM]``."""
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 1 <= k <= MAX_BEAM:
        raise argparse.ArgumentTypeError(f"must be in [1, {MAX_BEAM}]")
    return k


def add_beam_argument(p: argparse.ArgumentParser) -> None:
    """``--beam K`` of the commands that decode."""
    p.add_argument("--beam", type=beam_width, default=1, metavar="K",
                   help=f"beam width, 1 to {MAX_BEAM} (default: 1, greedy)")


def add_checkpoint_arguments(p: argparse.ArgumentParser, device: bool = True) -> None:
    """The flags of every command that reads a trained model: ``--checkpoint`` (and
    ``--device``)."""
    p.add_argument("--checkpoint", default=DEFAULT_RUN, metavar="PATH", type=nonempty,
                   help="run folder or checkpoint .json (default: %(default)s)")
    if device:
        p.add_argument("--device", default="cpu", choices=DEVICES,
                       help="where the model runs (default: %(default)s)")


def load_model(args: argparse.Namespace
               ) -> tuple[Seq2SeqTransformer, RunConfig, dict[str, Any]]:
    """The model, config and checkpoint info of ``args.checkpoint`` on ``args.device``, with
    one thread per core; a missing checkpoint says how to train one."""
    set_threads(0)
    try:
        return load_checkpoint(args.checkpoint, pick_device(args.device))
    except CheckpointError as e:
        if not Path(args.checkpoint).exists():
            raise CheckpointError(f"{e}; {train_hint(args.checkpoint)}") from None
        raise


def train_hint(checkpoint: str) -> str:
    """How to train the missing ``checkpoint``: the quickstart command, into its folder."""
    path = Path(checkpoint)
    folder = path.parent if path.suffix in (".json", ".safetensors") else path
    if folder == Path(DEFAULT_RUN):
        return TRAIN_HINT
    return f"{TRAIN_HINT} --out {shlex.quote(folder.as_posix())}"


def _decode_line(raw: bytes, name: str, line: int, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{name} is not valid UTF-8 (line {line}, byte {offset + e.start})"
                         ) from None


def read_lines(stream: BinaryIO, name: str, max_line_bytes: int | None = None) -> list[str]:
    """Lines of the UTF-8 ``stream`` (without their line ends). Invalid UTF-8, or a line of
    more than ``max_line_bytes`` bytes, is a ``UsageError`` raised before the rest of that line
    is read."""
    lines, offset = [], 0
    limit = -1 if max_line_bytes is None else max_line_bytes + 2  # room for CR LF
    while raw := stream.readline(limit):
        body = raw.removesuffix(b"\n").removesuffix(b"\r")
        if max_line_bytes is not None and len(body) > max_line_bytes:
            raise UsageError(f"{name} line {len(lines) + 1} is longer than {max_line_bytes} "
                             "bytes, the longest input this model takes")
        lines.append(_decode_line(body, name, len(lines) + 1, offset))
        offset += len(raw)
    return lines


def check_texts(texts: list[str]) -> None:
    """``--text`` values must be valid UTF-8, as lines of stdin must be (the shell hands Python
    invalid bytes as lone surrogates)."""
    for n, text in enumerate(texts, 1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"--text {n} is not valid UTF-8") from None


_BIDI_CONTROLS = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def for_terminal(text: str) -> str:
    """``text`` with control characters (and bidirectional overrides) escaped, so that model
    output cannot drive the terminal: an ESC byte is shown as ``\\x1b``."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" or ord(c) in _BIDI_CONTROLS
                   else c for c in text)


def check_buckets(buckets: list[tuple[int, int]], cfg: RunConfig, samples: int,
                  alphabet: str | None = None) -> None:
    """``--lengths`` (in characters of the task's alphabet, or of ``alphabet``) and ``--samples``
    within what the model can take, checked before any string is drawn."""
    data = replace(cfg.data, alphabet=alphabet) if alphabet else cfg.data
    top = max((hi for _, hi in buckets), default=0)
    if task_for(data).within_training_lengths and top > data.max_len:
        raise UsageError(f"--lengths go up to {top} characters; this {data.task} model reads no "
                         f"inputs longer than its training ones, at most {data.max_len} "
                         "characters")
    widest, longest = widest_input_character(data), longest_input(data, cfg.model.max_input_bytes)
    if top > longest:
        width = "1 byte" if widest == 1 else f"up to {widest} bytes"
        raise UsageError(f"--lengths go up to {top} characters; this model takes inputs of at "
                         f"most {cfg.model.max_input_bytes} bytes, and a character takes "
                         f"{width}: at most {longest} characters")
    if not 0 < samples <= MAX_SAMPLES:
        raise UsageError(f"--samples must be in [1, {MAX_SAMPLES}]")


def parse_buckets(text: str, empty: bool = False) -> list[tuple[int, int]]:
    """``--lengths`` text ``"1-8,9-16"`` -> ``[(1, 8), (9, 16)]``. Each starts at 1 or more (0
    with ``empty``: the lines of a file may be empty), and no length is in two of them (a string
    would be counted twice)."""
    try:
        edges = [tuple(int(x) for x in part.split("-")) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--lengths must look like 1-8,9-16; got {text!r}") from None
    if not all(len(e) == 2 and 0 <= e[0] <= e[1] for e in edges):
        raise UsageError(f"--lengths must look like 1-8,9-16; got {text!r}")
    buckets = [(lo, hi) for lo, hi in edges]
    if min(lo for lo, _ in buckets) < (0 if empty else 1):
        raise UsageError(f"--lengths start at 1 (a fresh string has at least one character; "
                         f"the lines of a --file may start at 0); got {text!r}")
    for (lo, hi), (next_lo, next_hi) in pairwise(sorted(buckets)):
        if next_lo <= hi:
            both = f"{lo}-{hi} twice" if (lo, hi) == (next_lo, next_hi) else \
                f"{lo}-{hi} and {next_lo}-{next_hi}, which overlap"
            raise UsageError(f"--lengths names {both}: each length goes in one bucket only")
    return buckets
