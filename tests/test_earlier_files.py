"""What a command wrote before is never left half-replaced: a new export or checkpoint is
checked before its first file is written, and a name or text that UTF-8 cannot encode (a file
name that is not UTF-8, a hostile checkpoint's lone surrogate) is written escaped instead of
failing between two files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import call_cli

import transformer_tiny
from transformer_tiny.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from transformer_tiny.cli.export import export_main
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.pretrained import save_pretrained
from transformer_tiny.utils import json_text, text_bytes
from transformer_tiny.web import export_web


def _run(folder: Path, d_model: int, **meta) -> Path:
    """A run folder with an untrained model of width ``d_model`` as ``best``."""
    cfg = RunConfig(ModelConfig(d_model=d_model, n_heads=2, n_enc_layers=1, n_dec_layers=1,
                                d_ff=16, max_positions=48), DataConfig(alphabet="printable"))
    torch.manual_seed(d_model)
    save_checkpoint(folder, "best", Seq2SeqTransformer(cfg.model), cfg, {"step": 0, **meta})
    return folder


def _same_weights(a: Path, b: Path) -> bool:
    (ma, _, _), (mb, _, _) = load_checkpoint(a), load_checkpoint(b)
    sa, sb = ma.state_dict(), mb.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_shared_folder_is_replaced_whole_by_a_checkpoint_holding_a_lone_surrogate(tmp_path):
    shared = tmp_path / "shared"
    assert call_cli(export_main, ["--checkpoint", str(_run(tmp_path / "a", 16)),
                                  "--hf", str(shared)]) == 0
    hostile = _run(tmp_path / "b", 32, metrics={"x\ud800": 1.0, "val_exact_match": 0.5})
    assert call_cli(export_main, ["--checkpoint", str(hostile), "--hf", str(shared)]) == 0
    assert _same_weights(shared, hostile)  # the new model, whole: config and weights agree
    info = json.loads((shared / "config.json").read_text(encoding="ascii"))  # escaped
    assert info["metrics"]["x\ud800"] == 1.0
    assert "validation exact match: 0.5000" in (shared / "README.md").read_text()


def test_a_web_export_from_a_folder_whose_name_is_not_utf8(tmp_path):
    pytest.importorskip("onnx")
    out = tmp_path / "web"
    export_web(_run(tmp_path / "a", 16), out)
    odd = Path(shutil.copytree(tmp_path / "a", tmp_path / "q\udcff"))  # the byte 0xff
    export_web(odd, out)
    manifest = json.loads((out / "model.json").read_text(encoding="ascii"))
    assert manifest["checkpoint"].endswith("q\udcff/best.json")


def test_a_checkpoint_that_is_not_json_is_refused_before_a_file_is_written(tmp_path):
    run = _run(tmp_path / "run", 16)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    model, cfg, _ = load_checkpoint(run)
    with pytest.raises(TypeError):
        save_checkpoint(run, "best", model, cfg, {"step": 7, "bad": object()})
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize("key", ["config", "weights", "tokenizer", "announced_sha256"])
def test_a_meta_holding_a_key_the_saver_writes_is_refused_before_a_file_is_written(tmp_path, key):
    run = _run(tmp_path / "run", 16)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    model, cfg, _ = load_checkpoint(run)
    with pytest.raises(ValueError, match=f"meta may not hold '{key}': save_checkpoint writes it"):
        save_checkpoint(run, "best", model, cfg, {"step": 7, key: "x"})
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_text_and_json_hold_a_lone_surrogate_escaped():
    assert text_bytes("é\udcff") == "é".encode() + b"\\udcff"
    assert json_text({"a": "é"}) == '{"a": "é"}'  # readable while UTF-8 can hold it
    assert json_text({"a": "é\udcff"}) == '{"a": "\\u00e9\\udcff"}'  # all escaped, valid JSON
    assert json.loads(json_text({"a": "é\udcff"})) == {"a": "é\udcff"}


def test_the_card_of_a_pairs_file_whose_name_is_not_utf8_can_be_shared_twice(tmp_path):
    """The card names the file (escaped); its recorded hash is of the bytes written, so the
    second save recognises the card as its own."""
    pairs = tmp_path / os.fsdecode(b"p\xff.tsv")
    pairs.write_text("ab\tba\n")
    cfg = RunConfig(ModelConfig(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16,
                                max_positions=48), DataConfig(task="pairs", train_file=str(pairs)))
    for _ in range(2):
        folder = save_pretrained(Seq2SeqTransformer(cfg.model), cfg, {}, tmp_path / "shared")
    assert "--train-file 'p\\udcff.tsv'" in (folder / "README.md").read_text(encoding="utf-8")


class Stop(BaseException):
    """Stands for a kill: raised in place of a file's rename, nothing after it runs."""


