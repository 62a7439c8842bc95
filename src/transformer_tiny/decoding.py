"""Decoding loops, kept apart from the model: greedy (with or without the KV cache), beam search,
and :func:`predict`, which runs them on strings.

All loops take a batch of right-padded sources ``(B, S)`` and return ``(B, L)`` generated ids
(BOS excluded); a row that emitted EOS is padded with PAD afterwards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from numbers import Integral
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .model import Seq2SeqTransformer
from .model_config import ModelConfig
from .tasks import DEFAULT_ROOM
from .tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer


def inference(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Run a decoding function of ``model`` (its first argument) in eval mode (no dropout) and
    under ``torch.inference_mode`` (less bookkeeping per operation than ``no_grad``, which counts
    at batch 1). The model's training mode is restored afterwards, and the result is an ordinary
    tensor, which may be used anywhere, autograd included."""

    @functools.wraps(fn)
    def wrapper(model: Seq2SeqTransformer, *args, **kwargs) -> Tensor:
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                out = fn(model, *args, **kwargs)
        finally:
            model.train(was_training)
        return out.clone()

    return wrapper


MAX_BEAM = 64  # the widest beam the commands and predict() accept


def decode_steps(max_new_tokens: int | None, src_len: int, cfg: ModelConfig) -> int:
    """The decoding steps to run for sources of ``src_len`` tokens: ``max_new_tokens``, or by
    default room for an output as long as the source plus a margin, within the model's
    positions."""
    if max_new_tokens is None:
        return min(DEFAULT_ROOM(src_len), cfg.max_new_tokens)
    return max_new_tokens


@inference
def greedy_decode(model: Seq2SeqTransformer, src: Tensor, max_new_tokens: int | None = None,
                  use_cache: bool = True, stop_at_eos: bool = True) -> Tensor:
    """Batched greedy decoding that stops each row at its EOS.

    ``use_cache=True`` feeds one token per step and reuses keys/values (O(n) work per step);
    ``False`` re-runs the decoder over the whole prefix at every step, as most tutorials do.
    ``stop_at_eos=False`` always runs ``max_new_tokens`` steps (for benchmarks).
    """
    steps = decode_steps(max_new_tokens, src.size(1), model.cfg)
    memory = model.encode(src)
    B = src.size(0)
    out = torch.full((B, 1), BOS_ID, dtype=torch.long, device=src.device)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)
    for _ in range(steps):
        if use_cache:
            logits = model.decode(out[:, -1:], memory, use_cache=True)[:, -1]
        else:
            logits = model.decode(out, memory)[:, -1]
        nxt = logits.argmax(dim=-1).masked_fill(finished, PAD_ID)  # (B,)
        out = torch.cat([out, nxt[:, None]], dim=1)
        finished |= nxt == EOS_ID
        if stop_at_eos and bool(finished.all()):
            break
    return out[:, 1:]


@inference
def sequence_logprob(model: Seq2SeqTransformer, src: Tensor, out: Tensor) -> Tensor:
    """Sum of log-probabilities ``(B,)`` of generated ids ``out (B, L)`` (up to and incl. EOS)."""
    B = src.size(0)
    bos = torch.full((B, 1), BOS_ID, dtype=torch.long, device=src.device)
    tgt_in = torch.cat([bos, out[:, :-1]], dim=1)
    logp = torch.log_softmax(model.decode(tgt_in, model.encode(src)).float(), dim=-1)
    token_logp = logp.gather(-1, out[..., None]).squeeze(-1)  # (B, L)
    return token_logp.masked_fill(out == PAD_ID, 0.0).sum(dim=1)


def output_length(out: Tensor) -> Tensor:
    """Tokens generated per row of ``out (..., L)``: the bytes before EOS, plus EOS if present."""
    return ((out != PAD_ID) & (out != EOS_ID)).sum(-1) + (out == EOS_ID).any(-1).long()


