"""The headline results: run the documented commands as they are written and record what they
print.

Every row is a list of shell commands (the ones README.md and docs/results.md show), run from the
repository root as subprocesses, one at a time: a training command is timed as a whole
(wall-clock, imports included) and its summary line parsed; an evaluation command runs with
``--json`` added (the same measurement, printed as JSON). Results go to
``benchmarks/results/headline.json`` (``benchmarks/report.py`` turns them into docs/results.md).

    python benchmarks/headline.py                          # every row, about 15 minutes
    python benchmarks/headline.py --rows digits,mixed      # these rows only, merged into the JSON
    python benchmarks/headline.py --quick --out /tmp/headline.json   # smoke run, tiny settings

``--quick`` runs the same scripts in this process (no interpreter start per command), with a
tiny model, a little data and its runs in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from provenance import machine, merge_rows, out_help, results_path, stamp  # noqa: E402
from text_corpus import LANGS  # noqa: E402

from transformer_tiny.utils import set_threads  # noqa: E402

QUICKSTART = "python scripts/train.py --epochs 3 --batch-size 128"
CORPUS = "python benchmarks/text_corpus.py"
EVAL = "python scripts/eval.py"


def ascii_lines(chars: int, lines: int) -> list[tuple[str, str]]:
    """A row: ``lines`` random printable ASCII lines of exactly ``chars`` characters, scored."""
    path = f"runs/ascii-{chars}.txt"
    return [("corpus", f"{CORPUS} ascii --min-len {chars} --max-len {chars} --n {lines} "
                       f"--out {path}"),
            ("eval", f"{EVAL} --file {path}")]


ROWS: dict[str, list[tuple[str, str]]] = {  # row: [(name of the result, command), ...]
    "quickstart": [("train", QUICKSTART)],
    "ascii": [("train", f"{QUICKSTART} --alphabet printable --out runs/ascii")],  # back to back
    "test": [("eval", EVAL)],
    "multilingual": [("corpus", f"{CORPUS} multilingual --out runs/multilingual.txt"),
                     ("eval", f"{EVAL} --file runs/multilingual.txt")],
    "english": [("corpus", f"{CORPUS} english --out runs/english.txt"),
                ("eval", f"{EVAL} --file runs/english.txt")],
    "english-long": [("corpus", f"{CORPUS} english --min-len 33 --max-len 128 "
                                "--out runs/english-long.txt"),
                     ("eval", f"{EVAL} --file runs/english-long.txt")],
    "ascii-random": [("corpus", f"{CORPUS} ascii --max-len 128 --out runs/ascii.txt"),
                     ("eval", f"{EVAL} --file runs/ascii.txt")],
    "ascii-500": ascii_lines(500, 100),
    "ascii-1000": ascii_lines(1000, 100),
    "ascii-3000": ascii_lines(3000, 30),
    "ascii-4000": ascii_lines(4000, 30),
    "mixed": [("corpus", f"{CORPUS} mixed --min-len 1000 --max-len 1300 --n 100 "
                         "--out runs/mixed.txt"),
              ("eval", f"{EVAL} --file runs/mixed.txt")],
    "lengths": [("eval", f"{EVAL} --lengths 33-64,65-128,129-256 --samples 200")],
    "digits": [("train", "python scripts/train.py --alphabet digits --max-len 40 --epochs 1 "
                         "--out runs/digits"),
               ("eval", f"{EVAL} --checkpoint runs/digits "
                        "--lengths 1-40,41-100,101-200,201-300,301-399,400-400 --samples 100")],
}
EXTRA = {"multilingual": {"languages": list(LANGS)}}  # what the commands do not print
QUICK_FLAGS = {  # --quick: appended to every command of that script (the last flag wins)
    "scripts/train.py": "--d-model 32 --n-heads 2 --epochs 1 --batch-size 64 --warmup-steps 2 "
                        "--max-len 8 --train-samples 256 --val-samples 16 --test-samples 16 "
                        "--progress false",
    "scripts/eval.py": "--samples 4",
    "benchmarks/text_corpus.py": "--n 34 --min-len 1 --max-len 8",
}
QUICK_LENGTHS = "1-4,5-8"  # --quick: the buckets of every --lengths (an untrained model is slow)
TRAINED = re.compile(r"trained (\d+) steps? in ([\d.]+) s; best validation exact match "
                     r"([\d.]+); checkpoints in (.+)")


class Runner:
    """Runs one documented command: as a subprocess, or (``quick``) in this process, rewritten
    to tiny settings with its ``runs/`` paths in ``tmp``."""

    def __init__(self, quick: bool, tmp: str):
        self.quick, self.tmp = quick, tmp

    def argv(self, command: str) -> list[str]:
        words = shlex.split(command)
        if words[0] != "python" or len(words) < 2:
            raise ValueError(f"not a python command: {command!r}")
        args = words[1:]
        if not self.quick:
            return args
        args = [f"{self.tmp}/{a[len('runs/'):]}" if a.startswith("runs/") else a for a in args]
        args = [QUICK_LENGTHS if before == "--lengths" else a
                for before, a in zip(["", *args], args, strict=False)]
        if args[0] == "scripts/train.py" and "--out" not in args:
            args += ["--out", f"{self.tmp}/quickstart"]
        if args[0] == "scripts/eval.py" and "--checkpoint" not in args:
            args += ["--checkpoint", f"{self.tmp}/quickstart"]
        return args + QUICK_FLAGS.get(args[0], "").split()

    def __call__(self, command: str, *extra: str) -> tuple[str, float]:
        """Run ``command`` (plus ``extra`` arguments) from the repository root; returns its
        standard output and its wall-clock seconds. A failure is an error naming the command."""
        args = [*self.argv(command), *extra]
        t = time.perf_counter()
        if self.quick:
            out, code = self._in_process(args)
        else:
            proc = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                  text=True, check=False)  # stderr (progress bars) passes through
            out, code = proc.stdout, proc.returncode
        seconds = time.perf_counter() - t
        if code != 0:
            raise RuntimeError(f"{command!r} exited with code {code}")
        return out, seconds

    @staticmethod
    def _in_process(args: list[str]) -> tuple[str, int]:
        buf, argv, cwd = io.StringIO(), sys.argv, os.getcwd()
        code = 0
        try:
            os.chdir(ROOT)
            sys.argv = args
            with contextlib.redirect_stdout(buf):
                runpy.run_path(args[0], run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.argv = argv
            os.chdir(cwd)
        return buf.getvalue(), code


def train_result(stdout: str, seconds: float) -> dict[str, Any]:
    """Wall-clock, steps, seconds in ``train()`` and validation exact match (best and per epoch,
    from the run's ``metrics.jsonl``) of a training command."""
    found = [m for m in map(TRAINED.search, stdout.splitlines()) if m]
    if not found:
        raise RuntimeError(f"no 'trained ... steps' line in the output:\n{stdout[-2000:]}")
    steps, train_s, best, out = found[-1].groups()
    metrics = Path(ROOT, out.strip()) / "metrics.jsonl"
    by_epoch = [json.loads(line)["val_exact_match"]
                for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {"wall_s": round(seconds, 1), "train_s": float(train_s), "steps": int(steps),
            "best_val_exact_match": float(best), "val_exact_match_by_epoch": by_epoch}


def eval_result(stdout: str) -> dict[str, Any]:
    """The JSON that ``eval.py --json`` printed, without its examples, with the count of
    exact answers overall and per bucket."""
    res = json.loads(stdout.strip().splitlines()[-1])
    res.pop("examples", None)
    res["correct"] = round(res["exact_match"] * res["n"])
    for bucket in res.get("buckets", {}).values():
        bucket["correct"] = round(bucket["exact_match"] * bucket["n"])
    return res


def measure(row: str, run: Runner) -> dict[str, Any]:
    """Run the commands of ``row`` in order; one result per command, under its name."""
    result: dict[str, Any] = {"commands": [command for _, command in ROWS[row]]}
    for name, command in ROWS[row]:
        script = shlex.split(command)[1]
        stdout, seconds = run(command, "--json") if script == "scripts/eval.py" else run(command)
        if script == "scripts/train.py":
            result[name] = train_result(stdout, seconds)
        elif script == "scripts/eval.py":
            result[name] = eval_result(stdout)
        else:  # text_corpus.py: "wrote N lines of A-B characters to FILE"
            wrote = re.search(r"wrote (\d+) lines of (\d+)-(\d+) characters", stdout)
            result[name] = {"lines": int(wrote.group(1)),
                            "chars": [int(wrote.group(2)), int(wrote.group(3))]} if wrote else {}
        print(f"  {seconds:6.1f} s  {command}", flush=True)
    return {**result, **EXTRA.get(row, {})}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=",".join(ROWS),
                   help="comma-separated rows to measure (default: all, in order; the "
                        "evaluations without --checkpoint use the quickstart's); the other rows "
                        "of an existing --out are kept")
    p.add_argument("--out", help=out_help("headline.json"))
    p.add_argument("--quick", action="store_true",
                   help="smoke run, in this process: a tiny model and a little data")
    args = p.parse_args()
    rows = [r for r in args.rows.split(",") if r]
    if not rows or any(r not in ROWS for r in rows):
        p.error(f"--rows must name some of {', '.join(ROWS)}; got {args.rows!r}")
    out = results_path("headline.json", args.out, args.quick).resolve()  # before any cd
    set_threads(0)  # as the scripts do: the thread count that `machine` reports
    head = {**stamp(), "machine": machine(), "quick": args.quick}
    measured_with = {k: head[k] for k in ("date", "commit", "machine")}
    results = {}
    with tempfile.TemporaryDirectory(prefix="headline-") as tmp:
        run = Runner(args.quick, tmp)
        for row in rows:
            print(f"{row}:", flush=True)
            results[row] = {**measure(row, run), **measured_with}
    merge_rows(out, "rows", results, list(ROWS), head)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
