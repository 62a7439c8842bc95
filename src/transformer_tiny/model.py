"""A from-scratch encoder-decoder Transformer (pre-norm), in one file.

Mask convention, used everywhere: a **boolean** tensor broadcastable to ``(B, nh, T_q, T_k)``,
``True`` = "this query may attend to this key". Masks are built only by :func:`padding_mask` and
:func:`subsequent_mask`. A query row with no allowed key outputs zeros, never NaN.

Position schemes (sinusoidal, randomized, rope) live in :mod:`transformer_tiny.positions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .positions import (
    MAX_CHAR_BYTES,
    CharState,
    Rotation,
    additive_positions,
    apply_rotation,
    decoder_positions,
    position_indices,
    rope_rotation,
    source_positions,
    two_way_rotation,
)
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
    :func:`subsequent_mask`. ``impl="sdpa"`` calls the fused kernel; ``"math"`` spells it out;
    ``"auto"`` takes the fused kernel on GPU and the explicit one on CPU, where at these sizes
    (head size 32, a few dozen tokens) it trains about 1.3x faster than the fused kernel.
    """
    if causal and mask is not None:  # both: fold the causal part into the mask
        mask = mask & subsequent_mask(k.size(-2), q.device)[..., -q.size(-2):, :]
        causal = False
    if impl == "sdpa" or (impl == "auto" and q.device.type != "cpu"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,
                                              is_causal=causal)
    if causal:
        mask = subsequent_mask(k.size(-2), q.device)[..., -q.size(-2):, :]
    scores = (q / math.sqrt(q.size(-1))) @ k.transpose(-2, -1)  # (B, nh, Tq, Tk)
    if mask is not None:  # in place: the product is not needed for the backward pass
        scores += torch.zeros(mask.shape, dtype=scores.dtype, device=q.device).masked_fill_(
            ~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if mask is not None:  # rows with no allowed key: softmax gave NaN, make them zero
        empty = ~mask.any(dim=-1, keepdim=True)
        if empty.any():
            probs = probs.masked_fill(empty, 0.0)
    probs = F.dropout(probs, p=dropout_p, training=dropout_p > 0)
    return probs @ v  # (B, nh, Tq, hs)


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

    def project_kv(self, context: Tensor, rot: Rotation | None = None) -> tuple[Tensor, Tensor]:
        """Keys (rotated by ``rot`` if given) and values of ``context (B, S, C)``, each
        ``(B, nh, S, hs)``."""
        d = context.size(-1)
        k, v = (self._split(t) for t in F.linear(context, self.in_proj.weight[d:],
                                                  self.in_proj.bias[d:]).split(d, dim=-1))
        k = k if rot is None else apply_rotation(k, rot)
        # Contiguous once per input, so that no decoding step copies them again.
        return k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor] | None = None,
                mask: Tensor | None = None, causal: bool = False,
                cache: LayerCache | None = None, rot: Rotation | None = None) -> Tensor:
        """``x (B, T, C)`` -> ``(B, T, C)``.

        Self-attention when ``kv`` is None (keys/values from ``x``, appended to ``cache`` if given);
        cross-attention over precomputed ``kv`` otherwise. ``rot`` rotates the queries (and the
        self-attention keys) for the rope position scheme.
        """
        B, T, C = x.shape
        if kv is None:
            qkv = self.in_proj(x).unflatten(-1, (3 * self.n_heads, -1))  # (B, T, 3 nh, hs)
            qk, v = qkv.split([2 * self.n_heads, self.n_heads], dim=2)
            if rot is not None:  # queries and keys of one token share their angle
                qk = apply_rotation(qk, rot)
            q, k = (t.transpose(1, 2) for t in qk.chunk(2, dim=2))  # (B, nh, T, hs)
            v = v.transpose(1, 2)
            if cache is not None:
                k, v = cache.append(k, v)
        else:
            q = self._split(F.linear(x, self.in_proj.weight[:C], self.in_proj.bias[:C]))
            q = (q if rot is None else apply_rotation(q, rot)).transpose(1, 2)
            k, v = kv
        p = self.dropout if self.training else 0.0
        y = attention(q, k, v, mask=mask, causal=causal, dropout_p=p, impl=self.impl)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


