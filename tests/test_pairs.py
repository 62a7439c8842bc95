"""The ``pairs`` task: reading TSV and JSON Lines files, one ``error:`` line per bad line, the
held-out split by input, several accepted outputs, the records a checkpoint keeps, and the
commands end to end on a small file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import replace

import pytest
from helpers import call_cli, chain_model, one_error_line

import transformer_tiny
from transformer_tiny import pair_files
from transformer_tiny import pairs as pairs_module
from transformer_tiny.checkpoint import load_checkpoint
from transformer_tiny.cli.eval import eval_main
from transformer_tiny.cli.infer import infer_main
from transformer_tiny.cli.train import train_main
from transformer_tiny.config import ConfigError, DataConfig, ModelConfig
from transformer_tiny.data import DataModule, held_out_set
from transformer_tiny.heldout import hash_fraction
from transformer_tiny.metrics import edit_errors, evaluate
from transformer_tiny.pair_files import PairsError, read_pairs
from transformer_tiny.pairs import PAIR_SLICES, group_outputs, pair_splits
from transformer_tiny.tasks import task_for
from transformer_tiny.tokenizer import BOS_ID, EOS_ID


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_reads_tsv_with_crlf(tmp_path):
    f = write(tmp_path / "p.tsv", b"cat\tK AE T\r\nread\tR IY D\nread\tR EH D\nx\t a b ")
    pairs, record = read_pairs(f, "train", 100)
    assert pairs == [("cat", "K AE T"), ("read", "R IY D"), ("read", "R EH D"), ("x", " a b ")]
    assert (record.lines, record.pairs, record.skipped) == (4, 4, 0)
    assert record.size == f.stat().st_size
    assert record.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    assert group_outputs(pairs)["read"] == ["R IY D", "R EH D"]


@pytest.mark.parametrize("name, first", [("p.tsv", b"cat\tK AE T"),
                                         ("p.jsonl", b'{"input": "cat", "output": "K AE T"}')])
def test_a_byte_order_mark_and_empty_lines_are_not_pairs(tmp_path, name, first):
    second = b"dog\tD AO G" if name == "p.tsv" else b'{"input": "dog", "output": "D AO G"}'
    f = write(tmp_path / name, b"\xef\xbb\xbf" + first + b"\n\n" + second + b"\r\n\r\n")
    pairs, record = read_pairs(f, "train", 100)
    assert pairs == [("cat", "K AE T"), ("dog", "D AO G")]  # no U+FEFF in the first input
    assert (record.lines, record.pairs, record.skipped) == (4, 2, 0)


def test_reads_json_lines(tmp_path):
    lines = [{"input": "héllo", "output": "olléh"}, {"input": "a", "output": ""}]
    f = write(tmp_path / "p.jsonl", "\n".join(json.dumps(x) for x in lines).encode())
    assert read_pairs(f, "train", 100)[0] == [("héllo", "olléh"), ("a", "")]


TINY = ["--d-model", "16", "--n-heads", "2", "--n-dec-layers", "1", "--d-ff", "16",
        "--max-positions", "40", "--epochs", "1", "--batch-size", "64", "--threads", "1",
        "--progress", "false", "--val-samples", "16", "--test-samples", "16"]


BAD_LINES = [
    ("p.tsv", b"ok\tfine\nno tab here\n", 2, "no tab"),
    ("p.tsv", b"ok\tfine\nMarch 5, 2021\t2021-03-05\textra\n", 2,
     "more than one tab (outputs with tabs: use JSON Lines)"),
    ("dates.json", b'ok\tfine\n{"input": "March 5, 2021", "output": "2021-03-05"}\n', 2,
     "no tab between input and output (JSON Lines files must be named *.jsonl)"),
    ("p.tsv", b"ok\tfine\n\xff\xfe\tx\n", 2, "invalid UTF-8"),
    ("p.tsv", b"\tempty input\nok\tfine\n", 1, "empty input"),
    ("p.tsv", b"ok\tfine\n" + "ab\tba".encode("utf-16-le") + b"\n", 2,
     "this looks like UTF-16 (NUL bytes between the characters): save the file as UTF-8"),
    ("p.tsv", b"ok\tfine\n" + b"a" * 50 + b"\tb\n", 2, "input of 50 bytes"),
    ("p.tsv", b"ok\tfine\nok\t" + b"b" * 50 + b"\n", 2, "output of 50 bytes"),
    ("p.tsv", b"ok\tfine\n" + b"a" * 5000 + b"\n", 2, "longer than"),
    ("p.jsonl", b'{"input": "a", "output": "b"}\n{"input": "a"\n', 2, "not valid JSON"),
    ("p.jsonl", b'{"input": "a", "output": 3}\n{"input": "a", "output": "b"}', 1,
     "string fields"),
    ("p.jsonl", b'{"input": "a", "output": "b"}\n{"input": "a", "output": "b", "input": "c"}\n',
     2, 'the field "input" appears twice'),
]


def test_a_nested_object_may_repeat_its_keys(tmp_path):
    line = b'{"input": "ab", "output": "ba", "meta": {"input": 1, "input": 2}}\n'
    assert read_pairs(write(tmp_path / "p.jsonl", line), "train", 40)[0] == [("ab", "ba")]


@pytest.mark.parametrize("name, data, line, reason", BAD_LINES)
def test_bad_line_names_file_and_line(tmp_path, name, data, line, reason):
    f = write(tmp_path / name, data)
    with pytest.raises(PairsError, match=f"line {line}: .*{re.escape(reason)}") as e:
        read_pairs(f, "train", 40)
    assert str(f) in str(e.value)
    pairs, record = read_pairs(f, "train", 40, skip_bad=True)
    assert record.skipped == 1 and record.pairs == len(pairs) == record.lines - 1


@pytest.mark.parametrize("name, data, line, reason", BAD_LINES)
def test_bad_line_stops_train_with_one_error_line(tmp_path, capsys, name, data, line, reason):
    f = write(tmp_path / name, data)
    code = call_cli(train_main, ["--task", "pairs", "--train-file", str(f), "--max-positions",
                                 "42", "--out", str(tmp_path / "run"), "--progress", "false"])
    assert code == 2
    message = one_error_line(capsys)
    assert str(f) in message and f"line {line}" in message and reason in message
    assert not (tmp_path / "run" / "best.json").exists()


def test_skip_bad_lines_reports_how_many(tmp_path, capsys):
    f = write(tmp_path / "p.tsv", b"".join(f"w{i}\tx{i}\n".encode() for i in range(200))
              + b"no tab\n\xff\tx\n")
    flags = [*TINY, "--task", "pairs", "--train-file", str(f), "--out", str(tmp_path / "run")]
    assert call_cli(train_main, flags) == 2
    assert "line 201: no tab" in one_error_line(capsys)
    assert call_cli(train_main, [*flags, "--skip-bad-lines", "true"]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipped 2 bad lines of {f} (200 pairs read): line 201: no tab between " \
           "input and output; line 202: invalid UTF-8 at byte 0\n" in err


def test_only_a_line_that_looks_like_json_gets_the_jsonl_hint(tmp_path):
    for body, hinted in [(b"no tab", False), (b'  {"input": "a", "output": "b"}', True)]:
        with pytest.raises(PairsError) as e:
            read_pairs(write(tmp_path / "p.json", body), "train", 40)
        assert ("must be named *.jsonl" in str(e.value)) == hinted


def test_skipped_lines_are_named_in_the_note_the_first_three(tmp_path):
    good = b"".join(f"w{i}\tx{i}\n".encode() for i in range(200))
    f = write(tmp_path / "p.tsv", good + b"no tab\n\xff\tx\n\ta\nb\tc\td\nlast\n")
    _, record = read_pairs(f, "train", 40, skip_bad=True)
    assert record.skipped == 5 and record.bad_lines == (
        "line 201: no tab between input and output", "line 202: invalid UTF-8 at byte 0",
        "line 203: empty input")
    assert record.skip_note() == (
        f"skipped 5 bad lines of {f} (200 pairs read), the first 3: line 201: no tab between "
        "input and output; line 202: invalid UTF-8 at byte 0; line 203: empty input")
    assert "bad_lines" not in record.to_dict()  # checkpoints keep the counts only
    two = write(tmp_path / "two.tsv", good + b"no tab\na\tb\tc\n")
    cfg = DataConfig(task="pairs", train_file=str(two), skip_bad_lines=True)
    notes = pair_splits(cfg, 40).notes
    assert notes == [f"skipped 2 bad lines of {two} (200 pairs read): line 201: no tab between "
                     "input and output; line 202: more than one tab (outputs with tabs: use "
                     "JSON Lines)"]
    with pytest.raises(PairsError, match=re.escape(
            "no pairs (2 bad lines skipped: line 1: no tab between input and output (JSON "
            "Lines files must be named *.jsonl); line 2: no tab")):
        read_pairs(write(tmp_path / "d.json", b'{"input": "a"}\n{}\n'), "train", 40,
                   skip_bad=True)


def test_file_larger_than_free_memory_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(pair_files, "free_memory", lambda: 3 * 2**30)  # 3 GiB free
    f = tmp_path / "big.tsv"
    with f.open("wb") as out:
        out.truncate(2**30)  # sparse: 1 GiB that takes no disk, 12 GiB once read
    with pytest.raises(PairsError) as e:
        read_pairs(f, "train", 100)
    assert str(e.value) == (f"{f}: 1.0 GiB of pairs need about 12.0 GiB of memory, 3.0 GiB is "
                            "free here (pairs are held in memory)")


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(PairsError, match="no such file"):
        read_pairs(tmp_path / "nope.tsv", "train", 10)
    with pytest.raises(PairsError, match="no pairs"):
        read_pairs(write(tmp_path / "e.tsv", b""), "train", 10)


def test_config_ties_files_to_the_pairs_task():
    with pytest.raises(ConfigError, match="train_file"):
        DataConfig(task="pairs")
    with pytest.raises(ConfigError, match="only task pairs reads files"):
        DataConfig(task="reverse", train_file="x.tsv")


def words_file(tmp_path, n=2000):
    """``n`` words with their reversal, every tenth with a second accepted output."""
    lines = []
    for i in range(n):
        word = f"w{i:05d}"
        lines.append(f"{word}\t{word[::-1]}\n")
        if i % 10 == 0:
            lines.append(f"{word}\t{word.upper()}\n")
    return write(tmp_path / "words.tsv", "".join(lines).encode())


def test_split_holds_each_input_in_one_place(tmp_path):
    cfg = DataConfig(task="pairs", train_file=str(words_file(tmp_path)), val_samples=10**5,
                     test_samples=10**5)
    splits = pair_splits(cfg, 100)
    train_inputs = {x for x, _ in splits.train}
    assert not train_inputs & set(splits.val) and not train_inputs & set(splits.test)
    assert not set(splits.val) & set(splits.test)
    assert len(train_inputs) + len(splits.val) + len(splits.test) == 2000
    assert 60 <= len(splits.val) <= 140 and 60 <= len(splits.test) <= 140  # 5% each of 2000
    multi = [x for x in splits.test if x.endswith("0") and int(x[1:]) % 10 == 0]
    assert multi and all(len(splits.test[x]) == 2 for x in multi)
    assert pair_splits(cfg, 100) == splits  # the same split every time


def test_val_and_test_files_replace_the_slices(tmp_path):
    train = words_file(tmp_path, 200)
    val = write(tmp_path / "val.tsv", b"w00001\tx\nnew\ty\n")
    cfg = DataConfig(task="pairs", train_file=str(train), val_file=str(val), val_samples=10)
    dm = DataModule(cfg, 62)
    assert dm.val_inputs == ["w00001", "new"] and dm.references("val") == [["x"], ["y"]]
    assert "w00001" not in {x for x, _ in dm.pairs.train}  # never trained on a val input
    assert [r.role for r in dm.pairs.files] == ["train", "val"]
    assert dm.train_size == len(dm.pairs.train)


@pytest.mark.parametrize("own", ["val", "test"])
def test_a_slice_leaves_out_the_inputs_of_the_other_split_s_own_file(tmp_path, own):
    """With only a --val-file (or only a --test-file), the other split's slice of the training
    file drops that file's inputs, in training and in eval alike: no input is in both."""
    cfg0 = DataConfig(task="pairs", train_file=str(words_file(tmp_path)), val_samples=10**5,
                      test_samples=10**5)
    slice_ = "test" if own == "val" else "val"
    in_slice = sorted(getattr(pair_splits(cfg0, 100), slice_))[:5]  # the premise: 5 of them
    own_file = write(tmp_path / f"{own}.tsv", "".join(f"{x}\tz\n" for x in in_slice).encode())
    cfg = replace(cfg0, **{f"{own}_file": str(own_file)})
    splits = pair_splits(cfg, 100)
    assert set(getattr(splits, own)) == set(in_slice)
    assert not set(splits.val) & set(splits.test)
    held = held_out_set(cfg, slice_, 100, {})  # as eval.py reads it after training
    assert set(held.inputs) == set(getattr(splits, slice_))
    assert [f.role for f in splits.files] == ["train", own]  # each file recorded once


