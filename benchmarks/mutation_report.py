"""Write docs/mutation.md from the results that ``mutmut run`` stored under mutants/.

    make mutation                          # install mutmut, run it, then this script
    python benchmarks/mutation_report.py   # rewrite docs/mutation.md from mutants/ as it is

For every module that ``[tool.mutmut] only_mutate`` in pyproject.toml names, the report counts
the mutants by outcome and gives the mutation score, killed / (total - equivalent), where the
equivalent mutants (no test can tell them from the original) are the ids listed by hand in
docs/mutation-equivalent.txt. Then it lists every surviving mutant with its diff, and the
equivalent ones with the reason given. Needs mutmut (the version ``make mutation`` pins): the
outcome of an exit code and the diff of a mutant are mutmut's own.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import provenance  # noqa: E402

MUTANTS = ROOT / "mutants"
OUT = ROOT / "docs" / "mutation.md"
EQUIVALENT = ROOT / "docs" / "mutation-equivalent.txt"
COMMAND = "make mutation"  # mutmut run --max-children 2, then this script
# the outcome columns of the table, in mutmut's words; any other outcome counts as "other"
COLUMNS = ["killed", "survived", "timeout", "suspicious", "no tests"]
DIFF_LINES = 12  # at most this many lines of each survivor's diff


def mutated_modules() -> list[str]:
    """The source files that ``[tool.mutmut] only_mutate`` names, as in pyproject.toml."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the toml package that mutmut needs there
        import toml as tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["mutmut"]["only_mutate"])


def read_equivalent(path: Path) -> dict[str, str]:
    """``{mutant id: reason}`` from a file of ``ID  # reason`` lines (blank lines and lines that
    start with ``#`` are comments)."""
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        mutant, _, reason = line.partition("#")
        out[mutant.strip()] = reason.strip()
    return out


def load_results(source: str) -> dict[str, int | None] | None:
    """``{mutant id: exit code}`` that mutmut stored for ``source``, or None if it has none."""
    meta = MUTANTS / (source + ".meta")
    if not meta.exists():
        return None
    return json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]


def function_of(mutant: str) -> str:
    """``Class.method`` or ``function``: the function that a mutant id names."""
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    name, cls = orig_function_and_class_names_from_key(mutant)
    return f"{cls}.{name}" if cls else name


