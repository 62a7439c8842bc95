"""Position information: (randomized) position indices, character/decoder/source positions and
the incremental CharState, and RoPE's rotations, alone and inside the model."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import (
    SCHEMES,
    SRC_LENGTHS,
    TGT_LENGTHS,
    close,
    make_model,
    source_batch,
    target_batch,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer_tiny.positions import (
    CharState,
    apply_rotation,
    char_positions,
    decoder_positions,
    end_heads,
    position_indices,
    rope_rotation,
    rope_table,
    sinusoidal_encoding,
    source_positions,
    two_way_rotation,
)
from transformer_tiny.tokenizer import EOS_ID, ByteTokenizer


# ----------------------------------------------------------------------------- position indices
@settings(max_examples=60, deadline=None)
@given(st.integers(3, 80), st.data())
def test_randomized_position_indices(max_positions, data):
    n = data.draw(st.integers(1, max_positions))
    batch = data.draw(st.integers(1, 5))
    torch.manual_seed(data.draw(st.integers(0, 2**31)))
    index = position_indices(n, batch, max_positions, True, torch.device("cpu"))
    assert index.shape == (batch, n) and index.dtype == torch.long
    assert (index >= 0).all() and (index < max_positions).all()
    assert (index[:, 1:] > index[:, :-1]).all()


def test_randomized_position_indices_spread_out():
    torch.manual_seed(0)
    index = position_indices(4, 500, 64, True, torch.device("cpu"))
    assert index.max() >= 60 and index.min() == 0  # the whole range [0, 64) is used
    span = index[:, -1] - index[:, 0]
    assert (span == 3).any() and (span >= 40).any()  # both consecutive and sparse index sets


@pytest.mark.parametrize("draw", [0.0, 1 - 2**-24], ids=["bottom", "top"])
def test_randomized_position_indices_at_the_extreme_uniform_draws(draw, monkeypatch):
    """``torch.rand`` draws float32 values from 0 to ``1 - 2**-24``. With every draw at 0 the
    indices are the first ``n``; with every draw at the top, the window is the whole range and
    the indices are its last ``n``, still below ``max_positions``."""
    monkeypatch.setattr(torch, "rand",
                        lambda *size, device=None: torch.full(size, draw, device=device))
    for max_positions in range(1, 17):
        for n in range(1, max_positions + 1):
            index = position_indices(n, 1, max_positions, True, torch.device("cpu"))
            first = max_positions - n if draw else 0
            assert index.tolist() == [list(range(first, first + n))], (max_positions, n)


@pytest.mark.parametrize(("n", "draw", "width"), [(1, 0.3, 2), (1, 0.95, 13), (2, 0.5, 5),
                                                 (3, 0.5, 6)])
def test_log_uniform_window_width(n, draw, width, monkeypatch):
    """A log-uniform window of ``max_positions`` M = 15 has the width ``R = floor(n * ((M + 1) /
    n) ** u)`` for a uniform draw ``u`` (here: 16 ** 0.3 = 2.30, 16 ** 0.95 = 13.93,
    2 * 8 ** 0.5 = 5.66, 3 * (16 / 3) ** 0.5 = 6.93). With the window at offset 0 and every
    index draw at the top, the indices are the last ``n`` of ``[0, R)``."""
    top = 1 - 2**-24
    draws = iter([draw, 0.9, 0.0, top])  # width u; 0.9 >= 0.5: log-uniform; offset; indices
    monkeypatch.setattr(torch, "rand",
                        lambda *size, device=None: torch.full(size, next(draws), device=device))
    index = position_indices(n, 1, 15, True, torch.device("cpu"))
    assert index.tolist() == [list(range(width - n, width))]


def test_position_indices_are_made_on_the_device_asked_for():
    """Every tensor is made on ``device`` (mixing devices would fail); the ``meta`` device,
    present in every torch build, has shapes and no data."""
    meta = torch.device("meta")
    for randomized in (False, True):
        index = position_indices(4, 3, 16, randomized, meta)
        assert index.device == meta and index.shape == (3, 4) and index.dtype == torch.long


def test_consecutive_position_indices():
    index = position_indices(5, 2, 8, False, torch.device("cpu"))
    assert index.tolist() == [list(range(5))] * 2
    with pytest.raises(ValueError):
        position_indices(9, 1, 8, True, torch.device("cpu"))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_randomized_positions_train_vs_eval(scheme):
    model = make_model(position_scheme=scheme, randomize_positions=True, eval_mode=False)
    src, tgt = source_batch(SRC_LENGTHS), target_batch(TGT_LENGTHS)
    a, b = model(src, tgt), model(src, tgt)
    assert not torch.allclose(a, b)  # training draws fresh positions each call (no dropout here)
    model.eval()
    c, d = model(src, tgt), model(src, tgt)
    assert c.equal(d)  # evaluation is deterministic ...
    consecutive = make_model(position_scheme=scheme, randomize_positions=False)
    close(c, consecutive(src, tgt), atol=0)  # ... and uses the consecutive positions


# ----------------------------------------------------------------------------- character positions
def test_source_positions_ascii_are_token_positions():
    src = source_batch([3, 1])  # lengths 5 and 3 with BOS/EOS
    src[0, 1:4] %= 128  # ASCII bytes
    src[1, 1] %= 128
    char, from_end, offset = source_positions(src)
    assert char[0].tolist() == [0, 1, 2, 3, 4]
    assert from_end[0].tolist() == [4, 3, 2, 1, 0]
    assert from_end[1, :3].tolist() == [2, 1, 0]
    assert not offset.any()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_character_positions_follow_code_points(text):
    """Every byte of the i-th code point has character index i + 1 (BOS is 0), byte offsets count
    0, 1, ... inside it, and the decoder predicts exactly the position of its next target."""
    tok = ByteTokenizer()
    src, _ = tok.encode_batch([text], bos=True, eos=True)
    char, from_end, offset = source_positions(src)
    expect_char, expect_offset = [0], [0]
    for i, c in enumerate(text, start=1):
        n = len(tok.encode(c))
        expect_char += [i] * n
        expect_offset += list(range(n))
    expect_char.append(len(text) + 1)
    expect_offset.append(0)
    assert char[0].tolist() == expect_char
    assert offset[0].tolist() == expect_offset
    assert (from_end[0] + char[0]).eq(len(text) + 1).all()
    tgt_in = src[:, :-1]  # BOS y, predicting y EOS
    pred_char, pred_offset = decoder_positions(tgt_in)
    assert pred_char[0].tolist() == expect_char[1:]
    assert pred_offset[0].tolist() == expect_offset[1:]


def test_stray_continuation_bytes_are_characters_of_their_own():
    ids = torch.tensor([[0x41, 0x80, 0x80, 0xC3, 0xA9, 0xA9, 0x42]])  # A, 2 strays, é, stray, B
    char, offset, remaining = char_positions(ids)
    assert char[0].tolist() == [0, 1, 2, 3, 3, 4, 5]
    assert offset[0].tolist() == [0, 0, 0, 0, 1, 0, 0]
    assert remaining[0].tolist() == [0, 0, 0, 1, 0, 0, 0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0x41, 0x80, 0xBF, 0xC3, 0xE4, 0xF0, 0xF8, EOS_ID]),
                         min_size=12, max_size=12), min_size=1, max_size=3))
def test_incremental_char_state_equals_full_computation(rows):
    """Cached decoding advances the character state one token at a time; it must agree with
    the whole-sequence computation on any byte sequence, valid UTF-8 or not."""
    ids = torch.tensor(rows)
    state = CharState.of(ids[:, :1])
    for t in range(1, ids.size(1)):
        state = state.advance(ids[:, t])
        full = CharState.of(ids[:, : t + 1])
        for got, want in zip(state, full, strict=True):
            assert got.tolist() == want.tolist()
        char, offset = decoder_positions(ids[:, : t + 1])
        assert [x.tolist() for x in state.predicted()] == [char[:, -1].tolist(),
                                                           offset[:, -1].tolist()]


# ----------------------------------------------------------------------------- RoPE
@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([2, 4, 8, 16]))
def test_rotation_preserves_norm(seed, head_size):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, 3, head_size, generator=g, dtype=torch.float64)  # (B, T, nh, hs)
    index = torch.randint(0, 1000, (2, 5), generator=g)
    y = apply_rotation(x, rope_rotation(index, head_size))
    assert y.shape == x.shape
    close(y.norm(dim=-1), x.norm(dim=-1), atol=1e-6)
    close(apply_rotation(x, rope_rotation(torch.zeros(2, 5, dtype=torch.long), head_size)), x,
          atol=0)  # index 0 is the identity


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31))
def test_complex_rotation_equals_real_formula(seed):
    """The fast path (one complex multiply) and the real one (ONNX, bf16) rotate alike, and both
    rotate the pair (x[2i], x[2i+1]) by angle index * 10000^(-i / (hs/2))."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, 4, 8, generator=g)
    rot = rope_rotation(torch.randint(0, 1000, (2, 5), generator=g), 8)
    assert rot.z is not None
    real = apply_rotation(x, rot._replace(z=None))
    close(apply_rotation(x, rot), real, atol=1e-5)
    angle = 7 * 10_000.0 ** (-torch.arange(4) / 4)
    one = apply_rotation(x[:1, :1], rope_rotation(torch.tensor([[7]]), 8))
    x0, x1 = x[0, 0, :, 0::2], x[0, 0, :, 1::2]
    close(one[0, 0, :, 0::2], x0 * angle.cos() - x1 * angle.sin(), atol=1e-4)
    close(one[0, 0, :, 1::2], x0 * angle.sin() + x1 * angle.cos(), atol=1e-4)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 100), st.integers(0, 100), st.integers(0, 100))
