"""Scoring a model on a task: exact match, per-character accuracy, and the error rates of real
outputs (edit distance over characters and over space-separated tokens), overall and by input
length."""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import Levenshtein

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


def bucket_list(buckets: Any, empty: bool = False) -> Buckets | None:
    """``buckets`` (None, or ``(lo, hi)`` pairs of ints with ``1 <= lo <= hi``; ``0 <= lo`` with
    ``empty``, for inputs given that may be ``""``) as a list of tuples; ``TypeError`` or
    ``ValueError`` naming what is wrong otherwise."""
    if buckets is None:
        return None
    try:
        items = [tuple(b) for b in buckets]
        if isinstance(buckets, str) or any(isinstance(x, bool) for b in items for x in b):
            raise TypeError
        pairs = [(operator.index(lo), operator.index(hi)) for lo, hi in items]
    except (TypeError, ValueError):  # not pairs, or not integers (NumPy's are)
        raise TypeError(f"buckets must be (lo, hi) pairs of ints, got {buckets!r}") from None
    first = 0 if empty else 1
    for lo, hi in pairs:
        if not first <= lo <= hi:
            raise ValueError(f"bucket ({lo}, {hi}): needs {first} <= lo <= hi")
    return pairs


def outside_buckets(inputs: list[str], buckets: Buckets) -> str | None:
    """A note if some ``inputs`` fall in none of the length ``buckets`` (they count in the
    totals only)."""
    n = sum(not any(lo <= len(x) <= hi for lo, hi in buckets) for x in inputs)
    if not n:
        return None
    return ("1 input falls" if n == 1 else f"{n} inputs fall") + " in no length bucket: " \
        "counted in the total only"


def edit_errors(pred: str, references: Sequence[str]) -> tuple[int, int, int, int]:
    """Edits from ``pred`` to the nearest of ``references``: ``(character edits, characters of
    that reference, token edits, tokens of the reference nearest by tokens)``, where tokens are
    the space-separated words (the phonemes of a pronunciation)."""
    chars = min((Levenshtein.distance(pred, r), len(r)) for r in references)
    words = pred.split()
    tokens = min((Levenshtein.distance(words, r.split()), len(r.split())) for r in references)
    return (*chars, *tokens)


@dataclass
class EvalResult:
    """Exact match and per-character accuracy, overall and per length bucket, and the error
    rates over all outputs: character edits per reference character and token edits per
    reference token (each against the nearest accepted output)."""

    exact_match: float
    char_accuracy: float
    n: int
    buckets: dict[str, dict[str, float]] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)
    char_error_rate: float = 0.0
    token_error_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"exact_match": self.exact_match, "char_accuracy": self.char_accuracy, "n": self.n,
                "char_error_rate": self.char_error_rate,
                "token_error_rate": self.token_error_rate, "buckets": self.buckets,
                "examples": self.examples}


def _summary(scores: list[tuple[bool, float]]) -> dict[str, float]:
    n = max(1, len(scores))
    return {"exact_match": sum(e for e, _ in scores) / n,
            "char_accuracy": sum(c for _, c in scores) / n, "n": len(scores)}


def evaluate(model: Seq2SeqTransformer, inputs: list[str], task: str | Task,
             bucket_edges: Buckets | None = None, n_examples: int = 0,
             max_new_tokens: int | None = None,
             references: Sequence[Sequence[str]] | None = None, beam: int = 1) -> EvalResult:
    """Decode ``inputs`` (greedy, or beam search with ``beam > 1``) and score them against the
    task's answers.

    ``task`` is a :class:`Task` (``tasks.task_for(cfg.data)`` binds a run's task options) or a
    registered name (default options). ``references`` gives the accepted outputs of each input
    instead (pairs read from files): an output is exact if it is any of them; its per-character
    accuracy (and the example's target) is that of the one it matches best position by
    position, its error rates those of the one fewest edits away. Buckets are by input length
    in characters.
    """
    if isinstance(task, str):
        task = get_task(task)
    tok = ByteTokenizer()
    model_inputs = [task.model_input(x) for x in inputs]  # e.g. add's zero-padding
    if references is None:  # scored in the model's own format
        references = [[task.solve(m)] for m in model_inputs]
    room = max_new_tokens if max_new_tokens is not None else task.output_room
    preds = [tok.decode(ids) for ids, _ in predict(model, model_inputs, room, beam=beam)]
    per_bucket: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    scores, nearest, edits = [], [], [0, 0, 0, 0]
    for text, refs, pred in zip(inputs, references, preds, strict=True):
        best = max(refs, key=lambda ref: char_accuracy(pred, ref))  # the one matched, if any
        score = (pred in refs, char_accuracy(pred, best))
        scores.append(score)
        nearest.append(best)
        edits = [a + b for a, b in zip(edits, edit_errors(pred, refs), strict=True)]
        for lo, hi in bucket_edges or []:
            if lo <= len(text) <= hi:
                per_bucket[f"{lo}-{hi}"].append(score)
    total = _summary(scores)
    ordered = [f"{lo}-{hi}" for lo, hi in bucket_edges or [] if f"{lo}-{hi}" in per_bucket]
    examples = [{"input": x, "target": t, "pred": p}
                for x, t, p in list(zip(inputs, nearest, preds, strict=True))[:n_examples]]
    return EvalResult(total["exact_match"], total["char_accuracy"], len(inputs),
                      {k: _summary(per_bucket[k]) for k in ordered}, examples,
                      edits[0] / max(1, edits[1]), edits[2] / max(1, edits[3]))
