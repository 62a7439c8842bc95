"""Typed, validated configuration: one dataclass each for the model (model_config.py), the data
and training, and the three together as a run's.

Every field can be overridden from the command line (``--d-model 64``, ``--alphabet digits``) and
all three are saved as JSON inside every checkpoint. Invalid values raise :class:`ConfigError`,
whose message names the field.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any

from .alphabets import ALPHABETS
from .config_checks import (
    ConfigError,
    at_most,
    check,
    check_seed,
    check_types,
    config_field,
    positive,
)
from .model_config import (  # the model's own config, also reachable from here
    ATTENTION_IMPLS,
    MAX_PARAMETERS,
    MODEL_LIMITS,
    POSITION_SCHEMES,
    ModelConfig,
)
from .tasks import TASKS

__all__ = [
    "ATTENTION_IMPLS",
    "MAX_PARAMETERS",
    "MODEL_LIMITS",
    "POSITION_SCHEMES",
    "SECTIONS",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "build_config",
]

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
MAX_THREADS = 1024
FILE_FIELDS = ("train_file", "val_file", "test_file")  # DataConfig's data files (task pairs)
# The largest seeds torch's generators take: the data's are multiplied (data.split_seed).
MAX_SEED, MAX_DATA_SEED = 2**63 - 1, 2**63 // 2_000_000
DATA_LIMITS = {"max_len": 16384, "train_samples": 100_000_000, "val_samples": 100_000,
               "test_samples": 100_000}


def _task_names() -> list[str]:
    return sorted(TASKS)  # at call time: tasks registered after import count too


def _alphabet_names() -> list[str]:
    return sorted(ALPHABETS)


@dataclass
class DataConfig:
    """Which task, which strings, and how many of them."""

    task: str = config_field("reverse", "the toy task (tasks.py)", choices=_task_names)
    alphabet: str = config_field("unicode", "characters of the random strings",
                                 choices=_alphabet_names)
    min_len: int = config_field(1, "shortest input, in characters")
    max_len: int = config_field(32, "longest input, in characters")
    train_samples: int = config_field(16_000, "fresh random training strings per epoch")
    hard_share: float = config_field(0.0, "share of them drawn by the task's hard-slice generator")
    val_samples: int = config_field(1_000, "held-out validation strings")
    test_samples: int = config_field(2_000, "held-out test strings")
    data_seed: int = config_field(1234, "seed of the held-out split and of the string draws")
    shift: int = config_field(3, "task shift: letters move this many places forward (0-25)")
    train_file: str = config_field("", "task pairs: input<TAB>output lines (or .jsonl) to train on")
    val_file: str = config_field(
        "", "task pairs: validation pairs (default: a slice of train_file)")
    test_file: str = config_field(
        "", "task pairs: test pairs (default: another slice of train_file)")
    skip_bad_lines: bool = config_field(
        False, "task pairs: skip malformed lines instead of stopping")

    def __post_init__(self) -> None:
        check_types(self)
        check(self.task in _task_names(), "task",
              f"must be one of {_task_names()}, got {self.task!r} (a task that your own code "
              "registers exists only where that code has run)")
        reads_files = TASKS[self.task].reads_files
        check(not reads_files or bool(self.train_file), "train_file",
              f"task {self.task} needs --train-file")
        for name in FILE_FIELDS:
            check(reads_files or not getattr(self, name), name,
                  f"only task pairs reads files (this is task {self.task})")
            if getattr(self, name):  # absolute: a run's commands may start in another folder
                setattr(self, name, os.path.abspath(getattr(self, name)))
        positive(self, "min_len", "max_len", "train_samples", "val_samples", "test_samples")
        check(self.min_len <= self.max_len, "min_len", "must be <= max_len")
        check(0 <= self.shift <= 25, "shift", f"must be in [0, 25], got {self.shift!r}")
        check(0.0 <= self.hard_share <= 1.0, "hard_share",
              f"must be in [0, 1], got {self.hard_share!r}")
        at_most(self, **DATA_LIMITS)
        check_seed(self, "data_seed", MAX_DATA_SEED)
        check(self.alphabet in _alphabet_names(), "alphabet",
              f"must be one of {_alphabet_names()}, got {self.alphabet!r}")


@dataclass
class TrainConfig:
    """Optimisation and run bookkeeping."""

    epochs: int = config_field(3, "passes over train_samples fresh strings")
    batch_size: int = config_field(128, "strings per optimisation step (per process)")
    lr: float = config_field(3e-3, "peak learning rate (AdamW)")
    min_lr_ratio: float = config_field(0.05, "the cosine decay ends at lr * this")
    warmup_steps: int = config_field(100, "steps of linear warm-up")
    weight_decay: float = config_field(0.01, "AdamW weight decay of the matrices")
    grad_clip: float = config_field(1.0, "largest gradient norm")
    label_smoothing: float = config_field(0.0, "share of each target spread over the vocabulary")
    seed: int = config_field(0, "seed of the weights and of the position draws")
    device: str = config_field("auto", "auto: CUDA when available, else CPU", choices=DEVICES)
    precision: str = config_field("auto", "training arithmetic: bf16 autocast, fp32, or auto "
                                  "(bf16 on CUDA, fp32 on CPU)", choices=PRECISIONS)
    out: str = config_field("runs/quickstart", "folder for checkpoints and logs")
    threads: int = config_field(0, "intra-op CPU threads (0: one per available core)")
    save_every: int = config_field(0, "also write the resumable 'last' checkpoint every N steps")
    progress: bool = config_field(True, "show a progress bar and one line per epoch")

    def __post_init__(self) -> None:
        check_types(self)
        positive(self, "epochs", "batch_size", "lr", "grad_clip")
        check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", "must be in [0, 1]")
        check(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "must be in [0, 1)")
        check(0 <= self.threads <= MAX_THREADS, "threads", f"must be in [0, {MAX_THREADS}]")
        check_seed(self, "seed", MAX_SEED)
        check(self.save_every >= 0, "save_every", "must be >= 0")
        check(self.device in DEVICES, "device", f"must be one of {DEVICES}, got {self.device!r}")
        check(self.precision in PRECISIONS, "precision",
              f"must be one of {PRECISIONS}, got {self.precision!r}")
        check(bool(self.out), "out", "must not be empty")


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
        check(isinstance(d, dict), "config", "must be a JSON object")
        unknown_sections = sorted(set(d) - set(SECTIONS))
        check(not unknown_sections, unknown_sections[0] if unknown_sections else "",
              "unknown config section")
        parts = {}
        for name, kind in SECTIONS.items():
            values = d.get(name, {})
            check(isinstance(values, dict), name, "must be a JSON object")
            known = {f.name for f in fields(kind)}
            unknown = sorted(set(values) - known)
            check(not unknown, f"{name}.{unknown[0] if unknown else ''}", "unknown config key")
            parts[name] = kind(**values)
        return cls(**parts)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def build_config(base: dict[str, Any] | None, overrides: dict[str, dict[str, Any]]) -> RunConfig:
    """Defaults, then ``base`` (e.g. a saved config), then ``overrides``; validated."""
    merged: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for source in (base or {}, overrides):
        for section, values in source.items():
            merged.setdefault(section, {}).update(values)
    return RunConfig.from_dict(merged)
