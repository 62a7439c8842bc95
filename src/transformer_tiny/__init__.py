"""mini-transformer: a from-scratch seq2seq Transformer that learns to reverse strings."""

from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from .model import Seq2SeqTransformer
from .tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE, ByteTokenizer

__all__ = [
    "BOS_ID", "EOS_ID", "PAD_ID", "VOCAB_SIZE", "ByteTokenizer", "ConfigError", "DataConfig",
    "ModelConfig", "RunConfig", "Seq2SeqTransformer", "TrainConfig",
]
__version__ = "0.1.0"
