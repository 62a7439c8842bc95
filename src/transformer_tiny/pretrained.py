"""The shared folder layout people know from the Hugging Face Hub: ``config.json`` (the configs,
the task, the tokenizer ids, the metrics and the weights' SHA-256), ``model.safetensors`` and a
generated model card ``README.md``.

``config.json`` is a checkpoint JSON naming ``model.safetensors``, so such a folder is loaded by
the same checked loader as a run folder (:func:`~transformer_tiny.checkpoint.load_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

import torch

from .checkpoint import (
    PRETRAINED_JSON,
    PRETRAINED_WEIGHTS,
    announce_files,
    holds_recorded_file,
    is_checkpoint,
    save_checkpoint,
    tensors_sha256,
)
from .config import FILE_FIELDS, SECTIONS, RunConfig
from .inputs import OWN_CHARACTERS, characters_changed, example_input, input_characters
from .rundir import claim_output_dir
from .tasks import BUILT_IN, task_for
from .utils import atomic_write_bytes, text_bytes

MODEL_CARD = "README.md"


def training_command(cfg: RunConfig) -> str:
    """The ``scripts/train.py`` command line that trains ``cfg`` (its fields that differ from
    the defaults, but ``out``; data files by their names), quoted for a POSIX shell."""
    words = ["python", "scripts/train.py"]
    for section, kind in SECTIONS.items():
        values, defaults = getattr(cfg, section), kind()
        for f in dataclasses.fields(kind):
            value = getattr(values, f.name)
            if f.name != "out" and value != getattr(defaults, f.name):
                shown = str(value).lower() if isinstance(value, bool) else str(value)
                shown = Path(shown).name if f.name in FILE_FIELDS else shown  # not the path
                words += [f"--{f.name.replace('_', '-')}", shown]
    return shlex.join(words)


def _inputs(cfg: RunConfig, changed: bool = False) -> tuple[str, str]:
    """The model card's sentence on what the model was trained on, and its limit on the
    characters it never saw. ``changed``: the characters of its alphabet changed since it was
    trained (:func:`~transformer_tiny.inputs.characters_changed`), so today's are not named."""
    epochs = f"{cfg.train.epochs} epoch{'s' if cfg.train.epochs != 1 else ''}"
    alphabet, characters = input_characters(cfg.data)
    if characters is None:
        return (f"Input-output pairs read from `{Path(cfg.data.train_file).name}`, {epochs}.",
                "characters that are not in the training pairs were never seen in training")
    if changed:
        which = (f"task {cfg.data.task}'s characters" if alphabet == OWN_CHARACTERS
                 else f"the characters of `{alphabet}`")
        drawn_from, unseen = f"{which} as they were when it was trained", "characters outside those"
    elif alphabet == OWN_CHARACTERS:
        drawn_from, unseen = f"{alphabet}, `{characters}`", f"characters other than `{characters}`"
    else:
        drawn_from = f"the `{alphabet}` alphabet"
        unseen = f"characters outside the `{alphabet}` alphabet"
    count = "" if changed else f" ({len(set(characters))} characters)"
    return (f"Strings of {cfg.data.min_len}-{cfg.data.max_len} characters over {drawn_from}"
            f"{count}; {cfg.data.train_samples:,} fresh strings per epoch, {epochs}.",
            f"{unseen} were never seen in training")


def _number(metrics: dict[str, Any], key: str) -> float | None:
    """``metrics[key]`` if it is a number (a checkpoint's JSON is not trusted to hold one)."""
    value = metrics.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _figures(metrics: dict[str, Any]) -> list[str]:
    """The model card's evaluation lines, from a checkpoint's metrics."""
    em, chars = _number(metrics, "val_exact_match"), _number(metrics, "val_char_accuracy")
    epoch, step = _number(metrics, "epoch"), _number(metrics, "step")
    figures = [f"- validation exact match: {em:.4f}" if em is not None
               else "- no validation figures were recorded"]
    if chars is not None:
        figures.append(f"- validation per-character accuracy: {chars:.4f}")
    if epoch is not None and step is not None:
        figures.append(f"- after epoch {epoch} (step {step})")
    return figures


