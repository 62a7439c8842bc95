"""Byte-level tokenizer with three special ids.

Ids ``0..255`` are the bytes of the UTF-8 encoding of a string. Three special ids follow:

====  =====  ==========================================
id    name   meaning
====  =====  ==========================================
256   PAD    padding; never attended to, never predicted
257   BOS    begin of sequence (decoder start, source start)
258   EOS    end of sequence
====  =====  ==========================================

The vocabulary therefore has 259 entries. Any Python string round-trips through
``encode``/``decode`` (lone surrogates are carried with ``surrogatepass``), and ``decode`` never
raises: bytes that are not valid UTF-8 become U+FFFD replacement characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

PAD_ID = 256
BOS_ID = 257
EOS_ID = 258
VOCAB_SIZE = 259
SPECIAL_IDS = {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID}
MAX_CHAR_BYTES = 4  # UTF-8 encodes a code point in 1 to 4 bytes


class ByteTokenizer:
    """Maps strings to UTF-8 byte ids and back; see the module docstring for the id table."""

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    vocab_size = VOCAB_SIZE

    def encode(self, text: str) -> list[int]:
        """Return the UTF-8 bytes of ``text`` as ids (no special ids added)."""
        return list(text.encode("utf-8", errors="surrogatepass"))

    def to_bytes(self, ids: Iterable[int]) -> bytes:
        """Byte ids up to the first EOS, with PAD and BOS skipped."""
        out = bytearray()
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if 0 <= i < 256:
                out.append(i)
        return bytes(out)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` up to the first EOS; PAD/BOS skipped, invalid UTF-8 replaced."""
        data = self.to_bytes(ids)
        try:
            return data.decode("utf-8", errors="surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", errors="replace")

    def is_valid_utf8(self, ids: Iterable[int]) -> bool:
        """True when the bytes before EOS form valid UTF-8."""
        try:
            self.to_bytes(ids).decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    def pad_batch(
        self, seqs: Sequence[Sequence[int]], bos: bool = False, eos: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad id lists into a ``(B, T)`` long tensor; returns ``(ids, lengths)``.

        ``bos``/``eos`` wrap each sequence first; ``lengths`` count the wrapped tokens.
        """
        wrapped = [[BOS_ID] * bos + list(s) + [EOS_ID] * eos for s in seqs]
        lengths = torch.tensor([len(s) for s in wrapped], dtype=torch.long)
        width = max(1, int(lengths.max())) if wrapped else 1
        ids = torch.full((len(wrapped), width), PAD_ID, dtype=torch.long)
        for row, s in enumerate(wrapped):
            ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        return ids, lengths

    def encode_batch(
        self, texts: Sequence[str], bos: bool = False, eos: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode and right-pad ``texts``; returns ``(ids (B, T), lengths (B,))``."""
        return self.pad_batch([self.encode(t) for t in texts], bos=bos, eos=eos)
