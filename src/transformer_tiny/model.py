"""A from-scratch encoder-decoder Transformer (pre-norm): layers, memory and the model.

How it reads and writes: :meth:`Seq2SeqTransformer.encode` embeds the input bytes and runs the
encoder layers (self-attention over the whole input, then a feed-forward network); the result,
with each decoder layer's cross-attention keys and values computed from it once, is the
:class:`Memory`. :meth:`~Seq2SeqTransformer.decode` embeds the output bytes so far and runs the
decoder layers: causal self-attention (a token sees itself and the tokens before it, never a
later one), cross-attention over the memory, a feed-forward network; a last linear layer gives
the logits of the next byte at every position. Training feeds the whole reference output at
once, shifted right by BOS ("teacher forcing"); decoding (:mod:`transformer_tiny.decoding`)
feeds one token at a time and keeps each layer's self-attention keys and values in a cache, so
that a step costs one token's work, not the whole prefix's.

Shapes: ``B`` batch rows, ``S`` input tokens, ``T`` decoder tokens, ``C`` = d_model, ``nh``
heads of ``hs`` = head_size (``C = nh * hs``), ``K`` entries of a position table, ``P`` =
max_positions.

Attention and masks (boolean, ``True`` = may attend) live in :mod:`transformer_tiny.attention`;
position schemes (sinusoidal, rope; either with randomized indices) in
:mod:`transformer_tiny.positions`.

Where it departs from the base model of Vaswani et al. (2017), "Attention is all you need":

- **pre-norm** layers (``x + Sublayer(LN(x))``, with a final norm after each stack), which train
  without a long warm-up;
- **GELU** in the feed-forward network instead of ReLU;
- **byte tokens with character positions**: a position counts characters, not bytes, and a
  second embedding (``byte_embed``) tells the bytes of one character apart by an offset in it
  (0-3): an input token's own offset; for a decoder token, that of the byte it predicts;
- **rotary positions** by default, and cross-attention keys placed from the start of the input
  for half of the heads and from its end for the other half (so "the t-th character from the
  end" is one fixed rotation, whatever the length);
- embeddings are not scaled by √d_model and not tied to the output layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from .attention import LayerCache, MultiHeadAttention, padding_mask
from .model_config import ModelConfig
from .positions import (
    CharState,
    Rotation,
    additive_positions,
    decoder_positions,
    exporting,
    position_indices,
    rope_rotation,
    rope_table,
    source_positions,
    two_way_rotation,
)
from .tokenizer import MAX_CHAR_BYTES, PAD_ID


# ----------------------------------------------------------------------------- layers
def dropout_layer(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or a no-op module when ``p == 0`` (one call less per use per step)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class FeedForward(nn.Module):
    """Position-wise feed-forward network: ``Linear(C, d_ff)``, GELU, ``Linear(d_ff, C)``."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class EncoderLayer(nn.Module):
    """Pre-norm: ``x + SelfAttn(LN(x))``, then ``x + FFN(LN(x))``; the attention is causal (left
    to right) if ``cfg.causal_encoder``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout, cfg.attention_impl)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff)
        self.drop = dropout_layer(cfg.dropout)  # on each sublayer's output, before the residual
        self.causal = cfg.causal_encoder

    def forward(self, x: Tensor, src_mask: Tensor | None, rot: Rotation | None = None) -> Tensor:
        """``x (B, S, C)`` -> ``(B, S, C)``; ``src_mask (B, 1, 1, S)``, True = a real token (None:
        no padding); ``rot``: the rope rotation of each token, ``(B, S, 1, hs/2)``."""
        x = x + self.drop(self.attn(self.norm1(x), mask=src_mask, causal=self.causal, rot=rot))
        return x + self.drop(self.ff(self.norm2(x)))


class DecoderLayer(nn.Module):
    """Pre-norm: causal self-attention, cross-attention over the memory, feed-forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout,
                                            cfg.attention_impl)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout,
                                             cfg.attention_impl)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff)
        self.drop = dropout_layer(cfg.dropout)  # on each sublayer's output, before the residual

    def forward(self, x: Tensor, memory_kv: tuple[Tensor, Tensor], src_mask: Tensor | None,
                cache: LayerCache | None = None, rot: Rotation | None = None) -> Tensor:
        """``x (B, T, C)`` -> ``(B, T, C)``. ``memory_kv``: this layer's cross-attention keys and
        values over the source, ``(B, nh, S, hs)`` each; ``src_mask (B, 1, 1, S)`` or None, as
        for :class:`EncoderLayer`; ``cache``: the self-attention keys and values of the tokens
        fed before (cached decoding); ``rot (B, T, 1, hs/2)``: the rope rotation."""
        # Causal self-attention needs no padding mask: targets are right-padded, so a real token
        # only sees real tokens before it, and the loss ignores the PAD positions' outputs. A single
        # new token (cached decoding) may see every earlier one: no mask at all.
        x = x + self.drop(self.self_attn(self.norm1(x), causal=x.size(1) > 1, cache=cache,
                                         rot=rot))
        x = x + self.drop(self.cross_attn(self.norm2(x), kv=memory_kv, mask=src_mask, rot=rot))
        return x + self.drop(self.ff(self.norm3(x)))


