"""Where a measurement comes from: the date, the commit and the machine, for every results JSON.

``stamp()`` gives the top-level ``date`` (ISO, UTC) and ``commit`` (``git rev-parse --short
HEAD``) fields that every benchmark script writes; ``machine()`` describes the CPU count and the
PyTorch build; ``last_change(path)`` is the fallback that ``report.py`` uses for a results file
written before the scripts recorded ``date`` and ``commit``. Only the standard library is needed
here, except by ``machine()`` and ``merge_rows()`` (the writer of the scripts that measure rows:
tasks_table.py, headline.py), which import torch when they are called.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str | None:
    """The stripped output of ``git ARGS`` run in the repository, or None if git cannot answer
    (not installed, not a clone, or an error)."""
    try:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def today() -> str:
    """Today's date in ISO format (UTC): ``2026-11-27``."""
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def head_commit() -> str | None:
    """The abbreviated hash of the checked-out commit, or None outside a git clone; with
    ``+changes`` appended when the code measured (``src/``, ``scripts/``, ``benchmarks/`` other
    than its results) differs from that commit, so a result never claims a commit it did not
    run."""
    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return None
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "src", "scripts",
                  "benchmarks", ":(exclude)benchmarks/results")
    return f"{commit}+changes" if changed else commit


def results_path(name: str, out: str | Path | None, quick: bool) -> Path:
    """Where a benchmark writes its JSON: ``out`` if given; else ``benchmarks/results/NAME``, or
    ``runs/quick/NAME`` for a smoke run (``--quick``), whose figures mean nothing, so that it
    never replaces a measurement."""
    if out is not None:
        return Path(out)
    return (ROOT / "runs" / "quick" if quick else ROOT / "benchmarks" / "results") / name


def out_help(name: str) -> str:
    """The ``--out`` help of a benchmark that writes ``name`` (see :func:`results_path`)."""
    return f"the JSON to write (default: benchmarks/results/{name}; runs/quick/{name} with --quick)"


def stamp() -> dict[str, str | None]:
    """The ``date`` and ``commit`` fields of a results file written now."""
    return {"date": today(), "commit": head_commit()}


def machine() -> str:
    """The machine as the results files describe it:
    ``x86_64, 2 cores, torch 2.13.0+cpu, 2 threads`` (threads as PyTorch uses them now)."""
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def history_complete() -> bool:
    """Whether this clone has its whole history (not shallow), so that ``last_change`` answers
    the same everywhere."""
    return git("rev-parse", "--is-shallow-repository") == "false"


def has_uncommitted_changes(path: str | Path) -> bool:
    """Whether ``path`` differs from the checked-out commit (modified, or never committed)."""
    return bool(git("status", "--porcelain", "--", str(Path(path).resolve())))


def last_change(path: str | Path) -> tuple[str, str] | None:
    """``(commit, date)`` of the last commit that changed ``path``
    (``git log -1 --format='%h %cs' -- PATH``), or None if git cannot answer (not a clone, a
    file outside it or never committed)."""
    out = git("log", "-1", "--format=%h %cs", "--", str(Path(path).resolve()))
    if not out:
        return None
    commit, date = out.split()
    return commit, date

def merge_rows(out: str | Path, key: str, new: dict[str, Any], order: list[str],
               head: dict[str, Any]) -> dict[str, Any]:
    """Write ``out`` as ``{**head, key: rows}``, where the rows are those already in ``out``
    updated with ``new`` (each row keeps the ``date``, ``commit`` and ``machine`` it was measured
    with), in the order of ``order``; a row whose name is not in ``order`` is no longer measured
    and is dropped. Rows of a smoke run (``head["quick"]``) never mix with real ones. Returns
    what was written."""
    from transformer_tiny.utils import atomic_write_json  # imports torch: only when writing

    path = Path(out)
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    rows = dict(old.get(key, {})) if bool(old.get("quick")) == bool(head.get("quick")) else {}
    rows.update(new)
    names = [n for n in order if n in rows]
    report = {**head, key: {n: rows[n] for n in names}}
    atomic_write_json(path, report)
    return report
