"""ONNX export: the encoder and one cached decoder step on onnxruntime give PyTorch's logits and,
in a greedy loop, PyTorch's strings (dynamic batch size and lengths)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, call_cli, make_model, source_batch

from transformer_tiny.checkpoint import load_checkpoint
from transformer_tiny.cli.export import export_main
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from transformer_tiny.data import DataModule, draw_inputs
from transformer_tiny.decoding import greedy_decode, predict
from transformer_tiny.export import (
    DECODER_FILE,
    ENCODER_FILE,
    OnnxSeq2Seq,
    export_onnx,
    onnx_greedy,
    onnx_predict,
)
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.tokenizer import BOS_ID, ByteTokenizer
from transformer_tiny.train_eval import train

TOK = ByteTokenizer()


def assert_logits_agree(model: Seq2SeqTransformer, runner: OnnxSeq2Seq, src: torch.Tensor,
                        steps: int, atol: float) -> None:
    """Encoder outputs and ``steps`` cached decoder steps (fed PyTorch's greedy tokens) agree."""
    model.eval()
    with torch.no_grad():
        memory = model.encode(src)
        enc = runner.encode(src.numpy())
        assert np.array_equal(enc["src_mask"], memory.src_mask.numpy())
        np.testing.assert_allclose(enc["states"], memory.states.numpy(), atol=atol)
        for i, (k, v) in enumerate(memory.cross_kv):
            np.testing.assert_allclose(enc[f"cross_k_{i}"], k.numpy(), atol=atol)
            np.testing.assert_allclose(enc[f"cross_v_{i}"], v.numpy(), atol=atol)
        hs = model.cfg.d_model // model.cfg.n_heads
        past = [np.zeros((src.size(0), model.cfg.n_heads, 0, hs), np.float32)
                for _ in range(2 * model.cfg.n_dec_layers)]
        history = torch.full((src.size(0), 1), BOS_ID)
        for _ in range(steps):
            expected = model.decode(history[:, -1:], memory, use_cache=True)[:, -1]
            logits, past = runner.step(history.numpy(), enc, past)
            np.testing.assert_allclose(logits, expected.numpy(), atol=atol)
            for got, cache in zip(past[::2], memory.caches, strict=True):
                np.testing.assert_allclose(got, cache.k.numpy(), atol=atol)
            history = torch.cat([history, expected.argmax(-1, keepdim=True)], dim=1)


# ----------------------------------------------------------------------------- untrained models
@pytest.mark.parametrize("scheme", ["rope", "sinusoidal"])
def test_untrained_export_matches_pytorch(scheme, tmp_path):
    model = make_model(dtype=torch.float32, position_scheme=scheme)
    rng_before, params_before = torch.get_rng_state(), model.state_dict()
    paths = export_onnx(model, tmp_path)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the model and RNG are left alone
    assert all(torch.equal(v, params_before[k]) for k, v in model.state_dict().items())
    assert {p.name for p in paths.values()} == {ENCODER_FILE, DECODER_FILE}
    runner = OnnxSeq2Seq(tmp_path, threads=1)
    assert runner.cfg == model.cfg
    assert runner.encoder.get_inputs()[0].shape == ["batch", "src_len"]
    past = [i.shape for i in runner.decoder.get_inputs() if i.name.startswith("past_")]
    assert past and all(s == ["batch", model.cfg.n_heads, "past_len", 8] for s in past)
    # Batch sizes and lengths other than those traced, up to the model's 62 input bytes.
    for lengths in ([1], [3, 10, 5], [40, 2, 62, 7, 7, 1, 20]):
        src = source_batch(lengths, seed=len(lengths))
        assert_logits_agree(model, runner, src, steps=6, atol=1e-4)
        expected = greedy_decode(model, src, max_new_tokens=24).numpy()
        assert np.array_equal(onnx_greedy(runner, src, max_new_tokens=24), expected)
    src = source_batch([5, 9])
    assert np.array_equal(onnx_greedy(runner, src), greedy_decode(model, src).numpy())
    with pytest.raises(ValueError, match="input too long"):
        onnx_greedy(tmp_path, source_batch([63]))


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


# ----------------------------------------------------------------------------- a trained model
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """The reverse task learned on strings of 1-8 characters (as in test_train_e2e.py)."""
    out = tmp_path_factory.mktemp("export") / "run"
    cfg = RunConfig(ModelConfig(max_positions=64),
                    DataConfig(max_len=8, train_samples=6000, val_samples=200, test_samples=500),
                    TrainConfig(epochs=2, seed=0, device="cpu", progress=False, out=str(out)))
    threads = torch.get_num_threads()
    try:
        train(cfg)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.mark.slow
def test_trained_model_parity_on_heldout_inputs(trained_run, tmp_path):
    model, cfg, _ = load_checkpoint(trained_run)
    export_onnx(trained_run, tmp_path)
    runner = OnnxSeq2Seq(tmp_path)
    # 120 held-out test strings (lengths 1-8, as in training) and 120 fresh longer ones.
    inputs = DataModule(cfg.data).test_inputs[:120]
    for k, (lo, hi) in enumerate([(9, 16), (17, 32), (33, 62)]):
        inputs += draw_inputs(cfg.data, 40, 20_000 + k, min_len=lo, max_len=hi)
    ours = onnx_predict(runner, inputs)
    reference = [TOK.decode(ids) for ids, _ in predict(model, inputs)]
    assert sum(a == b for a, b in zip(ours, reference, strict=True)) == len(inputs) == 240
    assert sum(o == x[::-1] for o, x in zip(ours[:120], inputs[:120], strict=True)) >= 110
    src, _ = TOK.pad_batch([TOK.encode(x) for x in inputs[::12]], bos=True, eos=True)
    assert_logits_agree(model, runner, src, steps=10, atol=2e-4)


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
