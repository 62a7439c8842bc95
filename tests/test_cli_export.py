"""``export`` (scripts/export.py): writes the ONNX graphs of a checkpoint and checks them against
PyTorch; one ``error:`` line with exit code 2 for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT, TOK, call_cli

from transformer_tiny.checkpoint import load_checkpoint
from transformer_tiny.cli.export import export_main
from transformer_tiny.decoding import predict
from transformer_tiny.export import DECODER_FILE, ENCODER_FILE


def test_export_command(untrained_run, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert call_cli(export_main, ["--checkpoint", str(untrained_run), "--out", str(out),
                                  "--verify", "4", "--text", "abc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"wrote {out / ENCODER_FILE} and {out / DECODER_FILE}"
    assert lines[1].startswith("onnxruntime and PyTorch greedy outputs agree on 4/4 ")
    model = load_checkpoint(untrained_run)[0]
    assert lines[2] == f"'abc' -> {TOK.decode(predict(model, ['abc'])[0][0])!r}"
    # Default output folder: onnx/ beside the checkpoint.
    assert call_cli(export_main, ["--checkpoint", str(untrained_run), "--verify", "0"]) == 0
    assert (untrained_run / "onnx" / DECODER_FILE).is_file()


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "no/such/run"], "error: no checkpoint at no/such/run"),
    (["--verify", "-1"], "error: --verify must be >= 0"),
    (["--out", "FILE"], "exists and is not a directory"),
    (["--text", "x" * 47, "--verify", "0"], "error: input too long"),
])
def test_export_command_errors(untrained_run, tmp_path, capsys, args, message):
    (tmp_path / "FILE").write_text("")
    defaults = {"--checkpoint": str(untrained_run), "--out": str(tmp_path / "onnx")}
    args = [a.replace("FILE", str(tmp_path / "FILE")) for a in args]
    args += [x for flag, value in defaults.items() if flag not in args for x in (flag, value)]
    assert call_cli(export_main, args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err, err


@pytest.mark.slow
def test_export_script_on_trained_run(trained_run):
    proc = subprocess.run([sys.executable, "scripts/export.py", "--checkpoint", str(trained_run),
                           "--text", "hello"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [f"wrote {trained_run / 'onnx' / ENCODER_FILE} and "
                     f"{trained_run / 'onnx' / DECODER_FILE}",
                     "onnxruntime and PyTorch greedy outputs agree on 200/200 held-out test "
                     "strings", "'hello' -> 'olleh'"]
