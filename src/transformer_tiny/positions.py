"""Position information: sinusoidal encodings, (randomized) position indices, rotary embeddings.

Every scheme works from integer position indices. The decoder token at step ``t`` carries
index ``t + 1`` (it predicts output token ``t + 1``, counting from 1); source token ``i`` of a
length-``n`` source (BOS and EOS included) carries two offsets, ``i`` from the start and
``n - 1 - i`` from the end, so that "the t-th token from either end" is equally easy to find.

* ``sinusoidal``: the sinusoids of Vaswani et al. (2017) of both offsets are added to the token
  embeddings (first half / second half of the features).
* ``randomized``: as ``sinusoidal``, but training draws the indices as a sorted random subset of
  ``[0, max_positions)`` (Ruoss et al., 2023), so indices far beyond the training lengths are seen.
* ``rope``: rotary embeddings (Su et al., 2021) in every attention, rotating feature pairs
  ``(2i, 2i+1)`` of each head; nothing is added to the embeddings. Attention scores then depend
  only on index differences, so they extend to lengths never seen in training. In
  cross-attention, half of the heads rotate keys by start offset and half by end offset.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .tokenizer import PAD_ID


def sinusoidal_encoding(index: Tensor, dim: int) -> Tensor:
    """Sinusoids of Vaswani et al.: ``(...)`` position indices -> ``(..., dim)`` features."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=index.device) * (-math.log(10_000.0) / half))
    angle = index.to(torch.float32)[..., None] * freq  # (..., dim/2)
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


def position_indices(n_tokens: int, batch: int, max_positions: int, randomized: bool,
                     device: torch.device) -> Tensor:
    """``(B, n_tokens)`` increasing position indices.

    Consecutive ``0..n-1``, or (``randomized``) per row a sorted random subset of a random window
    ``[o, o + R)`` of ``[0, max_positions)``, with ``R`` uniform in ``[n, max_positions]``, so that
    both sparse and dense (consecutive) index sets occur in training.
    """
    if n_tokens > max_positions:
        raise ValueError(f"sequence needs {n_tokens} positions but the model has {max_positions}")
    if not randomized:
        return torch.arange(n_tokens, device=device).expand(batch, n_tokens)
    M = max_positions
    width = torch.randint(n_tokens, M + 1, (batch, 1), device=device)  # R
    offset = (torch.rand(batch, 1, device=device) * (M - width + 1)).long()  # o
    j = torch.arange(M, device=device)[None]
    scores = torch.rand(batch, M, device=device).masked_fill((j < offset) | (j >= offset + width),
                                                             -1.0)
    return scores.topk(n_tokens, dim=-1).indices.sort(dim=-1).values


def offsets_from_end(index: Tensor, src: Tensor) -> Tensor:
    """``(B, S)`` end offsets: token ``i`` of a row of length ``n`` gets ``index[n - 1 - i]``."""
    n = (src != PAD_ID).sum(dim=1, keepdim=True)  # (B, 1)
    i = torch.arange(src.size(1), device=src.device)[None]  # (1, S)
    return index.gather(1, (n - 1 - i).clamp(min=0))


def additive_positions(start: Tensor, end: Tensor, d_model: int) -> Tensor:
    """Sinusoids of the start offset (first half) and end offset (second half): ``(B, T, C)``.

    For decoder tokens pass the same index as ``start`` and ``end``.
    """
    half = d_model // 2
    return torch.cat([sinusoidal_encoding(start, half), sinusoidal_encoding(end, half)], dim=-1)


class Rotation(NamedTuple):
    """Rotary angles as ``cos`` and ``sin``, each ``(B, T, 1 or nh, hs/2)``, and ``z``, the same
    as one complex tensor (None while exporting to ONNX, which has no complex type)."""

    cos: Tensor
    sin: Tensor
    z: Tensor | None


def rope_rotation(index: Tensor, head_size: int) -> Rotation:
    """Rotary embedding (Su et al., 2021) angles for ``(B, T)`` or ``(B, T, nh)`` indices."""
    if index.dim() == 2:
        index = index[..., None]  # (B, T, 1): the same for every head
    half = head_size // 2
    freq = torch.exp(torch.arange(half, device=index.device) * (-math.log(10_000.0) / half))
    angle = index.to(torch.float32)[..., None] * freq  # (B, T, nh|1, hs/2)
    cos, sin = angle.cos(), angle.sin()
    return Rotation(cos, sin, None if torch.onnx.is_in_onnx_export() else torch.complex(cos, sin))


def apply_rotation(x: Tensor, rot: Rotation) -> Tensor:
    """Rotate the feature pairs ``(x[2i], x[2i+1])`` of each head of ``x (B, T, nh, hs)``.

    A pair is a complex number and the rotation one complex multiply: a single kernel, several
    times faster than the real-valued formula, which is kept for ONNX export and for half
    precision (there is no complex bf16).
    """
    pairs = x.unflatten(-1, (-1, 2))  # (B, T, nh, hs/2, 2)
    if rot.z is not None and x.dtype in (torch.float32, torch.float64):
        return torch.view_as_real(torch.view_as_complex(pairs) * rot.z).flatten(-2)
    x0, x1 = pairs.unbind(-1)
    cos, sin = rot.cos, rot.sin
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2).type_as(x)


def two_way_rotation(start: Tensor, end: Tensor, n_heads: int, head_size: int) -> Rotation:
    """Cross-attention key rotation: the first half of the heads by start offset, the rest by
    end offset, so a head can find "the token t from the start" or "t from the end"."""
    split = n_heads // 2
    index = torch.stack([start] * split + [end] * (n_heads - split), dim=-1)  # (B, S, nh)
    return rope_rotation(index, head_size)
