"""Toy tasks: each maps a random input string to the expected output string.

A task is a name, a function that draws an input, and a function that solves it. Register a new one
with :func:`register_task`; ``train.py --task NAME`` then trains it, and the name is stored in the
checkpoint so that ``eval.py`` and ``infer.py`` pick it up.

``min_len``/``max_len`` are always the length of the input in characters (``add`` pads its numbers
to a fixed width, so all its inputs have the largest odd length <= ``max_len``). ``reverse``,
``copy``, ``shift`` and ``sort`` draw random strings over the chosen alphabet (alphabets.py);
``parens`` and ``add`` bring their own characters (brackets; digits and ``+``) and ignore the
alphabet. Their answers and inputs live in brackets.py and arithmetic.py; this module registers
them with the others.
"""

from __future__ import annotations

import functools
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from .alphabets import random_string
from .arithmetic import add_answer, add_input, add_width, carry_chain, pad_numbers, strip_zeros
from .brackets import BALANCED, BRACKETS, UNBALANCED, deep_brackets, parens_answer, parens_input

OUTPUT_MARGIN = 16  # output tokens allowed beyond the source's length by default


@dataclass(frozen=True)
class OutputRoom:
    """Output tokens to allow for a source of ``n`` tokens (BOS and EOS included):
    ``per_token * n + plus``. The decoders' default is :data:`DEFAULT_ROOM`."""

    per_token: int
    plus: int

    def __call__(self, src_tokens: int) -> int:
        return self.per_token * src_tokens + self.plus


DEFAULT_ROOM = OutputRoom(per_token=1, plus=OUTPUT_MARGIN)  # the source's length plus a margin


