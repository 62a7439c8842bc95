"""The alphabets that ``--alphabet`` names, and random strings over them.

``printable`` is the 95 printable ASCII characters (space included); ``unicode`` mixes them with
the ASCII control characters (tab and line breaks most often), accented Latin, Greek, Cyrillic,
punctuation, kana, CJK, Hangul, emoji and a spread over all of Unicode, so that every byte that
valid UTF-8 text can hold occurs in training.
"""

from __future__ import annotations

import random
import string

_PRINTABLE = "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c")  # 95, space incl.


def _chars(first: int, last: int, step: int = 1) -> str:
    return "".join(chr(c) for c in range(first, last + 1, step))


# The ASCII control characters, NUL to US and DEL: rare in text but for the tab and the line
# breaks (weighted up), and made of bytes that no other character holds, so a model that never
# saw them cannot copy them.
_CONTROLS = "\t\n\r" * 8 + _chars(0x00, 0x1F) + "\x7f"

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
    # Mostly ASCII: the task is learned mostly on short (cheap) ASCII, while every UTF-8
    # pattern still occurs many times per epoch. More non-ASCII makes very long mixed-script
    # input more exact, at a cost in time (docs/design.md; the share: docs/results.md).
    "unicode": _PRINTABLE * 110 + _CONTROLS + UNICODE_EXTRA,
}


def random_string(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    """A string of uniformly random length in ``[min_len, max_len]`` over ``alphabet``."""
    return "".join(rng.choices(alphabet, k=rng.randint(min_len, max_len)))
