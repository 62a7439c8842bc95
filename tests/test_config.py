"""Config validation (errors name the field), dict round trip, the model's length limit, and
command-line overrides."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest
import torch
from helpers import make_model

from transformer_tiny.cli.common import Parser, add_config_arguments, overrides_from_args
from transformer_tiny.cli.errors import UsageError
from transformer_tiny.config import (
    MAX_DATA_SEED,
    MAX_SEED,
    SECTIONS,
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    build_config,
)
from transformer_tiny.tasks import task_for


# kind, arguments, the field the message names, and the rest of the message (a regex): the
# check that refuses the values, not just any check of the same field
@pytest.mark.parametrize("kind, kwargs, field, match", [
    (ModelConfig, dict(d_model=30, n_heads=4), "d_model", "must be divisible by n_heads"),
    (ModelConfig, dict(d_model=18, n_heads=3), "d_model", "must be a multiple of 4"),
    (ModelConfig, dict(d_model=-8), "d_model", "must be > 0, got -8"),
    (ModelConfig, dict(n_heads=0), "n_heads", "must be > 0, got 0"),
    (ModelConfig, dict(n_enc_layers=-1), "n_enc_layers", "must be > 0, got -1"),
    (ModelConfig, dict(n_dec_layers=0), "n_dec_layers", "must be > 0, got 0"),
    (ModelConfig, dict(d_ff=-256), "d_ff", "must be > 0, got -256"),
    (ModelConfig, dict(max_positions=-5), "max_positions", "must be > 0, got -5"),
    (ModelConfig, dict(max_positions=2), "max_positions", "must be >= 3"),
    (ModelConfig, dict(vocab_size=0), "vocab_size", "must be > 0, got 0"),
    (ModelConfig, dict(dropout=1.0), "dropout", r"must be in \[0, 1\)"),
    (ModelConfig, dict(dropout=-0.1), "dropout", r"must be in \[0, 1\)"),
    (ModelConfig, dict(position_scheme="alibi"), "position_scheme",
     r"must be one of \('sinusoidal', 'rope'\), got 'alibi'"),
    (ModelConfig, dict(attention_impl="flash"), "attention_impl",
     r"must be one of \('auto', 'sdpa', 'math'\), got 'flash'"),
    (DataConfig, dict(task="no-such-task"), "task",  # lists the known tasks
     r"must be one of \[.*'copy'.*'reverse'.*\], got 'no-such-task' \(a task that your own "
     r"code registers exists only where that code has run\)"),
    (DataConfig, dict(alphabet="klingon"), "alphabet",
     r"must be one of \[.*'digits'.*'unicode'.*\], got 'klingon'"),
    (DataConfig, dict(min_len=9, max_len=8), "min_len", "must be <= max_len"),
    (DataConfig, dict(min_len=0), "min_len", "must be > 0, got 0"),
    (DataConfig, dict(max_len=-1), "max_len", "must be > 0, got -1"),
    (DataConfig, dict(train_samples=0), "train_samples", "must be > 0, got 0"),
    (DataConfig, dict(val_samples=-1), "val_samples", "must be > 0, got -1"),
    (DataConfig, dict(test_samples=0), "test_samples", "must be > 0, got 0"),
    (TrainConfig, dict(device="gpu"), "device",
     r"must be one of \('auto', 'cpu', 'cuda'\), got 'gpu'"),
    (TrainConfig, dict(epochs=0), "epochs", "must be > 0, got 0"),
    (TrainConfig, dict(batch_size=-1), "batch_size", "must be > 0, got -1"),
    (TrainConfig, dict(lr=0.0), "lr", r"must be > 0, got 0\.0"),
    (TrainConfig, dict(grad_clip=-1.0), "grad_clip", r"must be > 0, got -1\.0"),
    (TrainConfig, dict(warmup_steps=-1), "warmup_steps", "must be >= 0"),
    (TrainConfig, dict(weight_decay=-0.1), "weight_decay", "must be >= 0"),
    (TrainConfig, dict(min_lr_ratio=1.5), "min_lr_ratio", r"must be in \[0, 1\]"),
    (TrainConfig, dict(label_smoothing=1.0), "label_smoothing", r"must be in \[0, 1\)"),
    (TrainConfig, dict(label_smoothing=-0.1), "label_smoothing", r"must be in \[0, 1\)"),
    (TrainConfig, dict(threads=-2), "threads", r"must be in \[0, 1024\]"),
    # torch crashes on such a count
    (TrainConfig, dict(threads=100_000), "threads", r"must be in \[0, 1024\]"),
    (TrainConfig, dict(out=""), "out", "must not be empty"),
    # no infinite floats: an infinite learning rate would write NaN weights
    (TrainConfig, dict(lr=float("inf")), "lr", "must be a finite number, got inf"),
    (TrainConfig, dict(weight_decay=float("inf")), "weight_decay",
     "must be a finite number, got inf"),
    (TrainConfig, dict(grad_clip=float("inf")), "grad_clip", "must be a finite number, got inf"),
    (DataConfig, dict(hard_share=float("nan")), "hard_share", "must be a finite number, got nan"),
    # seeds that the random generators take
    (TrainConfig, dict(seed=2**63), "seed",
     rf"must be in \[-{MAX_SEED}, {MAX_SEED}\], got {2**63}"),
    (DataConfig, dict(data_seed=-(10**13)), "data_seed",
     rf"must be in \[-{MAX_DATA_SEED}, {MAX_DATA_SEED}\], got -{10**13}"),
    # every size within its bound, but too many parameters together
    (ModelConfig, dict(d_model=4096, n_heads=8, d_ff=16384, n_enc_layers=2), "model",
     r"[\d,]+ parameters, at most 100,000,000 \(fewer layers, a smaller d_model or d_ff\)"),
])
def test_invalid_values_name_the_field(kind, kwargs, field, match):
    with pytest.raises(ConfigError) as info:
        kind(**kwargs)
    message = str(info.value)
    assert re.fullmatch(f"{re.escape(field)}: {match}", message), message  # one line, too
    assert isinstance(info.value, ValueError)  # the CLIs treat it as a usage error


def test_largest_allowed_seeds_seed_every_generator(tmp_path):
    from transformer_tiny.data import DataModule
    from transformer_tiny.utils import seed_everything

    for sign in (1, -1):
        seed_everything(TrainConfig(seed=sign * MAX_SEED).seed)
        dm = DataModule(DataConfig(data_seed=sign * MAX_DATA_SEED, train_samples=8, val_samples=2,
                                   test_samples=2), 64)
        assert len(list(dm.train_loader(9, 4))) == 2


def test_rope_needs_an_even_head_size():
    # positions.apply_rotation rotates feature pairs; an odd head size has no pairing
    with pytest.raises(ConfigError, match=r"^n_heads:"):
        ModelConfig(d_model=36, n_heads=12, position_scheme="rope")  # head size 3


def test_shift_k_is_a_validated_config_field():
    assert task_for(DataConfig(task="shift", shift=5)).solve("abz") == "fge"
    assert task_for(DataConfig(task="shift", shift=0)).solve("abz") == "abz"
    for bad in (26, -1):
        with pytest.raises(ConfigError, match=r"^shift:"):
            DataConfig(task="shift", shift=bad)
    with pytest.raises(ConfigError, match=r"^shift:"):
        DataConfig(task="shift", shift=True)


def test_valid_configs():
    # sinusoidal positions take an odd head size
    assert ModelConfig(d_model=36, n_heads=12, position_scheme="sinusoidal").head_size == 3
    assert ModelConfig(d_model=4, n_heads=1, max_positions=3).max_input_bytes == 1
    DataConfig(min_len=5, max_len=5, task="copy", alphabet="unicode")  # one length: accepted
    train = TrainConfig(device="cpu", warmup_steps=0, min_lr_ratio=0, lr=1)
    assert train.min_lr_ratio == 0.0 and type(train.min_lr_ratio) is float  # ints become floats
    assert train.lr == 1.0 and type(train.lr) is float


def test_defaults():
    cfg = RunConfig()
    assert cfg.model.max_input_bytes == cfg.model.max_positions - 2
    assert cfg.data.task == "reverse"


def test_check_positions():
    cfg = make_model(max_positions=16, dtype=torch.float32).cfg
    cfg.check_positions(16)  # exactly the limit is fine
    with pytest.raises(ValueError, match=r"^input too long: 15 bytes, this model supports "
                       r"at most 14$"):
        cfg.check_positions(17)


def test_to_dict_from_dict_round_trip():
    cfg = RunConfig(ModelConfig(d_model=64, n_heads=8, position_scheme="sinusoidal",
                                randomize_positions=False, attention_impl="math", dropout=0.1),
                    DataConfig(task="copy", alphabet="digits", min_len=2, max_len=5),
                    TrainConfig(epochs=7, lr=1e-3, device="cpu", out="x/y", progress=False))
    d = cfg.to_dict()
    assert set(d) == {"model", "data", "train"}
    assert d["model"]["d_model"] == 64 and d["data"]["task"] == "copy"
    assert RunConfig.from_dict(d) == cfg
    assert RunConfig.from_dict({}) == RunConfig()  # missing sections take the defaults
    assert RunConfig.from_dict({"model": {"d_model": 64}}).model == ModelConfig(d_model=64)


def test_from_dict_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match=r"^model\.colour: unknown config key$"):
        RunConfig.from_dict({"model": {"colour": "red"}})
    with pytest.raises(ConfigError, match=r"^train\.epoch: unknown config key$"):
        RunConfig.from_dict({"train": {"epoch": 3}})


# ----------------------------------------------------------------------------- command line
def parse(argv: list[str], sections=("model", "data", "train")) -> argparse.Namespace:
    parser = Parser()
    add_config_arguments(parser, sections)
    return parser.parse_args(argv)


def test_every_field_has_a_flag():
    parser = Parser()
    add_config_arguments(parser, tuple(SECTIONS))
    flags = {opt for action in parser._actions for opt in action.option_strings}
    for kind in SECTIONS.values():
        for f in dataclasses.fields(kind):
            assert f"--{f.name.replace('_', '-')}" in flags


def test_every_flag_states_its_default_once():
    parser = Parser()
    add_config_arguments(parser, tuple(SECTIONS))
    helps = {a.dest: a.help for a in parser._actions if "." in a.dest}
    assert helps["data.val_file"].endswith("(default: a slice of train_file)")
    assert helps["model.d_model"].endswith("(default: 128)")
    assert all(text.count("(default:") == 1 for text in helps.values()), helps


def test_flags_build_the_right_config():
    args = parse(["--d-model", "64", "--n-heads", "4", "--task", "copy",
                  "--randomize-positions", "false"])
    overrides = overrides_from_args(args)
    assert overrides == {"model": {"d_model": 64, "n_heads": 4, "randomize_positions": False},
                         "data": {"task": "copy"}}
    cfg = build_config(None, overrides)
    expected = RunConfig(ModelConfig(d_model=64, n_heads=4, randomize_positions=False),
                         DataConfig(task="copy"), TrainConfig())
    assert cfg == expected


def test_flag_types():
    args = parse(["--lr", "0.001", "--dropout", "0.25", "--progress", "no", "--epochs", "2",
                  "--out", "runs/x", "--alphabet", "digits"])
    cfg = build_config(None, overrides_from_args(args))
    assert cfg.train.lr == 0.001 and isinstance(cfg.train.lr, float)
    assert cfg.model.dropout == 0.25
    assert cfg.train.progress is False and cfg.train.epochs == 2 and cfg.train.out == "runs/x"
    assert cfg.data.alphabet == "digits"


def test_no_flags_means_no_overrides():
    assert overrides_from_args(parse([])) == {}
    assert build_config(None, {}) == RunConfig()


@pytest.mark.parametrize("text, value", [("true", True), ("1", True), ("YES", True), ("on", True),
                                         ("false", False), ("0", False), ("No", False),
                                         ("off", False)])
def test_boolean_flags(text, value):
    cfg = build_config(None, overrides_from_args(parse(["--randomize-positions", text])))
    assert cfg.model.randomize_positions is value


@pytest.mark.parametrize("argv", [["--randomize-positions", "maybe"], ["--d-model", "wide"],
                                  ["--lr", "fast"], ["--colour", "red"]])
def test_bad_flag_values_are_usage_errors(argv):
    with pytest.raises(UsageError):
        parse(argv)


def test_sections_limit_the_flags():
    with pytest.raises(UsageError):
        parse(["--epochs", "3"], sections=("model",))


def test_overrides_take_precedence_over_base():
    base = RunConfig(ModelConfig(d_model=64, n_heads=8), DataConfig(task="copy")).to_dict()
    cfg = build_config(base, {"model": {"n_heads": 4}, "train": {"epochs": 9}})
    assert cfg.model.d_model == 64 and cfg.model.n_heads == 4
    assert cfg.data.task == "copy" and cfg.train.epochs == 9
    with pytest.raises(ConfigError, match="d_model"):
        build_config(base, {"model": {"n_heads": 5}})
