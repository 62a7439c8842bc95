"""How the commands end: every expected failure becomes one ``error:`` line and exit code 2
(:func:`run_cli`); anything else keeps its traceback, as a bug.

Library modules raise ordinary exceptions (``ValueError``, ``OSError``, ``ConfigError``,
``CheckpointError``); only the commands decide how they reach the user.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..checkpoint import CheckpointError
from ..config import ConfigError


class UsageError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def one_line(message: str) -> str:
    """``message`` as one printable line: its first line, control characters escaped."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in first)


def error_message(e: BaseException) -> str:
    """What the user reads for an expected failure ``e``."""
    if isinstance(e, UnicodeError):
        return f"text cannot be encoded: {e.reason}"
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.strerror or e}: {e.filename}"
    return one_line(str(e)) or type(e).__name__


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main`` and turn expected failures into one ``error:`` line and exit code 2."""
    if sys.stderr is None:  # started with its standard error closed: errors go nowhere
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (open as long as the process)
    if sys.stdin is None:  # closed: read as an empty input, as from /dev/null
        sys.stdin = open(os.devnull)  # noqa: SIM115
    if sys.stdout is None:
        print("error: standard output is closed", file=sys.stderr)
        return 2
    if _is_utf8(sys.stdout):  # then only a lone surrogate cannot be written: a file name that
        # is not UTF-8, printed escaped as standard error prints it (other encodings stay strict)
        with contextlib.suppress(AttributeError, ValueError):
            sys.stdout.reconfigure(errors="backslashreplace")
    try:
        return main(argv)
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as Unix tools do
        # nothing left for Python to flush at exit (unless stdout is not a file: in-process)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE: the status of a Unix tool stopped by a closed pipe
    except (UsageError, ConfigError, CheckpointError, ValueError, OSError) as e:
        print(f"error: {one_line(error_message(e))}", file=sys.stderr)
        return 2
    except Exception as e:  # only running out of memory is expected here
        if not out_of_memory(e):
            raise  # a bug: its traceback is what finds it
        print("error: out of memory: try fewer or shorter inputs, a narrower --beam or, to "
              "train, a smaller --batch-size", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` says that memory ran out: Python's ``MemoryError``, PyTorch's failed
    allocation on a CPU (a ``RuntimeError``) or a GPU (``torch.OutOfMemoryError``), or
    onnxruntime's (its ``Fail``)."""
    text = str(e).lower()
    return isinstance(e, MemoryError) or any(
        words in text for words in ("can't allocate memory", "out of memory",
                                    "failed to allocate memory"))


def _is_utf8(stream: Any) -> bool:
    try:
        return codecs.lookup(stream.encoding).name == "utf-8"
    except (AttributeError, LookupError, TypeError):
        return False
