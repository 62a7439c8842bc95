"""Export to ONNX: the encoder and one cached decoder step, and a greedy loop on onnxruntime.

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
PyTorch computes on CPU. Each file carries the model config as metadata (``config``), which
:class:`OnnxSeq2Seq` reads back, and the export's :func:`export_id`, which it checks is the
same in both. Needs the ``[onnx]`` extra (``onnx``, ``onnxruntime``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .attention import LayerCache, MultiHeadAttention, padding_mask
from .attention_maps import capture_cross_attention
from .checkpoint import load_checkpoint
from .decoding import batches_by_length, decode_steps, output_room
from .extras import require
from .model import Memory, Seq2SeqTransformer
from .model_config import ModelConfig
from .positions import CharState
from .rundir import claim_output_dir
from .safe_files import CheckpointError, read_regular
from .tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_IDS, ByteTokenizer
from .utils import TEMP_SUFFIX, atomic_write_bytes

FORMAT = "transformer_tiny.onnx/1"
ENCODER_FILE, DECODER_FILE = "encoder.onnx", "decoder_step.onnx"
OPSET = 17
MAX_GRAPH_BYTES = 2 << 30  # protobuf's limit on one message


def _layer_names(prefix: str, n_layers: int) -> list[str]:
    """``[prefix_k_0, prefix_v_0, prefix_k_1, ...]``: one key and one value name per layer."""
    return [f"{prefix}_{kv}_{i}" for i in range(n_layers) for kv in ("k", "v")]


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
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
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


GRAPH_CHECKS = {ENCODER_FILE: is_own_graph, DECODER_FILE: is_own_graph}
EXPORT = "an export of this package"


def claim_export_dir(out_dir: str | Path) -> None:
    """Refuse (:class:`~transformer_tiny.rundir.RunDirError`) a folder holding files that an
    export did not write: see :func:`~transformer_tiny.rundir.claim_output_dir`."""
    claim_output_dir(Path(out_dir), GRAPH_CHECKS, EXPORT)


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
    src, step_inputs = _example_inputs(cfg)
    batch, src_len = {0: "batch"}, {0: "batch", 1: "src_len"}
    cross_axes, mask_axes = {0: "batch", 2: "src_len"}, {0: "batch", 3: "src_len"}
    enc_out = ["src_mask", "states", *_layer_names("cross", n)]
    dec_in = ["token", "char", "offset", "src_mask", *_layer_names("cross", n),
              *_layer_names("past", n)]
    dec_out = ["logits", *_layer_names("present", n), *(f"attn_{i}" for i in range(n))]
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
                                **{k: cross_axes for k in _layer_names("cross", n)},
                                **{k: {0: "batch", 2: "past_len"} for k in _layer_names("past", n)},
                                **{k: {0: "batch", 2: "total_len"} for k in dec_out[1:2 * n + 1]},
                                **{k: {0: "batch", 2: "src_len"} for k in dec_out[2 * n + 1:]}})
    return paths


class OnnxSeq2Seq:
    """The two exported graphs on onnxruntime (CPU), with the config they were exported from."""

    def __init__(self, model_dir: str | Path, threads: int = 0):
        ort = require("onnxruntime", "onnx", "running an ONNX export")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # 0: onnxruntime's default
        opts.log_severity_level = 3  # errors only
        model_dir = Path(model_dir)
        self.encoder, self.decoder = (
            ort.InferenceSession(str(model_dir / f), opts, providers=["CPUExecutionProvider"])
            for f in (ENCODER_FILE, DECODER_FILE))
        enc_meta, meta = (s.get_modelmeta().custom_metadata_map
                          for s in (self.encoder, self.decoder))
        for name, m in ((ENCODER_FILE, enc_meta), (DECODER_FILE, meta)):
            if m.get("format") != FORMAT:
                raise ValueError(f"{model_dir / name} is not a transformer_tiny ONNX export")
        if enc_meta.get("export") != meta.get("export"):
            raise ValueError(f"{model_dir}: {ENCODER_FILE} and {DECODER_FILE} come from two "
                             "different exports (one stopped midway?): export again")
        self.cfg = ModelConfig(**json.loads(meta["config"]))

    def encode(self, src: np.ndarray) -> dict[str, np.ndarray]:
        """``src (B, S)`` int64 -> the encoder's outputs by name."""
        names = [o.name for o in self.encoder.get_outputs()]
        return dict(zip(names, self.encoder.run(None, {"src": src}), strict=True))

    def step(self, token: np.ndarray, chars: CharState, memory: dict[str, np.ndarray],
             past: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One decoder step: the new token of each row, ``token (B,)``, whose row stands at
        ``chars`` (:class:`~transformer_tiny.positions.CharState`, with the token fed) ->
        ``logits (B, V)`` and the grown caches."""
        n = self.cfg.n_dec_layers
        char, offset = (t[:, None].numpy() for t in chars.predicted())  # (B, 1) each
        feed: dict[str, Any] = {"token": token[:, None], "char": char, "offset": offset,
                                "src_mask": memory["src_mask"]}
        feed.update({k: memory[k] for k in _layer_names("cross", n)})
        feed.update(zip(_layer_names("past", n), past, strict=True))
        logits, *present = self.decoder.run(None, feed)[: 2 * n + 1]  # then the attention
        return logits, present


def onnx_greedy(runner: OnnxSeq2Seq | str | Path, src: np.ndarray | Tensor,
                max_new_tokens: int | None = None) -> np.ndarray:
    """Batched greedy decoding on onnxruntime, step for step as
    :func:`transformer_tiny.decoding.greedy_decode` with the KV cache.

    ``src (B, S)``: right-padded ``BOS x EOS`` ids. Returns ``(B, L)`` int64 generated ids (BOS
    excluded; PAD after a row's EOS). ``max_new_tokens`` defaults as in PyTorch
    (:func:`~transformer_tiny.decoding.default_max_new_tokens`).
    """
    runner = runner if isinstance(runner, OnnxSeq2Seq) else OnnxSeq2Seq(runner)
    src = src.cpu().numpy() if isinstance(src, Tensor) else np.asarray(src)
    src = src.astype(np.int64)
    batch, src_len = src.shape
    cfg = runner.cfg
    cfg.check_positions(src_len)
    steps = decode_steps(max_new_tokens, src_len, cfg)
    memory = runner.encode(src)
    hs = cfg.head_size
    past = [np.zeros((batch, cfg.n_heads, 0, hs), np.float32) for _ in range(2 * cfg.n_dec_layers)]
    history = np.full((batch, 1), BOS_ID, dtype=np.int64)
    chars = CharState.of(torch.from_numpy(history))
    finished = np.zeros(batch, dtype=bool)
    for _ in range(steps):
        logits, past = runner.step(history[:, -1], chars, memory, past)
        nxt = np.where(finished, PAD_ID, logits.argmax(axis=-1)).astype(np.int64)  # (B,)
        history = np.concatenate([history, nxt[:, None]], axis=1)
        chars = chars.advance(torch.from_numpy(nxt))
        finished |= nxt == EOS_ID
        if finished.all():
            break
    return history[:, 1:]


def onnx_predict(runner: OnnxSeq2Seq | str | Path, texts: list[str], batch_size: int = 128,
                 max_new_tokens: int | Callable[[int], int] | None = None) -> list[str]:
    """Greedy outputs for ``texts`` on onnxruntime, batched by similar length, with
    ``max_new_tokens`` as :func:`transformer_tiny.decoding.predict` takes it (a number, a
    task's ``output_room``, or None)."""
    runner = runner if isinstance(runner, OnnxSeq2Seq) else OnnxSeq2Seq(runner)
    tok = ByteTokenizer()
    results = [""] * len(texts)
    for rows, src in batches_by_length(texts, batch_size, runner.cfg):
        out = onnx_greedy(runner, src, output_room(max_new_tokens, src.size(1), runner.cfg))
        for i, ids in zip(rows, out.tolist(), strict=True):
            results[i] = tok.decode(ids)
    return results