def test_rotated_dot_product_depends_only_on_offset(seed, a, b, shift):
    hs = 8
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, 1, 1, hs, generator=g, dtype=torch.float64)  # each (B, T, nh, hs)

    def score(i: int, j: int) -> torch.Tensor:
        qa = apply_rotation(q, rope_rotation(torch.tensor([[i]]), hs))
        kb = apply_rotation(k, rope_rotation(torch.tensor([[j]]), hs))
        return (qa * kb).sum()

    close(score(a, b), score(a + shift, b + shift), atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([2, 8, 32]), st.booleans())
def test_rope_table_lookup_equals_computed_angles(seed, head_size, per_head):
    """The model looks its rotary angles up in a table; they equal the computed ones."""
    g = torch.Generator().manual_seed(seed)
    shape = (2, 5, 4) if per_head else (2, 5)
    index = torch.randint(0, 1024, shape, generator=g)
    looked_up = rope_rotation(index, head_size, rope_table(1024, head_size))
    computed = rope_rotation(index, head_size)
    for a, b in zip(looked_up, computed, strict=True):
        close(a, b, atol=1e-6)


def test_rotation_has_no_complex_form_while_exporting(monkeypatch):
    """ONNX has no complex type: while a graph is traced for export, rotary angles, computed or
    looked up, come as cosine and sine only, and rotate as the formula says."""
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    x = torch.randn(1, 3, 2, 8, generator=torch.Generator().manual_seed(0))  # (B, T, nh, hs)
    index = torch.tensor([[0, 5, 900]])
    angle = index[0, :, None, None] * 10_000.0 ** (-torch.arange(4) / 4)  # (T, 1, hs/2)
    x0, x1 = x[0, ..., 0::2], x[0, ..., 1::2]
    for rot in (rope_rotation(index, 8), rope_rotation(index, 8, rope_table(1024, 8))):
        assert rot.z is None
        got = apply_rotation(x, rot)[0]
        close(got[..., 0::2], x0 * angle.cos() - x1 * angle.sin(), atol=1e-3)
        close(got[..., 1::2], x0 * angle.sin() + x1 * angle.cos(), atol=1e-3)


