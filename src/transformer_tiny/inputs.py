"""What a model's inputs are made of: the characters its training inputs were drawn from, the
bytes it therefore saw (to name the characters of a text it never saw), what a checkpoint records
of them (to notice an alphabet that changed since), an example input to show, and the options
of a config that its task takes no notice of.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import fields
from typing import Any

from .alphabets import ALPHABETS
from .config import DataConfig
from .tasks import BUILT_IN, task_for

OWN_CHARACTERS, FROM_FILES = "its own characters", "the pairs it was trained on"


def input_characters(cfg: Any) -> tuple[str, str | None]:
    """What the training inputs of ``cfg`` (a ``DataConfig``) are drawn from: a name (the
    alphabet's, :data:`OWN_CHARACTERS` for a task that brings its own, or :data:`FROM_FILES`)
    and those characters, None for pairs read from files (a checkpoint records their bytes)."""
    task = task_for(cfg)
    if task.reads_files:
        return FROM_FILES, None
    if task.characters is not None:
        return OWN_CHARACTERS, task.characters
    return cfg.alphabet, ALPHABETS[cfg.alphabet]


DEFAULT_TEXT = "Hello, world!"  # the first input of the pictures and of the browser page


def example_input(cfg: Any, text: str = "Hello_2025") -> str | None:
    """An input to show for the task of ``cfg`` (a ``DataConfig``): ``text`` if a training input
    could be it (its characters and length), else one the task draws (``add``, ``parens``, a
    ``digits`` model); None for pairs read from files."""
    alphabet, characters = input_characters(cfg)
    if characters is None:
        return None
    fits = set(text) <= set(characters) and cfg.min_len <= len(text) <= cfg.max_len
    if alphabet == OWN_CHARACTERS or not fits:
        short = max(cfg.min_len, min(cfg.max_len, 12))  # short, within the training lengths
        return task_for(cfg).make_input(random.Random(0), characters, cfg.min_len, short)
    return text


def widest_input_character(cfg: Any) -> int:
    """UTF-8 bytes of the widest character that the inputs of ``cfg`` (a ``DataConfig``) are
    drawn from; 4 for pairs read from files, which may hold any character."""
    return _widest(input_characters(cfg)[1] or "\U0010ffff")


def longest_input(data: Any, max_input_bytes: int) -> int:
    """The most characters an input of ``data`` (a ``DataConfig``) may have and surely fit a
    model taking ``max_input_bytes`` (each of them may be the alphabet's widest), and the task's
    format (no more than the training lengths, for ``Task.within_training_lengths``)."""
    fits = _fitting_characters(data, max_input_bytes)
    return min(fits, data.max_len) if task_for(data).within_training_lengths else fits


def _fitting_characters(data: Any, max_input_bytes: int) -> int:
    return max_input_bytes // widest_input_character(data)


def check_input_room(data: Any, max_input_bytes: int) -> None:
    """Raise ``ValueError`` if an input of ``data`` (a ``DataConfig`` of a task that draws its
    own inputs) may need more bytes than a model taking ``max_input_bytes`` has: before
    training, not when the first such string is drawn, perhaps an epoch later."""
    if input_characters(data)[1] is None:
        return  # pairs read from files: every line is checked as it is read
    # the bytes only: a task's own bound (Task.within_training_lengths) is the training lengths
    if data.max_len > _fitting_characters(data, max_input_bytes):
        widest = widest_input_character(data)
        raise ValueError(f"max_len {data.max_len}: inputs of up to {data.max_len} characters "
                         f"of up to {widest} bytes need {data.max_len * widest + 2} positions, "
                         f"this model has {max_input_bytes + 2} (max_positions)")


@functools.lru_cache(maxsize=16)
def _widest(chars: str) -> int:
    return max(len(c.encode("utf-8", "surrogatepass")) for c in chars)


def unseen_characters(text: str, cfg: Any, seen_bytes: Any = None) -> list[str]:
    """The characters of ``text`` (each once, in order) that hold a byte no training input of
    ``cfg`` (a ``DataConfig``) ever held: the model reads bytes, so a character made of bytes it
    has seen, in other characters, is not new to it. ``seen_bytes`` (the bytes of the training
    inputs that a checkpoint records, :func:`characters_record`) replaces the alphabet's."""
    seen = seen_input_bytes(cfg, seen_bytes)
    if seen is None:
        return []  # the inputs came from files the checkpoint does not describe
    return [c for c in dict.fromkeys(text) if not _bytes_of(c) <= seen]


def seen_input_bytes(cfg: Any, recorded: Any = None) -> frozenset[int] | None:
    """The bytes the training inputs of ``cfg`` (a ``DataConfig``) held: ``recorded`` (what the
    checkpoint records) if given, else its alphabet's; None if neither says (pairs read from
    files, by a checkpoint written before the record existed)."""
    if recorded is not None:
        return frozenset(recorded)
    characters = input_characters(cfg)[1]
    return None if characters is None else _bytes_of(characters)


@functools.lru_cache(maxsize=16)
def _bytes_of(chars: str) -> frozenset[int]:
    return frozenset(chars.encode("utf-8", "surrogatepass"))


def characters_record(cfg: Any) -> dict[str, Any]:
    """What a checkpoint records of the characters that the inputs of ``cfg`` (a ``DataConfig``)
    are drawn from: their bytes, and a SHA-256 of the characters as drawn (each as often as its
    alphabet holds it). A later version of an alphabet then changes neither the characters the
    model is known to have seen nor goes unnoticed (:func:`characters_changed`). Empty for pairs
    read from files, which the records of the files describe."""
    characters = input_characters(cfg)[1]
    if characters is None:
        return {}
    digest = hashlib.sha256(characters.encode("utf-8", "surrogatepass")).hexdigest()
    return {"input_bytes": sorted(_bytes_of(characters)), "characters_sha256": digest}


def characters_changed(cfg: Any, info: dict[str, Any]) -> str | None:
    """A note if the characters that the inputs of ``cfg`` are drawn from are not those the
    checkpoint ``info`` recorded (:func:`characters_record`): the alphabet changed since training,
    so its held-out sets are not those held out then. None if they are the same, or if the
    checkpoint records none (written before the record existed)."""
    recorded = info.get("characters_sha256")
    now = characters_record(cfg).get("characters_sha256")
    if not isinstance(recorded, str) or now is None or recorded == now:
        return None
    name = input_characters(cfg)[0]
    which = f"task {cfg.task}'s characters" if name == OWN_CHARACTERS else f"alphabet {name}"
    return f"{which} changed since this model was trained (its checkpoint records others)"


def options_not_taken(cfg: DataConfig) -> list[str]:
    """A note for each option of ``cfg`` set away from its default that its task takes no
    notice of: saved with the run, it would say what did not happen."""
    task = task_for(cfg)
    if task.reads_files:  # option -> why the task ignores it
        why = dict.fromkeys(("alphabet", "min_len", "max_len", "hard_share"),
                            "its inputs come from its files")
        why["train_samples"] = "it trains on every pair of its files"
    else:
        why = {"skip_bad_lines": "it reads no files"}
        if task.characters:
            why["alphabet"] = "its inputs are made of its own characters"
    if task.name in BUILT_IN and task.name != "shift":  # a task of the user's own may read it
        why["shift"] = "only task shift shifts letters"
    default = DataConfig()
    return [f"task {task.name} takes no notice of {f.name}={getattr(cfg, f.name)!r}: {why[f.name]}"
            for f in fields(DataConfig)
            if f.name in why and getattr(cfg, f.name) != getattr(default, f.name)]
