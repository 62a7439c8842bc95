"""The toy tasks: their answers, their inputs, their options, and the README's add-a-task recipe."""

from __future__ import annotations

import itertools
import json
import random
import re
import string
from collections import Counter

import pytest
import torch
from conftest import ROOT, call_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer_tiny import tasks
from transformer_tiny.checkpoint import load_checkpoint
from transformer_tiny.cli.eval import eval_main
from transformer_tiny.cli.infer import infer_main
from transformer_tiny.cli.train import train_main
from transformer_tiny.config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from transformer_tiny.data import DataModule, draw_inputs
from transformer_tiny.metrics import evaluate
from transformer_tiny.tasks import (
    BRACKETS,
    TASKS,
    caesar_shift,
    get_task,
    parens_answer,
    task_for,
)
from transformer_tiny.train_eval import train

ALL_TASKS = ["reverse", "copy", "shift", "sort", "parens", "add"]
SMALL = dict(train_samples=300, val_samples=60, test_samples=80)


@pytest.fixture(autouse=True)
def keep_thread_count():
    """train() sets the number of torch threads; restore it for the other tests."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_registry_holds_every_task():
    assert set(ALL_TASKS) <= set(TASKS)
    for name in ALL_TASKS:
        assert get_task(name).name == name and get_task(name).description
        assert task_for(DataConfig(task=name)).name == name


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


# ----------------------------------------------------------------------------- shift
def test_shift_examples():
    assert caesar_shift("abc xyz", 3) == "def abc"
    assert caesar_shift("Hello, World! 42", 1) == "Ifmmp, Xpsme! 42"
    assert caesar_shift("héllo", 13) == "uéyyb"  # only a-z and A-Z move
    assert get_task("shift").solve("xyz") == "abc"  # default k = 3


@settings(max_examples=100, deadline=None)
@given(text=st.text(), k=st.integers(0, 25))
def test_shift_by_k_then_26_minus_k_is_identity(text, k):
    shifted = caesar_shift(text, k)
    assert len(shifted) == len(text)
    assert caesar_shift(shifted, (26 - k) % 26) == text
    assert all(a == b for a, b in zip(text, shifted, strict=True) if a not in string.ascii_letters)
    assert all(b.islower() == a.islower() for a, b in zip(text, shifted, strict=True)
               if a in string.ascii_letters)


def test_shift_k_is_a_validated_config_field():
    assert task_for(DataConfig(task="shift", shift=5)).solve("abz") == "fge"
    assert task_for(DataConfig(task="shift", shift=0)).solve("abz") == "abz"
    for bad in (26, -1):
        with pytest.raises(ConfigError, match=r"^shift:"):
            DataConfig(task="shift", shift=bad)
    with pytest.raises(ConfigError, match=r"^shift:"):
        DataConfig(task="shift", shift=True)


def test_bad_shift_flag_is_a_one_line_error(tmp_path, capsys):
    assert call_cli(train_main, ["--task", "shift", "--shift", "30",
                                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: shift:") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- sort
@settings(max_examples=100, deadline=None)
@given(text=st.text())
def test_sort_output_is_a_sorted_permutation(text):
    out = get_task("sort").solve(text)
    assert Counter(out) == Counter(text)
    assert all(ord(a) <= ord(b) for a, b in itertools.pairwise(out))


# ----------------------------------------------------------------------------- parens
def balanced_by_pair_removal(text: str) -> bool:
    """An independent check: delete adjacent matching pairs until none is left."""
    text = "".join(c for c in text if c in BRACKETS)
    while True:
        shorter = re.sub(r"\(\)|\[\]|\{\}|<>", "", text)
        if shorter == text:
            return text == ""
        text = shorter


def one_edit_from_balanced(text: str) -> bool:
    """Is ``text`` a balanced string with one bracket changed, swapped, dropped or inserted?"""
    n = len(text)
    candidates = [text[:i] + c + text[i + 1:] for i in range(n) for c in BRACKETS]
    candidates += [text[:i] + text[i + 1] + text[i] + text[i + 2:] for i in range(n - 1)]
    candidates += [text[:i] + text[i + 1:] for i in range(n)]
    candidates += [text[:i] + c + text[i:] for i in range(n + 1) for c in BRACKETS]
    return any(balanced_by_pair_removal(c) for c in candidates)


@pytest.mark.parametrize("text, answer", [
    ("", "balanced"), ("()", "balanced"), ("([]{<>})", "balanced"), ("()[]{}<>", "balanced"),
    ("(", "unbalanced"), (")(", "unbalanced"), ("([)]", "unbalanced"), ("(]", "unbalanced"),
    ("(()", "unbalanced"), ("())", "unbalanced"), ("<<>>>", "unbalanced"), ("a(b)c", "balanced"),
])
def test_parens_examples(text, answer):
    assert parens_answer(text) == answer


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=BRACKETS + "x", max_size=16))
def test_parens_agrees_with_pair_removal(text):
    expected = "balanced" if balanced_by_pair_removal(text) else "unbalanced"
    assert parens_answer(text) == expected


def test_parens_inputs_are_half_balanced_and_near_misses():
    cfg = DataConfig(task="parens", alphabet="digits", min_len=1, max_len=32)
    inputs = draw_inputs(cfg, 2000, seed=7)
    assert all(set(x) <= set(BRACKETS) and 1 <= len(x) <= 32 for x in inputs)  # not digits
    labels = [parens_answer(x) for x in inputs]
    assert labels == [
        "balanced" if balanced_by_pair_removal(x) else "unbalanced" for x in inputs]
    assert 0.4 <= labels.count("balanced") / len(inputs) <= 0.6
    unbalanced = [x for x, y in zip(inputs, labels, strict=True) if y == "unbalanced"]
    assert all(one_edit_from_balanced(x) for x in unbalanced[:300])  # hard negatives
    same_counts = [x for x in unbalanced if len(x) % 2 == 0
                   and sum(x.count(c) for c in "([{<") == len(x) // 2]
    assert len(same_counts) >= 0.6 * len(unbalanced)  # counting brackets is not enough
    assert len({len(x) for x in inputs}) == 32  # every length, odd ones too


def test_parens_lengths_without_balanced_strings():
    cfg = DataConfig(task="parens", min_len=3, max_len=3, **SMALL)
    assert all(len(x) == 3 and parens_answer(x) == "unbalanced" for x in draw_inputs(cfg, 20, 0))


# ----------------------------------------------------------------------------- add
@pytest.mark.parametrize("lo, hi, width", [(1, 32, 15), (3, 3, 1), (5, 12, 5), (13, 13, 6)])
def test_add_inputs_and_answers(lo, hi, width):
    cfg = DataConfig(task="add", alphabet="letters", min_len=lo, max_len=hi)
    inputs = draw_inputs(cfg, 300, seed=1)
    for x in inputs:
        assert re.fullmatch(rf"[0-9]{{{width}}}\+[0-9]{{{width}}}", x), x
        a, b = x.split("+")
        answer = get_task("add").solve(x)
        assert len(answer) == width + 1 and int(answer) == int(a) + int(b)
    significant = Counter(len(x.split("+")[0].lstrip("0") or "0") for x in inputs)
    assert set(significant) == set(range(1, width + 1))  # short and long numbers alike


@pytest.mark.parametrize("text, answer", [
    ("00095+00007", "000102"), ("95+7", "102"), ("0+0", "00"), ("99999+99999", "199998"),
    ("123+4567", "04690"),
])
def test_add_examples(text, answer):
    assert get_task("add").solve(text) == answer


@pytest.mark.parametrize("text", ["", "12", "1+", "+1", "1+2+3", "a+1", "-1+2", "1 +2"])
def test_add_rejects_other_text(text):
    with pytest.raises(ValueError, match="task add: expected digits"):
        get_task("add").solve(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 9), st.data())
def test_add_user_input_is_padded_and_the_answer_unpadded(width, data):
    """``infer.py``/``eval.py`` turn ``95+7`` into the model's fixed-width form and its answer back:
    prepare, solve and present give the plain sum."""
    task = task_for(DataConfig(task="add", max_len=2 * width + 1))
    a, b = (data.draw(st.integers(0, 10**width - 1)) for _ in range(2))
    zeros = data.draw(st.integers(0, 2))  # leading zeros a user might type
    model_input = task.model_input(f"{'0' * zeros}{a}+{b}")
    assert re.fullmatch(rf"[0-9]{{{width}}}\+[0-9]{{{width}}}", model_input)
    assert task.model_input(model_input) == model_input  # generated inputs pass unchanged
    assert task.shown(task.solve(model_input)) == str(a + b)


@pytest.mark.parametrize("text, message", [("123456+1", "at most 5 digits"),
                                           ("12+x", "expected digits+digits"),
                                           ("12", "expected digits+digits")])
def test_add_user_input_errors(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        task_for(DataConfig(task="add", max_len=11)).model_input(text)


def test_add_answer_shown_without_padding_zeros():
    shown = get_task("add").shown
    assert [shown(x) for x in ["000102", "00", "7", "01x", ""]] == ["102", "0", "7", "01x", ""]


def test_infer_reports_an_add_input_the_model_cannot_read(tmp_path, capsys):
    run = tmp_path / "run"
    assert call_cli(train_main, [*TINY_FLAGS, "--task", "add", "--out", str(run)]) == 0
    capsys.readouterr()
    assert call_cli(infer_main, ["--checkpoint", str(run), "--text", "123456+1"]) == 2
    err = capsys.readouterr().err
    assert err == "error: task add: this model adds numbers of at most 5 digits, got '123456+1'\n"


@pytest.mark.parametrize("lo, hi", [(1, 2), (32, 32)])
def test_add_lengths_without_inputs(lo, hi, tmp_path, capsys):
    with pytest.raises(ValueError, match="task add"):
        draw_inputs(DataConfig(task="add", min_len=lo, max_len=hi), 5, seed=0)
    argv = ["--task", "add", "--min-len", str(lo), "--max-len", str(hi), "--progress", "0",
            "--out", str(tmp_path / "run")]
    assert call_cli(train_main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: task add:") and err.count("\n") == 1


# ----------------------------------------------------------------------------- checkpoints
TINY_FLAGS = ["--d-model", "16", "--n-heads", "2", "--n-dec-layers", "1", "--d-ff", "16",
              "--max-positions", "48", "--epochs", "1", "--train-samples", "64",
              "--val-samples", "8", "--test-samples", "8", "--batch-size", "32",
              "--max-len", "12", "--threads", "1", "--progress", "false"]


@pytest.mark.parametrize("name", ALL_TASKS)
def test_task_round_trips_through_a_checkpoint(name, tmp_path, capsys):
    run = tmp_path / "run"
    assert call_cli(train_main, [*TINY_FLAGS, "--task", name, "--shift", "5",
                                 "--out", str(run)]) == 0
    _, cfg, _ = load_checkpoint(run)
    assert cfg.data.task == name and cfg.data.shift == 5
    capsys.readouterr()
    assert call_cli(eval_main, ["--checkpoint", str(run), "--json", "--examples", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == name and result["n"] == 8
    solve = task_for(DataConfig(task=name, shift=5)).solve  # eval scores with the saved options
    assert [e["target"] for e in result["examples"]] == [solve(e["input"])
                                                         for e in result["examples"]]
    text = {"add": "95+7", "parens": "([])"}.get(name, "ab")
    assert call_cli(infer_main, ["--checkpoint", str(run), "--text", text,
                                 "--max-new-tokens", "4"]) == 0


# ----------------------------------------------------------------------------- README recipe
def readme_recipe() -> str:
    """The Python block of the README section "Add a task in ~20 lines"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Add a task in ~20 lines", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_recipe_is_about_20_lines():
    lines = [line for line in readme_recipe().splitlines() if line.strip()]
    assert 5 <= len(lines) <= 25


