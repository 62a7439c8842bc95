"""The building blocks of docs/results.md: where a figure was measured (date, commit, machine,
or git where the JSON does not say), the number formats the commands print, and Markdown tables."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import provenance

ROOT = Path(__file__).resolve().parent.parent
GIT_NOTE = re.compile(r"`(?P<file>[^`]+)` records no date or commit; the last commit that "
                      r"changed it is `(?P<commit>[0-9a-f]+)` \((?P<date>[0-9-]+)\)")


def load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def rel(path: Path) -> str:
    """``path`` relative to the repository root, if it is inside it."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def recorded_git_notes(existing: str) -> dict[str, tuple[str, str]]:
    """The git-derived ``(commit, date)`` per file that an earlier results.md states."""
    return {m["file"]: (m["commit"], m["date"]) for m in GIT_NOTE.finditer(existing)}


class Provenance:
    """Renders the "measured on ..." line of a table."""

    def __init__(self, existing: str):
        self.recorded = recorded_git_notes(existing)
        self.history = provenance.history_complete()

    def git_note(self, path: Path) -> str:
        """Date and commit of a file that records neither, from git. Where git cannot say (no
        clone, or a shallow one), the answer that docs/results.md already gives is kept, so that
        ``--check`` agrees in such a checkout too."""
        name = rel(path)
        if self.history and provenance.has_uncommitted_changes(path):
            return (f"`{name}` records no date or commit, and it has uncommitted changes: commit "
                    "it, then run `python benchmarks/report.py` again.")
        found = provenance.last_change(path) if self.history else self.recorded.get(name)
        if found is None:
            return f"`{name}` records no date or commit, and git cannot tell them."
        commit, date = found
        return (f"`{name}` records no date or commit; the last commit that changed it is "
                f"`{commit}` ({date}).")

    def line(self, data: dict[str, Any], path: Path) -> str:
        machine = data.get("machine") or "not recorded in the file"
        if data.get("date") and data.get("commit"):
            text = (f"Measured on {data['date']} at commit `{data['commit']}`; machine: "
                    f"{machine}. Source: `{rel(path)}`.")
        else:
            text = f"Machine: {machine}. {self.git_note(path)}"
        if data.get("quick"):
            text += (" **This is a smoke run (`--quick`: a tiny model, a little data); its "
                     "figures mean nothing.**")
        return text


def missing(path: Path, command: str, minutes: int) -> list[str]:
    return [f"Not measured yet: `{rel(path)}` does not exist. `{command}` (about {minutes} "
            "minutes) writes it; then run `python benchmarks/report.py`.", ""]


def em(x: float) -> str:
    """An exact match or accuracy, as the commands print it."""
    return f"{x:.4f}"


def span(keys: list[str]) -> str:
    """``["1-8", ..., "25-32"]`` -> ``1-32``."""
    return f"{keys[0].split('-')[0]}-{keys[-1].split('-')[1]}"


def code(commands: list[str]) -> str:
    return " then ".join(f"`{c}`" for c in commands)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def row_provenance(rows: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The date/commit/machine shared by all rows (and whether they all share one)."""
    keys = ("date", "commit", "machine")
    seen = {tuple(r.get(k) for k in keys) for r in rows.values()}
    return dict(zip(keys, next(iter(seen)), strict=True)), len(seen) == 1



def opening(path: Path, title: str, command: str, minutes: int) -> tuple[Any, list[str]]:
    """A section's JSON (None if it is missing) and its first lines: the heading, and the
    command that writes the file when there is none."""
    data = load(path)
    lines = [f"## {title}", ""]
    return data, lines if data is not None else lines + missing(path, command, minutes)

