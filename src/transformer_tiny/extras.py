"""The optional dependencies (``pip install -e '.[EXTRA]'`` in the repository's folder), imported
only where a feature needs them, with one error that says which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ValueError):
    """An optional dependency that a feature needs is not installed (one ``error:`` line)."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` for ``what`` (a feature, e.g. ``"--tensorboard"``), or raise
    :class:`MissingExtraError` naming the ``extra`` that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{what} needs the {extra} extra: "
                                f"pip install -e '.[{extra}]'") from None
