"""The peer: our sizes, token embedding and output layer around PyTorch's own ``nn.Transformer``
core, with additive sinusoidal positions (the core cannot take our rotary ones, and it does not
get our embedding of a byte's offset inside its character, which is position information too),
plus the greedy loop of the PyTorch tutorial (re-runs the whole prefix)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transformer_tiny.config import ModelConfig
from transformer_tiny.positions import sinusoidal_encoding
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID


class PeerTransformer(nn.Module):
    """Embedding + additive sinusoidal positions + ``nn.Transformer`` (pre-norm) + linear head.

    ``scale_embeddings`` multiplies token embeddings by ``sqrt(d_model)`` and ``norm_first=False``
    gives post-norm layers, as in the PyTorch translation tutorial.
    """

    def __init__(self, cfg: ModelConfig, dropout: float = 0.0, scale_embeddings: bool = False,
                 norm_first: bool = True):
        super().__init__()
        self.cfg, self.scale = cfg, math.sqrt(cfg.d_model) if scale_embeddings else 1.0
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD_ID)
        self.core = nn.Transformer(cfg.d_model, cfg.n_heads, cfg.n_enc_layers, cfg.n_dec_layers,
                                   cfg.d_ff, dropout, activation="gelu", batch_first=True,
                                   norm_first=norm_first)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.drop = nn.Dropout(dropout)

    def _embed(self, ids: Tensor) -> Tensor:
        pos = sinusoidal_encoding(torch.arange(ids.size(1), device=ids.device), self.cfg.d_model)
        return self.drop(self.embed(ids) * self.scale + pos)

    def encode(self, src: Tensor) -> Tensor:
        return self.core.encoder(self._embed(src), src_key_padding_mask=src == PAD_ID)

    def decoder_states(self, tgt: Tensor, memory: Tensor, src: Tensor) -> Tensor:
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.size(1), device=tgt.device)
        return self.core.decoder(self._embed(tgt), memory, tgt_mask=causal, tgt_is_causal=True,
                                 tgt_key_padding_mask=tgt == PAD_ID,
                                 memory_key_padding_mask=src == PAD_ID)

    def decode(self, tgt: Tensor, memory: Tensor, src: Tensor) -> Tensor:
        return self.head(self.decoder_states(tgt, memory, src))

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        return self.decode(tgt, self.encode(src), src)


@torch.no_grad()
def peer_greedy(model: PeerTransformer, src: Tensor, steps: int,
                stop_at_eos: bool = True) -> Tensor:
    """The tutorial's greedy loop: at every step, run the decoder over the whole prefix (and,
    as the tutorial does, the output layer over its last position only)."""
    model.eval()
    memory = model.encode(src)
    out = torch.full((src.size(0), 1), BOS_ID, dtype=torch.long, device=src.device)
    finished = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    for _ in range(steps):
        logits = model.head(model.decoder_states(out, memory, src)[:, -1])
        nxt = logits.argmax(-1).masked_fill(finished, PAD_ID)
        out = torch.cat([out, nxt[:, None]], dim=1)
        finished |= nxt == EOS_ID
        if stop_at_eos and bool(finished.all()):
            break
    return out[:, 1:]
