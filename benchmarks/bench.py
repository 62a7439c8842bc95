"""Benchmark ours against a peer built on PyTorch's ``nn.Transformer``, in one run.

    python benchmarks/bench.py            # full run (time-to-accuracy capped at 15 min per recipe)
    python benchmarks/bench.py --quick    # smoke run: fewer steps, 60 s caps

Sections (each measured in its own child process, so that its peak memory is its own):
* training throughput: target tokens/s (total tokens over total time) of forward + backward +
  AdamW step, over one quickstart epoch's worth of batches; ours and the peer alternate steps on
  the same batches in one process (the ratio is the peer's total time over ours, overall and by
  source length), and each then runs alone for its peak memory;
* greedy decoding: strings/s at source lengths 32/128/256, batch 1 and 64, for ours with the KV
  cache, ours without it, and the peer's tutorial loop (re-runs the prefix each step); every
  decoder runs exactly ``length + 1`` steps; the three take turns in one process (the ratios are
  medians of per-round ratios), and each then runs once alone for its peak memory;
* time to accuracy: training seconds (evaluation pauses excluded) until validation exact match
  >= 99.9% on lengths 1-32, for our quickstart recipe and for the PyTorch translation tutorial's
  recipe (nn.Transformer post-norm, embeddings x sqrt(d_model), sinusoidal positions, dropout 0.1,
  Adam lr 1e-4, betas (0.9, 0.98), eps 1e-9), at the same sizes.
Peak memory is the child's peak resident set size. Results go to ``benchmarks/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from peer import PeerTransformer, peer_greedy  # noqa: E402
from provenance import machine, out_help, results_path, stamp  # noqa: E402

from transformer_tiny.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from transformer_tiny.data import DataModule  # noqa: E402
from transformer_tiny.decoding import greedy_decode  # noqa: E402
from transformer_tiny.model import Seq2SeqTransformer  # noqa: E402
from transformer_tiny.tokenizer import ByteTokenizer  # noqa: E402
from transformer_tiny.train_eval import (  # noqa: E402
    learning_rate,
    make_optimizer,
    sequence_loss,
)
from transformer_tiny.utils import atomic_write_json, set_threads  # noqa: E402


def build(which: str) -> torch.nn.Module:
    cfg = ModelConfig()
    if which == "ours":
        return Seq2SeqTransformer(cfg)
    if which == "peer":
        return PeerTransformer(cfg)
    return PeerTransformer(cfg, dropout=0.1, scale_embeddings=True, norm_first=False)  # tutorial


# ----------------------------------------------------------------------------- children
WARMUP_STEPS = 5  # training steps per model before timing starts
TRAIN_STEPS = 125  # timed training steps: a quickstart epoch (16,000 strings in batches of 128)


def child_train(which: str, steps: int) -> dict:
    """Training throughput of ``which`` ("ours", "peer" or "both"): target tokens/s over ``steps``
    batches, total tokens over total time.

    "both" alternates one step of each on the same batch (in turn going first), so that a noisy
    shared machine slows both alike. Its ``ratio`` is the peer's total time over ours on the same
    batches (the ratio of throughputs); ``ratio_median`` is the median of the per-batch ratios,
    which counts a batch of 5 tokens as much as one of 34 and so is not a throughput.
    A single model is run alone to measure its peak memory.
    """
    names = ["ours", "peer"] if which == "both" else [which]
    models = {name: build(name).train() for name in names}
    opts = {name: make_optimizer(m, TrainConfig()) for name, m in models.items()}
    n_batches = steps + WARMUP_STEPS
    data = DataConfig(alphabet="printable", train_samples=128 * n_batches)
    batches = list(DataModule(data).train_loader(0, 128))
    seconds: dict[str, list[float]] = {name: [] for name in names}
    tokens: list[int] = []
    for i, batch in enumerate(batches):
        for name in names if i % 2 else names[::-1]:
            t = time.perf_counter()
            loss, n_tok = sequence_loss(models[name], batch)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
            if i >= WARMUP_STEPS:
                seconds[name].append(time.perf_counter() - t)
        if i >= WARMUP_STEPS:
            tokens.append(n_tok)
    result = {f"{name}_tokens_per_s": sum(tokens) / sum(s) for name, s in seconds.items()}
    if which == "both":
        ours, peer = seconds["ours"], seconds["peer"]
        result["ratio"] = sum(peer) / sum(ours)
        result["ratio_median"] = statistics.median(p / o for o, p in zip(ours, peer, strict=True))
        widths = [b["src"].size(1) for b in batches[WARMUP_STEPS:]]  # BOS and EOS included
        result["ratio_by_length"] = ratio_by_length(ours, peer, widths)
    return {**result, "steps": len(tokens)}


def ratio_by_length(ours_s: list[float], peer_s: list[float], src_tokens: list[int]) -> list[dict]:
    """Throughput ratio (the peer's total time over ours) for the batches of short, middling and
    long sources."""
    out = []
    for lo, hi in ((1, 9), (10, 17), (18, 25), (26, 34)):
        picked = [i for i, n in enumerate(src_tokens) if lo <= n <= hi]
        if picked:
            out.append({"src_tokens": f"{lo}-{hi}", "batches": len(picked),
                        "ratio": sum(peer_s[i] for i in picked) / sum(ours_s[i] for i in picked)})
    return out


DECODERS = ("cached", "uncached", "peer")


def child_decode(which: str, length: int, batch: int, repeats: int) -> dict:
    """Strings/s of greedy decoding, exactly ``length + 1`` steps per string.

    ``which="all"`` measures the three decoders in rounds, one run of each per round in turn, so
    that a noisy machine slows all three alike; it reports each decoder's median and the median
    of the per-round ratios. After one warm-up run of each, at least ``repeats`` rounds (more, up
    to 20, until 2 s of each decoder have been measured). A single decoder runs once, alone, for
    its peak memory.
    """
    names = DECODERS if which == "all" else (which,)
    ours = build("ours").eval() if set(names) & {"cached", "uncached"} else None
    peer = build("peer").eval() if "peer" in names else None
    texts = ["".join(chr(33 + (i * 7 + j) % 90) for j in range(length)) for i in range(batch)]
    src, _ = ByteTokenizer().encode_batch(texts, bos=True, eos=True)
    runs = {
        "cached": lambda: greedy_decode(ours, src, length + 1, stop_at_eos=False),
        "uncached": lambda: greedy_decode(ours, src, length + 1, use_cache=False,
                                          stop_at_eos=False),
        "peer": lambda: peer_greedy(peer, src, length + 1, stop_at_eos=False),
    }
    if which != "all":
        runs[which]()
        return {}
    for name in names:
        runs[name]()  # warm-up: lazy kernel initialisation is not part of decoding
    times: dict[str, list[float]] = {name: [] for name in names}
    while len(times["peer"]) < 20 and (
            len(times["peer"]) < repeats or min(sum(t) for t in times.values()) < 2.0):
        for name in names:
            t = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t)
        names = names[1:] + names[:1]  # the next round starts with the next decoder
    result = {name: batch / statistics.median(t) for name, t in times.items()}
    for other in ("uncached", "peer"):
        result[f"cached_over_{other}"] = statistics.median(
            b / a for a, b in zip(times["cached"], times[other], strict=True))
    return {**result, "rounds": len(times["peer"])}


@torch.no_grad()
def exact_match(model: torch.nn.Module, which: str, inputs: list[str]) -> float:
    """Greedy exact match of a reversal model (ours or a peer) on ``inputs``."""
    tok, good = ByteTokenizer(), 0
    model.eval()
    for i in range(0, len(inputs), 250):
        chunk = inputs[i:i + 250]
        src, _ = tok.encode_batch(chunk, bos=True, eos=True)
        decode = greedy_decode if which == "ours" else peer_greedy
        out = decode(model, src, src.size(1))
        good += sum(tok.decode(o.tolist()) == x[::-1] for o, x in zip(out, chunk, strict=True))
    return good / len(inputs)


def child_tta(which: str, cap_s: float, target: float) -> dict:
    torch.manual_seed(0)
    tc, dc = TrainConfig(), DataConfig(alphabet="printable")  # as in the stored results
    model = build(which)
    if which == "ours":
        opt = make_optimizer(model, tc)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    dm = DataModule(dc)
    steps_per_epoch = -(-dc.train_samples // tc.batch_size)
    total = steps_per_epoch * tc.epochs
    trained, step, epoch, acc, curve = 0.0, 0, 0, 0.0, []
    every = 25 if which == "ours" else 100
    while trained < cap_s:
        for batch in dm.train_loader(epoch, tc.batch_size):
            t = time.perf_counter()
            model.train()
            if which == "ours":
                for g in opt.param_groups:
                    g["lr"] = learning_rate(min(step, total - 1), total, tc)
            loss, _ = sequence_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if which == "ours":
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            trained += time.perf_counter() - t
            step += 1
            if step % every == 0:
                acc = exact_match(model, which, dm.val_inputs)
                curve.append((round(trained, 1), acc))
                if acc >= target or trained >= cap_s:
                    break
        else:
            epoch += 1
            continue
        break
    return {"seconds": round(trained, 1) if acc >= target else None, "reached": acc,
            "steps": step, "curve": curve}


# ----------------------------------------------------------------------------- parent
def run_child(args: list[str]) -> tuple[dict, float]:
    """Run one measurement in a child process; returns (its JSON result, its peak RSS in MiB)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE,
                            text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed with code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", help=out_help("latest.json"))
    p.add_argument("--child", nargs="+")
    p.add_argument("--sections", default="train,decode,tta",
                   help="comma-separated subset of train,decode,tta (default: all)")
    args = p.parse_args()
    args.out = results_path("latest.json", args.out, args.quick)
    set_threads(0)
    if args.child:
        kind, *rest = args.child
        fn = {"train": child_train, "decode": child_decode, "tta": child_tta}[kind]
        typed = [int(x) if x.isdigit() else (float(x) if x[0].isdigit() else x) for x in rest]
        print(json.dumps(fn(*typed)))
        return 0
    steps, repeats, cap = (10, 1, 60) if args.quick else (TRAIN_STEPS, 3, 900)
    report: dict = {**stamp(), "machine": machine(),
                    "config": vars(ModelConfig()), "train": {}, "decode": [], "tta": {}}
    _, base_rss = run_child(["decode", "cached", "1", "1", "1"])  # imports, model: the floor
    report["baseline_rss_mib"] = round(base_rss)
    sections = set(args.sections.split(","))
    if not sections <= {"train", "decode", "tta"}:
        p.error(f"--sections must be a subset of train,decode,tta; got {args.sections!r}")
    report["sections"] = sorted(sections)
    if "train" in sections:
        measure_training(report, steps)
    if "decode" in sections:
        measure_decoding(report, repeats)
    if "tta" in sections:
        measure_tta(report, cap)
    atomic_write_json(args.out, report)
    print(format_table(report))
    return 0


def measure_training(report: dict, steps: int) -> None:
    res, _ = run_child(["train", "both", str(steps)])
    report["train"]["ratio"] = res["ratio"]
    report["train"]["ratio_median"] = res["ratio_median"]
    report["train"]["ratio_by_length"] = res["ratio_by_length"]
    for which in ("ours", "peer"):
        _, rss = run_child(["train", which, "5"])
        report["train"][which] = {"tokens_per_s": res[f"{which}_tokens_per_s"],
                                  "peak_rss_mib": round(rss), "steps": res["steps"]}
        print(f"train {which}: {res[f'{which}_tokens_per_s']:,.0f} tok/s, peak {rss:.0f} MiB",
              flush=True)


def measure_decoding(report: dict, repeats: int) -> None:
    for length in (32, 128, 256):
        for batch in (1, 64):
            res, _ = run_child(["decode", "all", str(length), str(batch), str(repeats)])
            row = {"length": length, "batch": batch, **res}
            for which in DECODERS:
                _, rss = run_child(["decode", which, str(length), str(batch), str(repeats)])
                row[f"{which}_peak_rss_mib"] = round(rss)
            report["decode"].append(row)
            print(f"decode L={length} B={batch}: " + ", ".join(
                f"{w} {row[w]:.1f}/s" for w in DECODERS), flush=True)


def measure_tta(report: dict, cap: float) -> None:
    for which in ("ours", "tutorial"):
        res, rss = run_child(["tta", which, str(float(cap)), "0.999"])
        report["tta"][which] = {**res, "peak_rss_mib": round(rss), "cap_s": cap}
        print(f"time to 99.9%: {which}: {res['seconds']} s (reached {res['reached']:.4f})",
              flush=True)


def format_table(r: dict) -> str:
    t = r["train"]
    lines = [f"machine: {r['machine']}", ""]
    if t:
        lines += ["| measurement | ours | peer | ours / peer |", "|---|---|---|---|",
                  f"| training, target tokens/s (same batches, steps interleaved) | "
                  f"{t['ours']['tokens_per_s']:,.0f} | {t['peer']['tokens_per_s']:,.0f} | "
                  f"{t['ratio']:.3f}x (total time; median of per-batch ratios "
                  f"{t['ratio_median']:.3f}x) |",
                  f"| training, peak RSS MiB | {t['ours']['peak_rss_mib']} | "
                  f"{t['peer']['peak_rss_mib']} | |"]
        lines += [f"| training, batches of {b['src_tokens']} source tokens ({b['batches']}) | | | "
                  f"{b['ratio']:.3f}x |" for b in t.get("ratio_by_length", [])] + [""]
    if r["decode"]:
        lines += ["| greedy decoding, strings/s | cached | uncached | peer loop "
                  "| cached / uncached | cached / peer | peak RSS MiB (cached / uncached / peer) |",
                  "|---|---|---|---|---|---|---|"]
    for row in r["decode"]:
        lines.append(
            f"| length {row['length']}, batch {row['batch']} | {row['cached']:.1f} | "
            f"{row['uncached']:.1f} | {row['peer']:.1f} | {row['cached_over_uncached']:.2f}x "
            f"| {row['cached_over_peer']:.2f}x | {row['cached_peak_rss_mib']} / "
            f"{row['uncached_peak_rss_mib']} / {row['peer_peak_rss_mib']} |")
    if r["tta"]:
        lines += ["", "| time to 99.9% validation exact match | seconds | reached | steps | "
                  "peak RSS MiB |", "|---|---|---|---|---|"]
    for which, res in r["tta"].items():
        secs = res["seconds"] if res["seconds"] is not None else f"missed (cap {res['cap_s']} s)"
        lines.append(f"| {which} | {secs} | {res['reached']:.4f} | {res['steps']} | "
                     f"{res['peak_rss_mib']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
