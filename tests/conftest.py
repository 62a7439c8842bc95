"""Shared helpers for the test suite; test modules import them: ``from conftest import ...``."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

# OpenMP threads that spin while waiting make PyTorch many times slower when another process
# shares the (2-core) machine; passive waiting avoids that. Set before torch is imported, and
# inherited by the scripts that test_cli.py runs as subprocesses.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

from transformer_tiny.config import ModelConfig
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID

ROOT = Path(__file__).resolve().parents[1]  # the repository (pyproject.toml puts src/ on the path)

# The models here are tiny: one thread is as fast as two.
torch.set_num_threads(1)

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


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory) -> Path:
    """A run directory holding an untrained tiny model as ``best`` (up to 46 input bytes)."""
    from transformer_tiny.checkpoint import save_checkpoint
    from transformer_tiny.config import DataConfig, RunConfig

    run = tmp_path_factory.mktemp("untrained") / "run"
    cfg = RunConfig(ModelConfig(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16,
                                max_positions=48), DataConfig(val_samples=4, test_samples=4))
    save_checkpoint(run, "best", Seq2SeqTransformer(cfg.model), cfg, {"step": 0})
    return run


def call_cli(main, argv: list[str], stdin: bytes = b"") -> int:
    """Run a command in-process through ``run_cli`` with ``stdin`` as its standard input."""
    from transformer_tiny.cli.common import run_cli

    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        return run_cli(main, argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    finally:
        sys.stdin = old
