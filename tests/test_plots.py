"""The PNG pictures: cross-attention maps, training curves, accuracy by input length."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import assert_png, make_model

from transformer_tiny.attention_maps import cross_attention_maps
from transformer_tiny.config import DataConfig, RunConfig
from transformer_tiny.inputs import DEFAULT_TEXT
from transformer_tiny.metrics import EvalResult
from transformer_tiny.plots import (
    accuracy_by_length,
    default_buckets,
    default_text,
    draw,
    plot_accuracy_by_length,
    plot_attention,
    plot_training_curves,
)
from transformer_tiny.tasks import task_for


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


def test_accuracy_by_length_keeps_add_within_the_numbers_its_model_reads():
    """An add model's format is sized by its training lengths: the picture's default lengths
    stop there (longer strings hold numbers it refuses), while reverse's go 4x longer."""
    model, cfg = _small_model_and_config(task="add", max_len=11)
    assert default_buckets(cfg) == [(1, 3), (4, 6), (7, 9), (10, 11)]
    result = accuracy_by_length(model, cfg, default_buckets(cfg), samples=2)  # no format error
    assert result.n == 2 * len(default_buckets(cfg))
    _, reverse = _small_model_and_config(max_len=8, alphabet="printable")
    assert default_buckets(reverse)[-2:] == [(9, 16), (17, 32)]


def _small_model_and_config(**data):
    model = make_model(dtype=torch.float32, n_heads=2, n_dec_layers=1)
    return model, RunConfig(model.cfg, DataConfig(**data))


@pytest.mark.parametrize("metrics, problem", [
    ('{"epoch": 1, "step": 2}\n', "metrics.jsonl line 1: no 'train_loss'"),
    ('{"step": 2, "train_loss": 1, "val_exact_match": false, "val_char_accuracy": 0}\n',
     "metrics.jsonl line 1: 'val_exact_match' must be a number, got false"),
    ("\n", "metrics.jsonl has no records"),
])
def test_draw_checks_the_curves_before_writing_anything(tmp_path, metrics, problem):
    (tmp_path / "metrics.jsonl").write_text(metrics)
    model, cfg = _small_model_and_config()
    with pytest.raises(ValueError, match=problem):
        draw(model, cfg, tmp_path / "out", ["attention", "curves"], run_dir=tmp_path)
    assert not (tmp_path / "out").exists()


def test_draw_refuses_accuracy_by_length_for_pairs_read_from_files(tmp_path):
    model, cfg = _small_model_and_config(task="pairs", train_file="pairs.tsv")
    with pytest.raises(ValueError, match="task pairs reads its inputs from files: accuracy by le"):
        draw(model, cfg, tmp_path / "out", ["attention", "lengths"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data", [DataConfig(task="add", max_len=11), DataConfig(task="parens"),
                                  DataConfig(), DataConfig(task="pairs", train_file="x.tsv"),
                                  DataConfig(task="add", min_len=13, max_len=21)])
def test_the_default_attention_input_is_one_the_task_takes(data):
    text = default_text(RunConfig(data=data))
    task_for(data).model_input(text)  # add refuses text that is not digits+digits
    assert (text == DEFAULT_TEXT) == (data.task in ("reverse", "pairs"))
