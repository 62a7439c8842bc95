"""Checkpoints and run folders from strangers: every hostile checkpoint is refused with one
``error:`` line, naming why, and exit code 2, within a 2 GiB address space; training never
destroys files it did not write; one run at a time per folder; model output cannot drive the
terminal."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import ROOT, call_cli
from safetensors.torch import save as save_safetensors

from transformer_tiny import safe_files
from transformer_tiny.checkpoint import (
    CheckpointError,
    load_checkpoint,
    pack_trainer_state,
    save_checkpoint,
)
from transformer_tiny.cli.eval import eval_main
from transformer_tiny.cli.infer import infer_main
from transformer_tiny.cli.train import train_main
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.run_state import Progress, read_last
from transformer_tiny.safe_files import check_header
from transformer_tiny.tokenizer import EOS_ID
from transformer_tiny.train_eval import make_optimizer, parameter_groups

ADDRESS_SPACE = 2 << 30
CFG = RunConfig(ModelConfig(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16,
                            max_positions=48),
                DataConfig(alphabet="printable", val_samples=4, test_samples=4))


def genuine(folder: Path) -> Path:
    """A real checkpoint (``best`` and a resumable ``last``) of an untrained tiny model."""
    torch.manual_seed(0)
    model = Seq2SeqTransformer(CFG.model)
    save_checkpoint(folder, "best", model, CFG, {"step": 1})
    opt = make_optimizer(model, CFG.train)
    sum(p.sum() for p in model.parameters()).backward()
    opt.step()  # the optimiser has moments to save
    tensors, meta = pack_trainer_state(opt)
    save_checkpoint(folder, "last", model, CFG, {"step": 1, "progress": vars(Progress()),
                                                 "optimizer": meta}, tensors)
    return folder


def info_of(folder: Path, name: str = "best") -> dict:
    return json.loads((folder / f"{name}.json").read_text())


def write_info(folder: Path, info: dict, name: str = "best") -> None:
    (folder / f"{name}.json").write_text(json.dumps(info))


def rehash(folder: Path, blob: bytes, name: str = "best", key: str = "weights") -> None:
    """Replace the file ``key`` names by ``blob`` and record its hash, as an attacker would."""
    info = info_of(folder, name)
    (folder / info[key]).write_bytes(blob)
    info[f"{key}_sha256"] = hashlib.sha256(blob).hexdigest()
    write_info(folder, info, name)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / info_of(folder)["weights"])


def edit_config(section: str, **values) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        info = info_of(folder)
        info["config"][section].update(values)
        write_info(folder, info)
    return edit


def name_outside(kind: str) -> Callable[[Path], None]:
    """The JSON names a weights file outside its folder (with the right hash)."""
    def edit(folder: Path) -> None:
        info = info_of(folder)
        outside = folder.parent / f"elsewhere-{kind}"
        outside.mkdir(exist_ok=True)
        shutil.copy(folder / info["weights"], outside / "x.safetensors")
        target = outside / "x.safetensors"
        info["weights"] = str(target) if kind == "absolute" else f"../{outside.name}/x.safetensors"
        write_info(folder, info)
    return edit


def weights_replaced_by(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / info_of(folder)["weights"]
        path.unlink()
        make(path)
    return edit


def symlink_to_copy(path: Path) -> None:
    copy = path.parent.parent / "copy.safetensors"
    shutil.copy(genuine(path.parent.parent / "other") / info_of(path.parent.parent / "other")
                ["weights"], copy)
    path.symlink_to(copy)


def huge_sparse(path: Path) -> None:
    with path.open("wb") as f:
        f.truncate(3 << 30)


def huge_tail(folder: Path) -> None:
    """The genuine weights, grown to 3 GiB by a sparse tail: a header that reads well, and a
    size it does not imply."""
    with (folder / info_of(folder)["weights"]).open("r+b") as f:
        f.truncate(3 << 30)


def tensors_as(transform: Callable[[dict[str, torch.Tensor]], dict]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        rehash(folder, save_safetensors(transform(weights(folder))))
    return edit


def poisoned(value: float) -> Callable[[dict], dict]:
    def poison(w: dict) -> dict:
        w["head.bias"][3] = value
        return w
    return poison


def raw_weights(blob_of: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        rehash(folder, blob_of((folder / info_of(folder)["weights"]).read_bytes()))
    return edit


def aliased(blob: bytes) -> bytes:
    """Point ``enc_norm.weight`` at the bytes of ``dec_norm.weight`` (same shape); the header
    keeps its length, so only the overlap is wrong."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    header["enc_norm.weight"]["data_offsets"] = header["dec_norm.weight"]["data_offsets"]
    text = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    assert len(text) == n
    return blob[:8] + text + blob[8 + n:]


