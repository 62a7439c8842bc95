"""Checkpoints: ``NAME.json`` (configs, tokenizer ids, metrics, step) naming its weights file
``NAME-STEP.safetensors`` and, for resumable ones, a trainer-state file
``NAME-STEP.state.safetensors`` (optimizer moments, RNG state).

Saving: every file is written atomically (temporary file, fsync, rename). The data files are
written first, under a new name, and the JSON is renamed into place last, so a crash or kill at
any moment leaves a JSON that names complete files. The files that the previous ``NAME.json``
named are removed afterwards, and no others.

Loading treats a checkpoint as untrusted input (people hand each other run folders). Nothing is
unpickled: tensors come through safetensors and everything else through JSON. Before anything is
allocated, the JSON's size and config are checked (the config has upper bounds, see
:mod:`~transformer_tiny.config` and :mod:`~transformer_tiny.model_config`, among them
``MAX_PARAMETERS`` of the model it describes, counted from its sizes). The files it names must be
plain file names of the form the saver writes, in the JSON's own folder, and regular files (symbolic
links are not followed). The safetensors header (names, shapes, dtypes) must be exactly the model's,
and the file exactly as long as that header says, before its payload is read; the payload is hashed
in chunks against the SHA-256 the JSON records. Weights must be float32 and finite. Every failure is
a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as save_safetensors

from .config import ConfigError, RunConfig
from .model import Seq2SeqTransformer
from .safe_files import CheckpointError, Expected, read_regular, read_safetensors
from .tokenizer import SPECIAL_IDS, VOCAB_SIZE
from .utils import atomic_write_bytes, atomic_write_json, json_text

FORMAT = "transformer_tiny.checkpoint/1"
MAX_JSON_BYTES = 16 << 20  # a JSON holds configs and per-epoch metrics: far below this
PRETRAINED_JSON, PRETRAINED_WEIGHTS = "config.json", "model.safetensors"  # the shared layout
_DATA_FILE = re.compile(r"[A-Za-z0-9_]+-[0-9]{7,}(\.state)?\.safetensors|model\.safetensors")


# ----------------------------------------------------------------------------- saving
def _tensor_file(tensors: dict[str, torch.Tensor]) -> bytes:
    return save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    blob = _tensor_file(tensors)
    atomic_write_bytes(path, blob)
    return hashlib.sha256(blob).hexdigest()


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """The SHA-256 of the file :func:`save_checkpoint` writes for ``tensors``."""
    return hashlib.sha256(_tensor_file(tensors)).hexdigest()


def announce_files(json_path: Path, digests: list[str]) -> None:
    """Record in the checkpoint JSON ``json_path`` the SHA-256 of the files about to replace
    those it names, beside those earlier stopped saves announced (a JSON that names no files
    yet, if there is none of ours): a save stopped between two of its files (a kill) leaves
    each file as it was or as announced, all of them recognised by
    :func:`holds_recorded_file`, so that the next save may replace them. The next save of the
    JSON drops the announcement."""
    info = _own_json(json_path) or {"format": FORMAT}
    earlier = [a for a in _announced(info) if a not in digests]
    atomic_write_json(json_path, {**info, "announced_sha256": [*earlier, *digests]})


def _announced(info: dict[str, Any]) -> list[str]:
    announced = info.get("announced_sha256")
    return [a for a in announced if isinstance(a, str)] if isinstance(announced, list) else []


def _own_json(json_path: Path) -> dict[str, Any] | None:
    """The contents of ``json_path`` if it is a checkpoint JSON of this package, else None."""
    try:
        info = json.loads(read_regular(json_path, MAX_JSON_BYTES, "checkpoint"))
    except (CheckpointError, ValueError, RecursionError):
        return None
    return info if isinstance(info, dict) and info.get("format") == FORMAT else None


def is_checkpoint(json_path: Path) -> bool:
    """Whether ``json_path`` is a checkpoint JSON of this package (a regular file)."""
    return _own_json(json_path) is not None


def holds_recorded_file(json_path: Path, key: str, path: Path, unrecorded: bool = False) -> bool:
    """Whether ``path`` is a regular file whose SHA-256 the checkpoint JSON ``json_path`` (ours)
    records under ``key + "_sha256"`` (or announced, :func:`announce_files`): a file that save
    wrote and nobody changed since. If our JSON records no such hash, the answer is
    ``unrecorded``."""
    info = _own_json(json_path)
    if info is None or path.is_symlink() or not path.is_file():
        return False
    recorded = info.get(f"{key}_sha256")
    if recorded is not None and not isinstance(recorded, str):
        return False
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest in _announced(info):  # by a save that may have stopped midway
        return True
    return unrecorded if recorded is None else digest == recorded


def named_files(json_path: Path) -> set[str]:
    """The data files that an existing checkpoint JSON names (none if it is missing, not ours
    or unreadable): the only files a new save of the same name may remove."""
    info = _own_json(json_path) or {}
    names = (info.get(key) for key in ("weights", "state"))
    return {n for n in names if isinstance(n, str) and _DATA_FILE.fullmatch(n)}


SAVER_KEYS = frozenset({"format", "weights", "weights_sha256", "state", "state_sha256", "config",
                        "tokenizer", "announced_sha256"})


def save_checkpoint(run_dir: str | Path, name: str, model: torch.nn.Module, cfg: RunConfig,
                    meta: dict[str, Any], trainer_state: dict[str, torch.Tensor] | None = None,
                    weights_name: str | None = None) -> Path:
    """Write the weights (and ``trainer_state``), then ``run_dir/name.json``; returns its path.

    ``meta`` (JSON-serialisable, with an integer ``step``) is stored in the JSON as it is; it may
    not hold the keys the saver writes itself (:data:`SAVER_KEYS`). The weights file is
    ``NAME-STEP.safetensors`` unless ``weights_name`` says otherwise.
    """
    run_dir = Path(run_dir)
    json_path = run_dir / f"{name}.json"
    taken = sorted(SAVER_KEYS & set(meta))  # a bad meta fails before any file is written
    if taken:
        raise ValueError(f"meta may not hold {taken[0]!r}: save_checkpoint writes it")
    json_text({**meta, "config": cfg.to_dict()})  # not JSON: fail here too
    previous = named_files(json_path)
    stem = f"{name}-{int(meta.get('step', 0)):07d}"
    info: dict[str, Any] = {"format": FORMAT, "weights": weights_name or f"{stem}.safetensors"}
    info["weights_sha256"] = _write_tensors(run_dir / info["weights"], model.state_dict())
    if trainer_state is not None:
        info["state"] = f"{stem}.state.safetensors"
        info["state_sha256"] = _write_tensors(run_dir / info["state"], trainer_state)
    info.update(config=cfg.to_dict(),
                tokenizer={"type": "byte", "vocab_size": VOCAB_SIZE, **SPECIAL_IDS}, **meta)
    atomic_write_json(json_path, info)
    for stale in previous - {info["weights"], info.get("state")}:
        (run_dir / stale).unlink(missing_ok=True)
    return json_path


# ----------------------------------------------------------------------------- the JSON
def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory (-> ``best.json``), a shared folder (-> ``config.json``), a ``.json`` or a
    ``.safetensors`` path -> the JSON."""
    p = Path(path)
    if p.is_dir():
        shared = not (p / "best.json").exists() and (p / PRETRAINED_JSON).exists()
        p = p / (PRETRAINED_JSON if shared else "best.json")
    elif p.name == PRETRAINED_WEIGHTS:
        p = p.with_name(PRETRAINED_JSON)
    elif p.suffix == ".safetensors":
        p = p.with_name(p.name.split("-")[0].removesuffix(".safetensors") + ".json")
    if not p.exists() and not p.is_symlink():
        last = p.with_name("last.json")
        if p.name == "best.json" and last.exists():  # e.g. stopped before its first epoch ended
            raise CheckpointError(f"no checkpoint at {path} but {last}, the run's latest state "
                                  "(no best one was saved): pass it, or resume the run with "
                                  "--resume")
        raise CheckpointError(f"no checkpoint at {path}")
    if p.is_dir():
        raise CheckpointError(f"checkpoint {p} is not a file")
    return p