# ----------------------------------------------------------------------------- layers
class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model),
                                 nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class EncoderLayer(nn.Module):
    """Pre-norm: ``x + SelfAttn(LN(x))``, then ``x + FFN(LN(x))``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout, cfg.attention_impl)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, src_mask: Tensor, rot: Rotation | None = None) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask=src_mask, rot=rot))
        return x + self.ff(self.norm2(x))


class DecoderLayer(nn.Module):
    """Pre-norm: causal self-attention, cross-attention over the memory, feed-forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout,
                                            cfg.attention_impl)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout,
                                             cfg.attention_impl)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, memory_kv: tuple[Tensor, Tensor], src_mask: Tensor,
                cache: LayerCache | None = None, rot: Rotation | None = None) -> Tensor:
        # A single new token (cached decoding) may see every earlier one: no mask needed.
        x = x + self.drop(self.self_attn(self.norm1(x), causal=x.size(1) > 1, cache=cache,
                                         rot=rot))
        x = x + self.drop(self.cross_attn(self.norm2(x), kv=memory_kv, mask=src_mask, rot=rot))
        return x + self.ff(self.norm3(x))


# ----------------------------------------------------------------------------- cache
@dataclass
class LayerCache:
    """Self-attention keys and values seen so far by one decoder layer, ``(B, nh, T, hs)``."""

    k: Tensor | None = None
    v: Tensor | None = None

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


@dataclass
class Memory:
    """Encoder output and everything the decoder derives from it once per input.

    ``states (B, S, C)``; ``src_mask (B, 1, 1, S)``; ``cross_kv``: per decoder layer, the
    cross-attention keys and values ``(B, nh, S, hs)``; ``caches``: per-layer self-attention caches
    for incremental decoding; ``length``: decoder tokens consumed so far; ``chars``: the
    character position reached (it places the next step's token).
    """

    states: Tensor
    src_mask: Tensor
    cross_kv: list[tuple[Tensor, Tensor]]
    positions: Tensor | None = None
    caches: list[LayerCache] = field(default_factory=list)
    length: int = 0
    chars: CharState | None = None

    def select(self, rows: Tensor) -> Memory:
        """The same memory for batch rows ``rows`` (reordering, repeating or dropping rows)."""
        return Memory(
            self.states[rows], self.src_mask[rows],
            [(k[rows], v[rows]) for k, v in self.cross_kv],
            None if self.positions is None else self.positions[rows],
            [LayerCache(c.k[rows], c.v[rows]) if c.k is not None else LayerCache()
             for c in self.caches],
            self.length,
            None if self.chars is None else CharState(*(t[rows] for t in self.chars)),
        )


