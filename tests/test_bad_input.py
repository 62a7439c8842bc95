"""Bad input at every entry point (train, eval, infer, Python API): one ``error:`` line and exit
code 2 for the commands, a clear exception for the API; valid odd input is answered."""

from __future__ import annotations

import json

import pytest
from conftest import call_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer_tiny.cli.eval import eval_main
from transformer_tiny.cli.infer import infer_main
from transformer_tiny.cli.train import train_main
from transformer_tiny.config import DataConfig
from transformer_tiny.data import draw_inputs
from transformer_tiny.decoding import predict
from transformer_tiny.tasks import ALPHABETS


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


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


@pytest.mark.parametrize("main", [infer_main, eval_main], ids=["infer", "eval"])
def test_broken_checkpoints(untrained_run, tmp_path, capsys, main):
    for case, path in broken_copies(untrained_run, tmp_path).items():
        assert call_cli(main, ["--checkpoint", str(path), "--text", "x"] if main is infer_main
                    else ["--checkpoint", str(path)]) == 2, case
        one_error_line(capsys)


@pytest.mark.parametrize("argv", [
    ["--epochs", "zero"], ["--d-model", "30", "--n-heads", "4"], ["--no-such-flag"],
    ["--device", "cuda"] if not __import__("torch").cuda.is_available() else ["--lr", "-1"],
    ["--task", "unknown"], ["--out", "/proc/not-writable"], ["--resume", "--out", "/nonexistent"],
], ids=["ill-typed", "invalid", "unknown-flag", "cuda", "task", "unwritable", "resume-nothing"])
def test_train_bad_arguments(argv, capsys, tmp_path):
    extra = [] if "--out" in argv else ["--out", str(tmp_path / "r")]
    small = ["--train-samples", "8", "--val-samples", "2", "--test-samples", "2"]
    assert call_cli(train_main, [*argv, *extra, *small]) == 2
    one_error_line(capsys)


def test_train_out_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert call_cli(train_main, ["--out", str(tmp_path / "file")]) == 2
    assert "not a directory" in one_error_line(capsys)


@pytest.mark.parametrize("argv", [
    ["--file", "/nonexistent.txt"], ["--file", "/"], ["--lengths", "5-1"], ["--lengths", "x"],
    ["--alphabet", "klingon"], ["--samples", "0"], ["--split", "train"],
    ["--lengths", "100-100"],  # longer than the model supports
], ids=["missing-file", "directory", "reversed-range", "bad-range", "alphabet", "samples",
        "split", "too-long"])
def test_eval_bad_arguments(untrained_run, argv, capsys):
    assert call_cli(eval_main, ["--checkpoint", str(untrained_run), *argv]) == 2
    one_error_line(capsys)


def test_eval_file_not_utf8(untrained_run, tmp_path, capsys):
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe\n")
    argv = ["--checkpoint", str(untrained_run), "--file", str(tmp_path / "bad.txt")]
    assert call_cli(eval_main, argv) == 2
    assert "not valid UTF-8 (line 2" in one_error_line(capsys)


@pytest.mark.parametrize("argv", [["--beam", "0"], ["--max-new-tokens", "0"],
                                  ["--max-new-tokens", "99999"], ["--text", "x" * 100]],
                         ids=["beam", "zero-tokens", "too-many-tokens", "too-long"])
def test_infer_bad_arguments(untrained_run, argv, capsys):
    assert call_cli(infer_main, ["--checkpoint", str(untrained_run), *argv, "--text", "a"]) == 2
    one_error_line(capsys)


def test_infer_valid_odd_inputs_are_answered(untrained_run, capsys):
    texts = ["", " ", "\t", "a\x00b", "\x07"]
    assert call_cli(infer_main, ["--checkpoint", str(untrained_run), "--max-new-tokens", "4",
                             *[x for t in texts for x in ("--text", t)]]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_python_api_rejects_bad_input(untrained_run):
    from transformer_tiny.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(untrained_run)
    with pytest.raises(TypeError, match="list of str"):
        predict(model, "abc")
    with pytest.raises(TypeError, match="list of str"):
        predict(model, [b"abc"])
    with pytest.raises(ValueError,
                       match=r"^input 1 too long: 1000 bytes, this model supports at most 46$"):
        predict(model, ["x" * 1000])


@settings(max_examples=50, deadline=None)
@given(alphabet=st.sampled_from(sorted(ALPHABETS)), lo=st.integers(1, 6),
       extra=st.integers(0, 6), n=st.integers(1, 30), seed=st.integers(0, 2**31))
def test_data_generation_properties(alphabet, lo, extra, n, seed):
    cfg = DataConfig(alphabet=alphabet, min_len=lo, max_len=lo + extra)
    inputs = draw_inputs(cfg, n, seed)
    assert inputs == draw_inputs(cfg, n, seed)  # deterministic
    assert len(inputs) == n
    assert all(lo <= len(x) <= lo + extra and set(x) <= set(ALPHABETS[alphabet]) for x in inputs)
    held_out = set(inputs[: n // 2])
    space = sum(len(ALPHABETS[alphabet]) ** k for k in range(lo, lo + extra + 1))
    if len(held_out) == space:  # nothing left to draw: a clear error, never a leak
        with pytest.raises(ValueError, match="too few strings"):
            draw_inputs(cfg, n, seed + 1, exclude=held_out)
    else:
        assert not held_out & set(draw_inputs(cfg, n, seed + 1, exclude=held_out))
