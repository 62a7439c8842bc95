"""Data: deterministic splits, no held-out leakage, task targets, batching."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace

import pytest
import torch
from helpers import ALL_TASKS, SMALL, TOK
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer_tiny.alphabets import ALPHABETS
from transformer_tiny.config import DataConfig
from transformer_tiny.data import (
    DataModule,
    Example,
    PairDataset,
    collate,
    draw_inputs,
    hard_inputs,
    heldout_inputs,
    length_grouped_batches,
)
from transformer_tiny.heldout import HELDOUT_FRACTION, hash_fraction, is_heldout
from transformer_tiny.tasks import TASKS, OutputRoom, Task, register_task, task_for
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID


def test_determinism_from_data_seed():
    cfg = DataConfig(**SMALL)
    a, b = DataModule(cfg), DataModule(DataConfig(**SMALL))
    assert a.val_inputs == b.val_inputs and a.test_inputs == b.test_inputs
    assert a.train_dataset(0).inputs == b.train_dataset(0).inputs
    assert a.train_dataset(0).inputs != a.train_dataset(1).inputs  # fresh strings every epoch
    other = DataModule(DataConfig(**SMALL, data_seed=99))
    assert other.val_inputs != a.val_inputs and other.test_inputs != a.test_inputs
    assert other.train_dataset(0).inputs != a.train_dataset(0).inputs


def test_a_task_whose_outputs_outgrow_the_decoders_room_is_a_note():
    """A task a user adds, writing each character three times: its outputs pass the default
    room (the source's length + 16 tokens) from 8 characters on, which training says; with an
    ``output_room`` of its own, nothing to say."""
    triple = register_task(Task("triple", "each character three times",
                                lambda text: "".join(c * 3 for c in text)))
    try:
        cfg = DataConfig(task="triple", alphabet="digits", min_len=1, max_len=12, val_samples=50,
                         test_samples=50)
        dm = DataModule(cfg)
        held = dm.val_inputs + dm.test_inputs
        n = sum(3 * len(x) > len(x) + 2 + 16 for x in held)
        assert 0 < n < len(held)
        assert dm.notes == [f"{n} held-out outputs are longer than decoding allows for their "
                            "inputs (1 byte per input token + 16): eval.py scores them cut "
                            "short; infer.py --max-new-tokens allows more; give the task an "
                            "output_room (docs/tasks.md)"]
        TASKS["triple"] = replace(triple, output_room=OutputRoom(per_token=3, plus=0))
        assert DataModule(cfg).notes == []
        for name in ALL_TASKS:  # the built-in tasks fit their room
            assert DataModule(DataConfig(task=name)).notes == [], name
    finally:
        TASKS.pop("triple", None)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_inputs_are_deterministic_in_the_seed_and_held_out(name):
    cfg = DataConfig(task=name, max_len=12, **SMALL)
    assert draw_inputs(cfg, 100, seed=3) == draw_inputs(cfg, 100, seed=3)
    assert draw_inputs(cfg, 100, seed=3) != draw_inputs(cfg, 100, seed=4)
    dm = DataModule(cfg)
    assert dm.val_inputs == DataModule(cfg).val_inputs
    held_out = set(dm.val_inputs) | set(dm.test_inputs)
    assert not set(dm.val_inputs) & set(dm.test_inputs)
    train_set = dm.train_dataset(0)
    assert not held_out & set(train_set.inputs)
    assert all(1 <= len(x) <= 12 for x in train_set.inputs)
    solve = task_for(cfg).solve
    assert train_set.targets == [solve(x) for x in train_set.inputs]


def test_splits_have_the_configured_sizes_and_lengths():
    cfg = DataConfig(min_len=3, max_len=6, alphabet="letters", **SMALL)
    dm = DataModule(cfg)
    train = dm.train_dataset(0).inputs
    assert (len(train), len(dm.val_inputs), len(dm.test_inputs)) == (300, 60, 80)
    for text in train + dm.val_inputs + dm.test_inputs:
        assert 3 <= len(text) <= 6
        assert set(text) <= set(ALPHABETS["letters"])


@pytest.mark.parametrize("max_len", [3, 4])
def test_no_heldout_input_in_training(max_len):
    """With 'digits' up to 3-4 characters, training draws repeat and hit the slice often."""
    cfg = DataConfig(alphabet="digits", min_len=1, max_len=max_len, train_samples=400,
                     val_samples=30, test_samples=30)
    dm = DataModule(cfg)
    val, test = set(dm.val_inputs), set(dm.test_inputs)
    assert len(val) == 30 and len(test) == 30  # distinct within each split
    assert not val & test
    assert all(is_heldout(x, cfg.data_seed) for x in val | test)
    for epoch in range(3):
        train = dm.train_dataset(epoch).inputs
        assert len(train) == 400
        assert not any(is_heldout(x, cfg.data_seed) for x in train)


def test_training_keeps_every_length_and_the_generator_distribution():
    # parens: 4 balanced strings of length 2, 32 of length 4. A held-out list drawn from the
    # generator would take them all; the hashed slice leaves most of them to training.
    cfg = DataConfig(task="parens", max_len=16, train_samples=4000, val_samples=1000,
                     test_samples=2000)
    dm = DataModule(cfg)
    train = dm.train_dataset(0).inputs
    shortest = {x for x in train if len(x) == 2 and x in {"()", "[]", "{}", "<>"}}
    assert len(shortest) >= 2  # each is held out with probability HELDOUT_FRACTION
    assert not shortest & (set(dm.val_inputs) | set(dm.test_inputs))
    # Independent draws: length 2 keeps its share of the generator (1 in 8 balanced strings).
    balanced_2 = sum(x in shortest for x in train)
    assert balanced_2 > 0.5 * len(train) / 16


def test_heldout_slice_is_a_fixed_fraction_of_strings():
    texts = [f"string {i}" for i in range(20_000)]
    share = sum(is_heldout(t, 1234) for t in texts) / len(texts)
    assert abs(share - HELDOUT_FRACTION) < 0.01
    assert [is_heldout(t, 1) for t in texts[:200]] != [is_heldout(t, 1234) for t in texts[:200]]


def test_heldout_split_is_the_same_in_every_process_and_version():
    """The split is pinned: a hash that changed between processes (Python's ``hash``) or
    versions would put strings held out by one run into another's training data, and make
    checkpoints evaluate on data they trained on."""
    assert hash_fraction("hello", 1234) == 0.019749890291583708
    assert hash_fraction("mississippi", 0) == 0.10437465305516477
    held = [i for i in range(200) if is_heldout(f"string {i}", 1234)]
    assert held == [1, 15, 23, 32, 42, 48, 53, 106, 133, 143, 152, 168, 170, 171, 172, 183, 184,
                    192]


@pytest.mark.parametrize("heldout, where", [
    (True, "in the held-out slice and not among 10 excluded strings"),
    (False, "outside the held-out slice and not among 10 excluded strings"),
    (None, "outside the excluded set")])
def test_too_few_strings_in_the_slice_is_a_clear_error(heldout, where):
    # 'digits' of length 1: ten strings, all excluded, so no allowed string exists; the search
    # stops with an error, saying where it looked, instead of looping forever.
    cfg = DataConfig(alphabet="digits", min_len=1, max_len=1, **SMALL)
    everything = {str(d) for d in range(10)}
    with pytest.raises(ValueError) as e:
        draw_inputs(cfg, 5, seed=0, heldout=heldout, exclude=everything)
    assert str(e.value) == f"cannot draw 5 reverse inputs of lengths 1-1 {where}: too few strings"


def test_a_slice_empty_without_an_exclusion_says_no_word_of_one():
    cfg = DataConfig(alphabet="digits", min_len=1, max_len=1, **SMALL)
    assert not any(is_heldout(str(d), cfg.data_seed) for d in range(10))  # the premise
    with pytest.raises(ValueError) as e:
        draw_inputs(cfg, 5, seed=0, heldout=True)
    assert str(e.value) == ("cannot draw 5 reverse inputs of lengths 1-1 in the held-out slice: "
                            "too few strings")


def _drawing(monkeypatch, allowed: dict[int, str]) -> itertools.count:
    """The default task's generator replaced: draw ``k`` (from 1) gives ``allowed[k]``, every
    other draw a string outside the allowed ones. Returns the draw counter."""
    import transformer_tiny.data as data

    draws = itertools.count(1)

    def make(rng, chars, lo, hi):
        return allowed.get(next(draws), "excluded")

    task = task_for(DataConfig())
    monkeypatch.setattr(data, "task_for", lambda cfg: replace(task, make_input=make))
    return draws


@pytest.mark.parametrize("allowed_at, found", [(102_000, True), (102_001, False)])
def test_search_makes_up_to_1000_draws_per_input_plus_100000(allowed_at, found, monkeypatch):
    """For ``n`` inputs the search makes up to ``1000 n + 100 000`` draws: with one input found
    at once, a second is found if it comes at draw 102 000, and is too few one draw later."""
    _drawing(monkeypatch, {1: "first", allowed_at: "second"})
    if found:
        assert draw_inputs(DataConfig(**SMALL), 2, seed=0, exclude={"excluded"}) == [
            "first", "second"]
    else:
        with pytest.raises(ValueError, match="too few strings"):
            draw_inputs(DataConfig(**SMALL), 2, seed=0, exclude={"excluded"})


def test_search_with_nothing_allowed_stops_after_100000_draws_whatever_it_asks_for(monkeypatch):
    draws = _drawing(monkeypatch, {100_001: "too late"})
    with pytest.raises(ValueError, match="too few strings"):
        draw_inputs(DataConfig(**SMALL), 100_000, seed=0, exclude={"excluded"})
    assert next(draws) == 100_002  # not the 100,100,000 draws that 100,000 inputs may take


def test_heldout_inputs_are_two_disjoint_sets_from_the_slice():
    cfg = DataConfig(**SMALL)
    val, test = heldout_inputs(cfg)
    assert (len(val), len(test)) == (cfg.val_samples, cfg.test_samples)
    assert len(set(val)) == len(val) and len(set(test)) == len(test) and not set(val) & set(test)
    assert all(is_heldout(t, cfg.data_seed) for t in val + test)
    dm = DataModule(cfg)
    assert (dm.val_inputs, dm.test_inputs) == (val, test)  # what training validates on


def test_draw_inputs_overrides():
    cfg = DataConfig(**SMALL)
    texts = draw_inputs(cfg, 50, seed=5, min_len=40, max_len=50, alphabet="digits")
    assert len(texts) == 50 and all(40 <= len(t) <= 50 and t.isdigit() for t in texts)
    assert draw_inputs(cfg, 50, seed=5) == draw_inputs(cfg, 50, seed=5)
    excluded = set(draw_inputs(DataConfig(alphabet="digits", max_len=2, **SMALL), 30, seed=1))
    again = draw_inputs(DataConfig(alphabet="digits", max_len=2, **SMALL), 30, seed=2,
                        exclude=excluded)
    assert not set(again) & excluded


@settings(max_examples=50, deadline=None)
@given(alphabet=st.sampled_from(sorted(ALPHABETS)), lo=st.integers(1, 6),
       extra=st.integers(0, 6), n=st.integers(1, 30), seed=st.integers(0, 2**31))
def test_data_generation_properties(alphabet, lo, extra, n, seed):
    cfg = DataConfig(alphabet=alphabet, min_len=lo, max_len=lo + extra)
    inputs = draw_inputs(cfg, n, seed)
    assert inputs == draw_inputs(cfg, n, seed)  # deterministic
    assert len(inputs) == n
    assert all(lo <= len(x) <= lo + extra and set(x) <= set(ALPHABETS[alphabet]) for x in inputs)
    held_out = set(inputs[: n // 2])
    space = sum(len(ALPHABETS[alphabet]) ** k for k in range(lo, lo + extra + 1))
    if len(held_out) == space:  # nothing left to draw: a clear error, never a leak
        with pytest.raises(ValueError, match="too few strings"):
            draw_inputs(cfg, n, seed + 1, exclude=held_out)
    else:
        assert not held_out & set(draw_inputs(cfg, n, seed + 1, exclude=held_out))


# ----------------------------------------------------------------------------- pairs
def test_copy_task():
    ds = PairDataset(["héllo", "x"], "copy")
    assert ds.targets == ["héllo", "x"]
    assert len(ds) == 2 and ds[1] == Example(TOK.encode("x"), TOK.encode("x"))


# ----------------------------------------------------------------------------- batching
def test_collate():
    batch = [Example(TOK.encode("ab"), TOK.encode("ba")), Example(TOK.encode("héllo"),
                                                                  TOK.encode("olléh"))]
    out = collate(batch)
    assert set(out) == {"src", "tgt_in", "tgt_out"}
    assert out["src"].shape == (2, 8) and out["tgt_in"].shape == out["tgt_out"].shape == (2, 7)
    assert all(t.dtype == torch.long for t in out.values())
    b, a = TOK.encode("b"), TOK.encode("a")
    assert out["src"][0].tolist() == [BOS_ID, *TOK.encode("ab"), EOS_ID] + [PAD_ID] * 4
    assert out["tgt_in"][0].tolist() == [BOS_ID, *b, *a] + [PAD_ID] * 4
    assert out["tgt_out"][0].tolist() == [*b, *a, EOS_ID] + [PAD_ID] * 4
    y = TOK.encode("olléh")
    assert out["src"][1].tolist() == [BOS_ID, *TOK.encode("héllo"), EOS_ID]
    assert out["tgt_in"][1].tolist() == [BOS_ID, *y]
    assert out["tgt_out"][1].tolist() == [*y, EOS_ID]
    # teacher forcing: tgt_out is tgt_in shifted left by one
    assert out["tgt_in"][:, 1:].equal(
        out["tgt_out"][:, :-1].masked_fill(out["tgt_out"][:, :-1] == EOS_ID, PAD_ID))


@given(st.lists(st.integers(1, 40), max_size=300), st.integers(1, 16), st.integers(1, 3),
       st.integers(0, 1000))
def test_length_grouped_batches_are_a_partition(lengths, batch_size, world, seed):
    """Every example once; full batches, but for the last ``world`` at most (the last step's)."""
    batches = length_grouped_batches(lengths, batch_size, random.Random(seed), world)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) == batch_size for b in batches[:max(0, len(batches) - world)])
    assert all(0 < len(b) <= batch_size for b in batches)
    assert batches == length_grouped_batches(lengths, batch_size, random.Random(seed), world)


def test_length_grouped_batches_have_similar_lengths():
    rng = random.Random(0)
    lengths = [rng.randint(1, 64) for _ in range(1000)]
    batches = length_grouped_batches(lengths, 10, random.Random(1))
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spread) / len(spread) < 5  # random batches would spread over ~50