def test_two_way_rotation_splits_heads():
    start = torch.tensor([[0, 1, 2, 3]])
    end = torch.tensor([[3, 2, 1, 0]])
    cos, sin, _ = two_way_rotation(start, end, n_heads=4, head_size=8)  # (B, S, nh, hs/2)
    ref_start, ref_end = rope_rotation(start, 8), rope_rotation(end, 8)
    assert list(end_heads(4)) == [2, 3] and list(end_heads(5)) == [2, 3, 4]
    assert cos.shape == (1, 4, 4, 4)
    close(cos[:, :, :2], ref_start.cos.expand(1, 4, 2, 4), atol=0)
    close(sin[:, :, 2:], ref_end.sin.expand(1, 4, 2, 4), atol=0)


@pytest.mark.parametrize("shift", [1, 7, 30])
def test_rope_model_is_invariant_to_shifted_positions(shift):
    """Under RoPE every attention score depends on index differences only, so shifting all
    position indices (encoder, cross-attention both ways, decoder) leaves the logits unchanged."""
    model = make_model(position_scheme="rope")
    src, tgt = source_batch(SRC_LENGTHS), target_batch(TGT_LENGTHS)
    n = max(src.size(1), tgt.size(1) + 1)
    base = model(src, tgt)
    positions = (torch.arange(n) + shift).expand(src.size(0), n)
    shifted = model.decode(tgt, model.encode(src, positions))
    close(shifted, base, atol=1e-4)
    sinusoidal = make_model(position_scheme="sinusoidal")  # absolute positions: not invariant
    assert not torch.allclose(sinusoidal.decode(tgt, sinusoidal.encode(src, positions)),
                              sinusoidal(src, tgt), atol=1e-3)


def test_sinusoidal_encoding_is_the_papers_formula():
    """Feature ``i < dim/2`` is ``sin(p / 10000^(i / (dim/2)))`` and feature ``dim/2 + i`` the
    cosine of the same angle (the paper interleaves them; the order does not matter to a model)."""
    dim, p = 8, torch.tensor([0, 1, 7, 100])
    want = torch.tensor([[f(pos / 10_000 ** (i / (dim // 2))) for f in (math.sin, math.cos)
                          for i in range(dim // 2)] for pos in p.tolist()])
    torch.testing.assert_close(sinusoidal_encoding(p, dim), want, rtol=1e-5, atol=1e-5)
