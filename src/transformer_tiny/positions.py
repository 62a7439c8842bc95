"""Position information: sinusoidal encodings, (randomized) position indices, rotary embeddings.

Positions count **characters** (code points), not bytes: all the bytes of one character share
its index and carry their byte offset inside it (0-3; :func:`char_positions`). Source character
``i`` of a source of ``n`` characters (BOS and EOS included, BOS is 0) carries two offsets, ``i``
from the start and ``n - 1 - i`` from the end, so that "the t-th character from either end" is
equally easy to find. A decoder step carries the position of the byte it *predicts*
(:func:`decoder_positions`): for ASCII output, step ``t`` has index ``t + 1``. Both schemes
work from these integer indices.

* ``sinusoidal``: the sinusoids of Vaswani et al. (2017) of both offsets are added to the token
  embeddings (first half / second half of the features).
* ``rope``: rotary embeddings (Su et al., 2021) in every attention, rotating feature pairs
  ``(2i, 2i+1)`` of each head; nothing is added to the embeddings. Attention scores then depend
  only on index differences, so they extend to lengths never seen in training. In
  cross-attention, half of the heads rotate keys by start offset and half by end offset. Index
  ``p`` turns pair ``i`` by ``stride * p / 10000 ** (i / (hs / 2))`` (``rope_stride``).

With ``randomize_positions`` (either scheme), training draws the indices as a sorted random
subset of ``[0, max_positions)`` (Ruoss et al., 2023), so indices far beyond the training lengths
are seen.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .tokenizer import MAX_CHAR_BYTES, PAD_ID, VOCAB_SIZE


def exporting() -> bool:
    """Whether the model is being traced for ONNX export. The few branches that depend on it
    drop shortcuts a traced graph cannot keep: the all-ASCII fast path of character positions,
    complex rotary arithmetic (ONNX has no complex type), leaving out an all-True mask, and the
    KV cache's buffers written in place (attention.py)."""
    return torch.onnx.is_in_onnx_export()


