"""Print a random sample of the mutants that ``mutmut run`` generated under mutants/: up to N of
each module that ``[tool.mutmut] only_mutate`` names, the same sample for the same code.

    make mutation-sample                   # mutmut on the sample, then docs/mutation.md
    python benchmarks/mutation_sample.py 80
    python benchmarks/mutation_sample.py 20 --seed 1   # another sample (make: MUTATION_SEED=1)

A full run takes hours on 2 cores; a sample of N mutants per module estimates each module's score
within a few points (docs/mutation.md gives the interval) in under an hour.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mutation_report import MUTANTS, mutated_modules  # noqa: E402


def sample(per_module: int, seed: int = 0) -> list[str]:
    """``per_module`` mutant ids drawn without replacement from each module (all of a smaller
    one), in the order of the modules."""
    chosen: list[str] = []
    for source in mutated_modules():
        meta = MUTANTS / (source + ".meta")
        if not meta.exists():
            raise SystemExit(f"error: no mutants for {source}: run mutmut first")
        names = sorted(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
        chosen += sorted(random.Random(f"{seed}:{source}").sample(names,
                                                                   min(per_module, len(names))))
    return chosen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("per_module", type=int, help="mutants drawn from each module")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print("\n".join(sample(args.per_module, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
