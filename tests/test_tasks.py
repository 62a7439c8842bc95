"""The toy tasks: their answers, their inputs, their options, and the add-a-task recipe of
docs/tasks.md."""

from __future__ import annotations

import itertools
import json
import random
import re
import string
from collections import Counter

import pytest
from helpers import (
    ALL_TASKS,
    ROOT,
    SMALL,
    TOK,
    balanced_by_pair_removal,
    bracket_depth,
    call_cli,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer_tiny import tasks
from transformer_tiny.alphabets import ALPHABETS
from transformer_tiny.brackets import BRACKETS, parens_answer
from transformer_tiny.checkpoint import load_checkpoint
from transformer_tiny.cli.eval import eval_main
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from transformer_tiny.data import DataModule, PairDataset, draw_inputs, hard_inputs
from transformer_tiny.inputs import FROM_FILES, OWN_CHARACTERS, input_characters, unseen_characters
from transformer_tiny.metrics import evaluate
from transformer_tiny.tasks import (
    TASKS,
    OutputRoom,
    Task,
    caesar_shift,
    get_task,
    register_task,
    repeating_string,
    reverse_text,
    task_for,
)
from transformer_tiny.train_eval import train


def test_registry_holds_every_task():
    assert set(ALL_TASKS) <= set(TASKS)
    for name in ALL_TASKS:
        assert get_task(name).name == name and get_task(name).description
        assert task_for(DataConfig(task=name)).name == name
    assert get_task("reverse").solve("ab") == "ba"
    with pytest.raises(KeyError, match="reverse"):
        get_task("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_task(Task("reverse", "again", lambda s: s))


# ----------------------------------------------------------------------------- reverse
@pytest.mark.parametrize("text, expected", [
    ("héllo", "olléh"), ("abc", "cba"), ("", ""), ("😀a👍", "👍a😀"), ("日本語", "語本日"),
])
def test_reverse_is_code_point_reversal(text, expected):
    assert reverse_text(text) == expected
    ds = PairDataset([text], "reverse")
    assert ds.targets == [expected]
    assert ds.examples[0].src == TOK.encode(text)
    assert ds.examples[0].tgt == TOK.encode(expected)
    assert TOK.is_valid_utf8(ds.examples[0].tgt)  # not a byte reversal


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


# ----------------------------------------------------------------------------- sort
@settings(max_examples=100, deadline=None)
@given(text=st.text())
def test_sort_output_is_a_sorted_permutation(text):
    out = get_task("sort").solve(text)
    assert Counter(out) == Counter(text)
    assert all(ord(a) <= ord(b) for a, b in itertools.pairwise(out))


def test_sort_draws_repeats_as_often_as_strings_without_them():
    rng = random.Random(0)
    draws = [repeating_string(rng, ALPHABETS["printable"], 1, 16) for _ in range(4000)]
    assert all(1 <= len(x) <= 16 and set(x) <= set(ALPHABETS["printable"]) for x in draws)
    distinct = Counter(len(set(x)) for x in draws if len(x) == 16)
    few, many = sum(distinct[k] for k in (1, 2, 3, 4)), sum(distinct[k] for k in range(12, 17))
    n = sum(distinct.values())
    # k distinct characters log-uniform in 1..95: P(k <= 4) = log 5 / log 96, about 0.35; a
    # 16-character string over k >= 24 characters has 12 or more distinct ones most of the time.
    assert 0.28 * n < few < 0.42 * n and 0.2 * n < many < 0.4 * n
    assert get_task("sort").make_input is repeating_string


# ----------------------------------------------------------------------------- parens
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


def test_add_user_input_may_space_its_numbers():
    task = task_for(DataConfig(task="add", max_len=11))
    assert {task.model_input(t) for t in ("95+7", "95 + 7", " 95 +7  ")} == {"00095+00007"}


@pytest.mark.parametrize("text, message", [("123456+1", "at most 5 digits"),
                                           ("12+x", "expected digits+digits"),
                                           ("1 2+3", "expected digits+digits"),
                                           ("12\t+3", "expected digits+digits"),
                                           ("12", "expected digits+digits")])
def test_add_user_input_errors(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        task_for(DataConfig(task="add", max_len=11)).model_input(text)


def test_add_answer_shown_without_padding_zeros():
    shown = get_task("add").shown
    assert [shown(x) for x in ["000102", "00", "7", "01x", ""]] == ["102", "0", "7", "01x", ""]


# ----------------------------------------------------------------------------- the recipe
def readme_recipe() -> str:
    """The Python block of the section "Add a task in ~20 lines" of docs/tasks.md."""
    doc = (ROOT / "docs" / "tasks.md").read_text(encoding="utf-8")
    section = doc.split("## Add a task in ~20 lines", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_recipe_is_about_20_lines():
    lines = [line for line in readme_recipe().splitlines() if line.strip()]
    assert 5 <= len(lines) <= 25


@pytest.mark.slow
def test_readme_recipe_trains_end_to_end(tmp_path, capsys):
    """Run the recipe's snippet as the tail of tasks.py would, then train the new task."""
    code = readme_recipe()
    name = re.search(r'register_task\(Task\("(\w+)"', code).group(1)
    helpers = re.findall(r"^def (\w+)", code, flags=re.M)
    # a user who appended the recipe to tasks.py has it registered already: set it aside
    kept, kept_helpers = TASKS.pop(name, None), {h: vars(tasks)[h] for h in helpers
                                                  if h in vars(tasks)}
    try:
        exec(compile(code, "docs/tasks.md", "exec"), vars(tasks))  # as if appended to tasks.py
        task = get_task(name)
        cfg = RunConfig(ModelConfig(max_positions=64),
                        DataConfig(task=name, alphabet="printable", max_len=8,
                                   train_samples=6000, val_samples=200, test_samples=500),
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
        assert task.make_hard is not None and task.characters  # the recipe shows both
        assert call_cli(eval_main, ["--checkpoint", str(tmp_path), "--hard", "50"]) == 0
        assert "hard slice (" in capsys.readouterr().out
    finally:
        TASKS.pop(name, None)
        for helper in helpers:
            vars(tasks).pop(helper, None)
        if kept is not None:
            TASKS[name] = kept
        vars(tasks).update(kept_helpers)


# ----------------------------------------------------------------------------- unseen characters
@pytest.mark.parametrize("text, cfg, expected", [
    ("café 中文 😀", DataConfig(alphabet="printable"), ["é", "中", "文", "😀"]),
    ("café 中文 😀", DataConfig(), []),  # the default model takes any text
    ("abc", DataConfig(alphabet="digits"), ["a", "b", "c"]),
    ("123 123", DataConfig(alphabet="digits"), [" "]),
    ("Göteborg, Ελληνικά, кириллица, 한국어, 中文, 😀, e\u0301", DataConfig(alphabet="unicode"),
     []),
    ("12+x", DataConfig(task="add"), ["x"]),
    ("([a])", DataConfig(task="parens"), ["a"]),
    ("Hello, world!", DataConfig(), []),
])
def test_unseen_characters(text, cfg, expected):
    assert unseen_characters(text, cfg) == expected


@pytest.mark.parametrize("cfg, name, characters", [
    (DataConfig(alphabet="digits"), "digits", "0123456789"),
    (DataConfig(task="sort", alphabet="letters"), "letters", string.ascii_letters),
    (DataConfig(task="add", alphabet="unicode"), OWN_CHARACTERS, "0123456789+"),
    (DataConfig(task="parens"), OWN_CHARACTERS, "()[]{}<>"),
    (DataConfig(task="pairs", train_file="x.tsv"), FROM_FILES, None),
])
def test_input_characters_name_what_training_draws_from(cfg, name, characters):
    """Tasks with their own characters ignore the alphabet; pairs come from files."""
    assert input_characters(cfg) == (name, characters)


def test_output_room_is_per_token_times_the_source_plus_a_margin():
    assert OutputRoom(per_token=4, plus=16)(10) == 56 and OutputRoom(1, 0)(7) == 7
    assert get_task("pairs").output_room == OutputRoom(4, 16)
    assert all(get_task(n).output_room is None for n in ALL_TASKS)  # the decoders' default


def test_the_pairs_task_knows_no_answers_of_its_own():
    with pytest.raises(ValueError, match=r"^task pairs: the expected outputs come from the data "
                                         r"files$"):
        get_task("pairs").solve("abc")


# ----------------------------------------------------------------------------- hard slices
def carries(text: str) -> int:
    """The longest run of places that carry in ``a+b``."""
    a, b = (x.zfill(12) for x in text.split("+"))
    longest = run = carry = 0
    for x, y in zip(reversed(a), reversed(b), strict=True):
        carry = int(int(x) + int(y) + carry >= 10)
        run = run + 1 if carry else 0
        longest = max(longest, run)
    return longest


@pytest.mark.parametrize("name, max_len", [("reverse", 32), ("copy", 32), ("shift", 32),
                                           ("sort", 16), ("add", 11), ("parens", 16)])
def test_hard_slices_stress_what_the_task_needs(name, max_len):
    cfg = DataConfig(task=name, max_len=max_len)
    inputs = hard_inputs(cfg, 200)
    assert inputs == hard_inputs(cfg, 200) and len(set(inputs)) == 200  # fixed and distinct
    task = task_for(cfg)
    assert all(cfg.min_len <= len(x) <= max_len for x in inputs)
    for x in inputs:
        task.solve(x)  # every one has an answer, without an error
    if name in ("reverse", "copy"):  # runs or a period of at most 4
        assert all(any(x[i] == x[i + 1] for i in range(len(x) - 1)) or len(x) <= 4 or
                   any(x[p:] == x[:-p] for p in range(1, 5)) for x in inputs if len(x) > 1)
    elif name == "shift":
        assert sum(c in "wxyzWXYZ" for x in inputs for c in x) > 0.6 * sum(map(len, inputs))
    elif name == "sort":
        few = [x for x in inputs if len(set(x)) <= 3]
        ordered = [x for x in inputs if x in ("".join(sorted(x)), "".join(sorted(x))[::-1])]
        assert len(few) > 100 and len(ordered) > 40 and all(len(x) >= 8 for x in inputs)
    elif name == "add":
        assert all(len(x) == 11 for x in inputs)  # the model's zero-padded form
        assert sum(carries(x) >= 3 for x in inputs) > 60 and any("00000" in x for x in inputs)
    else:
        assert all(bracket_depth(x) >= 5 for x in inputs)
        answers = [parens_answer(x) for x in inputs]
        assert 50 < answers.count("balanced") < 150


def test_carry_counter():
    assert carries("9999+1") == 4 and carries("12+34") == 0 and carries("55+55") == 2
