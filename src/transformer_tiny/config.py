"""Typed, validated configuration: one dataclass each for the model, the data and training.

Every field can be overridden from the command line (``--d-model 64``, ``--alphabet digits``) and
all three are saved as JSON inside every checkpoint. Invalid values raise :class:`ConfigError`,
whose message names the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

from .alphabets import ALPHABETS
from .tasks import TASKS
from .tokenizer import VOCAB_SIZE

POSITION_SCHEMES = ("sinusoidal", "rope")
ATTENTION_IMPLS = ("auto", "sdpa", "math")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
# Upper bounds of the sizes, far above what a toy task needs.
MODEL_LIMITS = {"d_model": 4096, "n_heads": 256, "n_enc_layers": 64, "n_dec_layers": 64,
                "d_ff": 16384, "max_positions": 65536, "rope_stride": 64}
MAX_PARAMETERS = 100_000_000  # larger models are refused before one is built
MAX_THREADS = 1024
FILE_FIELDS = ("train_file", "val_file", "test_file")  # DataConfig's data files (task pairs)
# The largest seeds torch's generators take: the data's are multiplied (data.split_seed).
MAX_SEED, MAX_DATA_SEED = 2**63 - 1, 2**63 // 2_000_000
DATA_LIMITS = {"max_len": 16384, "train_samples": 100_000_000, "val_samples": 100_000,
               "test_samples": 100_000}


class ConfigError(ValueError):
    """An invalid configuration value; ``str(err)`` names the field."""


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {message}")


_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool}


def _check_types(cfg: Any) -> None:
    """Every field holds a value of its annotated type (``bool`` is not accepted as a number);
    an int given for a float field becomes a float, and floats must be finite."""
    for f in fields(cfg):
        value, kind = getattr(cfg, f.name), _TYPES[str(f.type)]
        ok = isinstance(value, kind) and (str(f.type) == "bool" or not isinstance(value, bool))
        _check(ok, f.name, f"must be of type {f.type}, got {value!r}")
    for f in fields(cfg):
        if str(f.type) == "float":
            value = float(getattr(cfg, f.name))
            _check(math.isfinite(value), f.name, f"must be a finite number, got {value!r}")
            setattr(cfg, f.name, value)


def _check_seed(cfg: Any, name: str, limit: int) -> None:
    value = getattr(cfg, name)
    _check(abs(value) <= limit, name, f"must be in [-{limit}, {limit}], got {value!r}")


def _task_names() -> list[str]:
    return sorted(TASKS)  # at call time: tasks registered after import count too


def _alphabet_names() -> list[str]:
    return sorted(ALPHABETS)


def _field(default: Any, help: str, choices: Any = None) -> Any:
    """A dataclass field with its ``--help`` text and, for a fixed set of values, its choices
    (a sequence, or a function returning one)."""
    return field(default=default, metadata={"help": help, "choices": choices})


def _at_most(cfg: Any, **limits: int) -> None:
    """Upper bounds: they keep a config read from a file from asking for absurd allocations."""
    for name, limit in limits.items():
        _check(getattr(cfg, name) <= limit, name, f"must be <= {limit}, got {getattr(cfg, name)!r}")


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        _check(getattr(cfg, name) > 0, name, f"must be > 0, got {getattr(cfg, name)!r}")


@dataclass
class ModelConfig:
    """Sizes and switches of :class:`~transformer_tiny.model.Seq2SeqTransformer`."""

    d_model: int = _field(128, "width of every token's vector")
    n_heads: int = _field(4, "attention heads per layer")
    n_enc_layers: int = _field(1, "encoder layers")
    n_dec_layers: int = _field(2, "decoder layers")
    d_ff: int = _field(256, "hidden width of the feed-forward layers")
    dropout: float = _field(0.0, "dropout probability")
    max_positions: int = _field(4098, "position indices 0..N-1; an input may have N-2 bytes")
    position_scheme: str = _field("rope", "how positions enter the model",
                                  choices=POSITION_SCHEMES)
    randomize_positions: bool = _field(True, "train on sorted random subsets of the indices")
    rope_stride: int = _field(4, "rotary index steps per position (rope): how fast angles turn")
    attention_impl: str = _field("auto", "fused kernel, explicit math, or auto (see attention.py)",
                                 choices=ATTENTION_IMPLS)
    causal_encoder: bool = _field(False, "encoder tokens see only those to their left")
    vocab_size: int = _field(VOCAB_SIZE, "token ids (the byte tokenizer's)")

    def __post_init__(self) -> None:
        _check_types(self)
        _positive(self, "d_model", "n_heads", "n_enc_layers", "n_dec_layers", "d_ff")
        _positive(self, "max_positions", "vocab_size", "rope_stride")
        _check(self.d_model % self.n_heads == 0, "d_model", "must be divisible by n_heads")
        # sinusoidal positions give half the features to the start offset and half to the end
        # offset, each half split into sines and cosines
        _check(self.d_model % 4 == 0, "d_model", "must be a multiple of 4")
        _check(self.position_scheme != "rope" or self.head_size % 2 == 0,
               "n_heads", "rope needs an even head size (d_model / n_heads)")
        _check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        _check(self.position_scheme in POSITION_SCHEMES, "position_scheme",
               f"must be one of {POSITION_SCHEMES}, got {self.position_scheme!r}")
        _check(self.attention_impl in ATTENTION_IMPLS, "attention_impl",
               f"must be one of {ATTENTION_IMPLS}, got {self.attention_impl!r}")
        _check(self.max_positions >= 3, "max_positions", "must be >= 3")
        _at_most(self, **MODEL_LIMITS)
        n = self.num_parameters()
        _check(n <= MAX_PARAMETERS, "model",
               f"{n:,} parameters, at most {MAX_PARAMETERS:,} (fewer layers, a smaller d_model "
               "or d_ff)")
        _check(self.vocab_size == VOCAB_SIZE, "vocab_size",
               f"must be {VOCAB_SIZE} (the byte tokenizer's), got {self.vocab_size!r}")

    def num_parameters(self) -> int:
        """Parameters of the model these sizes describe, counted without building it (a test
        checks the count against the model's own)."""
        c, f, v = self.d_model, self.d_ff, self.vocab_size
        feed_forward = 2 * c * f + f + c
        attention = 4 * c * c + 4 * c  # fused q/k/v projection and the output projection
        encoder_layer = attention + feed_forward + 2 * 2 * c  # 2 norms
        decoder_layer = 2 * attention + feed_forward + 3 * 2 * c  # 3 norms
        embeddings = v * c + 4 * c  # bytes, and the offset inside a character (MAX_CHAR_BYTES)
        return (embeddings + self.n_enc_layers * encoder_layer + self.n_dec_layers * decoder_layer
                + 2 * 2 * c + c * v + v)  # the final norms and the output layer

    @property
    def head_size(self) -> int:
        """Features per attention head: ``d_model / n_heads``."""
        return self.d_model // self.n_heads

    @property
    def max_source_tokens(self) -> int:
        """Longest input, in byte tokens, that the model supports (BOS and EOS take 2 positions)."""
        return self.max_positions - 2

    def check_positions(self, n_positions: int, what: str = "input") -> None:
        """Raise ``ValueError`` if a sequence of ``n_positions`` tokens may need more positions
        than the model has: the one "input too long" error of the package, in bytes of input (a
        sequence of ``n`` bytes takes ``n + 2`` tokens with BOS and EOS); ``what`` names the
        sequence in the message. Positions count characters, of which a sequence has at most as
        many as tokens, so the check in tokens is a safe bound that needs no decoding."""
        if n_positions > self.max_positions:
            raise ValueError(f"{what} too long: {n_positions - 2} bytes, this model supports at "
                             f"most {self.max_source_tokens}")


@dataclass
class DataConfig:
    """Which task, which strings, and how many of them."""

    task: str = _field("reverse", "the toy task (tasks.py)", choices=_task_names)
    alphabet: str = _field("unicode", "characters of the random strings",
                           choices=_alphabet_names)
    min_len: int = _field(1, "shortest input, in characters")
    max_len: int = _field(32, "longest input, in characters")
    train_samples: int = _field(16_000, "fresh random training strings per epoch")
    hard_share: float = _field(0.0, "share of them drawn by the task's hard-slice generator")
    val_samples: int = _field(1_000, "held-out validation strings")
    test_samples: int = _field(2_000, "held-out test strings")
    data_seed: int = _field(1234, "seed of the held-out split and of the string draws")
    shift: int = _field(3, "task shift: letters move this many places forward (0-25)")
    train_file: str = _field("", "task pairs: input<TAB>output lines (or .jsonl) to train on")
    val_file: str = _field("", "task pairs: validation pairs (default: a slice of train_file)")
    test_file: str = _field("", "task pairs: test pairs (default: another slice of train_file)")
    skip_bad_lines: bool = _field(False, "task pairs: skip malformed lines instead of stopping")

    def __post_init__(self) -> None:
        _check_types(self)
        _check(self.task in _task_names(), "task",
               f"must be one of {_task_names()}, got {self.task!r} (a task that your own code "
               "registers exists only where that code has run)")
        reads_files = TASKS[self.task].reads_files
        _check(not reads_files or bool(self.train_file), "train_file",
               f"task {self.task} needs --train-file")
        for name in FILE_FIELDS:
            _check(reads_files or not getattr(self, name), name,
                   f"only task pairs reads files (this is task {self.task})")
            if getattr(self, name):  # absolute: a run's commands may start in another folder
                setattr(self, name, os.path.abspath(getattr(self, name)))
        _positive(self, "min_len", "max_len", "train_samples", "val_samples", "test_samples")
        _check(self.min_len <= self.max_len, "min_len", "must be <= max_len")
        _check(0 <= self.shift <= 25, "shift", f"must be in [0, 25], got {self.shift!r}")
        _check(0.0 <= self.hard_share <= 1.0, "hard_share",
               f"must be in [0, 1], got {self.hard_share!r}")
        _at_most(self, **DATA_LIMITS)
        _check_seed(self, "data_seed", MAX_DATA_SEED)
        _check(self.alphabet in _alphabet_names(), "alphabet",
               f"must be one of {_alphabet_names()}, got {self.alphabet!r}")


@dataclass
class TrainConfig:
    """Optimisation and run bookkeeping."""

    epochs: int = _field(3, "passes over train_samples fresh strings")
    batch_size: int = _field(128, "strings per optimisation step (per process)")
    lr: float = _field(3e-3, "peak learning rate (AdamW)")
    min_lr_ratio: float = _field(0.05, "the cosine decay ends at lr * this")
    warmup_steps: int = _field(100, "steps of linear warm-up")
    weight_decay: float = _field(0.01, "AdamW weight decay of the matrices")
    grad_clip: float = _field(1.0, "largest gradient norm")
    label_smoothing: float = _field(0.0, "share of each target spread over the vocabulary")
    seed: int = _field(0, "seed of the weights and of the position draws")
    device: str = _field("auto", "auto: CUDA when available, else CPU", choices=DEVICES)
    precision: str = _field("auto", "training arithmetic: bf16 autocast, fp32, or auto "
                            "(bf16 on CUDA, fp32 on CPU)", choices=PRECISIONS)
    out: str = _field("runs/quickstart", "folder for checkpoints and logs")
    threads: int = _field(0, "intra-op CPU threads (0: one per available core)")
    save_every: int = _field(0, "also write the resumable 'last' checkpoint every N steps")
    progress: bool = _field(True, "show a progress bar and one line per epoch")

    def __post_init__(self) -> None:
        _check_types(self)
        _positive(self, "epochs", "batch_size", "lr", "grad_clip")
        _check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _check(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", "must be in [0, 1]")
        _check(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "must be in [0, 1)")
        _check(0 <= self.threads <= MAX_THREADS, "threads", f"must be in [0, {MAX_THREADS}]")
        _check_seed(self, "seed", MAX_SEED)
        _check(self.save_every >= 0, "save_every", "must be >= 0")
        _check(self.device in DEVICES, "device", f"must be one of {DEVICES}, got {self.device!r}")
        _check(self.precision in PRECISIONS, "precision",
               f"must be one of {PRECISIONS}, got {self.precision!r}")
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
        _check(not unknown_sections, unknown_sections[0] if unknown_sections else "",
               "unknown config section")
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


_METAVARS = {"int": "N", "float": "X", "str": "TEXT", "bool": "{true,false}"}


def add_config_arguments(parser: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    """Add one ``--field-name`` flag per dataclass field of the given sections (default: unset),
    described by the field's help text; fields with a fixed set of values list them."""
    for section in sections:
        group = parser.add_argument_group(f"{section} config")
        for f in fields(SECTIONS[section]):
            kind = {"int": int, "float": float, "str": str, "bool": _parse_bool}[str(f.type)]
            choices = f.metadata.get("choices")
            choices = choices() if callable(choices) else choices
            default = str(f.default).lower() if kind is _parse_bool else f.default
            group.add_argument(f"--{f.name.replace('_', '-')}", dest=f"{section}.{f.name}",
                               type=kind, default=None, choices=choices,
                               metavar=None if choices else _METAVARS[str(f.type)],
                               help=f"{f.metadata.get('help', '')} (default: {default})")


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