def short_diff(mutant: str, source: str) -> str:
    """The changed lines of the mutant's diff (as ``mutmut show`` prints it), without the file
    header and cut to :data:`DIFF_LINES` lines."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    try:
        diff = get_diff_for_mutant(mutant, path=source)
    except (FileNotFoundError, OSError) as e:
        return f"(no diff: {e})"
    lines = [ln for ln in diff.splitlines() if not ln.startswith(("---", "+++"))]
    if len(lines) > DIFF_LINES:
        lines = [*lines[:DIFF_LINES], f"... ({len(lines) - DIFF_LINES} more lines)"]
    return "\n".join(lines)


def run_commit() -> str | None:
    """The commit that mutmut recorded when it last ran the whole suite for its statistics
    (abbreviated), else the checked-out one."""
    stats = MUTANTS / "mutmut-stats.json"
    if stats.exists():
        full = json.loads(stats.read_text(encoding="utf-8")).get("git_commit")
        if full:
            return provenance.git("rev-parse", "--short", full) or full[:7]
    return provenance.head_commit()


def run_date(sources: list[str]) -> str:
    """The day (UTC) that mutmut last stored a result, else today."""
    metas = [MUTANTS / (s + ".meta") for s in sources if (MUTANTS / (s + ".meta")).exists()]
    if not metas:
        return provenance.today()
    newest = max(m.stat().st_mtime for m in metas)
    return datetime.datetime.fromtimestamp(newest, datetime.timezone.utc).date().isoformat()


def score(killed: int, denominator: int) -> str:
    return f"{100 * killed / denominator:.1f}%" if denominator > 0 else "n/a"


def interval(k: int, n: int, z: float = 1.96) -> str:
    """The 95% Wilson interval of a proportion ``k / n``, in percent."""
    if n == 0:
        return "n/a"
    p, z2 = k / n, z * z / n
    mid, half = (p + z2 / 2) / (1 + z2), z * math.sqrt(p * (1 - p) / n + z2 / (4 * n)) / (1 + z2)
    return f"{100 * max(0.0, mid - half):.0f}-{100 * min(1.0, mid + half):.0f}%"


def table(rows: list[dict[str, Any]], total: dict[str, int]) -> list[str]:
    """The per-module table: counts by outcome, the score, and the score of the mutants checked
    so far, which estimates the score when they are a random sample (``make mutation-sample``)."""
    keys = ["total", *COLUMNS, "other", "not checked", "equivalent"]
    head = ["module", *keys, "score", "score of the checked", "95% interval"]
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in [*rows, {**total, "module": "**all**", "run": True}]:
        name = Path(r["module"]).name
        if not r["run"]:
            out.append(f"| {name} | " + " | ".join(["-"] * (len(head) - 2)) + " | not run |")
            continue
        partial = "*" if r["not checked"] else ""
        killed, tested = r["killed"], r["tested"]
        out.append(f"| {name} | " + " | ".join(str(r[key]) for key in keys)
                   + f" | {score(killed, r['total'] - r['equivalent'])}{partial}"
                   + f" | {score(killed, tested)} | {interval(killed, tested)} |")
    out.append("")
    if total["not checked"]:
        out += [f"\\* {total['not checked']} mutants were not checked (a sample, or a partial or "
                "interrupted run: `not run` modules have none checked): this score counts them as "
                "not killed. The score of the checked mutants leaves them out; when those are a "
                "random sample, the interval is where the module's score lies, with 95% "
                "confidence.", ""]
    return out


def build(sources: list[str], equivalent: dict[str, str], command: str = COMMAND,
          note: str = "") -> tuple[str, dict[str, Any]]:
    """The report's Markdown, and its figures (per module and in all) for the caller."""
    from mutmut.stats import status_by_exit_code

    rows: list[dict[str, Any]] = []
    survivors: list[tuple[str, str, str]] = []  # (source, function, mutant id)
    equivalents: list[tuple[str, str, str, str]] = []  # (source, function, id, outcome)
    contradicted: list[str] = []  # listed as equivalent, yet a test killed it
    seen: set[str] = set()
    for source in sources:
        results = load_results(source)
        checked = [c for c in (results or {}).values() if c is not None]
        row: dict[str, Any] = {"module": source, "run": bool(checked)}
        counts: Counter[str] = Counter()
        n_equivalent = n_equivalent_checked = 0
        for mutant, code in (results or {}).items():
            outcome = status_by_exit_code[code]
            counts[outcome] += 1
            if mutant in equivalent:
                seen.add(mutant)
            if mutant in equivalent and outcome != "killed":
                n_equivalent += 1
                n_equivalent_checked += outcome != "not checked"
                equivalents.append((source, function_of(mutant), mutant, outcome))
            elif mutant in equivalent:
                contradicted.append(mutant)
            elif outcome == "survived":
                survivors.append((source, function_of(mutant), mutant))
        total = sum(counts.values())
        row.update({c: counts[c] for c in COLUMNS})
        row["not checked"] = counts["not checked"]
        row["other"] = total - sum(row[c] for c in COLUMNS) - row["not checked"]
        row.update(total=total, equivalent=n_equivalent,
                   tested=total - row["not checked"] - n_equivalent_checked)
        rows.append(row)

    total = {k: sum(r[k] for r in rows) for k in
             ["total", *COLUMNS, "other", "not checked", "equivalent", "tested"]}
    unknown = sorted(set(equivalent) - seen)

    out: list[str] = []
    w = out.append
    w("# Mutation testing")
    w("")
    w("<!-- Written by benchmarks/mutation_report.py from mutants/; do not edit by hand. -->")
    w("")
    w(f"Command: `{command}` (mutmut {mutmut_version()}, configured in `[tool.mutmut]` of "
      "pyproject.toml: each mutant runs the tests not marked `slow` that reach the mutated "
      "function). Not run by CI.")
    w("")
    w(f"Run: {run_date(sources)}, commit `{run_commit() or 'unknown'}`.{note and ' ' + note}")
    w("")
    w("Score = killed / (total - equivalent). A timeout, a suspicious result or a mutant "
      "that no test reaches does not count as killed. Equivalent mutants are listed by hand, "
      "with the reason, in `docs/mutation-equivalent.txt`.")
    w("")
    out += table(rows, total)
    w(f"## Surviving mutants ({len(survivors)})")
    w("")
    if not survivors:
        w("None.")
        w("")
    for source, function, mutant in survivors:
        w(f"### `{mutant}`")
        w("")
        w(f"{Path(source).name}, `{function}`")
        w("")
        w("```diff")
        w(short_diff(mutant, source))
        w("```")
        w("")

    w(f"## Equivalent mutants ({len(equivalents)})")
    w("")
    if not equivalents:
        w("None listed.")
    for source, function, mutant, outcome in equivalents:
        note = "" if outcome == "survived" else f" (outcome: {outcome})"
        w(f"- `{mutant}` ({Path(source).name}, `{function}`){note}: {equivalent[mutant]}")
    if contradicted:
        w("")
        w("Listed as equivalent but killed, so counted as killed (remove them from the list): "
          + ", ".join(f"`{m}`" for m in contradicted))
    if unknown:
        w("")
        w("Listed as equivalent but not a mutant of this run (stale ids?): "
          + ", ".join(f"`{m}`" for m in unknown))
    w("")
    figures = {"modules": rows, "all": total, "survivors": [m for _, _, m in survivors],
               "unknown_equivalent": unknown, "contradicted": contradicted}
    return "\n".join(out), figures


def mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=OUT, help="the Markdown to write (%(default)s)")
    p.add_argument("--command", default=COMMAND, help="the command named as the run's")
    p.add_argument("--note", default="", help="a sentence after the run's commit, e.g. which "
                   "mutants were rerun later, at which commit")
    args = p.parse_args(argv)

    sources = mutated_modules()
    if not any((MUTANTS / (s + ".meta")).exists() for s in sources):
        print(f"no mutmut results under {MUTANTS}: run `make mutation` first", file=sys.stderr)
        return 1
    os.chdir(ROOT)  # mutmut reads mutants/ relative to the working directory
    text, figures = build(sources, read_equivalent(EQUIVALENT), args.command, args.note)
    args.out.write_text(text, encoding="utf-8")
    total = figures["all"]
    print(f"wrote {args.out}: {total['total']} mutants, {total['killed']} killed, "
          f"{total['survived']} survived ({len(figures['survivors'])} not listed as equivalent)")
    for mutant in figures["unknown_equivalent"]:
        print(f"warning: {mutant} is listed as equivalent but is not a mutant of this run",
              file=sys.stderr)
    for mutant in figures["contradicted"]:
        print(f"warning: {mutant} is listed as equivalent but was killed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
