"""``eval`` (scripts/eval.py): its JSON output, and one ``error:`` line with exit code 2 for bad
arguments and input."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
from helpers import TINY, call_cli, make_model, one_error_line, run_main

from transformer_tiny.checkpoint import save_checkpoint
from transformer_tiny.cli.eval import eval_main
from transformer_tiny.config import DATA_LIMITS, DataConfig, ModelConfig, RunConfig
from transformer_tiny.tasks import TASKS, Task, register_task


def test_eval_json(run_dir):
    proc = run_main(eval_main, "--checkpoint", str(run_dir), "--json", "--examples", "2")
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["task"] == "reverse" and result["n"] == 32
    assert 0.0 <= result["exact_match"] <= result["char_accuracy"] <= 1.0
    assert isinstance(result["buckets"], dict) and result["buckets"]
    assert sum(b["n"] for b in result["buckets"].values()) == 32
    assert len(result["examples"]) == 2
    assert set(result["examples"][0]) == {"input", "target", "pred"}


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv, message", [
    (["--file", "/nonexistent.txt"], "error: No such file or directory: /nonexistent.txt"),
    (["--file", "/"], "error: Is a directory: /"),
    (["--lengths", "5-1"], "error: --lengths must look like 1-8,9-16; got '5-1'"),
    (["--lengths", "x"], "error: --lengths must look like 1-8,9-16; got 'x'"),
    (["--lengths", "1-4", "--alphabet", "klingon"],
     "error: alphabet: must be one of ['digits', 'letters', "),
    (["--alphabet", "digits"], "error: --alphabet is for the fresh strings of --lengths"),
    (["--lengths", "1-4", "--split", "val"],
     "error: --split picks a held-out set: --lengths scores other strings"),
    (["--file", "x.txt", "--split", "test"],
     "error: --split picks a held-out set: --file scores other strings"),
    (["--file", ""], "error: argument --file: must not be empty"),
    (["--checkpoint", ""], "error: argument --checkpoint: must not be empty"),
    (["--samples", "0"], "error: --samples must be > 0"),
    (["--beam", "65"], "error: argument --beam: must be in [1, 64]"),
    (["--split", "train"], "error: argument --split: invalid choice: 'train'"),
    # longer than the model supports: refused by check_buckets before any string is drawn
    (["--lengths", "100-100"], "error: --lengths go up to 100 characters; this model takes "
                               "inputs of at most 46 bytes"),
], ids=["missing-file", "directory", "reversed-range", "bad-range", "alphabet",
        "alphabet-without-lengths", "split-with-lengths", "split-with-file", "empty-file",
        "empty-checkpoint", "samples", "beam", "split", "too-long"])
def test_eval_bad_arguments(untrained_run, argv, message, capsys):
    assert call_cli(eval_main, ["--checkpoint", str(untrained_run), *argv]) == 2
    assert one_error_line(capsys).startswith(message)


def test_eval_file_not_utf8(untrained_run, tmp_path, capsys):
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe\n")
    argv = ["--checkpoint", str(untrained_run), "--file", str(tmp_path / "bad.txt")]
    assert call_cli(eval_main, argv) == 2
    assert "not valid UTF-8 (line 2" in one_error_line(capsys)


def test_every_line_of_a_file_is_in_a_length_bucket_an_empty_one_too(untrained_run, tmp_path,
                                                                     capsys):
    (tmp_path / "lines.txt").write_text("aabbcc\nhello\n\nxyz\n")
    argv = ["--checkpoint", str(untrained_run), "--file", str(tmp_path / "lines.txt"), "--json"]
    assert call_cli(eval_main, argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 4 == sum(b["n"] for b in result["buckets"].values())
    assert next(iter(result["buckets"])).startswith("0-")
    assert call_cli(eval_main, [*argv, "--lengths", "0-0,1-5"]) == 0  # a file's lines may be ""
    out, err = capsys.readouterr()
    assert [b["n"] for b in json.loads(out)["buckets"].values()] == [1, 2]
    assert err == f"warning: {tmp_path / 'lines.txt'}: 1 input falls in no length bucket: " \
        "counted in the total only\n"  # aabbcc, of 6 characters
    assert call_cli(eval_main, [*argv, "--lengths", "1-5", "--alphabet", "digits"]) == 2
    assert one_error_line(capsys) == "error: --alphabet is for the fresh strings of --lengths; " \
        "--file scores its own lines"


def test_hard_slice_is_reported_beside_the_test_set(untrained_run, capsys):
    argv = ["--checkpoint", str(untrained_run), "--hard", "20", "--examples", "0"]
    assert call_cli(eval_main, [*argv, "--json"]) == 0
    hard = json.loads(capsys.readouterr().out)["hard"]
    assert hard["n"] == 20 and hard["description"].startswith("runs of one character")
    assert call_cli(eval_main, argv) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "hard slice (runs of one character and short patterns repeated): exact match ")
    assert call_cli(eval_main, [*argv, "--lengths", "1-4", "--samples", "2", "--json"]) == 0
    assert "hard" not in json.loads(capsys.readouterr().out)  # only with the held-out set


def test_a_task_without_a_hard_slice_says_so(tmp_path, capsys):
    """A task a user registers without ``make_hard``: eval says there is no slice to score."""
    task = register_task(Task("echo-without-hard", "repeat", lambda text: text))
    try:
        cfg = RunConfig(ModelConfig(**TINY), DataConfig(task=task.name, val_samples=4,
                                                        test_samples=4))
        save_checkpoint(tmp_path, "best", make_model(dtype=torch.float32), cfg, {"step": 0})
        assert call_cli(eval_main, ["--checkpoint", str(tmp_path), "--examples", "0"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == \
            "no hard slice: task echo-without-hard registers none (make_hard in tasks.py)"
    finally:
        TASKS.pop(task.name, None)


def test_a_test_file_is_scored_whole(tmp_path, capsys, monkeypatch):
    """--test-file scores every input of the file, not the training run's test_samples, up to
    the limit of a test set, and says when a file holds more."""
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"w{i}\tx{i}\n" for i in range(100)))
    cfg = RunConfig(ModelConfig(**TINY), DataConfig(task="pairs", train_file=str(train),
                                                    test_samples=4))
    save_checkpoint(tmp_path / "run", "best", make_model(dtype=torch.float32), cfg, {"step": 0})
    other = tmp_path / "other.tsv"
    # 30 inputs, one of them with two accepted outputs, and one line twice
    other.write_text("".join(f"v{i}\ty{i}\n" for i in range(30)) + "v0\ty0\nv1\tz1\n")
    argv = ["--checkpoint", str(tmp_path / "run"), "--test-file", str(other), "--json"]
    assert call_cli(eval_main, argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["n"] == 30 and err == ""
    monkeypatch.setitem(DATA_LIMITS, "test_samples", 30)  # exactly the file: all of it, no word
    assert call_cli(eval_main, argv) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setitem(DATA_LIMITS, "test_samples", 20)  # a file past the limit: said
    assert call_cli(eval_main, argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["n"] == 20
    assert err == f"warning: {other} holds 30 inputs: 20 of them are scored, chosen by hash\n"


@pytest.mark.parametrize("argv, message", [
    (["--lengths", "0-0"], "--lengths start at 1"),
    (["--lengths", "0-3,4-6"], "--lengths start at 1"),
    (["--lengths", "1-2,1-2"], "--lengths names 1-2 twice"),
    (["--lengths", "5-9,1-5"], "--lengths names 1-5 and 5-9, which overlap"),
    (["--hard", "-1"], "--hard must be in [0, "),
    (["--hard", "1000000"], "--hard must be in [0, "),
], ids=["empty-strings", "starts-at-0", "repeated", "overlapping", "negative-hard", "huge-hard"])
def test_eval_usage_errors_come_before_the_checkpoint_is_read(tmp_path, argv, message, capsys):
    # The checkpoint does not exist: a flag checked only after loading would report that instead.
    argv = ["--checkpoint", str(tmp_path / "no-run"), *argv]
    assert call_cli(eval_main, argv) == 2
    assert message in one_error_line(capsys)


def test_disjoint_lengths_count_each_string_once(untrained_run, capsys):
    argv = ["--checkpoint", str(untrained_run), "--lengths", "3-4,1-2", "--samples", "3",
            "--examples", "0", "--json"]
    assert call_cli(eval_main, argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 6 and {k: b["n"] for k, b in result["buckets"].items()} == {
        "3-4": 3, "1-2": 3}
    assert call_cli(eval_main, [*argv[:3], "1-4,3-5", *argv[4:]]) == 2  # 3 and 4 twice
    assert "overlap" in one_error_line(capsys)


def test_the_hard_slice_is_decoded_as_the_test_set_is(untrained_run, monkeypatch):
    """--beam applies to the hard slice too, not only to the held-out set."""
    import transformer_tiny.cli.eval as eval_cli

    beams, real = [], eval_cli.evaluate
    monkeypatch.setattr(eval_cli, "evaluate",
                        lambda *a, **k: beams.append(k.get("beam")) or real(*a, **k))
    argv = ["--checkpoint", str(untrained_run), "--hard", "4", "--beam", "3", "--json"]
    assert call_cli(eval_main, argv) == 0
    assert beams == [3, 3]


@pytest.mark.parametrize("encoding", ["utf-8", "UTF8"])  # two names of one codec
def test_a_file_whose_name_is_not_utf8_is_printed_escaped(untrained_run, tmp_path, monkeypatch,
                                                          encoding):
    """Its name reaches Python as a lone surrogate: printed as ``\\udcff`` on an output that
    must be strict UTF-8, after the evaluation, rather than failing there."""
    import io

    from transformer_tiny.cli.errors import run_cli

    name = tmp_path / os.fsdecode(b"f\xff.txt")
    name.write_text("ab\ncd\n")
    out = io.TextIOWrapper(io.BytesIO(), encoding=encoding, write_through=True)
    monkeypatch.setattr(sys, "stdout", out)
    assert run_cli(eval_main, ["--checkpoint", str(untrained_run), "--file", str(name)]) == 0
    assert b"f\\udcff.txt: 2 strings" in out.buffer.getvalue()


@pytest.mark.parametrize("encoding, code", [("ascii", 2), ("cp1252", 2), ("utf-8", 0)])
def test_an_output_that_cannot_hold_the_report_is_an_error_not_an_escaped_report(
        untrained_run, tmp_path, monkeypatch, capsys, encoding, code):
    """Only a lone surrogate is escaped, and only on a UTF-8 output: a narrower output encoding
    (a Windows pipe) is an error line, not a report silently rewritten (invalid JSON)."""
    import io

    from transformer_tiny.cli.errors import run_cli

    (tmp_path / "cjk.txt").write_text("中文\n", encoding="utf-8")
    out = io.TextIOWrapper(io.BytesIO(), encoding=encoding, write_through=True)
    monkeypatch.setattr(sys, "stdout", out)
    argv = ["--checkpoint", str(untrained_run), "--file", str(tmp_path / "cjk.txt"), "--json"]
    assert run_cli(eval_main, argv) == code
    if code:
        assert "error: text cannot be encoded" in capsys.readouterr().err
    else:
        assert json.loads(out.buffer.getvalue())["examples"][0]["input"] == "中文"


def test_the_held_out_set_scored_by_default_is_the_test_set(untrained_run, capsys):
    from transformer_tiny.checkpoint import load_checkpoint
    from transformer_tiny.data import heldout_inputs

    val, test = heldout_inputs(load_checkpoint(untrained_run)[1].data)
    for argv, inputs in (([], test), (["--split", "val"], val)):
        assert call_cli(eval_main, ["--checkpoint", str(untrained_run), "--json", "--hard", "0",
                                    "--examples", str(len(inputs)), *argv]) == 0
        report = json.loads(capsys.readouterr().out)
        assert sorted(e["input"] for e in report["examples"]) == sorted(inputs)


@pytest.mark.parametrize("max_len", [11, 12])
def test_lengths_beyond_an_add_model_s_numbers_are_refused_in_its_own_terms(tmp_path, capsys,
                                                                           max_len):
    model = make_model(dtype=torch.float32)
    save_checkpoint(tmp_path, "best", model,
                    RunConfig(model.cfg, DataConfig(task="add", max_len=max_len)), {"step": 0})
    argv = ["--checkpoint", str(tmp_path), "--samples", "2", "--json"]
    assert call_cli(eval_main, [*argv, "--lengths", f"{max_len + 1}-20"]) == 2
    assert one_error_line(capsys) == ("error: --lengths go up to 20 characters; this add model "
                                      "reads no inputs longer than its training ones, at most "
                                      f"{max_len} characters")
    assert call_cli(eval_main, [*argv, "--lengths", f"1-{max_len}"]) == 0  # its own: scored
    assert json.loads(capsys.readouterr().out)["n"] == 2


def test_skip_bad_lines_is_for_pairs_models(untrained_run, capsys):
    assert call_cli(eval_main, ["--checkpoint", str(untrained_run), "--skip-bad-lines",
                                "true"]) == 2
    assert one_error_line(capsys) == "error: --skip-bad-lines is for task pairs; this model is " \
        "task reverse"
