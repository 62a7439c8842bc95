"""attention(): the math path agrees with the fused kernel; MultiHeadAttention agrees with
torch.nn.MultiheadAttention; masked-out query rows give zeros, not NaN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transformer_tiny.attention import (
    LayerCache,
    MultiHeadAttention,
    attention,
    padding_mask,
    subsequent_mask,
)
from transformer_tiny.tokenizer import PAD_ID

B, NH, T, HS = 3, 2, 5, 8
C = NH * HS


def qkv(tq: int = T, tk: int = T, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, NH, tq, HS, generator=g), torch.randn(B, NH, tk, HS, generator=g),
            torch.randn(B, NH, tk, HS, generator=g))


def key_padding(lengths: list[int], tk: int = T) -> torch.Tensor:
    """(B, 1, 1, tk) bool mask, True for the first ``lengths[b]`` keys of row b."""
    return (torch.arange(tk)[None] < torch.tensor(lengths)[:, None])[:, None, None, :]


def reference(q, k, v, mask=None):
    """softmax(QK^T / sqrt(d)) V with a -inf fill, written independently of the module."""
    scores = q @ k.transpose(-2, -1) / HS ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def test_masks():
    ids = torch.tensor([[1, 2, PAD_ID], [PAD_ID, PAD_ID, PAD_ID]])
    assert padding_mask(ids).shape == (2, 1, 1, 3)
    assert padding_mask(ids)[:, 0, 0].tolist() == [[True, True, False], [False, False, False]]
    causal = subsequent_mask(4)
    assert causal.shape == (1, 1, 4, 4) and causal.dtype == torch.bool
    assert causal[0, 0].tolist() == [[True, False, False, False],
                                     [True, True, False, False],
                                     [True, True, True, False],
                                     [True, True, True, True]]


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_no_mask_matches_reference(impl):
    q, k, v = qkv(tq=4, tk=6)
    torch.testing.assert_close(attention(q, k, v, impl=impl), reference(q, k, v),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", ["none", "padding", "causal", "padding+causal_mask",
                                  "cross_padding"])
def test_math_equals_sdpa(case):
    tq = 4 if case == "cross_padding" else T
    q, k, v = qkv(tq=tq)
    mask, causal = None, False
    if case == "padding":
        mask = key_padding([5, 3, 1])
    elif case == "causal":
        causal = True
    elif case == "padding+causal_mask":  # a combined mask, spelled out by the caller
        mask = key_padding([5, 3, 1]) & subsequent_mask(T)
    elif case == "cross_padding":
        mask = key_padding([2, 5, 4])
    a = attention(q, k, v, mask=mask, causal=causal, impl="sdpa")
    b = attention(q, k, v, mask=mask, causal=causal, impl="math")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(b, reference(q, k, v, mask if not causal else subsequent_mask(T)),
                               atol=1e-5, rtol=0)


def test_math_equals_sdpa_padding_mask_with_causal_flag():
    q, k, v = qkv()
    mask = key_padding([5, 3, 2])
    expected = reference(q, k, v, mask & subsequent_mask(T))
    torch.testing.assert_close(attention(q, k, v, mask=mask, causal=True, impl="math"), expected,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(attention(q, k, v, mask=mask, causal=True, impl="sdpa"), expected,
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["sdpa", "math"])
@pytest.mark.parametrize("with_padding", [False, True])
def test_causal_with_fewer_queries_than_keys_sees_the_keys_up_to_its_own(impl, with_padding):
    """Queries that are the last 2 of 5 positions (new tokens after a cache): query i sees keys
    0 .. 3 + i, the rows of the full causal mask that belong to them."""
    q, k, v = qkv(tq=2)
    mask = key_padding([5, 4, 5]) if with_padding else None
    allowed = subsequent_mask(T)[..., -2:, :]
    expected = reference(q, k, v, allowed if mask is None else mask & allowed)
    torch.testing.assert_close(attention(q, k, v, mask=mask, causal=True, impl=impl), expected,
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_fully_masked_query_rows_are_zero(impl):
    q, k, v = qkv()
    mask = torch.ones(B, 1, T, T, dtype=torch.bool)
    mask[0, :, 2] = False  # query 2 of row 0 may attend to nothing
    mask[1] = False  # row 1 may attend to nothing at all
    out = attention(q, k, v, mask=mask, impl=impl)
    assert not out.isnan().any()
    assert (out[0, :, 2] == 0).all() and (out[1] == 0).all()
    keep = mask.clone()
    keep[0, :, 2] = True
    keep[1] = True
    ok = attention(q, k, v, mask=keep, impl=impl)  # the other queries are computed normally
    torch.testing.assert_close(out[0, :, [0, 1, 3, 4]], ok[0, :, [0, 1, 3, 4]])
    torch.testing.assert_close(out[2], ok[2])


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_fully_masked_query_rows_have_finite_gradients(impl):
    q, k, v = (t.requires_grad_() for t in qkv())
    mask = torch.ones(B, 1, T, T, dtype=torch.bool)
    mask[0, :, 2] = False
    mask[1] = False
    attention(q, k, v, mask=mask, impl=impl).sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert (q.grad[0, :, 2] == 0).all() and (q.grad[1] == 0).all()  # they influence nothing
    assert (k.grad[1] == 0).all() and (v.grad[1] == 0).all()


# ----------------------------------------------------------------------------- MultiHeadAttention
def paired_modules(seed: int = 0) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(seed)
    ours = MultiHeadAttention(C, NH).double().eval()
    ref = nn.MultiheadAttention(C, NH, batch_first=True).double().eval()
    with torch.no_grad():
        for p in ours.parameters():  # nn.MultiheadAttention starts with zero biases
            p.normal_(0, 0.3)
        ref.in_proj_weight.copy_(ours.in_proj.weight)
        ref.in_proj_bias.copy_(ours.in_proj.bias)
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    return ours, ref


def inputs(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_self_attention_matches_torch(impl):
    ours, ref = paired_modules()
    ours.impl = impl
    x = inputs(B, T, C)
    expected, _ = ref(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_self_attention_with_padding_matches_torch(impl):
    ours, ref = paired_modules()
    ours.impl = impl
    x = inputs(B, T, C)
    keep = key_padding([5, 3, 1])  # ours: True = may attend
    expected, _ = ref(x, x, x, key_padding_mask=~keep[:, 0, 0], need_weights=False)  # True = ignore
    torch.testing.assert_close(ours(x, mask=keep), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_causal_self_attention_matches_torch(impl):
    ours, ref = paired_modules()
    ours.impl = impl
    x = inputs(B, T, C)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # True = not allowed
    expected, _ = ref(x, x, x, attn_mask=future, need_weights=False)
    torch.testing.assert_close(ours(x, causal=True), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours(x, mask=subsequent_mask(T)), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_cross_attention_matches_torch(impl):
    ours, ref = paired_modules()
    ours.impl = impl
    x, context = inputs(B, 4, C, seed=1), inputs(B, 7, C, seed=2)
    keep = key_padding([7, 2, 5], tk=7)
    expected, _ = ref(x, context, context, key_padding_mask=~keep[:, 0, 0], need_weights=False)
    got = ours(x, kv=ours.project_kv(context), mask=keep)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    expected, _ = ref(x, context, context, need_weights=False)
    torch.testing.assert_close(ours(x, kv=ours.project_kv(context)), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_module_fully_masked_rows_give_output_bias(impl):
    ours, _ = paired_modules()
    ours.impl = impl
    x, context = inputs(B, 4, C), inputs(B, 6, C, seed=2)
    keep = key_padding([6, 0, 3], tk=6)  # row 1 has no key at all
    out = ours(x, kv=ours.project_kv(context), mask=keep)
    assert torch.isfinite(out).all()
    # zero attention output -> out_proj(0) = its bias
    torch.testing.assert_close(out[1], ours.out_proj.bias.expand(4, C).detach())


@pytest.mark.parametrize("grad", [False, True])
def test_layer_cache_holds_every_step_in_order(grad):
    """Step by step (and one block of 3), the cache equals the concatenation of what was added,
    whether it grows its buffers in place (no gradients) or concatenates."""
    torch.manual_seed(0)
    steps = [torch.randn(2, 3, t, 4) for t in (1, 1, 3, 1, 1, 1, 1, 1, 1)]
    cache = LayerCache()
    with torch.set_grad_enabled(grad):
        for i, step in enumerate(steps):
            k, v = cache.append(step, -step)
            want = torch.cat(steps[: i + 1], dim=2)
            assert torch.equal(k, want) and torch.equal(v, -want)
            assert cache.length == want.size(2) and torch.equal(cache.k, want)


def test_layer_cache_from_tensors_continues():
    past = torch.randn(1, 2, 5, 4)
    before = past.clone()
    cache = LayerCache(past, past + 1)
    with torch.no_grad():
        k, v = cache.append(torch.zeros(1, 2, 1, 4), torch.ones(1, 2, 1, 4))
    assert torch.equal(k[:, :, :5], past) and k[:, :, 5].eq(0).all() and v[:, :, 5].eq(1).all()
    assert torch.equal(past, before)  # the given tensors are read, never written


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_dropout_of_one_drops_every_attention_weight(impl):
    """Both paths apply ``dropout_p`` to the weights: at 1 nothing is left, at 0 nothing drops."""
    q = torch.randn(2, 2, 3, 4)
    k, v = torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    assert torch.equal(attention(q, k, v, dropout_p=1.0, impl=impl), torch.zeros(2, 2, 3, 4))
    assert attention(q, k, v, dropout_p=0.0, impl=impl).abs().max() > 0.1


def test_layer_cache_select_keeps_rows_and_spare_room():
    """Beam search reorders rows at every step: the selected cache holds the chosen rows, and
    its buffers keep their room, so the next step writes in place."""
    cache = LayerCache()
    steps = [torch.randn(3, NH, 1, HS) for _ in range(5)]
    for s in steps:
        with torch.no_grad():
            cache.append(s, s + 1)
    rows = torch.tensor([2, 2, 0])
    chosen = cache.select(rows)
    torch.testing.assert_close(chosen.k, cache.k[rows], rtol=0, atol=0)
    torch.testing.assert_close(chosen.v, cache.v[rows], rtol=0, atol=0)
    buffer = chosen._k
    assert buffer.size(2) > chosen.length  # spare room kept
    with torch.no_grad():
        chosen.append(steps[0][:3], steps[0][:3])
    assert chosen._k is buffer and chosen.length == 6  # written in place
    assert LayerCache().select(rows).k is None
