"""Toy tasks: each maps a random input string to the expected output string.

A task is a name, a function that draws an input, and a function that solves it. Register a new one
with :func:`register_task`; ``train.py --task NAME`` then trains it, and the name is stored in the
checkpoint so that ``eval.py`` and ``infer.py`` pick it up.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

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
UNICODE_EXTRA = _ACCENTED + _GREEK + _CYRILLIC + _PUNCT + _CJK + _EMOJI

ALPHABETS: dict[str, str] = {
    "printable": _PRINTABLE,
    "digits": string.digits,
    "letters": string.ascii_letters,
    "unicode": _PRINTABLE * 12 + UNICODE_EXTRA,  # about 42% ASCII, like much real text
}


def random_string(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """A string of uniformly random length in ``[min_len, max_len]`` over ``alphabet``."""
    return "".join(rng.choices(alphabet, k=rng.randint(min_len, max_len)))


@dataclass(frozen=True)
class Task:
    """A toy task: ``make_input`` draws an input, ``solve`` gives the expected output."""

    name: str
    description: str
    solve: Callable[[str], str]
    make_input: Callable[[random.Random, str, int, int], str] = random_string


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


def reverse_text(text: str) -> str:
    """Reverse by Unicode code point, so ``'héllo'`` -> ``'olléh'`` stays valid UTF-8."""
    return text[::-1]


register_task(Task("reverse", "reverse the string by code point", reverse_text))
register_task(Task("copy", "repeat the string unchanged", lambda text: text))
