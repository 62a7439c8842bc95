"""The public API: load / train a model, get strings back, share it in the Hugging Face layout;
a shared folder goes through the same checks as a checkpoint."""

from __future__ import annotations

import json
import os
import shlex
import sys
import types

import numpy as np
import pytest
import torch
from helpers import call_cli, chain_model, greedy_trap_model, make_model, surrogate_model

import transformer_tiny
from transformer_tiny.checkpoint import CheckpointError, save_checkpoint
from transformer_tiny.cli.export import export_main
from transformer_tiny.config import ConfigError, DataConfig, ModelConfig, RunConfig
from transformer_tiny.data import draw_inputs, heldout_inputs
from transformer_tiny.inputs import unseen_characters
from transformer_tiny.pretrained import example_input, model_card, training_command
from transformer_tiny.tasks import TASKS, Task, register_task, task_for
from transformer_tiny.tokenizer import BOS_ID, EOS_ID


@pytest.fixture(scope="module")
def shared(untrained_run, tmp_path_factory):
    """The untrained run's model, and the same model saved with save_pretrained."""
    model = transformer_tiny.load(untrained_run)
    folder = model.save_pretrained(tmp_path_factory.mktemp("shared") / "model")
    return model, folder


def test_three_lines(untrained_run):
    model = transformer_tiny.load(untrained_run)
    answers = model.predict(["Hello_2025", "abc"])
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert model.task.name == "reverse" and model.config.data.alphabet == "printable"
    assert model.limits.max_input_bytes == 46 and len(model.limits.characters) == 95
    assert model.unseen_characters("naïve café") == ["ï", "é"]  # a printable-ASCII model


def test_save_pretrained_round_trip(shared):
    model, folder = shared
    assert sorted(os.listdir(folder)) == ["README.md", "config.json", "model.safetensors"]
    again = transformer_tiny.TinyModel.from_pretrained(folder)
    for (name, a), (name_b, b) in zip(model.module.state_dict().items(),
                                      again.module.state_dict().items(), strict=True):
        assert name == name_b and torch.equal(a, b)
    inputs = draw_inputs(model.config.data, 200, seed=5, max_len=20)
    assert again.predict(inputs) == model.predict(inputs)
    assert again.config == model.config
    assert transformer_tiny.load(folder / "config.json").predict(inputs[:3]) == \
        model.predict(inputs[:3])


def test_model_card(untrained_run, tmp_path):
    cfg = RunConfig(ModelConfig(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16,
                                max_positions=48), DataConfig(task="copy", alphabet="digits"))
    metrics = {"val_exact_match": 0.9876, "val_char_accuracy": 0.99512, "epoch": 3, "step": 375}
    run = tmp_path / "run"
    save_checkpoint(run, "best", make_model(**vars(cfg.model)).float(), cfg,
                    {"step": 375, "metrics": metrics})
    card = (transformer_tiny.load(run).save_pretrained(tmp_path / "shared") / "README.md"
            ).read_text()
    assert "`copy`: repeat the string unchanged" in card
    assert "over the `digits` alphabet (10 characters)" in card
    assert "validation exact match: 0.9876" in card and "accuracy: 0.9951" in card
    assert "after epoch 3 (step 375)" in card and "inputs of at most 46 UTF-8 bytes" in card
    assert ("python scripts/train.py --d-model 16 --n-heads 2 --n-dec-layers 1 --d-ff 16 "
            "--max-positions 48 --task copy --alphabet digits") in card
    assert card.startswith("---\nlibrary_name: transformer-tiny\nlicense: mit\n")


def edit_json(folder, **changes):
    info = json.loads((folder / "config.json").read_text())
    info.update(changes)
    (folder / "config.json").write_text(json.dumps(info))


@pytest.mark.parametrize("attack, message", [
    (lambda f: edit_json(f, weights="../x.safetensors"), "not a file name of the form"),
    (lambda f: ((f / "model.safetensors").unlink(), (f / "model.safetensors").symlink_to(
        "/dev/zero")), "symbolic link"),
    (lambda f: edit_json(f, config={"model": {"d_model": 2**30}}), "must be <= 4096"),
    (lambda f: (f / "model.safetensors").write_bytes(b"\0" * 64), "not a safetensors file"),
])
def test_an_edited_shared_folder_is_refused_as_a_checkpoint_is(shared, tmp_path, attack, message):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(shared[1], folder)
    attack(folder)
    with pytest.raises(CheckpointError, match=message):
        transformer_tiny.TinyModel.from_pretrained(folder)


