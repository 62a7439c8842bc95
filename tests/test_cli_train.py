"""``train`` (scripts/train.py, in-process and as a subprocess): what it writes, task options saved
and used by eval and infer, and one ``error:`` line with exit code 2 for every bad argument."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import (
    ALL_TASKS,
    MAX_POSITIONS,
    TINY_FLAGS,
    assert_usage_error,
    call_cli,
    one_error_line,
    run_script,
    weights_of,
)

from transformer_tiny.checkpoint import load_checkpoint
from transformer_tiny.cli.eval import eval_main
from transformer_tiny.cli.infer import infer_main
from transformer_tiny.cli.train import train_main
from transformer_tiny.config import DataConfig
from transformer_tiny.data import draw_inputs
from transformer_tiny.tasks import task_for


def test_train_writes_metrics(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["epoch"] == 1 and records[0]["step"] == 2
    info = json.loads((run_dir / "best.json").read_text())
    assert weights_of(run_dir / "best.json").is_file()
    assert info["config"]["model"]["max_positions"] == MAX_POSITIONS
    assert info["config"]["train"]["out"] == str(run_dir)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_task_round_trips_through_a_checkpoint(name, tmp_path, capsys):
    run = tmp_path / "run"
    assert call_cli(train_main, [*TINY_FLAGS, "--task", name, "--shift", "5",
                                 "--out", str(run)]) == 0
    _, cfg, _ = load_checkpoint(run)
    assert cfg.data.task == name and cfg.data.shift == 5
    capsys.readouterr()
    assert call_cli(eval_main, ["--checkpoint", str(run), "--json", "--examples", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == name and result["n"] == 8
    solve = task_for(DataConfig(task=name, shift=5)).solve  # eval scores with the saved options
    assert [e["target"] for e in result["examples"]] == [solve(e["input"])
                                                         for e in result["examples"]]
    text = {"add": "95+7", "parens": "([])"}.get(name, "ab")
    assert call_cli(infer_main, ["--checkpoint", str(run), "--text", text,
                                 "--max-new-tokens", "4"]) == 0


# ----------------------------------------------------------------------------- bad input
@pytest.mark.slow
def test_train_invalid_config_value_as_a_script(tmp_path):
    """The in-process ``test_train_bad_arguments[invalid]`` run as scripts/train.py in a new
    Python: one ``error:`` line, no traceback, nothing on stdout, no run folder."""
    proc = run_script("train.py", "--d-model", "30", "--n-heads", "4", "--out", str(tmp_path / "r"))
    assert_usage_error(proc, "error: d_model: must be divisible by n_heads")
    assert not (tmp_path / "r").exists()


CUDA = __import__("torch").cuda.is_available()


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "zero"], "error: argument --epochs: invalid int value: 'zero'"),
    (["--d-model", "30", "--n-heads", "4"], "error: d_model: must be divisible by n_heads"),
    (["--no-such-flag"], "error: unrecognized arguments: --no-such-flag"),
    (["--lr", "-1"], "error: lr: must be > 0, got -1.0") if CUDA else
    (["--device", "cuda"], "error: device cuda was asked for, but no CUDA device is available"),
    (["--task", "unknown"], "error: argument --task: invalid choice: 'unknown'"),
    # /proc refuses new folders (even to root): the run folder cannot be made
    (["--out", "/proc/not-writable"], "error: No such file or directory: /proc/not-writable"),
    (["--resume", "--out", "/nonexistent"], "error: no checkpoint at /nonexistent/last.json"),
], ids=["ill-typed", "invalid", "unknown-flag", "cuda", "task", "unwritable", "resume-nothing"])
def test_train_bad_arguments(argv, message, capsys, tmp_path):
    extra = [] if "--out" in argv else ["--out", str(tmp_path / "r")]
    small = ["--train-samples", "8", "--val-samples", "2", "--test-samples", "2"]
    assert call_cli(train_main, [*argv, *extra, *small]) == 2
    assert one_error_line(capsys).startswith(message)
    assert not (tmp_path / "r").exists()


def test_train_out_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert call_cli(train_main, ["--out", str(tmp_path / "file")]) == 2
    assert "not a directory" in one_error_line(capsys)


def test_bad_shift_flag_is_a_one_line_error(tmp_path, capsys):
    assert call_cli(train_main, ["--task", "shift", "--shift", "30",
                                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: shift:") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("alphabet, fits, too_long", [
    ("unicode", 15, 16),  # characters of up to 4 bytes: 15 * 4 + 2 <= 64 positions
    ("printable", 62, 63)])
def test_inputs_that_may_not_fit_the_positions_are_refused_before_training(
        alphabet, fits, too_long, tmp_path, capsys):
    """Refused before the run folder is touched, not when a long string is first drawn (at the
    end of an epoch, when the logs of the run before were already replaced)."""
    out = tmp_path / "run"
    argv = ["--alphabet", alphabet, "--max-positions", "64", "--d-model", "16", "--n-heads",
            "2", "--d-ff", "16", "--train-samples", "8", "--val-samples", "4", "--test-samples",
            "4", "--batch-size", "8", "--epochs", "1", "--progress", "false", "--out", str(out)]
    assert call_cli(train_main, [*argv, "--max-len", str(fits)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert call_cli(train_main, [*argv, "--max-len", str(too_long), "--overwrite"]) == 2
    assert f"max_len {too_long}: inputs of up to" in one_error_line(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("lo, hi", [(1, 2), (32, 32)])
def test_add_lengths_without_inputs(lo, hi, tmp_path, capsys):
    with pytest.raises(ValueError, match="task add"):
        draw_inputs(DataConfig(task="add", min_len=lo, max_len=hi), 5, seed=0)
    argv = ["--task", "add", "--min-len", str(lo), "--max-len", str(hi), "--progress", "0",
            "--out", str(tmp_path / "run")]
    assert call_cli(train_main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: task add:") and err.count("\n") == 1


def test_tensorboard_missing_fails_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    out = tmp_path / "run"
    assert call_cli(train_main, ["--tensorboard", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == "error: --tensorboard needs the tensorboard extra: " \
                  "pip install -e '.[tensorboard]'\n"
    assert not out.exists()  # nothing was trained


def test_the_summary_counts_one_step_in_the_singular(tmp_path, capsys):
    flags = [*TINY_FLAGS, "--train-samples", "32", "--out", str(tmp_path / "run")]
    assert call_cli(train_main, flags) == 0
    assert capsys.readouterr().out.startswith("trained 1 step in ")


def test_a_resumed_run_counts_the_steps_it_trained_and_all_of_them(tmp_path, capsys):
    flags = [*TINY_FLAGS, "--train-samples", "32", "--out", str(tmp_path / "run")]
    assert call_cli(train_main, [*flags, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert call_cli(train_main, [*flags, "--epochs", "2", "--resume"]) == 0
    assert capsys.readouterr().out.startswith("trained 1 step (2 in all) in ")  # singular: 1
    assert call_cli(train_main, [*flags, "--epochs", "4", "--resume"]) == 0
    assert capsys.readouterr().out.startswith("trained 2 steps (4 in all) in ")
