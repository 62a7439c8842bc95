"""Shared helpers for the test suite: tiny models and batches, the commands run in-process or as
subprocesses, and the checks several test modules share. Import them: ``from helpers import ...``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import torch

from transformer_tiny.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer

ROOT = Path(__file__).resolve().parents[1]  # the repository (pyproject.toml puts src/ on the path)
TOK = ByteTokenizer()

TINY = dict(d_model=32, n_heads=4, n_enc_layers=1, n_dec_layers=2, d_ff=64, max_positions=64,
            position_scheme="rope", randomize_positions=False)  # ModelConfig fields


def make_model(seed: int = 0, dtype: torch.dtype = torch.float64, eval_mode: bool = True,
               **overrides) -> Seq2SeqTransformer:
    """A small random model: :data:`TINY` updated with ``overrides`` (:class:`ModelConfig` fields).

    Float64 by default so that comparisons between mathematically equal computations can use
    tight tolerances.
    """
    torch.manual_seed(seed)
    model = Seq2SeqTransformer(ModelConfig(**{**TINY, **overrides})).to(dtype)
    return model.train(not eval_mode)


def weights_of(json_path: Path) -> Path:
    """The weights file that a checkpoint JSON names."""
    return json_path.parent / json.loads(json_path.read_text(encoding="utf-8"))["weights"]


def random_rows(lengths: list[int], seed: int = 0) -> list[list[int]]:
    """One list of random byte ids per length (deterministic in ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (n,), generator=g).tolist() for n in lengths]


def pad_rows(rows: list[list[int]], bos: bool = False, eos: bool = False) -> torch.Tensor:
    """Right-pad (optionally BOS/EOS-wrapped) rows with PAD to the longest."""
    wrapped = [[BOS_ID] * bos + list(r) + [EOS_ID] * eos for r in rows]
    out = torch.full((len(rows), max(len(r) for r in wrapped)), PAD_ID, dtype=torch.long)
    for i, r in enumerate(wrapped):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def source_batch(lengths: list[int], seed: int = 0) -> torch.Tensor:
    """``BOS x EOS`` sources of random bytes with the given byte lengths, right-padded."""
    return pad_rows(random_rows(lengths, seed), bos=True, eos=True)


def target_batch(lengths: list[int], seed: int = 1) -> torch.Tensor:
    """``BOS y`` decoder inputs of random bytes with the given byte lengths, right-padded."""
    return pad_rows(random_rows(lengths, seed), bos=True)


# ----------------------------------------------------------------------------- model properties
SCHEMES = ["sinusoidal", "rope"]

IMPLS = ["sdpa", "math"]

SRC_LENGTHS = [6, 1, 11, 0, 3]  # bytes per row; mixed, including an empty input

TGT_LENGTHS = [4, 9, 2, 0, 7]


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def trim(x: torch.Tensor) -> torch.Tensor:
    """Drop the all-PAD columns at the right of a 1-row batch."""
    n = int((x != PAD_ID).sum())
    return x[:, :max(n, 1)]


# ----------------------------------------------------------------------------- surrogate output
SURROGATE_BYTES = [0xED, 0xA0, 0x80]  # "\ud800" as written by the surrogatepass error handler


def bigram_model(logprobs: dict[int, dict[int, float]], floor: float = -40.0
                 ) -> Seq2SeqTransformer:
    """A hand-wired model whose next-token log-probabilities depend only on the current token:
    ``logprobs[current][following]`` (every other token gets ``floor``), whatever the input.

    Every decoder sub-layer writes zero into the residual stream, so the decoder's output is the
    layer norm of the current token's embedding; embeddings are one-hot (one slot per current
    token) and the head maps each slot to its row of log-probabilities exactly.
    """
    cfg = ModelConfig(d_model=32, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32,
                      max_positions=64)
    model = Seq2SeqTransformer(cfg).eval()
    d = cfg.d_model
    table = torch.full((len(logprobs), cfg.vocab_size), floor)  # (slots, V)
    for k, row in enumerate(logprobs.values()):
        for following, value in row.items():
            table[k, following] = value
    with torch.no_grad():
        for layer in model.decoder:
            for linear in (layer.self_attn.out_proj, layer.cross_attn.out_proj, layer.ff.net[2]):
                linear.weight.zero_()
                linear.bias.zero_()
        model.byte_embed.weight.zero_()
        model.embed.weight.zero_()
        model.head.weight.zero_()
        # LayerNorm(10 e_k) is sqrt(d-1) at slot k and -1/sqrt(d-1) elsewhere.
        scale = (d - 1) ** 0.5 / d
        for k, current in enumerate(logprobs):
            model.embed.weight[current, k] = 10.0
            model.head.weight[:, k] = scale * table[k]
        model.head.bias.copy_(table.sum(dim=0) / d)
    return model


def chain_model(chain: list[int]) -> Seq2SeqTransformer:
    """A hand-wired model whose greedy output is always ``chain[1:]`` (``chain[0]`` is BOS; the
    tokens before the last must be distinct, as each one decides the next)."""
    assert len(set(chain[:-1])) == len(chain) - 1
    return bigram_model({cur: {nxt: 0.0} for cur, nxt in itertools.pairwise(chain)})