def _stopped_save(model, folder: Path, renames: int, monkeypatch) -> None:
    """``model.save_pretrained(folder)`` stopped (as by a kill) at its rename number
    ``renames``: the ones before it happened, nothing after it does."""
    import transformer_tiny.utils as utils

    replace, done = os.replace, []

    def stopping(src, dst):
        if len(done) == renames:
            raise Stop
        done.append(dst)
        replace(src, dst)

    monkeypatch.setattr(utils.os, "replace", stopping)
    with pytest.raises(Stop):
        model.save_pretrained(folder)
    monkeypatch.undo()


# a save's renames: config.json announcing the new files, the card, the weights, config.json
@pytest.mark.parametrize("stops", [[0], [1], [2], [3], [1, 0], [2, 0], [2, 1], [3, 2], [2, 2]],
                         ids=lambda stops: "-".join(map(str, stops)))
@pytest.mark.parametrize("first", [False, True], ids=["replacing", "first-save"])
def test_a_shared_model_save_stopped_midway_is_taken_by_the_next_save(
        tmp_path, monkeypatch, stops, first):
    """Each file is left as it was or as announced, after one stopped save or several in a row:
    the weights load as one model whole or are refused, and the next save replaces the folder
    without the user removing anything. Also for a first save into a new folder."""
    old, new, other = (transformer_tiny.load(_run(tmp_path / name, d))
                       for name, d in (("a", 16), ("b", 32), ("c", 24)))
    folder = tmp_path / "shared"
    if not first:
        old.save_pretrained(folder)
    for model, renames in zip((new, other), stops, strict=False):
        _stopped_save(model, folder, renames, monkeypatch)
    # A save stopped before its weights' rename (the third) leaves config.json naming the
    # earlier model's weights, which load whole; one stopped after it, weights beside a
    # config.json that names others (or, in a first save, none yet): refused, clearly.
    if not first and 3 not in stops:
        assert transformer_tiny.load(folder).predict(["ab", "xyz"]) == old.predict(["ab", "xyz"])
    else:
        with pytest.raises(CheckpointError, match=r"weights .* do not (match|fit the config)|"
                           r"names no model yet: the save that wrote it was stopped midway|"
                           r"^no checkpoint at"):
            transformer_tiny.load(folder)
    new.save_pretrained(folder)
    assert _same_weights(folder, _run(tmp_path / "b2", 32))
    assert "announced_sha256" not in json.loads((folder / "config.json").read_text())


@pytest.mark.parametrize("announced", [[{}], "abc", [None, 5], {"a": 1}])
def test_a_hostile_announcement_is_ignored(tmp_path, announced):
    model = transformer_tiny.load(_run(tmp_path / "a", 16))
    folder = model.save_pretrained(tmp_path / "shared")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "announced_sha256": announced}))
    (folder / "README.md").write_text("my own card")
    with pytest.raises(ValueError, match=r"holds README\.md, which is not from a shared model"):
        model.save_pretrained(folder)  # still the user's card, whatever the announcement says
    assert (folder / "README.md").read_text() == "my own card"