def _upgraded(config: Any) -> Any:
    """A saved config as this version reads it: checkpoints written before ``rope_stride``
    existed turned their rotary angles one index step per position."""
    model = config.get("model") if isinstance(config, dict) else None
    if isinstance(model, dict) and "rope_stride" not in model:
        return {**config, "model": {**model, "rope_stride": 1}}
    return config


def read_checkpoint_info(path: str | Path) -> tuple[Path, dict[str, Any], RunConfig]:
    """Parse and validate a checkpoint's JSON; returns ``(json_path, info, config)``."""
    p = resolve_checkpoint(path)
    try:
        info = json.loads(read_regular(p, MAX_JSON_BYTES, "checkpoint").decode("utf-8"))
    except (ValueError, RecursionError) as e:  # not UTF-8, not JSON, an integer too long
        reason = "nested too deeply" if isinstance(e, RecursionError) else e
        raise CheckpointError(f"checkpoint {p} is unreadable: {reason}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a transformer_tiny checkpoint")
    if "config" not in info and "announced_sha256" in info:  # announce_files, nothing since
        raise CheckpointError(f"{p} names no model yet: the save that wrote it was stopped "
                              "midway; save again")
    try:
        cfg = RunConfig.from_dict(_upgraded(info["config"]))
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise CheckpointError(f"checkpoint {p} has an invalid config: {e}") from None
    return p, info, cfg


