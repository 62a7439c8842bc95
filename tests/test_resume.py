"""Crash-proof training: SIGKILL at random moments, then --resume, ends bit-for-bit where an
uninterrupted run ends; a planted pickle is refused without running; a non-finite loss stops."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT
from safetensors.torch import load_file

from transformer_tiny.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_info
from transformer_tiny.logs import read_metrics, read_steps

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


class Boom:
    def __reduce__(self):
        return (os.system, (f"touch {Boom.marker}",))


def test_pickle_planted_as_checkpoint_is_refused_and_never_run(tmp_path):
    Boom.marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.json").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError):
        load_checkpoint(run)
    torch.save({"w": Boom()}, run / "evil.pt")  # a pickle named like weights
    (run / "best.json").unlink()
    (run / "evil.safetensors").write_bytes((run / "evil.pt").read_bytes())
    with pytest.raises(CheckpointError):
        load_checkpoint(run / "evil.safetensors")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "infer.py"), "--checkpoint",
                           str(run / "evil.safetensors"), "--text", "x"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert not Boom.marker.exists()


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
