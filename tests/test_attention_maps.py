"""Cross-attention weights recomputed from the model's own modules, and the labels of their
tokens."""

from __future__ import annotations

import pytest
import torch
from helpers import chain_model, make_model, source_batch, target_batch

from transformer_tiny.attention import MultiHeadAttention
from transformer_tiny.attention_maps import (
    CrossAttentionCall,
    _char_of,
    capture_cross_attention,
    cross_attention_maps,
    token_labels,
)
from transformer_tiny.decoding import greedy_decode
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID


def recombined(call: CrossAttentionCall, module: MultiHeadAttention) -> torch.Tensor:
    """``out_proj`` of the heads' recorded ``weights @ values``: the module's output if the
    weights are the ones it used."""
    y = call.weights @ call.values  # (B, nh, T, hs)
    return module.out_proj(y.transpose(1, 2).flatten(2))


@pytest.mark.parametrize("scheme", ["rope", "sinusoidal"])
def test_weights_reproduce_the_attention_output(scheme):
    model = make_model(position_scheme=scheme, n_dec_layers=2)
    src, tgt = source_batch([5, 11, 2]), target_batch([4, 7, 1])
    with capture_cross_attention(model) as calls:
        model(src, tgt)
    assert len(calls) == len(model.decoder)
    for layer, call in zip(model.decoder, calls, strict=True):
        torch.testing.assert_close(recombined(call, layer.cross_attn), call.output,
                                   rtol=1e-10, atol=1e-10)
        ones = torch.ones(call.weights.shape[:-1], dtype=call.weights.dtype)
        torch.testing.assert_close(call.weights.sum(-1), ones)
        padded = (src == PAD_ID)[:, None, None, :].expand_as(call.weights)
        assert (call.weights[padded] == 0).all()  # no weight on PAD keys
    assert all(not layer.cross_attn._forward_hooks for layer in model.decoder)  # hooks removed


def test_weights_match_cached_decoding_step_by_step():
    model = make_model()
    src = source_batch([6, 3])
    with capture_cross_attention(model) as calls:
        greedy_decode(model, src, max_new_tokens=4, use_cache=True)
    assert len(calls) == 4 * len(model.decoder)  # one per layer per step
    for i, call in enumerate(calls):
        layer = model.decoder[i % len(model.decoder)]
        torch.testing.assert_close(recombined(call, layer.cross_attn), call.output)


def test_maps_of_one_input():
    model = make_model()
    maps = cross_attention_maps(model, "abc é", max_new_tokens=5)
    n_layers, n_heads = len(model.decoder), model.cfg.n_heads
    assert maps.source_labels == ["BOS", "a", "b", "c", "␣", "é", "·", "EOS"]
    rows = maps.weights.shape[2]  # the output bytes, and EOS if the output ended
    assert maps.weights.shape == (n_layers, n_heads, rows, 8)
    assert len(maps.output_labels) == rows and (rows <= 6 if maps.ended else rows == 5)
    assert model.training is False
    training = make_model(eval_mode=False)
    cross_attention_maps(training, "abc", max_new_tokens=3)
    assert training.training  # the mode it had is given back


def test_token_labels():
    assert token_labels([BOS_ID, 72, 32, 0xC3, 0xA9, EOS_ID]) == ["BOS", "H", "␣", "é", "·", "EOS"]
    assert token_labels([0xFF, 0xC3, 10]) == ["\\xff", "\\xc3", "\\n"]  # invalid, cut, control
    # a lone continuation byte, a character cut by the end, a special id among the bytes
    assert token_labels([0xA9, 0xE2, 0x82]) == ["\\xa9", "\\xe2", "\\x82"]
    assert token_labels([0xC3, PAD_ID, 65]) == ["\\xc3", "<256>", "A"]


@pytest.mark.parametrize("text", ["a", " ", "é", "€", "🙂", "\n"])
def test_char_of_the_utf8_bytes_of_one_character_is_that_character(text):
    assert _char_of(list(text.encode("utf-8"))) == text


@pytest.mark.parametrize("chunk", [
    [], [0xC3], [0xA9], [0xC3, PAD_ID], [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [65, 66],
], ids=["empty", "cut", "continuation", "special", "invalid", "overlong", "surrogate", "two"])
def test_char_of_anything_but_one_character_is_none(chunk):
    assert _char_of(chunk) is None


def test_maps_of_an_output_that_runs_to_the_model_s_last_position():
    """An output cut off by the room (no EOS) as long as the positions allow: the decoder input
    that produced it fits the model too."""
    never_ends = chain_model([BOS_ID, 97, 97])
    room = never_ends.cfg.max_positions - 1
    maps = cross_attention_maps(never_ends, "ab", max_new_tokens=10 * room)
    assert maps.output == "a" * room and not maps.ended
    assert maps.weights.shape[-2:] == (room, len("ab") + 2)
