"""``export`` (scripts/export.py): writes the ONNX graphs of a checkpoint and checks them against
PyTorch; one ``error:`` line with exit code 2 for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from helpers import ROOT, TOK, call_cli, chain_model, make_model, one_error_line

import transformer_tiny
from transformer_tiny.checkpoint import load_checkpoint, save_checkpoint
from transformer_tiny.cli.export import export_main
from transformer_tiny.config import DataConfig, RunConfig
from transformer_tiny.data import DataModule
from transformer_tiny.decoding import predict
from transformer_tiny.export import DECODER_FILE, ENCODER_FILE, MANIFEST
from transformer_tiny.tokenizer import BOS_ID, EOS_ID


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
    (["--text", "\udcff", "--verify", "0"], "error: --text 1 is not valid UTF-8"),  # from $'\xff'
    (["--hf", ""], "error: argument --hf: must not be empty"),  # not an ONNX export instead
    (["--web", ""], "error: argument --web: must not be empty"),
])
def test_export_command_errors(untrained_run, tmp_path, capsys, args, message):
    (tmp_path / "FILE").write_text("")
    defaults = {"--checkpoint": str(untrained_run), "--out": str(tmp_path / "onnx")}
    args = [a.replace("FILE", str(tmp_path / "FILE")) for a in args]
    args += [x for flag, value in defaults.items() if flag not in args for x in (flag, value)]
    assert call_cli(export_main, args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err, err


@pytest.fixture(scope="module")
def add_run(tmp_path_factory):
    """A hand-wired model of the add task that writes "012" whatever the input: the task shows
    that answer as "12" (without its leading zero)."""
    run = tmp_path_factory.mktemp("add") / "run"
    model = chain_model([BOS_ID, *b"012", EOS_ID])
    save_checkpoint(run, "best", model,
                    RunConfig(model=model.cfg, data=DataConfig(task="add", max_len=11)),
                    {"step": 0})
    return run


def test_export_text_goes_through_the_task_as_infer_does(add_run, tmp_path, capsys):
    """The output is shown as the task shows answers ("012" -> "12"), as infer and the API show
    it, not as the model wrote it."""
    argv = ["--checkpoint", str(add_run), "--out", str(tmp_path / "onnx"), "--verify", "0",
            "--text", "9999+1"]
    assert call_cli(export_main, argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "'9999+1' -> '12'"
    assert transformer_tiny.load(add_run).predict(["9999+1"]) == ["12"]


def test_export_without_verify_reads_no_data(untrained_pairs_run, tmp_path, capsys):
    run, out = untrained_pairs_run, tmp_path / "onnx"
    argv = ["--checkpoint", str(run), "--out", str(out), "--text", "abc"]
    assert call_cli(export_main, [*argv, "--verify", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("'abc' -> ")
    # With --verify, the missing file stops the command before anything is written.
    other = tmp_path / "onnx2"
    assert call_cli(export_main, [*argv[:3], str(other), "--verify", "2"]) == 2
    assert one_error_line(capsys) == (
        f"error: {run.parent / 'gone.tsv'}: no such file (the check of the export reads the test "
        "split from the training data; --verify 0 exports without it)")
    assert not other.exists()


def test_export_says_when_nothing_was_verified(tmp_path, capsys):
    """A pairs file too small to leave a test split: the graphs are written, and the command
    says that it compared nothing, instead of "agree on 0/0"."""
    data = tmp_path / "three.tsv"
    data.write_text("cd\tdc\nef\tfe\nij\tji\n")
    (tmp_path / "val.tsv").write_text("gh\thg\n")
    model = make_model(dtype=torch.float32)
    cfg = RunConfig(model.cfg, DataConfig(task="pairs", train_file=str(data),
                                          val_file=str(tmp_path / "val.tsv")))
    assert DataModule(cfg.data, cfg.model.max_input_bytes).test_inputs == []  # the premise
    save_checkpoint(tmp_path / "run", "best", model, cfg, {"step": 0})
    argv = ["--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "onnx")]
    assert call_cli(export_main, argv) == 0
    out, err = capsys.readouterr()
    assert "agree" not in out and (tmp_path / "onnx" / ENCODER_FILE).is_file()
    assert err == ("warning: not verified: the test split holds no strings to compare "
                   "onnxruntime with PyTorch on\n")
    assert call_cli(export_main, [*argv, "--verify", "0"]) == 0  # no check asked: nothing said
    assert capsys.readouterr().err == ""

@pytest.mark.parametrize("flag, mine", [
    ("--out", ENCODER_FILE), ("--out", "notes.txt"),
    ("--web", ENCODER_FILE), ("--web", MANIFEST), ("--web", "notes.txt"),
])
def test_export_refuses_a_folder_with_files_it_did_not_write(untrained_run, tmp_path, capsys,
                                                             flag, mine):
    out = tmp_path / "folder"
    out.mkdir()
    (out / mine).write_text("mine\n")
    argv = ["--checkpoint", str(untrained_run), flag, str(out), "--verify", "0"]
    assert call_cli(export_main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} {out} holds ") and mine in err
    assert len(err.splitlines()) == 1
    assert [p.name for p in out.iterdir()] == [mine] and (out / mine).read_text() == "mine\n"


def test_export_rewrites_its_own_folder_only(untrained_run, tmp_path, capsys):
    """As ``make web`` does: a second export into the same folder replaces the first; other
    files there are kept; a file of the user's among ours is refused."""
    out = tmp_path / "model"
    argv = ["--checkpoint", str(untrained_run), "--web", str(out), "--verify", "0"]
    assert call_cli(export_main, argv) == 0
    (out / "notes.txt").write_text("mine\n")
    assert call_cli(export_main, argv) == 0
    assert call_cli(export_main, [*argv[:2], "--out", *argv[3:]]) == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    capsys.readouterr()
    (out / ENCODER_FILE).write_text("mine\n")
    assert call_cli(export_main, argv) == 2
    assert ENCODER_FILE in one_error_line(capsys)
    assert (out / ENCODER_FILE).read_text() == "mine\n"


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


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_export_without_the_onnx_extra(untrained_run, tmp_path, monkeypatch, capsys, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    out = tmp_path / "onnx"
    assert call_cli(export_main, ["--checkpoint", str(untrained_run), "--out", str(out)]) == 2
    assert capsys.readouterr().err == \
        "error: ONNX export needs the onnx extra: pip install -e '.[onnx]'\n"
    assert not out.exists()


@pytest.mark.parametrize("extra, named", [(["--out", "x"], "--out"), (["--web", "w"], "--web"),
                                          (["--text", "ab"], "--text")])
def test_hf_refuses_the_flags_of_the_onnx_export(untrained_run, tmp_path, capsys, extra, named):
    argv = ["--checkpoint", str(untrained_run), "--hf", str(tmp_path / "shared"), *extra]
    assert call_cli(export_main, argv) == 2
    assert one_error_line(capsys) == f"error: --hf writes the shared layout only: {named} would " \
                                     "be ignored (run the ONNX export separately)"
    assert not (tmp_path / "shared").exists()
