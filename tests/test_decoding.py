"""Decoding: greedy (batched, with and without the KV cache), beam search (width 1 is greedy, a
wider beam never scores below greedy), and predict() on strings, bad input included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import (
    IMPLS,
    SCHEMES,
    SRC_LENGTHS,
    SURROGATE_BYTES,
    TINY,
    TOK,
    bigram_model,
    chain_model,
    close,
    greedy_trap_model,
    make_model,
    source_batch,
    surrogate_model,
    target_batch,
    trim,
)

from transformer_tiny.config import ModelConfig
from transformer_tiny.decoding import (
    _trim,
    batches_by_length,
    beam_search,
    decode_steps,
    greedy_decode,
    normalized_score,
    output_length,
    predict,
    sequence_logprob,
)
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID


def stopping_model(src: torch.Tensor, seed: int = 3, **overrides) -> Seq2SeqTransformer:
    """A random model whose EOS bias is raised until greedy decoding of ``src`` ends some rows
    early and not others, so that the finished-row logic is exercised."""
    model = make_model(seed=seed, **overrides)
    for bias in torch.linspace(0.0, 6.0, 121):
        with torch.no_grad():
            model.head.bias[EOS_ID] = bias
        out = greedy_decode(model, src, max_new_tokens=12).tolist()
        stops = {row.index(EOS_ID) if EOS_ID in row else None for row in out}
        if None in stops and len(stops) >= 2:
            return model
    raise AssertionError("no EOS bias gives a mix of finished and unfinished rows")


# ----------------------------------------------------------------------------- greedy
@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no_cache"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_greedy_decode_batched_equals_one_by_one(scheme, use_cache):
    src = source_batch(SRC_LENGTHS, seed=4)
    model = stopping_model(src, position_scheme=scheme)
    batched = greedy_decode(model, src, max_new_tokens=12, use_cache=use_cache)
    assert batched.size(1) <= 12
    for i in range(src.size(0)):
        alone = greedy_decode(model, trim(src[i:i + 1]), max_new_tokens=12,
                              use_cache=use_cache)[0].tolist()
        row = batched[i].tolist()
        assert row[: len(alone)] == alone
        assert all(t == PAD_ID for t in row[len(alone):])  # finished rows are padded
        if EOS_ID in alone:
            assert alone.index(EOS_ID) == len(alone) - 1  # decoding stopped at EOS


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no_cache"])
def test_greedy_without_stopping_writes_exactly_max_new_tokens(use_cache):
    src = source_batch(SRC_LENGTHS)
    model = stopping_model(src)  # some rows end early
    out = greedy_decode(model, src, max_new_tokens=7, use_cache=use_cache, stop_at_eos=False)
    assert out.shape == (src.size(0), 7)
    never_ends = chain_model([BOS_ID, 97, 97])  # "a" after "a", never EOS
    out = greedy_decode(never_ends, src, max_new_tokens=5, use_cache=use_cache)
    assert out.tolist() == [[97] * 5] * src.size(0)


@pytest.mark.parametrize("training", [True, False])
def test_decoders_run_in_eval_mode_and_restore_the_training_mode(training):
    model, src = make_model(eval_mode=not training, dropout=0.5), source_batch([3, 5])
    modes = []
    for layer in model.modules():  # encode() and decode() call the layers, not forward()
        layer.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    out = greedy_decode(model, src, max_new_tokens=4)
    beam_search(model, src, beam=3, max_new_tokens=4)
    logprob = sequence_logprob(model, src, out)
    assert modes and not any(modes)  # dropout off while decoding
    assert model.training == training
    assert not logprob.requires_grad


# ----------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_cached_greedy_equals_uncached(scheme, impl, seed):
    src = source_batch(SRC_LENGTHS, seed=seed + 10)
    model = stopping_model(src, seed=seed, position_scheme=scheme, attention_impl=impl)
    cached = greedy_decode(model, src, max_new_tokens=12, use_cache=True)
    uncached = greedy_decode(model, src, max_new_tokens=12, use_cache=False)
    assert cached.tolist() == uncached.tolist()
    plain = make_model(seed=seed, position_scheme=scheme, attention_impl=impl)  # no EOS tweak
    assert greedy_decode(plain, src, max_new_tokens=20, use_cache=True).tolist() == \
        greedy_decode(plain, src, max_new_tokens=20, use_cache=False).tolist()


@pytest.mark.parametrize("first", [1, 3], ids=["one_token_first", "prefix_first"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_cached_step_logits_equal_full_prefix(scheme, impl, first):
    model = make_model(position_scheme=scheme, attention_impl=impl)
    src, tgt = source_batch(SRC_LENGTHS), target_batch([9] * len(SRC_LENGTHS))
    full = model.decode(tgt, model.encode(src))
    memory = model.encode(src)
    steps = [model.decode(tgt[:, :first], memory, use_cache=True)]
    steps += [model.decode(tgt[:, t:t + 1], memory, use_cache=True)
              for t in range(first, tgt.size(1))]
    assert memory.length == tgt.size(1)
    close(torch.cat(steps, dim=1), full)


def test_memory_select_reorders_rows():
    model = make_model()
    src, tgt = source_batch(SRC_LENGTHS), target_batch([6] * len(SRC_LENGTHS))
    rows = torch.tensor([2, 0, 4, 4, 1])  # reorder, repeat and drop rows
    memory = model.encode(src)
    chosen = memory.select(rows)
    close(chosen.states, memory.states[rows], atol=0)
    assert chosen.src_mask.equal(memory.src_mask[rows])
    for (k, v), (k0, v0) in zip(chosen.cross_kv, memory.cross_kv, strict=True):
        assert k.equal(k0[rows]) and v.equal(v0[rows])
    close(model.decode(tgt[rows], chosen), model.decode(tgt, memory)[rows], atol=1e-10)

    # Selecting in the middle of cached decoding carries the caches along.
    memory = model.encode(src)
    first = model.decode(tgt[:, :3], memory, use_cache=True)
    chosen = memory.select(rows)
    assert chosen.length == 3
    for cache, cache0 in zip(chosen.caches, memory.caches, strict=True):
        assert cache.k.equal(cache0.k[rows]) and cache.v.equal(cache0.v[rows])
    nxt = model.decode(tgt[rows, 3:4], chosen, use_cache=True)
    full = model.decode(tgt, model.encode(src))
    close(first, full[:, :3])
    close(nxt, full[rows, 3:4])


# ----------------------------------------------------------------------------- beam search
LENGTHS = [5, 1, 9, 3]


def score(model, src, out, alpha=0.6):
    """Length-normalised log-probability of ``out``, computed from the teacher-forced forward
    pass (not from the decoding module's own scoring helpers)."""
    bos = torch.full((out.size(0), 1), BOS_ID)
    logp = torch.log_softmax(model(src, torch.cat([bos, out[:, :-1]], dim=1)).double(), dim=-1)
    token = logp.gather(-1, out[..., None]).squeeze(-1).masked_fill(out == PAD_ID, 0.0)
    length = (out != PAD_ID).sum(dim=1)  # the bytes, and EOS if the row ended
    return token.sum(dim=1) / length.double() ** alpha


def test_scoring_helpers_agree_with_the_forward_pass():
    model = make_model(seed=2)
    src = source_batch(LENGTHS, seed=2)
    out = beam_search(model, src, 3, max_new_tokens=12)
    expected = score(model, src, out)
    helpers_score = normalized_score(sequence_logprob(model, src, out), output_length(out), 0.6)
    close(helpers_score.double(), expected, atol=1e-5)
    assert output_length(torch.tensor([[5, 6, EOS_ID, PAD_ID], [5, PAD_ID, PAD_ID, PAD_ID],
                                       [5, 6, 7, 8]])).tolist() == [3, 1, 4]


def test_default_decode_steps_are_src_len_plus_16_capped_at_max_positions_minus_1():
    cfg = ModelConfig(**TINY)  # 64 positions
    assert [decode_steps(None, n, cfg) for n in (0, 5, 47, 48, 60)] == [16, 21, 63, 63, 63]
    assert decode_steps(7, 60, cfg) == 7  # one given is kept


def test_normalized_score_divides_by_length_to_the_alpha_in_the_logprobs_precision():
    logprob = torch.tensor([-3.0, -2.0, -1.5], dtype=torch.float64)
    length = torch.tensor([3, 1, 0])  # an empty output counts as one token
    score = normalized_score(logprob, length, 0.6)
    assert score.dtype == torch.float64
    assert score.tolist() == pytest.approx([-3.0 / 3 ** 0.6, -2.0, -1.5], rel=1e-13, abs=0)
    assert normalized_score(logprob, length, 0.0).tolist() == [-3.0, -2.0, -1.5]  # raw sums
    assert normalized_score(logprob, length, 1.0).tolist() == pytest.approx([-1.0, -2.0, -1.5])


def test_trim_drops_trailing_pad_columns_and_keeps_one_of_an_all_pad_batch():
    P = PAD_ID
    assert _trim(torch.tensor([[5, P, P, P], [6, 7, P, P]])).tolist() == [[5, P], [6, 7]]
    assert _trim(torch.tensor([[P, 5, P]])).tolist() == [[P, 5]]  # a PAD before a token stays
    assert _trim(torch.tensor([[5, EOS_ID]])).tolist() == [[5, EOS_ID]]
    assert _trim(torch.full((2, 3), P)).tolist() == [[P], [P]]


@pytest.mark.parametrize("seed", range(4))
def test_beam_one_is_greedy(seed):
    model = make_model(seed=seed, dtype=torch.float32)
    src = source_batch(LENGTHS, seed=seed)
    assert torch.equal(beam_search(model, src, 1, max_new_tokens=12),
                       greedy_decode(model, src, 12))


@pytest.mark.parametrize("beam", [2, 4])
@pytest.mark.parametrize("seed", range(4))
def test_beam_never_scores_below_greedy(seed, beam):
    # EOS raised until some greedy rows end early: finished hypotheses of many lengths compete
    src = source_batch(LENGTHS, seed=seed)
    model = stopping_model(src, seed=seed, dtype=torch.float64)
    greedy = greedy_decode(model, src, 12)
    out = beam_search(model, src, beam, max_new_tokens=12)
    assert out.shape[0] == src.shape[0]
    assert any(EOS_ID in row for row in out.tolist())  # some hypotheses finished
    assert torch.all(score(model, src, out) >= score(model, src, greedy) - 1e-9)


def test_beam_normalises_scores_by_length():
    """BOS -> s (0.5) or w (0.45); s -> EOS; w -> x -> y -> z -> EOS. Greedy, and beam search
    on raw log-probabilities, write "s"; normalised by length^0.6 (log 0.45 / 5^0.6 against
    log 0.5 / 2^0.6), "wxyz" scores higher."""
    s, w, x, y, z = (ord(c) for c in "swxyz")
    model = bigram_model({BOS_ID: {s: math.log(0.5), w: math.log(0.45)}, s: {EOS_ID: 0.0},
                          w: {x: 0.0}, x: {y: 0.0}, y: {z: 0.0}, z: {EOS_ID: 0.0}})
    src = source_batch([3, 5])
    assert greedy_decode(model, src, 8).tolist() == [[s, EOS_ID]] * 2
    assert beam_search(model, src, 3, 8).tolist() == [[w, x, y, z, EOS_ID]] * 2
    assert math.log(0.45) / 5 ** 0.6 > math.log(0.5) / 2 ** 0.6


def test_beam_rows_stop_at_eos_and_pad_after():
    src = source_batch(LENGTHS)
    model = stopping_model(src, seed=1)
    out = beam_search(model, src, 3, max_new_tokens=12).tolist()
    ended = [row for row in out if EOS_ID in row]
    assert ended  # the property below is checked on real rows
    for row in ended:
        assert all(t == PAD_ID for t in row[row.index(EOS_ID) + 1:])


@pytest.mark.parametrize("seed", range(4))
def test_batched_beam_equals_beam_one_row_at_a_time(seed):
    src = source_batch(LENGTHS, seed=seed)
    model = stopping_model(src, seed=seed)
    batched = beam_search(model, src, 3, max_new_tokens=12)
    for i in range(src.size(0)):
        alone = beam_search(model, trim(src[i:i + 1]), 3, max_new_tokens=12)[0].tolist()
        row = batched[i].tolist()
        assert row[: len(alone)] == alone and all(t == PAD_ID for t in row[len(alone):])


def test_beam_beats_greedy_where_greedy_is_provably_worse():
    """BOS -> a (0.55) or b (0.45); a -> c, d or e (0.34, 0.33, 0.33); b, c, d, e -> EOS.
    Greedy writes "ac" (probability 0.187); the best output is "b" (0.45), which wins also
    after length normalisation."""
    a, b, c = (ord(x) for x in "abc")
    log = math.log
    model = greedy_trap_model()
    src = source_batch([3, 5])
    assert greedy_decode(model, src, 8).tolist() == [[a, c, EOS_ID]] * 2
    assert beam_search(model, src, 3, 8).tolist() == [[b, EOS_ID]] * 2
    assert beam_search(model, src, 2, 8).tolist() == [[b, EOS_ID]] * 2
    greedy_score = (log(0.55) + log(0.34)) / 3 ** 0.6
    beam_score = log(0.45) / 2 ** 0.6
    assert beam_score > greedy_score
    expected = torch.tensor([beam_score] * 2, dtype=torch.float64)
    close(score(model, src, torch.tensor([[b, EOS_ID]] * 2)), expected, atol=1e-6)


def test_beam_finds_better_outputs_than_greedy_somewhere():
    better = 0
    for seed in range(6):
        model = make_model(seed=seed, dtype=torch.float64)
        src = source_batch(LENGTHS, seed=seed)
        gain = score(model, src, beam_search(model, src, 4, 12)) - score(
            model, src, greedy_decode(model, src, 12))
        better += int((gain > 1e-6).sum())
    assert better > 0  # the search is real, not greedy in disguise


# ----------------------------------------------------------------------------- predict
def test_python_api_rejects_bad_input(untrained_run):
    from transformer_tiny.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(untrained_run)
    for texts in ("abc", [b"abc"], b"abc", None, 5, ["a", None]):
        with pytest.raises(TypeError, match=r"^texts must be an iterable of str, such as a list "
                                            r"\(not one str\)$"):
            predict(model, texts)
    for beam, max_new_tokens in ((1.5, None), (2.0, None), ("2", None), (None, None),
                                 (True, None), (1, "5"), (1, 2.5), (1, True)):
        with pytest.raises(TypeError, match="must be an int"):
            predict(model, ["abc"], max_new_tokens, beam=beam)
    assert predict(model, (t for t in ["ab", "c"])) == predict(model, ["ab", "c"])  # iterables
    assert predict(model, ["ab"], np.int64(3), beam=np.int64(2)) == \
        predict(model, ["ab"], 3, beam=2)  # NumPy integers are integers
    with pytest.raises(ValueError,
                       match=r"^input 1 too long: 1000 bytes, this model supports at most 46$"):
        predict(model, ["x" * 1000])


def test_surrogate_model_emits_an_encoded_surrogate():
    (ids, ended), = predict(surrogate_model(), ["abc"])
    assert ids == SURROGATE_BYTES and ended
    assert not TOK.is_valid_utf8(ids)
    assert TOK.decode(ids) == "\ud800"  # decode() carries it as a lone surrogate


def test_batches_by_length_yields_every_index_once_in_sorted_batches_of_wrapped_ids():
    texts = ["abcd", "", "é", "xy", "q"]  # 4, 0, 2, 2 and 1 bytes
    batches = list(batches_by_length(texts, 2, ModelConfig(**TINY)))
    assert [len(rows) for rows, _ in batches] == [2, 2, 1]
    order = [i for rows, _ in batches for i in rows]
    assert sorted(order) == [0, 1, 2, 3, 4]  # each input exactly once
    assert [len(texts[i].encode()) for i in order] == [0, 1, 2, 2, 4]  # shortest first
    for rows, src in batches:  # BOS, the UTF-8 bytes, EOS, then PAD to the batch's longest
        width = max(len(texts[i].encode()) for i in rows) + 2
        expected = [[BOS_ID, *texts[i].encode(), EOS_ID] for i in rows]
        assert src.tolist() == [r + [PAD_ID] * (width - len(r)) for r in expected]


def test_predict_keeps_the_input_order_when_it_batches_by_length():
    model = make_model(seed=20)  # a seed whose outputs differ for all six inputs
    texts = ["hello", "a", "", "abc", "zz", "é!"]
    alone = [predict(model, [t], max_new_tokens=6)[0] for t in texts]
    assert len({tuple(ids) for ids, _ in alone}) == len(texts)  # outputs tell the inputs apart
    assert predict(model, texts, max_new_tokens=6, batch_size=2) == alone
    assert predict(model, texts, max_new_tokens=6) == alone


def test_predict_is_greedy_unless_beam_is_above_one():
    a, b, c = (ord(x) for x in "abc")
    model = greedy_trap_model()  # greedy writes "ac", a beam of 2 or more "b"
    assert predict(model, ["xyz"]) == [([a, c], True)]
    assert predict(model, ["xyz"], beam=1) == [([a, c], True)]
    assert predict(model, ["xyz"], beam=2) == [([b], True)]
    assert predict(model, ["xyz"], beam=3) == [([b], True)]


@pytest.mark.parametrize("beam", [1, 2])
def test_predict_stops_after_max_new_tokens(beam):
    never_ends = chain_model([BOS_ID, 97, 97])  # "a" after "a", never EOS
    texts = ["ab", "abcdef"]  # sources of 4 and 8 tokens with BOS and EOS
    assert predict(never_ends, texts, 3, beam=beam) == [([97] * 3, False)] * 2
    # None: the decoders' default, the source's tokens + 16
    assert predict(never_ends, ["ab"], beam=beam) == [([97] * 20, False)]
    # a function of the batch's source length in tokens, capped at max_positions - 1 = 63
    assert predict(never_ends, texts, lambda n: 2 * n, batch_size=1, beam=beam) == \
        [([97] * 8, False), ([97] * 16, False)]
    assert predict(never_ends, ["ab"], lambda n: 1000, beam=beam) == [([97] * 63, False)]
    assert predict(never_ends, ["ab"], 1000, beam=beam) == [([97] * 63, False)]  # a number too
    with pytest.raises(ValueError, match="max_new_tokens"):
        predict(never_ends, ["ab"], 0, beam=beam)


def test_predict_decodes_at_most_batch_size_rows_at_a_time_with_the_cache_by_default(
        monkeypatch):
    """The decoder sees batches of at most ``batch_size`` rows (128 by default) and uses the KV
    cache unless ``use_cache=False``."""
    calls = []

    def recording_greedy_decode(model, src, max_new_tokens=None, use_cache=True, **kwargs):
        calls.append((src.size(0), use_cache))
        return greedy_decode(model, src, max_new_tokens, use_cache=use_cache, **kwargs)

    monkeypatch.setattr("transformer_tiny.decoding.greedy_decode", recording_greedy_decode)
    model = chain_model([BOS_ID, 97, EOS_ID])  # always answers "a"
    assert predict(model, ["x"] * 130) == [([97], True)] * 130
    assert calls == [(128, True), (2, True)]
    calls.clear()
    assert predict(model, ["x", "yy", "zzz"], batch_size=2, use_cache=False) == [([97], True)] * 3
    assert calls == [(2, False), (1, False)]


def test_beam_search_decodes_as_many_rows_at_a_time_as_greedy_decoding(monkeypatch):
    """A beam of K holds K rows per text: batches of ``batch_size // K`` texts (at least one),
    so that a wide beam needs no more memory than greedy decoding's batch."""
    texts = []

    def recording_beam_search(model, src, beam, *args, **kwargs):
        texts.append(src.size(0))
        return beam_search(model, src, beam, *args, **kwargs)

    monkeypatch.setattr("transformer_tiny.decoding.beam_search", recording_beam_search)
    model = chain_model([BOS_ID, 97, EOS_ID])
    assert predict(model, ["x"] * 40, beam=4) == [([97], True)] * 40
    assert texts == [32, 8]  # 128 rows: 32 texts of 4
    texts.clear()
    assert predict(model, ["x"] * 3, beam=64, batch_size=16) == [([97], True)] * 3
    assert texts == [1, 1, 1]
