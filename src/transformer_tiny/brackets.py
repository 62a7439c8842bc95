"""The ``parens`` task's answer and inputs: do the brackets ``()[]{}<>`` nest?

Balanced strings are drawn with a uniformly random nesting shape; near misses change, swap, drop
or insert one bracket, and the hard slice nests 5 to 8 deep.
"""

from __future__ import annotations

import math
import random

from .alphabets import random_string

BRACKETS = "()[]{}<>"
OPENERS, CLOSERS = "([{<", ")]}>"
_CLOSER = dict(zip(OPENERS, CLOSERS, strict=True))
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
            opener = rng.choice(OPENERS)
            out.append(opener)
            stack.append(_CLOSER[opener])
        else:
            out.append(stack.pop())
    return "".join(out)


def _other_kind(rng: random.Random, bracket: str) -> str:
    """A bracket of another kind than ``bracket``, facing the same way (an opener for an opener),
    so that a string's counts of openers and closers still agree after the change."""
    same_side = OPENERS if bracket in OPENERS else CLOSERS
    return rng.choice(same_side.replace(bracket, ""))


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
        if edit == "change":
            chars[i] = _other_kind(rng, chars[i])
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
    openers = rng.choices(OPENERS, k=depth)
    core = [*openers, *(_CLOSER[o] for o in reversed(openers))]
    room = max_len - len(core)
    side = balanced_brackets(rng, rng.randrange(0, room + 1, 2)) if room >= 2 else ""
    side_first = rng.random() < 0.5
    text = list(side + "".join(core) if side_first else "".join(core) + side)
    if rng.random() < 0.5:  # a near miss at depth: a bracket of the two innermost pairs changed
        start = len(side) if side_first else 0  # where the core begins
        i = start + rng.choice([depth - 2, depth - 1, depth, depth + 1] if depth > 1 else [0, 1])
        text[i] = _other_kind(rng, text[i])
    return "".join(text)
