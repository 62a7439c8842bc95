"""Multi-process training: ``torchrun --standalone --nproc-per-node=2 scripts/train.py`` on CPU.

Each process runs the train command in its own working directory with a relative ``--out``, so
that whatever a process writes lands in its own directory: rank 1's must stay untouched. A small
launcher (written by the test) records the model that ``train()`` builds and writes a hash of its
final weights, per rank, outside those directories.

What one rank does is also checked within one process: a context that stands for one rank of
several, with no process group behind it.
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
from helpers import ROOT, TOK, open_trainer, tiny_config

import transformer_tiny.train_eval as te
from transformer_tiny.checkpoint import load_checkpoint
from transformer_tiny.data import DataModule
from transformer_tiny.distributed import DistContext, env_world, process_group, setup

LAUNCHER = textwrap.dedent("""
    import hashlib, json, os, sys
    from pathlib import Path
    sys.path.insert(0, {src!r})
    from transformer_tiny import distributed, train_eval
    from transformer_tiny.cli.errors import run_cli
    from transformer_tiny.cli.train import train_main

    built = []
    class Recorded(train_eval.Seq2SeqTransformer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)
    train_eval.Seq2SeqTransformer = Recorded

    def threads():  # the names of this process's threads
        tasks = Path("/proc/self/task")
        return [(t / "comm").read_text().strip() for t in tasks.iterdir()] if tasks.exists() else []

    left = []  # the threads left as the process group is left
    leave = distributed.cleanup
    def recorded_cleanup():
        leave()
        left.extend(threads())
    distributed.cleanup = recorded_cleanup
    root, rank = Path(os.environ["REPLICA_ROOT"]), int(os.environ["RANK"])
    os.chdir(root / f"rank{{rank}}")
    code = run_cli(train_main, sys.argv[1:])
    digest = hashlib.sha256()
    for name, tensor in sorted(built[-1].state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    (root / f"rank{{rank}}.json").write_text(json.dumps({{"code": code, "threads": left,
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
    # The process group ended as it was left: none of gloo's threads is left to abort the exit.
    assert all(r["threads"] for r in reports)  # the group was left (the main thread at least)
    assert [[t for t in r["threads"] if "gloo" in t] for r in reports] == [[], []]
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
    # The run was trained on another version of its alphabet: only rank 0 says so.
    last = root / "rank0" / "run" / "last.json"
    last.write_text(json.dumps({**json.loads(last.read_text()), "characters_sha256": "0" * 64}))
    # Rank 1 resumes from its own copy of the run: it reads it and must leave it unchanged.
    shutil.rmtree(root / "rank1")
    shutil.copytree(root / "rank0", root / "rank1")
    before = tree(root / "rank1")
    proc = torchrun(root, ["--resume", "--epochs", "2", *TRAIN_ARGS])
    assert (proc.stdout + proc.stderr).count("changed since this model was trained") == 1
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
    with process_group(torch.device("cpu")) as ctx:
        assert ctx == DistContext() and not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2"):
        env_world()


# ----------------------------------------------------------------------------- one rank at a time
class OneRank(DistContext):
    """Rank ``rank`` of ``world`` processes without a process group: the model is not wrapped,
    sums are this process's own values and barriers return at once."""

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def sum(self, values: list[float]) -> list[float]:
        return list(values)

    def barrier(self) -> None:
        return None


def test_two_ranks_together_train_on_every_string_of_the_epoch_once(tmp_path, monkeypatch):
    trained: list[list[str]] = []  # per rank, the strings of the batches it trained on

    def recording(model, opt, batch, *args):  # args: lr, cfg, autocast, step
        trained[-1] += [TOK.decode(row) for row in batch["src"].tolist()]
        return 1.0, int(batch["src"].numel())

    monkeypatch.setattr(te, "_train_step", recording)
    cfg = tiny_config(tmp_path / "run", epochs=1, train_samples=32)  # 4 batches of 8
    for rank in (0, 1):
        trained.append([])
        with open_trainer(cfg, OneRank(rank=rank, world=2)) as run:
            run.train_epoch()
    assert [len(strings) for strings in trained] == [16, 16]  # 2 batches each
    epoch = DataModule(cfg.data, cfg.model.max_input_bytes).train_dataset(0).inputs
    assert sorted(trained[0] + trained[1]) == sorted(epoch)


def test_with_an_odd_number_of_batches_every_rank_takes_the_same_number_of_steps(
        tmp_path, monkeypatch):
    steps: list[int] = []  # per rank, the batches it trained on

    def counting(model, opt, batch, *args):  # args: lr, cfg, autocast, step
        steps[-1] += 1
        return 1.0, int(batch["src"].numel())

    monkeypatch.setattr(te, "_train_step", counting)
    cfg = tiny_config(tmp_path / "run", epochs=1, train_samples=40)  # 5 batches of 8
    for rank in (0, 1):
        steps.append(0)
        with open_trainer(cfg, OneRank(rank=rank, world=2)) as run:
            run.train_epoch()
        assert run.progress.step == 2
    assert steps == [2, 2]  # rank 0's third batch is left out: 5 // 2 steps each


def test_the_main_rank_of_several_announces_the_effective_batch_size(tmp_path, capsys):
    cfg = tiny_config(tmp_path / "run", epochs=1, train_samples=32, progress=True)
    with open_trainer(cfg, OneRank(rank=0, world=2, backend="gloo")) as run:
        summary = te._run(run, cfg, run.ctx)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2 processes (gloo), batch size 8 each: effective batch size 16"
    assert lines[1].startswith("epoch 1: ") and "effective batch 16" in lines[1]
    assert summary["steps"] == 2 and summary["world_size"] == 2
    assert summary["effective_batch_size"] == 16


def test_another_rank_runs_every_epoch_and_writes_nothing(tmp_path):
    cfg = tiny_config(tmp_path / "run", epochs=3, train_samples=32)  # 2 steps an epoch each
    with open_trainer(cfg, OneRank(rank=1, world=2)) as run:
        summary = te._run(run, cfg, run.ctx)
    assert summary["steps"] == 6 and not summary["is_main"]
    assert (run.progress.epoch, run.progress.batch, run.progress.loss_sum) == (3, 0, 0.0)
    assert run.progress.history == []  # only the main process validates
    assert not (tmp_path / "run").exists()