def _validated_on(data: Any, reads_files: bool) -> str:
    """The model card's sentence on what the validation figures were measured on."""
    if not reads_files:
        return f"On {data.val_samples:,} held-out strings of the training lengths."
    source = (f"inputs of `{Path(data.val_file).name}`" if data.val_file
              else "held-out inputs of the training file")
    return f"On {data.val_samples:,} {source} (at most)."


def model_card(cfg: RunConfig, metrics: dict[str, Any], inputs: dict[str, Any] | None = None
               ) -> str:
    """The ``README.md`` of a shared folder: what the model does, how it was trained, how well
    it did, what it takes, and the license. ``inputs``: the checkpoint's records of its training
    inputs' characters, as for :func:`save_pretrained`."""
    changed = characters_changed(cfg.data, inputs or {}) is not None
    task, (trained_on, unseen) = task_for(cfg.data), _inputs(cfg, changed)
    example = example_input(cfg.data)
    held_out = _validated_on(cfg.data, task.reads_files)
    return "\n".join([
        "---", "library_name: transformer-tiny", "license: mit",
        "tags: [seq2seq, transformer, toy-task, " + task.name + "]", "---", "",
        f"# transformer-tiny: {task.name}", "",
        f"A small from-scratch encoder-decoder Transformer for the toy task `{task.name}`: "
        f"{task.description}.", "",
        "```python", "import transformer_tiny", "",
        'model = transformer_tiny.load("path/to/this/folder")',
        f"print(model.predict([{json.dumps(example, ensure_ascii=False)}]))" if example
        else "print(model.predict([...]))  # inputs like those of the training file",
        "```", "",
        "## Training", "", "```bash", training_command(cfg), "```", "",
        trained_on, "",
        "## Evaluation", "", *_figures(metrics), "", held_out, "",
        "## Limits", "",
        f"- inputs of at most {cfg.model.max_input_bytes:,} UTF-8 bytes",
        f"- {unseen}",
        *_own_task_note(task.name),
        "", "## License", "", "MIT", ""])


def _own_task_note(name: str) -> list[str]:
    """A task registered by the user's own code: the card says that code is needed."""
    if name in BUILT_IN:
        return []
    return [f"- the task `{name}` is not one of transformer-tiny's own: run the code that "
            "registers it (`register_task`) before `transformer_tiny.load`"]


def save_pretrained(model: torch.nn.Module, cfg: RunConfig, metrics: dict[str, Any],
                    folder: str | Path, inputs: dict[str, Any] | None = None) -> Path:
    """Write ``folder/config.json``, ``model.safetensors`` and ``README.md``; returns the
    folder. ``inputs``: what the checkpoint records of its training inputs' characters
    (:func:`~transformer_tiny.checkpoint.recorded_characters`; kept, so that the shared model still
    knows which characters it never saw). A folder that
    holds other files than an earlier shared model of ours, or in which one of those files
    changed since it was written (an edited model card), is refused
    (:class:`~transformer_tiny.rundir.RunDirError`, a ``ValueError``): nothing of the user's is
    overwritten."""
    folder = Path(folder)
    config = folder / PRETRAINED_JSON
    claim_output_dir(folder, {
        PRETRAINED_JSON: is_checkpoint,
        PRETRAINED_WEIGHTS: lambda path: holds_recorded_file(config, "weights", path),
        # a folder saved before cards were hashed records no hash: its card counts as ours
        MODEL_CARD: lambda path: holds_recorded_file(config, "card", path, unrecorded=True),
    }, "a shared model")
    card = text_bytes(model_card(cfg, metrics, inputs))
    meta = {"task": cfg.data.task, "metrics": json.loads(json.dumps(metrics)),
            "card_sha256": hashlib.sha256(card).hexdigest()}
    meta.update(inputs or {})
    # config.json (the earlier model's, or one naming no files yet) first announces the new
    # files, so that a save stopped (killed) between them leaves a folder the next save takes.
    announce_files(config, [tensors_sha256(model.state_dict()), meta["card_sha256"]])
    atomic_write_bytes(folder / MODEL_CARD, card)
    save_checkpoint(folder, PRETRAINED_JSON.removesuffix(".json"), model, cfg, meta,
                    weights_name=PRETRAINED_WEIGHTS)  # the weights, then config.json
    return folder
