"""The model's sizes and switches: :class:`ModelConfig`, validated on construction. The model
core (model.py, attention.py, positions.py) needs only this config, not the tasks' or training's
(config.py)."""

from __future__ import annotations

from dataclasses import dataclass

from .config_checks import at_most, check, check_types, config_field, positive
from .tokenizer import MAX_CHAR_BYTES, VOCAB_SIZE

POSITION_SCHEMES = ("sinusoidal", "rope")
ATTENTION_IMPLS = ("auto", "sdpa", "math")
# Upper bounds of the sizes, far above what a toy task needs.
MODEL_LIMITS = {"d_model": 4096, "n_heads": 256, "n_enc_layers": 64, "n_dec_layers": 64,
                "d_ff": 16384, "max_positions": 65536, "rope_stride": 64}
MAX_PARAMETERS = 100_000_000  # larger models are refused before one is built


@dataclass
class ModelConfig:
    """Sizes and switches of :class:`~transformer_tiny.model.Seq2SeqTransformer`."""

    d_model: int = config_field(128, "width of every token's vector")
    n_heads: int = config_field(4, "attention heads per layer")
    n_enc_layers: int = config_field(1, "encoder layers")
    n_dec_layers: int = config_field(2, "decoder layers")
    d_ff: int = config_field(256, "hidden width of the feed-forward layers")
    dropout: float = config_field(0.0, "dropout probability")
    max_positions: int = config_field(4098, "position indices 0..N-1; an input may have N-2 bytes")
    position_scheme: str = config_field("rope", "how positions enter the model",
                                        choices=POSITION_SCHEMES)
    randomize_positions: bool = config_field(True, "train on sorted random subsets of the indices")
    rope_stride: int = config_field(
        4, "rotary index steps per position (rope): how fast angles turn")
    attention_impl: str = config_field(
        "auto", "fused kernel, explicit math, or auto (see attention.py)", choices=ATTENTION_IMPLS)
    causal_encoder: bool = config_field(False, "encoder tokens see only those to their left")
    vocab_size: int = config_field(VOCAB_SIZE, "token ids (the byte tokenizer's)")

    def __post_init__(self) -> None:
        check_types(self)
        positive(self, "d_model", "n_heads", "n_enc_layers", "n_dec_layers", "d_ff")
        positive(self, "max_positions", "vocab_size", "rope_stride")
        check(self.d_model % self.n_heads == 0, "d_model", "must be divisible by n_heads")
        # sinusoidal positions give half the features to the start offset and half to the end
        # offset, each half split into sines and cosines
        check(self.d_model % 4 == 0, "d_model", "must be a multiple of 4")
        check(self.position_scheme != "rope" or self.head_size % 2 == 0,
              "n_heads", "rope needs an even head size (d_model / n_heads)")
        check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        check(self.position_scheme in POSITION_SCHEMES, "position_scheme",
              f"must be one of {POSITION_SCHEMES}, got {self.position_scheme!r}")
        check(self.attention_impl in ATTENTION_IMPLS, "attention_impl",
              f"must be one of {ATTENTION_IMPLS}, got {self.attention_impl!r}")
        check(self.max_positions >= 3, "max_positions", "must be >= 3")
        at_most(self, **MODEL_LIMITS)
        n = self.num_parameters()
        check(n <= MAX_PARAMETERS, "model",
              f"{n:,} parameters, at most {MAX_PARAMETERS:,} (fewer layers, a smaller d_model "
              "or d_ff)")
        check(self.vocab_size == VOCAB_SIZE, "vocab_size",
              f"must be {VOCAB_SIZE} (the byte tokenizer's), got {self.vocab_size!r}")

    def num_parameters(self) -> int:
        """Parameters of the model these sizes describe, counted without building it (a test
        checks the count against the model's own)."""
        c, f, v = self.d_model, self.d_ff, self.vocab_size
        feed_forward = 2 * c * f + f + c
        attention = 4 * c * c + 4 * c  # fused q/k/v projection and the output projection
        encoder_layer = attention + feed_forward + 2 * 2 * c  # 2 norms
        decoder_layer = 2 * attention + feed_forward + 3 * 2 * c  # 3 norms
        embeddings = (v + MAX_CHAR_BYTES) * c  # bytes, and the offset inside a character
        return (embeddings + self.n_enc_layers * encoder_layer + self.n_dec_layers * decoder_layer
                + 2 * 2 * c + c * v + v)  # the final norms and the output layer

    @property
    def head_size(self) -> int:
        """Features per attention head: ``d_model / n_heads``."""
        return self.d_model // self.n_heads

    @property
    def max_input_bytes(self) -> int:
        """Longest input, in bytes (one token each), that the model supports: BOS and EOS take
        the other 2 positions."""
        return self.max_positions - 2

    @property
    def max_new_tokens(self) -> int:
        """Most tokens a decoder can generate after BOS, EOS included: one per position left."""
        return self.max_positions - 1

    def check_positions(self, n_positions: int, what: str = "input") -> None:
        """Raise ``ValueError`` if a sequence of ``n_positions`` tokens may need more positions
        than the model has: the model's check on sequence length, in bytes of input (a
        sequence of ``n`` bytes takes ``n + 2`` tokens with BOS and EOS); ``what`` names the
        sequence in the message. Positions count characters, of which a sequence has at most as
        many as tokens, so the check in tokens is a safe bound that needs no decoding."""
        if n_positions > self.max_positions:
            raise ValueError(f"{what} too long: {n_positions - 2} bytes, this model supports at "
                             f"most {self.max_input_bytes}")