# ----------------------------------------------------------------------------- model
class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer over byte ids (see the module docstring for conventions).

    ``forward(src (B, S), tgt_in (B, T)) -> logits (B, T, vocab)``. ``encode`` and ``decode`` are
    separate so that decoding loops (``transformer_tiny.decoding``) can reuse the memory and, with
    ``use_cache=True``, feed one token at a time.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD_ID)
        self.byte_embed = nn.Embedding(MAX_CHAR_BYTES, cfg.d_model)  # offset inside a character
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_dec_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.drop = nn.Dropout(cfg.dropout)

    def _randomized(self) -> bool:
        return self.training and self.cfg.randomize_positions

    def check_length(self, n_positions: int) -> None:
        """Raise ``ValueError`` if a sequence needs more positions than the model has."""
        if n_positions > self.cfg.max_positions:
            raise ValueError(f"input too long: needs {n_positions} positions, the model supports "
                             f"{self.cfg.max_positions} ({self.cfg.max_source_tokens} bytes)")

    def _lookup(self, char: Tensor, positions: Tensor | None) -> Tensor:
        """Character indices ``(B, T)`` -> position indices: themselves, or entries of the
        (randomized) table ``positions (B, K)``."""
        return char if positions is None else positions.gather(1, char)

    def _embed(self, ids: Tensor, offset: Tensor) -> Tensor:
        """Token embedding plus the embedding of each byte's offset inside its character."""
        return self.embed(ids) + self.byte_embed(offset.clamp(max=MAX_CHAR_BYTES - 1))

    def encode(self, src: Tensor, positions: Tensor | None = None) -> Memory:
        """``src (B, S)`` (BOS x EOS, right-padded) -> :class:`Memory`.

        ``positions (B, K >= S)``: position indices shared with the decoder, looked up by
        character index (the character indices themselves if None).
        """
        self.check_length(src.size(1))
        char, from_end, offset = source_positions(src)  # (B, S) each
        start, end = self._lookup(char, positions), self._lookup(from_end, positions)
        x = self._embed(src, offset)  # (B, S, C)
        rot = cross_rot = None
        if self.cfg.position_scheme == "rope":
            hs = self.cfg.d_model // self.cfg.n_heads
            rot = rope_rotation(start, hs)
            cross_rot = two_way_rotation(start, end, self.cfg.n_heads, hs)
        else:
            x = x + additive_positions(start, end, self.cfg.d_model)
        x = self.drop(x)
        src_mask = padding_mask(src)  # (B, 1, 1, S)
        for layer in self.encoder:
            x = layer(x, src_mask, rot)
        states = self.enc_norm(x)
        cross_kv = [layer.cross_attn.project_kv(states, cross_rot) for layer in self.decoder]
        return Memory(states, src_mask, cross_kv, positions)

    def decode(self, tgt: Tensor, memory: Memory, use_cache: bool = False) -> Tensor:
        """``tgt (B, T)`` decoder ids -> logits ``(B, T, vocab)``.

        Without a cache ``tgt`` is the whole prefix (BOS first). With ``use_cache=True`` it holds
        only the tokens after those already fed (``memory.length`` of them); keys and values are
        kept in ``memory.caches``, the character position in ``memory.chars``.
        """
        T = tgt.size(1)
        start = memory.length if use_cache else 0
        self.check_length(start + T + 1)
        if not use_cache or start == 0:
            char, offset = decoder_positions(tgt)  # (B, T) each
            if use_cache:
                memory.chars = CharState.of(tgt)
        elif T > 1:
            raise ValueError("a cached decode step after the first takes one token per row")
        else:
            memory.chars = memory.chars.advance(tgt[:, 0])
            char, offset = (t[:, None] for t in memory.chars.predicted())
        logits = self.decode_at(tgt, char, offset, memory, use_cache)
        if use_cache:
            memory.length += T
        return logits

    def decode_at(self, tgt: Tensor, char: Tensor, offset: Tensor, memory: Memory,
                  use_cache: bool = False) -> Tensor:
        """:meth:`decode` with the positions given: ``char`` and ``offset (B, T)`` are the
        character index and byte offset of the token each step predicts
        (:func:`~transformer_tiny.positions.decoder_positions`)."""
        index = self._lookup(char, memory.positions)
        x = self._embed(tgt, offset)  # (B, T, C)
        rot = None
        if self.cfg.position_scheme == "rope":
            rot = rope_rotation(index, self.cfg.d_model // self.cfg.n_heads)
        else:
            x = x + additive_positions(index, index, self.cfg.d_model)
        x = self.drop(x)
        if use_cache and not memory.caches:
            memory.caches = [LayerCache() for _ in self.decoder]
        for i, layer in enumerate(self.decoder):
            x = layer(x, memory.cross_kv[i], memory.src_mask,
                      memory.caches[i] if use_cache else None, rot)
        return self.head(self.dec_norm(x))

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher-forced logits ``(B, T, vocab)`` for ``src (B, S)`` and ``tgt (B, T)``."""
        n = max(src.size(1), tgt.size(1) + 1)
        self.check_length(n)
        positions = position_indices(n, src.size(0), self.cfg.max_positions, True, src.device) \
            if self._randomized() else None
        return self.decode(tgt, self.encode(src, positions))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