def test_train_loader_covers_the_epoch():
    cfg = DataConfig(min_len=1, max_len=8, **SMALL)
    dm = DataModule(cfg)
    ds = dm.train_dataset(0)
    seen = []
    for batch in dm.train_loader(0, batch_size=32):
        assert batch["src"].size(0) <= 32
        for row in batch["src"].tolist():
            seen.append(TOK.decode(row))
    assert sorted(seen) == sorted(ds.inputs)
    ranks = [list(dm.train_loader(0, 32, rank=r, world=2)) for r in (0, 1)]
    assert sum(b["src"].size(0) for part in ranks for b in part) == 300
    assert min(len(part) for part in ranks) > 0


def test_processes_train_on_batches_of_one_step_at_a_time():
    """With two processes, the i-th batches of rank 0 and rank 1 are one step: cut from the
    same sorted run of lengths, rank 0's strings no longer than rank 1's."""
    dm = DataModule(DataConfig(min_len=1, max_len=16, **{**SMALL, "train_samples": 1000}))
    first, second = (list(dm.train_loader(0, 16, rank=r, world=2)) for r in (0, 1))
    lengths = [[(row != PAD_ID).sum().item() for row in b["src"]] for b in first + second]
    pairs = list(zip(lengths[:len(first)], lengths[len(first):], strict=False))
    steps_per_epoch = math.ceil(1000 / 16) // 2  # as the trainer counts them
    assert len(pairs) == min(len(first), len(second)) >= steps_per_epoch
    assert all(max(a) <= min(b) for a, b in pairs)


