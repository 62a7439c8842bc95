"""transformer_tiny: a from-scratch seq2seq Transformer for string tasks (reversing by default).

    import transformer_tiny
    model = transformer_tiny.load("runs/quickstart")
    model.predict(["Hello_2025"])  # ['5202_olleH']
"""

from .api import Answer, Limits, TinyModel, load, train
from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from .model import Seq2SeqTransformer
from .tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE, ByteTokenizer

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "VOCAB_SIZE",
    "Answer",
    "ByteTokenizer",
    "ConfigError",
    "DataConfig",
    "Limits",
    "ModelConfig",
    "RunConfig",
    "Seq2SeqTransformer",
    "TinyModel",
    "TrainConfig",
    "load",
    "train",
]
__version__ = "0.1.0"
