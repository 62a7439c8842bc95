"""The PNG pictures: cross-attention maps, training curves, accuracy by input length."""

from __future__ import annotations

import json

import torch
from helpers import assert_png, make_model

from transformer_tiny.attention_maps import cross_attention_maps
from transformer_tiny.metrics import EvalResult
from transformer_tiny.plots import (
    plot_accuracy_by_length,
    plot_attention,
    plot_training_curves,
)


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
