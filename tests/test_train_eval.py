"""Training: the schedule and the loss with exact values; train() learns the toy tasks on short
strings; SIGKILL at random moments, then --resume, ends bit-for-bit where an uninterrupted run
ends; a non-finite loss stops the run.

The end-to-end configuration was checked with training seeds 0, 1 and 2 for both tasks: every run
reached a held-out exact match of 1.000 (the threshold is 0.99).
"""

from __future__ import annotations

import io
import json
import random
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import ROOT, call_cli, close, make_model, open_trainer, tiny_config
from safetensors.torch import load_file

from transformer_tiny import train_eval
from transformer_tiny.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_info
from transformer_tiny.cli.train import train_main
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from transformer_tiny.data import DataModule
from transformer_tiny.decoding import predict
from transformer_tiny.logs import read_metrics, read_steps
from transformer_tiny.metrics import evaluate
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.run_state import Progress
from transformer_tiny.tasks import get_task
from transformer_tiny.tokenizer import EOS_ID, PAD_ID, ByteTokenizer
from transformer_tiny.train_eval import (
    learning_rate,
    make_optimizer,
    sequence_loss,
    train,
    training_autocast,
)


# ----------------------------------------------------------------------------- schedule and loss
@pytest.mark.parametrize("step, expected", [
    (0, 1e-4),  # warm-up: (step + 1) / warmup_steps of the peak
    (4, 5e-4),
    (9, 1e-3),  # the end of the warm-up: the peak
    (10, 1e-3),  # the cosine starts at the peak
    (60, 1e-3 * (0.1 + 0.9 * 0.5)),  # half-way: half-way between the peak and the floor
    (110, 1e-4),  # the last step: lr * min_lr_ratio
    (500, 1e-4),  # past the end: stays at the floor
])
def test_learning_rate(step, expected):
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(step, 110, cfg) == pytest.approx(expected, rel=1e-12)


def loss_batch(extra_pad: int = 0) -> dict[str, torch.Tensor]:
    """Two examples: targets "ab" and "c" (teacher forcing), with ``extra_pad`` more PAD
    columns in the decoder's input and target."""
    from transformer_tiny.data import Example, collate

    batch = collate([Example(list(b"xy"), list(b"ab")), Example(list(b"z"), list(b"c"))])
    pad = torch.full((2, extra_pad), PAD_ID)
    return {"src": batch["src"], "tgt_in": torch.cat([batch["tgt_in"], pad], dim=1),
            "tgt_out": torch.cat([batch["tgt_out"], pad], dim=1)}


def test_sequence_loss_is_the_mean_over_real_tokens():
    model = make_model()
    batch = loss_batch()
    loss, n_tokens = sequence_loss(model, batch)
    assert batch["tgt_out"].tolist() == [[97, 98, EOS_ID], [99, EOS_ID, PAD_ID]]
    assert n_tokens == 5  # "ab" EOS and "c" EOS; the PAD is not a token
    logp = torch.log_softmax(model(batch["src"], batch["tgt_in"]), dim=-1)
    picked = [logp[0, 0, 97], logp[0, 1, 98], logp[0, 2, EOS_ID], logp[1, 0, 99],
              logp[1, 1, EOS_ID]]
    close(loss.double(), -torch.stack(picked).mean().double(), atol=1e-6)


def test_sequence_loss_with_label_smoothing_spreads_a_share_over_the_vocabulary():
    """With smoothing 0.2 each real token's loss is 0.8 of its negative log-probability plus 0.2
    of the mean negative log-probability over all the vocabulary; PAD positions do not count."""
    model = make_model()
    batch = loss_batch(extra_pad=2)
    loss, n_tokens = sequence_loss(model, batch, label_smoothing=0.2)
    logp = torch.log_softmax(model(batch["src"], batch["tgt_in"]).double(), dim=-1)
    rows = [(0, 0, 97), (0, 1, 98), (0, 2, EOS_ID), (1, 0, 99), (1, 1, EOS_ID)]
    per_token = [-0.8 * logp[b, t, y] - 0.2 * logp[b, t].mean() for b, t, y in rows]
    assert n_tokens == 5
    close(loss.double(), torch.stack(per_token).mean(), atol=1e-6)


