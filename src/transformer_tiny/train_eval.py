"""Training: the optimiser, the learning-rate schedule, the loss, and the loop.

Validation after every epoch uses :func:`transformer_tiny.metrics.evaluate`; what a run writes
and reads back to resume is in :mod:`~transformer_tiny.run_state`.
"""

from __future__ import annotations

import math
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from . import distributed
from .config import RunConfig, TrainConfig
from .data import DataModule
from .distributed import DistContext
from .inputs import check_input_room, options_not_taken
from .logs import RunLog
from .metrics import evaluate
from .model import Seq2SeqTransformer
from .run_state import Progress, data_record, read_last, save_run_checkpoint
from .rundir import claim_run_dir
from .tasks import task_for
from .tokenizer import PAD_ID
from .utils import pick_device, seed_everything, set_threads


def learning_rate(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``lr * min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    floor = cfg.min_lr_ratio
    return cfg.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def parameter_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW's groups: weight decay on matrices only (not on biases, norms or embeddings)."""
    groups: dict[bool, list[torch.nn.Parameter]] = {True: [], False: []}
    for name, p in model.named_parameters():
        groups[p.dim() >= 2 and "embed" not in name].append(p)  # embed, byte_embed: no decay
    return [{"params": groups[True], "weight_decay": cfg.weight_decay},
            {"params": groups[False], "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups`, with the betas and epsilon of Vaswani et al. 2017
    (section 5.3); ``fused`` runs the update in one kernel per step."""
    return torch.optim.AdamW(parameter_groups(model, cfg), lr=cfg.lr, betas=(0.9, 0.98),
                             eps=1e-9, fused=True)


def training_autocast(precision: str, device: torch.device) -> torch.autocast:
    """The autocast context of the training steps: bfloat16 matrix products (weights, optimiser
    state and the loss stay float32) for ``precision="bf16"``, and for ``"auto"`` on CUDA;
    float32 otherwise. On a CPU with bfloat16 instructions (AVX512-BF16, AMX) bf16 trains
    faster; without them it is emulated and slower. Validation and decoding run in float32.
    """
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


def sequence_loss(model: Seq2SeqTransformer, batch: dict[str, Tensor],
                  label_smoothing: float = 0.0) -> tuple[Tensor, int]:
    """Mean cross-entropy over the real (non-PAD) target tokens, and their count.

    With ``label_smoothing`` e the target puts ``1 - e`` on the right token and spreads ``e``
    evenly over the whole vocabulary (Szegedy et al. 2016).
    """
    logits = model(batch["src"], batch["tgt_in"])  # (B, T, V)
    target = batch["tgt_out"]
    loss = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=PAD_ID,
                           label_smoothing=label_smoothing)
    return loss, int((target != PAD_ID).sum())


# ----------------------------------------------------------------------------- training
class TrainingError(ValueError):
    """Training cannot go on (e.g. a non-finite loss); checkpoints already written are kept."""


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict[str, Tensor],
                lr: float, cfg: TrainConfig, autocast, step: int) -> tuple[float, int]:
    for group in opt.param_groups:
        group["lr"] = lr
    with autocast:
        loss, n_tok = sequence_loss(model, batch, cfg.label_smoothing)
    if not torch.isfinite(loss):
        raise TrainingError(f"non-finite loss ({loss.item()}) at step {step + 1}; "
                            "training stopped, the last good checkpoint is kept")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return loss.item(), n_tok


class Trainer:
    """One training run: the model, its optimiser and data, where it writes, how far it got.

    With several processes (torchrun) each one trains on every ``world``-th batch of an epoch
    through ``DistributedDataParallel``; only the main process validates and writes.
    """

    def __init__(self, cfg: RunConfig, ctx: DistContext, resume: bool, tensorboard: bool,
                 overwrite: bool = False):
        self.cfg, self.ctx, self.out = cfg, ctx, Path(cfg.train.out)
        self.lock = self.log = self.train_model = None
        if ctx.is_main:  # only the main process writes: it checks and locks the folder
            self.lock = claim_run_dir(self.out, overwrite)
        try:
            self._build(resume, tensorboard)
        except BaseException:
            self.close()
            raise

    def _build(self, resume: bool, tensorboard: bool) -> None:
        cfg, ctx = self.cfg, self.ctx
        self.dm = DataModule(cfg.data, cfg.model.max_input_bytes)  # reads and checks pairs files
        if ctx.is_main:  # options ignored (said when the run began), bad lines, long outputs...
            for note in ([] if resume else options_not_taken(cfg.data)) + self.dm.notes:
                print(f"warning: {note}", file=sys.stderr)
        examples = self.dm.train_size
        self.steps_per_epoch = math.ceil(examples / cfg.train.batch_size) // ctx.world
        if self.steps_per_epoch == 0:
            raise ValueError(f"{examples} training examples at batch size "
                             f"{cfg.train.batch_size} give fewer batches than the {ctx.world} "
                             "processes")
        self.model = Seq2SeqTransformer(cfg.model).to(ctx.device)
        # A run to resume is checked before the optimiser exists: its first use takes seconds.
        last = None
        if resume:
            last = read_last(self.out, self.model, parameter_groups(self.model, cfg.train))
        self.opt = make_optimizer(self.model, cfg.train)
        self.progress, seen_before = Progress(), None
        if last is not None:
            last.check_same_data(self.dm.pairs)
            if last.changed_characters is not None and ctx.is_main:
                print(f"warning: {last.changed_characters}; the run goes on with today's",
                      file=sys.stderr)
            last.restore(self.opt)
            self.progress, seen_before = last.progress, last.input_bytes
        self.data_record = data_record(cfg, self.dm.pairs, seen_before)  # in every checkpoint
        self.first_step = self.progress.step  # where this process started (for the ETA)
        self.train_model = ctx.wrap(self.model)  # DistributedDataParallel with several processes
        if ctx.is_main:
            self.log = RunLog(self.out, self.progress.step, self.progress.history, tensorboard)
        self.autocast = training_autocast(cfg.train.precision, ctx.device)

    def _save(self, *names: str) -> None:
        """Write the checkpoints ``names``, unless a step left the weights non-finite."""
        finite = torch.stack([torch.isfinite(w).all() for w in self.model.parameters()]).all()
        if not finite:  # one check for all the saves of this step
            raise TrainingError(f"the weights are not finite after step {self.progress.step}; "
                                "training stopped, the last good checkpoint is kept")
        for name in names:
            save_run_checkpoint(self.out, name, self.model, self.opt, self.cfg, self.progress,
                                self.data_record)

    def close(self) -> None:
        """Close the logs, let another run use the folder and let go of the
        ``DistributedDataParallel`` wrapper (its hold on the process group ends with it)."""
        self.train_model = None
        if self.log is not None:
            self.log.close()
        if self.lock is not None:
            self.lock.release()

    @property
    def effective_batch_size(self) -> int:
        return self.cfg.train.batch_size * self.ctx.world

    def _bar(self, batches: Any) -> Any:
        """A progress bar over ``batches`` on a terminal; in a log, nothing (the epoch lines)."""
        tc, p = self.cfg.train, self.progress
        shown = tc.progress and self.ctx.is_main and sys.stderr.isatty()
        return tqdm(batches, total=self.steps_per_epoch, desc=f"epoch {p.epoch + 1}/{tc.epochs}",
                    disable=not shown, leave=False, mininterval=1.0)

    def train_epoch(self) -> int:
        """Train the rest of the current epoch; returns the target tokens this process saw."""
        tc, p = self.cfg.train, self.progress
        total_steps = self.steps_per_epoch * tc.epochs
        self.model.train()
        batches = islice(self.dm.train_loader(p.epoch, tc.batch_size, self.ctx.rank,
                                              self.ctx.world), self.steps_per_epoch)
        bar, t0, tokens = self._bar(batches), time.perf_counter(), 0
        for i, batch in enumerate(bar):
            if i < p.batch:
                continue  # trained before the run was interrupted
            lr = learning_rate(p.step, total_steps, tc)
            batch = {k: v.to(self.ctx.device) for k, v in batch.items()}
            loss, n_tok = _train_step(self.train_model, self.opt, batch, lr, tc, self.autocast,
                                      p.step)
            p.step, p.batch, p.loss_sum = p.step + 1, i + 1, p.loss_sum + loss
            tokens += n_tok
            if self.log is not None:
                self.log.log_step(p.step, loss, lr)
            rate = tokens / max(1e-9, time.perf_counter() - t0)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{rate:,.0f}")
            if tc.save_every and p.step % tc.save_every == 0 and self.ctx.is_main:
                self._save("last")
        return tokens

    def end_epoch(self, rate: float, elapsed: float) -> None:
        """Validate, add a metrics record to the history, write ``last`` (and ``best`` if it is
        at least as good), log and print the epoch's line. Main process only."""
        p = self.progress
        val = evaluate(self.model, self.dm.val_inputs, task_for(self.cfg.data),
                       references=self.dm.references("val"))
        record = {"epoch": p.epoch + 1, "step": p.step, "train_loss": p.loss_sum / max(1, p.batch),
                  "val_exact_match": val.exact_match, "val_char_accuracy": val.char_accuracy,
                  "tokens_per_s": round(rate), "elapsed_s": round(elapsed, 2),
                  "world_size": self.ctx.world, "effective_batch_size": self.effective_batch_size}
        p.history.append(record)
        p.next_epoch()
        # A tie goes to the later epoch: it has trained longer, at a lower learning rate, and
        # validation exact match (short strings) saturates long before long inputs are learned.
        improved = val.exact_match >= p.best
        p.best = max(p.best, val.exact_match)
        self._save("last", *(["best"] if improved else []))
        self.log.log_epoch(p.history)
        if self.cfg.train.progress:
            self._print_epoch(record, rate, elapsed)

    def _print_epoch(self, record: dict[str, Any], rate: float, elapsed: float) -> None:
        """The epoch's line, with the time left estimated from the steps this process trained
        (a resumed epoch may have had few or none left: then no speed and no estimate)."""
        left = self.steps_per_epoch * self.cfg.train.epochs - self.progress.step
        done = self.progress.step - self.first_step
        eta = f"  about {elapsed / done * left:,.0f} s to go" if left > 0 and done else ""
        speed = f"{rate:,.0f} tok/s  " if rate > 0 else ""
        tqdm.write(f"epoch {record['epoch']}: loss {record['train_loss']:.4f}  "
                   f"val exact match {record['val_exact_match']:.4f}  "
                   f"char acc {record['val_char_accuracy']:.4f}  {speed}"
                   f"effective batch {record['effective_batch_size']}  "
                   f"{elapsed:,.0f} s{eta}")


def train(cfg: RunConfig, resume: bool = False, tensorboard: bool = False,
          overwrite: bool = False) -> dict[str, Any]:
    """Train with ``cfg``; writes ``best``/``last`` checkpoints and the logs of
    :mod:`transformer_tiny.logs` (``metrics.jsonl``, ``steps.csv``, TensorBoard events with
    ``tensorboard``) to ``cfg.train.out`` (``last`` also every ``save_every`` steps). ``resume``
    continues from ``out/last.json``; a folder that holds other files than a run's is refused
    unless ``overwrite`` (see :mod:`~transformer_tiny.rundir`). Returns a summary (best
    validation exact match, seconds, steps, the step a resumed run began at, and ``is_main``:
    whether this process reports)."""
    check_input_room(cfg.data, cfg.model.max_input_bytes)  # before the run folder is touched
    # several processes under torchrun: the group lives as long as this call
    with distributed.process_group(pick_device(cfg.train.device)) as ctx:
        set_threads(cfg.train.threads or ctx.default_threads())
        seed_everything(cfg.train.seed)
        run = Trainer(cfg, ctx, resume, tensorboard, overwrite)
        try:
            return _run(run, cfg, ctx)
        finally:
            run.close()


def _run(run: Trainer, cfg: RunConfig, ctx: DistContext) -> dict[str, Any]:
    """The epochs of ``run``; returns the summary of :func:`train`."""
    if ctx.enabled and ctx.is_main and cfg.train.progress:
        tqdm.write(f"{ctx.world} processes ({ctx.backend}), batch size {cfg.train.batch_size} "
                   f"each: effective batch size {run.effective_batch_size}")
    t0 = time.perf_counter()
    while run.progress.epoch < cfg.train.epochs:
        t_epoch = time.perf_counter()
        tokens = run.train_epoch()
        loss_sum, tokens = ctx.sum([run.progress.loss_sum, tokens])  # over all processes
        run.progress.loss_sum = loss_sum / ctx.world
        rate = tokens / max(1e-9, time.perf_counter() - t_epoch)
        if ctx.is_main:  # validates and writes; the other processes wait at the barrier
            run.end_epoch(rate, time.perf_counter() - t0)
        else:
            run.progress.next_epoch()
        ctx.barrier()
    return {"best_val_exact_match": run.progress.best, "steps": run.progress.step,
            "resumed_at": run.first_step,
            "out": str(run.out), "seconds": round(time.perf_counter() - t0, 1),
            "parameters": run.model.num_parameters(), "is_main": ctx.is_main,
            "world_size": ctx.world, "effective_batch_size": run.effective_batch_size}
