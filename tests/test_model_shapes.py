"""Output shapes of forward/encode/decode, NaN-free padding, and the length limit."""

from __future__ import annotations

import pytest
import torch
from conftest import make_model, source_batch, target_batch

from transformer_tiny.attention import LayerCache
from transformer_tiny.model import Memory
from transformer_tiny.tokenizer import PAD_ID, VOCAB_SIZE

CONFIGS = [
    dict(position_scheme=scheme, randomize_positions=rnd, attention_impl=impl)
    for scheme in ("sinusoidal", "rope") for rnd in (False, True) for impl in ("sdpa", "math")
]
CONFIGS.append(dict(d_model=48, n_heads=2, n_enc_layers=2, n_dec_layers=1, d_ff=32))  # other sizes


def config_id(cfg: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in cfg.items())


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
    with pytest.raises(ValueError):  # after the first step, one token per row
        model.decode(tgt[:, :2], memory, use_cache=True)


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


def test_check_positions():
    cfg = make_model(max_positions=16, dtype=torch.float32).cfg
    cfg.check_positions(16)  # exactly the limit is fine
    with pytest.raises(ValueError, match=r"^input too long: 15 bytes, this model supports "
                       r"at most 14$"):
        cfg.check_positions(17)


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
