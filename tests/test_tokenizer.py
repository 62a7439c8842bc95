"""ByteTokenizer: special ids, lossless round trip, robust decoding, batching."""

from __future__ import annotations

import pytest
import torch
from helpers import TOK
from hypothesis import given
from hypothesis import strategies as st

from transformer_tiny import tokenizer as tk
from transformer_tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE

# Every code point, lone surrogates (category Cs) included; st.text() alone leaves them out.
any_char = st.characters(codec=None, exclude_categories=())
any_text = st.text(alphabet=any_char)


def test_special_ids():
    assert (PAD_ID, BOS_ID, EOS_ID, VOCAB_SIZE) == (256, 257, 258, 259)
    assert (TOK.pad_id, TOK.bos_id, TOK.eos_id, TOK.vocab_size) == (256, 257, 258, 259)
    assert tk.SPECIAL_IDS == {"pad": 256, "bos": 257, "eos": 258}


@given(any_text)
def test_round_trip_any_code_points(text):
    ids = TOK.encode(text)
    assert all(0 <= i < 256 for i in ids)
    assert TOK.decode(ids) == text


@pytest.mark.parametrize("text", [
    "", "abc", "héllo", "日本語", "😀👍🏽", "\U0010ffff", "\x00nul", "\ud800", "a\udfffb",
    "\ud83d\ude00",  # a surrogate pair spelled as two code points stays two code points
])
def test_round_trip_examples(text):
    assert TOK.decode(TOK.encode(text)) == text


def test_encode_is_utf8():
    assert TOK.encode("aé😀") == list("aé😀".encode())
    assert TOK.encode("") == []


def test_decode_stops_at_eos_and_skips_pad_bos():
    ids = [BOS_ID, *b"ab", PAD_ID, *b"c", EOS_ID, *b"zz", EOS_ID, PAD_ID]
    assert TOK.decode(ids) == "abc"
    assert TOK.decode([EOS_ID, *b"abc"]) == ""
    assert TOK.decode([PAD_ID, BOS_ID, PAD_ID]) == ""
    assert TOK.decode(torch.tensor([BOS_ID, *b"hi", EOS_ID, *b"x"])) == "hi"  # tensors work too


@pytest.mark.parametrize("data, expected", [
    (b"\xff", "\ufffd"),
    (b"\x80", "\ufffd"),
    (b"a\xc3", "a\ufffd"),  # truncated 2-byte sequence
    (b"\xe6\x97", "\ufffd"),  # truncated 3-byte sequence
    (b"\xc0\xaf", "\ufffd\ufffd"),  # overlong encoding
    (b"ok\xf8ok", "ok\ufffdok"),
])
def test_decode_invalid_utf8_gives_replacement_char(data, expected):
    ids = list(data)
    assert not TOK.is_valid_utf8(ids)
    assert TOK.decode(ids) == expected


@given(st.lists(st.integers(0, VOCAB_SIZE - 1), max_size=40))
def test_decode_never_raises(ids):
    text = TOK.decode(ids)
    assert isinstance(text, str)
    data = TOK.to_bytes(ids)
    if TOK.is_valid_utf8(ids):
        assert text == data.decode("utf-8")
    else:  # either U+FFFD replacements or lone surrogates carried by surrogatepass
        assert "\ufffd" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_to_bytes():
    assert TOK.to_bytes([BOS_ID, 104, PAD_ID, 105, EOS_ID, 106]) == b"hi"


def test_is_valid_utf8():
    assert TOK.is_valid_utf8(TOK.encode("héllo 😀"))
    assert TOK.is_valid_utf8([])
    assert TOK.is_valid_utf8([*b"ab", EOS_ID, 0xFF])  # only the bytes before EOS count
    assert not TOK.is_valid_utf8([0xFF])
    assert not TOK.is_valid_utf8(list("é".encode())[:1])
    assert not TOK.is_valid_utf8(TOK.encode("\ud800"))  # lone surrogate: not strict UTF-8


def test_encode_batch_right_pads():
    ids, lengths = TOK.encode_batch(["ab", "", "héllo"])
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.shape == (3, 6)
    assert lengths.tolist() == [2, 0, 6]
    assert ids[0].tolist() == [97, 98] + [PAD_ID] * 4
    assert ids[1].tolist() == [PAD_ID] * 6
    assert ids[2].tolist() == list("héllo".encode())


def test_encode_batch_bos_eos():
    ids, lengths = TOK.encode_batch(["ab", "c"], bos=True, eos=True)
    assert lengths.tolist() == [4, 3]
    assert ids.tolist() == [[BOS_ID, 97, 98, EOS_ID], [BOS_ID, 99, EOS_ID, PAD_ID]]
    ids, lengths = TOK.encode_batch(["ab", "c"], bos=True)
    assert ids.tolist() == [[BOS_ID, 97, 98], [BOS_ID, 99, PAD_ID]]
    ids, lengths = TOK.encode_batch(["ab", "c"], eos=True)
    assert ids.tolist() == [[97, 98, EOS_ID], [99, EOS_ID, PAD_ID]]
    assert lengths.tolist() == [3, 2]


def test_pad_batch_edge_cases():
    ids, lengths = TOK.pad_batch([[], []])
    assert ids.shape == (2, 1) and (ids == PAD_ID).all() and lengths.tolist() == [0, 0]
    ids, lengths = TOK.pad_batch([])
    assert ids.shape == (0, 1) and lengths.numel() == 0  # a width of 1, as for empty rows


@given(st.lists(st.lists(st.integers(0, 255), max_size=12), min_size=1, max_size=6),
       st.booleans(), st.booleans())
def test_pad_batch_properties(seqs, bos, eos):
    ids, lengths = TOK.pad_batch(seqs, bos=bos, eos=eos)
    assert ids.shape == (len(seqs), max(1, max(len(s) for s in seqs) + bos + eos))
    for row, s, n in zip(ids.tolist(), seqs, lengths.tolist(), strict=True):
        wrapped = [BOS_ID] * bos + s + [EOS_ID] * eos
        assert n == len(wrapped)
        assert row[:n] == wrapped
        assert all(i == PAD_ID for i in row[n:])
        assert TOK.to_bytes(row) == bytes(s)


@pytest.mark.parametrize("seqs", [[], [[]], [[1, 2, 3], [4]]])
def test_pad_batch_lengths_are_long_integers_even_for_no_sequences(seqs):
    ids, lengths = TOK.pad_batch(seqs, bos=True)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert lengths.tolist() == [len(s) + 1 for s in seqs]
