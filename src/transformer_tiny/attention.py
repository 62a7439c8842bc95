"""Attention, and the one place where masks are built.

Mask convention, used everywhere: a **boolean** tensor broadcastable to ``(B, nh, T_q, T_k)``,
``True`` = "this query may attend to this key"; ``None`` = no restriction. Masks are built only by
:func:`padding_mask` and :func:`subsequent_mask`. A query row with no allowed key outputs zeros,
never NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .positions import Rotation, apply_rotation, exporting
from .tokenizer import PAD_ID


# ----------------------------------------------------------------------------- masks
def padding_mask(ids: Tensor) -> Tensor:
    """``(B, T)`` ids -> ``(B, 1, 1, T)`` bool mask, True where the key is not PAD."""
    return (ids != PAD_ID)[:, None, None, :]


def subsequent_mask(size: int, device: torch.device | None = None) -> Tensor:
    """``(1, 1, T, T)`` bool mask, True where key position <= query position (causal)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()[None, None]


# ----------------------------------------------------------------------------- attention
def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False,
              dropout_p: float = 0.0, impl: str = "auto") -> Tensor:
    """Scaled dot-product attention. ``q (B, nh, Tq, hs)``, ``k, v (B, nh, Tk, hs)``.

    ``mask``: bool, broadcastable to ``(B, nh, Tq, Tk)``, True = may attend. ``causal`` adds
    :func:`subsequent_mask`, with the queries taken as the last ``Tq`` of the ``Tk`` positions.
    ``impl="sdpa"`` calls the fused kernel; ``"math"`` spells it out; ``"auto"`` takes the fused
    kernel, except for training on CPU: there, at this model's sizes (small heads, a few dozen
    tokens), the explicit path's backward pass is the faster one. For inference the fused kernel
    wins on CPU too: one call instead of several per decoding step (docs/design.md, "Training and
    decoding speed").
    """
    Tq, Tk = q.size(-2), k.size(-2)
    cpu_training = q.device.type == "cpu" and torch.is_grad_enabled() and q.requires_grad
    fused = impl == "sdpa" or (impl == "auto" and not cpu_training)
    # The fused kernel's is_causal flag covers only a square (Tq == Tk) attention with no other
    # mask; anything else gets the causal mask built here and combined with ``mask``.
    if causal and not (fused and mask is None and Tq == Tk):
        # the queries are the last Tq positions: query i sees keys 0 .. Tk - Tq + i
        causal_mask = subsequent_mask(Tk, q.device)[..., -Tq:, :]
        mask, causal = causal_mask if mask is None else mask & causal_mask, False
    if fused:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,
                                              is_causal=causal)
    probs = attention_weights(q, k, mask)  # (B, nh, Tq, Tk)
    if dropout_p > 0:
        probs = F.dropout(probs, p=dropout_p)
    return probs @ v  # (B, nh, Tq, hs)


