"""``infer`` (in-process, and scripts/infer.py once as a subprocess): one output line per text,
and one ``error:`` line with exit code 2 for every expected failure (never a traceback)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import (
    MAX_POSITIONS,
    ROOT,
    TINY_FLAGS,
    TOK,
    assert_usage_error,
    call_cli,
    chain_model,
    one_error_line,
    run_main,
    run_script,
    surrogate_model,
    weights_of,
)

from transformer_tiny.checkpoint import load_checkpoint, save_checkpoint
from transformer_tiny.cli.infer import infer_main
from transformer_tiny.cli.train import train_main
from transformer_tiny.config import DataConfig, RunConfig
from transformer_tiny.decoding import predict
from transformer_tiny.tokenizer import BOS_ID, EOS_ID


def output_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("\n")
    return proc.stdout[:-1].split("\n")


def expected_outputs(run_dir: Path, texts: list[str]) -> list[str]:
    model, _, _ = load_checkpoint(run_dir)
    return [TOK.decode(ids) for ids, _ in predict(model, texts)]


def test_infer_one_line_per_text(run_dir):
    texts = ["abc", "", "héllo wörld", "x" * (MAX_POSITIONS - 2)]  # the last: the longest allowed
    args = [a for t in texts for a in ("--text", t)]
    proc = run_main(infer_main, "--checkpoint", str(run_dir), *args)
    lines = output_lines(proc)
    assert len(lines) == len(texts)
    assert lines == expected_outputs(run_dir, texts)  # the same as the library's predictions


@pytest.mark.slow  # a new Python process
def test_infer_one_line_per_stdin_line(run_dir):
    stdin = b"abc\nxyz\r\n\nlast"  # CRLF, an empty line, no final newline
    proc = run_script("infer.py", "--checkpoint", str(run_dir), stdin=stdin)
    lines = output_lines(proc)
    assert len(lines) == 4
    assert lines == expected_outputs(run_dir, ["abc", "xyz", "", "last"])


def test_infer_valid_odd_inputs_are_answered(tmp_path, capsys):
    model = chain_model([BOS_ID, *b"ok", EOS_ID])  # answers "ok" whatever the input
    save_checkpoint(tmp_path, "best", model,
                    RunConfig(model=model.cfg, data=DataConfig(alphabet="printable")), {})
    texts = ["", " ", "\t", "a\x00b", "\x07"]
    assert call_cli(infer_main, ["--checkpoint", str(tmp_path), "--max-new-tokens", "4",
                                 *[x for t in texts for x in ("--text", t)]]) == 0
    out, err = capsys.readouterr()
    assert out == "ok\n" * len(texts)  # one output line per input
    # warnings about the characters the printable alphabet lacks, nothing else
    assert err == "".join(f"warning: input {n} holds characters this model never saw in "
                          f"training: {name}\n"
                          for n, name in [(3, "'\\t'"), (4, "'\\x00'"), (5, "'\\x07'")])


def test_infer_shows_surrogate_output_with_replacement_chars(tmp_path):
    model = surrogate_model()
    save_checkpoint(tmp_path, "best", model, RunConfig(model=model.cfg), {})
    proc = run_main(infer_main, "--checkpoint", str(tmp_path), "--text", "abc")
    assert "Traceback" not in proc.stderr
    assert "not valid UTF-8" in proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert output_lines(proc) == ["\ufffd" * 3]


def test_a_bad_max_new_tokens_is_the_one_line_before_any_input_is_read(tmp_path, capsys):
    model = chain_model([BOS_ID, *b"ab", EOS_ID])
    cfg = RunConfig(model=model.cfg, data=DataConfig(alphabet="digits"))
    save_checkpoint(tmp_path, "best", model, cfg, {})
    limit = model.cfg.max_new_tokens
    for text in ("\x00", "é"):  # inputs that are warned of: never seen in training
        argv = ["--checkpoint", str(tmp_path), "--text", text, "--max-new-tokens"]
        for bad in ("0", str(limit + 1)):
            assert call_cli(infer_main, [*argv, bad]) == 2
            assert capsys.readouterr() == ("", f"error: --max-new-tokens must be in [1, {limit}]\n")


def test_infer_warns_when_an_output_is_cut(tmp_path, capsys):
    model = chain_model([BOS_ID, *b"abcd", EOS_ID])
    save_checkpoint(tmp_path, "best", model, RunConfig(model=model.cfg), {})
    argv = ["--checkpoint", str(tmp_path), "--text", "x", "--text", "y"]
    assert call_cli(infer_main, [*argv, "--max-new-tokens", "2"]) == 0
    assert capsys.readouterr() == ("ab\nab\n", "warning: output 1 hit --max-new-tokens before "
                                   "its end\nwarning: output 2 hit --max-new-tokens before its "
                                   "end\n")
    assert call_cli(infer_main, argv) == 0
    assert capsys.readouterr() == ("abcd\nabcd\n", "")


def test_infer_json_keeps_one_line_per_answer_whatever_it_holds(tmp_path, capsys):
    """Plain output is the answer as it is, so piped, one holding a line break spans two lines;
    ``--json`` writes one line of ASCII per answer, which a reader parses back exactly: line and
    paragraph separators and C1 controls are escaped (none reaches a terminal), a
    cut output is marked, an invalid one carries U+FFFD as the plain output does."""
    odd = "a\nb\u2028\x9b"  # a line feed and separator, the C1 control CSI: distinct bytes
    model = chain_model([BOS_ID, *odd.encode(), EOS_ID])  # answers ``odd`` whatever the input
    save_checkpoint(tmp_path / "lf", "best", model, RunConfig(model=model.cfg), {})
    argv = ["--checkpoint", str(tmp_path / "lf"), "--text", "x\ty", "--text", "z"]
    assert call_cli(infer_main, argv) == 0
    assert capsys.readouterr().out == f"{odd}\n{odd}\n"
    assert call_cli(infer_main, [*argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.isascii() and out.count("\n") == 2
    assert [json.loads(line) for line in out.splitlines()] == [
        {"input": "x\ty", "output": odd, "ended": True, "valid_utf8": True},
        {"input": "z", "output": odd, "ended": True, "valid_utf8": True}]
    assert call_cli(infer_main, [*argv[:4], "--json", "--max-new-tokens", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["ended"] is False
    save_checkpoint(tmp_path / "bad", "best", surrogate_model(), RunConfig(model=model.cfg), {})
    assert call_cli(infer_main, ["--checkpoint", str(tmp_path / "bad"), "--text", "abc",
                                 "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["valid_utf8"] is False and answer["output"] == "\ufffd" * 3  # as plain output


# ----------------------------------------------------------------------------- bad input
def test_infer_missing_checkpoint(tmp_path):
    proc = run_main(infer_main, "--checkpoint", str(tmp_path / "nothing"), "--text", "a")
    assert_usage_error(proc, "train", "no checkpoint")


def test_infer_unknown_flag(run_dir):
    assert_usage_error(run_main(infer_main, "--checkpoint", str(run_dir), "--bogus"), "--bogus")


def test_infer_corrupt_checkpoint(run_dir, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken)
    weights = weights_of(broken / "best.json")
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    assert_usage_error(run_main(infer_main, "--checkpoint", str(broken), "--text", "a"),
                       "corrupted")


@pytest.mark.slow  # a new Python process
def test_a_reader_that_goes_away_stops_infer_quietly(run_dir):
    """``infer.py ... | head -1``: the closed pipe ends the command as it ends Unix tools
    (status 141, 128 + SIGPIPE), with no error on stderr (an untrained model's warnings aside)."""
    proc = subprocess.Popen([sys.executable, "scripts/infer.py", "--checkpoint", str(run_dir)],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first output line
    _, err = proc.communicate(b"abc\n" * 3000, timeout=300)
    assert proc.returncode == 141
    assert b"error" not in err and b"Traceback" not in err and b"Exception" not in err, err


def test_infer_invalid_utf8_stdin(run_dir):
    proc = run_main(infer_main, "--checkpoint", str(run_dir), stdin=b"fine\nbad \xff\xfe\n")
    assert_usage_error(proc, "stdin", "UTF-8", "line 2")


def test_infer_input_too_long(run_dir):
    proc = run_main(infer_main, "--checkpoint", str(run_dir), "--text", "ok",
                      "--text", "y" * 100)
    assert_usage_error(proc, "input 2", "100 bytes", f"at most {MAX_POSITIONS - 2}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_infer_cuda_without_cuda(run_dir):
    proc = run_main(infer_main, "--checkpoint", str(run_dir), "--device", "cuda", "--text", "a")
    assert_usage_error(proc, "cuda")


@pytest.mark.parametrize("argv, message", [
    (["--beam", "0"], "error: argument --beam: must be in [1, 64]"),
    (["--beam", "65"], "error: argument --beam: must be in [1, 64]"),
    (["--beam", "two"], "error: argument --beam: invalid int value: 'two'"),
    (["--max-new-tokens", "0"], "error: --max-new-tokens must be in [1, 47]"),
    (["--max-new-tokens", "99999"], "error: --max-new-tokens must be in [1, 47]"),
], ids=["beam", "beam-too-wide", "beam-not-int", "zero-tokens", "too-many-tokens"])
# (too long a --text: test_infer_input_too_long)
def test_infer_bad_arguments(untrained_run, argv, message, capsys):
    assert call_cli(infer_main, ["--checkpoint", str(untrained_run), *argv, "--text", "a"]) == 2
    assert one_error_line(capsys) == message


def test_infer_reports_an_add_input_the_model_cannot_read(tmp_path, capsys):
    run = tmp_path / "run"
    assert call_cli(train_main, [*TINY_FLAGS, "--task", "add", "--out", str(run)]) == 0
    capsys.readouterr()
    assert call_cli(infer_main, ["--checkpoint", str(run), "--text", "123456+1"]) == 2
    err = capsys.readouterr().err
    assert err == "error: task add: this model adds numbers of at most 5 digits, got '123456+1'\n"
    # the spaces a person types around the numbers are dropped: no word of an unseen space
    assert call_cli(infer_main, ["--checkpoint", str(run), "--text", "1 + 2"]) == 0
    assert "never saw" not in capsys.readouterr().err  # (a tiny model: other warnings may come)
    assert call_cli(infer_main, ["--checkpoint", str(run), "--text", "1 + x"]) == 2
    assert capsys.readouterr().err == "error: task add: expected digits+digits, got '1 + x'\n"


def test_unseen_characters_are_named_and_answered(untrained_run, capsys):
    argv = ["--checkpoint", str(untrained_run), "--max-new-tokens", "2"]
    assert call_cli(infer_main, [*argv, "--text", "abc", "--text", "café 中"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 2  # both are answered
    warnings = [line for line in err.splitlines() if "never saw" in line]
    assert warnings == ["warning: input 2 holds characters this model never saw in training: "
                        "'é', '中'"]


def test_help_states_the_input_limit(capsys):
    with pytest.raises(SystemExit) as exit_info:
        infer_main(["--help"])
    assert exit_info.value.code == 0
    assert "4,096 with the default config" in " ".join(capsys.readouterr().out.split())


def test_closed_standard_streams_are_no_traceback(untrained_run, monkeypatch, capsys):
    """Started with a standard stream closed (``<&-``, ``>&-``, ``2>&-``), which Python gives as
    None: a closed input reads as empty, a closed output is one error line."""
    from transformer_tiny.cli.errors import run_cli

    argv = ["--checkpoint", str(untrained_run)]
    monkeypatch.setattr(sys, "stdin", None)
    assert run_cli(infer_main, argv) == 0  # as from /dev/null: nothing to answer
    monkeypatch.setattr(sys, "stdout", None)
    assert run_cli(infer_main, [*argv, "--text", "ab"]) == 2
    assert capsys.readouterr().err == "error: standard output is closed\n"
    monkeypatch.setattr(sys, "stderr", None)
    assert run_cli(infer_main, [*argv, "--text", "ab"]) == 2  # and nowhere to say so


def test_a_text_that_starts_with_a_dash_is_a_text(untrained_run, capsys):
    """``--text -1+2`` (argparse would take ``-1+2`` for a flag) and ``--text --`` (which
    argparse drops from ``--text=--``) reach the model as the texts they are."""
    argv = ["--checkpoint", str(untrained_run), "--json", "--max-new-tokens", "2"]
    texts = ["-1+2", "--", "--json", "-"]
    assert call_cli(infer_main, [*argv, "--text", texts[0], "--text", texts[1],
                                 "--text=--json", "--text", texts[3]]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["input"] for line in out] == texts
    assert call_cli(infer_main, [*argv, "--text"]) == 2  # still a value to give
    assert one_error_line(capsys) == "error: argument --text: expected one argument"
