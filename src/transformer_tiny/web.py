"""What the browser page (``web/``) needs: the two ONNX graphs and ``model.json``.

``model.json`` tells the page everything it computes itself, in JavaScript, exactly as Python
does: the special ids of the byte tokenizer, the input limit, the room the decoders give an
output, the task's input and output formats (``add`` pads its numbers and strips the zeros of
its sum), and which cross-attention heads count positions from the end of the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .arithmetic import add_width
from .checkpoint import load_checkpoint, resolve_checkpoint, seen_bytes
from .config import RunConfig
from .export import MANIFEST, WEB_FORMAT, claim_export_dir, write_graphs
from .inputs import (
    DEFAULT_TEXT,
    characters_changed,
    example_input,
    input_characters,
    seen_input_bytes,
)
from .positions import end_heads
from .tasks import task_for
from .tokenizer import SPECIAL_IDS, VOCAB_SIZE
from .utils import atomic_write_text, json_text


def _formats(cfg: RunConfig) -> tuple[dict[str, Any] | None, str | None]:
    """The task's input format (``{"kind": "add", "width": W}``) and output format, if any."""
    task = task_for(cfg.data)
    if task.prepare is None and task.present is None:
        return None, None
    if task.name == "add":
        return {"kind": "add", "width": add_width(cfg.data)}, "strip_zeros"
    raise ValueError(f"task {task.name}: the page has no input format for it")


def manifest(cfg: RunConfig, info: dict[str, Any], source: str) -> dict[str, Any]:
    """The contents of ``model.json`` for a model with config ``cfg`` and checkpoint ``info``."""
    task, m = task_for(cfg.data), cfg.model
    input_format, output_format = _formats(cfg)
    alphabet, characters = input_characters(cfg.data)
    from_end = list(end_heads(m.n_heads)) if m.position_scheme == "rope" else []
    room = task.room
    metrics = info.get("metrics") if isinstance(info.get("metrics"), dict) else {}
    seen = seen_input_bytes(cfg.data, seen_bytes(info))
    return {
        "format": WEB_FORMAT, "checkpoint": source, "task": task.name,
        "task_description": task.description,
        "alphabet": alphabet,
        # today's count, unless the alphabet changed since training (then unknown)
        "alphabet_size": None if characters is None or characters_changed(cfg.data, info)
        else len(set(characters)),
        # the generator's lengths; a pairs model's inputs are whatever its files held
        "training_lengths": None if task.reads_files else [cfg.data.min_len, cfg.data.max_len],
        "max_input_bytes": m.max_input_bytes, "max_positions": m.max_positions,
        "n_layers": m.n_dec_layers, "n_heads": m.n_heads, "head_size": m.head_size,
        "end_heads": from_end, "vocab_size": VOCAB_SIZE,
        "special_ids": SPECIAL_IDS,
        # room for the output: per_token * (source tokens, BOS and EOS included) + plus
        "output_room": {"per_token": room.per_token, "plus": room.plus},
        "input_format": input_format, "output_format": output_format,
        "example": example_input(cfg.data, DEFAULT_TEXT),  # the page's first input
        "seen_bytes": None if seen is None else sorted(seen),  # of the training inputs
        "val_exact_match": metrics.get("val_exact_match"),
    }


def export_web(checkpoint: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write ``encoder.onnx``, ``decoder_step.onnx`` and ``model.json`` of ``checkpoint`` to
    ``out_dir``, which must be missing, empty or an earlier export
    (:func:`~transformer_tiny.export.claim_export_dir`); returns their paths."""
    claim_export_dir(out_dir)
    model, cfg, info = load_checkpoint(checkpoint, "cpu")
    # the manifest is made before any file is touched: an error in it leaves the earlier export
    # whole (write_graphs then removes the earlier manifest before it writes a graph)
    text = json_text(manifest(cfg, info, resolve_checkpoint(checkpoint).as_posix()))
    paths = write_graphs(model, out_dir)
    paths["manifest"] = Path(out_dir) / MANIFEST
    atomic_write_text(paths["manifest"], text)
    return paths
