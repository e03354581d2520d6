"""The ``toxic`` task's own run-config keys: the tokenizer and the comment length."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.errors import ConfigError
from tasks.toxic.text import TOKENIZERS


@dataclass(frozen=True)
class ToxicConfig:
    """The ``toxic`` task's run-config keys (kebab-case on the wire, defaults in pyproject)."""

    tokenizer: str = "byt5"  # byt5 (bytes) | word-hash (crc32 of words) | pretrained (dir)
    tokenizer_dir: str = ""  # tokenizer.save_pretrained() directory, for tokenizer='pretrained'
    seq_len: int = 256  # tokens per comment (truncated or padded)
    hash_buckets: int = 20000  # word-hash vocabulary size, id 0 = padding

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is out of range."""
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer={self.tokenizer!r} is not known; use one of: "
                              f"{', '.join(TOKENIZERS)}.")
        if self.tokenizer == "pretrained" and not self.tokenizer_dir:
            raise ConfigError("tokenizer='pretrained' needs tokenizer-dir: a local directory "
                              "written by tokenizer.save_pretrained(...).")
        if self.tokenizer_dir and self.tokenizer != "pretrained":
            raise ConfigError(f"tokenizer-dir={self.tokenizer_dir!r} is set but tokenizer="
                              f"{self.tokenizer!r}; set tokenizer='pretrained' to use it, or "
                              "tokenizer-dir='' to keep the built-in tokenizer.")
        if self.seq_len < 2:
            raise ConfigError(f"seq-len={self.seq_len}: must be >= 2 tokens per comment.")
        if self.hash_buckets < 2:
            raise ConfigError(f"hash-buckets={self.hash_buckets}: must be >= 2 "
                              "(id 0 is padding).")
