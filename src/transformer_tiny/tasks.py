"""Toy tasks: each maps a random input string to the expected output string.

A task is a name, a function that draws an input, and a function that solves it. Register a new one
with :func:`register_task`; ``train.py --task NAME`` then trains it, and the name is stored in the
checkpoint so that ``eval.py`` and ``infer.py`` pick it up.

``min_len``/``max_len`` are always the length of the input in characters (``add`` pads its numbers
to a fixed width, so all its inputs have the largest odd length <= ``max_len``). ``reverse``,
``copy``, ``shift`` and ``sort`` draw random strings over the chosen alphabet; ``parens`` and
``add`` bring their own characters (brackets; digits and ``+``) and ignore the alphabet.
"""

from __future__ import annotations

import functools
import math
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

_PRINTABLE = "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c")  # 95, space incl.


def _chars(first: int, last: int, step: int = 1) -> str:
    return "".join(chr(c) for c in range(first, last + 1, step))


# Non-ASCII characters for the "unicode" alphabet: 2-, 3- and 4-byte UTF-8.
_ACCENTED = _chars(0xC0, 0x17F)  # Latin-1 supplement letters and Latin Extended-A
_GREEK = _chars(0x391, 0x3A1) + _chars(0x3A3, 0x3C9)
_CYRILLIC = _chars(0x410, 0x44F) + "ёЁ"
_PUNCT = _chars(0x2010, 0x2027) + "«»¿¡€£¥©°·"  # dashes, quotes, ellipsis, ...
_CJK = _chars(0x3041, 0x30FF) + _chars(0x4E00, 0x9FFF, 41) + _chars(0xAC00, 0xD7A3, 43)
# kana, a spread of CJK unified ideographs, a spread of Hangul syllables
_EMOJI = _chars(0x1F600, 0x1F64F) + _chars(0x1F300, 0x1F5FF, 4)
_VIETNAMESE = "ƠơƯư" + _chars(0x1EA0, 0x1EF9)
# A spread over all of Unicode (surrogates excluded), so that every UTF-8 lead byte occurs.
_SPREAD = "".join(chr(c) for c in [*range(0xA0, 0x800, 7), *range(0x800, 0xD800, 97),
                                   *range(0xE000, 0xFFFE, 97), *range(0x10000, 0x110000, 3001)])
UNICODE_EXTRA = _ACCENTED + _GREEK + _CYRILLIC + _PUNCT + _CJK + _EMOJI + _VIETNAMESE + _SPREAD

ALPHABETS: dict[str, str] = {
    "printable": _PRINTABLE,
    "digits": string.digits,
    "letters": string.ascii_letters,
    # About 78% ASCII: the task is learned mostly on short (cheap) ASCII, while every UTF-8
    # pattern still occurs thousands of times per epoch. More non-ASCII makes very long
    # mixed-script input more exact, at a cost in time (docs/design.md).
    "unicode": _PRINTABLE * 110 + UNICODE_EXTRA,
}


