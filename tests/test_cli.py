"""The scripts, run as subprocesses: outputs, and one ``error:`` line with exit code 2 for every
expected failure (never a traceback)."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, weights_of

from transformer_tiny.checkpoint import load_checkpoint, save_checkpoint
from transformer_tiny.config import ModelConfig, RunConfig
from transformer_tiny.decoding import predict
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, ByteTokenizer

TOK = ByteTokenizer()
MAX_POSITIONS = 64  # the tiny model takes at most 62 input bytes


def run_script(script: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """``python scripts/SCRIPT args`` in the repository root; stdout/stderr decoded as UTF-8."""
    proc = subprocess.run([sys.executable, f"scripts/{script}", *args], cwd=ROOT, input=stdin,
                          capture_output=True, timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode("utf-8", errors="surrogateescape"),
                                       proc.stderr.decode("utf-8", errors="surrogateescape"))


def assert_usage_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, nothing on stdout, exactly one ``error: ...`` line on stderr."""
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def output_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("\n")
    return proc.stdout[:-1].split("\n")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny model trained for two steps by scripts/train.py (once per module)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run_script("train.py", "--epochs", "1", "--train-samples", "256", "--val-samples", "32",
                      "--test-samples", "32", "--d-model", "32", "--n-heads", "2", "--d-ff", "64",
                      "--max-positions", str(MAX_POSITIONS), "--out", str(out),
                      "--progress", "false")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "trained 2 steps" in proc.stdout
    assert {p.name for p in out.iterdir()} >= {"best.json", "last.json", "metrics.jsonl"}
    return out


def expected_outputs(run_dir: Path, texts: list[str]) -> list[str]:
    model, _, _ = load_checkpoint(run_dir)
    return [TOK.decode(ids) for ids, _ in predict(model, texts)]


def test_train_writes_metrics(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["epoch"] == 1 and records[0]["step"] == 2
    info = json.loads((run_dir / "best.json").read_text())
    assert weights_of(run_dir / "best.json").is_file()
    assert info["config"]["model"]["max_positions"] == MAX_POSITIONS
    assert info["config"]["train"]["out"] == str(run_dir)


def test_infer_one_line_per_text(run_dir):
    texts = ["abc", "", "héllo wörld", "x" * (MAX_POSITIONS - 2)]  # the last: the longest allowed
    args = [a for t in texts for a in ("--text", t)]
    proc = run_script("infer.py", "--checkpoint", str(run_dir), *args)
    lines = output_lines(proc)
    assert len(lines) == len(texts)
    assert lines == expected_outputs(run_dir, texts)  # the same as the library's predictions


def test_infer_one_line_per_stdin_line(run_dir):
    stdin = b"abc\nxyz\r\n\nlast"  # CRLF, an empty line, no final newline
    proc = run_script("infer.py", "--checkpoint", str(run_dir), stdin=stdin)
    lines = output_lines(proc)
    assert len(lines) == 4
    assert lines == expected_outputs(run_dir, ["abc", "xyz", "", "last"])


def test_infer_missing_checkpoint(tmp_path):
    proc = run_script("infer.py", "--checkpoint", str(tmp_path / "nothing"), "--text", "a")
    assert_usage_error(proc, "train", "no checkpoint")


def test_infer_unknown_flag(run_dir):
    assert_usage_error(run_script("infer.py", "--checkpoint", str(run_dir), "--bogus"), "--bogus")


def test_infer_corrupt_checkpoint(run_dir, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken)
    weights = weights_of(broken / "best.json")
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    assert_usage_error(run_script("infer.py", "--checkpoint", str(broken), "--text", "a"),
                       "corrupted")


def test_infer_invalid_utf8_stdin(run_dir):
    proc = run_script("infer.py", "--checkpoint", str(run_dir), stdin=b"fine\nbad \xff\xfe\n")
    assert_usage_error(proc, "stdin", "UTF-8", "line 2")


def test_infer_input_too_long(run_dir):
    proc = run_script("infer.py", "--checkpoint", str(run_dir), "--text", "ok",
                      "--text", "y" * 100)
    assert_usage_error(proc, "input 2", "100 bytes", f"at most {MAX_POSITIONS - 2}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_infer_cuda_without_cuda(run_dir):
    proc = run_script("infer.py", "--checkpoint", str(run_dir), "--device", "cuda", "--text", "a")
    assert_usage_error(proc, "cuda")


def test_train_invalid_config_value(tmp_path):
    proc = run_script("train.py", "--d-model", "30", "--n-heads", "4", "--out", str(tmp_path / "r"))
    assert_usage_error(proc, "d_model")
    assert not (tmp_path / "r").exists()


def test_eval_json(run_dir):
    proc = run_script("eval.py", "--checkpoint", str(run_dir), "--json", "--examples", "2")
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["task"] == "reverse" and result["n"] == 32
    assert 0.0 <= result["exact_match"] <= result["char_accuracy"] <= 1.0
    assert isinstance(result["buckets"], dict) and result["buckets"]
    assert sum(b["n"] for b in result["buckets"].values()) == 32
    assert len(result["examples"]) == 2
    assert set(result["examples"][0]) == {"input", "target", "pred"}


# ----------------------------------------------------------------------------- surrogate output
SURROGATE_BYTES = [0xED, 0xA0, 0x80]  # "\ud800" as written by the surrogatepass error handler


def surrogate_model() -> Seq2SeqTransformer:
    """A hand-wired model whose greedy output is always the bytes ED A0 80, then EOS.

    Every decoder sub-layer writes zero into the residual stream, so the logits depend only on the
    embedding of the current token; the head maps BOS -> ED -> A0 -> 80 -> EOS.
    """
    cfg = ModelConfig(d_model=32, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32,
                      max_positions=64)
    model = Seq2SeqTransformer(cfg).eval()
    chain = [BOS_ID, *SURROGATE_BYTES, EOS_ID]
    with torch.no_grad():
        for layer in model.decoder:
            for linear in (layer.self_attn.out_proj, layer.cross_attn.out_proj, layer.ff.net[2]):
                linear.weight.zero_()
                linear.bias.zero_()
        model.head.weight.zero_()
        model.head.bias.zero_()
        for k, (current, following) in enumerate(itertools.pairwise(chain)):
            model.embed.weight[current] = 0.0
            model.embed.weight[current, k] = 10.0
            model.head.weight[following, k] = 1.0
    return model


def test_surrogate_model_emits_an_encoded_surrogate():
    (ids, ended), = predict(surrogate_model(), ["abc"])
    assert ids == SURROGATE_BYTES and ended
    assert not TOK.is_valid_utf8(ids)
    assert TOK.decode(ids) == "\ud800"  # decode() carries it as a lone surrogate


def test_infer_shows_surrogate_output_with_replacement_chars(tmp_path):
    model = surrogate_model()
    save_checkpoint(tmp_path, "best", model, RunConfig(model=model.cfg), {})
    proc = run_script("infer.py", "--checkpoint", str(tmp_path), "--text", "abc")
    assert "Traceback" not in proc.stderr
    assert "not valid UTF-8" in proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert output_lines(proc) == ["\ufffd" * 3]