@dataclass
class Memory:
    """Encoder output and everything the decoder derives from it once per input.

    ``states (B, S, C)``; ``src_mask (B, 1, 1, S)``; ``cross_kv``: per decoder layer, the
    cross-attention keys and values ``(B, nh, S, hs)``; ``positions (B, K)``: the position
    indices shared with the decoder (randomized ones), None for the character indices
    themselves; ``caches``: per-layer self-attention caches for incremental decoding;
    ``length``: decoder tokens consumed so far; ``chars``: the character position reached (it
    places the next step's token); ``padded``: whether any source row is padded (if none is,
    attention over the source needs no mask at all; always True in an exported graph, which
    must handle padding).

    ``encode`` fills the first four and ``padded``; ``decode(..., use_cache=True)`` advances
    ``caches``, ``length`` and ``chars`` in place, so that one memory serves one decoding run.
    """

    states: Tensor
    src_mask: Tensor
    cross_kv: list[tuple[Tensor, Tensor]]
    positions: Tensor | None = None
    caches: list[LayerCache] = field(default_factory=list)
    length: int = 0
    chars: CharState | None = None
    padded: bool = True

    @property
    def attn_mask(self) -> Tensor | None:
        """The mask for attention over the source: ``src_mask``, or None if nothing is padded."""
        return self.src_mask if self.padded else None

    def select(self, rows: Tensor) -> Memory:
        """The same memory for batch rows ``rows`` (reordering, repeating or dropping rows)."""
        return Memory(
            self.states[rows], self.src_mask[rows],
            [(k[rows], v[rows]) for k, v in self.cross_kv],
            None if self.positions is None else self.positions[rows],
            [c.select(rows) for c in self.caches],
            self.length,
            None if self.chars is None else CharState(*(t[rows] for t in self.chars)),
            self.padded,
        )