def test_hard_share_of_training_draws():
    """A quarter of shift's training strings come from its hard generator (mostly the letters
    w-z and W-Z), none held out; the hard slice that evaluation scores is held out, so training
    never sees it."""
    cfg = DataConfig(task="shift", alphabet="printable", min_len=8, max_len=16, hard_share=0.25,
                     train_samples=400, val_samples=8, test_samples=8)

    def late(inputs: list[str]) -> int:  # strings at least half made of w-z, W-Z
        return sum(2 * sum(c in "wxyzWXYZ" for c in x) >= len(x) for x in inputs)

    inputs = DataModule(cfg).train_dataset(0).inputs
    # 100 drawn hard, of which a few may miss the mark; a uniform draw almost never makes it.
    assert len(inputs) == 400 and 88 <= late(inputs) <= 106
    assert not any(is_heldout(x, cfg.data_seed) for x in inputs)
    assert all(is_heldout(x, cfg.data_seed) for x in hard_inputs(cfg, 50))
    plain = DataModule(replace(cfg, hard_share=0.0))
    assert late(plain.train_dataset(0).inputs) <= 4


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_hard_share_is_a_fraction(share):
    with pytest.raises(ValueError, match="hard_share"):
        DataConfig(hard_share=share)


@pytest.mark.parametrize("n, world, seed", [(120, 1, 3), (102, 1, 0), (250, 1, 7), (250, 2, 7),
                                           (430, 2, 1), (1210, 3, 5)])
