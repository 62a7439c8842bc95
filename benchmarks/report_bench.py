"""The section of docs/results.md that compares ours with PyTorch's `nn.Transformer`
(``results/latest.json``, written by bench.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report_page import Provenance, opening, table

TRAINING_TARGET = 1.3  # the training throughput ratio over the peer that the project aims for


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
    return [*out, "", "Why: [design.md](design.md#training-and-decoding-speed); what was tried "
            "and not adopted: [experiments.md](experiments.md#speed).", ""]


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

