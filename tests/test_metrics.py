"""Scoring: per-character accuracy, length buckets and evaluate(), with exact expected values
from hand-wired models whose answers are known."""

from __future__ import annotations

import pytest
from helpers import chain_model, greedy_trap_model

from transformer_tiny.config import DataConfig
from transformer_tiny.metrics import char_accuracy, evaluate, even_buckets
from transformer_tiny.tasks import task_for
from transformer_tiny.tokenizer import BOS_ID, EOS_ID


@pytest.mark.parametrize("pred, target, expected", [
    ("abc", "abc", 1.0),
    ("abd", "abc", 2 / 3),
    ("abcd", "ab", 0.5),  # two extra characters count as two errors
    ("a", "abcd", 0.25),  # so do two missing ones
    ("ba", "ab", 0.0),  # right characters at the wrong places
    ("", "ab", 0.0),
    ("é😀", "é😀x", 2 / 3),  # code points, not bytes
    ("", "", 1.0),
    ("x", "x", 1.0),
    ("x", "", 0.0),
])
def test_char_accuracy(pred, target, expected):
    assert char_accuracy(pred, target) == pytest.approx(expected)


def test_even_buckets():
    assert even_buckets(1, 32) == [(1, 8), (9, 16), (17, 24), (25, 32)]
    assert even_buckets(1, 10) == [(1, 3), (4, 6), (7, 9), (10, 10)]
    assert even_buckets(5, 6) == [(5, 5), (6, 6)]
    assert even_buckets(1, 40, 2) == [(1, 20), (21, 40)]


def test_evaluate_scores_known_answers():
    model = chain_model([BOS_ID, ord("a"), ord("b"), EOS_ID])  # always answers "ab"
    inputs = ["ba", "xy", "b", "bab"]  # reversed: "ab" (right), "yx", "b", "bab"
    result = evaluate(model, inputs, "reverse", [(1, 1), (2, 2), (3, 3)], n_examples=2)
    assert result.n == 4
    assert result.exact_match == 0.25
    assert result.char_accuracy == 0.25  # 1 for "ab"; "yx", "b" and "bab" share no position
    assert result.buckets == {
        "1-1": {"exact_match": 0.0, "char_accuracy": 0.0, "n": 1},
        "2-2": {"exact_match": 0.5, "char_accuracy": 0.5, "n": 2},
        "3-3": {"exact_match": 0.0, "char_accuracy": 0.0, "n": 1},
    }
    assert result.examples == [{"input": "ba", "target": "ab", "pred": "ab"},
                               {"input": "xy", "target": "yx", "pred": "ab"}]


def test_evaluate_applies_the_tasks_format():
    model = chain_model([BOS_ID, *b"12", EOS_ID])  # always writes "12"
    task = task_for(DataConfig(task="add", max_len=3))  # one-digit numbers, two-digit sums
    result = evaluate(model, ["05+07", "1+1"], task)  # read as "5+7" and "1+1"
    assert result.exact_match == 0.5  # "12" is right; "02" is not
    assert result.char_accuracy == 0.75


def test_evaluate_one_input_and_the_result_as_a_dict():
    model = chain_model([BOS_ID, ord("a"), EOS_ID])  # always answers "a"
    result = evaluate(model, ["a"], "reverse")
    assert (result.exact_match, result.char_accuracy, result.n) == (1.0, 1.0, 1)
    assert result.examples == [] and result.buckets == {}  # none asked for
    assert result.to_dict() == {"exact_match": 1.0, "char_accuracy": 1.0, "n": 1, "buckets": {},
                                "examples": [], "char_error_rate": 0.0, "token_error_rate": 0.0}


def test_evaluate_decodes_up_to_max_new_tokens_or_else_the_tasks_output_room():
    model = chain_model([BOS_ID, ord("a"), ord("a")])  # writes "a" forever
    pairs = task_for(DataConfig(task="pairs", train_file="x.tsv"))  # 4 * source tokens + 16
    short = evaluate(model, ["xy"], pairs, n_examples=1, max_new_tokens=3,
                     references=[["bbb", "aaa", "aab"]])  # the example shows the answer matched
    assert short.examples == [{"input": "xy", "target": "aaa", "pred": "aaa"}]
    assert (short.exact_match, short.char_accuracy) == (1.0, 1.0)
    # "xy" is 4 tokens with BOS and EOS: the pairs task leaves 4 * 4 + 16 = 32 ...
    roomy = evaluate(model, ["xy"], pairs, n_examples=1, references=[["aaa"]])
    assert roomy.examples[0]["pred"] == "a" * 32
    assert roomy.char_accuracy == 3 / 32
    # ... and a task without its own room gets the decoders' default, 4 + 16 = 20
    assert evaluate(model, ["xy"], "copy", n_examples=1).examples[0]["pred"] == "a" * 20


def test_evaluate_decodes_greedily_unless_beam_is_above_one():
    model = greedy_trap_model()  # greedy writes "ac", a beam of 2 or more "b"
    greedy = evaluate(model, ["b"], "copy", n_examples=1)
    assert (greedy.exact_match, greedy.examples[0]["pred"]) == (0.0, "ac")
    beam = evaluate(model, ["b"], "copy", n_examples=1, beam=2)
    assert (beam.exact_match, beam.examples[0]["pred"]) == (1.0, "b")


def test_evaluate_error_rates_are_edits_per_reference_character_and_token():
    model = chain_model([BOS_ID, ord("a"), EOS_ID])  # always answers "a"
    one = evaluate(model, ["b"], "copy")  # "a" for "b": 1 edit in 1 character, 1 in 1 token
    assert (one.char_error_rate, one.token_error_rate) == (1.0, 1.0)
    two = evaluate(model, ["b", "a"], "copy")  # 1 edit in 2 characters and in 2 tokens
    assert (two.char_error_rate, two.token_error_rate) == (0.5, 0.5)
