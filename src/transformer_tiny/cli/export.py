"""``scripts/export.py`` / ``transformer-tiny export``: write the ONNX graphs of a checkpoint, then
check that onnxruntime decodes as PyTorch does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..api import load
from ..checkpoint import resolve_checkpoint
from ..config import RunConfig
from ..data import DataModule
from ..decoding import predict
from ..export import MANIFEST, claim_export_dir, export_onnx
from ..extras import require
from ..onnx_decoding import OnnxSeq2Seq, onnx_predict
from ..pair_files import PairsError
from ..rundir import RunDirError
from ..tasks import Task, task_for
from ..tokenizer import ByteTokenizer
from ..web import export_web
from .common import Parser, add_checkpoint_arguments, check_texts, load_model, nonempty
from .errors import UsageError


def _parser(prog: str | None) -> Parser:
    p = Parser(prog=prog, description="Export a checkpoint to ONNX (the encoder and one decoder "
               "step) and check that onnxruntime decodes as PyTorch does.")
    add_checkpoint_arguments(p, device=False)
    p.add_argument("--out", metavar="DIR", type=nonempty,
                   help="output folder (default: onnx/ beside the checkpoint)")
    p.add_argument("--verify", type=int, default=200, metavar="N",
                   help="greedy-decode N held-out test strings with onnxruntime and with PyTorch "
                        "and compare them (0: skip; default: %(default)s)")
    p.add_argument("--text", action="append", metavar="TEXT",
                   help="also decode this string with onnxruntime (repeatable)")
    p.add_argument("--web", metavar="DIR", type=nonempty,
                   help="also write model.json for the browser page "
                   "(web/) beside the graphs, in DIR (e.g. web/model)")
    p.add_argument("--hf", metavar="DIR", type=nonempty,
                   help="instead of ONNX, write the shared layout of the "
                   "Hugging Face Hub: config.json, model.safetensors and a model card README.md")
    return p


def export_shared(args) -> int:
    """``--hf DIR``: the checkpoint as a shared folder (no ONNX packages needed)."""
    folder = load(args.checkpoint).save_pretrained(args.hf)
    print(f"wrote {folder}: config.json, model.safetensors, README.md")
    return 0


def _verify(runner: OnnxSeq2Seq, model, inputs: list[str], task: Task) -> bool:
    """Greedy outputs of onnxruntime and PyTorch on ``inputs`` (with the task's output room);
    prints how many agree."""
    tok = ByteTokenizer()
    ours = onnx_predict(runner, inputs, max_new_tokens=task.output_room)
    reference = [tok.decode(ids) for ids, _ in predict(model, inputs, task.output_room)]
    same = sum(a == b for a, b in zip(ours, reference, strict=True))
    print(f"onnxruntime and PyTorch greedy outputs agree on {same}/{len(inputs)} held-out "
          "test strings")
    return same == len(inputs)


def _claim_out(args: argparse.Namespace) -> Path:
    """The output folder, refused before anything is written if it is not a directory or holds
    files that an export did not write (the error names the flag)."""
    flag = "--web" if args.web else "--out"
    out = Path(args.web or args.out or resolve_checkpoint(args.checkpoint).parent / "onnx")
    try:
        claim_export_dir(out)
    except RunDirError as e:
        raise UsageError(f"{flag} {e}") from None
    return out


def _held_out(cfg: RunConfig, n: int) -> list[str]:
    """The first ``n`` held-out test inputs; none (and no data read) when ``n`` is 0. A pairs
    file that cannot be read is an error that says how to export without it."""
    if not n:
        return []
    try:
        return DataModule(cfg.data, cfg.model.max_input_bytes).test_inputs[:n]
    except PairsError as e:
        raise UsageError(f"{e} (the check of the export reads the test split from the "
                         "training data; --verify 0 exports without it)") from None


def export_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    if args.verify < 0:
        raise UsageError("--verify must be >= 0")
    if args.hf:
        ignored = [flag for flag, given in (("--out", args.out), ("--web", args.web),
                                            ("--text", args.text)) if given]
        if ignored:
            raise UsageError(f"--hf writes the shared layout only: {', '.join(ignored)} would "
                             "be ignored (run the ONNX export separately)")
        return export_shared(args)
    if args.web and args.out:
        raise UsageError("--web DIR is the output folder: give --web or --out, not both")
    for module in ("onnx", "onnxruntime"):
        require(module, "onnx", "ONNX export")
    args.device = "cpu"
    model, cfg, _ = load_model(args)
    tok, task = ByteTokenizer(), task_for(cfg.data)
    check_texts(args.text or [])
    texts = [task.model_input(text) for text in args.text or []]  # e.g. add's zero-padding
    for text in texts:
        cfg.model.check_positions(len(tok.encode(text)) + 2)  # BOS and EOS
    out = _claim_out(args)
    held_out = _held_out(cfg, args.verify)  # before the export: a missing file stops it
    paths = export_web(args.checkpoint, out) if args.web else export_onnx(model, out)
    print(f"wrote {paths['encoder']} and {paths['decoder_step']}"
          + (f" and {out / MANIFEST}" if args.web else ""))
    runner = OnnxSeq2Seq(out)
    if args.verify and not held_out:
        print("warning: not verified: the test split holds no strings to compare onnxruntime "
              "with PyTorch on", file=sys.stderr)
    elif args.verify and not _verify(runner, model, held_out, task):
        print("error: onnxruntime and PyTorch disagree", file=sys.stderr)
        return 1
    outputs = onnx_predict(runner, texts, max_new_tokens=task.output_room)
    for text, output in zip(args.text or [], outputs, strict=True):
        print(f"{text!r} -> {task.shown(output)!r}")
    return 0
