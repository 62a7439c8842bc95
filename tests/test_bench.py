"""The benchmarks' bookkeeping: per-length ratios and the training child of benchmarks/bench.py,
how result rows are merged (benchmarks/provenance.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import bench
import provenance


def test_ratio_by_length_is_total_time_per_bucket():
    ours = [1.0, 1.0, 4.0, 1.0, 3.0, 2.0]
    peer = [2.0, 2.0, 4.0, 2.0, 3.0, 5.0]
    widths = [3, 9, 9, 12, 17, 34]  # buckets 1-9, 10-17, 26-34; none of 18-25
    rows = bench.ratio_by_length(ours, peer, widths)
    assert [r["src_tokens"] for r in rows] == ["1-9", "10-17", "26-34"]
    assert [r["batches"] for r in rows] == [3, 2, 1]
    # 1-9: 8 s against 6 s; the median of the per-batch ratios (2, 2, 1) would say 2
    assert [r["ratio"] for r in rows] == [8.0 / 6.0, 5.0 / 4.0, 2.5]


@pytest.mark.slow
def test_training_child_reports_both_models_and_every_batch_once():
    res = bench.child_train("both", 2)  # 7 batches, the first 5 are warm-up
    assert res["steps"] == 2
    assert res["ours_tokens_per_s"] > 0 and res["peer_tokens_per_s"] > 0
    assert res["ratio"] > 0 and res["ratio_median"] > 0
    # the same batches for both: the ratio of times is the ratio of throughputs
    assert res["ratio"] == pytest.approx(res["ours_tokens_per_s"] / res["peer_tokens_per_s"])
    # every measured batch (source widths 3 to 34 tokens) falls in exactly one length bucket
    assert sum(r["batches"] for r in res["ratio_by_length"]) == res["steps"]


def test_merge_rows_keeps_measured_rows_and_drops_retired_ones(tmp_path):
    out = tmp_path / "rows.json"
    head = {"date": "d", "quick": False}
    provenance.merge_rows(out, "rows", {"a": {"x": 1}, "old": {"x": 2}}, ["a", "old"], head)
    written = provenance.merge_rows(out, "rows", {"b": {"x": 3}}, ["b", "a"], head)
    assert written["rows"] == {"b": {"x": 3}, "a": {"x": 1}}  # in order; "old" is retired
    assert json.loads(out.read_text()) == written
    quick = provenance.merge_rows(out, "rows", {"c": {}}, ["a", "c"], {**head, "quick": True})
    assert quick["rows"] == {"c": {}}  # a smoke run never mixes with real rows


def test_g2p_data_is_word_tab_phonemes(tmp_path):
    """The G2P benchmark's data file: lower-case words, one character per phoneme, stress
    removed, every pronunciation of a word on its own line; the characters map back."""
    import g2p

    counts = g2p.build_data(tmp_path / "d.tsv", limit=3000)
    lines = (tmp_path / "d.tsv").read_text().splitlines()
    assert counts == {"words": 3000, "pronunciations": len(lines)} and len(lines) > 3000
    pairs = [line.split("\t") for line in lines]
    assert all(g2p.WORD.fullmatch(word) for word, _ in pairs)
    assert set("".join(p for _, p in pairs)) <= set(g2p.PHONEMES.values())
    assert ["abbey", "@bi"] in [[w, p] for w, p in pairs]  # AE1 B IY0
    assert g2p.to_arpabet("@biy") == "AE B IY Y"
    assert len(set(g2p.PHONEMES.values())) == len(g2p.PHONEMES) == 39


def test_a_result_names_its_commit_and_says_when_the_code_differed(tmp_path, monkeypatch):
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    for path in ("src/a.py", "benchmarks/results/r.json", "docs/d.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    commit = git("rev-parse", "--short", "HEAD").strip()
    assert provenance.head_commit() == commit
    (tmp_path / "benchmarks/results/r.json").write_text("2\n")  # results and docs: not code
    (tmp_path / "docs/d.md").write_text("2\n")
    assert provenance.head_commit() == commit
    (tmp_path / "src/a.py").write_text("2\n")
    assert provenance.head_commit() == f"{commit}+changes"


def test_mutation_score_interval_is_wilsons():
    import mutation_report

    # Wilson's 95% interval: for 0 of n the upper end is z^2 / (n + z^2), 3.84 / 13.84 at n = 10
    assert mutation_report.interval(0, 10) == "0-28%"
    assert mutation_report.interval(10, 10) == "72-100%"
    assert mutation_report.interval(5, 10) == "24-76%"  # the published 0.2366-0.7634
    assert mutation_report.interval(0, 0) == "n/a"


def test_sort_families_hold_m_of_each_character_in_the_order_asked():
    import random
    from collections import Counter

    import sort_families

    rng = random.Random(0)
    for order in ("random", "pairs", "blocks"):
        text = sort_families.arrange(rng, ["a", "b", "c"], 4, order)
        assert Counter(text) == {"a": 4, "b": 4, "c": 4}
    assert sort_families.arrange(rng, ["a", "b", "c"], 4, "pairs") == "aabbccaabbcc"
    blocks = sort_families.arrange(rng, ["x", "y"], 3, "blocks")
    assert blocks in ("xxxyyy", "yyyxxx")
    few = sort_families.family(rng, lambda k: ["a", "b"][:k], 2, 2, "blocks", n=200)
    assert few == ["aabb", "bbaa"]  # a family smaller than n: all of it, each once


@pytest.mark.slow
def test_precision_benchmark_times_both_precisions_per_batch_size():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "precision.py"),
                           "--batch-sizes", "4", "8", "--rounds", "2"],
                          capture_output=True, text=True, check=True, timeout=120)
    rows = [line for line in proc.stdout.splitlines() if line.startswith("batch")]
    assert [row.split(":")[0] for row in rows] == ["batch 4", "batch 8"]
    figures = re.compile(r"fp32 ([\d.]+) ms.*bf16 ([\d.]+) ms.*is ([\d.]+)x")
    for row in rows:
        fp32, bf16, ratio = (float(x) for x in figures.search(row).groups())
        assert fp32 > 0 and bf16 > 0 and ratio == pytest.approx(fp32 / bf16, rel=0.02)


def test_g2p_runs_its_documented_command_with_its_folders(tmp_path):
    """The recipe's command as the benchmark runs it: the same flags, the data and run folders
    moved, this interpreter; in two processes under torchrun, each with half the batch."""
    import shlex

    import g2p

    words = shlex.split(g2p.COMMAND)
    flags = words[words.index("scripts/train.py") + 1:]
    for processes in (1, 2):
        argv = g2p.train_argv(False, tmp_path / "d.tsv", tmp_path / "run", processes)
        assert argv[0] == sys.executable and argv[-1] == "--overwrite"
        script = argv.index(str(ROOT / "scripts" / "train.py"))
        moved = argv[script + 1:-1]
        assert moved[moved.index("--train-file") + 1] == str(tmp_path / "d.tsv")
        assert moved[moved.index("--out") + 1] == str(tmp_path / "run")
        batch = int(flags[flags.index("--batch-size") + 1])
        assert [(a, b) for a, b in zip(moved, flags, strict=True) if a != b] == [
            (str(tmp_path / "d.tsv"), "runs/g2p/data/cmudict.tsv"),
            *([] if processes == 1 else [(str(batch // 2), str(batch))]),
            (str(tmp_path / "run"), "runs/g2p")]
        launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--standalone",
                                              "--nproc-per-node=2"]
        assert argv[1:script] == launcher
    assert g2p.launch_words(2)[:4] == ["torchrun", "--standalone", "--nproc-per-node=2",
                                       "scripts/train.py"]
    with pytest.raises(ValueError, match="does not split"):
        g2p.launch_words(batch + 1)
    with pytest.raises(ValueError, match="at least one"):
        g2p.launch_words(0)
    quick = g2p.launch_words(2, quick=True)  # the smoke run's values, then the split
    values = dict(zip(g2p.QUICK[::2], g2p.QUICK[1::2], strict=True))
    values["--batch-size"] = str(int(values["--batch-size"]) // 2)
    assert all(quick[quick.index(flag) + 1] == value for flag, value in values.items())
    assert len(quick) == len(g2p.launch_words(2))


def test_g2p_without_its_extra_is_one_error_line_and_exit_2(tmp_path, monkeypatch, capsys):
    import g2p

    def missing(module, extra, what):
        raise g2p.MissingExtraError(f"{what} needs the {extra} extra: pip install -e '.[{extra}]'")

    monkeypatch.setattr(g2p, "require", missing)
    monkeypatch.setattr(sys, "argv", ["g2p.py", "--data-only", "--run-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as stop:
        g2p.main()
    assert stop.value.code == 2
    assert capsys.readouterr() == ("", "error: the CMU Pronouncing Dictionary needs the g2p "
                                   "extra: pip install -e '.[g2p]'\n")

@pytest.mark.slow  # trains a tiny model on 2,000 words, then scores it
def test_g2p_quick_run_writes_scored_results(tmp_path):
    out = tmp_path / "g2p.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "g2p.py"), "--quick", "--out",
                    str(out), "--run-dir", str(tmp_path / "run"), "--processes", "2"],
                   check=True, capture_output=True, text=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["quick"] and result["processes"] == 2 and result["steps"] > 0
    assert result["command"].startswith("torchrun --standalone --nproc-per-node=2 ")
    assert [r["beam"] for r in result["results"]] == [1, 5]
    words = result["data"]["test_words"]
    assert words > 0 and all(r["words"] == words for r in result["results"])
    assert all(0 <= r["wer"] <= 100 and r["per"] >= 0 for r in result["results"])
