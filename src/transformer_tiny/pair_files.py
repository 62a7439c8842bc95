"""Files of input-output pairs, the data of the ``pairs`` task: read, checked and recorded.

Two formats, chosen by the file name:

* ``*.jsonl``: JSON Lines, one object per line with string fields ``input`` and ``output``;
* anything else: tab-separated ``input<TAB>output`` lines, exactly one tab each (a line with
  more is bad: outputs that hold tabs need JSON Lines).

Line ends (LF or CRLF) are not part of the pair. An input may appear on several lines with
different outputs (a word with two pronunciations): each one is an accepted answer.

Files are read as a stream, one line at a time, and hashed as they are read. A line that cannot
be a pair (no tab or more than one, invalid UTF-8, an empty input, longer than the model takes,
malformed JSON) is a :class:`PairsError` naming the file and the line, raised before anything is
trained, unless ``skip_bad`` is set, which counts such lines instead and keeps the first
:data:`SHOWN_BAD_LINES` with their reasons, for the warning. The pairs are held in memory: a file
too large for the memory this machine has free is refused before it is read. How the pairs are
split into training, validation and test sets: :mod:`transformer_tiny.pairs`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .utils import free_memory

MEMORY_PER_FILE_BYTE = 12  # Python strings, tuples and token lists of a pair, per byte of file


BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, which some editors write first

SHOWN_BAD_LINES = 3  # skipped lines that a warning names, with their reasons


class PairsError(ValueError):
    """A pairs file that cannot be used; the message names the file (and the line)."""


@dataclass(frozen=True)
class PairFile:
    """What a checkpoint records about a data file (never the data itself)."""

    role: str  # "train", "val" or "test"
    name: str
    size: int
    sha256: str
    lines: int
    pairs: int
    skipped: int
    inputs: int = 0  # distinct inputs among the pairs
    # the first skipped lines, "line N: reason" (for the warning; not kept in checkpoints)
    bad_lines: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        del record["bad_lines"]
        return record

    def skip_note(self) -> str:
        """One line on the bad lines skipped (``""`` if none was), naming the first ones."""
        if not self.skipped:
            return ""
        lines = "line" if self.skipped == 1 else "lines"
        return (f"skipped {self.skipped} bad {lines} of {self.name} ({self.pairs} pairs read)"
                + _first_bad(self.bad_lines, self.skipped))


def _first_bad(bad_lines: tuple[str, ...], skipped: int) -> str:
    """``": line 3: reason; line 7: reason"``, or ``", the first 3: ..."`` if more were skipped."""
    first = f", the first {len(bad_lines)}" if skipped > len(bad_lines) else ""
    return f"{first}: " + "; ".join(bad_lines)


def changed_files(recorded: Any, files: list[PairFile]) -> list[PairFile]:
    """The ``files`` whose SHA-256 differs from the one that ``recorded`` (a checkpoint's
    ``data_files``) holds for a file of the same role and name; a file it does not record has
    not changed. Names are compared without their folders (older checkpoints kept them as
    given)."""
    saved = {(str(r.get("role")), Path(str(r.get("name"))).name): r.get("sha256")
             for r in recorded if isinstance(r, dict)} if isinstance(recorded, list) else {}
    return [f for f in files if saved.get((f.role, Path(f.name).name), f.sha256) != f.sha256]


def changed_notes(recorded: Any, files: list[PairFile]) -> list[str]:
    """What ``eval.py`` and ``evaluate()`` say of each of the ``files`` read for a held-out
    split that changed since training (:func:`changed_files`)."""
    return [f"{f.name} changed since training (its SHA-256 differs); the held-out split may not "
            "be the one held out then" for f in changed_files(recorded, files)]


def _check_size(path: Path, size: int) -> None:
    free = free_memory()
    if free is not None and size * MEMORY_PER_FILE_BYTE > free:
        raise PairsError(f"{path}: {size / 2**30:.1f} GiB of pairs need about "
                         f"{size * MEMORY_PER_FILE_BYTE / 2**30:.1f} GiB of memory, "
                         f"{free / 2**30:.1f} GiB is free here (pairs are held in memory)")


def _looks_utf16(body: bytes) -> bool:
    """Whether a line's bytes look like UTF-16 text: valid UTF-8 to the byte, and garbage as
    text. Its ASCII characters are a byte and a NUL each: three in four bytes of one parity
    (even or odd places) or more are NUL, at least three, and (almost) none of the other's."""
    if body.count(0) < 3:  # nearly every line: no slicing
        return False
    even, odd = body[0::2], body[1::2]
    return any(mine.count(0) >= 3 and 4 * mine.count(0) >= 3 * len(mine) and
               4 * other.count(0) <= mine.count(0) for mine, other in ((even, odd), (odd, even)))


