"""Beam search: width 1 is greedy decoding, and a wider beam never scores below greedy."""

from __future__ import annotations

import pytest
import torch
from conftest import make_model, source_batch

from transformer_tiny.decoding import (
    beam_search,
    greedy_decode,
    normalized_score,
    output_length,
    sequence_logprob,
)
from transformer_tiny.tokenizer import EOS_ID, PAD_ID

LENGTHS = [5, 1, 9, 3]


def score(model, src, out, alpha=0.6):
    return normalized_score(sequence_logprob(model, src, out), output_length(out), alpha)


@pytest.mark.parametrize("seed", range(4))
def test_beam_one_is_greedy(seed):
    model = make_model(seed=seed, dtype=torch.float32)
    src = source_batch(LENGTHS, seed=seed)
    assert torch.equal(beam_search(model, src, 1, max_new_tokens=12),
                       greedy_decode(model, src, 12))


@pytest.mark.parametrize("beam", [2, 4])
@pytest.mark.parametrize("seed", range(4))
def test_beam_never_scores_below_greedy(seed, beam):
    # Random models put real mass on EOS, so hypotheses of many lengths compete.
    model = make_model(seed=seed, dtype=torch.float64)
    src = source_batch(LENGTHS, seed=seed)
    greedy = greedy_decode(model, src, 12)
    out = beam_search(model, src, beam, max_new_tokens=12)
    assert out.shape[0] == src.shape[0]
    assert torch.all(score(model, src, out) >= score(model, src, greedy) - 1e-9)


def test_beam_rows_stop_at_eos_and_pad_after():
    model = make_model(seed=1, dtype=torch.float32)
    out = beam_search(model, source_batch(LENGTHS), 3, max_new_tokens=12)
    for row in out.tolist():
        if EOS_ID in row:
            assert all(t == PAD_ID for t in row[row.index(EOS_ID) + 1:])


def test_beam_finds_better_outputs_than_greedy_somewhere():
    better = 0
    for seed in range(6):
        model = make_model(seed=seed, dtype=torch.float64)
        src = source_batch(LENGTHS, seed=seed)
        gain = score(model, src, beam_search(model, src, 4, 12)) - score(
            model, src, greedy_decode(model, src, 12))
        better += int((gain > 1e-6).sum())
    assert better > 0  # the search is real, not greedy in disguise
