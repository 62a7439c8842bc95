"""The model on random (untrained) weights: output shapes of forward/encode/decode, causality,
padding invariance, batching, NaN-free padding, and the length limit."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    IMPLS,
    SCHEMES,
    SRC_LENGTHS,
    TGT_LENGTHS,
    close,
    make_model,
    pad_rows,
    source_batch,
    target_batch,
    trim,
)
from torch import nn

from transformer_tiny.attention import LayerCache
from transformer_tiny.config import ModelConfig
from transformer_tiny.model import DecoderLayer, EncoderLayer, FeedForward, Memory, dropout_layer
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE, ByteTokenizer

CONFIGS = [
    dict(position_scheme=scheme, randomize_positions=rnd, attention_impl=impl)
    for scheme in ("sinusoidal", "rope") for rnd in (False, True) for impl in ("sdpa", "math")
]
CONFIGS.append(dict(d_model=48, n_heads=2, n_enc_layers=2, n_dec_layers=1, d_ff=32))  # other sizes


def config_id(cfg: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in cfg.items())


def pad_columns(x: torch.Tensor, extra: int) -> torch.Tensor:
    return torch.cat([x, torch.full((x.size(0), extra), PAD_ID)], dim=1)


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("overrides", CONFIGS, ids=config_id)
def test_shapes(overrides, train_mode):
    model = make_model(dtype=torch.float32, eval_mode=not train_mode, **overrides)
    cfg = model.cfg
    hs = cfg.d_model // cfg.n_heads
    src = source_batch([5, 1, 0])  # (3, 7)
    tgt = target_batch([3, 0, 5])  # (3, 6)
    B, S, T = src.size(0), src.size(1), tgt.size(1)

    logits = model(src, tgt)
    assert logits.shape == (B, T, VOCAB_SIZE)
    assert torch.isfinite(logits).all()

    memory = model.encode(src)
    assert isinstance(memory, Memory)
    assert memory.states.shape == (B, S, cfg.d_model)
    assert memory.src_mask.shape == (B, 1, 1, S) and memory.src_mask.dtype == torch.bool
    assert memory.src_mask[:, 0, 0].equal(src != PAD_ID)
    assert len(memory.cross_kv) == cfg.n_dec_layers
    for k, v in memory.cross_kv:
        assert k.shape == v.shape == (B, cfg.n_heads, S, hs)

    assert model.decode(tgt, memory).shape == (B, T, VOCAB_SIZE)
    assert model.decode(tgt[:, :1], memory).shape == (B, 1, VOCAB_SIZE)


@pytest.mark.parametrize("scheme", ["sinusoidal", "rope"])
def test_cached_decode_shapes(scheme):
    model = make_model(position_scheme=scheme, dtype=torch.float32)
    src, tgt = source_batch([4, 2]), target_batch([3, 1])
    memory = model.encode(src)
    assert model.decode(tgt[:, :2], memory, use_cache=True).shape == (2, 2, VOCAB_SIZE)
    assert memory.length == 2
    assert model.decode(tgt[:, 2:3], memory, use_cache=True).shape == (2, 1, VOCAB_SIZE)
    assert memory.length == 3
    assert len(memory.caches) == model.cfg.n_dec_layers
    for cache in memory.caches:
        assert isinstance(cache, LayerCache)
        assert cache.k.shape == cache.v.shape == (2, model.cfg.n_heads, 3,
                                                  model.cfg.d_model // model.cfg.n_heads)
    with pytest.raises(ValueError, match=r"^a cached decode step after the first takes one "
                                         r"token per row$"):
        model.decode(tgt[:, :2], memory, use_cache=True)


# ----------------------------------------------------------------------------- causality
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_causal_leakage(scheme, impl):
    model = make_model(position_scheme=scheme, attention_impl=impl)
    src, tgt = source_batch([5, 3]), target_batch([8, 8])
    base = model(src, tgt)
    for t in range(tgt.size(1) - 1):
        changed = tgt.clone()
        changed[:, t + 1:] = torch.randint(0, 256, changed[:, t + 1:].shape,
                                           generator=torch.Generator().manual_seed(t))
        logits = model(src, changed)
        close(logits[:, : t + 1], base[:, : t + 1], atol=1e-10)
        assert not torch.allclose(logits[:, t + 1:], base[:, t + 1:])  # the change is visible


@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_causal_leakage_with_randomized_positions(scheme):
    model = make_model(position_scheme=scheme, randomize_positions=True, eval_mode=False)
    src, tgt = source_batch([5, 3]), target_batch([8, 8])
    torch.manual_seed(7)
    base = model(src, tgt)
    changed = tgt.clone()
    changed[:, 5:] = 65
    torch.manual_seed(7)  # the same random positions
    close(model(src, changed)[:, :5], base[:, :5], atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_first_of_two_decoder_positions_does_not_see_the_second(impl):
    model = make_model(attention_impl=impl)
    src = source_batch([5, 3])
    tgt = pad_rows([[10], [200]], bos=True)  # (2, 2): BOS and one byte
    base = model(src, tgt)
    changed = tgt.clone()
    changed[:, 1] = torch.tensor([77, 3])
    logits = model(src, changed)
    close(logits[:, 0], base[:, 0], atol=1e-10)
    assert not torch.allclose(logits[:, 1], base[:, 1])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_causal_encoder_reads_left_to_right(scheme, impl):
    """With ``causal_encoder`` an encoder state depends on its token and those to its left only."""
    model = make_model(position_scheme=scheme, attention_impl=impl, causal_encoder=True)
    # ASCII of one length: the changes below keep every character position as it was
    src, _ = ByteTokenizer().encode_batch(["abcdefghi", "zy x!@#1)"], bos=True, eos=True)
    base = model.encode(src).states
    for t in range(1, src.size(1) - 2):
        changed = src.clone()
        changed[:, t + 1:-1] = 65 + t
        states = model.encode(changed).states
        close(states[:, : t + 1], base[:, : t + 1], atol=1e-10)
        assert not torch.allclose(states[:, t + 1:], base[:, t + 1:])
    bidirectional = make_model(position_scheme=scheme, attention_impl=impl)
    changed = src.clone()
    changed[:, -2] = 66  # the last byte
    first = bidirectional.encode(changed).states[:, 1], bidirectional.encode(src).states[:, 1]
    assert not torch.allclose(*first)  # without the option the first byte sees the last one


# ----------------------------------------------------------------------------- padding, batching
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_padding_invariance(scheme, impl):
    model = make_model(position_scheme=scheme, attention_impl=impl)
    src, tgt = source_batch(SRC_LENGTHS), target_batch(TGT_LENGTHS)
    base = model(src, tgt)
    for extra_src, extra_tgt in [(3, 0), (0, 4), (5, 2)]:
        logits = model(pad_columns(src, extra_src), pad_columns(tgt, extra_tgt))
        close(logits[:, : tgt.size(1)], base)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_batched_equals_one_by_one(scheme, impl):
    model = make_model(position_scheme=scheme, attention_impl=impl)
    src, tgt = source_batch(SRC_LENGTHS), target_batch(TGT_LENGTHS)
    batched = model(src, tgt)
    for i, n in enumerate(TGT_LENGTHS):
        alone = model(trim(src[i:i + 1]), tgt[i:i + 1, : n + 1])
        close(batched[i:i + 1, : n + 1], alone)


@pytest.mark.parametrize("impl", ["sdpa", "math"])
@pytest.mark.parametrize("scheme", ["sinusoidal", "rope"])
def test_all_pad_source_row_gives_no_nan(impl, scheme):
    model = make_model(attention_impl=impl, position_scheme=scheme, dtype=torch.float32)
    src = source_batch([4, 2, 3])
    src[1] = PAD_ID  # a row with no real source token at all: every key is masked
    tgt = target_batch([2, 3, 1])
    logits = model(src, tgt)
    assert torch.isfinite(logits).all()
    memory = model.encode(src)
    assert torch.isfinite(memory.states).all()
    # The other rows are unaffected by the empty row.
    alone = model(src[[0, 2]], tgt[[0, 2]])
    torch.testing.assert_close(logits[[0, 2]], alone, atol=1e-5, rtol=0)


def test_all_pad_batch_gives_no_nan():
    model = make_model(attention_impl="math")
    src = torch.full((2, 3), PAD_ID)
    logits = model(src, target_batch([1, 2]))
    assert torch.isfinite(logits).all()


# ----------------------------------------------------------------------------- length limit
def test_too_long_inputs_raise_value_error():
    model = make_model(max_positions=16, dtype=torch.float32)
    ok_src, ok_tgt = source_batch([14]), target_batch([14])  # 16 source / 15+1 decoder positions
    assert model(ok_src, ok_tgt).shape == (1, 15, VOCAB_SIZE)
    with pytest.raises(ValueError):
        model(source_batch([15]), target_batch([3]))  # 17 source positions
    with pytest.raises(ValueError):
        model(source_batch([3]), target_batch([15]))  # 16 decoder tokens need 17 positions
    with pytest.raises(ValueError):
        model.encode(source_batch([15]))
    with pytest.raises(ValueError):
        model.decode(target_batch([15]), model.encode(ok_src))
    model.train()  # randomized positions check the same limit
    with pytest.raises(ValueError):
        model(source_batch([15]), target_batch([3]))


def rotate_pairs(x: torch.Tensor, index: int) -> torch.Tensor:
    """Rotary embedding of one head vector ``x (hs,)`` at position ``index``, written out: pair
    ``(x[2i], x[2i+1])`` turns by ``index / 10000 ** (i / (hs / 2))``."""
    out = x.clone()
    half = x.numel() // 2
    for i in range(half):
        angle = index / 10000 ** (i / half)
        c, s = math.cos(angle), math.sin(angle)
        out[2 * i] = x[2 * i] * c - x[2 * i + 1] * s
        out[2 * i + 1] = x[2 * i] * s + x[2 * i + 1] * c
    return out


@pytest.mark.parametrize("stride", [1, 4])
def test_cross_attention_keys_count_from_both_ends(stride):
    """Half of the heads rotate the keys of source token s by s, the other half by its distance
    from the end of its own row (EOS is 0), padding aside; each index turns ``stride`` steps."""
    model = make_model(position_scheme="rope", rope_stride=stride)
    rows = [list(b"abcde"), list(b"xy")]
    src = pad_rows(rows, bos=True, eos=True)  # ASCII: a token's character index is its index
    memory = model.encode(src)
    nh, hs = model.cfg.n_heads, model.cfg.d_model // model.cfg.n_heads
    for layer, (keys, _) in zip(model.decoder, memory.cross_kv, strict=True):
        d = model.cfg.d_model
        raw = F.linear(memory.states, layer.cross_attn.in_proj.weight[d:2 * d],
                       layer.cross_attn.in_proj.bias[d:2 * d]).unflatten(-1, (nh, hs))
        for b, row in enumerate(rows):
            n = len(row) + 2  # BOS, the bytes, EOS
            for s in range(n):
                for h in range(nh):
                    index = s if h < nh // 2 else n - 1 - s
                    close(keys[b, h, s], rotate_pairs(raw[b, s, h], stride * index), atol=1e-6)


def test_selected_memory_decodes_its_rows_as_the_whole_memory_does():
    """``Memory.select`` keeps every per-row part, the drawn position indices included."""
    model = make_model(randomize_positions=True, max_positions=64)
    src, tgt = source_batch([5, 9, 3]), target_batch([4, 6, 2])
    torch.manual_seed(0)
    positions = torch.sort(torch.randperm(64)[:12]).values.repeat(3, 1)  # (B, 12), increasing
    positions[1] = torch.arange(0, 60, 5)  # one row spread wider than the others
    memory = model.encode(src, positions)
    rows = torch.tensor([2, 0, 2])  # reordered and repeated
    picked = memory.select(rows)
    assert torch.equal(picked.positions, positions[rows])
    close(model.decode(tgt[rows], picked), model.decode(tgt, memory)[rows])


def test_decode_at_without_use_cache_keeps_no_cache():
    """Called as documented, without ``use_cache``, ``decode_at`` is the teacher-forced decoder:
    the memory gains no cache, so a second call gives the same logits."""
    from transformer_tiny.positions import decoder_positions

    model = make_model()
    memory = model.encode(source_batch([5, 3]))
    tgt = target_batch([4, 2])
    char, offset = decoder_positions(tgt)
    first = model.decode_at(tgt, char, offset, memory)
    assert memory.caches == [] and memory.length == 0
    close(model.decode_at(tgt, char, offset, memory), first)


# ----------------------------------------------------------------------------- layers and buffers
def test_dropout_layer_is_a_no_op_module_at_zero_and_dropout_above():
    assert isinstance(dropout_layer(0.0), nn.Identity)
    for p in (0.25, 1.0):
        layer = dropout_layer(p)
        assert isinstance(layer, nn.Dropout) and layer.p == p


def test_every_sublayer_output_goes_through_dropout_before_the_residual():
    """With dropout 1 in training, every sublayer's output is dropped and a layer returns its
    input unchanged; in eval mode the sublayers change it."""
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=8, n_heads=2, d_ff=16, dropout=0.5)
    x, memory_kv = torch.randn(2, 3, 8), (torch.randn(2, 2, 4, 4), torch.randn(2, 2, 4, 4))
    for layer, args in ((EncoderLayer(cfg), (x, None)), (DecoderLayer(cfg), (x, memory_kv, None))):
        layer.drop.p = 1.0
        assert torch.equal(layer.train()(*args), x)
        assert (layer.eval()(*args) - x).abs().max() > 0.01


def test_feed_forward_is_linear_gelu_linear():
    torch.manual_seed(0)
    ff, x = FeedForward(8, 16), torch.randn(2, 3, 8)
    first, last = ff.net[0], ff.net[2]
    close(ff(x), F.linear(F.gelu(F.linear(x, first.weight, first.bias)), last.weight, last.bias))


@pytest.mark.parametrize("stride", [1, 4])
def test_model_keeps_an_unsaved_table_of_every_rotary_angle(stride):
    """``rope_table[p, i]`` is the cosine and sine of ``stride * p / 10000 ** (i / (hs / 2))``
    for every position below ``max_positions``; it moves with the model and is left out of the
    weights."""
    model = make_model(position_scheme="rope", max_positions=64, rope_stride=stride)  # float64
    half = model.cfg.d_model // model.cfg.n_heads // 2
    table = model.rope_cos_sin
    assert table.shape == (64, half, 2) and table.dtype == torch.float64
    angle = [[stride * p / 10_000 ** (i / half) for i in range(half)] for p in range(64)]
    want = torch.tensor([[[math.cos(a), math.sin(a)] for a in row] for row in angle],
                        dtype=torch.float64)
    close(table, want, atol=1e-5)
    assert "rope_table" not in model.state_dict()


def test_uncached_decode_reads_the_whole_prefix_whatever_was_cached_before():
    """Without ``use_cache``, ``decode`` takes the whole prefix from position 0: earlier cached
    steps on the same memory neither shift it nor count against the length limit."""
    model = make_model(max_positions=64)
    src, tgt = source_batch([5, 3]), target_batch([40, 12])  # 41 decoder tokens
    memory = model.encode(src)
    model.decode(tgt[:, :30], memory, use_cache=True)
    assert memory.length == 30
    close(model.decode(tgt, memory), model.decode(tgt, model.encode(src)))


def test_sinusoidal_decoder_input_adds_the_position_of_the_predicted_character():
    """With sinusoidal positions the first decoder layer gets the token embedding plus the
    sinusoids of the character each step predicts (step t of ASCII output: t + 1), in both
    halves of the features."""
    model = make_model(position_scheme="sinusoidal")
    d, quarter = model.cfg.d_model, model.cfg.d_model // 4
    tgt = pad_rows([list(b"abcd")], bos=True)  # (1, 5)
    seen = []
    model.decoder[0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    model.decode(tgt, model.encode(source_batch([3])))
    sinusoid = [[f(p / 10_000 ** (i / quarter)) for f in (math.sin, math.cos)
                 for i in range(quarter)] for p in range(1, 6)]
    want = (model.embed(tgt) + model.byte_embed.weight[0]
            + torch.tensor([row + row for row in sinusoid], dtype=torch.float64))
    assert seen[0].shape == (1, 5, d)
    close(seen[0], want, atol=1e-5)


def test_too_long_names_the_sequence_that_is():
    """A short input with an output past the model's positions is "output too long", in
    forward and in cached decoding alike; a long input is "input too long"."""
    model = make_model(max_positions=8)
    src, tgt = torch.tensor([[BOS_ID, 104, EOS_ID]]), torch.full((1, 8), 104)
    with pytest.raises(ValueError, match=r"^output too long: 7 bytes, .* at most 6$"):
        model(src, tgt)
    memory = model.encode(src)
    model.decode(tgt[:, :7], memory, use_cache=True)  # 7 tokens need 8 positions: fine
    with pytest.raises(ValueError, match=r"^output too long: 7 bytes"):
        model.decode(tgt[:, :1], memory, use_cache=True)
    with pytest.raises(ValueError, match=r"^input too long: 7 bytes"):
        model(torch.full((1, 9), 104), tgt[:, :2])