def test_training_inputs_that_a_held_out_file_holds_are_a_note(tmp_path):
    """They are left out of training (an input is in one split only): the user hears how many."""
    train = words_file(tmp_path)
    some = write(tmp_path / "some.tsv", b"w00001\tx\nw00002\tx\nnew\tx\n")
    cfg = DataConfig(task="pairs", train_file=str(train), test_file=str(some))
    splits = pair_splits(cfg, 62)
    assert f"2 inputs of {train} are also in {some}: training leaves them out" in splits.notes
    assert not {"w00001", "w00002"} & {x for x, _ in splits.train}
    # all of a held-out file's inputs are left out, not only those its capped set samples
    part = write(tmp_path / "part.tsv", b"".join(f"w{i:05d}\tx\n".encode() for i in range(500)))
    cfg = DataConfig(task="pairs", train_file=str(train), test_file=str(part), test_samples=10)
    splits = pair_splits(cfg, 62)
    assert len(splits.test) == 10
    assert f"500 inputs of {train} are also in {part}: training leaves them out" in splits.notes
    assert not {x for x, _ in splits.train} & {f"w{i:05d}" for i in range(500)}
    with pytest.raises(PairsError, match="no training pairs left after the held-out sets"):
        pair_splits(replace(cfg, val_file=str(train)), 62)  # every input is a validation one


