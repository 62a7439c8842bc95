"""The ``add`` task's answer and inputs: the sum of two decimal numbers.

The model reads both numbers zero-padded to a fixed width ``W`` and writes the sum with ``W + 1``
digits, so every digit has a fixed place; ``pad_numbers`` and ``strip_zeros`` turn what a user
types into that form and the model's answer back.
"""

from __future__ import annotations

import random
from typing import Any


def add_answer(text: str) -> str:
    """``"a+b"`` -> the decimal sum with one digit more than the longer number, so that every
    digit has a fixed place: ``"00095+00007"`` -> ``"000102"``, ``"95+7"`` -> ``"102"``."""
    a, _, b = text.partition("+")
    if not (a.isdecimal() and b.isdecimal() and a.isascii() and b.isascii()):
        raise ValueError(f"task add: expected digits+digits, got {text!r}")
    return str(int(a) + int(b)).zfill(max(len(a), len(b)) + 1)


def number_width(max_len: int) -> int:
    """Digits ``W = (max_len - 1) // 2`` per number of the longest ``"a+b"`` in the model's form
    that fits ``max_len`` characters; below 1 when ``max_len`` leaves no room for one."""
    return (max_len - 1) // 2


def add_input(rng: random.Random, _alphabet: str, min_len: int, max_len: int) -> str:
    """``"a+b"`` with both numbers zero-padded to ``W = (max_len - 1) // 2`` digits, so every input
    has ``2W + 1`` characters; each number has 1 to W significant digits, the count uniform
    (ignores the alphabet)."""
    width = number_width(max_len)
    if width < 1 or 2 * width + 1 < min_len:
        raise ValueError(f"task add: inputs have 2W+1 characters with W = (max_len - 1) // 2 >= 1; "
                         f"none fits lengths {min_len}-{max_len}")

    def number() -> str:
        digits = rng.randint(1, width)
        return str(rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1))

    return f"{number().zfill(width)}+{number().zfill(width)}"


def pad_numbers(text: str, width: int) -> str:
    """A user's ``"95+7"`` (or ``"95 + 7"``: spaces around a number are dropped) ->
    ``"00095+00007"`` (``width`` 5): the form the model reads."""
    a, plus, b = (part.strip(" ") for part in text.partition("+"))
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
    """Digits per number in the model's form of ``add`` for ``cfg`` (a ``DataConfig``): at least
    1, even for a ``max_len`` below 3, which ``add_input`` refuses."""
    return max(1, number_width(cfg.max_len))


def carry_chain(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """Sums whose carry runs through many digits (``9999+1``, ``45+55``, ``5+5``), and
    sums with ``0``, in the model's zero-padded form."""
    # add_input checks the lengths; its draw is discarded, but it advances rng, and the published
    # carry_chain inputs were drawn after it
    add_input(rng, alphabet, min_len, max_len)
    width = number_width(max_len)
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