def normalized_score(logprob: Tensor, length: Tensor, alpha: float) -> Tensor:
    """Length-normalised score ``logprob / length ** alpha`` (alpha 0: raw sum), a simpler form
    of the length penalty ``((5 + length) / 6) ** alpha`` of Wu et al. 2016 (GNMT), whose
    ``alpha = 0.6`` is the default here: without it, a beam favours short outputs, since each
    token adds a negative log-probability."""
    return logprob / length.clamp(min=1).to(logprob.dtype) ** alpha


@inference
def beam_search(model: Seq2SeqTransformer, src: Tensor, beam: int,
                max_new_tokens: int | None = None, alpha: float = 0.6) -> Tensor:
    """Batched beam search with the KV cache; returns ``(B, L)`` ids like :func:`greedy_decode`.

    Each input keeps ``beam`` hypotheses ranked by summed log-probability; a hypothesis that emits
    EOS is finished and keeps its score. The result is the hypothesis with the best
    length-normalised score (:func:`normalized_score`) among the finished ones and the greedy
    output, so it never scores below greedy decoding. ``beam=1`` is greedy decoding.
    """
    greedy = greedy_decode(model, src, max_new_tokens)
    if beam == 1:
        return greedy
    steps = decode_steps(max_new_tokens, src.size(1), model.cfg)
    B, K, dev = src.size(0), beam, src.device
    memory = model.encode(src).select(torch.arange(B, device=dev).repeat_interleave(K))
    scores = torch.full((B, K), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # all beams start identical: keep one
    tokens = torch.full((B * K, 1), BOS_ID, dtype=torch.long, device=dev)
    finished = torch.zeros(B * K, dtype=torch.bool, device=dev)
    for _ in range(steps):
        logits = model.decode(tokens[:, -1:], memory, use_cache=True)[:, -1].float()
        logp = torch.log_softmax(logits, dim=-1)  # (B*K, V)
        done = torch.full_like(logp, float("-inf"))
        done[:, PAD_ID] = 0.0  # a finished hypothesis can only continue with PAD, for free
        logp = torch.where(finished[:, None], done, logp)
        V = logp.size(-1)
        cand = (scores.view(B * K, 1) + logp).view(B, K * V)  # every hypothesis, every token
        scores, flat = cand.topk(K, dim=-1)  # (B, K): the K best continuations of each input
        parent = (flat // V) + torch.arange(B, device=dev)[:, None] * K  # (B, K): rows in B*K
        token = (flat % V).view(-1)  # (B*K,)
        rows = parent.view(-1)  # (B*K,): the hypothesis each new one continues
        memory = memory.select(rows)
        tokens = torch.cat([tokens[rows], token[:, None]], dim=1)
        finished = finished[rows] | (token == EOS_ID)
        if bool(finished.all()):
            break
    out = tokens[:, 1:].view(B, K, -1)
    norm = normalized_score(scores, output_length(out), alpha)
    norm = norm.masked_fill(~finished.view(B, K), float("-inf"))  # unfinished never win
    best = norm.argmax(dim=1)
    chosen = out[torch.arange(B, device=dev), best]  # (B, L)
    g_norm = normalized_score(sequence_logprob(model, src, greedy), output_length(greedy), alpha)
    use_greedy = g_norm >= norm[torch.arange(B, device=dev), best]
    width = max(chosen.size(1), greedy.size(1))
    chosen, greedy = (F.pad(t, (0, width - t.size(1)), value=PAD_ID) for t in (chosen, greedy))
    return _trim(torch.where(use_greedy[:, None], greedy, chosen))


def _trim(out: Tensor) -> Tensor:
    """Drop trailing all-PAD columns of ``out (B, L)`` (keeping at least one)."""
    used = (out != PAD_ID).any(dim=0).nonzero()  # (n, 1): the columns holding any token
    return out[:, :int(used.max()) + 1 if len(used) else 1]


# ----------------------------------------------------------------------------- strings
def batches_by_length(texts: list[str], batch_size: int,
                      cfg: ModelConfig) -> Iterator[tuple[list[int], Tensor]]:
    """Encode ``texts`` and yield ``(rows, src (B, S))`` batches of similar length: ``rows`` are
    indices into ``texts``, ``src`` their right-padded ``BOS x EOS`` ids. A text longer than
    the model supports is a ``ValueError`` naming it, raised before any batch is yielded."""
    tok = ByteTokenizer()
    encoded = [tok.encode(t) for t in texts]
    for n, ids in enumerate(encoded, 1):
        cfg.check_positions(len(ids) + 2, what=f"input {n}")  # BOS and EOS
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        yield rows, tok.pad_batch([encoded[i] for i in rows], bos=True, eos=True)[0]


def room_steps(max_new_tokens: int | Callable[[int], int] | None, src_tokens: int,
               cfg: ModelConfig) -> int | None:
    """The steps to allow for a batch of sources of ``src_tokens`` tokens: ``max_new_tokens``, or
    its value for that length if it is a function (a task's ``output_room``), within the
    model's positions; None (the decoders' default) stays None."""
    room = max_new_tokens(src_tokens) if callable(max_new_tokens) else max_new_tokens
    return None if room is None else min(room, cfg.max_new_tokens)


def text_list(texts: Any) -> list[str]:
    """``texts`` as a list of str (any iterable of them but a single str), else ``TypeError``."""
    try:
        texts = None if isinstance(texts, str | bytes) else list(texts)
    except TypeError:
        texts = None
    if texts is None or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be an iterable of str, such as a list (not one str)")
    return texts


def check_decoding_options(beam: Any, max_new_tokens: Any) -> None:
    """``beam`` an integer (NumPy's too, not a bool) in ``[1, MAX_BEAM]``; ``max_new_tokens``
    None, a function of the source length, or an integer of at least 1 (``TypeError`` or
    ``ValueError`` otherwise)."""
    if not isinstance(beam, Integral) or isinstance(beam, bool):
        raise TypeError(f"beam must be an int, got {beam!r}")
    if not 1 <= beam <= MAX_BEAM:
        raise ValueError(f"beam must be in [1, {MAX_BEAM}]")
    if max_new_tokens is None or callable(max_new_tokens):
        return
    if not isinstance(max_new_tokens, Integral) or isinstance(max_new_tokens, bool):
        raise TypeError(f"max_new_tokens must be an int, got {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")


def predict(model: Seq2SeqTransformer, texts: list[str],
            max_new_tokens: int | Callable[[int], int] | None = None, batch_size: int = 128,
            use_cache: bool = True, beam: int = 1) -> list[tuple[list[int], bool]]:
    """Output for each text, batched by similar length: ``(ids before EOS, ended)``, where
    ``ended`` is False when ``max_new_tokens`` ran out before EOS. Greedy unless ``beam > 1``.

    ``max_new_tokens`` is a number, or a function of a batch's source length in tokens (a
    task's ``output_room``), either kept within the model's positions; None: the decoders'
    default. ``use_cache`` applies to greedy decoding (beam search always uses the cache).
    ``batch_size`` rows are decoded at a time: ``batch_size // beam`` texts with beam search."""
    texts = text_list(texts)
    check_decoding_options(beam, max_new_tokens)
    device = next(model.parameters()).device
    results: list[tuple[list[int], bool]] = [([], False) for _ in texts]
    # beam search decodes ``beam`` rows per text: as many rows at a time as greedy decoding
    for rows, src in batches_by_length(texts, max(1, batch_size // beam), model.cfg):
        room = room_steps(max_new_tokens, src.size(1), model.cfg)
        if beam > 1:
            out = beam_search(model, src.to(device), beam, room)
        else:
            out = greedy_decode(model, src.to(device), room, use_cache=use_cache)
        for i, ids in zip(rows, out.tolist(), strict=True):
            ended = EOS_ID in ids
            results[i] = (ids[: ids.index(EOS_ID)] if ended else ids, ended)
    return results