def shortened(blob: bytes) -> bytes:
    """End ``head.bias`` 4 bytes early (its shape unchanged); the header keeps its length."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    header["head.bias"]["data_offsets"][1] -= 4
    text = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    assert len(text) == n
    return blob[:8] + text + blob[8 + n:]


def json_text(text: bytes, name: str = "best") -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / f"{name}.json").write_bytes(text)
    return edit


def json_replaced_by(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / "best.json").unlink()
        make(folder / "best.json")
    return edit


HOSTILE: dict[str, Callable[[Path], None]] = {
    "weights named by a relative path out of the folder": name_outside("relative"),
    "weights named by an absolute path": name_outside("absolute"),
    "weights a symlink to a genuine file elsewhere": weights_replaced_by(symlink_to_copy),
    "weights a symlink to /dev/zero": weights_replaced_by(lambda p: p.symlink_to("/dev/zero")),
    "weights a FIFO": weights_replaced_by(os.mkfifo),
    "weights a 3 GiB file": weights_replaced_by(huge_sparse),
    "weights with a 3 GiB tail": huge_tail,
    "weights a directory": weights_replaced_by(lambda p: p.mkdir()),
    "d_model 2**30": edit_config("model", d_model=2**30, n_heads=1),
    "vocab_size 10**9": edit_config("model", vocab_size=10**9),
    "vocab_size 10": edit_config("model", vocab_size=10),
    "n_dec_layers 10**6": edit_config("model", n_dec_layers=10**6),
    "max_positions 2*10**7": edit_config("model", max_positions=2 * 10**7),
    "d_ff 10**9": edit_config("model", d_ff=10**9),
    "n_heads 0": edit_config("model", n_heads=0),
    "d_model a string": edit_config("model", d_model="16"),
    "d_model true": edit_config("model", d_model=True),
    "d_model 10**400": edit_config("model", d_model=10**400),
    "test_samples 10**12": edit_config("data", test_samples=10**12),
    "max_len 10**9": edit_config("data", max_len=10**9),
    "unknown task": edit_config("data", task="rm -rf"),
    "unknown config key": edit_config("model", evil=1),
    "JSON nested 100,000 deep": json_text(b'{"format": "transformer_tiny.checkpoint/1", "x": '
                                          + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "JSON of 20 MB": json_text(b'{"format": "transformer_tiny.checkpoint/1", "x": "'
                               + b"a" * (20 << 20) + b'"}'),
    "JSON not UTF-8": json_text(b'{"format": "\xff\xfe"}'),
    "JSON a list": json_text(b"[1, 2]"),
    "JSON a symlink to a genuine checkpoint elsewhere": json_replaced_by(
        lambda p: p.symlink_to(genuine(p.parent.parent / "other") / "best.json")),
    "JSON a FIFO": json_replaced_by(os.mkfifo),
    "weights float64": tensors_as(lambda w: {k: v.double() for k, v in w.items()}),
    "weights float16": tensors_as(lambda w: {k: v.half() for k, v in w.items()}),
    "weights int8": tensors_as(lambda w: {k: v.to(torch.int8) for k, v in w.items()}),
    "weights with NaN": tensors_as(poisoned(float("nan"))),
    "weights with Inf": tensors_as(poisoned(float("inf"))),
    "a tensor missing": tensors_as(lambda w: {k: v for k, v in w.items() if k != "head.bias"}),
    "an extra tensor": tensors_as(lambda w: {**w, "evil": torch.zeros(3)}),
    "a tensor of the wrong shape": tensors_as(lambda w: {**w, "head.bias": torch.zeros(7)}),
    "header length 2**60": raw_weights(lambda b: (2**60).to_bytes(8, "little") + b[8:]),
    "header not JSON": raw_weights(lambda b: b[:8] + b"\xff" * (len(b) - 8)),
    "data offsets beyond the file": raw_weights(lambda b: b[:-64]),
    "weights empty": raw_weights(lambda b: b""),
    "a header of no tensors": raw_weights(lambda b: (2).to_bytes(8, "little") + b"{}"),
    "two tensors sharing bytes": raw_weights(aliased),
    "a tensor's offsets shorter than its shape": raw_weights(shortened),
}
CONFIG = "checkpoint <json> has an invalid config: "
# case -> the whole message that refuses it, a regex in which <json> stands for the checkpoint's
# JSON and <weights> for the weights file it named: the message of the check that the case is
# named for, so that the case fails if that check goes (even where a later one would refuse it)
REASONS: dict[str, str] = {
    "weights named by a relative path out of the folder":
        r"<json> names weights '\.\./elsewhere-relative/x\.safetensors', not a file name of the "
        r"form NAME-STEP\.safetensors in its own folder",
    "weights named by an absolute path":
        r"<json> names weights '/\S+/elsewhere-absolute/x\.safetensors', not a file name of the "
        r"form NAME-STEP\.safetensors in its own folder",
    "weights a symlink to a genuine file elsewhere": "weights <weights> is a symbolic link; not "
                                                     "followed",
    "weights a symlink to /dev/zero": "weights <weights> is a symbolic link; not followed",
    "weights a FIFO": "weights <weights> is not a regular file",
    # a file of zeros: refused by its header length (0), before its size matters
    "weights a 3 GiB file": "weights <weights> are truncated or not a safetensors file",
    "weights with a 3 GiB tail": r"weights <weights> are 3,221,225,472 bytes; the header implies "
                                 r"[\d,]+",
    "weights a directory": "weights <weights> is not a regular file",
    # the per-size limits (MODEL_LIMITS, DATA_LIMITS) before the total-parameter cap
    "d_model 2**30": CONFIG + r"d_model: must be <= \d+, got 1073741824",
    # no per-size limit: vocab_size's own check comes after the total-parameter cap
    "vocab_size 10**9": CONFIG + r"model: [\d,]+ parameters, at most [\d,]+ \(fewer layers, a "
                                 r"smaller d_model or d_ff\)",
    "vocab_size 10": CONFIG + r"vocab_size: must be 259 \(the byte tokenizer's\), got 10",
    "n_dec_layers 10**6": CONFIG + r"n_dec_layers: must be <= \d+, got 1000000",
    "max_positions 2*10**7": CONFIG + r"max_positions: must be <= \d+, got 20000000",
    "d_ff 10**9": CONFIG + r"d_ff: must be <= \d+, got 1000000000",
    "n_heads 0": CONFIG + "n_heads: must be > 0, got 0",
    "d_model a string": CONFIG + "d_model: must be of type int, got '16'",
    "d_model true": CONFIG + "d_model: must be of type int, got True",
    "d_model 10**400": CONFIG + r"d_model: must be <= \d+, got 10{400}",
    "test_samples 10**12": CONFIG + r"test_samples: must be <= \d+, got 1000000000000",
    "max_len 10**9": CONFIG + r"max_len: must be <= \d+, got 1000000000",
    "unknown task": CONFIG + r"task: must be one of \[.*'reverse'.*\], got 'rm -rf' \(a task "
                             r"that your own code registers exists only where that code has run\)",
    "unknown config key": CONFIG + r"model\.evil: unknown config key",
    "JSON nested 100,000 deep": "checkpoint <json> is unreadable: nested too deeply",
    "JSON of 20 MB": "checkpoint <json> is 20,971,572 bytes; at most 16,777,216 are read",
    "JSON not UTF-8": "checkpoint <json> is unreadable: 'utf-8' codec can't decode byte 0xff in "
                      "position 12: invalid start byte",
    "JSON a list": "<json> is not a transformer_tiny checkpoint",
    "JSON a symlink to a genuine checkpoint elsewhere": "checkpoint <json> is a symbolic link; "
                                                        "not followed",
    "JSON a FIFO": "checkpoint <json> is not a regular file",
    # a hostile weights file: the tensor and what is wrong with it
    "weights float64": r"weights <weights>: tensor 'byte_embed\.weight' is F64, expected F32",
    "weights float16": r"weights <weights>: tensor 'byte_embed\.weight' is F16, expected F32",
    "weights int8": r"weights <weights>: tensor 'byte_embed\.weight' is I8, expected F32",
    "weights with NaN": r"weights <weights>: tensor 'head\.bias' holds NaN or infinite values",
    "weights with Inf": r"weights <weights>: tensor 'head\.bias' holds NaN or infinite values",
    "a tensor missing": r"weights <weights> do not fit the config: missing tensor 'head\.bias'",
    "an extra tensor": "weights <weights> do not fit the config: unexpected tensor 'evil'",
    "a tensor of the wrong shape": r"weights <weights> do not fit the config: tensor "
                                   r"'head\.bias' has shape \[7\], expected \[259\]",
    "header length 2**60": "weights <weights> are truncated or not a safetensors file",
    "header not JSON": "weights <weights> are unreadable: bad safetensors header",
    # the sizes themselves: test_weights_of_the_wrong_size_are_refused_naming_both_sizes
    "data offsets beyond the file": r"weights <weights> are [\d,]+ bytes; the header implies "
                                    r"[\d,]+",
    "weights empty": "weights <weights> are truncated or not a safetensors file",
    # "{}", the shortest header: a safetensors file, without the model's tensors
    "a header of no tensors": r"weights <weights> do not fit the config: missing tensor "
                              r"'byte_embed\.weight'",
    "two tensors sharing bytes": r"weights <weights>: tensor 'enc_norm\.weight' has bad data "
                                 "offsets",
    "a tensor's offsets shorter than its shape": r"weights <weights>: tensor 'head\.bias' has "
                                                 "bad data offsets",
}
assert REASONS.keys() == HOSTILE.keys()


def refusal(case: str, folder: Path) -> str:
    """The regex of the whole message that refuses ``case`` for the genuine checkpoint in
    ``folder`` (call it before the edit: the weights file is the one the JSON names now)."""
    weights_path = folder / info_of(folder)["weights"]
    pattern = REASONS[case].replace("<json>", re.escape(str(folder / "best.json")))
    return "^" + pattern.replace("<weights>", re.escape(str(weights_path))) + r"\Z"


# Cases for --resume: the trainer state and progress of ``last``.


def last_edit(edit: Callable[[dict, Path], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        info = info_of(folder, "last")
        edit(info, folder)
        write_info(folder, info, "last")
    return apply


# case -> (edit, what the error must name)
HOSTILE_RESUME: dict[str, tuple[Callable[[Path], None], str]] = {
    "progress a string": (last_edit(lambda i, f: i.update(progress="x")), "progress"),
    "progress with a list step": (last_edit(lambda i, f: i["progress"].update(step=[1])),
                                  "progress"),
    "optimizer groups malformed": (
        last_edit(lambda i, f: i.update(optimizer={"param_groups": 3})), "optimizer groups"),
    "state named out of the folder": (
        last_edit(lambda i, f: i.update(state="../x.safetensors")), "'../x.safetensors'"),
    "state with a huge moment": (last_edit(lambda i, f: (
        (f / i["state"]).write_bytes(b := save_safetensors({"opt.0.exp_avg": torch.zeros(10**6)})),
        i.update(state_sha256=hashlib.sha256(b).hexdigest()))), "tensor"),
}


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    return genuine(tmp_path / "run")


def limited() -> None:
    """In the child: at most 2 GiB of address space."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_limited(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    """Run a script in a child limited to 2 GiB of address space; a hang fails the timeout."""
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, timeout=60,
                          cwd=ROOT, preexec_fn=limited)


def assert_refused(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err
    assert proc.stdout == b"" and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_checkpoint_is_refused_in_process(case, hostile_dir):
    reason = refusal(case, hostile_dir)
    HOSTILE[case](hostile_dir)
    with pytest.raises(CheckpointError, match=reason) as info:
        load_checkpoint(hostile_dir)
    assert "\n" not in str(info.value)


def test_a_checkpoint_json_of_exactly_16_mib_loads(hostile_dir):
    path = hostile_dir / "best.json"
    path.write_bytes(path.read_bytes().ljust(16_777_216))
    assert load_checkpoint(hostile_dir)[1] == CFG


def test_weights_cut_short_while_being_read_are_refused_naming_the_file(hostile_dir,
                                                                        monkeypatch):
    path = hostile_dir / info_of(hostile_dir)["weights"]

    def check_then_truncate(*args):
        payload = check_header(*args)
        os.truncate(path, path.stat().st_size - 64)  # another process cuts the file short
        return payload

    monkeypatch.setattr(safe_files, "check_header", check_then_truncate)
    with pytest.raises(CheckpointError, match=f"^weights {re.escape(str(path))} ended early "
                                              r"\(truncated\)$"):
        load_checkpoint(hostile_dir)


def test_weights_whose_header_has_an_odd_length_still_load(hostile_dir):
    """The header's length need not be a multiple of 4 (the float data then starts unaligned)."""
    def pad_header(blob: bytes) -> bytes:
        n = int.from_bytes(blob[:8], "little")
        return (n + 1).to_bytes(8, "little") + blob[8:8 + n] + b" " + blob[8 + n:]

    before = load_checkpoint(hostile_dir)[0].state_dict()
    raw_weights(pad_header)(hostile_dir)
    after = load_checkpoint(hostile_dir)[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weights_with_safetensors_metadata_still_load(hostile_dir):
    """A weights file may carry safetensors' free-form ``__metadata__`` (as those written with
    ``metadata={"format": "pt"}`` do): it is no tensor, and the weights load."""
    before = load_checkpoint(hostile_dir)[0].state_dict()
    rehash(hostile_dir, save_safetensors(weights(hostile_dir), metadata={"format": "pt"}))
    assert b'"__metadata__"' in (hostile_dir / info_of(hostile_dir)["weights"]).read_bytes()
    after = load_checkpoint(hostile_dir)[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weights_of_the_wrong_size_are_refused_naming_both_sizes(hostile_dir):
    path = hostile_dir / info_of(hostile_dir)["weights"]
    size = path.stat().st_size
    raw_weights(lambda b: b[:-64])(hostile_dir)
    with pytest.raises(CheckpointError, match=f"^weights {re.escape(str(path))} are "
                                              f"{size - 64:,} bytes; the header implies "
                                              f"{size:,}$"):
        load_checkpoint(hostile_dir)


def test_a_header_entry_of_any_length_fits_a_1d_expectation_and_no_other_rank_does():
    expected = {"a": (None, "U8"), "b": ((2, 3), "F32")}
    header = {"a": {"dtype": "U8", "shape": [5], "data_offsets": [24, 29]},
              "b": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    assert check_header(json.loads(json.dumps(header)), expected, set(), "state x") == 29
    for shape in ([], [5, 1], [1, 5]):
        bad = json.loads(json.dumps(header))
        bad["a"]["shape"] = shape
        with pytest.raises(CheckpointError, match=re.escape(
                f"state x do not fit the config: tensor 'a' has shape {shape}, "
                "expected 1-D")):
            check_header(bad, expected, set(), "state x")


def test_tensors_with_no_elements_fit_their_shapes_and_read_back_empty(tmp_path):
    """A dimension of size 0 is a valid safetensors shape: such a tensor fits an expectation of
    that shape, or of any 1-D shape, and reads back empty beside the others."""
    blob = save_safetensors({"a": torch.zeros(0, dtype=torch.uint8), "b": torch.ones(2, 3),
                             "z": torch.zeros(0, 3)})
    path = tmp_path / "x-0000001.state.safetensors"
    path.write_bytes(blob)
    expected = {"a": (None, "U8"), "b": ((2, 3), "F32"), "z": ((0, 3), "F32")}
    got = safe_files.read_safetensors(path, "trainer state", expected, set(),
                                      hashlib.sha256(blob).hexdigest(), "x.json")
    assert {k: tuple(v.shape) for k, v in got.items()} == {"a": (0,), "b": (2, 3), "z": (0, 3)}
    assert torch.equal(got["b"], torch.ones(2, 3))


@pytest.mark.slow
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_checkpoint_is_refused_by_the_command(case, hostile_dir):
    reason = refusal(case, hostile_dir)
    HOSTILE[case](hostile_dir)
    proc = run_limited(["scripts/infer.py", "--checkpoint", str(hostile_dir), "--text", "abc"])
    err = assert_refused(proc)
    assert re.search(reason, err.removeprefix("error: ").removesuffix("\n")), err


@pytest.mark.slow
@pytest.mark.parametrize("case", HOSTILE_RESUME)
def test_hostile_resume_is_refused(case, hostile_dir):
    edit, names = HOSTILE_RESUME[case]
    edit(hostile_dir)
    proc = run_limited(["scripts/train.py", "--resume", "--out", str(hostile_dir),
                           "--d-model", "16", "--n-heads", "2", "--n-dec-layers", "1",
                           "--d-ff", "16", "--max-positions", "48", "--val-samples", "4",
                           "--test-samples", "4"])
    assert names in assert_refused(proc)


def test_genuine_run_resumes(hostile_dir):
    """The control for the cases above: unedited, the same folder resumes."""
    model = Seq2SeqTransformer(CFG.model)
    last = read_last(hostile_dir, model, parameter_groups(model, CFG.train))
    n_params = len(list(model.parameters()))  # step and two moments each, and the RNG
    assert last.progress == Progress() and len(last.state) == 3 * n_params + 1
    saved = load_checkpoint(hostile_dir / "last.json")[0].state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_genuine_checkpoint_loads(hostile_dir):
    model, cfg, _ = load_checkpoint(hostile_dir)
    assert cfg == CFG and model.num_parameters() == Seq2SeqTransformer(CFG.model).num_parameters()


# ----------------------------------------------------------------------------- run folders
TINY_RUN = ["--d-model", "16", "--n-heads", "2", "--n-dec-layers", "1", "--d-ff", "16",
            "--train-samples", "256", "--val-samples", "8", "--test-samples", "8",
            "--progress", "false"]
USER_FILES = {"best-model.safetensors": b"mine", "last-good.safetensors": b"also mine",
              "best-0000001.safetensors": b"a name like ours", ".notes.tmp": b"notes",
              "notes.txt": b"hello"}


def train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/train.py", *TINY_RUN, "--out", str(out),
                           *extra], capture_output=True, text=True, cwd=ROOT, timeout=300)


def plant(out: Path, files: dict[str, bytes]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)


def test_a_folder_of_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    plant(out, {**USER_FILES, "best.json": b'{"mine": true}', "steps.csv": b"a,b\n"})
    assert call_cli(train_main, [*TINY_RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out ") and "--overwrite" in err and err.count("\n") == 1
    assert sorted(os.listdir(out)) == sorted([*USER_FILES, "best.json", "steps.csv"])
    assert (out / "best.json").read_bytes() == b'{"mine": true}'


@pytest.mark.slow
def test_overwrite_and_retraining_keep_every_file_they_did_not_write(tmp_path):
    out = tmp_path / "mine"
    plant(out, USER_FILES)
    assert train(out, "--overwrite").returncode == 0
    assert train(out, "--epochs", "2").returncode == 0  # a run of ours now: no flag needed
    for name, data in USER_FILES.items():
        assert (out / name).read_bytes() == data, name
    load_checkpoint(out)
    ours = {p.name for p in out.iterdir()} - set(USER_FILES)
    last = info_of(out, "last")
    named = {info_of(out)["weights"], last["weights"], last["state"]}
    assert ours == {"best.json", "last.json", "metrics.jsonl", "steps.csv",
                    ".transformer-tiny.lock", *named}


@pytest.mark.slow
def test_two_runs_into_one_folder(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "scripts/train.py", *TINY_RUN, "--out", str(out),
                              "--train-samples", "20000", "--epochs", "2"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / ".transformer-tiny.lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second began"
    second = train(out)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.returncode == 2
    assert second.stderr == f"error: --out {out} is in use by another training run " \
                            f"(pid {first.pid})\n"
    load_checkpoint(out)  # the first run's checkpoint is whole


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path, "best", Seq2SeqTransformer(CFG.model), CFG, {"step": 1})
    finally:
        os.umask(old)
    for p in (path, path.parent / info_of(tmp_path)["weights"]):
        assert p.stat().st_mode & 0o777 == mode


# ----------------------------------------------------------------------------- input limits
@pytest.fixture(scope="module")
def escaping_run(tmp_path_factory) -> Path:
    """A model that always writes ESC (``0x1b``): a hand-set output layer."""
    out = tmp_path_factory.mktemp("esc") / "run"
    model = Seq2SeqTransformer(CFG.model)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[0x1B] = 10.0
        model.head.bias[EOS_ID] = -10.0
    save_checkpoint(out, "best", model, CFG, {"step": 1})
    return out


@pytest.mark.slow
def test_a_100_mb_line_on_stdin_is_refused_before_it_is_read(escaping_run):
    proc = run_limited(["scripts/infer.py", "--checkpoint", str(escaping_run)],
                       stdin=b"x" * (100 << 20) + b"\n")
    assert "stdin line 1 is longer than 46 bytes" in assert_refused(proc)


def test_huge_lengths_are_refused_before_drawing(escaping_run, capsys):
    argv = ["--checkpoint", str(escaping_run), "--lengths", "1-100000000"]
    assert call_cli(eval_main, argv) == 2
    assert capsys.readouterr().err == "error: --lengths go up to 100000000 characters; this " \
        "model takes inputs of at most 46 bytes, and a character takes 1 byte: at most 46 " \
        "characters\n"


def test_invalid_utf8_is_refused_alike_from_text_and_stdin(escaping_run, capsys):
    argv = ["--checkpoint", str(escaping_run)]
    text = os.fsdecode(b"ab\xffc")  # how Python hands over such a command-line argument
    assert call_cli(infer_main, [*argv, "--text", text]) == 2
    assert capsys.readouterr().err == "error: --text 1 is not valid UTF-8\n"
    assert call_cli(infer_main, argv, stdin=b"ab\xffc\n") == 2
    assert capsys.readouterr().err == "error: stdin is not valid UTF-8 (line 1, byte 2)\n"


@pytest.mark.slow
def test_output_to_a_terminal_has_its_control_characters_escaped(escaping_run):
    args = [sys.executable, "scripts/infer.py", "--checkpoint", str(escaping_run), "--text", "a",
            "--max-new-tokens", "3"]
    piped = subprocess.run(args, capture_output=True, cwd=ROOT, timeout=60)
    assert piped.stdout == b"\x1b\x1b\x1b\n"  # piped output stays raw
    leader, follower = pty.openpty()
    proc = subprocess.run(args, stdout=follower, stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 1024)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.returncode == 0
    assert shown.replace(b"\r\n", b"\n") == b"\\x1b\\x1b\\x1b\n"
