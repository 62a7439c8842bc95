"""What a checkpoint records of the characters its training inputs were drawn from (inputs.py):
the bytes the model saw, which then name the characters it never saw even after its alphabet
changed, and a SHA-256 of the characters, which notices that change in eval, --resume and the
API."""

from __future__ import annotations

import hashlib
import json
import shutil
import string
import warnings
from pathlib import Path

import pytest
from helpers import call_cli, tiny_config

import transformer_tiny
from transformer_tiny.alphabets import ALPHABETS
from transformer_tiny.cli.eval import eval_main
from transformer_tiny.cli.train import train_main
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from transformer_tiny.inputs import characters_changed, characters_record
from transformer_tiny.pretrained import model_card
from transformer_tiny.train_eval import train
from transformer_tiny.web import manifest

OTHER = "0" * 64  # the SHA-256 that an earlier version of the alphabet would have had


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny printable-ASCII run of 2 steps, with its ``best`` and ``last`` checkpoints."""
    out = tmp_path_factory.mktemp("record") / "run"
    train(tiny_config(out, epochs=1))
    return out


def _edit(src: Path, dst: Path, **changes) -> Path:
    """A copy of the run ``src`` at ``dst`` whose two checkpoints' JSON get ``changes`` (a
    value of None removes the entry)."""
    shutil.copytree(src, dst)
    for name in ("best.json", "last.json"):
        info = json.loads((dst / name).read_text())
        info.update(changes)
        info = {k: v for k, v in info.items() if v is not None}
        (dst / name).write_text(json.dumps(info))
    return dst


def test_a_run_records_the_bytes_and_the_hash_of_its_alphabet(run):
    info = json.loads((run / "best.json").read_text())
    printable = ALPHABETS["printable"]
    assert info["input_bytes"] == sorted(set(printable.encode()))
    assert info["characters_sha256"] == hashlib.sha256(printable.encode()).hexdigest()
    assert json.loads((run / "last.json").read_text())["characters_sha256"] == \
        info["characters_sha256"]


def test_the_hash_follows_how_often_each_character_is_drawn_not_only_which(monkeypatch):
    """``unicode`` weights ASCII up: the same characters drawn in another mix are another test
    set, so they must give another hash; a task with its own characters ignores the alphabet."""
    digits = characters_record(DataConfig(alphabet="digits"))
    assert digits["input_bytes"] == list(b"0123456789")
    assert digits["characters_sha256"] == hashlib.sha256(string.digits.encode()).hexdigest()
    monkeypatch.setitem(ALPHABETS, "digits", string.digits + "0" * 10)  # 0 drawn 11 times as often
    reweighted = characters_record(DataConfig(alphabet="digits"))
    assert reweighted["input_bytes"] == digits["input_bytes"]
    assert reweighted["characters_sha256"] != digits["characters_sha256"]
    monkeypatch.undo()
    assert characters_record(DataConfig(task="add", alphabet="unicode")) == \
        characters_record(DataConfig(task="add", alphabet="digits"))
    assert characters_record(DataConfig(task="pairs", train_file="x.tsv")) == {}


@pytest.mark.parametrize(("recorded", "changed"), [
    (None, None),  # written before the record existed: nothing to compare
    (OTHER, "alphabet printable changed since this model was trained"),
    (42, None),  # not a hash: treated as no record
])
def test_characters_changed_compares_with_the_record(recorded, changed):
    cfg = DataConfig(alphabet="printable")
    info = {} if recorded is None else {"characters_sha256": recorded}
    note = characters_changed(cfg, info)
    assert (note is None) if changed is None else note.startswith(changed)
    assert characters_changed(cfg, characters_record(cfg)) is None
    add = DataConfig(task="add")
    assert characters_changed(add, {"characters_sha256": OTHER}).startswith(
        "task add's characters changed")


def test_eval_warns_when_the_alphabet_changed_since_training(run, tmp_path, capsys):
    assert call_cli(eval_main, ["--checkpoint", str(run), "--examples", "0"]) == 0
    assert "warning" not in capsys.readouterr().err
    old = _edit(run, tmp_path / "old", characters_sha256=OTHER)
    assert call_cli(eval_main, ["--checkpoint", str(old), "--examples", "0"]) == 0
    err = capsys.readouterr().err
    assert err == ("warning: alphabet printable changed since this model was trained (its "
                   "checkpoint records others); the test set is drawn from today's, not the one "
                   "held out in training\n")
    unrecorded = _edit(run, tmp_path / "unrecorded", characters_sha256=None, input_bytes=None)
    assert call_cli(eval_main, ["--checkpoint", str(unrecorded), "--examples", "0"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_api_warns_when_the_alphabet_changed_since_training(run, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transformer_tiny.load(run).evaluate(split="val")  # unchanged: no warning
    old = transformer_tiny.load(_edit(run, tmp_path / "old", characters_sha256=OTHER))
    changed = "alphabet printable changed .* the val set is drawn"
    with pytest.warns(UserWarning, match=changed) as seen:
        old.evaluate(split="val")
    assert seen[0].filename == __file__  # the warning points at the caller's line


def test_resume_warns_when_the_alphabet_changed_and_goes_on(run, tmp_path, capsys):
    """The resumed run records today's characters, and every byte it saw before or since: a
    character that the alphabet lost was still seen in training."""
    before = [*b"\x01", *sorted(set(ALPHABETS["printable"].encode()) - {ord("z")})]
    old = _edit(run, tmp_path / "old", characters_sha256=OTHER, input_bytes=before)
    argv = ["--resume", "--out", str(old), "--epochs", "2"]
    assert call_cli(train_main, argv) == 0
    err = capsys.readouterr().err
    assert "warning: alphabet printable changed since this model was trained (its checkpoint " \
        "records others); the run goes on with today's\n" in err
    info = json.loads((old / "last.json").read_text())
    assert info["epoch"] == 2
    assert info["characters_sha256"] == characters_record(DataConfig(alphabet="printable"))[
        "characters_sha256"]  # the checkpoints now record what the run trains on
    assert info["input_bytes"] == [1, *sorted(set(ALPHABETS["printable"].encode()))]
    assert transformer_tiny.load(old / "last.json").unseen_characters("\x01z\x02") == ["\x02"]


def test_the_recorded_bytes_name_what_the_model_never_saw_and_are_shared(run, tmp_path):
    """A model whose alphabet later gained ``z`` never saw it: its record says so, not today's
    alphabet, and a shared copy keeps the record."""
    without_z = sorted(set(ALPHABETS["printable"].encode()) - {ord("z")})
    old = _edit(run, tmp_path / "old", input_bytes=without_z, characters_sha256=OTHER)
    model = transformer_tiny.load(old)
    assert model.unseen_characters("zaz") == ["z"]  # each once
    assert transformer_tiny.load(run).unseen_characters("az") == []
    shared = json.loads((model.save_pretrained(tmp_path / "shared") / "config.json").read_text())
    assert shared["input_bytes"] == without_z and shared["characters_sha256"] == OTHER


@pytest.mark.parametrize("hostile", [
    {"input_bytes": [True, False], "characters_sha256": ["a"]},
    {"input_bytes": [], "characters_sha256": 5},
    {"input_bytes": [65, 300], "characters_sha256": "not a hash"},
    {"input_bytes": "AB", "characters_sha256": {"x": 1}},
    {"input_bytes": [-1, 65], "characters_sha256": "a" * 64 + "0"},
    {"input_bytes": [65, 256], "characters_sha256": "A" * 64},
], ids=["bools-list", "empty-int", "out-of-range-text", "text-dict", "below-0-long-hash",
        "256-upper-case-hash"])
def test_malformed_records_count_as_none_and_are_not_shared(run, tmp_path, hostile):
    model = transformer_tiny.load(_edit(run, tmp_path / "hostile", **hostile))
    assert model.unseen_characters("az\x01") == ["\x01"]  # the alphabet's bytes, as unrecorded
    shared = json.loads((model.save_pretrained(tmp_path / "shared") / "config.json").read_text())
    assert "input_bytes" not in shared and "characters_sha256" not in shared


def test_records_at_the_edges_of_what_is_valid_are_kept(run, tmp_path):
    edges = _edit(run, tmp_path / "edges", input_bytes=[0, 255], characters_sha256="f" * 64)
    model = transformer_tiny.load(edges)
    assert model.unseen_characters("\x00a") == ["a"]
    shared = json.loads((model.save_pretrained(tmp_path / "shared") / "config.json").read_text())
    assert (shared["input_bytes"], shared["characters_sha256"]) == ([0, 255], "f" * 64)


def test_card_and_page_do_not_describe_todays_alphabet_after_it_changed(run, tmp_path):
    """The model card and the page's manifest count and name today's characters only while
    they are those the model was trained on."""
    same = (transformer_tiny.load(run).save_pretrained(tmp_path / "same") / "README.md").read_text()
    assert f"over the `printable` alphabet ({len(ALPHABETS['printable'])} characters)" in same
    old = transformer_tiny.load(_edit(run, tmp_path / "old", characters_sha256=OTHER))
    card = (old.save_pretrained(tmp_path / "shared") / "README.md").read_text()
    assert "characters)" not in card and "the `printable` alphabet" not in card
    assert "over the characters of `printable` as they were when it was trained;" in card
    assert "- characters outside those were never seen in training" in card
    info = json.loads((tmp_path / "old" / "best.json").read_text())
    cfg = transformer_tiny.load(run).config
    assert manifest(cfg, info, "best.json")["alphabet_size"] is None
    info["characters_sha256"] = characters_record(cfg.data)["characters_sha256"]
    assert manifest(cfg, info, "best.json")["alphabet_size"] == len(ALPHABETS["printable"])


def test_the_card_after_a_change_names_a_task_s_own_characters():
    cfg = RunConfig(ModelConfig(), DataConfig(task="add", max_len=11), TrainConfig())
    card = model_card(cfg, {}, {"characters_sha256": OTHER})
    assert "over task add's characters as they were when it was trained;" in card
    assert "own characters" not in card and "(11 characters)" not in card
    assert "(11 characters)" in model_card(cfg, {}, characters_record(cfg.data))