def test_a_slice_emptied_by_the_other_split_s_file_says_so(tmp_path):
    train = words_file(tmp_path, 200)
    cfg = DataConfig(task="pairs", train_file=str(train), test_file=str(train))
    in_slice = len(pair_splits(DataConfig(task="pairs", train_file=str(train)), 62).val)
    with pytest.raises(PairsError, match=re.escape(
            f"{train}: no validation pairs: the {in_slice} inputs of its validation slice are "
            f"all in {train}; give more pairs or a --val-file")):
        pair_splits(cfg, 62)


def test_inputs_in_both_own_files_are_a_note(tmp_path):
    both = write(tmp_path / "both.tsv", b"a\tb\nc\td\n")
    cfg = DataConfig(task="pairs", train_file=str(words_file(tmp_path, 200)),
                     val_file=str(both), test_file=str(both))
    assert f"2 inputs are in both {both} and {both}: the test set scores inputs that chose " \
           "the best checkpoint" in pair_splits(cfg, 62).notes


def test_capped_held_out_inputs_are_chosen_by_hash_and_change_with_the_data_seed(tmp_path):
    val = write(tmp_path / "val.tsv", "".join(f"v{i}\t{i}\n" for i in range(100)).encode())
    train = words_file(tmp_path, 50)

    def chosen(seed: int) -> list[str]:
        cfg = DataConfig(task="pairs", train_file=str(train), val_file=str(val), val_samples=10,
                         data_seed=seed)
        return sorted(pair_splits(cfg, 100).val)

    first, second = chosen(0), chosen(1)
    assert len(first) == len(second) == 10 and chosen(0) == first  # deterministic
    assert first != second  # 10 of 100: the same ten for two seeds would be a 1-in-10^13 chance
    assert first != sorted(f"v{i}" for i in range(10))  # not the first lines of the file