@pytest.mark.slow
def test_readme_recipe_trains_end_to_end(tmp_path, capsys):
    """Run the README's snippet as the tail of tasks.py would, then train the new task."""
    code = readme_recipe()
    name = re.search(r'register_task\(Task\("(\w+)"', code).group(1)
    assert name not in TASKS
    try:
        exec(compile(code, "README.md", "exec"), vars(tasks))  # as if appended to tasks.py
        task = get_task(name)
        cfg = RunConfig(ModelConfig(max_positions=64),
                        DataConfig(task=name, max_len=8, train_samples=6000, val_samples=200,
                                   test_samples=500),
                        TrainConfig(epochs=4, seed=0, device="cpu", progress=False,
                                    out=str(tmp_path)))
        summary = train(cfg)
        assert summary["best_val_exact_match"] >= 0.99
        model, loaded, _ = load_checkpoint(tmp_path)
        assert loaded.data.task == name
        test_inputs = DataModule(cfg.data).test_inputs
        assert evaluate(model, test_inputs, task).exact_match >= 0.99
        assert call_cli(eval_main, ["--checkpoint", str(tmp_path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["exact_match"] >= 0.99
        rng = random.Random(0)
        assert all(len(task.make_input(rng, "ab", 3, 5)) in (3, 4, 5) for _ in range(50))
    finally:
        TASKS.pop(name, None)
        for helper in re.findall(r"^def (\w+)", code, flags=re.M):
            vars(tasks).pop(helper, None)
