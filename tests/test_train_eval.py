"""Training: train() learns the toy tasks on short strings (about 25 s per task on 2 cores);
SIGKILL at random moments, then --resume, ends bit-for-bit where an uninterrupted run ends; a
non-finite loss stops the run.

The end-to-end configuration was checked with training seeds 0, 1 and 2 for both tasks: every run
reached a held-out exact match of 1.000 (the threshold is 0.99).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import ROOT
from safetensors.torch import load_file

from transformer_tiny.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_info
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from transformer_tiny.data import DataModule
from transformer_tiny.decoding import predict
from transformer_tiny.logs import read_metrics, read_steps
from transformer_tiny.metrics import evaluate
from transformer_tiny.tasks import get_task
from transformer_tiny.tokenizer import ByteTokenizer
from transformer_tiny.train_eval import train

pytestmark = pytest.mark.usefixtures("keep_thread_count")


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
@pytest.mark.parametrize("task", ["reverse", "copy"])
def test_train_reaches_exact_match(task, tmp_path):
    cfg = RunConfig(
        # default sizes (d_model 128, 4 heads, 1+2 layers); randomized positions over 64 indices
        ModelConfig(max_positions=64),
        DataConfig(task=task, max_len=8, train_samples=6000, val_samples=200, test_samples=500),
        TrainConfig(epochs=4, seed=0, device="cpu", progress=False, out=str(tmp_path)),
    )
    summary = train(cfg)
    assert summary["steps"] == 4 * 47
    assert summary["best_val_exact_match"] >= 0.99

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["train_loss"] < records[0]["train_loss"]

    model, loaded_cfg, info = load_checkpoint(tmp_path)
    assert loaded_cfg == cfg
    assert info["metrics"]["val_exact_match"] == summary["best_val_exact_match"]
    test_inputs = DataModule(cfg.data).test_inputs
    result = evaluate(model, test_inputs, task, bucket_edges=[(1, 4), (5, 8)])
    assert result.n == 500
    assert result.exact_match >= 0.99, result
    assert result.char_accuracy >= 0.99
    assert set(result.buckets) == {"1-4", "5-8"}

    # The trained model also decodes identically with and without the KV cache.
    solve, tok = get_task(task).solve, ByteTokenizer()
    sample = [*test_inputs[:64], "héllo", "a"]
    assert predict(model, sample, use_cache=True) == predict(model, sample, use_cache=False)
    outputs = [tok.decode(ids) for ids, _ in predict(model, sample)]
    assert sum(o == solve(x) for o, x in zip(outputs, sample, strict=True)) >= 60


# ----------------------------------------------------------------------------- resume
SMALL = ["--d-model", "32", "--n-heads", "2", "--d-ff", "64", "--max-len", "8",
         "--train-samples", "640", "--batch-size", "32", "--val-samples", "16",
         "--test-samples", "16", "--epochs", "8", "--save-every", "1", "--progress", "false"]


def train_cmd(out, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "train.py"), *SMALL, "--out", str(out), *extra]


def step_of(out) -> int:
    try:
        return read_checkpoint_info(out / "last.json")[1]["step"]
    except CheckpointError:
        return 0


def final_weights(out) -> dict[str, torch.Tensor]:
    path, info, _ = read_checkpoint_info(out / "last.json")
    return load_file(path.parent / info["weights"])


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(train_cmd(reference), check=True, capture_output=True, timeout=300)

    out, rng, kills = tmp_path / "killed", random.Random(0), 0
    while kills < 10:
        resume = ["--resume"] if (out / "last.json").exists() else []
        before = step_of(out)
        proc = subprocess.Popen(train_cmd(out, *resume), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while step_of(out) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until this process has trained and saved a step
        time.sleep(rng.uniform(0.0, 0.6))  # then kill at a random moment
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed 10 times; lengthen it")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if (out / "last.json").exists():
            _, _, info = load_checkpoint(out / "last.json")  # loads after every kill
            assert info["step"] >= 1
    done = subprocess.run(train_cmd(out, "--resume"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ref, got = final_weights(reference), final_weights(out)
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert not list(out.glob(".*.tmp"))
    assert read_steps(out) == read_steps(reference)  # each step's loss once, as uninterrupted
    same = ("epoch", "step", "train_loss", "val_exact_match")
    assert [[r[k] for k in same] for r in read_metrics(out)] == \
        [[r[k] for k in same] for r in read_metrics(reference)]


# ----------------------------------------------------------------------------- non-finite loss
def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    ok = subprocess.run(train_cmd(out, "--epochs", "1"), capture_output=True, timeout=300)
    assert ok.returncode == 0
    before = (out / "last.json").read_bytes()
    bad = subprocess.run(train_cmd(out, "--resume", "--epochs", "2", "--lr", "1e30"),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2, bad.stderr
    assert "non-finite loss" in bad.stderr and "step" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert (out / "last.json").read_bytes() == before or load_checkpoint(out / "last.json")
