"""Attention weights recomputed from the model's own modules, and the PNG pictures."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import call_cli, make_model, source_batch, target_batch

from transformer_tiny.attention_maps import (
    capture_cross_attention,
    cross_attention_maps,
    token_labels,
)
from transformer_tiny.cli.plot import plot_main
from transformer_tiny.decoding import greedy_decode
from transformer_tiny.metrics import EvalResult
from transformer_tiny.plots import (
    plot_accuracy_by_length,
    plot_attention,
    plot_training_curves,
)
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_width: int = 300) -> None:
    """A non-empty, valid PNG of a sensible size."""
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.width >= min_width and image.height >= 200


@pytest.mark.parametrize("scheme", ["rope", "sinusoidal"])
def test_weights_reproduce_the_attention_output(scheme):
    model = make_model(position_scheme=scheme, n_dec_layers=2)
    src, tgt = source_batch([5, 11, 2]), target_batch([4, 7, 1])
    with capture_cross_attention(model) as calls:
        model(src, tgt)
    assert len(calls) == len(model.decoder)
    for layer, call in zip(model.decoder, calls, strict=True):
        torch.testing.assert_close(call.recombined(layer.cross_attn), call.output,
                                   rtol=1e-10, atol=1e-10)
        ones = torch.ones(call.weights.shape[:-1], dtype=call.weights.dtype)
        torch.testing.assert_close(call.weights.sum(-1), ones)
        padded = (src == PAD_ID)[:, None, None, :].expand_as(call.weights)
        assert (call.weights[padded] == 0).all()  # no weight on PAD keys
    assert all(not layer.cross_attn._forward_hooks for layer in model.decoder)  # hooks removed


def test_weights_match_cached_decoding_step_by_step():
    model = make_model()
    src = source_batch([6, 3])
    with capture_cross_attention(model) as calls:
        greedy_decode(model, src, max_new_tokens=4, use_cache=True)
    assert len(calls) == 4 * len(model.decoder)  # one per layer per step
    for i, call in enumerate(calls):
        layer = model.decoder[i % len(model.decoder)]
        torch.testing.assert_close(call.recombined(layer.cross_attn), call.output)


def test_maps_of_one_input():
    model = make_model()
    maps = cross_attention_maps(model, "abc é", max_new_tokens=5)
    n_layers, n_heads = len(model.decoder), model.cfg.n_heads
    assert maps.source_labels == ["BOS", "a", "b", "c", "␣", "é", "·", "EOS"]
    rows = maps.weights.shape[2]  # the output bytes, and EOS if the output ended
    assert maps.weights.shape == (n_layers, n_heads, rows, 8)
    assert len(maps.output_labels) == rows and (rows <= 6 if maps.ended else rows == 5)
    assert model.training is False


def test_token_labels():
    assert token_labels([BOS_ID, 72, 32, 0xC3, 0xA9, EOS_ID]) == ["BOS", "H", "␣", "é", "·", "EOS"]
    assert token_labels([0xFF, 0xC3, 10]) == ["\\xff", "\\xc3", "\\n"]  # invalid, cut, control


def test_attention_png(tmp_path):
    model = make_model(dtype=torch.float32, n_heads=2, n_dec_layers=1)
    maps = cross_attention_maps(model, "x" * 40, max_new_tokens=41)
    path = plot_attention(maps, tmp_path / "a.png", ["from start", "from end"])
    assert_png(path, min_width=1000)  # about 40 characters: big enough to read every tick


def test_training_curves_png(tmp_path):
    records = [{"epoch": e, "step": 4 * e, "train_loss": 1.0 / e, "val_exact_match": 0.3 * e,
                "val_char_accuracy": 0.33 * e, "tokens_per_s": 1, "elapsed_s": e}
               for e in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "steps.csv").write_text("step,loss,lr\n" + "".join(
        f"{s},{2.0 / s},0.001\n" for s in range(1, 13)))
    assert_png(plot_training_curves(tmp_path, tmp_path / "plots" / "c.png"))


def test_accuracy_by_length_png(tmp_path):
    buckets = {f"{lo}-{hi}": {"exact_match": e, "char_accuracy": c, "n": 10}
               for lo, hi, e, c in [(1, 8, 1.0, 1.0), (9, 16, 0.9, 0.97), (17, 64, 0.2, 0.6)]}
    result = EvalResult(0.7, 0.86, 30, buckets)
    assert_png(plot_accuracy_by_length(result, tmp_path / "l.png", trained_up_to=16))


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
