"""Checkpoints: ``NAME.json`` (configs, tokenizer ids, metrics, step) naming its weights file
``NAME-STEP.safetensors`` and, for resumable ones, a trainer-state file
``NAME-STEP.state.safetensors`` (optimizer moments, RNG state).

Loading never unpickles anything: tensors come through safetensors and everything else through
JSON. Every file is written atomically (temporary file, fsync, rename). The data files are written
first, under a new name, and the JSON is renamed into place last, so a crash or kill at any
moment leaves a JSON that names complete files; files no JSON names any more are removed
afterwards. The JSON records the SHA-256 of each file it names: corruption is detected.
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


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    blob = save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(path, blob)
    return hashlib.sha256(blob).hexdigest()


def save_checkpoint(run_dir: str | Path, name: str, model: torch.nn.Module, cfg: RunConfig,
                    meta: dict[str, Any], trainer_state: dict[str, torch.Tensor] | None = None
                    ) -> Path:
    """Write the weights (and ``trainer_state``), then ``run_dir/name.json``; returns its path.

    ``meta`` (JSON-serialisable, with an integer ``step``) is stored in the JSON as it is.
    """
    run_dir = Path(run_dir)
    stem = f"{name}-{int(meta.get('step', 0)):07d}"
    info: dict[str, Any] = {"format": FORMAT, "weights": f"{stem}.safetensors"}
    info["weights_sha256"] = _write_tensors(run_dir / info["weights"], model.state_dict())
    if trainer_state is not None:
        info["state"] = f"{stem}.state.safetensors"
        info["state_sha256"] = _write_tensors(run_dir / info["state"], trainer_state)
    info.update(config=cfg.to_dict(),
                tokenizer={"type": "byte", "vocab_size": VOCAB_SIZE, **SPECIAL_IDS}, **meta)
    atomic_write_json(run_dir / f"{name}.json", info)
    keep = {info["weights"], info.get("state")}
    for stale in run_dir.glob(f"{name}-*.safetensors"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)
    return run_dir / f"{name}.json"


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory (-> ``best.json``), a ``.json`` or a ``.safetensors`` path -> the JSON."""
    p = Path(path)
    if p.is_dir():
        p = p / "best.json"
    elif p.suffix == ".safetensors":
        p = p.with_name(p.name.split("-")[0].removesuffix(".safetensors") + ".json")
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


def read_tensors(json_path: Path, info: dict[str, Any], key: str) -> dict[str, torch.Tensor]:
    """The tensors of the file that ``info[key]`` names, checked against ``info[key_sha256]``."""
    what = "weights" if key == "weights" else "trainer state"
    if not isinstance(info.get(key), str):
        raise CheckpointError(f"{json_path} names no {what} file")
    path = json_path.parent / info[key]
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if hashlib.sha256(blob).hexdigest() != info.get(f"{key}_sha256"):
        raise CheckpointError(f"{what} {path} do not match {json_path.name} "
                              "(corrupted or replaced)")
    try:
        return load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{what} {path} are unreadable: {e}") from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[Seq2SeqTransformer, RunConfig, dict[str, Any]]:
    """Load a checkpoint for inference; returns ``(model in eval mode, config, info)``."""
    p, info, cfg = read_checkpoint_info(path)
    weights = p.parent / str(info.get("weights"))
    state = read_tensors(p, info, "weights")
    model = Seq2SeqTransformer(cfg.model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"weights {weights} do not fit the config: {first}") from None
    return model.to(device).eval(), cfg, info


# ----------------------------------------------------------------------------- trainer state
def pack_trainer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer moments and RNG states as tensors, plus the JSON-able optimizer hyperparameters."""
    sd = opt.state_dict()
    tensors = {f"opt.{idx}.{key}": value if torch.is_tensor(value) else torch.tensor(value)
               for idx, per_param in sd["state"].items() for key, value in per_param.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    return tensors, {"param_groups": sd["param_groups"]}


def unpack_trainer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                         meta: dict) -> None:
    """Inverse of :func:`pack_trainer_state`: restores the optimizer and the RNG states."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    try:
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"trainer state does not fit this run: {e}") from None
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
