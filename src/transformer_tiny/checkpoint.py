"""Checkpoints: ``NAME.safetensors`` (weights) + ``NAME.json`` (configs, tokenizer ids, metrics).

Loading never unpickles anything: weights come through safetensors and everything else through
JSON. The JSON records the SHA-256 of its weights file, so a pair that does not belong together
(for instance after a crash between the two writes) is detected. Both files are written
atomically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .config import ConfigError, RunConfig
from .model import Seq2SeqTransformer
from .tokenizer import SPECIAL_IDS, VOCAB_SIZE
from .utils import atomic_write_bytes, atomic_write_json

FORMAT = "transformer_tiny.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, corrupted or inconsistent."""


def save_checkpoint(run_dir: str | Path, name: str, model: torch.nn.Module, cfg: RunConfig,
                    meta: dict[str, Any]) -> Path:
    """Write ``run_dir/name.safetensors`` then ``run_dir/name.json``; returns the JSON path."""
    run_dir = Path(run_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = save_safetensors(state)
    atomic_write_bytes(run_dir / f"{name}.safetensors", blob)
    info = {
        "format": FORMAT,
        "weights": f"{name}.safetensors",
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "config": cfg.to_dict(),
        "tokenizer": {"type": "byte", "vocab_size": VOCAB_SIZE, **SPECIAL_IDS},
        **meta,
    }
    atomic_write_json(run_dir / f"{name}.json", info)
    return run_dir / f"{name}.json"


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory (-> ``best.json``), a ``.json`` or a ``.safetensors`` path -> the JSON."""
    p = Path(path)
    if p.is_dir():
        p = p / "best.json"
    elif p.suffix == ".safetensors":
        p = p.with_suffix(".json")
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} is not a file")
    return p


def read_checkpoint_info(path: str | Path) -> tuple[Path, dict[str, Any], RunConfig]:
    """Parse and validate a checkpoint's JSON; returns ``(json_path, info, config)``."""
    p = resolve_checkpoint(path)
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {p} is unreadable: {e}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a transformer_tiny checkpoint")
    try:
        cfg = RunConfig.from_dict(info["config"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"checkpoint {p} has an invalid config: {e}") from None
    return p, info, cfg


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[Seq2SeqTransformer, RunConfig, dict[str, Any]]:
    """Load a checkpoint for inference; returns ``(model in eval mode, config, info)``."""
    p, info, cfg = read_checkpoint_info(path)
    weights = p.parent / str(info.get("weights", ""))
    try:
        blob = weights.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read weights {weights}: {e.strerror or e}") from None
    if hashlib.sha256(blob).hexdigest() != info.get("weights_sha256"):
        raise CheckpointError(f"weights {weights} do not match {p.name} (corrupted or replaced)")
    try:
        state = load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"weights {weights} are unreadable: {e}") from None
    model = Seq2SeqTransformer(cfg.model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"weights {weights} do not fit the config: {first}") from None
    return model.to(device).eval(), cfg, info
