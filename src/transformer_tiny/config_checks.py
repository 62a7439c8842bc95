"""The checks every config dataclass runs on construction (config.py, model_config.py): each
raises :class:`ConfigError`, whose message names the field."""

from __future__ import annotations

import math
from dataclasses import field, fields
from typing import Any


class ConfigError(ValueError):
    """An invalid configuration value; ``str(err)`` names the field."""


def check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {message}")


_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool}


def check_types(cfg: Any) -> None:
    """Every field holds a value of its annotated type (``bool`` is not accepted as a number);
    an int given for a float field becomes a float, and floats must be finite."""
    for f in fields(cfg):
        value, kind = getattr(cfg, f.name), _TYPES[str(f.type)]
        ok = isinstance(value, kind) and (str(f.type) == "bool" or not isinstance(value, bool))
        check(ok, f.name, f"must be of type {f.type}, got {value!r}")
    for f in fields(cfg):
        if str(f.type) == "float":
            value = float(getattr(cfg, f.name))
            check(math.isfinite(value), f.name, f"must be a finite number, got {value!r}")
            setattr(cfg, f.name, value)


def check_seed(cfg: Any, name: str, limit: int) -> None:
    value = getattr(cfg, name)
    check(abs(value) <= limit, name, f"must be in [-{limit}, {limit}], got {value!r}")


def config_field(default: Any, help: str, choices: Any = None) -> Any:
    """A dataclass field with its ``--help`` text and, for a fixed set of values, its choices
    (a sequence, or a function returning one)."""
    return field(default=default, metadata={"help": help, "choices": choices})


def at_most(cfg: Any, **limits: int) -> None:
    """Upper bounds: they keep a config read from a file from asking for absurd allocations."""
    for name, limit in limits.items():
        check(getattr(cfg, name) <= limit, name, f"must be <= {limit}, got {getattr(cfg, name)!r}")


def positive(cfg: Any, *names: str) -> None:
    for name in names:
        check(getattr(cfg, name) > 0, name, f"must be > 0, got {getattr(cfg, name)!r}")
