"""The held-out split: which strings are kept for validation and test, by their hash.

A fixed slice of all strings is held out: a string belongs to it when its hash (keyed by
``data_seed``) falls in the first ``HELDOUT_FRACTION`` of the hash range. Being a property of the
string, not of a drawn list, the split keeps every length in training, even lengths with only a
handful of strings (``parens`` has four balanced strings of length 2), and a string never lands
in two splits. The toy tasks draw their validation and test inputs from the slice
(:mod:`~transformer_tiny.data`); pairs read from files cut it in two, one half for each
(:mod:`~transformer_tiny.pairs`).
"""

from __future__ import annotations

import hashlib

HELDOUT_FRACTION = 0.1  # share of all strings reserved for validation and test


def hash_fraction(text: str, data_seed: int) -> float:
    """Where ``text`` falls in ``[0, 1)`` by its hash keyed by ``data_seed``."""
    key = f"{data_seed}\0{text}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def is_heldout(text: str, data_seed: int) -> bool:
    """Whether ``text`` is in the held-out slice of ``data_seed`` (see the module docstring)."""
    return hash_fraction(text, data_seed) < HELDOUT_FRACTION
