"""Tests of the toxic task's tokenizers: ByT5 bytes, word hashing, saved tokenizers, the cache."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
import torch
from transformers import ByT5Tokenizer

from tasks.errors import ConfigError
from tasks.toxic.text import WordHashEncoder, build_encoder, encode_cached, load_tokenizer_dir


def test_byt5_ids_are_utf8_bytes_plus_three_then_eos_then_padding() -> None:
    # Prepare
    encoder = build_encoder("byt5")

    # Execute
    ids = encoder.encode(["hé", "abcdef"], seq_len=5)

    # Assert: h=104, é=0xC3 0xA9; EOS=1, pad=0; truncation keeps room for EOS
    assert ids.dtype == torch.int32 and encoder.pad_id == 0 and encoder.vocab_size == 384
    assert ids.tolist() == [[107, 198, 172, 1, 0], [100, 101, 102, 103, 1]]


def test_cutting_text_before_tokenizing_changes_no_id() -> None:
    # Prepare: multi-byte characters near the cut
    text = "ça ü 🙂 " * 40
    full = ByT5Tokenizer()([text], truncation=True, max_length=32, padding="max_length")

    # Execute
    ids = build_encoder("byt5").encode([text], seq_len=32)

    # Assert
    assert ids.tolist() == full["input_ids"]


def test_word_hash_is_crc32_of_lowercase_words() -> None:
    # Prepare
    encoder = WordHashEncoder(buckets=100)
    expected = [1 + zlib.crc32(word.encode()) % 99 for word in ("you", "are", "great")]

    # Execute
    ids = encoder.encode(["You ARE, great!", ""], seq_len=4)

    # Assert
    assert ids.tolist() == [[*expected, 0], [0, 0, 0, 0]]


def test_tokenizer_dir_loads_a_saved_tokenizer(tmp_path: Path) -> None:
    # Prepare
    ByT5Tokenizer().save_pretrained(tmp_path)

    # Execute
    encoder = build_encoder("pretrained", str(tmp_path))

    # Assert
    assert encoder.encode(["ok"], 4).tolist() == [[114, 110, 1, 0]]


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_bad_tokenizer_dir_is_a_config_error(tmp_path: Path, kind: str) -> None:
    # Prepare
    directory = tmp_path / kind
    if kind == "empty":
        directory.mkdir()
    match = "is not a directory" if kind == "missing" else "holds no loadable tokenizer"

    # Execute / Assert
    with pytest.raises(ConfigError, match=rf"tokenizer-dir='{directory}' {match}"):
        load_tokenizer_dir(str(directory))


def test_tokenized_rows_are_reused_in_later_rounds() -> None:
    # Prepare: an encoder that counts its calls
    class Counting(WordHashEncoder):
        calls = 0

        def encode(self, texts, seq_len):
            Counting.calls += 1
            return super().encode(texts, seq_len)

    encoder = Counting(50)
    texts = ["you are kind", "what a fool"]

    # Execute: the same rows twice (two rounds), then changed text
    first = encode_cached(encoder, texts, 4)
    again = encode_cached(encoder, list(texts), 4)
    changed = encode_cached(encoder, ["you are kind", "what a FOOL!"], 4)

    # Assert: one tokenization for the repeat; changed text is tokenized anew
    assert Counting.calls == 2 and again is first
    assert torch.equal(changed, first)  # lowercased words hash alike
