"""Scoring a model on a task: per-character accuracy, exact match, and both by input length."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .decoding import predict
from .model import Seq2SeqTransformer
from .tasks import Task, get_task
from .tokenizer import ByteTokenizer

Buckets = list[tuple[int, int]]  # inclusive (lo, hi) ranges of input lengths in characters


def char_accuracy(pred: str, target: str) -> float:
    """Fraction of target code points predicted at the right index (a longer prediction is
    penalised by counting its extra characters as errors); two empty strings agree fully."""
    if not pred and not target:
        return 1.0
    hits = sum(p == t for p, t in zip(pred, target, strict=False))
    return hits / max(len(target), len(pred), 1)


def even_buckets(lo: int, hi: int, n: int = 4) -> Buckets:
    """``[lo, hi]`` cut into ``n`` ranges of (nearly) equal width: ``(1, 32)`` -> ``(1, 8),
    (9, 16), (17, 24), (25, 32)``."""
    step = max(1, -(-(hi - lo + 1) // n))
    return [(a, min(hi, a + step - 1)) for a in range(lo, hi + 1, step)]


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


def _summary(scores: list[tuple[bool, float]]) -> dict[str, float]:
    n = max(1, len(scores))
    return {"exact_match": sum(e for e, _ in scores) / n,
            "char_accuracy": sum(c for _, c in scores) / n, "n": len(scores)}


def evaluate(model: Seq2SeqTransformer, inputs: list[str], task: str | Task,
             bucket_edges: Buckets | None = None, n_examples: int = 0,
             max_new_tokens: int | None = None) -> EvalResult:
    """Greedy-decode ``inputs`` and score them against the task's answers.

    ``task`` is a :class:`Task` (``tasks.task_for(cfg.data)`` binds a run's task options) or a
    registered name (default options). Buckets are by input length in characters.
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
    total = _summary(scores)
    ordered = [f"{lo}-{hi}" for lo, hi in bucket_edges or [] if f"{lo}-{hi}" in per_bucket]
    examples = [{"input": x, "target": t, "pred": p}
                for x, t, p in list(zip(inputs, targets, preds, strict=True))[:n_examples]]
    return EvalResult(total["exact_match"], total["char_accuracy"], len(inputs),
                      {k: _summary(per_bucket[k]) for k in ordered}, examples)