def test_save_pretrained_never_overwrites_other_files(shared, tmp_path):
    (tmp_path / "README.md").write_text("my notes")
    with pytest.raises(ValueError, match=r"not from a shared model; choose another folder$"):
        shared[0].save_pretrained(tmp_path)  # nothing of ours there: no advice to remove it
    assert (tmp_path / "README.md").read_text() == "my notes"
    shared[0].save_pretrained(shared[1])  # an earlier shared model is replaced


def test_save_pretrained_replaces_a_folder_saved_before_cards_were_hashed(shared, tmp_path):
    folder = shared[0].save_pretrained(tmp_path / "shared")
    config = json.loads((folder / "config.json").read_text())
    del config["card_sha256"]  # as an earlier version wrote it
    (folder / "config.json").write_text(json.dumps(config))
    shared[0].save_pretrained(folder)
    assert "card_sha256" in json.loads((folder / "config.json").read_text())


@pytest.mark.parametrize("edited", ["README.md", "model.safetensors"])
def test_save_pretrained_keeps_a_file_edited_since_it_was_written(shared, tmp_path, edited):
    """An edited model card (the usual Hub workflow), or weights that are not the ones the
    folder's config.json records, are the user's now: a new save refuses to replace them."""
    folder = shared[0].save_pretrained(tmp_path / "shared")
    mine = (folder / edited).read_bytes() + b"\n<!-- my edit -->\n"
    (folder / edited).write_bytes(mine)
    with pytest.raises(ValueError, match=f"holds {edited}, which is not from a shared model, or "
                                         "changed since it was written .* or remove that file"):
        shared[0].save_pretrained(folder)
    assert (folder / edited).read_bytes() == mine
    (folder / edited).unlink()  # as the message says: then the folder is taken again
    assert shared[0].save_pretrained(folder) == folder
    assert transformer_tiny.load(folder).predict(["ab"]) == shared[0].predict(["ab"])


def test_predict_applies_the_tasks_formats():
    cfg = RunConfig(ModelConfig(d_model=32, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32,
                                max_positions=64), DataConfig(task="add", max_len=3))
    model = transformer_tiny.TinyModel(chain_model([BOS_ID, *b"02", EOS_ID]), cfg)
    assert model.predict(["1+1", "01+001"]) == ["2", "2"]  # it writes "02" for "1+1"
    assert model.predict(["1+1"], beam=3) == ["2"]
    with pytest.raises(ValueError, match="at most 1 digits"):
        model.predict(["12+1"])
    with pytest.raises(TypeError):
        model.predict("95+7")
    with pytest.raises(ValueError, match=r"beam must be in \[1, 64\]"):
        model.predict(["1+1"], beam=65)
    assert model.limits.alphabet == "its own characters"  # add ignores the alphabet
    assert model.limits.characters == "0123456789+"
    assert model.predict(["1 + 1"]) == ["2"]  # the spaces a person types are dropped
    assert model.unseen_characters("1 + 1") == []  # as the model reads it
    assert model.unseen_characters("1 x 1") == [" ", "x"]  # no add input: its own characters


def test_answers_say_whether_an_output_ended_and_was_valid_utf8():
    cfg = RunConfig(ModelConfig(d_model=32, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32,
                                max_positions=64), DataConfig(task="copy", max_len=8))
    bad = transformer_tiny.TinyModel(chain_model([BOS_ID, *b"a", 0xFF, EOS_ID]), cfg)
    (answer,) = bad.answers(["xy"])
    assert answer == transformer_tiny.Answer("a\ufffd", ended=True, valid_utf8=False)
    good = transformer_tiny.TinyModel(chain_model([BOS_ID, *"é!".encode(), EOS_ID]), cfg)
    assert good.answers(["xy"]) == [transformer_tiny.Answer("é!", True, True)]
    assert good.answers(["xy"], max_new_tokens=2) == [transformer_tiny.Answer("é", False, True)]
    assert good.predict(["xy", "z"]) == ["é!", "é!"]
    lone = transformer_tiny.TinyModel(surrogate_model(), cfg)
    assert lone.answers(["xy"]) == [transformer_tiny.Answer("\ud800", True, False)]


