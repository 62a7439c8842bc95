"""What a training run logs, and where: every run writes, in its ``out`` directory,

* ``metrics.jsonl``: one JSON object per completed epoch, with the keys ``epoch``, ``step``,
  ``train_loss`` (mean over the epoch's steps), ``val_exact_match``, ``val_char_accuracy``,
  ``tokens_per_s``, ``elapsed_s``, ``world_size`` and ``effective_batch_size``; rewritten whole
  (atomically) after every epoch;
* ``steps.csv``: one row per optimisation step, with the columns ``step``, ``loss`` (the main
  process's batch) and ``lr``;

and, with ``tensorboard=True`` (``train.py --tensorboard``, needs the ``[tensorboard]`` extra),
the same numbers as TensorBoard scalars under ``out/tensorboard/``.

Only the main process of a multi-process (``torch.distributed``) run opens a log. A resumed run
keeps the lines and rows of the steps it continues from and drops those of steps it will train
again.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .extras import require
from .utils import atomic_write_text

METRICS_FILE = "metrics.jsonl"
STEPS_FILE = "steps.csv"
TENSORBOARD_DIR = "tensorboard"
STEP_COLUMNS = ("step", "loss", "lr")


def require_tensorboard() -> None:
    """Raise :class:`~transformer_tiny.extras.MissingExtraError` unless TensorBoard logging can
    work (the ``tensorboard`` package that ``torch.utils.tensorboard`` writes through)."""
    require("torch.utils.tensorboard", "tensorboard", "--tensorboard")


def read_metrics(run_dir: str | Path, numbers: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The records of ``run_dir/metrics.jsonl`` (one per epoch; blank lines skipped), each a
    JSON object holding a number (not a bool) under every key of ``numbers``. A line that is
    not is a ``ValueError`` naming the file, the line and what is wrong with it."""
    path = Path(run_dir) / METRICS_FILE
    return [_metrics_record(raw, numbers, f"{path} line {n}")
            for n, raw in enumerate(path.read_bytes().split(b"\n"), 1) if raw.strip()]


def _json_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return {dict: "an object", list: "an array", str: "a string"}.get(type(value), "a number")


def _metrics_record(raw: bytes, numbers: Sequence[str], where: str) -> dict[str, Any]:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not valid UTF-8 (byte {e.start + 1} of the line)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {_json_kind(record)}")
    for key in numbers:
        if key not in record:
            raise ValueError(f"{where}: no {key!r}")
        if isinstance(record[key], bool) or not isinstance(record[key], int | float):
            raise ValueError(f"{where}: {key!r} must be a number, got {_json_kind(record[key])}")
    return record


def read_steps(run_dir: str | Path) -> list[dict[str, float]]:
    """The complete rows of ``run_dir/steps.csv`` (an empty list if there is none)."""
    path = Path(run_dir) / STEPS_FILE
    if not path.is_file():
        return []
    rows = []
    text = path.read_text(encoding="utf-8", errors="replace")  # a damaged row is skipped
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows.append({"step": int(row["step"]), "loss": float(row["loss"]),
                         "lr": float(row["lr"])})
        except (KeyError, TypeError, ValueError):
            continue  # a row torn by a kill in the middle of a write
    return rows


class RunLog:
    """The logger of the main process: ``metrics.jsonl``, ``steps.csv``, optional TensorBoard."""

    def __init__(self, out: Path, step: int, history: list[dict[str, Any]],
                 tensorboard: bool = False):
        """The logs of ``out`` for a run that has trained ``step`` steps so far (0: a fresh run,
        whose old logs are replaced) and whose metrics so far are ``history``. The files are
        started by the first record, so that a run that fails before its first step leaves
        the logs of an earlier run in ``out`` as they were."""
        if tensorboard:
            require_tensorboard()
        self.out, self.step, self.history, self.tensorboard = Path(out), step, history, tensorboard
        self.writer = self._steps = None

    def _start(self) -> None:
        """Replace the logs of ``out`` with those of this run's ``step`` steps so far."""
        step = self.step
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            tb_dir = self.out / TENSORBOARD_DIR
            if step == 0:  # a fresh run: events of an earlier run in this folder would mix in
                for old in tb_dir.glob("events.out.tfevents.*"):
                    old.unlink(missing_ok=True)
            self.writer = SummaryWriter(str(tb_dir), purge_step=step + 1 if step else None)
        kept = [r for r in read_steps(self.out) if r["step"] <= step] if step else []
        header = ",".join(STEP_COLUMNS) + "\n"
        atomic_write_text(self.out / STEPS_FILE,
                          header + "".join(f"{r['step']},{r['loss']!r},{r['lr']!r}\n"
                                           for r in kept))
        self._steps = (self.out / STEPS_FILE).open("a", encoding="utf-8")
        self.write_metrics(self.history)

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite ``metrics.jsonl`` (atomically) with one line per record of ``history``."""
        atomic_write_text(self.out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))

    def log_step(self, step: int, loss: float, lr: float) -> None:
        """Record the training loss and learning rate of optimisation step ``step``."""
        if self._steps is None:
            self._start()
        self._steps.write(f"{step},{loss!r},{lr!r}\n")
        self._steps.flush()
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)

    def log_epoch(self, history: list[dict[str, Any]]) -> None:
        """Record a finished epoch: ``history`` holds every epoch's metrics, the newest last."""
        if self._steps is None:
            self._start()
        self.write_metrics(history)
        if self.writer is not None and history:
            record = history[-1]
            for key in ("train_loss", "tokens_per_s"):
                self.writer.add_scalar(f"epoch/{key}", record[key], record["step"])
            for key in ("val_exact_match", "val_char_accuracy"):
                self.writer.add_scalar(f"val/{key.removeprefix('val_')}", record[key],
                                       record["step"])
            self.writer.flush()

    def close(self) -> None:
        """Flush and close the files."""
        if self._steps is not None:
            self._steps.close()
        if self.writer is not None:
            self.writer.close()
