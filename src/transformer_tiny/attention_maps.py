"""Cross-attention weights of a trained model, read without changing the model.

Forward hooks on each decoder layer's ``cross_attn`` capture the inputs it was called with (the
normalised decoder states, the memory keys and values, the source mask and the rotary angles);
the weights ``softmax(q kᵀ / √hs)`` are then recomputed from the module's own projection, with
the same rotation and mask. :func:`capture_cross_attention` also keeps each call's output, so
that ``out_proj(weights @ v)`` can be checked against what the model computed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from .attention import MultiHeadAttention, attention_weights
from .decoding import predict
from .model import Seq2SeqTransformer
from .positions import Rotation, utf8_length
from .tokenizer import BOS_ID, EOS_ID, ByteTokenizer


@dataclass
class CrossAttentionCall:
    """One decoder layer's cross-attention: weights ``(B, nh, T, S)`` and values
    ``(B, nh, S, hs)``, and the module's output ``(B, T, C)``."""

    weights: Tensor
    values: Tensor
    output: Tensor


def cross_attention_weights(module: MultiHeadAttention, x: Tensor, kv: tuple[Tensor, Tensor],
                            mask: Tensor | None, rot: Rotation | None) -> Tensor:
    """The weights of ``module``'s cross-attention for the call ``module(x, kv=kv, mask=mask,
    rot=rot)``: ``(B, nh, T, S)``, each row summing to 1 over the keys it may attend to."""
    return attention_weights(module.project_q(x, rot), kv[0], mask)


@contextmanager
def capture_cross_attention(model: Seq2SeqTransformer) -> Iterator[list[CrossAttentionCall]]:
    """While active, every decoder layer's cross-attention call appends a
    :class:`CrossAttentionCall` to the yielded list (in layer order for each decode step)."""
    calls: list[CrossAttentionCall] = []

    def hook(module: MultiHeadAttention, args: tuple, kwargs: dict, output: Tensor) -> None:
        call = inspect.signature(module.forward).bind(*args, **kwargs)
        call.apply_defaults()
        a = call.arguments
        if a["kv"] is None:
            return  # a self-attention call
        weights = cross_attention_weights(module, a["x"], a["kv"], a["mask"], a["rot"])
        calls.append(CrossAttentionCall(weights.detach(), a["kv"][1].detach(), output.detach()))

    handles = [layer.cross_attn.register_forward_hook(hook, with_kwargs=True)
               for layer in model.decoder]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _char_of(chunk: list[int]) -> str | None:
    """The one character whose UTF-8 bytes are ``chunk``, or None when they are not one (an
    empty chunk, a special id, invalid or incomplete UTF-8)."""
    if not chunk or any(c > 255 for c in chunk):
        return None
    try:
        char = bytes(chunk).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return char if len(char) == 1 else None


def token_labels(ids: list[int]) -> list[str]:
    """One short label per token id: the character a byte starts (``␣`` for a space), ``·`` for
    the continuation bytes of a multi-byte character, ``BOS``/``EOS``, or ``\\xNN``."""
    labels: list[str] = []
    sizes = utf8_length(torch.tensor(ids, dtype=torch.long)).tolist()
    i = 0
    while i < len(ids):
        b = ids[i]
        if b in (BOS_ID, EOS_ID):
            labels.append("BOS" if b == BOS_ID else "EOS")
            i += 1
            continue
        size = sizes[i]  # from the lead byte: 0 for a continuation byte
        char = _char_of(ids[i:i + size])
        if char is None:
            labels.append(f"\\x{b:02x}" if b < 256 else f"<{b}>")
            i += 1
            continue
        label = "␣" if char == " " else char if char.isprintable() else repr(char)[1:-1]
        labels.extend([label] + ["·"] * (size - 1))
        i += size
    return labels


@dataclass
class AttentionMaps:
    """Cross-attention of one input, for the output the model wrote greedily.

    ``weights (n_layers, nh, T, S)``: row ``t`` is the attention while writing output token ``t``
    (the last one is EOS when the output ended), column ``s`` is source token ``s`` (BOS, the
    bytes of the input, EOS).
    """

    text: str
    output: str
    weights: Tensor
    source_labels: list[str]
    output_labels: list[str]
    ended: bool


@torch.no_grad()
def cross_attention_maps(model: Seq2SeqTransformer, text: str,
                         max_new_tokens: int | Callable[[int], int] | None = None
                         ) -> AttentionMaps:
    """Decode ``text`` greedily, then recompute the cross-attention of every layer and head
    while the model reads its own output back (teacher forcing on the greedy output)."""
    tok = ByteTokenizer()
    was_training = model.training
    model.eval()
    try:
        [(out_ids, ended)] = predict(model, [text], max_new_tokens)
        device = next(model.parameters()).device
        src = tok.encode_batch([text], bos=True, eos=True)[0].to(device)
        # the decoder input that produced each output token (and EOS, if it came)
        fed = out_ids if ended else out_ids[:-1]
        tgt = torch.tensor([[BOS_ID, *fed]], device=device)
        with capture_cross_attention(model) as calls:
            model.decode(tgt, model.encode(src))
    finally:
        model.train(was_training)
    produced = [*out_ids, EOS_ID] if ended else out_ids
    weights = torch.stack([c.weights[0, :, : len(produced)] for c in calls]).float().cpu()
    return AttentionMaps(text, tok.decode(out_ids), weights, token_labels(src[0].tolist()),
                         token_labels(produced), ended)
