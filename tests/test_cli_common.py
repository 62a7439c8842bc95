"""What every command shares: a broken or missing checkpoint is one ``error:`` line and exit code
2, and a small fuzz of every command's arguments and input, run in-process: whatever the arguments
and bytes, a command returns 0 or 2 and never lets an exception escape."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import call_cli, one_error_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transformer_tiny.cli.common import TRAIN_HINT, check_buckets, train_hint
from transformer_tiny.cli.errors import UsageError
from transformer_tiny.cli.eval import eval_main
from transformer_tiny.cli.infer import infer_main
from transformer_tiny.cli.train import train_main
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig


# ----------------------------------------------------------------------------- checkpoints
def broken_copies(untrained_run, tmp_path) -> dict[str, object]:
    """Checkpoints broken in different ways, as paths."""
    info = json.loads((untrained_run / "best.json").read_text())
    weights = (untrained_run / info["weights"]).read_bytes()
    cases = {}
    for name, blob, config in [
        ("truncated", weights[: len(weights) // 2], None),
        ("corrupted", weights[:-9] + b"\x00" * 9, None),
        ("mismatched", weights, {**info["config"], "model": {**info["config"]["model"],
                                                             "d_model": 32}}),
    ]:
        d = tmp_path / name
        d.mkdir()
        (d / info["weights"]).write_bytes(blob)
        (d / "best.json").write_text(json.dumps({**info, "config": config or info["config"]}))
        cases[name] = d
    (tmp_path / "empty_dir").mkdir()
    cases["directory without checkpoint"] = tmp_path / "empty_dir"
    cases["missing"] = tmp_path / "nope"
    return cases


def broken_messages(untrained_run, cases: dict[str, object]) -> dict[str, str]:
    """The start of the error line each case of :func:`broken_copies` is refused with."""
    name = json.loads((untrained_run / "best.json").read_text())["weights"]
    full = (untrained_run / name).stat().st_size
    weights = {case: cases[case] / name for case in ("truncated", "corrupted", "mismatched")}
    return {
        "truncated": f"error: weights {weights['truncated']} are "
                     f"{weights['truncated'].stat().st_size:,} bytes; the header implies {full:,}",
        "corrupted": f"error: weights {weights['corrupted']} do not match best.json (corrupted "
                     "or replaced)",
        "mismatched": f"error: weights {weights['mismatched']} do not fit the config: tensor ",
        "directory without checkpoint": f"error: no checkpoint at "
                                        f"{cases['directory without checkpoint']}",
        "missing": f"error: no checkpoint at {cases['missing']}; train one first: python "
                   f"scripts/train.py --epochs 3 --batch-size 128 --out {cases['missing']}",
    }


@pytest.mark.parametrize("main", [infer_main, eval_main], ids=["infer", "eval"])
def test_broken_checkpoints(untrained_run, tmp_path, capsys, main):
    cases = broken_copies(untrained_run, tmp_path)
    messages = broken_messages(untrained_run, cases)
    for case, path in cases.items():
        assert call_cli(main, ["--checkpoint", str(path), "--text", "x"] if main is infer_main
                    else ["--checkpoint", str(path)]) == 2, case
        line = one_error_line(capsys)
        assert line.startswith(messages[case]), (case, line)
        if case == "directory without checkpoint":  # it exists: no hint to train one
            assert line == messages[case]


# ----------------------------------------------------------------------------- fuzz
FLAGS = ["--text", "--checkpoint", "--max-new-tokens", "--beam", "--device", "--lengths",
         "--samples", "--alphabet", "--file", "--split", "--json", "--examples", "--d-model",
         "--epochs", "--lr", "--task", "--out", "--resume", "--bogus"]

VALUES = st.one_of(st.sampled_from(["0", "-1", "3", "1e9", "nan", "cpu", "cuda", "", "x", "1-4",
                                    "4-1", "digits", "/nonexistent", "/proc", "test"]),
                   st.text(max_size=12))

SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}

args_strategy = st.lists(st.tuples(st.sampled_from(FLAGS), VALUES), max_size=4).map(
    lambda pairs: [x for flag, value in pairs for x in (flag, value)])


@settings(max_examples=40, **SETTINGS)
@given(args=args_strategy, stdin=st.binary(max_size=64))
def test_infer_never_raises(untrained_run, args, stdin, capsys):
    argv = ["--checkpoint", str(untrained_run), "--max-new-tokens", "8", *args]
    code = call_cli(infer_main, argv, stdin)
    assert code in (0, 2)
    err = capsys.readouterr().err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


@settings(max_examples=25, **SETTINGS)
@given(args=args_strategy)
def test_eval_never_raises(untrained_run, args, capsys):
    argv = ["--checkpoint", str(untrained_run), "--samples", "2", "--lengths", "1-3", *args]
    code = call_cli(eval_main, argv)
    assert code in (0, 2)
    if code == 2:
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


@settings(max_examples=25, **SETTINGS)
@given(args=args_strategy)
def test_train_arguments_never_raise(tmp_path, args, capsys):
    # Only argument handling: --epochs 0 is invalid, so no argument set that parses trains long.
    code = call_cli(train_main, [*args, "--out", str(tmp_path / "run"), "--epochs", "0"])
    out, err = capsys.readouterr()
    if code == 0:  # a value read as -h or --help (a drawn "-h"): the help, and nothing trained
        assert out.startswith("usage: ") and any(a in ("-h", "--help") or a.startswith("-h")
                                                 for a in args)
        assert not (tmp_path / "run").exists()
        return
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


@pytest.mark.parametrize("stdin", [b"\x00\x01\x02", b"a\tb\x7f", b" \n\n  ", b"x" * 1_000_000])
def test_control_bytes_whitespace_and_huge_lines(untrained_run, stdin, capsys):
    argv = ["--checkpoint", str(untrained_run), "--max-new-tokens", "4"]
    code = call_cli(infer_main, argv, stdin)
    out, err = capsys.readouterr()
    if len(stdin) > 46:  # longer than the model supports: one error line
        assert code == 2 and err == "error: stdin line 1 is longer than 46 bytes, the longest " \
                                    "input this model takes\n"
    else:  # a random model: any output, but it answers
        assert code == 0 and out.endswith("\n")
        assert all(line.startswith("warning: ") for line in err.splitlines())


@pytest.mark.parametrize("alphabet, longest", [("printable", 18), ("unicode", 4)])
def test_lengths_are_checked_in_characters_of_the_widest_byte_count(alphabet, longest):
    """``--lengths`` count characters; the model's limit counts bytes (18 here). With the unicode
    alphabet a character may take 4 bytes, so 18 characters could need 72."""
    cfg = RunConfig(ModelConfig(max_positions=20), DataConfig(alphabet=alphabet))
    check_buckets([(1, longest)], cfg, 10)
    with pytest.raises(UsageError, match=f"at most {longest} characters$"):
        check_buckets([(1, longest + 1)], cfg, 10)
    check_buckets([(1, 18)], RunConfig(ModelConfig(max_positions=20), DataConfig()), 10,
                  alphabet="printable")  # eval's --alphabet draws from another alphabet


@pytest.mark.parametrize("checkpoint, hint", [
    ("runs/quickstart", ""), ("runs/quickstart/best.json", ""),
    ("runs/nope", " --out runs/nope"), ("my runs/x/last.json", " --out 'my runs/x'")])
def test_the_hint_for_a_missing_checkpoint_trains_into_its_folder(checkpoint, hint):
    assert train_hint(checkpoint) == TRAIN_HINT + hint


@pytest.mark.parametrize("error", [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                 "memory: you tried to allocate 2148532224 bytes. Error code 12"),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    Exception("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running "
              "FusedMatMul node. ... Failed to allocate memory for requested buffer of size 17"),
])
def test_running_out_of_memory_is_one_error_line(error, capsys):
    def main(argv):
        raise error

    assert call_cli(main, []) == 2
    assert one_error_line(capsys) == ("error: out of memory: try fewer or shorter inputs, a "
                                      "narrower --beam or, to train, a smaller --batch-size")


@pytest.mark.parametrize("error", [RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
                                   TypeError("unsupported operand"), Exception("FAIL")])
def test_another_error_is_a_bug_and_keeps_its_traceback(error):
    def main(argv):
        raise error

    with pytest.raises(type(error)):
        call_cli(main, [])


@pytest.mark.parametrize("argv, message", [
    (["--data", "5"], "error: unrecognized arguments: --data 5"),  # not --data-seed 5
    (["--train_file", "x"], "error: unrecognized arguments: --train_file x (did you mean "
                            "--train-file?)"),
    (["--epoch=3"], "error: unrecognized arguments: --epoch=3 (did you mean --epochs?)"),
    (["--zzz"], "error: unrecognized arguments: --zzz"),
])
def test_a_flag_is_spelled_whole_and_a_near_miss_gets_a_hint(tmp_path, capsys, argv, message):
    assert call_cli(train_main, [*argv, "--out", str(tmp_path / "run")]) == 2
    assert one_error_line(capsys) == message
    assert not (tmp_path / "run").exists()