def test_sequence_loss_ignores_padding_columns():
    model = make_model()
    loss, n_tokens = sequence_loss(model, loss_batch())
    padded, padded_tokens = sequence_loss(model, loss_batch(extra_pad=3))
    assert padded_tokens == n_tokens == 5
    close(padded, loss, atol=1e-9)


@pytest.mark.parametrize("precision, dtype", [
    ("bf16", torch.bfloat16), ("fp32", torch.float32),
    ("auto", torch.float32),  # auto is bf16 on CUDA only
])
def test_training_autocast_runs_the_matrix_products_in_the_chosen_precision(precision, dtype):
    model, batch = make_model(dtype=torch.float32), loss_batch()
    with training_autocast(precision, torch.device("cpu")):
        logits = model(batch["src"], batch["tgt_in"])
    assert logits.dtype == dtype


def test_bf16_loss_and_gradients_agree_with_float32():
    """bfloat16 keeps 8 bits of mantissa: the loss agrees within 2%, and the gradient points
    the same way (cosine similarity near 1); the weights themselves stay float32."""
    def loss_and_grad(precision: str) -> tuple[torch.Tensor, torch.Tensor]:
        model = make_model(dtype=torch.float32, eval_mode=False)
        with training_autocast(precision, torch.device("cpu")):
            loss, _ = sequence_loss(model, loss_batch(extra_pad=1))
        loss.backward()
        assert all(p.dtype == torch.float32 for p in model.parameters())
        return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])

    (loss32, grad32), (loss16, grad16) = loss_and_grad("fp32"), loss_and_grad("bf16")
    assert loss16.dtype == torch.float32
    torch.testing.assert_close(loss16, loss32, rtol=2e-2, atol=0)
    assert not torch.equal(grad16, grad32)  # it did run in the lower precision
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0) > 0.99


def test_adamw_decays_the_matrices_only_not_the_embeddings_biases_or_norms():
    """With zero gradients an AdamW step only applies the decoupled weight decay: each weight
    matrix shrinks by ``lr * weight_decay``; the token and byte-offset embeddings, the biases and
    the norms do not move."""
    model = make_model(dtype=torch.float32, eval_mode=False)
    opt = make_optimizer(model, TrainConfig(lr=0.1, weight_decay=0.3))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    params = dict(model.named_parameters())
    moved = {n for n, p in params.items() if not torch.equal(p, before[n])}
    assert {"head.weight", "encoder.0.attn.in_proj.weight", "decoder.1.ff.net.2.weight"} <= moved
    assert moved == {n for n, p in params.items()
                     if p.dim() == 2 and n not in ("embed.weight", "byte_embed.weight")}
    for n in moved:
        close(params[n].detach(), before[n] * (1 - 0.1 * 0.3), atol=1e-7)


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
@pytest.mark.parametrize("task, precision", [("reverse", "fp32"), ("copy", "fp32"),
                                             ("reverse", "bf16")])