# Where each input of ``slice_file`` falls in the hash range of the data seed.
SLICE_FRACTIONS = {"val_low": 0.0, "val_in": 0.01, "test_low": 0.05, "test_in": 0.06,
                   "train_a": 0.5, "train_b": 0.7}


def slice_file(tmp_path, monkeypatch, **samples) -> DataConfig:
    """A pairs config over inputs placed by :data:`SLICE_FRACTIONS` (their order for choosing
    capped held-out inputs, with the next seed, is the reverse)."""
    train = write(tmp_path / "slices.tsv",
                  "".join(f"{x}\t{x.upper()}\n" for x in SLICE_FRACTIONS).encode())
    cfg = DataConfig(task="pairs", train_file=str(train), **samples)

    def placed(text: str, seed: int) -> float:
        h = SLICE_FRACTIONS[text]
        return h if seed == cfg.data_seed else 1 - h

    monkeypatch.setattr(pairs_module, "hash_fraction", placed)
    return cfg


def test_the_held_out_slices_are_the_first_and_second_5_percent_of_the_hash_range():
    assert PAIR_SLICES == {"val": (0.0, 0.05), "test": (0.05, 0.1)}


def test_an_input_on_a_slice_s_lower_bound_is_held_out_in_that_slice(tmp_path, monkeypatch):
    cfg = slice_file(tmp_path, monkeypatch, val_samples=10, test_samples=10)
    splits = pair_splits(cfg, 100)
    assert splits.val == {"val_low": ["VAL_LOW"], "val_in": ["VAL_IN"]}
    assert splits.test == {"test_low": ["TEST_LOW"], "test_in": ["TEST_IN"]}
    assert splits.train == [("train_a", "TRAIN_A"), ("train_b", "TRAIN_B")]


def test_slice_inputs_beyond_the_held_out_cap_are_never_trained_on(tmp_path, monkeypatch):
    cfg = slice_file(tmp_path, monkeypatch, val_samples=1, test_samples=1)
    splits = pair_splits(cfg, 100)
    assert list(splits.val) == ["val_in"] and list(splits.test) == ["test_in"]
    assert splits.train == [("train_a", "TRAIN_A"), ("train_b", "TRAIN_B")]  # no *_low


def test_pairs_must_fit_the_model_s_positions_with_bos_and_eos(tmp_path):
    fits = "".join(f"{i:08d}\t{i:08d}\n" for i in range(20))  # 8 bytes each way
    ok = write(tmp_path / "ok.tsv", fits.encode())
    cfg = DataConfig(task="pairs", train_file=str(ok))
    max_input_bytes = ModelConfig(max_positions=10).max_input_bytes  # BOS and EOS take 2
    dm = DataModule(cfg, max_input_bytes)
    assert len(dm.pairs.train) + len(dm.val_inputs) + len(dm.test_inputs) == 20  # every pair
    for line, reason in [("123456789\tx\n", "input of 9 bytes, this model takes at most 8"),
                         ("x\t123456789\n", "output of 9 bytes, this model writes at most 8")]:
        long = write(tmp_path / "long.tsv", (fits + line).encode())
        with pytest.raises(PairsError, match=f"long.tsv line 21: {reason}"):
            DataModule(DataConfig(task="pairs", train_file=str(long)), max_input_bytes)


def test_lone_surrogates_from_json_escapes_are_read_and_recorded_as_bytes(tmp_path):
    train = write(tmp_path / "s.jsonl", b'{"input": "a\\ud800b", "output": "x"}\n')
    held = write(tmp_path / "held.tsv", b"c\td\n")
    cfg = DataConfig(task="pairs", train_file=str(train), val_file=str(held),
                     test_file=str(held))
    splits = pair_splits(cfg, 100)
    assert splits.train == [("a\ud800b", "x")]
    assert splits.input_bytes == [0x61, 0x62, 0x80, 0xA0, 0xED]  # U+D800 is ED A0 80 in UTF-8