@pytest.mark.parametrize("data, said", [
    (DataConfig(task="add", max_len=11),
     ["over its own characters, `0123456789+` (11 characters)",
      "characters other than `0123456789+` were never seen"]),
    (DataConfig(task="pairs", train_file="runs/g2p.tsv"),
     ["Input-output pairs read from `g2p.tsv`, 3 epochs.",
      "characters that are not in the training pairs were never seen"]),
])
def test_model_card_says_what_a_task_with_its_own_inputs_saw(data, said):
    card = model_card(RunConfig(data=data), {})
    assert all(s in card for s in said) and "alphabet" not in card


@pytest.mark.parametrize("data, said", [
    (DataConfig(alphabet="printable", val_samples=300),
     "On 300 held-out strings of the training lengths."),
    (DataConfig(task="pairs", train_file="/a/train.tsv", val_samples=700),
     "On 700 held-out inputs of the training file (at most)."),
    (DataConfig(task="pairs", train_file="/a/train.tsv", val_file="/b/dev words.jsonl"),
     "On 1,000 inputs of `dev words.jsonl` (at most)."),
], ids=["generated", "pairs", "pairs-val-file"])
def test_model_card_says_what_validation_measured(data, said):
    lines = model_card(RunConfig(data=data), {"val_exact_match": 0.5}).splitlines()
    assert lines[lines.index("- validation exact match: 0.5000") + 2] == said

@pytest.mark.parametrize("data", [DataConfig(task="add", max_len=11), DataConfig(task="parens"),
                                  DataConfig(alphabet="printable"),
                                  DataConfig(task="add", min_len=13, max_len=21),
                                  DataConfig(task="parens", min_len=14, max_len=20)])
def test_model_card_example_is_an_input_the_task_takes(data):
    cfg = RunConfig(data=data)
    example = example_input(data)
    task_for(data).model_input(example)  # add's format check raises on an input it cannot take
    assert f"model.predict([{json.dumps(example)}])" in model_card(cfg, {})


@pytest.mark.parametrize("alphabet", ["digits", "letters", "printable", "unicode"])
def test_the_example_input_holds_only_characters_the_model_saw(alphabet):
    data = DataConfig(alphabet=alphabet)
    example = example_input(data)
    assert example and unseen_characters(example, data) == []
    assert (example == "Hello_2025") == (alphabet in ("printable", "unicode"))
    short = DataConfig(alphabet=alphabet, min_len=1, max_len=4)  # Hello_2025 is 10 characters
    assert 1 <= len(example_input(short)) <= 4


def test_model_card_of_a_task_of_ones_own_says_its_code_is_needed():
    for name in ("reverse", "add", "sort"):  # built in
        assert "not one of transformer-tiny's own" not in model_card(
            RunConfig(data=DataConfig(task=name)), {})
    register_task(Task("echo-for-a-card", "repeat the string", lambda text: text))
    try:
        card = model_card(RunConfig(data=DataConfig(task="echo-for-a-card")), {})
    finally:
        TASKS.pop("echo-for-a-card", None)
    assert ("- the task `echo-for-a-card` is not one of transformer-tiny's own: run the code "
            "that registers it (`register_task`) before `transformer_tiny.load`") in card


def test_model_card_training_command_is_quoted_and_names_files_only():
    cfg = RunConfig(data=DataConfig(task="pairs", train_file="/somewhere/my data/g2p words.tsv"),
                    model=ModelConfig(d_model=64))
    assert shlex.split(training_command(cfg)) == [
        "python", "scripts/train.py", "--d-model", "64", "--task", "pairs",
        "--train-file", "g2p words.tsv"]
    assert "/somewhere" not in model_card(cfg, {})


def test_evaluate_defaults_to_the_test_set(untrained_run):
    model = transformer_tiny.load(untrained_run)
    val, test = heldout_inputs(DataConfig(alphabet="printable", val_samples=4, test_samples=4))
    assert model.evaluate() == model.evaluate(test)  # the fixture's held-out test strings
    assert model.evaluate(split="val") == model.evaluate(val)
    assert model.evaluate(test) != model.evaluate(val)  # so the two checks tell the splits apart
    assert model.evaluate(["ab", "ba"]).n == 2


def test_evaluate_refuses_what_it_cannot_score(untrained_run, untrained_pairs_run):
    with pytest.raises(ValueError, match=r"^nothing to evaluate: an empty list$"):
        transformer_tiny.load(untrained_run).evaluate([])
    with pytest.raises(ValueError, match=r"^a pairs model knows no answers of its own: "):
        transformer_tiny.load(untrained_pairs_run).evaluate(["abc"])