def angles(index: Tensor, dim: int) -> Tensor:
    """``(...)`` position indices -> ``(..., dim/2)`` angles ``index / 10000 ** (i / (dim/2))``:
    the geometric frequencies that sinusoidal and rotary positions share."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=index.device) * (-math.log(10_000.0) / half))
    return index.to(torch.float32)[..., None] * freq


def sinusoidal_encoding(index: Tensor, dim: int) -> Tensor:
    """Sinusoids of Vaswani et al.: ``(...)`` position indices -> ``(..., dim)`` features. The
    frequencies are the paper's; the sines fill the first half and the cosines the second, where
    the paper interleaves them (a fixed permutation of the features, which the model learns
    around)."""
    angle = angles(index, dim)  # (..., dim/2)
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


def position_indices(n_tokens: int, batch: int, max_positions: int, randomized: bool,
                     device: torch.device) -> Tensor:
    """``(B, n_tokens)`` increasing position indices.

    Consecutive ``0..n-1``, or (``randomized``) per row a sorted random subset of a random window
    ``[o, o + R)`` of ``[0, max_positions)``, with ``R`` in ``[n, max_positions]``: for each row
    a coin flip picks ``R`` uniform (long gaps) or log-uniform (each doubling of the width
    equally likely: nearly consecutive indices), so that both occur in training however large
    ``max_positions`` is.
    """
    if n_tokens > max_positions:
        raise ValueError(f"n_tokens ({n_tokens}) must be <= max_positions ({max_positions})")
    if not randomized:
        return torch.arange(n_tokens, device=device).expand(batch, n_tokens)
    M = max_positions
    log_width = torch.rand(batch, 1, device=device) * math.log((M + 1) / n_tokens)
    log_uniform = (n_tokens * log_width.exp()).long().clamp(n_tokens, M)
    uniform = torch.randint(n_tokens, M + 1, (batch, 1), device=device)
    width = torch.where(torch.rand(batch, 1, device=device) < 0.5, uniform, log_uniform)  # R
    offset = (torch.rand(batch, 1, device=device) * (M - width + 1)).long()  # o
    # n sorted draws from [0, R - n], plus 0, 1, ..., n - 1: strictly increasing, inside [0, R).
    # (Cheaper than ranking M random keys; repeated draws, i.e. neighbours, are a little rarer
    # than in a uniformly random subset.)
    draws = (torch.rand(batch, n_tokens, device=device) * (width - n_tokens + 1)).long()
    return offset + draws.sort(dim=-1).values + torch.arange(n_tokens, device=device)


# Bytes of the character each id starts, read from its high bits: 1 for ASCII, 0 for
# continuation bytes (0x80-0xBF), 2-4 for lead bytes (0xC0-0xF7; 0xC0, 0xC1 and 0xF5-0xF7 never
# start valid UTF-8, but their length is still the one they declare), 1 for bytes 0xF8-0xFF,
# which declare no length, and for the special ids PAD, BOS and EOS.
_UTF8_LENGTH = torch.tensor([1] * 0x80 + [0] * 0x40 + [2] * 0x20 + [3] * 0x10 + [4] * 0x08
                            + [1] * 0x08 + [1] * (VOCAB_SIZE - 0x100))


def utf8_length(ids: Tensor) -> Tensor:
    """Bytes of the character that each id starts: 1 for ASCII, special ids and invalid bytes,
    2-4 for UTF-8 lead bytes, 0 for continuation bytes (``0x80..0xBF``)."""
    return _UTF8_LENGTH.to(ids.device)[ids]


def _back(x: Tensor, k: int) -> Tensor:
    """``x[:, t - k]`` for every ``t`` of ``x (B, T)``, 0 where ``t < k``: ``x`` shifted right."""
    if k == 0:
        return x
    return torch.cat([torch.zeros_like(x[:, :1]).expand(-1, k), x], dim=1)[:, :x.size(1)]


def char_positions(ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Character structure of ``(B, T)`` byte ids, each result ``(B, T)``.

    Returns the character index of each token (the first token is character 0), its byte offset
    inside that character, and how many more bytes its character expects (from the lead byte
    alone, so whether the *next* token continues it is known before that token is). A
    continuation byte beyond its lead's declared length counts as a character of its own. A
    character has at most 4 bytes, so looking back 3 tokens always finds what is needed (no scan
    over the sequence).

    For example ``BOS h é l 😀 EOS`` is the ids ``BOS 68 C3 A9 6C F0 9F 98 80 EOS``:

    - character index ``0 1 2 2 3 4 4 4 4 5``;
    - byte offset     ``0 0 0 1 0 0 1 2 3 0``;
    - bytes expected  ``0 0 1 0 0 3 2 1 0 0``.
    """
    declared = utf8_length(ids)
    if not exporting() and bool((declared == 1).all()):  # every token one character
        index = torch.arange(ids.size(1), device=ids.device).expand_as(ids)
        return index, torch.zeros_like(ids), torch.zeros_like(ids)
    # tokens back to the nearest byte that declares a length (a lead byte, ASCII, special id)
    lead_dist = torch.full_like(ids, MAX_CHAR_BYTES)
    lead_len = torch.zeros_like(ids)
    for k in reversed(range(MAX_CHAR_BYTES)):  # the nearest lead wins
        back = _back(declared, k)
        lead_dist = torch.where(back > 0, k, lead_dist)
        lead_len = torch.where(back > 0, back, lead_len)
    start = (lead_dist == 0) | (lead_dist >= lead_len)
    offset, start_len = torch.zeros_like(ids), torch.zeros_like(ids)
    for k in reversed(range(MAX_CHAR_BYTES)):  # the nearest character start wins
        hit = _back(start.long(), k) > 0
        offset = torch.where(hit, k, offset)
        start_len = torch.where(hit, _back(declared, k), start_len)
    return start.long().cumsum(dim=1) - 1, offset, (start_len - offset - 1).clamp(min=0)


def _predicted(char: Tensor, offset: Tensor, remaining: Tensor) -> tuple[Tensor, Tensor]:
    """Position of the token after one at ``(char, offset)`` whose character expects
    ``remaining`` more bytes: the next byte of that character, or the first of a new one."""
    more = remaining > 0
    return torch.where(more, char, char + 1), torch.where(more, offset + 1, 0)


def decoder_positions(tgt: Tensor) -> tuple[Tensor, Tensor]:
    """``(B, T)`` decoder input ids (BOS first) -> character index and byte offset ``(B, T)`` of
    the token each step *predicts*. BOS is character 0, so the first output character is 1."""
    return _predicted(*char_positions(tgt))


class CharState(NamedTuple):
    """Where cached decoding stands, each ``(B,)``: the character index and byte offset of the
    last token fed, and the bytes its character still expects."""

    char: Tensor
    offset: Tensor
    remaining: Tensor

    @classmethod
    def of(cls, ids: Tensor) -> CharState:
        """The state after feeding ``ids (B, T)`` (BOS first)."""
        return cls(*(t[:, -1] for t in char_positions(ids)))

    def advance(self, token: Tensor) -> CharState:
        """The state after feeding one more token per row, ``token (B,)``; equal to
        ``CharState.of`` of the longer sequence, in a handful of operations."""
        length = utf8_length(token)
        cont = (length == 0) & (self.remaining > 0)
        return CharState(torch.where(cont, self.char, self.char + 1),
                         torch.where(cont, self.offset + 1, 0),
                         torch.where(cont, self.remaining - 1, (length - 1).clamp(min=0)))

    def predicted(self) -> tuple[Tensor, Tensor]:
        """Character index and byte offset ``(B,)`` of the token the next step predicts."""
        return _predicted(*self)