def test_eval_json_escapes_lone_surrogates_it_cannot_write_as_utf8(tmp_path, capsys):
    data = words_file(tmp_path, 300)
    surrogates = write(tmp_path / "s.jsonl", b'{"input": "a\\ud800b", "output": "b\\ud800a"}\n')
    run = tmp_path / "run"
    assert call_cli(train_main, [*TINY, "--task", "pairs", "--train-file", str(data),
                                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert call_cli(eval_main, ["--checkpoint", str(run), "--test-file", str(surrogates),
                                "--json", "--examples", "5"]) == 0
    out = capsys.readouterr().out
    out.encode("utf-8")  # writable as UTF-8
    assert json.loads(out)["examples"][0]["input"] == "a\ud800b"


@pytest.mark.parametrize("pred, refs, expected", [
    ("K AE T", ["K AE T"], (0, 6, 0, 3)),
    ("K AH T", ["K AE T"], (1, 6, 1, 3)),
    ("R EH D", ["R IY D", "R EH D"], (0, 6, 0, 3)),  # the nearest reference counts
    ("R D", ["R IY D", "R EH D"], (3, 6, 1, 3)),
    ("", ["A B"], (3, 3, 2, 2)),
])
def test_edit_errors(pred, refs, expected):
    assert edit_errors(pred, refs) == expected


def test_evaluate_accepts_any_reference_and_counts_errors():
    model = chain_model([BOS_ID, ord("a"), ord(" "), ord("b"), EOS_ID])  # always answers "a b"
    task = task_for(DataConfig(task="pairs", train_file="x.tsv"))
    result = evaluate(model, ["x", "y", "z"], task, references=[["a b"], ["c", "a b"], ["a c d"]])
    assert result.exact_match == pytest.approx(2 / 3)
    # "a b" -> "a c d": 3 character edits (b->c, insert " d") over 5, 2 token edits over 3;
    # the other two are exact, against "a b" (3 characters, 2 tokens) each
    assert result.char_error_rate == pytest.approx(3 / 11)
    assert result.token_error_rate == pytest.approx(2 / 7)


def test_commands_end_to_end(tmp_path, capsys):
    data, run = words_file(tmp_path, 600), tmp_path / "run"
    assert call_cli(train_main, [*TINY, "--task", "pairs", "--train-file", str(data),
                                 "--out", str(run)]) == 0
    info = json.loads((run / "best.json").read_text())
    [record] = info["data_files"]
    assert record["name"] == str(data) and record["size"] == data.stat().st_size
    assert record["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert record["lines"] == 660 and record["pairs"] == 660
    assert "w00001" not in (run / "best.json").read_text()  # no data in the checkpoint
    capsys.readouterr()
    assert call_cli(eval_main, ["--checkpoint", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 16 and result["source"] == "test set"
    api = transformer_tiny.load(run).evaluate()  # the same test set, scored through the API
    assert [result[k] for k in ("exact_match", "token_error_rate", "char_error_rate")] == \
        [api.exact_match, api.token_error_rate, api.char_error_rate]
    other = write(tmp_path / "other.jsonl", b'{"input": "abc", "output": "cba"}\n')
    assert call_cli(eval_main, ["--checkpoint", str(run), "--test-file", str(other),
                                "--split", "val", "--json"]) == 2  # --split would be ignored
    assert "--split picks a held-out set: --test-file scores other" in capsys.readouterr().err
    assert call_cli(eval_main, ["--checkpoint", str(run), "--test-file", str(other),
                                "--json"]) == 0
    out, err = capsys.readouterr()
    assert (json.loads(out)["n"], json.loads(out)["source"]) == (1, f"pairs of {other}")
    assert "warning" not in err  # abc: never trained on
    assert call_cli(eval_main, ["--checkpoint", str(run), "--test-file", str(data),
                                "--json"]) == 0  # the training file itself
    splits = pair_splits(DataConfig(task="pairs", train_file=str(data)), 40)
    trained = len({x for x, _ in splits.train})
    assert 0 < trained < 600
    assert f"warning: {trained:,} of the 600 inputs of {data} are among those the model " \
        f"trained on (from {data}): their scores say little" in capsys.readouterr().err
    saved = data.read_bytes()
    data.write_bytes(saved[: len(saved) // 2])  # the training file changed since
    assert call_cli(eval_main, ["--checkpoint", str(run), "--test-file", str(other)]) == 0
    assert f"warning: cannot tell which inputs of {other} the model trained on: {data} changed " \
        "since training" in capsys.readouterr().err
    data.write_bytes(saved)
    assert call_cli(infer_main, ["--checkpoint", str(run), "--text", "w00042"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and "never saw" not in err  # w00042: all seen in training
    assert call_cli(infer_main, ["--checkpoint", str(run), "--text", ""]) == 0
    assert "warning: input 1 is empty: this model never saw an empty input in training" in \
        capsys.readouterr().err
    assert call_cli(infer_main, ["--checkpoint", str(run), "--text", "wé9x"]) == 0
    assert "never saw in training: 'é', 'x'" in capsys.readouterr().err
    assert transformer_tiny.load(run).unseen_characters("w9é") == ["é"]


def test_eval_and_the_api_warn_when_the_file_changed(tmp_path, capsys):
    data, run = words_file(tmp_path, 300), tmp_path / "run"
    assert call_cli(train_main, [*TINY, "--task", "pairs", "--train-file", str(data),
                                 "--out", str(run)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transformer_tiny.load(run).evaluate()  # unchanged: no warning
    with data.open("ab") as f:
        f.write(b"extra\tartxe\n")
    capsys.readouterr()
    assert call_cli(eval_main, ["--checkpoint", str(run), "--json"]) == 0
    note = (f"{data} changed since training (its SHA-256 differs); the held-out split may "
            "not be the one held out then")
    assert capsys.readouterr().err == f"warning: {note}\n"
    with pytest.warns(UserWarning, match=re.escape(note)) as seen:
        transformer_tiny.load(run).evaluate()
    assert seen[0].filename == __file__  # the warning points at the caller's line
    os.remove(data)
    assert call_cli(eval_main, ["--checkpoint", str(run)]) == 2
    assert "no such file" in one_error_line(capsys)


def test_resume_continues_a_pairs_run(tmp_path):
    data, run = words_file(tmp_path, 300), tmp_path / "run"
    flags = [*TINY, "--task", "pairs", "--train-file", str(data), "--out", str(run)]
    assert call_cli(train_main, flags) == 0
    assert call_cli(train_main, [*flags, "--epochs", "2", "--resume"]) == 0
    _, _, info = load_checkpoint(run / "last.json")
    assert info["epoch"] == 2 and info["data_files"][0]["pairs"] == 330


def test_resume_refuses_a_training_file_that_changed(tmp_path, capsys):
    data, run = words_file(tmp_path, 300), tmp_path / "run"
    flags = [*TINY, "--task", "pairs", "--train-file", str(data), "--out", str(run)]
    assert call_cli(train_main, flags) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    capsys.readouterr()
    assert call_cli(train_main, [*flags, "--epochs", "2", "--resume"]) == 2
    assert one_error_line(capsys) == f"error: {data} changed since the run began (its SHA-256 " \
        "differs): --resume would train on other data; restore the file, or start a new run"
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_relative_file_is_recorded_whole_so_eval_runs_from_anywhere(tmp_path, monkeypatch,
                                                                         capsys):
    data, run = words_file(tmp_path, 300), tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    assert call_cli(train_main, [*TINY, "--task", "pairs", "--train-file", data.name,
                                 "--out", str(run)]) == 0
    monkeypatch.chdir(tmp_path.parent)
    capsys.readouterr()
    assert call_cli(eval_main, ["--checkpoint", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 0


def test_a_file_too_small_for_a_validation_set_is_an_error(tmp_path, capsys):
    lo, hi = PAIR_SLICES["val"]
    words = [w for w in (f"w{i}" for i in range(100))
             if not lo <= hash_fraction(w, DataConfig().data_seed) < hi][:5]
    f = write(tmp_path / "small.tsv", b"".join(f"{w}\tx\n".encode() for w in words))
    with pytest.raises(PairsError, match="no validation pairs: none of its 5 inputs"):
        pair_splits(DataConfig(task="pairs", train_file=str(f)), 40)
    held = write(tmp_path / "held.tsv", b"a\tb\n")
    cfg = DataConfig(task="pairs", train_file=str(f), val_file=str(held), test_file=str(held))
    assert len(pair_splits(cfg, 40).train) == 5


def test_an_empty_test_slice_is_a_note(tmp_path):
    seed = DataConfig().data_seed
    words = [f"w{i}" for i in range(200)]
    val = [w for w in words if hash_fraction(w, seed) < PAIR_SLICES["val"][1]][:1]
    rest = [w for w in words if hash_fraction(w, seed) >= PAIR_SLICES["test"][1]][:5]
    f = write(tmp_path / "small.tsv", b"".join(f"{w}\tx\n".encode() for w in val + rest))
    splits = pair_splits(DataConfig(task="pairs", train_file=str(f)), 40)
    assert splits.val and not splits.test and len(splits.train) == 5
    assert splits.notes == [f"{f}: no test pairs: none of its 6 inputs falls in the test "
                            "slice, so eval.py has no test set; give more pairs or a --test-file"]
    held = write(tmp_path / "held.tsv", b"a\tb\n")
    cfg = DataConfig(task="pairs", train_file=str(f), test_file=str(held))
    assert pair_splits(cfg, 40).notes == []
    assert pair_splits(DataConfig(task="pairs", train_file=str(words_file(tmp_path, 300))),
                       40).notes == []


def test_generator_flags_do_not_change_the_pairs_data(tmp_path):
    """--min-len/--max-len, --alphabet, --hard-share and --train-samples are checked and saved,
    but a pairs run trains on the same pairs with any of them."""
    f = str(words_file(tmp_path, 300))

    def data(**flags) -> tuple:
        dm = DataModule(DataConfig(task="pairs", train_file=f, **flags), 62)
        return dm.pairs, dm.train_size, [(e.src, e.tgt) for e in dm.train_dataset(0).examples]

    assert data(min_len=20, max_len=30, alphabet="digits", hard_share=1.0,
                train_samples=7) == data()


def test_eval_rejects_test_file_for_generated_tasks(untrained_run, capsys, tmp_path):
    f = write(tmp_path / "p.tsv", b"a\tb\n")
    assert call_cli(eval_main, ["--checkpoint", str(untrained_run), "--test-file", str(f)]) == 2
    assert "--test-file is for task pairs" in one_error_line(capsys)


def test_each_epoch_batches_the_same_pairs_in_a_new_order(tmp_path):
    cfg = DataConfig(task="pairs", train_file=str(words_file(tmp_path, 300)))
    dm = DataModule(cfg, 62)

    def batches(epoch: int) -> list[tuple[bytes, ...]]:
        return [tuple(bytes(i for i in row.tolist() if i < 256) for row in b["src"])
                for b in dm.train_loader(epoch, 16)]

    first, second = batches(0), batches(1)
    assert first == batches(0)  # the same epoch, the same batches
    assert sorted(x for b in first for x in b) == sorted(x for b in second for x in b)
    assert first != second


def test_changed_files_match_role_and_name_without_folders():
    record = pair_files.PairFile("train", "/data/words.tsv", 10, "aa", 1, 1, 0)
    other = pair_files.PairFile("test", "/data/other.tsv", 10, "bb", 1, 1, 0)
    old = [{"role": "train", "name": "words.tsv", "sha256": "aa"}]  # a name kept as given
    assert pair_files.changed_files(old, [record, other]) == []  # other: not recorded
    changed = [{"role": "train", "name": "data/words.tsv", "sha256": "cc"}]
    assert pair_files.changed_files(changed, [record]) == [record]
    # One name in two roles: each file is compared with its own role's record.
    both = [{"role": "val", "name": "/b/w.tsv", "sha256": "bb"},
            {"role": "train", "name": "/a/w.tsv", "sha256": "aa"}]
    val = pair_files.PairFile("val", "/b/w.tsv", 10, "bb", 1, 1, 0)
    train = pair_files.PairFile("train", "/a/w.tsv", 10, "aa", 1, 1, 0)
    assert pair_files.changed_files(both, [val, train]) == []
    for hostile in (None, "x", [1, None, {"role": 3}], [{"role": ["train"], "name": {}}],
                    [{"role": "train", "name": ["words.tsv"], "sha256": [1]}]):
        assert pair_files.changed_files(hostile, [record]) == []  # unhashable: no TypeError


def test_train_warns_when_the_test_slice_is_empty(tmp_path, capsys):
    seed = DataConfig().data_seed
    words = [f"w{i}" for i in range(200)]
    kept = [w for w in words if hash_fraction(w, seed) < PAIR_SLICES["val"][1]][:1] + \
        [w for w in words if hash_fraction(w, seed) >= PAIR_SLICES["test"][1]][:5]
    f = write(tmp_path / "small.tsv", b"".join(f"{w}\tx\n".encode() for w in kept))
    assert call_cli(train_main, [*TINY, "--task", "pairs", "--train-file", str(f),
                                 "--out", str(tmp_path / "run")]) == 0
    warnings = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning:")]
    assert warnings == [f"warning: {f}: no test pairs: none of its 6 inputs falls in the test "
                        "slice, so eval.py has no test set; give more pairs or a --test-file"]


def test_a_utf16_file_is_refused_as_such_and_a_nul_in_utf8_text_is_data(tmp_path):
    for codec in ("utf-16", "utf-16-le", "utf-16-be"):
        f = write(tmp_path / f"{codec}.tsv", "abc\tcba\nde\ted\n".encode(codec))
        with pytest.raises(PairsError, match="line 1: this looks like UTF-16"):
            read_pairs(f, "train", 40)
    f = write(tmp_path / "nul.tsv", b"a\x00b\tb\x00a\nab\t\x00\x00\n\x00\x00\x00\ty\n")
    assert read_pairs(f, "train", 40)[0] == [("a\x00b", "b\x00a"), ("ab", "\x00\x00"),
                                             ("\x00\x00\x00", "y")]
    mixed = write(tmp_path / "mixed.tsv", "héllo\tolléh\n".encode("utf-16-le"))
    with pytest.raises(PairsError, match="line 1: this looks like UTF-16"):
        read_pairs(mixed, "train", 40)


def test_training_outputs_longer_than_decoding_allows_are_a_note(tmp_path):
    """The pairs task decodes at most 4 tokens per input token + 16: an output beyond that is
    learned but never written whole, which training says (eval.py would score it 0)."""
    words = "".join(f"w{i:03d}\t{'x' * (4 * 6 + 16 + (i % 2))}\n" for i in range(400))
    cfg = DataConfig(task="pairs", train_file=str(write(tmp_path / "long.tsv", words.encode())))
    dm = DataModule(cfg, 100)
    n = sum(y == "x" * 41 for _, y in dm.pairs.train)  # 4 * (4 + 2) + 16 = 40 bytes fit
    assert 0 < n < len(dm.pairs.train)
    assert f"{n} training outputs are longer than decoding allows for their inputs (4 bytes " \
           "per input token + 16): eval.py scores them cut short; infer.py --max-new-tokens " \
           "allows more" in dm.notes
    short = write(tmp_path / "short.tsv", words.replace("x" * 41, "x" * 40).encode())
    assert not any("longer than decoding" in note for note in
                   DataModule(replace(cfg, train_file=str(short)), 100).notes)


def test_eval_reads_held_out_files_with_the_run_s_skip_bad_lines_and_says_so(tmp_path):
    test = write(tmp_path / "t.tsv", b"ab\tba\nno tab here\ncd\tdc\n")
    cfg = DataConfig(task="pairs", train_file=str(words_file(tmp_path, 200)),
                     test_file=str(test), skip_bad_lines=True)
    held = held_out_set(cfg, "test", 62, {})
    assert held.inputs == ["ab", "cd"]
    assert held.notes == [f"skipped 1 bad line of {test} (2 pairs read): line 2: no tab between "
                          "input and output"]


@pytest.mark.parametrize("data, reason", [
    (b'[{"input": "a", "output": "b"}]\n', "no tab between input and output (a JSON array? "
                                           "pairs files take JSON Lines, one object per line, "
                                           "named *.jsonl)"),
    (b"ab\tba\rcd\tdc\r", "more than one tab (outputs with tabs: use JSON Lines) (line ends of "
                          "CR only? save the file with LF or CRLF line ends)"),
    (b"abba\rcddc\r", "no tab between input and output (line ends of CR only? save the file "
                     "with LF or CRLF line ends)"),
])
def test_a_json_array_or_cr_line_ends_get_a_hint(tmp_path, data, reason):
    with pytest.raises(PairsError, match=re.escape(f"line 1: {reason}")):
        read_pairs(write(tmp_path / "p.tsv", data), "train", 40)


ARRAY = "(a JSON array? pairs files take JSON Lines, one object per line, named *.jsonl)"
CR = "(line ends of CR only? save the file with LF or CRLF line ends)"
ROWS = [{"input": f"word{i}", "output": f"{i}"} for i in range(300)]


@pytest.mark.parametrize("name, data, reason", [  # files as large as a user's: one long line
    ("p.tsv", "".join(f"w{i}\t{i}\r" for i in range(3000)).encode(), f"longer than 144 bytes {CR}"),
    ("p.json", json.dumps(ROWS).encode(), f"longer than 144 bytes {ARRAY}"),
    ("p.jsonl", json.dumps(ROWS).encode(), f"longer than 544 bytes {ARRAY}"),
    ("p.jsonl", json.dumps(ROWS[:2]).encode(), f'"input" and "output" {ARRAY}'),
    ("p.jsonl", json.dumps(ROWS[:2], indent=2).encode(), f"not valid JSON {ARRAY}"),
])
def test_a_long_line_or_a_json_lines_file_gets_the_hint_too(tmp_path, name, data, reason):
    with pytest.raises(PairsError, match="line 1: " + ".*" + re.escape(reason)):
        read_pairs(write(tmp_path / name, data), "train", 40)


def test_pair_splits_reads_each_file_once(tmp_path, monkeypatch):
    calls = []
    real = pairs_module.read_pairs

    def counting(path, role, *args, **kwargs):
        calls.append(role)
        return real(path, role, *args, **kwargs)

    monkeypatch.setattr(pairs_module, "read_pairs", counting)
    val = write(tmp_path / "val.tsv", b"a\tb\n")  # the test slice leaves its inputs out
    cfg = DataConfig(task="pairs", train_file=str(words_file(tmp_path, 200)), val_file=str(val))
    splits = pair_splits(cfg, 62)
    assert calls == ["train", "val"]
    assert [f.role for f in splits.files] == ["train", "val"]


def test_eval_skips_the_bad_lines_of_a_test_file_when_asked(tmp_path, capsys):
    data, run = words_file(tmp_path, 300), tmp_path / "run"
    assert call_cli(train_main, [*TINY, "--task", "pairs", "--train-file", str(data),
                                 "--out", str(run)]) == 0  # trained without --skip-bad-lines
    test = write(tmp_path / "test.tsv", b"abc\tcba\nno tab\nxy\tyx\n")
    capsys.readouterr()
    argv = ["--checkpoint", str(run), "--test-file", str(test), "--json"]
    assert call_cli(eval_main, argv) == 2
    assert one_error_line(capsys) == f"error: {test} line 2: no tab between input and output"
    assert call_cli(eval_main, [*argv, "--skip-bad-lines", "true"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["n"] == 2
    assert f"warning: skipped 1 bad line of {test} (2 pairs read): line 2: no tab" in err
    assert call_cli(eval_main, ["--checkpoint", str(run), "--skip-bad-lines", "false"]) == 0