@dataclass(frozen=True)
class Task:
    """A toy task: ``make_input`` draws an input, ``solve`` gives the expected output.

    ``make_input(rng, alphabet, min_len, max_len)`` must be deterministic in ``rng``. A task with
    options (``shift``'s k) sets ``configure``: given the ``DataConfig``, it returns the task with
    those options bound; :func:`task_for` applies it. A task whose model reads and writes a fixed
    format (``add``) sets ``prepare`` (a user's input -> that format) and ``present`` (the model's
    output -> the answer shown); ``eval.py`` and :meth:`TinyModel.answers` (which ``infer.py`` and
    ``predict`` use) apply them to what users type. A
    task whose inputs ignore the alphabet names the ``characters`` they are made of.

    ``make_hard`` (same signature as ``make_input``) draws the task's *hard slice*: inputs that
    stress what the task needs and that random draws rarely hold (repeats for ``sort``, carry
    chains for ``add``...), described by ``hard``. ``eval.py`` reports it beside the test set.

    ``output_room`` (an :class:`OutputRoom`: source length in tokens -> output tokens to allow)
    replaces the decoders' default room (the source length plus a margin) for a task with
    longer outputs. ``reads_files`` marks the task whose inputs and outputs come from data
    files (``pairs``): it neither draws inputs nor solves them. ``within_training_lengths`` marks
    a task whose model reads no input longer than its training ones (``add``, whose format holds
    numbers of at most as many digits as it was trained on): its inputs are not drawn longer.
    """

    name: str
    description: str
    solve: Callable[[str], str]
    make_input: Callable[[random.Random, str, int, int], str] = random_string
    configure: Callable[[Any], Task] | None = None
    prepare: Callable[[str], str] | None = None
    present: Callable[[str], str] | None = None
    characters: str | None = None
    make_hard: Callable[[random.Random, str, int, int], str] | None = None
    hard: str = ""
    output_room: OutputRoom | None = None
    reads_files: bool = False
    within_training_lengths: bool = False

    @property
    def room(self) -> OutputRoom:
        """The output room its outputs get: its ``output_room``, else :data:`DEFAULT_ROOM`."""
        return self.output_room or DEFAULT_ROOM

    def model_input(self, text: str) -> str:
        """``text`` as the model reads it (``ValueError`` if it cannot be)."""
        return self.prepare(text) if self.prepare is not None else text

    def shown(self, output: str) -> str:
        """The model's ``output`` as the answer shown to a user."""
        return self.present(output) if self.present is not None else output


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to the registry (its name must be new) and return it."""
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task called ``name``; ``KeyError`` lists the known names."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}") from None


def task_for(cfg: Any) -> Task:
    """The task that ``cfg`` (a ``DataConfig``) names, its options bound (e.g. ``cfg.shift``)."""
    task = get_task(cfg.task)
    return task.configure(cfg) if task.configure is not None else task


def reverse_text(text: str) -> str:
    """Reverse by Unicode code point, so ``'héllo'`` -> ``'olléh'`` stays valid UTF-8."""
    return text[::-1]


def periodic_string(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """Runs of one character (``aaabbbbbcc``) or a short pattern repeated (``abcabcab``): inputs
    in which only positions tell equal characters apart."""
    length = rng.randint(min_len, max_len)
    if rng.random() < 0.5:
        runs: list[str] = []
        while len(runs) < length:
            runs += [rng.choice(alphabet)] * rng.randint(2, 8)
        return "".join(runs[:length])
    pattern = "".join(rng.choices(alphabet, k=rng.randint(1, 4)))
    return (pattern * length)[:length]


def _from_files(text: str) -> str:
    raise ValueError("task pairs: the expected outputs come from the data files")


# Pairs read from files (pair_files.py, pairs.py): any input and output; room for outputs 4x longer.
register_task(Task("pairs", "input-output pairs read from --train-file", _from_files,
                   output_room=OutputRoom(per_token=4, plus=16), reads_files=True))

REPEATS = "runs of one character and short patterns repeated"
register_task(Task("reverse", "reverse the string by code point", reverse_text,
                   make_hard=periodic_string, hard=REPEATS))
register_task(Task("copy", "repeat the string unchanged", lambda text: text,
                   make_hard=periodic_string, hard=REPEATS))


# ----------------------------------------------------------------------------- shift
def caesar_shift(text: str, k: int = 3) -> str:
    """Shift the letters a-z and A-Z ``k`` places forward, wrapping around; others unchanged."""
    out = []
    for c in text:
        for first in ("a", "A"):
            if first <= c <= chr(ord(first) + 25):
                c = chr(ord(first) + (ord(c) - ord(first) + k) % 26)
                break
        out.append(c)
    return "".join(out)


def _bind_shift(cfg: Any) -> Task:
    k = cfg.shift
    return replace(SHIFT, description=f"shift letters by {k}", solve=partial(caesar_shift, k=k))


def wraparound_letters(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """Mostly the letters near the end of the alphabet (``w`` to ``z``, ``W`` to ``Z``), where a
    shift wraps around to the start, among other characters of ``alphabet``."""
    late = [c for c in "wxyzWXYZ" if c in alphabet] or list(alphabet)
    length = rng.randint(min_len, max_len)
    return "".join(rng.choice(late) if rng.random() < 0.7 else rng.choice(alphabet)
                   for _ in range(length))


SHIFT = register_task(Task("shift", "shift letters by k (--shift, default 3) with wrap-around",
                           caesar_shift, configure=_bind_shift, make_hard=wraparound_letters,
                           hard="letters that wrap around (w-z, W-Z)"))


# ----------------------------------------------------------------------------- sort
@functools.lru_cache(maxsize=8)
def _distinct(alphabet: str) -> tuple[str, ...]:
    return tuple(sorted(set(alphabet)))


def _pick(rng: random.Random, chars: tuple[str, ...], k: int) -> list[str]:
    """``k`` of the sorted ``chars``: half of the time neighbours in code-point order (``abc``,
    which a sort model finds hardest to count apart), else any ``k``."""
    if rng.random() < 0.5:
        start = rng.randrange(len(chars) - k + 1)
        return list(chars[start:start + k])
    return rng.sample(chars, k)


def few_distinct(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """A string of at least ``min(8, max_len)`` characters (never below ``min_len``): one to three
    distinct characters, many times each (half of the time neighbours in code-point order, as in
    ``aabbccaabbcc``), or an input already sorted, or sorted backwards."""
    length = rng.randint(max(min_len, min(8, max_len)), max_len)
    kind = rng.random()
    if kind < 0.6:
        distinct = _distinct(alphabet)
        chars = _pick(rng, distinct, min(len(distinct), rng.randint(1, 3)))
        return "".join(rng.choices(chars, k=length))
    text = sorted(rng.choices(alphabet, k=length))
    return "".join(text if kind < 0.8 else reversed(text))


def repeating_string(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """A random string over ``k`` distinct characters of ``alphabet`` (half of the time
    neighbours), ``k`` log-uniform from 1 to all of them: strings with many repeats are about as
    common as strings with almost none, where uniform draws over a large alphabet almost never
    repeat a character."""
    chars = _distinct(alphabet)
    k = min(len(chars), int((len(chars) + 1) ** rng.random()))
    return "".join(rng.choices(_pick(rng, chars, k), k=rng.randint(min_len, max_len)))


register_task(Task("sort", "sort the characters by code point", lambda text: "".join(sorted(text)),
                   repeating_string, make_hard=few_distinct,
                   hard="1-3 distinct characters repeated, half of the time neighbours; "
                        "already sorted or reversed"))


# ----------------------------------------------------------------------------- parens, add
register_task(Task("parens", f"{BALANCED!r} or {UNBALANCED!r}: do the brackets {BRACKETS} nest?",
                   parens_answer, parens_input, characters=BRACKETS, make_hard=deep_brackets,
                   hard="nesting 5-8 deep, balanced or with one inner bracket changed"))


def _bind_add(cfg: Any) -> Task:
    return replace(ADD, prepare=partial(pad_numbers, width=add_width(cfg)))


ADD = register_task(Task("add", "the sum of two decimal numbers a+b (zero-padded for the model)",
                         add_answer, add_input, configure=_bind_add, present=strip_zeros,
                         characters=string.digits + "+", make_hard=carry_chain,
                         hard="carry chains of every length, and 0", within_training_lengths=True))

# The tasks of this module; any other is registered by its user's own code, which must run again
# wherever its checkpoints are loaded.
BUILT_IN = frozenset(TASKS)
