"""``scripts/infer.py`` / ``transformer-tiny infer``: a trained model's answers to ``--text``
strings or to the lines of standard input, one line each (on a terminal; piped, an answer that
holds a line break spans more, and ``--json`` writes one JSON line per answer instead)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from ..api import TinyModel
from ..config import ModelConfig
from ..tasks import OUTPUT_MARGIN, task_for
from .common import (
    Parser,
    add_beam_argument,
    add_checkpoint_arguments,
    check_texts,
    for_terminal,
    load_model,
    read_lines,
)
from .errors import UsageError, one_line


def _parser(prog: str | None) -> Parser:
    p = Parser(prog=prog,
               description="Run a trained model on --text strings or on lines from stdin.")
    p.add_argument("--text", action="append", metavar="TEXT",
                   help="input string (repeatable; one that starts with a dash is a text too: "
                        "--text -1+2); without it, each line of stdin. At most "
                        "the model's max_positions - 2 bytes: "
                        f"{ModelConfig().max_input_bytes:,} with the default config")
    add_checkpoint_arguments(p)
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help="output length limit in bytes (default: the task's room, for most "
                        f"tasks the input's bytes + 2 + {OUTPUT_MARGIN})")
    add_beam_argument(p)
    p.add_argument("--json", action="store_true",
                   help="one line of ASCII JSON per answer (input, output, ended, valid_utf8), "
                        "even for an output that holds a line break")
    return p


def warn_unseen(texts: list[str], model: TinyModel) -> None:
    """A warning for each input that holds characters the model never saw in training (it is
    answered anyway: the user may want to see what happens)."""
    for n, text in enumerate(texts, 1):
        if not text and model.task.reads_files:  # pairs files hold no empty input
            print(f"warning: input {n} is empty: this model never saw an empty input in "
                  "training", file=sys.stderr)
        new = model.unseen_characters(text)
        if new:
            names = ", ".join(one_line(repr(c)) for c in new[:5])
            more = ", ..." if len(new) > 5 else ""
            print(f"warning: input {n} holds characters this model never saw in training: "
                  f"{names}{more}", file=sys.stderr)


def infer_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    model, cfg, info = load_model(args)
    limit = model.cfg.max_new_tokens  # checked before any input is read or warned of
    if args.max_new_tokens is not None and not 1 <= args.max_new_tokens <= limit:
        raise UsageError(f"--max-new-tokens must be in [1, {limit}]")
    if args.text is not None:
        check_texts(args.text)
    texts = args.text if args.text is not None else \
        read_lines(sys.stdin.buffer, "stdin", cfg.model.max_input_bytes)
    if not texts:
        return 0
    task = task_for(cfg.data)
    for text in texts:  # a text outside the task's format (add's) fails before any warning
        task.model_input(text)
    tiny = TinyModel(model, cfg, info)
    warn_unseen(texts, tiny)  # of what the model reads (add's spaces dropped)
    shown = for_terminal if sys.stdout.isatty() else str
    answers = tiny.answers(texts, args.beam, args.max_new_tokens)
    for n, (text, answer) in enumerate(zip(texts, answers, strict=True), 1):
        output = answer.text
        if not answer.valid_utf8:  # its invalid bytes as U+FFFD
            output = output.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        if args.json:  # ASCII: every character that could break the line or drive a terminal
            print(json.dumps({"input": text, "output": output, "ended": answer.ended,  # escaped
                              "valid_utf8": answer.valid_utf8}))
            continue
        if not answer.ended:
            print(f"warning: output {n} hit --max-new-tokens before its end", file=sys.stderr)
        if not answer.valid_utf8:
            print(f"warning: output {n} is not valid UTF-8; shown with U+FFFD", file=sys.stderr)
        print(shown(output))
    return 0
