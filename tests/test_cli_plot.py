"""``plot`` (scripts/plot.py): writes the PNGs of a checkpoint and prints their paths; one
``error:`` line with exit code 2 for bad input or a missing matplotlib."""

from __future__ import annotations

import sys

import pytest
from helpers import assert_png, call_cli

from transformer_tiny.cli.plot import plot_main


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
        "error: plots need matplotlib: pip install 'transformer-tiny[plots]'\n"
    assert not list(tmp_path.iterdir())
