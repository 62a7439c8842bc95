"""Multi-process training: ``torchrun --standalone --nproc-per-node=2 scripts/train.py`` on CPU.

Each process runs the train command in its own working directory with a relative ``--out``, so
that whatever a process writes lands in its own directory: rank 1's must stay untouched. A small
launcher (written by the test) records the model that ``train()`` builds and writes a hash of its
final weights, per rank, outside those directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import ROOT

from transformer_tiny.checkpoint import load_checkpoint
from transformer_tiny.distributed import DistContext, env_world, setup

LAUNCHER = textwrap.dedent("""
    import hashlib, json, os, sys
    from pathlib import Path
    sys.path.insert(0, {src!r})
    from transformer_tiny import train_eval
    from transformer_tiny.cli.common import run_cli
    from transformer_tiny.cli.train import train_main

    built = []
    class Recorded(train_eval.Seq2SeqTransformer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)
    train_eval.Seq2SeqTransformer = Recorded
    root, rank = Path(os.environ["REPLICA_ROOT"]), int(os.environ["RANK"])
    os.chdir(root / f"rank{{rank}}")
    code = run_cli(train_main, sys.argv[1:])
    digest = hashlib.sha256()
    for name, tensor in sorted(built[-1].state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    (root / f"rank{{rank}}.json").write_text(json.dumps({{"code": code,
                                                           "sha256": digest.hexdigest()}}))
    sys.exit(code)
""")

# 512 strings at batch 32: 16 batches per epoch, 8 steps per process.
TRAIN_ARGS = ["--train-samples", "512", "--batch-size", "32", "--val-samples", "16",
              "--test-samples", "16", "--max-len", "8", "--d-model", "32", "--d-ff", "64",
              "--max-positions", "64", "--device", "cpu", "--threads", "1", "--progress", "false",
              "--out", "run"]
STEPS_PER_EPOCH = 8


def weights_hash(model: torch.nn.Module) -> str:
    """The launcher's hash of a model's weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def torchrun(root: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Run the train command in 2 processes (``--standalone``: a free port, no clash)."""
    launcher = root / "launch.py"
    launcher.write_text(LAUNCHER.format(src=str(ROOT / "src")))
    for rank in (0, 1):
        (root / f"rank{rank}").mkdir(exist_ok=True)
        (root / f"rank{rank}.json").unlink(missing_ok=True)
    env = {**os.environ, "REPLICA_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(launcher), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def replica_hashes(root: Path) -> list[str]:
    reports = [json.loads((root / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["code"] for r in reports] == [0, 0]
    return [r["sha256"] for r in reports]


def tree(path: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``path``."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One epoch of 2-process training from scratch."""
    root = tmp_path_factory.mktemp("ddp")
    return root, torchrun(root, ["--epochs", "1", *TRAIN_ARGS])


@pytest.mark.slow
def test_two_processes_keep_identical_replicas_and_only_rank0_writes(ddp_run):
    root, proc = ddp_run
    h0, h1 = replica_hashes(root)
    assert h0 == h1  # the replicas' weights are identical after training
    assert list((root / "rank1").iterdir()) == []  # rank 1 wrote nothing
    run = root / "rank0" / "run"
    assert {"best.json", "last.json", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    model, _, info = load_checkpoint(run / "last.json")
    assert info["step"] == STEPS_PER_EPOCH  # 16 batches shared by 2 processes
    assert weights_hash(model) == h0  # rank 0 saved the weights it ended with

    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert record["world_size"] == 2 and record["effective_batch_size"] == 64
    assert proc.stdout.count("trained 8 steps") == 1  # rank 0 reports, rank 1 does not


@pytest.mark.slow
def test_two_processes_resume(ddp_run):
    root, _ = ddp_run
    # Rank 1 resumes from its own copy of the run: it reads it and must leave it unchanged.
    shutil.rmtree(root / "rank1")
    shutil.copytree(root / "rank0", root / "rank1")
    before = tree(root / "rank1")
    torchrun(root, ["--resume", "--epochs", "2", *TRAIN_ARGS])
    h0, h1 = replica_hashes(root)
    assert h0 == h1
    assert tree(root / "rank1") == before
    model, _, info = load_checkpoint(root / "rank0" / "run" / "last.json")
    assert info["step"] == 2 * STEPS_PER_EPOCH
    assert weights_hash(model) == h0
    records = (root / "rank0" / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in records] == [1, 2]


def test_single_process_without_torchrun(monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert env_world() == (0, 0, 1)
    ctx = setup(torch.device("cpu"))
    assert ctx == DistContext() and ctx.is_main and not ctx.enabled
    assert ctx.world == 1 and ctx.sum([1.5, 2.0]) == [1.5, 2.0]
    model = torch.nn.Linear(2, 2)
    assert ctx.wrap(model) is model and ctx.default_threads() == 0
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: no process group either
    assert setup(torch.device("cpu")) == DistContext()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2"):
        env_world()
