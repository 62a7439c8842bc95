"""What a training run writes and reads back: its :class:`Progress`, and the ``best`` and ``last``
checkpoints (``last`` with the optimizer state that ``--resume`` needs, checked before any
optimizer exists)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoint import (
    CheckpointError,
    check_optimizer_groups,
    expected_trainer_state,
    expected_weights,
    pack_trainer_state,
    read_checked_tensors,
    read_checkpoint_info,
    save_checkpoint,
    seen_bytes,
    unpack_trainer_state,
)
from .config import ConfigError, RunConfig, TrainConfig, build_config
from .inputs import characters_changed, characters_record
from .pair_files import PairsError, changed_files
from .pairs import PairSplits


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint so that ``--resume`` continues exactly."""

    step: int = 0
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch already trained
    best: float = -1.0
    loss_sum: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def next_epoch(self) -> None:
        """Count the epoch as completed and start the next one from its first batch."""
        self.epoch, self.batch, self.loss_sum = self.epoch + 1, 0, 0.0

    @classmethod
    def from_dict(cls, d: Any) -> Progress:
        """Rebuild from a checkpoint's ``progress`` (keys of older versions are ignored);
        ``CheckpointError`` if it is malformed."""
        kinds = {"step": int, "epoch": int, "batch": int, "best": (int, float),
                 "loss_sum": (int, float), "history": list}
        ok = isinstance(d, dict) and all(
            isinstance(d.get(k, 0 if k != "history" else []), kind) for k, kind in kinds.items())
        ok = ok and not any(isinstance(d.get(k), bool) for k in kinds)
        ok = ok and all(d.get(k, 0) >= 0 for k in ("step", "epoch", "batch"))
        ok = ok and all(_finite(d.get(k, 0)) for k in ("best", "loss_sum"))
        ok = ok and all(isinstance(r, dict) for r in d.get("history", []))
        if not ok:
            raise CheckpointError("the checkpoint's training progress is malformed")
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except (OverflowError, TypeError):  # an integer beyond any float
        return False


def data_record(cfg: RunConfig, pairs: PairSplits | None,
                seen_before: list[int] | None = None) -> dict[str, Any]:
    """What a checkpoint records of the training data, never the data itself: the records of
    the files a ``pairs`` run read, or the characters a generated task draws from (so that a
    later change to an alphabet is noticed); and the bytes of the training inputs, with
    ``seen_before`` (those of a resumed run, whose alphabet may have changed since it began)."""
    if pairs is not None:
        return {"data_files": [f.to_dict() for f in pairs.files],
                "input_bytes": pairs.input_bytes}
    record = characters_record(cfg.data)
    record["input_bytes"] = sorted({*record.get("input_bytes", []), *(seen_before or [])})
    return record


def save_run_checkpoint(out: Path, name: str, model: torch.nn.Module, opt: torch.optim.Optimizer,
                        cfg: RunConfig, progress: Progress, data: dict[str, Any]) -> None:
    """Write checkpoint ``name`` with ``data``, the run's :func:`data_record`; ``last`` also
    carries the trainer state needed to resume."""
    metrics = progress.history[-1] if progress.history else {}
    meta = {"step": progress.step, "epoch": progress.epoch, "metrics": metrics,
            "progress": dataclasses.asdict(progress), **data}
    tensors = None
    if name == "last":
        tensors, meta["optimizer"] = pack_trainer_state(opt)
    save_checkpoint(out, name, model, cfg, meta, tensors)


def resumed_config(overrides: dict[str, dict[str, Any]]) -> RunConfig:
    """The config of the run being resumed (the ``last`` checkpoint of ``overrides``' ``out``)
    with ``overrides`` (by section); the model and data config may not change
    (:class:`~transformer_tiny.config.ConfigError`)."""
    out = overrides.get("train", {}).get("out", TrainConfig().out)
    base = read_checkpoint_info(Path(out) / "last.json")[2].to_dict()
    cfg = build_config(base, overrides)
    for section in ("model", "data"):
        changed = [k for k, v in cfg.to_dict()[section].items() if base[section][k] != v]
        if changed:
            raise ConfigError(f"--resume cannot change {section} config ({changed[0]})")
    return cfg


@dataclass
class Resumed:
    """What ``last.json`` holds besides the weights, checked before any optimiser exists."""

    progress: Progress
    state: dict[str, Tensor]
    optimizer: dict[str, Any]
    data_files: Any  # the records of the pairs files the run began with (checked on use)
    changed_characters: str | None  # the alphabet, if it changed since the run began
    input_bytes: list[int] | None  # the bytes its training inputs held so far, if recorded

    def restore(self, opt: torch.optim.Optimizer) -> None:
        """Put the saved optimiser state into ``opt``, built with the checked groups."""
        unpack_trainer_state(opt, self.state, self.optimizer)

    def check_same_data(self, pairs: PairSplits | None) -> None:
        """A ``pairs`` run resumes only on the files it began with: one that changed since is a
        :class:`~transformer_tiny.pair_files.PairsError` naming it."""
        changed = changed_files(self.data_files, pairs.files if pairs is not None else [])
        if changed:
            raise PairsError(f"{changed[0].name} changed since the run began (its SHA-256 "
                             "differs): --resume would train on other data; restore the "
                             "file, or start a new run")


def read_last(out: Path, model: torch.nn.Module, param_groups: list[dict[str, Any]]) -> Resumed:
    """Load the weights of ``out/last.json`` into ``model``; read the rest and check it against
    the optimizer's ``param_groups`` (as they will be built, each with its ``params``)."""
    path, info, cfg = read_checkpoint_info(out / "last.json")
    progress = Progress.from_dict(info.get("progress"))
    model.load_state_dict(read_checked_tensors(path, info, "weights", expected_weights(model)))
    groups = [group["params"] for group in param_groups]
    check_optimizer_groups(info.get("optimizer"), [len(params) for params in groups])
    expected = expected_trainer_state([p for params in groups for p in params])
    state = read_checked_tensors(path, info, "state", *expected)
    return Resumed(progress, state, info["optimizer"], info.get("data_files"),
                   characters_changed(cfg.data, info), seen_bytes(info))