def random_string(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """A string of uniformly random length in ``[min_len, max_len]`` over ``alphabet``."""
    return "".join(rng.choices(alphabet, k=rng.randint(min_len, max_len)))


@dataclass(frozen=True)
class Task:
    """A toy task: ``make_input`` draws an input, ``solve`` gives the expected output.

    ``make_input(rng, alphabet, min_len, max_len)`` must be deterministic in ``rng``. A task with
    options (``shift``'s k) sets ``configure``: given the ``DataConfig``, it returns the task with
    those options bound; :func:`task_for` applies it. A task whose model reads and writes a fixed
    format (``add``) sets ``prepare`` (a user's input -> that format) and ``present`` (the model's
    output -> the answer shown); ``eval.py`` and ``infer.py`` apply them to what users type. A
    task whose inputs ignore the alphabet names the ``characters`` they are made of.

    ``make_hard`` (same signature as ``make_input``) draws the task's *hard slice*: inputs that
    stress what the task needs and that random draws rarely hold (repeats for ``sort``, carry
    chains for ``add``...), described by ``hard``. ``eval.py`` reports it beside the test set.

    ``output_room`` (source length in tokens -> output tokens to allow) replaces the decoders'
    default room (the source length plus a margin) for a task with longer outputs.
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
    output_room: Callable[[int], int] | None = None

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


def unseen_characters(text: str, cfg: Any, seen_bytes: Any = None) -> list[str]:
    """The characters of ``text`` (each once, in order) that hold a byte no training input of
    ``cfg`` (a ``DataConfig``) ever held: the model reads bytes, so a character made of bytes it
    has seen, in other characters, is not new to it. ``seen_bytes`` (the bytes of the training
    inputs read from files, which a ``pairs`` checkpoint records) replaces the alphabet's."""
    task = task_for(cfg)
    if seen_bytes is not None:
        seen = frozenset(seen_bytes)
    elif task.name == "pairs":
        return []  # the inputs came from files the checkpoint does not describe
    else:
        seen = _bytes_of(task.characters if task.characters is not None
                         else ALPHABETS[cfg.alphabet])
    return [c for c in dict.fromkeys(text) if not _bytes_of(c) <= seen]


@functools.lru_cache(maxsize=16)
def _bytes_of(chars: str) -> frozenset[int]:
    return frozenset(chars.encode("utf-8", "surrogatepass"))


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


# Pairs read from files (pairs.py, data.py): any input and output; room for outputs 4x longer.
register_task(Task("pairs", "input-output pairs read from --train-file", _from_files,
                   output_room=lambda src_tokens: 4 * src_tokens + 16))

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


def few_distinct(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """One to three distinct characters, many times each (``mississippi`` has four), or an input
    already sorted, or sorted backwards."""
    length = rng.randint(max(min_len, min(8, max_len)), max_len)
    kind = rng.random()
    if kind < 0.6:
        distinct = _distinct(alphabet)
        chars = rng.sample(distinct, k=min(len(distinct), rng.randint(1, 3)))
        return "".join(rng.choices(chars, k=length))
    text = sorted(rng.choices(alphabet, k=length))
    return "".join(text if kind < 0.8 else reversed(text))


def repeating_string(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """A random string over ``k`` distinct characters of ``alphabet``, ``k`` log-uniform from 1 to
    all of them: strings with many repeats are about as common as strings with almost none, where
    uniform draws over a large alphabet almost never repeat a character."""
    chars = _distinct(alphabet)
    k = min(len(chars), int((len(chars) + 1) ** rng.random()))
    return "".join(rng.choices(rng.sample(chars, k), k=rng.randint(min_len, max_len)))


register_task(Task("sort", "sort the characters by code point", lambda text: "".join(sorted(text)),
                   repeating_string, make_hard=few_distinct,
                   hard="1-3 distinct characters repeated; already sorted or reversed"))


# ----------------------------------------------------------------------------- parens
BRACKETS = "()[]{}<>"
_CLOSER = {"(": ")", "[": "]", "{": "}", "<": ">"}
BALANCED, UNBALANCED = "balanced", "unbalanced"


def parens_answer(text: str) -> str:
    """``"balanced"`` if the brackets ``()[]{}<>`` nest properly, else ``"unbalanced"``.

    Characters other than these brackets are ignored.
    """
    stack: list[str] = []
    for c in text:
        if c in _CLOSER:
            stack.append(_CLOSER[c])
        elif c in BRACKETS and (not stack or stack.pop() != c):
            return UNBALANCED
    return UNBALANCED if stack else BALANCED


def _paths(steps: int, depth: int) -> int:
    """Bracket paths of ``steps`` steps from nesting ``depth`` down to 0, never below 0."""
    if depth > steps or (steps - depth) % 2:
        return 0
    ups = (steps - depth) // 2
    return math.comb(steps, ups) - (math.comb(steps, ups - 1) if ups > 0 else 0)


def balanced_brackets(rng: random.Random, length: int) -> str:
    """A balanced string of even ``length``: a uniformly random nesting shape, random kinds."""
    out: list[str] = []
    stack: list[str] = []
    for left in range(length, 0, -1):
        depth = len(stack)
        if rng.random() * _paths(left, depth) < _paths(left - 1, depth + 1):
            opener = rng.choice("([{<")
            out.append(opener)
            stack.append(_CLOSER[opener])
        else:
            out.append(stack.pop())
    return "".join(out)


def parens_input(rng: random.Random, _alphabet: str, min_len: int, max_len: int) -> str:
    """Half balanced strings, half near misses: a balanced string with one bracket changed to
    another kind, two neighbours swapped, one bracket dropped or one inserted (ignores the
    alphabet). Lengths are uniform over the even lengths in range; odd ones come from the edits."""
    evens = [n for n in range(max(2, min_len), max_len + 1) if n % 2 == 0]
    if not evens:  # no balanced string has such a length
        return random_string(rng, BRACKETS, min_len, max_len)
    if rng.random() < 0.5:
        return balanced_brackets(rng, rng.choice(evens))
    while True:
        chars = list(balanced_brackets(rng, rng.choice(evens)))
        i = rng.randrange(len(chars))
        edit = rng.choice(("change",) * 3 + ("swap",) * 2 + ("drop", "insert"))
        if edit == "change":  # to another kind, same direction: the counts still agree
            same_side = "([{<" if chars[i] in _CLOSER else ")]}>"
            chars[i] = rng.choice(same_side.replace(chars[i], ""))
        elif edit == "swap" and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif edit == "drop":
            del chars[i]
        elif edit == "insert":
            chars.insert(i, rng.choice(BRACKETS))
        text = "".join(chars)
        if min_len <= len(text) <= max_len and parens_answer(text) == UNBALANCED:
            return text


def deep_brackets(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """Brackets nested 5 to 8 deep (as deep as ``max_len`` allows), balanced, or with one
    bracket of the deepest part changed to another kind."""
    depth = min(rng.randint(5, 8), max_len // 2)
    if depth < 1 or 2 * depth < min_len:
        return parens_input(rng, alphabet, min_len, max_len)
    openers = rng.choices("([{<", k=depth)
    core = [*openers, *(_CLOSER[o] for o in reversed(openers))]
    room = max_len - len(core)
    side = balanced_brackets(rng, rng.randrange(0, room + 1, 2)) if room >= 2 else ""
    side_first = rng.random() < 0.5
    text = list(side + "".join(core) if side_first else "".join(core) + side)
    if rng.random() < 0.5:  # a near miss at depth: a bracket of the two innermost pairs changed
        start = len(side) if side_first else 0  # where the core begins
        i = start + rng.choice([depth - 2, depth - 1, depth, depth + 1] if depth > 1 else [0, 1])
        same_side = "([{<" if text[i] in _CLOSER else ")]}>"
        text[i] = rng.choice(same_side.replace(text[i], ""))
    return "".join(text)


register_task(Task("parens", f"{BALANCED!r} or {UNBALANCED!r}: do the brackets {BRACKETS} nest?",
                   parens_answer, parens_input, characters=BRACKETS, make_hard=deep_brackets,
                   hard="nesting 5-8 deep, balanced or with one inner bracket changed"))


# ----------------------------------------------------------------------------- add
def add_answer(text: str) -> str:
    """``"a+b"`` -> the decimal sum with one digit more than the longer number, so that every
    digit has a fixed place: ``"00095+00007"`` -> ``"000102"``, ``"95+7"`` -> ``"102"``."""
    a, _, b = text.partition("+")
    if not (a.isdecimal() and b.isdecimal() and a.isascii() and b.isascii()):
        raise ValueError(f"task add: expected digits+digits, got {text!r}")
    return str(int(a) + int(b)).zfill(max(len(a), len(b)) + 1)


def add_input(rng: random.Random, _alphabet: str, min_len: int, max_len: int) -> str:
    """``"a+b"`` with both numbers zero-padded to ``W = (max_len - 1) // 2`` digits, so every input
    has ``2W + 1`` characters; each number has 1 to W significant digits, the count uniform
    (ignores the alphabet)."""
    width = (max_len - 1) // 2
    if width < 1 or 2 * width + 1 < min_len:
        raise ValueError(f"task add: inputs have 2W+1 characters with W = (max_len - 1) // 2 >= 1; "
                         f"none fits lengths {min_len}-{max_len}")

    def number() -> str:
        digits = rng.randint(1, width)
        return str(rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1))

    return f"{number().zfill(width)}+{number().zfill(width)}"


def pad_numbers(text: str, width: int) -> str:
    """A user's ``"95+7"`` -> ``"00095+00007"`` (``width`` 5): the form the model reads."""
    a, plus, b = text.partition("+")
    if not (plus and a.isdecimal() and b.isdecimal() and a.isascii() and b.isascii()):
        raise ValueError(f"task add: expected digits+digits, got {text!r}")
    a, b = a.lstrip("0"), b.lstrip("0")
    if max(len(a), len(b)) > width:
        raise ValueError(f"task add: this model adds numbers of at most {width} digits, "
                         f"got {text!r}")
    return f"{a.zfill(width)}+{b.zfill(width)}"


def strip_zeros(answer: str) -> str:
    """``"000102"`` -> ``"102"``; an answer that is not all digits is shown as it is."""
    if answer.isdecimal() and answer.isascii():
        return answer.lstrip("0") or "0"
    return answer


def add_width(cfg: Any) -> int:
    """Digits per number in the model's form of ``add`` for ``cfg`` (a ``DataConfig``)."""
    return max(1, (cfg.max_len - 1) // 2)


def _bind_add(cfg: Any) -> Task:
    return replace(ADD, prepare=partial(pad_numbers, width=add_width(cfg)))


def carry_chain(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """Sums whose carry runs through many digits (``9999+1``, ``45+55``, ``5+5``), and
    sums with ``0``, in the model's zero-padded form."""
    add_input(rng, alphabet, min_len, max_len)  # the same checks of the lengths
    width = (max_len - 1) // 2
    digits = rng.randint(1, width)
    kind = rng.random()
    if kind < 0.15:
        a, b = 0, rng.randint(0, 10**width - 1)
    elif kind < 0.5:  # x99..9 + y: the carry from y runs through the nines
        nines = rng.randint(1, digits)
        a = rng.randint(0, 10 ** (digits - nines) - 1) * 10**nines + 10**nines - 1
        b = rng.randint(1, 10**nines - 1) if nines < width else rng.randint(1, 9)
    else:  # a + (10^d - a + r), r keeping b's last digit: a carry from the first non-zero place
        a = rng.randint(1, 10**digits - 1)
        complement = 10**digits - a
        b = complement + rng.randint(0, 9 - complement % 10)
    if rng.random() < 0.5:
        a, b = b, a
    return f"{a:0{width}d}+{b:0{width}d}"


ADD = register_task(Task("add", "the sum of two decimal numbers a+b (zero-padded for the model)",
                         add_answer, add_input, configure=_bind_add, present=strip_zeros,
                         characters=string.digits + "+", make_hard=carry_chain,
                         hard="carry chains of every length, and 0"))
