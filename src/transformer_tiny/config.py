"""Typed, validated configuration: one dataclass each for the model, the data and training.

Every field can be overridden from the command line (``--d-model 64``, ``--alphabet digits``) and
all three are saved as JSON inside every checkpoint. Invalid values raise :class:`ConfigError`,
whose message names the field.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from .tokenizer import VOCAB_SIZE

POSITION_SCHEMES = ("sinusoidal", "rope")
ATTENTION_IMPLS = ("auto", "sdpa", "math")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """An invalid configuration value; ``str(err)`` names the field."""


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {message}")


_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool}


def _check_types(cfg: Any) -> None:
    """Every field holds a value of its annotated type (``bool`` is not accepted as a number)."""
    for f in fields(cfg):
        value, kind = getattr(cfg, f.name), _TYPES[str(f.type)]
        ok = isinstance(value, kind) and (str(f.type) == "bool" or not isinstance(value, bool))
        _check(ok, f.name, f"must be of type {f.type}, got {value!r}")
    for f in fields(cfg):
        if str(f.type) == "float":
            setattr(cfg, f.name, float(getattr(cfg, f.name)))


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        _check(getattr(cfg, name) > 0, name, f"must be > 0, got {getattr(cfg, name)!r}")


@dataclass
class ModelConfig:
    """Sizes and switches of :class:`~transformer_tiny.model.Seq2SeqTransformer`."""

    d_model: int = 128
    n_heads: int = 4
    n_enc_layers: int = 1
    n_dec_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.0
    max_positions: int = 1024  # position indices 0..max_positions-1; sequences carry 2 extra tokens
    position_scheme: str = "rope"  # one of POSITION_SCHEMES
    randomize_positions: bool = True  # train on sorted random subsets of the position indices
    attention_impl: str = "auto"  # "sdpa" (fused), "math" (explicit), "auto" (see attention.py)
    causal_encoder: bool = False  # encoder tokens see only those to their left (and themselves)
    vocab_size: int = VOCAB_SIZE

    def __post_init__(self) -> None:
        _check_types(self)
        _positive(self, "d_model", "n_heads", "n_enc_layers", "n_dec_layers", "d_ff")
        _positive(self, "max_positions", "vocab_size")
        _check(self.d_model % self.n_heads == 0, "d_model", "must be divisible by n_heads")
        _check(self.d_model % 4 == 0, "d_model", "must be a multiple of 4")
        _check(self.position_scheme != "rope" or (self.d_model // self.n_heads) % 2 == 0,
               "n_heads", "rope needs an even head size (d_model / n_heads)")
        _check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        _check(self.position_scheme in POSITION_SCHEMES, "position_scheme",
               f"must be one of {POSITION_SCHEMES}, got {self.position_scheme!r}")
        _check(self.attention_impl in ATTENTION_IMPLS, "attention_impl",
               f"must be one of {ATTENTION_IMPLS}, got {self.attention_impl!r}")
        _check(self.max_positions >= 3, "max_positions", "must be >= 3")

    @property
    def max_source_tokens(self) -> int:
        """Longest input, in byte tokens, that the model supports (BOS and EOS take 2 positions)."""
        return self.max_positions - 2


@dataclass
class DataConfig:
    """Which task, which strings, and how many of them."""

    task: str = "reverse"
    alphabet: str = "printable"
    min_len: int = 1
    max_len: int = 32
    train_samples: int = 16_000  # fresh random strings per epoch
    val_samples: int = 1_000
    test_samples: int = 2_000
    data_seed: int = 1234
    shift: int = 3  # task "shift": letters move this many places forward (a -> d)

    def __post_init__(self) -> None:
        _check_types(self)
        _positive(self, "min_len", "max_len", "train_samples", "val_samples", "test_samples")
        _check(self.min_len <= self.max_len, "min_len", "must be <= max_len")
        _check(0 <= self.shift <= 25, "shift", f"must be in [0, 25], got {self.shift!r}")
        from .tasks import ALPHABETS, TASKS  # late import: tasks imports nothing from config

        _check(self.task in TASKS, "task", f"must be one of {sorted(TASKS)}, got {self.task!r}")
        _check(self.alphabet in ALPHABETS, "alphabet",
               f"must be one of {sorted(ALPHABETS)}, got {self.alphabet!r}")


@dataclass
class TrainConfig:
    """Optimisation and run bookkeeping."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    out: str = "runs/quickstart"
    threads: int = 0  # 0 = one per available core
    save_every: int = 0  # also write the resumable "last" checkpoint every N steps (0: per epoch)
    progress: bool = True

    def __post_init__(self) -> None:
        _check_types(self)
        _positive(self, "epochs", "batch_size", "lr", "grad_clip")
        _check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _check(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", "must be in [0, 1]")
        _check(self.threads >= 0, "threads", "must be >= 0")
        _check(self.save_every >= 0, "save_every", "must be >= 0")
        _check(self.device in DEVICES, "device", f"must be one of {DEVICES}, got {self.device!r}")
        _check(bool(self.out), "out", "must not be empty")


@dataclass
class RunConfig:
    """The three configs together, as saved in a checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error naming the key."""
        _check(isinstance(d, dict), "config", "must be a JSON object")
        unknown_sections = sorted(set(d) - set(SECTIONS))
        _check(not unknown_sections, str(unknown_sections[:1]), "unknown config section")
        parts = {}
        for name, kind in SECTIONS.items():
            values = d.get(name, {})
            _check(isinstance(values, dict), name, "must be a JSON object")
            known = {f.name for f in fields(kind)}
            unknown = sorted(set(values) - known)
            _check(not unknown, f"{name}.{unknown[0] if unknown else ''}", "unknown config key")
            parts[name] = kind(**values)
        return cls(**parts)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    """Add one ``--field-name`` flag per dataclass field of the given sections (default: unset)."""
    for section in sections:
        group = parser.add_argument_group(f"{section} config")
        for f in fields(SECTIONS[section]):
            kind = {"int": int, "float": float, "str": str, "bool": _parse_bool}[str(f.type)]
            default = f.default if f.default is not dataclasses.MISSING else None
            group.add_argument(f"--{f.name.replace('_', '-')}", dest=f"{section}.{f.name}",
                               type=kind, default=None, help=f"(default: {default})")


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config flags that were given, as ``{section: {field: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in vars(args).items():
        if "." in key and value is not None:
            section, name = key.split(".", 1)
            out.setdefault(section, {})[name] = value
    return out


def build_config(base: dict[str, Any] | None, overrides: dict[str, dict[str, Any]]) -> RunConfig:
    """Defaults, then ``base`` (e.g. a saved config), then ``overrides``; validated."""
    merged: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for source in (base or {}, overrides):
        for section, values in source.items():
            merged.setdefault(section, {}).update(values)
    return RunConfig.from_dict(merged)
