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
_ACCENTED = "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßÀÁÂÄÅÆÇÈÉÊËÍÎÑÓÔÖØÚÜŒœŠšŽžŁłŃńŚśŹźĄąĘęČčŘřŮů"
_GREEK = "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩάέήίόύώς"
_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
_CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴"
_EMOJI = "😀😂😍🤔😎😭👍👋🙏🎉🔥✨🌍🌈🍕🍎🚀🐍🐱🐶❤💡📚🎵⚡🌙⭐🏠🚗✅"
UNICODE_EXTRA = _ACCENTED + _GREEK + _CYRILLIC + _CJK + _EMOJI

ALPHABETS: dict[str, str] = {
    "printable": _PRINTABLE,
    "digits": string.digits,
    "letters": string.ascii_letters,
    "unicode": _PRINTABLE + UNICODE_EXTRA,
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