def greedy_trap_model() -> Seq2SeqTransformer:
    """A hand-wired model on which beam search beats greedy decoding, whatever the input:
    BOS -> a (0.55) or b (0.45); a -> c, d or e (0.34, 0.33, 0.33); b, c, d, e -> EOS. Greedy
    writes "ac" (probability 0.187); a beam of 2 or more writes "b" (0.45), which wins also
    after length normalisation."""
    a, b, c, d, e = (ord(x) for x in "abcde")
    log = math.log
    return bigram_model({BOS_ID: {a: log(0.55), b: log(0.45)},
                         a: {c: log(0.34), d: log(0.33), e: log(0.33)},
                         b: {EOS_ID: 0.0}, c: {EOS_ID: 0.0}, d: {EOS_ID: 0.0}, e: {EOS_ID: 0.0}})


def surrogate_model() -> Seq2SeqTransformer:
    """A hand-wired model whose greedy output is always the bytes ED A0 80, then EOS."""
    return chain_model([BOS_ID, *SURROGATE_BYTES, EOS_ID])


# ----------------------------------------------------------------------------- tasks and data
ALL_TASKS = ["reverse", "copy", "shift", "sort", "parens", "add"]

SMALL = dict(train_samples=300, val_samples=60, test_samples=80)


# ----------------------------------------------------------------------------- commands
TINY_FLAGS = ["--d-model", "16", "--n-heads", "2", "--n-dec-layers", "1", "--d-ff", "16",
              "--max-positions", "48", "--epochs", "1", "--train-samples", "64",
              "--val-samples", "8", "--test-samples", "8", "--batch-size", "32",
              "--max-len", "12", "--alphabet", "printable", "--threads", "1", "--progress",
              "false"]

MAX_POSITIONS = 64  # the tiny model takes at most 62 input bytes


def call_cli(main, argv: list[str], stdin: bytes = b"") -> int:
    """Run a command in-process through ``run_cli`` with ``stdin`` as its standard input."""
    from transformer_tiny.cli.errors import run_cli

    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        return run_cli(main, argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    finally:
        sys.stdin = old


def run_main(main, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """A command run in-process as :func:`run_script` runs its script: the same exit code,
    stdout and stderr (through ``run_cli``), without the seconds of a new Python and torch."""
    streams = {name: io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
               for name in ("stdout", "stderr")}
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = streams["stdout"], streams["stderr"]
    try:
        code = call_cli(main, list(args), stdin)
    finally:
        sys.stdout, sys.stderr = saved
    text = {name: s.buffer.getvalue().decode("utf-8", errors="surrogateescape")
            for name, s in streams.items()}
    return subprocess.CompletedProcess(["in-process", *args], code, text["stdout"],
                                       text["stderr"])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def run_script(script: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """``python scripts/SCRIPT args`` in the repository root; stdout/stderr decoded as UTF-8."""
    proc = subprocess.run([sys.executable, f"scripts/{script}", *args], cwd=ROOT, input=stdin,
                          capture_output=True, timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode("utf-8", errors="surrogateescape"),
                                       proc.stderr.decode("utf-8", errors="surrogateescape"))


def assert_usage_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, nothing on stdout, exactly one ``error: ...`` line on stderr."""
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- tiny runs
def tiny_config(out, epochs: int = 2, train_samples: int = 16, **train) -> RunConfig:
    """A very small model trained in batches of 8 (``train_samples / 8`` steps an epoch) into
    ``out``; ``train``: more :class:`TrainConfig` fields."""
    return RunConfig(ModelConfig(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16,
                                 max_positions=40),
                     DataConfig(alphabet="printable", max_len=8, train_samples=train_samples,
                                val_samples=4, test_samples=4),
                     TrainConfig(**{"epochs": epochs, "batch_size": 8, "warmup_steps": 1,
                                    "out": str(out), "progress": False, "threads": 1, **train}))


@contextlib.contextmanager
def open_trainer(cfg: RunConfig, ctx=None):
    """A fresh :class:`Trainer` of ``cfg`` without TensorBoard, in ``ctx`` (default: one process),
    closed on leaving the block."""
    from transformer_tiny.distributed import DistContext
    from transformer_tiny.train_eval import Trainer

    run = Trainer(cfg, ctx or DistContext(), resume=False, tensorboard=False)
    try:
        yield run
    finally:
        run.close()


# ----------------------------------------------------------------------------- brackets
def balanced_by_pair_removal(text: str) -> bool:
    """An independent check of ``parens``: keep the brackets, delete adjacent matching pairs
    until none is left."""
    text = "".join(c for c in text if c in "()[]{}<>")
    while True:
        shorter = re.sub(r"\(\)|\[\]|\{\}|<>", "", text)
        if shorter == text:
            return text == ""
        text = shorter


def bracket_depth(text: str) -> int:
    """How deep the brackets of ``text`` (brackets only) nest, counting directions only (a
    bracket's kind is ignored)."""
    level = deepest = 0
    for c in text:
        level += 1 if c in "([{<" else -1
        deepest = max(deepest, level)
    return deepest


# ----------------------------------------------------------------------------- pictures
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_width: int = 300) -> None:
    """A non-empty, valid PNG of a sensible size."""
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.width >= min_width and image.height >= 200
