"""The ``transformer-tiny`` console command (installed by ``pip install -e .``) and ``python -m
transformer_tiny``: the same output and exit codes as the scripts; ``export`` is optional and never
needed by the other commands."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from helpers import ROOT, call_cli

from transformer_tiny import cli
from transformer_tiny.cli.infer import infer_main
from transformer_tiny.cli.plot import plot_main
from transformer_tiny.cli.train import train_main

CONSOLE = Path(sys.executable).parent / "transformer-tiny"


def run(argv: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    """Run ``argv`` in the repository root; stdout and stderr as text."""
    proc = subprocess.run(argv, cwd=ROOT, input=stdin, capture_output=True, timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode("utf-8"),
                                       proc.stderr.decode("utf-8"))


def console(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    assert CONSOLE.is_file(), "install the package first: pip install --no-deps -e ."
    return run([str(CONSOLE), *args], stdin=stdin)


def script(name: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return run([sys.executable, f"scripts/{name}.py", *args], stdin=stdin)


def call_main(argv: list[str]) -> int:
    """``transformer-tiny ARGV`` in-process (``--help`` exits through ``SystemExit``)."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def same_text(a: str, b: str, prog_a: str, prog_b: str) -> bool:
    """Equal once the program names agree (argparse wraps the usage line by their length)."""
    return a.replace(prog_a, "PROG").split() == b.replace(prog_b, "PROG").split()


@pytest.mark.slow  # new processes: the installed command against the script
def test_eval_help_is_the_scripts():
    mine, theirs = console("eval", "--help"), script("eval", "--help")
    assert mine.returncode == theirs.returncode == 0
    assert mine.stdout.startswith("usage: transformer-tiny eval ")
    assert same_text(mine.stdout, theirs.stdout, "transformer-tiny eval", "eval.py")


@pytest.mark.slow  # new processes: the installed command against the script
def test_bad_input_is_the_scripts(tmp_path):
    missing = str(tmp_path / "nothing")
    mine, theirs = console("eval", "--checkpoint", missing), script("eval", "--checkpoint", missing)
    assert mine.returncode == theirs.returncode == 2
    assert mine.stdout == theirs.stdout == ""
    assert mine.stderr == theirs.stderr
    assert mine.stderr.startswith("error: no checkpoint") and mine.stderr.count("\n") == 1


@pytest.mark.slow  # new processes: the installed command against the script
def test_infer_output_is_the_scripts(untrained_run):
    args = ("--checkpoint", str(untrained_run), "--text", "abc", "--max-new-tokens", "5")
    mine, theirs = console("infer", *args), script("infer", *args)
    assert (mine.returncode, mine.stdout, mine.stderr) == \
        (theirs.returncode, theirs.stdout, theirs.stderr)
    assert mine.returncode == 0 and mine.stdout.count("\n") == 1


@pytest.mark.slow  # new processes: the installed command against the script
def test_plot_bad_input_is_the_scripts(untrained_run):
    args = ("--checkpoint", str(untrained_run), "--samples", "0")
    mine, theirs = console("plot", *args), script("plot", *args)
    assert mine.returncode == theirs.returncode == 2
    assert mine.stderr == theirs.stderr == "error: --samples must be > 0\n"


@pytest.mark.parametrize("name, main", [("train", train_main), ("infer", infer_main),
                                        ("plot", plot_main)])
def test_help_of_each_command(name, main, capsys, monkeypatch):
    assert call_main([name, "--help"]) == 0
    mine = capsys.readouterr().out
    # argparse names the script run in-process after sys.argv[0] (under pytest-xdist, "-c")
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *sys.argv[1:]])
    assert call_cli(main, ["--help"]) == 0
    theirs = capsys.readouterr().out
    assert same_text(mine, theirs, f"transformer-tiny {name}", f"{name}.py")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_top_level_help_lists_the_commands(flag, capsys):
    assert cli.main([flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: transformer-tiny COMMAND")
    for name in ("train", "eval", "infer", "export", "plot"):
        assert f"\n  {name} " in out


@pytest.mark.parametrize("argv, fragment", [([], "a command is required"),
                                            (["bogus"], "unknown command 'bogus'"),
                                            (["\x1b[2J"], "unknown command")])
def test_missing_or_unknown_command(argv, fragment, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and fragment in captured.err
    assert captured.err.count("\n") == 1 and "\x1b" not in captured.err


def test_export_unavailable_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformer_tiny.cli.export", None)  # as if it were missing
    assert cli.main(["export", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the export command cannot start: ") and err.count("\n") == 1
    assert call_main(["infer", "--help"]) == 0  # the other commands do not need it


def test_export_is_dispatched(monkeypatch):
    seen = []
    fake = types.ModuleType("transformer_tiny.cli.export")
    fake.export_main = lambda argv, prog: seen.append((list(argv), prog)) or 0
    monkeypatch.setitem(sys.modules, "transformer_tiny.cli.export", fake)
    assert cli.main(["export", "--checkpoint", "x"]) == 0
    assert seen == [(["--checkpoint", "x"], "transformer-tiny export")]


@pytest.mark.slow  # new processes: the installed command against the script
def test_python_dash_m_runs_the_same_command():
    proc = run([sys.executable, "-m", "transformer_tiny", "bogus"])
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown command 'bogus'")


def test_the_dispatcher_with_a_standard_stream_closed(monkeypatch, capsys):
    """As the scripts: a closed error stream takes the error line (never standard output), a
    closed output is an error even for --help."""
    monkeypatch.setattr(sys, "stderr", None)
    assert cli.main(["bogus"]) == 2
    assert capsys.readouterr().out == ""
    monkeypatch.undo()
    monkeypatch.setattr(sys, "stdout", None)
    assert cli.main(["--help"]) == 2
    assert capsys.readouterr().err == "error: standard output is closed\n"