def test_train_reaches_exact_match(task, precision, tmp_path):
    cfg = RunConfig(
        # default sizes (d_model 128, 4 heads, 1+2 layers); randomized positions over 64 indices
        ModelConfig(max_positions=64),
        DataConfig(task=task, alphabet="printable", max_len=8, train_samples=6000,
                   val_samples=200, test_samples=500),
        TrainConfig(epochs=4, seed=0, device="cpu", precision=precision, progress=False,
                    out=str(tmp_path)),
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


def test_best_checkpoint_of_equal_epochs_is_the_latest(tmp_path):
    # A learning rate too small to learn anything: every epoch scores 0 on validation.
    cfg = RunConfig(ModelConfig(d_model=16, n_heads=2, d_ff=32, max_positions=18),
                    DataConfig(max_len=4, train_samples=64, val_samples=16, test_samples=16),
                    TrainConfig(epochs=3, batch_size=32, lr=1e-9, warmup_steps=1, device="cpu",
                                progress=False, out=str(tmp_path)))
    train(cfg)
    assert [r["val_exact_match"] for r in read_metrics(tmp_path)] == [0.0, 0.0, 0.0]
    assert read_checkpoint_info(tmp_path / "best.json")[1]["step"] == 6  # epoch 3 of 2 steps


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
    while kills < 6:
        resume = ["--resume"] if (out / "last.json").exists() else []
        before = step_of(out)
        proc = subprocess.Popen(train_cmd(out, *resume), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while step_of(out) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until this process has trained and saved a step
        time.sleep(rng.uniform(0.0, 0.6))  # then kill at a random moment
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed 6 times; lengthen it")
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


def test_an_option_the_task_ignores_is_named_when_the_run_begins_not_on_resume(tmp_path,
                                                                                capsys):
    argv = [*SMALL, "--out", str(tmp_path / "run"), "--shift", "5"]
    assert call_cli(train_main, [*argv, "--epochs", "1"]) == 0
    said = "warning: task reverse takes no notice of shift=5: only task shift shifts letters\n"
    assert capsys.readouterr().err == said
    assert call_cli(train_main, [*argv, "--resume", "--epochs", "2"]) == 0
    assert capsys.readouterr().err == ""  # the run's options cannot change on resume


# ----------------------------------------------------------------------------- non-finite loss
def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*SMALL, "--out", str(out)]  # train_cmd in-process: the trainer, not Python's start-up
    assert call_cli(train_main, [*argv, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert call_cli(train_main, [*argv, "--resume", "--epochs", "2", "--lr", "1e30"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    failed = int(re.search(r"^error: non-finite loss \(\S+\) at step (\d+);", err).group(1))
    # "last" is saved every step (--save-every 1): the one before the failing step is kept, and
    # it loads (finite weights).
    assert read_checkpoint_info(out / "last.json")[1]["step"] == failed - 1
    load_checkpoint(out / "last.json")


def test_non_finite_weights_are_never_saved(tmp_path, capsys, monkeypatch):
    """A step that leaves NaN weights behind (a finite loss before it) stops the run before the
    next save: the good "last" stays as it was, and the run can be resumed from it."""
    out = tmp_path / "run"
    argv = [*SMALL, "--out", str(out)]
    assert call_cli(train_main, [*argv, "--epochs", "1"]) == 0
    before = {p.name: p.read_bytes() for p in out.glob("last*")}
    original = train_eval._train_step

    def poisoned(model, *args):
        result = original(model, *args)
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        return result

    monkeypatch.setattr(train_eval, "_train_step", poisoned)
    capsys.readouterr()
    assert call_cli(train_main, [*argv, "--resume", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: the weights are not finite after step \d+; .*\n", err), err
    assert {p.name: p.read_bytes() for p in out.glob("last*")} == before
    monkeypatch.setattr(train_eval, "_train_step", original)
    assert call_cli(train_main, [*argv, "--resume", "--epochs", "2"]) == 0


# ----------------------------------------------------------------------------- progress
@pytest.mark.parametrize("key, value", [("step", "3"), ("epoch", 1.5), ("batch", "x"),
                                        ("best", "0.9"), ("loss_sum", None), ("history", {}),
                                        ("step", True), ("batch", False), ("step", -100),
                                        ("epoch", -5), ("batch", -1), ("history", [1, "x"]),
                                        ("best", float("nan")), ("best", float("inf")),
                                        ("loss_sum", float("-inf")), ("best", 10**400)])
def test_progress_of_the_wrong_type_or_range_is_refused(key, value):
    good = {"step": 3, "epoch": 1, "batch": 2, "best": 0.5, "loss_sum": 1.25,
            "history": [{"epoch": 1, "step": 3}]}
    assert Progress.from_dict(good) == Progress(**good)
    with pytest.raises(CheckpointError, match="progress is malformed"):
        Progress.from_dict({**good, key: value})


@pytest.mark.parametrize("key", ["step", "epoch", "batch", "best", "loss_sum", "history"])
def test_progress_without_a_key_takes_its_default(key):
    """A checkpoint's progress may lack a key (written by an older version): the key takes its
    default, the others are kept."""
    good = {"step": 3, "epoch": 1, "batch": 2, "best": 0.5, "loss_sum": 1.25,
            "history": [{"epoch": 1, "step": 3}]}
    partial = {k: v for k, v in good.items() if k != key}
    assert Progress.from_dict(partial) == Progress(**partial)
    assert getattr(Progress.from_dict(partial), key) == getattr(Progress(), key)


@pytest.mark.parametrize("save_every, lasts", [(0, [4, 8]), (3, [3, 4, 6, 8])])
def test_last_is_saved_every_save_every_steps_and_at_each_epoch_end(save_every, lasts, tmp_path,
                                                                   monkeypatch):
    import transformer_tiny.train_eval as te

    saved, real = [], te.save_run_checkpoint

    def recording(out, name, *args):
        saved.append((name, args[3].step))  # args: model, opt, cfg, progress, ...
        return real(out, name, *args)

    monkeypatch.setattr(te, "save_run_checkpoint", recording)
    cfg = tiny_config(tmp_path, train_samples=32, save_every=save_every)
    train(cfg)  # 4 steps an epoch
    assert [step for name, step in saved if name == "last"] == lasts


class TerminalStderr(io.StringIO):
    """A standard error that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_the_progress_bar_on_a_terminal_names_the_epoch_and_is_erased_at_its_end(tmp_path,
                                                                                 monkeypatch):
    terminal = TerminalStderr()
    monkeypatch.setattr(sys, "stderr", terminal)
    cfg = tiny_config(tmp_path, epochs=3, progress=True)
    with open_trainer(cfg) as run:
        run.train_epoch()
    shown = terminal.getvalue()
    assert "epoch 1/3" in shown
    assert "\n" not in shown  # the bar is redrawn in place and cleared: no line is left behind
    assert shown.endswith("\r")


def test_each_epoch_line_estimates_the_time_left_from_this_run_s_epochs(tmp_path, capsys):
    cfg = tiny_config(tmp_path, epochs=3, progress=True)
    with open_trainer(cfg) as run:
        for elapsed in (30.0, 50.0, 90.0):  # seconds since the start, at each epoch's end
            run.train_epoch()
            run.end_epoch(1234.0, elapsed)
    lines = capsys.readouterr().out.splitlines()
    assert [line.startswith(f"epoch {n}: ") for n, line in enumerate(lines, 1)] == [True] * 3
    assert lines[0].endswith("1,234 tok/s  effective batch 8  30 s  about 60 s to go")
    assert lines[1].endswith("1,234 tok/s  effective batch 8  50 s  about 25 s to go")
    assert lines[2].endswith("1,234 tok/s  effective batch 8  90 s")


def test_the_estimate_is_shown_with_a_single_step_left(tmp_path, capsys):
    cfg = tiny_config(tmp_path, epochs=2, train_samples=8, progress=True)  # one step an epoch
    with open_trainer(cfg) as run:
        run.train_epoch()
        run.end_epoch(1234.0, 30.0)
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("epoch 1: ")
    assert line.endswith("1,234 tok/s  effective batch 8  30 s  about 30 s to go")


def test_each_epoch_records_the_seconds_since_the_run_began(tmp_path):
    summary = train(tiny_config(tmp_path, epochs=2))
    elapsed = [r["elapsed_s"] for r in read_metrics(tmp_path)]
    assert 0 <= elapsed[0] <= elapsed[1] <= summary["seconds"] + 0.1


def test_an_epoch_resumed_with_no_batch_left_shows_no_speed_and_no_estimate(tmp_path, capsys):
    cfg = tiny_config(tmp_path, epochs=3, progress=True)
    with open_trainer(cfg) as run:
        run.train_epoch()  # every batch of epoch 1, saved before its validation...
        run.first_step = run.progress.step  # ...and resumed there: nothing left to time
        run.end_epoch(0.0, 2.0)
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("epoch 1: ") and line.endswith("  effective batch 8  2 s")
    assert "tok/s" not in line


def test_train_returns_the_number_of_model_parameters(tmp_path):
    cfg = tiny_config(tmp_path, epochs=1)
    summary = train(cfg)
    expected = sum(p.numel() for p in Seq2SeqTransformer(cfg.model).parameters())
    assert summary["parameters"] == expected
    assert summary["steps"] == 2 and summary["is_main"] and summary["world_size"] == 1
