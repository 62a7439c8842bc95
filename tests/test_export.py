"""ONNX export: the encoder and one cached decoder step on onnxruntime give PyTorch's logits and,
in a greedy loop, PyTorch's strings (dynamic batch size and lengths)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import TOK, make_model, source_batch

from transformer_tiny import export as export_module
from transformer_tiny.attention_maps import cross_attention_maps
from transformer_tiny.checkpoint import load_checkpoint, save_checkpoint
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig
from transformer_tiny.data import DataModule, draw_inputs
from transformer_tiny.decoding import greedy_decode, predict
from transformer_tiny.export import (
    DECODER_FILE,
    ENCODER_FILE,
    MANIFEST,
    export_id,
    export_onnx,
    is_own_graph,
    is_own_manifest,
)
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.onnx_decoding import OnnxSeq2Seq, onnx_greedy, onnx_predict
from transformer_tiny.positions import CharState, decoder_positions
from transformer_tiny.rundir import RunDirError
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID
from transformer_tiny.web import export_web
from transformer_tiny.web import manifest as manifest_of


def assert_logits_agree(model: Seq2SeqTransformer, runner: OnnxSeq2Seq, src: torch.Tensor,
                        steps: int, atol: float) -> None:
    """Encoder outputs and ``steps`` cached decoder steps (fed PyTorch's greedy tokens) agree."""
    model.eval()
    with torch.no_grad():
        memory = model.encode(src)
        enc = runner.encode(src.numpy())
        assert np.array_equal(enc["src_mask"], memory.src_mask.numpy())
        np.testing.assert_allclose(enc["states"], memory.states.numpy(), atol=atol)
        for i, (k, v) in enumerate(memory.cross_kv):
            np.testing.assert_allclose(enc[f"cross_k_{i}"], k.numpy(), atol=atol)
            np.testing.assert_allclose(enc[f"cross_v_{i}"], v.numpy(), atol=atol)
        hs = model.cfg.d_model // model.cfg.n_heads
        past = [np.zeros((src.size(0), model.cfg.n_heads, 0, hs), np.float32)
                for _ in range(2 * model.cfg.n_dec_layers)]
        history = torch.full((src.size(0), 1), BOS_ID)
        for _ in range(steps):
            expected = model.decode(history[:, -1:], memory, use_cache=True)[:, -1]
            logits, past = runner.step(history[:, -1].numpy(), CharState.of(history), enc, past)
            np.testing.assert_allclose(logits, expected.numpy(), atol=atol)
            for got, cache in zip(past[::2], memory.caches, strict=True):
                np.testing.assert_allclose(got, cache.k.numpy(), atol=atol)
            history = torch.cat([history, expected.argmax(-1, keepdim=True)], dim=1)


# ----------------------------------------------------------------------------- untrained models
@pytest.mark.parametrize("scheme", ["rope", "sinusoidal"])
def test_untrained_export_matches_pytorch(scheme, tmp_path):
    model = make_model(dtype=torch.float32, position_scheme=scheme)
    rng_before = torch.get_rng_state()
    params_before = {k: v.clone() for k, v in model.state_dict().items()}
    paths = export_onnx(model, tmp_path)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the model and RNG are left alone
    assert all(torch.equal(v, params_before[k]) for k, v in model.state_dict().items())
    assert {p.name for p in paths.values()} == {ENCODER_FILE, DECODER_FILE}
    runner = OnnxSeq2Seq(tmp_path, threads=1)
    assert runner.cfg == model.cfg
    assert runner.encoder.get_inputs()[0].shape == ["batch", "src_len"]
    past = [i.shape for i in runner.decoder.get_inputs() if i.name.startswith("past_")]
    assert past and all(s == ["batch", model.cfg.n_heads, "past_len", 8] for s in past)
    # Batch sizes and lengths other than those traced, up to the model's 62 input bytes.
    for lengths in ([1], [3, 10, 5], [40, 2, 62, 7, 7, 1, 20]):
        src = source_batch(lengths, seed=len(lengths))
        assert_logits_agree(model, runner, src, steps=6, atol=1e-4)
        expected = greedy_decode(model, src, max_new_tokens=24).numpy()
        assert np.array_equal(onnx_greedy(runner, src, max_new_tokens=24), expected)
    src = source_batch([5, 9])
    assert np.array_equal(onnx_greedy(runner, src), greedy_decode(model, src).numpy())
    with pytest.raises(ValueError, match="input too long"):
        onnx_greedy(tmp_path, source_batch([63]))


def test_decoder_step_returns_the_cross_attention(tmp_path):
    """``attn_i`` of every step equals the weights that attention_maps recomputes in PyTorch
    (what the browser page draws), for an input with multi-byte characters."""
    model = make_model(dtype=torch.float32)
    export_onnx(model, tmp_path)
    runner = OnnxSeq2Seq(tmp_path, threads=1)
    text = "aé中😀z"
    maps = cross_attention_maps(model, text, max_new_tokens=12)
    src = torch.tensor([[BOS_ID, *TOK.encode(text), EOS_ID]])
    enc = runner.encode(src.numpy())
    hs, n = model.cfg.d_model // model.cfg.n_heads, model.cfg.n_dec_layers
    past = [np.zeros((1, model.cfg.n_heads, 0, hs), np.float32) for _ in range(2 * n)]
    history = torch.tensor([[BOS_ID]])
    for t in range(maps.weights.size(2)):
        feed_past = dict(zip([i.name for i in runner.decoder.get_inputs()][-2 * n:], past,
                             strict=True))
        char, offset = (x[:, -1:].numpy() for x in decoder_positions(history))
        outs = dict(zip([o.name for o in runner.decoder.get_outputs()], runner.decoder.run(None, {
            "token": history[:, -1:].numpy(), "char": char, "offset": offset,
            "src_mask": enc["src_mask"], **{k: v for k, v in enc.items() if "cross" in k},
            **feed_past}), strict=True))
        for layer in range(n):
            np.testing.assert_allclose(outs[f"attn_{layer}"][0], maps.weights[layer, :, t].numpy(),
                                       atol=1e-5)
        past = [outs[name] for name in outs if name.startswith("present")]
        history = torch.cat([history, torch.tensor([[int(outs["logits"].argmax())]])], dim=1)


def test_web_manifest(untrained_run, tmp_path):
    paths = export_web(untrained_run, tmp_path / "model")
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["format"] == "transformer_tiny.web/1"
    assert (manifest["task"], manifest["alphabet"]) == ("reverse", "printable")
    assert manifest["max_input_bytes"] == 46 and manifest["end_heads"] == [1]
    assert manifest["special_ids"] == {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID}
    assert manifest["input_format"] is None and manifest["output_room"] == {"per_token": 1,
                                                                             "plus": 16}
    add = manifest_of(RunConfig(ModelConfig(), DataConfig(task="add", max_len=11)), {}, "x")
    assert add["input_format"] == {"kind": "add", "width": 5}
    assert (add["alphabet"], add["alphabet_size"]) == ("its own characters", 11)
    pairs = manifest_of(RunConfig(ModelConfig(), DataConfig(task="pairs", train_file="p.tsv")),
                        {}, "x")
    assert pairs["output_room"] == {"per_token": 4, "plus": 16}  # the task's room, as predict's
    assert (pairs["alphabet"], pairs["alphabet_size"]) == ("the pairs it was trained on", None)
    assert manifest["training_lengths"] == [1, 32] and pairs["training_lengths"] is None


def test_exports_replace_only_their_own_files(untrained_run, tmp_path):
    out = tmp_path / "model"
    paths = export_web(untrained_run, out)
    assert all(is_own_graph(paths[k]) for k in ("encoder", "decoder_step"))
    assert is_own_manifest(paths["manifest"]) and not is_own_graph(paths["manifest"])
    export_onnx(untrained_run, out)  # an earlier export of ours: rewritten
    assert not (out / MANIFEST).exists()  # it described the graphs replaced: never kept stale
    for k, (name, check) in enumerate(((ENCODER_FILE, export_onnx), (MANIFEST, export_web),
                                       (MANIFEST, export_onnx))):
        mine = tmp_path / f"{k}" / name
        mine.mkdir(parents=True)
        (mine / name).write_bytes(b"mine")
        with pytest.raises(RunDirError, match=f"holds {name}, which is not from an export"):
            check(untrained_run, mine)
        assert [p.name for p in mine.iterdir()] == [name]
        assert (mine / name).read_bytes() == b"mine"
        assert not is_own_graph(mine / name) and not is_own_manifest(mine / name)


def test_writing_graphs_removes_a_page_manifest_but_never_a_foreign_model_json(untrained_run,
                                                                              tmp_path):
    out = tmp_path / "model"
    export_web(untrained_run, out)
    export_module.write_graphs(untrained_run, out)  # unclaimed: the page's manifest still goes
    assert not (out / MANIFEST).exists()
    (out / MANIFEST).write_text('{"mine": 1}')
    export_module.write_graphs(untrained_run, out)
    assert (out / MANIFEST).read_text() == '{"mine": 1}'


def test_onnx_predict_takes_a_list_of_texts_as_predict_does(untrained_run, tmp_path):
    export_onnx(untrained_run, tmp_path)
    assert len(onnx_predict(tmp_path, ["ab", "c"])) == 2
    for bad in ("hello", [b"ab"]):  # one str is no list of its characters
        with pytest.raises(TypeError, match="texts must be an iterable of str"):
            onnx_predict(tmp_path, bad)


def test_an_export_stopped_between_its_graphs_is_refused_then_replaced(untrained_run, tmp_path,
                                                                       monkeypatch):
    """A stop after the encoder (a kill, or an error in the decoder's graph) leaves graphs of two
    models: they are refused together, the page folder keeps no manifest of the earlier model,
    and the next export takes the folder."""
    model, cfg, _ = load_checkpoint(untrained_run)
    other = tmp_path / "other"
    torch.manual_seed(1)
    save_checkpoint(other, "best", Seq2SeqTransformer(cfg.model), cfg, {"step": 0})
    assert export_id(load_checkpoint(other)[0]) != export_id(model) == export_id(model)
    out = tmp_path / "model"
    export_web(untrained_run, out)
    write_graph = export_module._export_graph

    def stopped_at_decoder(module, inputs, path, *args, **kwargs):
        if path.name == DECODER_FILE:
            raise KeyboardInterrupt
        write_graph(module, inputs, path, *args, **kwargs)

    monkeypatch.setattr(export_module, "_export_graph", stopped_at_decoder)
    with pytest.raises(KeyboardInterrupt):
        export_web(other, out)
    assert not (out / MANIFEST).exists()
    with pytest.raises(ValueError, match="come from two different exports"):
        OnnxSeq2Seq(out)
    monkeypatch.undo()
    paths = export_web(other, out)
    assert json.loads(paths["manifest"].read_text())["checkpoint"].endswith("other/best.json")
    src = source_batch([2, 5])
    assert np.array_equal(onnx_greedy(out, src), greedy_decode(load_checkpoint(other)[0],
                                                               src).numpy())


# ----------------------------------------------------------------------------- a trained model
@pytest.mark.slow
def test_trained_model_parity_on_heldout_inputs(trained_run, tmp_path):
    model, cfg, _ = load_checkpoint(trained_run)
    export_onnx(trained_run, tmp_path)
    runner = OnnxSeq2Seq(tmp_path)
    # 120 held-out test strings (lengths 1-8, as in training) and 120 fresh longer ones.
    inputs = DataModule(cfg.data).test_inputs[:120]
    for k, (lo, hi) in enumerate([(9, 16), (17, 32), (33, 62)]):  # ASCII: within 62 bytes
        inputs += draw_inputs(cfg.data, 40, 20_000 + k, min_len=lo, max_len=hi,
                              alphabet="printable")
    ours = onnx_predict(runner, inputs)
    reference = [TOK.decode(ids) for ids, _ in predict(model, inputs)]
    assert sum(a == b for a, b in zip(ours, reference, strict=True)) == len(inputs) == 240
    assert sum(o == x[::-1] for o, x in zip(ours[:120], inputs[:120], strict=True)) >= 90
    src, _ = TOK.pad_batch([TOK.encode(x) for x in inputs[::12]], bos=True, eos=True)
    assert_logits_agree(model, runner, src, steps=10, atol=2e-4)
