"""The public API: a trained model that takes strings and gives strings back.

    import transformer_tiny
    model = transformer_tiny.load("runs/quickstart")
    model.predict(["Hello_2025"])  # a list of one string, the model's reversal

:func:`load` reads a checkpoint (a run folder or its ``.json``) or a shared folder in the
Hugging Face layout (``config.json``, ``model.safetensors``, a model card ``README.md``), both
through the same checks (:mod:`~transformer_tiny.checkpoint`). :func:`train` trains a run and
returns its model. :meth:`TinyModel.save_pretrained` writes the shared layout, and
:meth:`TinyModel.push_to_hub` uploads it with the optional ``huggingface_hub`` package.
Errors are the one-line exceptions of the commands (``CheckpointError``, ``ConfigError``,
``ValueError``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint, recorded_characters, resolve_checkpoint, seen_bytes
from .config import SECTIONS, ConfigError, RunConfig, build_config
from .data import hard_inputs, held_out_set
from .decoding import predict, text_list
from .extras import require
from .inputs import input_characters, unseen_characters
from .metrics import EvalResult, bucket_list, evaluate, outside_buckets
from .plots import draw, drawable
from .pretrained import save_pretrained
from .run_state import resumed_config
from .tasks import Task, task_for
from .tokenizer import ByteTokenizer
from .utils import pick_device


@dataclass(frozen=True)
class Limits:
    """What a model takes: inputs of at most ``max_input_bytes`` UTF-8 bytes, and what its
    training inputs were drawn from: the ``alphabet``'s name (or "its own characters" for a
    task such as ``add``, "the pairs it was trained on" for files) and its ``characters`` (None
    for files: :meth:`TinyModel.unseen_characters` knows their bytes)."""

    max_input_bytes: int
    alphabet: str
    characters: str | None


@dataclass(frozen=True)
class Answer:
    """One output: its ``text``, whether the model ``ended`` it (False: it was cut at the length
    limit), and whether its bytes are strict UTF-8 (``valid_utf8``). Valid output is the task's
    answer (:meth:`Task.shown`); other output is only decoded, as
    :meth:`ByteTokenizer.decode` does (a lone surrogate is kept; it cannot be printed)."""

    text: str
    ended: bool
    valid_utf8: bool


class TinyModel:
    """A trained model with its task: strings in, strings out."""

    def __init__(self, model: Any, config: RunConfig, info: dict[str, Any] | None = None,
                 path: Path | None = None):
        self._model, self._config, self._info = model, config, dict(info or {})
        self._task = task_for(config.data)
        self.path = path  # the checkpoint JSON it was loaded from, if any

    @property
    def task(self) -> Task:
        return self._task

    @property
    def config(self) -> RunConfig:
        return self._config

    @property
    def limits(self) -> Limits:
        return Limits(self._config.model.max_input_bytes, *input_characters(self._config.data))

    @property
    def metrics(self) -> dict[str, Any]:
        """The validation metrics recorded with the checkpoint (empty if none were)."""
        metrics = self._info.get("metrics")
        return dict(metrics) if isinstance(metrics, dict) else {}

    @property
    def module(self) -> Any:
        """The underlying :class:`~transformer_tiny.model.Seq2SeqTransformer`."""
        return self._model

    def predict(self, texts: list[str], beam: int = 1,
                max_new_tokens: int | None = None) -> list[str]:
        """The answer to each text, with the task's input and output formats applied (e.g.
        ``add``'s padding): the ``text`` of each of :meth:`answers`. Greedy unless ``beam > 1``."""
        return [a.text for a in self.answers(texts, beam, max_new_tokens)]

    def answers(self, texts: list[str], beam: int = 1,
                max_new_tokens: int | None = None) -> list[Answer]:
        """:meth:`predict`'s answers, each with whether the model ended it and whether its
        bytes were valid UTF-8 (``scripts/infer.py`` warns when not)."""
        texts = text_list(texts)  # a generator is read once, here; predict checks the rest
        prepared = [self._task.model_input(t) for t in texts]  # e.g. add's zero-padding
        tok = ByteTokenizer()
        answers = []
        room = self._task.output_room if max_new_tokens is None else max_new_tokens
        for ids, ended in predict(self._model, prepared, room, beam=beam):
            valid, text = tok.is_valid_utf8(ids), tok.decode(ids)
            answers.append(Answer(self._task.shown(text) if valid else text, ended, valid))
        return answers

    def unseen_characters(self, text: str) -> list[str]:
        """The characters of ``text`` this model never saw in training (by their bytes): its
        answer to such a text is a guess. A model trained on the unicode alphabet, which holds
        every byte of valid UTF-8, has seen them all. Read as the model reads it, the task's
        input format applied (the spaces ``add`` drops are no unseen characters)."""
        with contextlib.suppress(ValueError):  # a text outside the format: its characters
            text = self._task.model_input(text)
        return unseen_characters(text, self._config.data, seen_bytes(self._info))

    def evaluate(self, inputs: list[str] | None = None, split: str = "test",
                 buckets: list[tuple[int, int]] | None = None, beam: int = 1,
                 examples: int = 0) -> EvalResult:
        """Exact match and per-character accuracy on ``inputs`` (default: the held-out
        ``split``, ``"test"`` or ``"val"``, of the training data, or ``"hard"``, the task's hard
        slice), decoded greedily or with beam search (``beam > 1``), as ``eval.py`` scores them;
        ``examples``: how many inputs, with their answer and output, the result shows. A
        held-out split that may differ from the one held out in training (a pairs file or an
        alphabet changed since) gives a ``UserWarning``, as ``eval.py`` warns."""
        if not isinstance(examples, int) or isinstance(examples, bool) or examples < 0:
            raise ValueError(f"examples must be an int >= 0, got {examples!r}")
        references, from_split = None, inputs is None
        buckets = bucket_list(buckets, empty=not from_split)
        if from_split:
            inputs, references = self._split(split)
        else:
            inputs = text_list(inputs)
            if self._task.reads_files:
                raise ValueError("a pairs model knows no answers of its own: evaluate() scores "
                                 "the held-out split of its files; for another file of pairs, "
                                 "eval.py --test-file")
        if not inputs:
            where = f"the {split} set holds none" if from_split else "an empty list"
            raise ValueError(f"nothing to evaluate: {where}")
        note = outside_buckets(inputs, buckets) if buckets else None
        if note:
            warnings.warn(note, UserWarning, stacklevel=2)
        return evaluate(self._model, inputs, self._task, buckets, examples,
                        references=references, beam=beam)

    def _split(self, split: str) -> tuple[list[str], list[list[str]] | None]:
        """The inputs of a held-out ``split`` and, for pairs, their accepted outputs (read from
        the files as ``eval.py`` reads them: :func:`~transformer_tiny.data.held_out_set`)."""
        data = self._config.data
        if split not in ("test", "val", "hard"):
            raise ValueError(f"split must be 'test', 'val' or 'hard', got {split!r}")
        if split == "hard":
            return hard_inputs(data), None
        held = held_out_set(data, split, self._config.model.max_input_bytes, self._info)
        for note in held.notes:
            warnings.warn(note, stacklevel=3)
        return held.inputs, held.references

    def plot(self, out: str | Path, text: str | None = None,
             buckets: list[tuple[int, int]] | None = None, samples: int = 100) -> list[Path]:
        """The PNGs of ``scripts/plot.py`` in ``out``: the cross-attention for ``text`` (None:
        :func:`~transformer_tiny.plots.default_text`), the
        training curves (for a model loaded from a run folder with its logs) and the accuracy
        by input length (for a task that makes its own inputs); returns their paths. Needs
        matplotlib (the ``[plots]`` extra)."""
        run_dir = self.path.parent if self.path is not None else None
        kinds, _ = drawable(self._config, run_dir)
        return draw(self._model, self._config, out, kinds, text, bucket_list(buckets), samples,
                    run_dir)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a model card ``README.md``."""
        return save_pretrained(self._model, self._config, self.metrics, folder,
                               recorded_characters(self._info))

    @classmethod
    def from_pretrained(cls, folder_or_repo_id: str | Path) -> TinyModel:
        """Load a folder written by :meth:`save_pretrained`, or download a Hub repository
        (``owner/name``, with the optional ``huggingface_hub`` package) and load that."""
        path = Path(folder_or_repo_id)
        if not path.exists() and _looks_like_repo_id(str(folder_or_repo_id)):
            path = Path(_hub().snapshot_download(repo_id=str(folder_or_repo_id)))
        return load(path)

    def push_to_hub(self, repo_id: str, private: bool = True) -> str:
        """Upload :meth:`save_pretrained`'s folder to the Hub repository ``repo_id`` (created if
        missing); returns its URL. Needs ``huggingface_hub`` and a Hub token."""
        hub = _hub()
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            api = hub.HfApi()
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(folder_path=tmp, repo_id=repo_id)
        return str(url)

    def __repr__(self) -> str:
        return (f"TinyModel(task={self._task.name!r}, alphabet={self.limits.alphabet!r}, "
                f"parameters={self._model.num_parameters():,})")


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") for p in parts)


def _hub() -> Any:
    return require("huggingface_hub", "hub", "the Hub")


def load(path: str | Path, device: str = "cpu") -> TinyModel:
    """The model of a run folder, a checkpoint ``.json`` or a :meth:`~TinyModel.save_pretrained`
    folder, checked as :func:`~transformer_tiny.checkpoint.load_checkpoint` checks them, on
    ``device`` (``"cpu"``, ``"cuda"`` or ``"auto"``)."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    model, cfg, info = load_checkpoint(path, pick_device(device))
    return TinyModel(model, cfg, info, resolve_checkpoint(path))


def train(resume: bool = False, overwrite: bool = False, **overrides: Any) -> TinyModel:
    """Train a run with the defaults of :class:`~transformer_tiny.config.RunConfig` and the
    given fields (``epochs=1``, ``task="copy"``, ``out="runs/mine"``...), and return the best
    model it wrote. ``resume`` and ``overwrite`` are ``train.py``'s ``--resume`` and
    ``--overwrite``."""
    from .train_eval import train as train_run

    by_section: dict[str, dict[str, Any]] = {}
    names = {f.name: section for section, kind in SECTIONS.items() for f in fields(kind)}
    for name, value in overrides.items():
        if name not in names:
            raise ConfigError(f"{name}: unknown config field")
        by_section.setdefault(names[name], {})[name] = \
            str(value) if isinstance(value, os.PathLike) else value
    cfg = resumed_config(by_section) if resume else build_config(None, by_section)
    summary = train_run(cfg, resume=resume, overwrite=overwrite)
    return load(summary["out"])
