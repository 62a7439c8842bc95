"""Export to ONNX: the encoder and one cached decoder step, written to a folder.

Two graphs, both with a dynamic batch size and dynamic lengths (``nh`` heads of size ``hs``, ``C``
features, ``L`` decoder layers, ``V`` vocabulary entries):

* ``encoder.onnx``: ``src (B, S)`` int64 (``BOS x EOS``, right-padded with PAD) ->
  ``src_mask (B, 1, 1, S)`` bool, ``states (B, S, C)``, and per decoder layer ``i``
  ``cross_k_i``, ``cross_v_i (B, nh, S, hs)``.
* ``decoder_step.onnx``: ``token (B, 1)`` int64, ``char (B, 1)`` and ``offset (B, 1)`` int64
  (character index and byte offset of the token this step predicts, from
  :class:`~transformer_tiny.positions.CharState`, advanced by each token fed), ``src_mask``,
  ``cross_k_i``, ``cross_v_i``, ``past_k_i``, ``past_v_i (B, nh, T, hs)`` (``T`` tokens fed
  before; zero-length at the first step) -> ``logits (B, V)``, ``present_k_i``,
  ``present_v_i (B, nh, T + 1, hs)``, and ``attn_i (B, nh, S)``: the cross-attention weights of
  decoder layer ``i`` while predicting (what the browser page draws).

The graphs are traced by PyTorch's TorchScript-based exporter (``torch.onnx.export(...,
dynamo=False)``) through the model's own ``encode`` and decoder layers, so they compute what
PyTorch computes on CPU. Each file carries the model config as metadata (``config``) and the
export's :func:`export_id`; :mod:`~transformer_tiny.onnx_decoding` reads the config back, checks
that both graphs carry the same id, and decodes with them on onnxruntime. A page export
(:mod:`~transformer_tiny.web`) adds ``model.json`` beside them; writing new graphs removes it
first, so that it never describes other graphs. Needs the ``[onnx]`` extra (``onnx``,
``onnxruntime``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .attention import LayerCache, MultiHeadAttention, padding_mask
from .attention_maps import capture_cross_attention
from .checkpoint import load_checkpoint
from .extras import require
from .model import Memory, Seq2SeqTransformer
from .model_config import ModelConfig
from .onnx_decoding import (  # noqa: F401  (the runner is also imported from here)
    DECODER_FILE,
    ENCODER_FILE,
    FORMAT,
    OnnxSeq2Seq,
    layer_names,
    onnx_greedy,
    onnx_predict,
)
from .rundir import claim_output_dir
from .safe_files import CheckpointError, read_regular
from .tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_IDS
from .utils import TEMP_SUFFIX, atomic_write_bytes

OPSET = 17
MAX_GRAPH_BYTES = 2 << 30  # protobuf's limit on one message
WEB_FORMAT = "transformer_tiny.web/1"
MANIFEST = "model.json"  # a page export's description of its graphs (web.py)
MAX_MANIFEST_BYTES = 1 << 20  # what export_web writes is a few hundred bytes


class EncoderForExport(nn.Module):
    """``src (B, S)`` -> ``(src_mask (B, 1, 1, S), states (B, S, C), cross_k_0, cross_v_0, ...)``
    with the cross-attention keys and values ``(B, nh, S, hs)`` of every decoder layer."""

    def __init__(self, model: Seq2SeqTransformer):
        super().__init__()
        self.model = model

    def forward(self, src: Tensor) -> tuple[Tensor, ...]:
        memory = self.model.encode(src)
        return (memory.src_mask, memory.states, *(t for kv in memory.cross_kv for t in kv))


class DecoderStepForExport(nn.Module):
    """One cached decoder step, as ``model.decode(token, memory, use_cache=True)``.

    ``forward(token (B, 1), char (B, 1), offset (B, 1), src_mask (B, 1, 1, S), cross_k_0,
    cross_v_0, ..., past_k_0, past_v_0, ...)`` -> ``(logits (B, V), present_k_0, present_v_0,
    ..., attn_0, attn_1, ...)``: cross keys and values ``(B, nh, S, hs)`` and self-attention
    caches ``(B, nh, T, hs)`` per decoder layer; the presents hold ``T + 1`` positions; ``attn_i
    (B, nh, S)`` are layer ``i``'s cross-attention weights (recomputed as
    :mod:`~transformer_tiny.attention_maps` does). ``char`` and ``offset`` place the token this
    step predicts (see :meth:`Seq2SeqTransformer.decode_at`).
    """

    def __init__(self, model: Seq2SeqTransformer):
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, char: Tensor, offset: Tensor, src_mask: Tensor,
                *kv: Tensor) -> tuple[Tensor, ...]:
        n = len(self.model.decoder)
        cross, past = kv[: 2 * n], kv[2 * n:]
        memory = Memory(states=src_mask, src_mask=src_mask,  # states: unused by the decoder
                        cross_kv=[(cross[2 * i], cross[2 * i + 1]) for i in range(n)],
                        caches=[LayerCache(past[2 * i], past[2 * i + 1]) for i in range(n)])
        with capture_cross_attention(self.model) as calls:
            logits = self.model.decode_at(token, char, offset, memory, use_cache=True)
        attention = [call.weights[:, :, -1] for call in calls]  # (B, nh, S) per layer
        return (logits[:, -1], *(t for c in memory.caches for t in (c.k, c.v)), *attention)


def _example_inputs(cfg: ModelConfig) -> tuple[Tensor, tuple[Tensor, ...]]:
    """A source batch (2 rows, one padded) and decoder-step inputs (3 tokens already fed)."""
    src = torch.tensor([[BOS_ID, 104, 105, 33, EOS_ID], [BOS_ID, 111, EOS_ID, PAD_ID, PAD_ID]])
    nh, hs, S, T = cfg.n_heads, cfg.head_size, src.size(1), 3
    g = torch.Generator().manual_seed(0)  # the global random state is left alone
    kv = [torch.randn(2, nh, S, hs, generator=g) for _ in range(2 * cfg.n_dec_layers)]
    past = [torch.randn(2, nh, T, hs, generator=g) for _ in range(2 * cfg.n_dec_layers)]
    step = (torch.tensor([[65], [0xC3]]), torch.tensor([[T + 1], [T]]), torch.tensor([[0], [1]]),
            padding_mask(src))
    return src, (*step, *kv, *past)


def export_id(model: Seq2SeqTransformer) -> str:
    """SHA-256 of the model's config and weights. Both graphs of an export carry it, so graphs of
    two exports (one stopped between its two files) are never run together."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(model.cfg), sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _export_graph(module: nn.Module, inputs: tuple[Tensor, ...], path: Path, cfg: ModelConfig,
                  export: str, **kwargs: Any) -> None:
    """Trace ``module`` on ``inputs`` to ONNX, add the model config, the special ids and the
    ``export`` id as metadata, check the graph, and write it to ``path`` atomically."""
    onnx = require("onnx", "onnx", "ONNX export")

    tmp = path.with_name(f".{path.name}.export{TEMP_SUFFIX}")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # Expected: the exporter's deprecation notice, and tracer notes on Python-level checks
            # (length limit, head size, empty-row guard) that are constant for all valid inputs.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, inputs, str(tmp), dynamo=False, **kwargs)
        proto = onnx.load(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    meta = {"format": FORMAT, "config": json.dumps(dataclasses.asdict(cfg)),
            "special_ids": json.dumps(SPECIAL_IDS), "export": export}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    atomic_write_bytes(path, proto.SerializeToString())


def is_own_graph(path: Path) -> bool:
    """Whether ``path`` is a graph that :func:`export_onnx` wrote: a regular file (not a symbolic
    link) whose metadata names :data:`FORMAT`."""
    onnx = require("onnx", "onnx", "ONNX export")
    from google.protobuf.message import DecodeError

    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(read_regular(path, MAX_GRAPH_BYTES, "graph"))
    except (CheckpointError, DecodeError):
        return False
    return any(p.key == "format" and p.value == FORMAT for p in proto.metadata_props)


def is_own_manifest(path: Path) -> bool:
    """Whether ``path`` is a ``model.json`` that a page export wrote (a regular file)."""
    try:
        contents = json.loads(read_regular(path, MAX_MANIFEST_BYTES, "model.json"))
    except (CheckpointError, ValueError, RecursionError):
        return False
    return isinstance(contents, dict) and contents.get("format") == WEB_FORMAT


EXPORT_CHECKS = {ENCODER_FILE: is_own_graph, DECODER_FILE: is_own_graph,
                 MANIFEST: is_own_manifest}
EXPORT = "an export of this package"


def claim_export_dir(out_dir: str | Path) -> None:
    """Refuse (:class:`~transformer_tiny.rundir.RunDirError`) a folder holding files that an
    export did not write: see :func:`~transformer_tiny.rundir.claim_output_dir`."""
    claim_output_dir(Path(out_dir), EXPORT_CHECKS, EXPORT)


def export_onnx(checkpoint_or_model: str | Path | Seq2SeqTransformer, out_dir: str | Path,
                opset: int = OPSET) -> dict[str, Path]:
    """Write ``encoder.onnx`` and ``decoder_step.onnx`` (float32) to ``out_dir``.

    ``checkpoint_or_model``: a checkpoint (run directory or ``.json``) or a model (copied, not
    changed). The graphs use the explicit attention path whatever ``attention_impl`` says.
    ``out_dir`` must be missing, empty or an earlier export (:func:`claim_export_dir`); other
    files in it are left alone. Returns ``{"encoder": path, "decoder_step": path}``.
    """
    claim_export_dir(out_dir)
    return write_graphs(checkpoint_or_model, out_dir, opset)


def write_graphs(checkpoint_or_model: str | Path | Seq2SeqTransformer, out_dir: str | Path,
                 opset: int = OPSET) -> dict[str, Path]:
    """:func:`export_onnx` without checking the folder (for a caller that has claimed it)."""
    if isinstance(checkpoint_or_model, Seq2SeqTransformer):
        model = copy.deepcopy(checkpoint_or_model).cpu()
    else:
        model = load_checkpoint(checkpoint_or_model, "cpu")[0]
    model = model.float().eval()
    for module in model.modules():  # the explicit attention path, as PyTorch runs it on CPU
        if isinstance(module, MultiHeadAttention):
            module.impl = "math"
    cfg, n = model.cfg, model.cfg.n_dec_layers
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # a page's manifest describes the graphs about to be replaced: a stop while they are written
    # leaves none, which the page reports, rather than one that describes other graphs
    if is_own_manifest(out / MANIFEST):
        (out / MANIFEST).unlink()
    src, step_inputs = _example_inputs(cfg)
    batch, src_len = {0: "batch"}, {0: "batch", 1: "src_len"}
    cross_axes, mask_axes = {0: "batch", 2: "src_len"}, {0: "batch", 3: "src_len"}
    enc_out = ["src_mask", "states", *layer_names("cross", n)]
    dec_in = ["token", "char", "offset", "src_mask", *layer_names("cross", n),
              *layer_names("past", n)]
    dec_out = ["logits", *layer_names("present", n), *(f"attn_{i}" for i in range(n))]
    paths = {"encoder": out / ENCODER_FILE, "decoder_step": out / DECODER_FILE}
    export = export_id(model)
    _export_graph(EncoderForExport(model), (src,), paths["encoder"], cfg, export,
                  opset_version=opset, input_names=["src"], output_names=enc_out,
                  dynamic_axes={"src": src_len, "src_mask": mask_axes, "states": src_len,
                                **{k: cross_axes for k in enc_out[2:]}})
    _export_graph(DecoderStepForExport(model), step_inputs, paths["decoder_step"], cfg, export,
                  opset_version=opset, input_names=dec_in, output_names=dec_out,
                  dynamic_axes={"token": batch, "char": batch, "offset": batch,
                                "src_mask": mask_axes, "logits": batch,
                                **{k: cross_axes for k in layer_names("cross", n)},
                                **{k: {0: "batch", 2: "past_len"} for k in layer_names("past", n)},
                                **{k: {0: "batch", 2: "total_len"} for k in dec_out[1:2 * n + 1]},
                                **{k: {0: "batch", 2: "src_len"} for k in dec_out[2 * n + 1:]}})
    return paths