def test_length_grouped_steps_are_sorted_within_pools_of_50_steps(n, world, seed):
    """The examples, shuffled by the same generator, less the last ``n % (2 * world)`` of them,
    are cut into pools of 50 steps (100 * world examples at batch size 2); each step is
    2 * world examples of one pool, adjacent in length, and its ``world`` batches are
    consecutive. The examples set aside, a random sample, make the last step."""
    lengths = random.Random(100 + seed).sample(range(10_000), n)  # distinct lengths
    batches = length_grouped_batches(lengths, 2, random.Random(seed), world)
    shuffled = list(range(n))
    random.Random(seed).shuffle(shuffled)
    size = 2 * world
    full = n - n % size
    pools = [shuffled[start:min(start + 50 * size, full)] for start in range(0, full, 50 * size)]
    expected = []
    for pool in pools:
        ranked = sorted(pool, key=lambda i: lengths[i])
        expected += [ranked[j:j + size] for j in range(0, len(ranked), size)]
    steps = [[i for b in batches[j:j + world] for i in b] for j in range(0, len(batches), world)]
    if n % size:
        assert sorted(steps.pop()) == sorted(shuffled[full:])
    assert all(len(s) == size for s in steps)
    assert {frozenset(s) for s in steps} == {frozenset(s) for s in expected}
    if len(expected) > 2:
        assert [set(s) for s in steps] != [set(s) for s in expected]  # the steps are shuffled