def source_positions(src: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(B, S)`` right-padded source ids (BOS x EOS) -> per token its character index from the
    start, its character offset from the end (EOS is 0) and its byte offset in its character."""
    char, offset, _ = char_positions(src)
    last = ((src != PAD_ID).sum(dim=1, keepdim=True) - 1).clamp(min=0)  # (B, 1): where EOS is
    return char, (char.gather(1, last) - char).clamp(min=0), offset


def additive_positions(start: Tensor, end: Tensor, d_model: int) -> Tensor:
    """Sinusoids of the start offset (first half) and end offset (second half): ``(B, T, C)``.

    For decoder tokens pass the same index as ``start`` and ``end``.
    """
    half = d_model // 2
    return torch.cat([sinusoidal_encoding(start, half), sinusoidal_encoding(end, half)], dim=-1)


class Rotation(NamedTuple):
    """Rotary angles as ``cos`` and ``sin``, each ``(B, T, 1 or nh, hs/2)``, and ``z``, the same
    as one complex tensor. ``z`` is None while exporting to ONNX, which has no complex type, and
    for a table in lower precision than float32 (bfloat16 has no complex type); then
    :func:`apply_rotation` uses ``cos`` and ``sin``."""

    cos: Tensor
    sin: Tensor
    z: Tensor | None


def rope_table(n_positions: int, head_size: int, stride: int = 1) -> Tensor:
    """``(n_positions, hs/2, 2)``: cosine and sine of every rotary angle, computed once per model
    so that decoding steps look them up. Position ``p`` turns as :func:`rope_rotation` of index
    ``stride * p``: a stride above 1 turns every feature pair faster per character."""
    index = torch.arange(n_positions)[None] * stride  # (1, n)
    cos, sin, _ = rope_rotation(index, head_size)  # (1, n, 1, hs/2)
    return torch.stack([cos[0, :, 0], sin[0, :, 0]], dim=-1)


def rope_rotation(index: Tensor, head_size: int, table: Tensor | None = None) -> Rotation:
    """Rotary embedding (Su et al., 2021) angles for ``(B, T)`` or ``(B, T, nh)`` indices,
    looked up in ``table`` (:func:`rope_table`, whose stride multiplies the index) if given;
    otherwise computed for the index itself, as a table of stride 1 would give them."""
    if index.dim() == 2:
        index = index[..., None]  # (B, T, 1): the same for every head
    if table is not None:
        cos_sin = table[index]  # (B, T, nh|1, hs/2, 2)
        cos, sin = cos_sin.unbind(-1)
        exact = cos_sin.dtype in (torch.float32, torch.float64)
        return Rotation(cos, sin, torch.view_as_complex(cos_sin) if exact and not exporting()
                        else None)
    angle = angles(index, head_size)  # (B, T, nh|1, hs/2)
    cos, sin = angle.cos(), angle.sin()
    return Rotation(cos, sin, None if exporting() else torch.complex(cos, sin))


def apply_rotation(x: Tensor, rot: Rotation) -> Tensor:
    """Rotate the feature pairs ``(x[2i], x[2i+1])`` of each head of ``x (B, T, nh, hs)``.

    A pair is a complex number and the rotation one complex multiply: a single kernel, faster
    than the real-valued formula, which is kept for ONNX export and for half precision (there
    is no complex bf16).
    """
    pairs = x.unflatten(-1, (-1, 2))  # (B, T, nh, hs/2, 2)
    if rot.z is not None and x.dtype in (torch.float32, torch.float64):
        return torch.view_as_real(torch.view_as_complex(pairs) * rot.z).flatten(-2)
    x0, x1 = pairs.unbind(-1)
    cos, sin = rot.cos, rot.sin
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2).type_as(x)


def end_heads(n_heads: int) -> range:
    """The cross-attention heads whose keys are rotated by offsets from the end of the input
    (the second half); the others count from its start."""
    return range(n_heads // 2, n_heads)


def two_way_rotation(start: Tensor, end: Tensor, n_heads: int, head_size: int,
                     table: Tensor | None = None) -> Rotation:
    """Cross-attention key rotation: the heads before :func:`end_heads` by start offset, those
    by end offset, so a head can find "the token t from the start" or "t from the end"."""
    split = end_heads(n_heads).start
    index = torch.stack([start] * split + [end] * (n_heads - split), dim=-1)  # (B, S, nh)
    return rope_rotation(index, head_size, table)