def _hint(text: str, jsonl: bool) -> str:
    """What a bad line may be instead of a pair, if it looks like it."""
    if text.lstrip().startswith("{") and not jsonl:
        return " (JSON Lines files must be named *.jsonl)"
    if text.lstrip().startswith("["):
        return " (a JSON array? pairs files take JSON Lines, one object per line, named *.jsonl)"
    if "\r" in text:
        return " (line ends of CR only? save the file with LF or CRLF line ends)"
    return ""


class _Fields(dict):
    """A JSON object, with the first of ``input`` and ``output`` that it holds twice (JSON
    would keep the last, silently)."""

    twice: str | None = None


def _fields(items: list[tuple[str, Any]]) -> _Fields:
    obj = _Fields(items)
    keys = [key for key, _ in items]
    obj.twice = next((key for key in ("input", "output") if keys.count(key) > 1), None)
    return obj


def _parse(body: bytes, jsonl: bool) -> tuple[str, str]:
    """One line -> ``(input, output)``; ``ValueError`` says what is wrong with it."""
    if _looks_utf16(body):
        raise ValueError("this looks like UTF-16 (NUL bytes between the characters): save the "
                         "file as UTF-8")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"invalid UTF-8 at byte {e.start}") from None
    if jsonl:
        try:
            obj = json.loads(text, object_pairs_hook=_fields)
        except (json.JSONDecodeError, RecursionError):
            raise ValueError("not valid JSON" + _hint(text, jsonl)) from None
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str)
                                                for k in ("input", "output")):
            raise ValueError('expected an object with string fields "input" and "output"'
                             + _hint(text, jsonl))
        if obj.twice:  # of the line's own object (a nested one may repeat its keys)
            raise ValueError(f'the field "{obj.twice}" appears twice')
        source, target = obj["input"], obj["output"]
    else:
        source, tab, target = text.partition("\t")
        if not tab:
            raise ValueError(f"no tab between input and output{_hint(text, jsonl)}")
        if "\t" in target:
            raise ValueError("more than one tab (outputs with tabs: use JSON Lines)"
                             + _hint(text, jsonl))
    if not source:
        raise ValueError("empty input")
    return source, target


def _check_lengths(source: str, target: str, max_bytes: int) -> None:
    n_in = len(source.encode("utf-8", "surrogatepass"))
    n_out = len(target.encode("utf-8", "surrogatepass"))
    if n_in > max_bytes:
        raise ValueError(f"input of {n_in} bytes, this model takes at most {max_bytes}")
    if n_out > max_bytes:
        raise ValueError(f"output of {n_out} bytes, this model writes at most {max_bytes}")


def read_pairs(path: str | Path, role: str, max_bytes: int,
               skip_bad: bool = False) -> tuple[list[tuple[str, str]], PairFile]:
    """The ``(input, output)`` pairs of the file at ``path``, in file order, and its record.

    ``max_bytes`` is the longest input and output in UTF-8 bytes (the model's). A bad line
    raises :class:`PairsError` (``"FILE line N: reason"``), or is counted in
    ``PairFile.skipped`` with ``skip_bad`` (the first ones kept in ``PairFile.bad_lines``).
    Empty lines and a UTF-8 byte order mark at the start are ignored. A file without a single
    pair is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise PairsError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    size = path.stat().st_size
    _check_size(path, size)
    jsonl = path.suffix.lower() == ".jsonl"
    # A line longer than this cannot hold a pair that fits (JSON escapes take up to 6 bytes).
    limit = (6 if jsonl else 1) * 2 * max_bytes + 64
    digest, pairs, bad, skipped, line = hashlib.sha256(), [], [], 0, 0
    with path.open("rb") as f:
        while raw := f.readline(limit + 1):
            digest.update(raw)
            line += 1
            complete = raw.endswith(b"\n") or len(raw) <= limit
            body = raw.removesuffix(b"\n").removesuffix(b"\r")
            if line == 1:
                body = body.removeprefix(BOM)
            if not body and complete:
                continue
            try:
                if not complete:
                    start = body.decode("utf-8", "replace")
                    raise ValueError(f"longer than {limit} bytes{_hint(start, jsonl)}")
                pair = _parse(body, jsonl)
                _check_lengths(*pair, max_bytes)
            except ValueError as e:
                if not skip_bad:
                    raise PairsError(f"{path} line {line}: {e}") from None
                skipped += 1
                if len(bad) < SHOWN_BAD_LINES:
                    bad.append(f"line {line}: {e}")
                while not complete and (raw := f.readline(limit + 1)):  # the rest of the line
                    digest.update(raw)
                    complete = raw.endswith(b"\n")
                continue
            pairs.append(pair)
    record = PairFile(role, str(path), size, digest.hexdigest(), line, len(pairs), skipped,
                      len({source for source, _ in pairs}), tuple(bad))
    if not pairs:
        lines = "line" if skipped == 1 else "lines"
        why = f" ({skipped} bad {lines} skipped{_first_bad(record.bad_lines, skipped)})"
        raise PairsError(f"{path}: no pairs" + (why if skipped else ""))
    return pairs, record
