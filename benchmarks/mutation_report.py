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


def build(sources: list[str], equivalent: dict[str, str]) -> tuple[str, dict[str, Any]]:
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
        n_equivalent = 0
        for mutant, code in (results or {}).items():
            outcome = status_by_exit_code[code]
            counts[outcome] += 1
            if mutant in equivalent:
                seen.add(mutant)
            if mutant in equivalent and outcome != "killed":
                n_equivalent += 1
                equivalents.append((source, function_of(mutant), mutant, outcome))
            elif mutant in equivalent:
                contradicted.append(mutant)
            elif outcome == "survived":
                survivors.append((source, function_of(mutant), mutant))
        total = sum(counts.values())
        row.update({c: counts[c] for c in COLUMNS})
        row["not checked"] = counts["not checked"]
        row["other"] = total - sum(row[c] for c in COLUMNS) - row["not checked"]
        row.update(total=total, equivalent=n_equivalent)
        rows.append(row)

    total = {k: sum(r[k] for r in rows) for k in
             ["total", *COLUMNS, "other", "not checked", "equivalent"]}
    unknown = sorted(set(equivalent) - seen)

    out: list[str] = []
    w = out.append
    w("# Mutation testing")
    w("")
    w("<!-- Written by benchmarks/mutation_report.py from mutants/; do not edit by hand. -->")
    w("")
    w(f"Command: `{COMMAND}` (mutmut {mutmut_version()}, configured in `[tool.mutmut]` of "
      "pyproject.toml: each mutant runs the tests not marked `slow` that reach the mutated "
      "function). Not run by CI.")
    w("")
    w(f"Run: {run_date(sources)}, commit `{run_commit() or 'unknown'}`.")
    w("")
    w("Score = killed / (total - equivalent). A timeout, a suspicious result or a mutant "
      "that no test reaches does not count as killed. Equivalent mutants are listed by hand, "
      "with the reason, in `docs/mutation-equivalent.txt`.")
    w("")
    head = ["module", "total", *COLUMNS, "other", "not checked", "equivalent", "score"]
    w("| " + " | ".join(head) + " |")
    w("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in rows:
        name = Path(r["module"]).name
        if not r["run"]:
            w(f"| {name} | " + " | ".join(["-"] * (len(head) - 2)) + " | not run |")
            continue
        cells = [r[k] for k in ["total", *COLUMNS, "other", "not checked", "equivalent"]]
        partial = "*" if r["not checked"] else ""
        w(f"| {name} | " + " | ".join(map(str, cells))
          + f" | {score(r['killed'], r['total'] - r['equivalent'])}{partial} |")
    cells = [total[k] for k in ["total", *COLUMNS, "other", "not checked", "equivalent"]]
    w("| **all** | " + " | ".join(map(str, cells))
      + f" | **{score(total['killed'], total['total'] - total['equivalent'])}** |")
    w("")
    if total["not checked"]:
        w(f"\\* {total['not checked']} mutants were not checked yet (a partial or interrupted "
          "run: `not run` modules have none checked): these scores count them as not killed.")
        w("")

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
    args = p.parse_args(argv)

    sources = mutated_modules()
    if not any((MUTANTS / (s + ".meta")).exists() for s in sources):
        print(f"no mutmut results under {MUTANTS}: run `make mutation` first", file=sys.stderr)
        return 1
    os.chdir(ROOT)  # mutmut reads mutants/ relative to the working directory
    text, figures = build(sources, read_equivalent(EQUIVALENT))
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
