"""Run logs: metrics.jsonl (one line per epoch), steps.csv, and TensorBoard when asked for."""

from __future__ import annotations

import json
import math

import pytest
from helpers import tiny_config

from transformer_tiny import logs
from transformer_tiny.train_eval import train

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
    # the learning rates of each step: lr 3e-3, one warm-up step, then cosine decay to 5% of it
    # over the other 3 (3e-3 * (0.05 + 0.95 * (1 + cos(pi * k / 3)) / 2) for k = 0, 1, 2)
    assert [r["lr"] for r in rows] == pytest.approx([3e-3, 3e-3, 2.2875e-3, 8.625e-4], rel=1e-12)
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


def test_a_log_that_records_nothing_leaves_the_earlier_run_s_logs(tmp_path):
    """A fresh run that stops before its first step (bad input) must not wipe the logs of the
    run it would have replaced."""
    steps, metrics = "step,loss,lr\n1,2.0,0.1\n", '{"epoch": 1, "step": 1}\n'
    (tmp_path / "steps.csv").write_text(steps)
    (tmp_path / "metrics.jsonl").write_text(metrics)
    logs.RunLog(tmp_path, 0, []).close()
    assert (tmp_path / "steps.csv").read_text() == steps
    assert (tmp_path / "metrics.jsonl").read_text() == metrics
    log = logs.RunLog(tmp_path, 0, [])
    log.log_step(1, 0.5, 0.2)
    log.close()
    assert [(r["step"], r["loss"]) for r in logs.read_steps(tmp_path)] == [(1, 0.5)]
    assert logs.read_metrics(tmp_path) == []


def test_a_damaged_steps_row_is_skipped(tmp_path):
    (tmp_path / "steps.csv").write_bytes(b"step,loss,lr\n1,2.0,0.1\n\xff,1.0,0.1\n3,1.0,0.1\n")
    assert [r["step"] for r in logs.read_steps(tmp_path)] == [1, 3]


GOOD = '{"epoch": 1, "step": 2, "train_loss": 1.5}\n'


@pytest.mark.parametrize("line, problem", [
    (b"1", "expected a JSON object, got a number"),
    (b"[]", "expected a JSON object, got an array"),
    (b'{"epoch": 1}', "no 'step'"),
    (b'{"epoch": 1, "step": true, "train_loss": 1}', "'step' must be a number, got true"),
    (b'{"step": 3, "train_loss": "low"}', "'train_loss' must be a number, got a string"),
    (b'{"step": 3,', "not valid JSON (Expecting property name enclosed in double quotes, "
                    "column 12)"),
    (b'{"step": 3, "train_loss": 1.0, "note": "\xff"}', "not valid UTF-8 (byte 41 of the line)"),
])
def test_read_metrics_names_the_file_and_line_of_a_bad_record(tmp_path, line, problem):
    (tmp_path / "metrics.jsonl").write_bytes(GOOD.encode() + b"\n" + line + b"\n")
    with pytest.raises(ValueError) as caught:
        logs.read_metrics(tmp_path, ("step", "train_loss"))
    assert str(caught.value) == f"{tmp_path / 'metrics.jsonl'} line 3: {problem}"


def test_read_metrics_checks_only_the_numbers_asked_for(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(GOOD + '{"epoch": 2, "step": 4}\n')
    assert logs.read_metrics(tmp_path) == [json.loads(GOOD), {"epoch": 2, "step": 4}]
    assert logs.read_metrics(tmp_path, ("step",))[1]["step"] == 4
    with pytest.raises(ValueError, match="line 2: no 'train_loss'"):
        logs.read_metrics(tmp_path, ("step", "train_loss"))
