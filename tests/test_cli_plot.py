"""``plot`` (scripts/plot.py): writes the PNGs of a checkpoint and prints their paths; one
``error:`` line with exit code 2 for bad input or a missing matplotlib."""

from __future__ import annotations

import shutil
import sys

import pytest
from helpers import assert_png, call_cli

import transformer_tiny
from transformer_tiny.cli.plot import plot_main

GOOD_RECORD = (b'{"epoch": 1, "step": 2, "train_loss": 5.5, "val_exact_match": 0.0, '
               b'"val_char_accuracy": 0.1}\n')


def test_plot_command(untrained_run, tmp_path, capsys):
    out = tmp_path / "pictures"
    argv = ["--checkpoint", str(untrained_run), "--text", "Hi there", "--out", str(out),
            "--lengths", "1-4,5-40", "--samples", "3"]
    assert call_cli(plot_main, argv) == 0
    captured = capsys.readouterr()
    assert "training curves skipped" in captured.err  # the fixture has no metrics.jsonl
    written = captured.out.splitlines()
    assert written == [str(out / "attention.png"), str(out / "accuracy_by_length.png")]
    for name in written:
        assert_png(out / name)


@pytest.mark.parametrize("argv, fragment", [
    (["--only", "curves"], "no metrics.jsonl"),
    (["--text", ""], "--text must not be empty"),
    (["--out", ""], "argument --out: must not be empty"),
    (["--lengths", "8-1"], "--lengths must look like"),
    (["--text", "y" * 100, "--only", "attention"], "supports at most 46"),
])
def test_plot_bad_input(untrained_run, tmp_path, argv, fragment, capsys):
    argv = ["--checkpoint", str(untrained_run), "--out", str(tmp_path), *argv]
    assert call_cli(plot_main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1


def test_plot_without_matplotlib(untrained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    assert call_cli(plot_main, ["--checkpoint", str(untrained_run), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == \
        "error: drawing plots needs the plots extra: pip install -e '.[plots]'\n"
    assert not list(tmp_path.iterdir())


def _one_error_line(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert all(f in err for f in fragments), err
    return err


@pytest.mark.parametrize("line, problem", [
    (b"1", "expected a JSON object, got a number"),
    (b'{"epoch": 1}', "no 'step'"),
    (b"[]", "expected a JSON object, got an array"),
    (b'{"epoch": 1,', "not valid JSON (Expecting property name"),
    (b"\xff", "not valid UTF-8"),
    (b'{"step": true, "train_loss": 1, "val_exact_match": 0, "val_char_accuracy": 0}',
     "'step' must be a number, got true"),
])
def test_plot_bad_metrics_line(untrained_run, tmp_path, line, problem, capsys):
    run = shutil.copytree(untrained_run, tmp_path / "run")
    (run / "metrics.jsonl").write_bytes(GOOD_RECORD + line + b"\n")
    out = tmp_path / "pictures"
    argv = ["--checkpoint", str(run), "--out", str(out), "--lengths", "1-2", "--samples", "1"]
    assert call_cli(plot_main, argv) == 2
    _one_error_line(capsys, f"error: {run / 'metrics.jsonl'} line 2: {problem}")
    assert not out.exists()  # checked before any picture is drawn


def test_plot_pairs_model_skips_accuracy_by_length(untrained_pairs_run, tmp_path, capsys):
    out = tmp_path / "pictures"
    assert call_cli(plot_main, ["--checkpoint", str(untrained_pairs_run), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "task pairs reads its inputs from files; accuracy by length skipped" in captured.err
    assert captured.out.splitlines() == [str(out / "attention.png")]
    assert_png(out / "attention.png")


def test_plot_pairs_model_only_lengths_is_an_error(untrained_pairs_run, tmp_path, capsys):
    argv = ["--checkpoint", str(untrained_pairs_run), "--out", str(tmp_path / "p"),
            "--only", "lengths"]
    assert call_cli(plot_main, argv) == 2
    _one_error_line(capsys, "task pairs reads its inputs from files: accuracy by length needs")
    assert not (tmp_path / "p").exists()


def test_plot_text_not_utf8(untrained_run, tmp_path, capsys):
    argv = ["--checkpoint", str(untrained_run), "--out", str(tmp_path / "p"),
            "--text", "ab\udcff"]  # how Python hands over the byte 0xff from the shell
    assert call_cli(plot_main, argv) == 2
    assert capsys.readouterr().err == "error: --text 1 is not valid UTF-8\n"
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("below, message", [
    ("", "--out {f}: not a folder"),
    ("sub", "--out {f}/sub: {f} is not a folder"),
])
def test_plot_out_is_a_file(untrained_run, tmp_path, below, message, capsys):
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    out = f / below if below else f
    argv = ["--checkpoint", str(untrained_run), "--out", str(out), "--only", "attention"]
    assert call_cli(plot_main, argv) == 2
    assert capsys.readouterr().err == f"error: {message.format(f=f)}\n"
    assert f.read_bytes() == b"x"


def test_python_plot_draws_what_the_model_allows(untrained_pairs_run, untrained_run, tmp_path):
    """``TinyModel.plot``: the accuracy by length for a task that makes its inputs, not for
    pairs; no curves without logs (neither run folder has them)."""
    pairs = transformer_tiny.load(untrained_pairs_run).plot(tmp_path / "pairs", samples=2)
    assert [p.name for p in pairs] == ["attention.png"]
    reverse = transformer_tiny.load(untrained_run).plot(tmp_path / "reverse", samples=2)
    assert [p.name for p in reverse] == ["attention.png", "accuracy_by_length.png"]
    for path in pairs + reverse:
        assert_png(path)
