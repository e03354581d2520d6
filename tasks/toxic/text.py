"""Comment text -> fixed-length token ids, for the ``toxic`` task (``tokenizer`` key).

Three encoders, none of which downloads anything or builds a vocabulary from a site's text:

- ``byt5``: transformers' ``ByT5Tokenizer()``, byte-level (UTF-8 bytes + 3 special ids),
  constructible without files;
- ``pretrained``: any transformers tokenizer saved in a local directory (``tokenizer-dir``),
  loaded with ``AutoTokenizer.from_pretrained(dir, local_files_only=True)``;
- ``word-hash``: lowercase words hashed with ``zlib.crc32`` (stable across processes, unlike
  Python's salted ``hash``) into ``hash-buckets`` ids; id 0 is padding.

Every encoder pads on the right to ``seq-len`` with its ``pad_id``, so a model can recover each
sequence's length from ``ids != pad_id``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from tasks.errors import ConfigError

TokenizerName = Literal["byt5", "word-hash", "pretrained"]
TOKENIZERS: tuple[str, ...] = ("byt5", "word-hash", "pretrained")
# A pretrained tokenizer sees at most this many characters per requested token: enough for any
# sub-word vocabulary, and it keeps a 5,000-character comment from being tokenized in full.
CHARS_PER_TOKEN = 16
_CHUNK = 1024  # texts per tokenizer call
_WORD = re.compile(r"\w+")


class TextEncoder(Protocol):
    """Turns texts into a right-padded ``[N, seq_len]`` int32 id tensor."""

    vocab_size: int
    pad_id: int
    key: tuple  # identifies the tokenization (cache key)

    def encode(self, texts: Sequence[str], seq_len: int) -> torch.Tensor:
        """Ids ``[len(texts), seq_len]``, truncated or padded with ``pad_id`` on the right."""
        ...


class TransformersEncoder:
    """A transformers tokenizer, called once per chunk of texts (never per batch).

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerBase
        The tokenizer; one without a pad token pads with its EOS token.
    chars_per_token : int
        Texts are cut to ``chars_per_token * seq_len`` characters before tokenizing, which
        cannot change the first ``seq_len`` ids when no token is longer than that
        (1 for byte-level ByT5) (default: ``CHARS_PER_TOKEN``).
    """

    def __init__(self, tokenizer: Any, chars_per_token: int = CHARS_PER_TOKEN) -> None:
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise ConfigError("the tokenizer in tokenizer-dir has neither a pad nor an EOS "
                                  "token; save one with a pad token (tokenizer.pad_token=...).")
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        self.tokenizer = tokenizer
        self.chars_per_token = chars_per_token
        self.vocab_size = len(tokenizer)
        self.pad_id = int(tokenizer.pad_token_id)
        self.key = (type(tokenizer).__name__, str(tokenizer.name_or_path), self.vocab_size,
                    chars_per_token)

    def encode(self, texts: Sequence[str], seq_len: int) -> torch.Tensor:
        cap = self.chars_per_token * seq_len
        rows = [torch.zeros(0, seq_len, dtype=torch.int32)]
        for start in range(0, len(texts), _CHUNK):
            batch = [text[:cap] for text in texts[start:start + _CHUNK]]
            ids = self.tokenizer(batch, truncation=True, max_length=seq_len,
                                 padding="max_length", return_attention_mask=False)["input_ids"]
            rows.append(torch.tensor(ids, dtype=torch.int32))
        return torch.cat(rows)


class WordHashEncoder:
    """Lowercase ``\\w+`` words, each hashed into ``1 .. buckets - 1`` with ``zlib.crc32``.

    Parameters
    ----------
    buckets : int
        Vocabulary size including the padding id 0 (``hash-buckets``).
    """

    pad_id = 0

    def __init__(self, buckets: int) -> None:
        if buckets < 2:
            raise ConfigError(f"hash-buckets={buckets}: must be >= 2 (id 0 is padding).")
        self.vocab_size = buckets
        self.key = ("word-hash", buckets)

    def word_id(self, word: str) -> int:
        """The id of one (already lowercased) word."""
        return 1 + zlib.crc32(word.encode("utf-8")) % (self.vocab_size - 1)

    def encode(self, texts: Sequence[str], seq_len: int) -> torch.Tensor:
        ids = torch.zeros(len(texts), seq_len, dtype=torch.int32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())[:seq_len]
            if words:
                ids[row, :len(words)] = torch.tensor([self.word_id(w) for w in words],
                                                     dtype=torch.int32)
        return ids


_ENCODED: OrderedDict[tuple, torch.Tensor] = OrderedDict()
ENCODED_CACHE_SIZE = 8  # tokenized splits kept per process (e.g. 4 sites x train + val)


def encode_cached(encoder: TextEncoder, texts: Sequence[str], seq_len: int) -> torch.Tensor:
    """``encoder.encode(texts, seq_len)``, reused when the same texts come again.

    The client builds a fresh DataModule every round; without this, every round would
    tokenize the site's rows again (pure-Python ByT5: about 50 s for 40,000 comments). Keyed by
    the tokenization and a digest of the texts, so changed files are tokenized anew.
    """
    digest = hashlib.sha1("\x00".join(texts).encode("utf-8", "surrogatepass")).hexdigest()
    key = (encoder.key, seq_len, len(texts), digest)
    if key in _ENCODED:
        _ENCODED.move_to_end(key)
        return _ENCODED[key]
    ids = encoder.encode(texts, seq_len)
    _ENCODED[key] = ids
    while len(_ENCODED) > ENCODED_CACHE_SIZE:
        _ENCODED.popitem(last=False)
    return ids


@functools.lru_cache(maxsize=4)  # built for build_module and every round's data module
def build_encoder(tokenizer: str, tokenizer_dir: str = "", hash_buckets: int = 20000
                  ) -> TextEncoder:
    """The encoder the ``tokenizer`` / ``tokenizer-dir`` / ``hash-buckets`` keys describe.

    Raises
    ------
    ConfigError
        For an unknown ``tokenizer``, or a ``tokenizer-dir`` that is missing or holds no
        loadable tokenizer.
    """
    if tokenizer == "byt5":
        from transformers import ByT5Tokenizer

        return TransformersEncoder(ByT5Tokenizer(), chars_per_token=1)
    if tokenizer == "word-hash":
        return WordHashEncoder(hash_buckets)
    if tokenizer == "pretrained":
        return TransformersEncoder(load_tokenizer_dir(tokenizer_dir))
    raise ConfigError(f"tokenizer={tokenizer!r} is not known; use one of: "
                      f"{', '.join(TOKENIZERS)}.")


def load_tokenizer_dir(tokenizer_dir: str) -> Any:
    """``AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)``, errors named."""
    path = Path(tokenizer_dir).expanduser()
    fix = ("point tokenizer-dir at a directory written by tokenizer.save_pretrained(...) "
           "(tokenizer_config.json plus its vocabulary files), or use tokenizer='byt5'.")
    if not tokenizer_dir or not path.is_dir():
        raise ConfigError(f"tokenizer-dir={tokenizer_dir!r} is not a directory; {fix}")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"tokenizer-dir={tokenizer_dir!r} holds no loadable tokenizer "
                          f"({type(error).__name__}: {str(error).splitlines()[0]}); {fix}"
                          ) from error
