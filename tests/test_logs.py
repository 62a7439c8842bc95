"""Run logs: metrics.jsonl (one line per epoch), steps.csv, and TensorBoard when asked for."""

from __future__ import annotations

import json
import math

import pytest
from helpers import tiny_config

from transformer_tiny import logs
from transformer_tiny.train_eval import learning_rate, train

METRIC_KEYS = {"epoch", "step", "train_loss", "val_exact_match", "val_char_accuracy",
               "tokens_per_s", "elapsed_s", "world_size", "effective_batch_size"}  # as documented


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """A two-epoch run trained with TensorBoard logging."""
    out = tmp_path_factory.mktemp("logs") / "run"
    train(tiny_config(out), tensorboard=True)
    return out


def test_metrics_one_line_per_epoch(logged_run):
    records = logs.read_metrics(logged_run)
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["step"] for r in records] == [2, 4]
    assert all(set(r) == METRIC_KEYS for r in records)  # in logs.py and README.md
    info = json.loads((logged_run / "last.json").read_text())
    assert info["progress"]["history"] == records  # the same as the checkpoint's
    # (checked here, in the first test of the module, the one that trains the run: a mutation
    # tool that maps code to the tests reaching it sees only this one reach the trainer)
    rows = logs.read_steps(logged_run)
    for epoch, record in enumerate(records):  # an epoch's train_loss: the mean of its steps'
        steps = [r["loss"] for r in rows[2 * epoch:2 * epoch + 2]]
        assert record["train_loss"] == pytest.approx(sum(steps) / 2, rel=1e-12)


def test_steps_csv_one_row_per_step(logged_run):
    text = (logged_run / "steps.csv").read_text()
    assert text.splitlines()[0] == "step,loss,lr"
    rows = logs.read_steps(logged_run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # the learning rates are the schedule's (warm-up of one step, then cosine decay over 4 steps)
    cfg = tiny_config(logged_run).train
    assert [r["lr"] for r in rows] == pytest.approx(
        [learning_rate(step, 4, cfg) for step in range(4)], rel=1e-12)
    assert rows[0]["loss"] == pytest.approx(math.log(259), abs=0.5)  # untrained: near uniform


def test_tensorboard_event_file(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((logged_run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    acc = EventAccumulator(str(logged_run / "tensorboard"))
    acc.Reload()
    assert {"train/loss", "train/lr", "val/exact_match"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Scalars("val/exact_match")] == [2, 4]


def test_resume_keeps_the_steps_it_continues_from(tmp_path):
    (tmp_path / "steps.csv").write_text("step,loss,lr\n1,2.0,0.1\n2,1.5,0.1\n3,1.0,0.1\n4,0.")
    history = [{"epoch": 1, "step": 2}]
    log = logs.RunLog(tmp_path, 2, history)  # the checkpoint was at step 2: steps 3-4 run again
    log.log_step(3, 0.9, 0.05)
    log.close()
    assert [(r["step"], r["loss"]) for r in logs.read_steps(tmp_path)] == \
        [(1, 2.0), (2, 1.5), (3, 0.9)]
    assert logs.read_metrics(tmp_path) == history