@pytest.mark.parametrize("inputs, buckets, error, match", [
    ("abc", None, TypeError, "texts must be an iterable of str"),  # not three one-letter inputs
    ([1, 2], None, TypeError, "texts must be an iterable of str"),
    (["abc"], "1-8", TypeError, "buckets must be"),
    (["abc"], [(1, 2, 3)], TypeError, "buckets must be"),
    (["abc"], [(1.0, 2)], TypeError, "buckets must be"),
    (["abc"], [(True, 2)], TypeError, "buckets must be"),
    (["abc"], [(1, True)], TypeError, "buckets must be"),
    (["abc"], [(5, 1)], ValueError, r"bucket \(5, 1\): needs 0 <= lo <= hi"),
    (["abc"], [(-1, 4)], ValueError, r"bucket \(-1, 4\)"),
])
def test_evaluate_refuses_inputs_and_buckets_of_the_wrong_kind(untrained_run, inputs, buckets,
                                                              error, match):
    with pytest.raises(error, match=match):
        transformer_tiny.load(untrained_run).evaluate(inputs, buckets=buckets)


def test_evaluate_buckets_an_empty_input_and_counts_those_in_no_bucket(untrained_run):
    model = transformer_tiny.load(untrained_run)
    with pytest.warns(UserWarning, match="^1 input falls in no length bucket: counted in the "
                                         "total only$"):
        result = model.evaluate(["", "ab", "abcdefg"], buckets=[(0, 0), (1, 5)])
    assert result.n == 3 and [b["n"] for b in result.buckets.values()] == [1, 1]
    with pytest.raises(ValueError, match=r"bucket \(0, 4\): needs 1 <= lo <= hi"):
        model.plot("unused", buckets=[(0, 4)])  # fresh strings have a character at least


def test_evaluate_decodes_with_a_beam_and_shows_examples(untrained_run):
    """The greedy trap (helpers): greedy writes "ac" whatever the input, a beam "b"."""
    trap = greedy_trap_model()
    model = transformer_tiny.TinyModel(trap, RunConfig(trap.cfg, DataConfig(task="copy")))
    greedy, beam = model.evaluate(["b", "ab"], examples=2), model.evaluate(["b", "ab"], beam=3)
    assert (greedy.exact_match, beam.exact_match) == (0.0, 0.5)  # copy: "b" is right for "b"
    assert [e["pred"] for e in greedy.examples] == ["ac", "ac"] and beam.examples == []
    with pytest.raises(ValueError, match="examples must be an int >= 0"):
        transformer_tiny.load(untrained_run).evaluate(["abc"], examples=-1)
    with pytest.raises(ValueError, match="beam"):
        transformer_tiny.load(untrained_run).evaluate(["abc"], beam=0)


def test_evaluate_takes_any_iterable_and_buckets_as_lists(untrained_run):
    model = transformer_tiny.load(untrained_run)
    a = model.evaluate(("ab", "cde"), buckets=[[1, 2], [np.int64(3), np.int64(3)]])
    b = model.evaluate(["ab", "cde"], buckets=[(1, 2), (3, 3)])  # one length: lo == hi
    assert a.to_dict() == b.to_dict() and list(a.buckets) == ["1-2", "3-3"]


def test_train_takes_config_fields(tmp_path):
    with pytest.raises(ConfigError, match=r"^bogus: unknown config field$"):
        transformer_tiny.train(bogus=1)
    fields = dict(d_model=16, n_heads=2, n_dec_layers=1, d_ff=16, max_len=6, train_samples=64,
                  val_samples=8, test_samples=8, batch_size=32, progress=False)
    model = transformer_tiny.train(epochs=1, out=tmp_path / "run", **fields)  # a Path
    assert model.path == tmp_path / "run" / "best.json"
    assert model.config.model.d_model == 16 and model.metrics["step"] == 2
    # resume and overwrite, as train.py's flags
    assert transformer_tiny.train(epochs=2, out=tmp_path / "run", resume=True,
                                  progress=False).metrics["step"] == 4
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    with pytest.raises(ValueError, match=r"overwrite=True in Python"):
        transformer_tiny.train(epochs=1, out=tmp_path / "mine", **fields)
    transformer_tiny.train(epochs=1, out=tmp_path / "mine", overwrite=True, **fields)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my notes"