# ----------------------------------------------------------------------------- model
class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer over byte ids (see the module docstring for conventions).

    ``forward(src (B, S), tgt (B, T)) -> logits (B, T, vocab)``, ``tgt`` the decoder input
    ``BOS y`` for a reference output ``y`` (trained to predict ``y EOS``; :mod:`.data`).
    ``encode`` and ``decode`` are separate so that decoding loops
    (``transformer_tiny.decoding``) can reuse the memory and, with ``use_cache=True``, feed one
    token at a time.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD_ID)
        # the embedding of a byte offset inside a character (0-3), not of a byte: an input
        # token's own offset; a decoder token's, that of the byte it predicts
        self.byte_embed = nn.Embedding(MAX_CHAR_BYTES, cfg.d_model)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_dec_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)  # the output layer: C -> logits
        self.drop = dropout_layer(cfg.dropout)
        table = rope_table(cfg.max_positions, cfg.head_size, cfg.rope_stride)  # (P, hs/2, 2)
        self.register_buffer("rope_cos_sin", table, persistent=False)  # rotary angles, not saved

    def _randomized(self) -> bool:
        return self.training and self.cfg.randomize_positions

    def _lookup(self, char: Tensor, positions: Tensor | None) -> Tensor:
        """Character indices ``(B, T)`` -> position indices: themselves, or entries of the
        (randomized) table ``positions (B, K)``."""
        return char if positions is None else positions.gather(1, char)

    def _embed(self, ids: Tensor, offset: Tensor) -> Tensor:
        """Token embedding plus the embedding of ``offset``, a byte offset inside a character
        (see ``byte_embed``). The positions functions give offsets 0-3; the clamp guards callers
        of :meth:`decode_at` (an exported decoder step) that pass their own."""
        return self.embed(ids) + self.byte_embed(offset.clamp(max=MAX_CHAR_BYTES - 1))

    def encode(self, src: Tensor, positions: Tensor | None = None) -> Memory:
        """``src (B, S)`` (BOS x EOS, right-padded) -> :class:`Memory`.

        ``positions (B, K >= S)``: position indices shared with the decoder, looked up by
        character index (the character indices themselves if None).
        """
        self.cfg.check_positions(src.size(1))
        char, from_end, offset = source_positions(src)  # (B, S) each
        start, end = self._lookup(char, positions), self._lookup(from_end, positions)  # (B, S)
        x = self._embed(src, offset)  # (B, S, C)
        rot = cross_rot = None
        if self.cfg.position_scheme == "rope":
            hs = self.cfg.head_size
            rot = rope_rotation(start, hs, self.rope_cos_sin)  # (B, S, 1, hs/2)
            cross_rot = two_way_rotation(start, end, self.cfg.n_heads, hs,
                                         self.rope_cos_sin)  # (B, S, nh, hs/2)
        else:
            x = x + additive_positions(start, end, self.cfg.d_model)
        x = self.drop(x)
        src_mask = padding_mask(src)  # (B, 1, 1, S), True = a real token
        padded = exporting() or not bool(src_mask.all())  # a graph must handle padding
        attn_mask = src_mask if padded else None  # no padding: attention needs no mask
        for layer in self.encoder:
            x = layer(x, attn_mask, rot)
        states = self.enc_norm(x)
        # Each decoder layer's cross-attention keys and values, (B, nh, S, hs) each: computed once
        # per input here rather than once per decoding step.
        cross_kv = [layer.cross_attn.project_kv(states, cross_rot) for layer in self.decoder]
        return Memory(states, src_mask, cross_kv, positions, padded=padded)

    def decode(self, tgt: Tensor, memory: Memory, use_cache: bool = False) -> Tensor:
        """``tgt (B, T)`` decoder ids -> logits ``(B, T, vocab)``.

        Without a cache ``tgt`` is the whole prefix (BOS first). With ``use_cache=True`` it holds
        only the tokens after those already fed (``memory.length`` of them); keys and values are
        kept in ``memory.caches``, the character position in ``memory.chars``.
        """
        T = tgt.size(1)
        fed = memory.length if use_cache else 0  # decoder tokens fed before these
        # The last of the T tokens predicts the next one, at position fed + T: T + 1 positions.
        self.cfg.check_positions(fed + T + 1, what="output")
        if use_cache and fed:  # one new token per row: the character state moves on by it
            if T > 1:
                raise ValueError("a cached decode step after the first takes one token per row")
            memory.chars = memory.chars.advance(tgt[:, 0])
            char, offset = (t[:, None] for t in memory.chars.predicted())  # (B, 1) each
        else:  # the whole prefix, BOS first
            char, offset = decoder_positions(tgt)  # (B, T) each
            if use_cache:
                memory.chars = CharState.of(tgt)
        logits = self.decode_at(tgt, char, offset, memory, use_cache)
        if use_cache:
            memory.length += T
        return logits

    def decode_at(self, tgt: Tensor, char: Tensor, offset: Tensor, memory: Memory,
                  use_cache: bool = False) -> Tensor:
        """:meth:`decode` with the positions given: ``char`` and ``offset (B, T)`` are the
        character index and byte offset of the token each step predicts
        (:func:`~transformer_tiny.positions.decoder_positions`)."""
        index = self._lookup(char, memory.positions)  # (B, T)
        x = self._embed(tgt, offset)  # (B, T, C)
        rot = None
        if self.cfg.position_scheme == "rope":
            rot = rope_rotation(index, self.cfg.head_size, self.rope_cos_sin)  # (B, T, 1, hs/2)
        else:
            x = x + additive_positions(index, index, self.cfg.d_model)
        x = self.drop(x)
        if use_cache and not memory.caches:
            memory.caches = [LayerCache() for _ in self.decoder]
        for i, layer in enumerate(self.decoder):
            x = layer(x, memory.cross_kv[i], memory.attn_mask,
                      memory.caches[i] if use_cache else None, rot)
        return self.head(self.dec_norm(x))

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher-forced logits ``(B, T, vocab)`` for ``src (B, S)`` and ``tgt (B, T)``."""
        self.cfg.check_positions(src.size(1))
        self.cfg.check_positions(tgt.size(1) + 1, what="output")  # as in decode
        # One table for both sides: rotary cross-attention compares a decoder token's position
        # with the input's, so both must be drawn from the same randomized indices.
        n = max(src.size(1), tgt.size(1) + 1)  # positions shared by the encoder and decoder
        positions = None  # the character indices themselves
        if self._randomized():
            positions = position_indices(n, src.size(0), self.cfg.max_positions,
                                         randomized=True, device=src.device)
        return self.decode(tgt, self.encode(src, positions))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
