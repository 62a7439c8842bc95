"""Greedy decoding with an ONNX export (:mod:`~transformer_tiny.export`) on onnxruntime.

The folder holds ``encoder.onnx`` and ``decoder_step.onnx``; their inputs and outputs are listed
in :mod:`~transformer_tiny.export`. Each graph's metadata names :data:`FORMAT`, the model config
and the export's id: graphs of two exports (one stopped between its two files) are refused
together. The decoding loop is PyTorch's cached greedy decoding, step for step. Needs the
``[onnx]`` extra.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .decoding import batches_by_length, decode_steps, room_steps, text_list
from .extras import require
from .model_config import ModelConfig
from .positions import CharState
from .tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer

FORMAT = "transformer_tiny.onnx/1"
ENCODER_FILE, DECODER_FILE = "encoder.onnx", "decoder_step.onnx"


def layer_names(prefix: str, n_layers: int) -> list[str]:
    """``[prefix_k_0, prefix_v_0, prefix_k_1, ...]``: one key and one value name per layer."""
    return [f"{prefix}_{kv}_{i}" for i in range(n_layers) for kv in ("k", "v")]


class OnnxSeq2Seq:
    """The two exported graphs on onnxruntime (CPU), with the config they were exported from."""

    def __init__(self, model_dir: str | Path, threads: int = 0):
        ort = require("onnxruntime", "onnx", "running an ONNX export")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # 0: onnxruntime's default
        opts.log_severity_level = 4  # no log lines: a failure raises, its message says it all
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
        feed.update({k: memory[k] for k in layer_names("cross", n)})
        feed.update(zip(layer_names("past", n), past, strict=True))
        logits, *present = self.decoder.run(None, feed)[: 2 * n + 1]  # then the attention
        return logits, present


def onnx_greedy(runner: OnnxSeq2Seq | str | Path, src: np.ndarray | Tensor,
                max_new_tokens: int | None = None) -> np.ndarray:
    """Batched greedy decoding on onnxruntime, step for step as
    :func:`transformer_tiny.decoding.greedy_decode` with the KV cache.

    ``src (B, S)``: right-padded ``BOS x EOS`` ids. Returns ``(B, L)`` int64 generated ids (BOS
    excluded; PAD after a row's EOS). ``max_new_tokens`` defaults as in PyTorch
    (:func:`~transformer_tiny.decoding.decode_steps`).
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
    task's ``output_room``, or None). Texts in and out are the model's own, as for ``predict``:
    a task with a format of its own (``add``) reads ``00095+00007``, not ``95+7``
    (``Task.model_input`` and ``Task.shown`` convert)."""
    texts = text_list(texts)
    runner = runner if isinstance(runner, OnnxSeq2Seq) else OnnxSeq2Seq(runner)
    tok = ByteTokenizer()
    results = [""] * len(texts)
    for rows, src in batches_by_length(texts, batch_size, runner.cfg):
        out = onnx_greedy(runner, src, room_steps(max_new_tokens, src.size(1), runner.cfg))
        for i, ids in zip(rows, out.tolist(), strict=True):
            results[i] = tok.decode(ids)
    return results
