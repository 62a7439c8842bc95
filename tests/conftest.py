"""Test-suite setup (OpenMP waiting, one torch thread) and the fixtures several test modules use.
Shared helper functions live in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

# OpenMP threads that spin while waiting make PyTorch many times slower when another process
# shares the (2-core) machine; passive waiting avoids that. Set before torch is imported, and
# inherited by the scripts that the tests run as subprocesses.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch
from helpers import MAX_POSITIONS, run_main
from hypothesis import settings

from transformer_tiny.cli.train import train_main
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.train_eval import train

# The models here are tiny: one thread is as fast as two.
torch.set_num_threads(1)

# No time limit per Hypothesis example: on a loaded machine one stall of a quarter second would
# fail a property that holds.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failure whose report holds a lone surrogate (these tests feed them to the model) is
    reported with it escaped: pytest-xdist cannot send such text from a worker, and the whole
    run would stop with an internal error instead of naming the failing test."""
    report = yield
    if report.failed:
        text = str(report.longrepr)
        escaped = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if escaped != text:
            report.longrepr = escaped
    return report


@pytest.fixture(autouse=True)
def keep_thread_count():
    """train() and the commands set the number of torch threads; every test gets back the one
    thread set above, whatever the test before it ran."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory) -> Path:
    """A run directory holding an untrained tiny model as ``best`` (up to 46 input bytes)."""
    from transformer_tiny.checkpoint import save_checkpoint
    from transformer_tiny.config import DataConfig, RunConfig

    run = tmp_path_factory.mktemp("untrained") / "run"
    cfg = RunConfig(ModelConfig(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16,
                                max_positions=48),
                    DataConfig(alphabet="printable", val_samples=4, test_samples=4))
    torch.manual_seed(0)  # the same weights whichever tests ran before
    save_checkpoint(run, "best", Seq2SeqTransformer(cfg.model), cfg, {"step": 0})
    return run


@pytest.fixture(scope="module")
def untrained_pairs_run(tmp_path_factory) -> Path:
    """A run directory holding an untrained tiny model of the pairs task as ``best``, whose
    training file is gone (as after the run folder was moved elsewhere)."""
    from transformer_tiny.checkpoint import save_checkpoint
    from transformer_tiny.config import DataConfig, RunConfig

    run = tmp_path_factory.mktemp("pairs") / "run"
    cfg = RunConfig(ModelConfig(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16,
                                max_positions=48),
                    DataConfig(task="pairs", train_file=str(run.parent / "gone.tsv")))
    torch.manual_seed(0)  # the same weights whichever tests ran before
    save_checkpoint(run, "best", Seq2SeqTransformer(cfg.model), cfg, {"step": 0})
    return run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A tiny model trained for two steps by the train command (once per session)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    threads = torch.get_num_threads()
    try:
        proc = run_main(train_main, "--epochs", "1", "--train-samples", "256",
                        "--val-samples", "32", "--test-samples", "32", "--alphabet", "printable",
                        "--d-model", "32", "--n-heads", "2", "--d-ff", "64",
                        "--max-positions", str(MAX_POSITIONS), "--out", str(out),
                        "--progress", "false")
    finally:
        torch.set_num_threads(threads)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "trained 2 steps" in proc.stdout
    assert {p.name for p in out.iterdir()} >= {"best.json", "last.json", "metrics.jsonl"}
    return out


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """The reverse task on the unicode alphabet, learned for seconds on strings of 1-8
    characters: right on about 8 in 10 held-out strings (the ONNX export and the browser page
    are checked against it)."""
    out = tmp_path_factory.mktemp("export") / "run"
    cfg = RunConfig(ModelConfig(max_positions=64),
                    DataConfig(alphabet="unicode", max_len=8, train_samples=6000, val_samples=200,
                               test_samples=500),
                    TrainConfig(epochs=2, seed=0, device="cpu", progress=False, out=str(out)))
    threads = torch.get_num_threads()
    try:
        train(cfg)
    finally:
        torch.set_num_threads(threads)
    return out