def seen_bytes(info: dict[str, Any]) -> list[int] | None:
    """The training inputs' bytes that a checkpoint records (None if it records none, as
    checkpoints written before the record existed, or not as a list of byte values)."""
    seen = info.get("input_bytes")
    ok = isinstance(seen, list) and bool(seen) and all(
        type(b) is int and 0 <= b < 256 for b in seen)  # not a bool, which is an int too
    return seen if ok else None


def recorded_characters(info: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint records of its training inputs' characters (:func:`seen_bytes` and
    the characters' SHA-256), to be kept by a checkpoint written from it; a malformed entry is
    left out, as if it were not recorded."""
    digest = info.get("characters_sha256")
    records = {"input_bytes": seen_bytes(info),
               "characters_sha256": digest if _is_sha256(digest) else None}
    return {key: value for key, value in records.items() if value is not None}


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def expected_weights(model: torch.nn.Module) -> Expected:
    """Name -> (shape, dtype) of every tensor in a weights file for ``model``."""
    return {k: (tuple(t.shape), "F32") for k, t in model.state_dict().items()}


def read_checked_tensors(json_path: Path, info: dict[str, Any], key: str, expected: Expected,
                         optional: set[str] = frozenset()) -> dict[str, torch.Tensor]:
    """The tensors of the file that ``info[key]`` names, checked in this order: a plain file
    name of the saver's form in the JSON's folder, then everything :func:`read_safetensors`
    checks, against the SHA-256 ``info[key + "_sha256"]``."""
    what = "weights" if key == "weights" else "trainer state"
    name = info.get(key)
    if not isinstance(name, str):
        raise CheckpointError(f"{json_path} names no {what} file")
    if not _DATA_FILE.fullmatch(name):
        raise CheckpointError(f"{json_path} names {what} {name!r}, not a file name of the "
                              "form NAME-STEP.safetensors in its own folder")
    return read_safetensors(json_path.parent / name, what, expected, optional,
                            info.get(f"{key}_sha256"), json_path.name)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[Seq2SeqTransformer, RunConfig, dict[str, Any]]:
    """Load a checkpoint for inference; returns ``(model in eval mode, config, info)``."""
    p, info, cfg = read_checkpoint_info(path)  # the size of the model is bounded
    model = Seq2SeqTransformer(cfg.model)
    state = read_checked_tensors(p, info, "weights", expected_weights(model))
    model.load_state_dict(state, strict=True, assign=True)  # names and shapes were checked
    if torch.device(device) != torch.device("cpu"):
        model.to(device)
    return model.eval(), cfg, info


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


CUDA_RNG_BYTES = 16  # CUDA's Philox generator state: its seed and offset, 8 bytes each


def expected_trainer_state(params: list[torch.Tensor]) -> tuple[Expected, set[str]]:
    """What :func:`pack_trainer_state` writes for an AdamW over ``params`` (in the order of its
    groups), and the optional names."""
    expected: Expected = {"rng.torch": (tuple(torch.get_rng_state().shape), "U8"),
                          "rng.cuda": ((CUDA_RNG_BYTES,), "U8")}
    for idx, p in enumerate(params):
        expected.update({f"opt.{idx}.step": ((), "F32"),
                         f"opt.{idx}.exp_avg": (tuple(p.shape), "F32"),
                         f"opt.{idx}.exp_avg_sq": (tuple(p.shape), "F32")})
    return expected, {"rng.cuda"}


def check_optimizer_groups(meta: Any, sizes: list[int]) -> None:
    """The saved optimizer's groups (``meta["param_groups"]``) must hold ``sizes`` parameters."""
    groups = meta.get("param_groups") if isinstance(meta, dict) else None
    got = [len(g["params"]) if isinstance(g, dict) and isinstance(g.get("params"), list) else -1
           for g in groups] if isinstance(groups, list) else None
    if got != sizes:
        raise CheckpointError("the checkpoint's optimizer groups do not fit this run")


def unpack_trainer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                         meta: dict) -> None:
    """Inverse of :func:`pack_trainer_state`: restores the optimizer's moments and steps and
    the RNG states. Its hyperparameters stay those ``opt`` was built with, from the run's
    config (a resumed run may change ``--weight-decay``); the learning rate is set every step."""
    built = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    try:
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"trainer state does not fit this run: {e}") from None
    for group, hyper in zip(opt.param_groups, built, strict=True):
        group.update(hyper)
