"""Decoding loops, kept apart from the model: greedy (with or without the KV cache).

All loops take a batch of right-padded sources ``(B, S)`` and return ``(B, L)`` generated ids
(BOS excluded); a row that emitted EOS is padded with PAD afterwards.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .model import Seq2SeqTransformer
from .tokenizer import BOS_ID, EOS_ID, PAD_ID


def default_max_new_tokens(model: Seq2SeqTransformer, src: Tensor) -> int:
    """Room for an output as long as the input plus a margin, within the model's positions."""
    return min(src.size(1) + 16, model.cfg.max_positions - 1)


@torch.no_grad()
def greedy_decode(model: Seq2SeqTransformer, src: Tensor, max_new_tokens: int | None = None,
                  use_cache: bool = True) -> Tensor:
    """Batched greedy decoding that stops each row at its EOS.

    ``use_cache=True`` feeds one token per step and reuses keys/values (O(n) work per step);
    ``False`` re-runs the decoder over the whole prefix at every step, as most tutorials do.
    """
    was_training = model.training
    model.eval()
    steps = max_new_tokens if max_new_tokens is not None else default_max_new_tokens(model, src)
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
        if bool(finished.all()):
            break
    model.train(was_training)
    return out[:, 1:]