def test_api_takes_any_iterable_of_texts_and_refuses_wrong_types(untrained_run):
    """TinyModel.predict goes through decoding's checks (every case: test_decoding.py)."""
    model = transformer_tiny.load(untrained_run)
    assert model.predict(t for t in ["ab", "c"]) == model.predict(["ab", "c"])
    with pytest.raises(TypeError, match=r"^beam must be an int"):
        model.predict(["ab"], beam="2")
    with pytest.raises(TypeError, match="texts must be an iterable of str"):
        model.predict(None)


@pytest.mark.parametrize("device", ["tpu", None, "cpu:x"])
def test_load_refuses_a_device_torch_does_not_know(untrained_run, device):
    with pytest.raises(ValueError, match=r"^device: torch knows no device "):
        transformer_tiny.load(untrained_run, device=device)
    on_cpu = transformer_tiny.load(untrained_run, device=torch.device("cpu"))
    assert next(on_cpu.module.parameters()).device.type == "cpu"
    assert on_cpu.predict(["ab"]) == transformer_tiny.load(untrained_run).predict(["ab"])
    with pytest.raises(TypeError, match="path must be a str or a Path"):
        transformer_tiny.load(None)


def test_hub_download_and_upload_go_through_huggingface_hub(shared, monkeypatch, tmp_path):
    calls = []

    class Api:
        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create", repo_id, private))
            return f"https://hub.example/{repo_id}"

        def upload_folder(self, folder_path, repo_id):
            calls.append(("upload", repo_id, sorted(os.listdir(folder_path))))

    fake = types.SimpleNamespace(HfApi=Api, snapshot_download=lambda repo_id: (
        calls.append(("download", repo_id)) or str(shared[1])))
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    model = transformer_tiny.TinyModel.from_pretrained("someone/tiny-reverse")
    assert model.predict(["abc"]) == shared[0].predict(["abc"])
    assert shared[0].push_to_hub("me/tiny") == "https://hub.example/me/tiny"
    assert calls == [("download", "someone/tiny-reverse"), ("create", "me/tiny", True),
                     ("upload", "me/tiny", ["README.md", "config.json", "model.safetensors"])]


def test_hub_without_the_package_is_a_clear_error(shared, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ValueError,
                       match=r"^the Hub needs the hub extra: pip install -e '\.\[hub\]'$"):
        shared[0].push_to_hub("me/tiny")


def test_export_hf_command(untrained_run, tmp_path, capsys):
    out = tmp_path / "shared"
    assert call_cli(export_main, ["--checkpoint", str(untrained_run), "--hf", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}: config.json, model.safetensors, README.md\n"
    assert transformer_tiny.load(out).predict(["abc"]) == \
        transformer_tiny.load(untrained_run).predict(["abc"])


def test_a_shared_pairs_model_keeps_what_it_saw_and_its_card_says_pairs(tmp_path):
    model = make_model(dtype=torch.float32)
    cfg = RunConfig(model.cfg, DataConfig(task="pairs", train_file=str(tmp_path / "p.tsv")))
    save_checkpoint(tmp_path / "run", "best", model, cfg,
                    {"step": 3, "input_bytes": list(b"ab"),
                     "metrics": {"val_exact_match": None, "epoch": "one", "step": 3}})
    loaded = transformer_tiny.load(tmp_path / "run")
    assert loaded.unseen_characters("abz") == ["z"]
    folder = loaded.save_pretrained(tmp_path / "shared")  # metrics that are not numbers: no error
    assert transformer_tiny.load(folder).unseen_characters("abz") == ["z"]
    card = (folder / "README.md").read_text()
    assert "- no validation figures were recorded" in card and "after epoch" not in card
    assert "held-out inputs of the training file" in card


def test_a_pairs_model_is_evaluated_on_its_test_file_alone(tmp_path):
    """evaluate() reads the files as eval.py does: a run whose training file is gone, with its
    own test file, is still scored (the API used to read every file and fail)."""
    test = tmp_path / "test.tsv"
    test.write_text("ab\tba\ncd\tdc\n")
    model = make_model(dtype=torch.float32)
    cfg = RunConfig(model.cfg, DataConfig(task="pairs", train_file=str(tmp_path / "gone.tsv"),
                                          test_file=str(test)))
    save_checkpoint(tmp_path / "run", "best", model, cfg, {"step": 0})
    assert transformer_tiny.load(tmp_path / "run").evaluate().n == 2