def attention_weights(q: Tensor, k: Tensor, mask: Tensor | None = None) -> Tensor:
    """``softmax(q kᵀ / √hs)`` over the keys each query may attend to: ``(B, nh, Tq, Tk)``
    (``mask`` as for :func:`attention`). A query with no allowed key gets all-zero weights."""
    scores = q @ k.transpose(-2, -1)  # (B, nh, Tq, Tk)
    scale = 1.0 / math.sqrt(q.size(-1))
    if mask is None:
        return torch.softmax(scores * scale, dim=-1)
    # scores * scale + bias, with bias 0 where allowed and -inf where not: one pass over scores
    bias = torch.zeros(mask.shape, dtype=scores.dtype, device=q.device)
    scores = torch.add(bias.masked_fill_(~mask, float("-inf")), scores, alpha=scale)
    empty = ~mask.any(dim=-1, keepdim=True)  # rows with no allowed key
    if not empty.any():
        return torch.softmax(scores, dim=-1)
    # softmax of an all -inf row is NaN, and so would be its gradients: those rows are zeros
    return torch.softmax(scores.masked_fill(empty, 0.0), dim=-1).masked_fill(empty, 0.0)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with a fused input projection laid out like
    ``nn.MultiheadAttention.in_proj_weight`` (rows: query, key, value)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, impl: str = "auto"):
        super().__init__()
        self.n_heads, self.dropout, self.impl = n_heads, dropout, impl
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _split(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, nh, hs), a view
        return x.unflatten(-1, (self.n_heads, -1))

    def project_q(self, x: Tensor, rot: Rotation | None = None) -> Tensor:
        """Cross-attention queries of ``x (B, T, C)`` (rotated by ``rot`` if given),
        ``(B, nh, T, hs)``."""
        C = x.size(-1)
        q = self._split(F.linear(x, self.in_proj.weight[:C], self.in_proj.bias[:C]))
        return (q if rot is None else apply_rotation(q, rot)).transpose(1, 2)

    def project_kv(self, context: Tensor, rot: Rotation | None = None) -> tuple[Tensor, Tensor]:
        """Keys (rotated by ``rot`` if given) and values of ``context (B, S, C)``, each
        ``(B, nh, S, hs)``."""
        d = context.size(-1)
        kv = F.linear(context, self.in_proj.weight[d:], self.in_proj.bias[d:])  # (B, S, 2C)
        k, v = (self._split(t) for t in kv.split(d, dim=-1))  # (B, S, nh, hs) each
        k = k if rot is None else apply_rotation(k, rot)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        if torch.is_grad_enabled():  # training: a copy would cost more than it saves
            return k, v
        return k.contiguous(), v.contiguous()  # once per input, not once per decoding step

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor] | None = None,
                mask: Tensor | None = None, causal: bool = False,
                cache: LayerCache | None = None, rot: Rotation | None = None) -> Tensor:
        """``x (B, T, C)`` -> ``(B, T, C)``.

        Self-attention when ``kv`` is None (keys/values from ``x``, appended to ``cache`` if given);
        cross-attention over precomputed ``kv``, keys and values ``(B, nh, S, hs)``
        (:meth:`project_kv`), otherwise. ``mask``: bool, broadcastable to ``(B, nh, T, T_k)``,
        True = may attend (a padding mask ``(B, 1, 1, S)`` for the source). ``causal``: each
        query sees only the keys up to its own position, the queries being the last ``T`` keys
        (so a cached step sees the whole past). ``rot``: the rope rotation of the queries (and of
        the self-attention keys), ``(B, T, 1 or nh, hs/2)``.
        """
        B, T, C = x.shape
        if kv is None:
            qkv = self.in_proj(x).unflatten(-1, (3 * self.n_heads, -1))  # (B, T, 3 nh, hs)
            qk, v = qkv.split([2 * self.n_heads, self.n_heads], dim=2)  # (B, T, 2 nh | nh, hs)
            if rot is not None:  # queries and keys of one token share their angle
                qk = apply_rotation(qk, rot)
            q, k = (t.transpose(1, 2) for t in qk.chunk(2, dim=2))  # (B, nh, T, hs)
            v = v.transpose(1, 2)
            if cache is not None:
                k, v = cache.append(k, v)  # (B, nh, T_past + T, hs): so Tq < Tk
        else:
            q, (k, v) = self.project_q(x, rot), kv
        p = self.dropout if self.training else 0.0
        y = attention(q, k, v, mask=mask, causal=causal, dropout_p=p, impl=self.impl)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))  # heads joined: (B, T, C)


# ----------------------------------------------------------------------------- cache
class LayerCache:
    """Self-attention keys and values seen so far by one decoder layer, ``k`` and ``v`` of shape
    ``(B, nh, T, hs)``.

    They live in buffers that double when full, so that decoding T tokens copies O(T) values
    rather than the O(T^2) of concatenating at every step. With gradients on, or while tracing
    for ONNX, ``append`` concatenates instead: writing into a buffer in place would break both.
    """

    def __init__(self, k: Tensor | None = None, v: Tensor | None = None):
        self._k, self._v = k, v  # (B, nh, capacity, hs)
        self.length = 0 if k is None else k.size(2)

    @property
    def k(self) -> Tensor | None:
        return None if self._k is None else self._k[:, :, :self.length]

    @property
    def v(self) -> Tensor | None:
        return None if self._v is None else self._v[:, :, :self.length]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add ``(B, nh, t, hs)`` keys and values; returns all of them so far."""
        n, t = self.length, k.size(2)
        if self._k is None or torch.is_grad_enabled() or exporting():
            self._k, self._v = (new if old is None else torch.cat([old, new], dim=2)
                                for old, new in ((self.k, k), (self.v, v)))
        else:
            if n + t > self._k.size(2):
                self._k, self._v = (_grown(buf, n, max(2 * buf.size(2), n + t))
                                    for buf in (self._k, self._v))
            self._k[:, :, n:n + t], self._v[:, :, n:n + t] = k, v
        self.length = n + t
        return self.k, self.v

    def select(self, rows: Tensor) -> LayerCache:
        """The cache of batch rows ``rows``, its buffers' spare room kept (beam search reorders
        rows at every step; without the room, every next ``append`` would grow them again)."""
        out = LayerCache()
        if self._k is not None:
            out._k, out._v, out.length = self._k[rows], self._v[rows], self.length
        return out


def _grown(buf: Tensor, n: int, capacity: int) -> Tensor:
    """A buffer like ``buf`` with room for ``capacity`` steps, holding its first ``n``."""
    out = buf.new_empty(*buf.shape[:2], capacity, buf.size(3))
    out[:, :, :n] = buf[:, :, :n]
    return out
