"""``scripts/plot.py`` / ``transformer-tiny plot``: write the PNGs of a trained model (its
cross-attention, its training curves, its accuracy by input length) and print their paths."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..checkpoint import resolve_checkpoint
from ..inputs import DEFAULT_TEXT
from ..plots import PLOTS, draw, drawable, new_figure
from .common import (
    Parser,
    add_checkpoint_arguments,
    check_buckets,
    check_texts,
    load_model,
    nonempty,
    parse_buckets,
)
from .errors import UsageError


def _parser(prog: str | None) -> Parser:
    p = Parser(prog=prog, description="Draw PNGs of a trained model: its cross-attention for "
               "--text, its training curves and its accuracy by input length.")
    add_checkpoint_arguments(p)
    p.add_argument("--text", metavar="TEXT",
                   help="input whose cross-attention is drawn (default: "
                   f"{DEFAULT_TEXT!r}, or one the task draws if its training inputs could not "
                   "hold that)")
    p.add_argument("--out", metavar="DIR", type=nonempty,
                   help="folder for the PNGs (default: the run "
                   "folder's plots/)")
    p.add_argument("--only", action="append", choices=list(PLOTS),
                   help="draw only this picture (repeatable; default: all three)")
    p.add_argument("--lengths", metavar="LO-HI,...", help="length buckets for the accuracy "
                   "picture, e.g. 1-16,17-64 (default: the training lengths in 4 buckets, then "
                   "up to 2x and 4x longer)")
    p.add_argument("--samples", type=int, default=100, metavar="N",
                   help="strings per length bucket (default: %(default)s)")
    return p


def _check_out(out: Path, flag: bool) -> None:
    """``out`` and the folders above it that exist must be folders."""
    name = f"--out {out}" if flag else str(out)
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                what = "not a folder" if path == out else f"{path} is not a folder"
                raise UsageError(f"{name}: {what}")
            return


def plot_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    if args.samples <= 0:
        raise UsageError("--samples must be > 0")
    if args.text is not None:
        if not args.text:
            raise UsageError("--text must not be empty")
        check_texts([args.text])
    buckets = parse_buckets(args.lengths) if args.lengths else None
    new_figure(1.0, 1.0)  # without matplotlib: fail before loading anything
    model, cfg, _ = load_model(args)
    check_buckets(buckets or [], cfg, args.samples)
    run_dir = resolve_checkpoint(args.checkpoint).parent
    out = Path(args.out) if args.out else run_dir / "plots"
    _check_out(out, bool(args.out))
    kinds, notes = drawable(cfg, run_dir, args.only)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    written = draw(model, cfg, out, kinds, args.text, buckets, args.samples, run_dir)
    for path in written:
        print(path)
    return 0
