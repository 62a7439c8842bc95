"""Training and evaluation steps: the optimiser, the schedule, the loop, and the metrics."""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import (
    pack_trainer_state,
    read_checkpoint_info,
    read_tensors,
    save_checkpoint,
    unpack_trainer_state,
)
from .config import RunConfig, TrainConfig
from .data import DataModule
from .decoding import beam_search, greedy_decode
from .logs import open_run_log
from .model import Seq2SeqTransformer
from .tasks import Task, get_task, task_for
from .tokenizer import PAD_ID, ByteTokenizer
from .utils import char_accuracy, pick_device, seed_everything, set_threads


def learning_rate(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``lr * min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    floor = cfg.min_lr_ratio
    return cfg.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, norms or embeddings)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9, fused=True)


def sequence_loss(model: Seq2SeqTransformer, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
    """Mean cross-entropy over the real (non-PAD) target tokens, and their count."""
    logits = model(batch["src"], batch["tgt_in"])  # (B, T, V)
    target = batch["tgt_out"]
    loss = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=PAD_ID)
    return loss, int((target != PAD_ID).sum())


# ----------------------------------------------------------------------------- evaluation
@torch.inference_mode()
def predict(model: Seq2SeqTransformer, texts: list[str], max_new_tokens: int | None = None,
            batch_size: int = 128, use_cache: bool = True,
            beam: int = 1) -> list[tuple[list[int], bool]]:
    """Output for each text, batched by similar length: ``(ids before EOS, ended)``, where
    ``ended`` is False when ``max_new_tokens`` ran out before EOS. Greedy unless ``beam > 1``."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("predict() takes a list of str")
    tok = ByteTokenizer()
    device = next(model.parameters()).device
    encoded = [tok.encode(t) for t in texts]
    for n, ids in enumerate(encoded, 1):
        if len(ids) > model.cfg.max_source_tokens:
            raise ValueError(f"input {n} is {len(ids)} bytes long; this model supports at most "
                             f"{model.cfg.max_source_tokens}")
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    results: list[tuple[list[int], bool]] = [([], False) for _ in texts]
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        src, _ = tok.pad_batch([encoded[i] for i in rows], bos=True, eos=True)
        if beam > 1:
            out = beam_search(model, src.to(device), beam, max_new_tokens)
        else:
            out = greedy_decode(model, src.to(device), max_new_tokens, use_cache=use_cache)
        for i, ids in zip(rows, out.tolist(), strict=True):
            ended = tok.eos_id in ids
            results[i] = (ids[: ids.index(tok.eos_id)] if ended else ids, ended)
    return results


@dataclass
class EvalResult:
    """Exact match and per-character accuracy, overall and per length bucket."""

    exact_match: float
    char_accuracy: float
    n: int
    buckets: dict[str, dict[str, float]] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"exact_match": self.exact_match, "char_accuracy": self.char_accuracy, "n": self.n,
                "buckets": self.buckets, "examples": self.examples}


def evaluate(model: Seq2SeqTransformer, inputs: list[str], task: str | Task,
             bucket_edges: list[tuple[int, int]] | None = None, n_examples: int = 0,
             max_new_tokens: int | None = None) -> EvalResult:
    """Greedy-decode ``inputs`` and score them against the task's answers.

    ``task`` is a :class:`Task` (``tasks.task_for(cfg.data)`` binds a run's task options) or a
    registered name (default options). Buckets are by input length in characters;
    ``bucket_edges`` are inclusive ``(lo, hi)`` pairs.
    """
    task, tok = get_task(task) if isinstance(task, str) else task, ByteTokenizer()
    model_inputs = [task.model_input(x) for x in inputs]  # e.g. add's zero-padding
    targets = [task.solve(m) for m in model_inputs]  # scored in the model's own format
    preds = [tok.decode(ids) for ids, _ in predict(model, model_inputs, max_new_tokens)]
    per_bucket: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    scores = []
    for text, target, pred in zip(inputs, targets, preds, strict=True):
        score = (pred == target, char_accuracy(pred, target))
        scores.append(score)
        for lo, hi in bucket_edges or []:
            if lo <= len(text) <= hi:
                per_bucket[f"{lo}-{hi}"].append(score)
    def summary(s: list[tuple[bool, float]]) -> dict[str, float]:
        return {"exact_match": sum(e for e, _ in s) / max(1, len(s)),
                "char_accuracy": sum(c for _, c in s) / max(1, len(s)), "n": len(s)}
    total = summary(scores)
    ordered = [f"{lo}-{hi}" for lo, hi in bucket_edges or [] if f"{lo}-{hi}" in per_bucket]
    examples = [{"input": x, "target": t, "pred": p}
                for x, t, p in list(zip(inputs, targets, preds, strict=True))[:n_examples]]
    return EvalResult(total["exact_match"], total["char_accuracy"], len(inputs),
                      {k: summary(per_bucket[k]) for k in ordered}, examples)


# ----------------------------------------------------------------------------- training
class TrainingError(ValueError):
    """Training cannot go on (e.g. a non-finite loss); checkpoints already written are kept."""


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint so that ``--resume`` continues exactly."""

    step: int = 0
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch already trained
    best: float = -1.0
    loss_sum: float = 0.0
    tokens: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def _save(out: Path, name: str, model: torch.nn.Module, opt: torch.optim.Optimizer,
          cfg: RunConfig, progress: Progress) -> None:
    """Write checkpoint ``name``; ``last`` also carries the trainer state needed to resume."""
    tensors, opt_meta = pack_trainer_state(opt)
    metrics = progress.history[-1] if progress.history else {}
    meta = {"step": progress.step, "epoch": progress.epoch, "metrics": metrics,
            "progress": dataclasses.asdict(progress), "optimizer": opt_meta}
    save_checkpoint(out, name, model, cfg, meta, tensors if name == "last" else None)


def _resume(out: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> Progress:
    """Load ``out/last.json`` (weights, optimizer, RNG, progress) into ``model`` and ``opt``."""
    path, info, _ = read_checkpoint_info(out / "last.json")
    model.load_state_dict(read_tensors(path, info, "weights"))
    unpack_trainer_state(opt, read_tensors(path, info, "state"), info.get("optimizer", {}))
    return Progress(**info["progress"])


def _train_step(model: Seq2SeqTransformer, opt: torch.optim.Optimizer, batch: dict[str, Tensor],
                lr: float, cfg: TrainConfig, autocast, step: int) -> tuple[float, int]:
    for group in opt.param_groups:
        group["lr"] = lr
    with autocast:
        loss, n_tok = sequence_loss(model, batch)
    if not torch.isfinite(loss):
        raise TrainingError(f"non-finite loss ({loss.item()}) at step {step + 1}; "
                            "training stopped, the last good checkpoint is kept")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return loss.item(), n_tok


def train(cfg: RunConfig, resume: bool = False, tensorboard: bool = False) -> dict[str, Any]:
    """Train with ``cfg``; writes ``best``/``last`` checkpoints and the logs of
    :mod:`transformer_tiny.logs` (``metrics.jsonl``, ``steps.csv``, TensorBoard events with
    ``tensorboard``) to ``cfg.train.out`` (``last`` also every ``save_every`` steps). ``resume``
    continues from ``out/last.json``. Returns a summary (best validation exact match, seconds,
    steps)."""
    tc = cfg.train
    ctx = distributed.setup(pick_device(tc.device))  # several processes under torchrun
    set_threads(tc.threads or ctx.default_threads())
    device = ctx.device
    seed_everything(tc.seed)
    out = Path(tc.out)
    if ctx.is_main:  # only rank 0 writes
        out.mkdir(parents=True, exist_ok=True)
        for leftover in out.glob(".*.tmp"):  # from a run killed in the middle of a write
            leftover.unlink(missing_ok=True)
    model = Seq2SeqTransformer(cfg.model).to(device)
    opt = make_optimizer(model, tc)
    progress = _resume(out, model, opt) if resume else Progress()
    train_model = ctx.wrap(model)  # DistributedDataParallel with several processes
    log = open_run_log(out, progress.step, progress.history, tensorboard)
    dm = DataModule(cfg.data)
    # Each process takes every world-th batch; all take the same number of steps.
    steps_per_epoch = math.ceil(cfg.data.train_samples / tc.batch_size) // ctx.world
    if steps_per_epoch == 0:
        raise ValueError(f"train_samples {cfg.data.train_samples} at batch size {tc.batch_size} "
                         f"give fewer batches than the {ctx.world} processes")
    if ctx.enabled and ctx.is_main and tc.progress:
        tqdm.write(f"{ctx.world} processes ({ctx.backend}), batch size {tc.batch_size} each: "
                   f"effective batch size {tc.batch_size * ctx.world}")
    total_steps = steps_per_epoch * tc.epochs
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                              enabled=device.type == "cuda")
    t0 = time.perf_counter()
    while progress.epoch < tc.epochs:
        model.train()
        batches = islice(dm.train_loader(progress.epoch, tc.batch_size, ctx.rank, ctx.world),
                         steps_per_epoch)
        bar = tqdm(batches, total=steps_per_epoch,
                   desc=f"epoch {progress.epoch + 1}/{tc.epochs}",
                   disable=not (tc.progress and ctx.is_main), leave=False, mininterval=1.0)
        t_epoch, tokens_here = time.perf_counter(), 0
        for i, batch in enumerate(bar):
            if i < progress.batch:
                continue  # trained before the run was interrupted
            lr = learning_rate(progress.step, total_steps, tc)
            batch = {k: v.to(device) for k, v in batch.items()}
            loss, n_tok = _train_step(train_model, opt, batch, lr, tc, autocast, progress.step)
            progress.step, progress.batch = progress.step + 1, i + 1
            progress.loss_sum, progress.tokens = progress.loss_sum + loss, progress.tokens + n_tok
            log.log_step(progress.step, loss, lr)
            tokens_here += n_tok
            rate = tokens_here / max(1e-9, time.perf_counter() - t_epoch)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{rate:,.0f}")
            if tc.save_every and progress.step % tc.save_every == 0 and ctx.is_main:
                _save(out, "last", model, opt, cfg, progress)
        loss_sum, tokens_here = ctx.sum([progress.loss_sum, tokens_here])  # over all processes
        progress.loss_sum = loss_sum / ctx.world
        rate = tokens_here / max(1e-9, time.perf_counter() - t_epoch)
        if ctx.is_main:  # validates and writes; the other processes wait at the barrier
            _end_epoch(model, opt, cfg, dm, progress, out, rate, time.perf_counter() - t0)
        else:
            progress.epoch, progress.batch, progress.loss_sum = progress.epoch + 1, 0, 0.0
        ctx.barrier()
        log.log_epoch(progress.history)
    log.close()
    return {"best_val_exact_match": progress.best, "steps": progress.step, "out": str(out),
            "seconds": round(time.perf_counter() - t0, 1), "parameters": model.num_parameters(),
            "rank": ctx.rank, "world_size": ctx.world,
            "effective_batch_size": tc.batch_size * ctx.world}


def _end_epoch(model: Seq2SeqTransformer, opt: torch.optim.Optimizer, cfg: RunConfig,
               dm: DataModule, progress: Progress, out: Path, rate: float,
               elapsed: float) -> None:
    """Validate, add a metrics record to ``progress.history``, and write ``last`` (and ``best``
    if it improved)."""
    val = evaluate(model, dm.val_inputs, task_for(cfg.data))
    batches = max(1, progress.batch)
    record = {"epoch": progress.epoch + 1, "step": progress.step,
              "train_loss": progress.loss_sum / batches, "val_exact_match": val.exact_match,
              "val_char_accuracy": val.char_accuracy, "tokens_per_s": round(rate),
              "elapsed_s": round(elapsed, 2), "world_size": distributed.world_size(),
              "effective_batch_size": cfg.train.batch_size * distributed.world_size()}
    progress.history.append(record)
    progress.epoch, progress.batch = progress.epoch + 1, 0
    progress.loss_sum, progress.tokens = 0.0, 0
    improved = val.exact_match > progress.best
    progress.best = max(progress.best, val.exact_match)
    _save(out, "last", model, opt, cfg, progress)
    if improved:
        _save(out, "best", model, opt, cfg, progress)
    if cfg.train.progress:
        tqdm.write(f"epoch {record['epoch']}: loss {record['train_loss']:.4f}  "
                   f"val exact match {val.exact_match:.4f}  "
                   f"char acc {val.char_accuracy:.4f}  {rate:,.0f} tok/s  "
                   f"effective batch {record['effective_batch_size']}")
