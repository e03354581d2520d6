"""One site's toxic comments (a simulation partition or its own CSV files), tokenized once.

Data per site, as in the ``image`` task:

- simulation (``Site.partition`` = ``(partition-id, num-partitions)``): every site reads the
  same ``data-dir``, keeps its partition of ``train.csv`` (``iid``, or ``dirichlet`` over each
  row's representative class: its first positive label, else ``clean``) and validates on its
  IID shard of the scored test rows;
- deployment (``Site.partition`` is ``None``): the site uses all of its own files; without
  ``test.csv`` + ``test_labels.csv`` it validates on a seeded 10% hold-out of ``train.csv``;
- the server evaluates on every scored test row.

Only the rows a site uses are tokenized, once per split in ``setup``; the ids are kept per
process (``encode_cached``), so later rounds at the same site do not tokenize them again.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from tasks.shared import Site, SiteDataModule, capped_splits, partition_rows, validation_rows
from tasks.toxic.jigsaw import LABELS, Comments, has_test_split, read_test, read_train
from tasks.toxic.text import TextEncoder, encode_cached

CLEAN = len(LABELS)  # representative class of a row with no positive label


def representative_class(labels: np.ndarray) -> np.ndarray:
    """One class per row for ``dirichlet`` skew: the first positive label, else ``CLEAN``.

    Parameters
    ----------
    labels : np.ndarray
        0/1 ``[N, 6]``, columns in ``LABELS`` order.
    """
    positive = labels.astype(bool)
    return np.where(positive.any(axis=1), positive.argmax(axis=1), CLEAN)


class ToxicDataModule(SiteDataModule):
    """Token ids ``[N, seq_len]`` (int32) and float 0/1 labels ``[N, 6]`` of one site.

    Parameters
    ----------
    site : Site
        Where the site's data is (``train.csv`` and optionally ``test.csv`` +
        ``test_labels.csv``) and how it is sampled (``tasks.shared.Site``).
    encoder : TextEncoder
        Turns comment texts into ids (``tasks.toxic.text.build_encoder``).
    seq_len : int
        Tokens per comment after truncation or padding.
    """

    def __init__(self, site: Site, encoder: TextEncoder, seq_len: int) -> None:
        super().__init__(site)
        self.encoder = encoder
        self.seq_len = seq_len
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    def setup(self, stage: str) -> None:
        """Read, cap, split and tokenize once; later calls reuse the tensors.

        ``validate`` tokenizes the validation rows only (a site's evaluate round).
        """
        fit = stage == "fit" and self.train_set is None
        if fit or (stage == "validate" and self.val_set is None):
            train, test = self._raw_splits(need_train=fit)
            if fit:
                assert train is not None  # need_train=True always reads it
                rows = partition_rows(representative_class(train.labels), self.site)
                self.train_set = self._encode(train.take(rows))
            if self.val_set is None:
                self.val_set = self._encode(
                    test.take(validation_rows(len(test), self.site)))
        elif stage in ("test", "predict") and self.test_set is None:
            self.test_set = self._encode(self._raw_splits(need_train=False)[1])

    def _raw_splits(self, need_train: bool) -> tuple[Comments | None, Comments]:
        """(train, test) after the ``max-samples`` cap; test = hold-out if no test files."""

        def read(split: str) -> Comments:
            return read_train(self.data_dir) if split == "train" else read_test(self.data_dir)

        return capped_splits(self.site, has_test_split(self.data_dir), need_train, read,
                             Comments.take, len)

    def _encode(self, comments: Comments) -> TensorDataset:
        ids = encode_cached(self.encoder, comments.texts, self.seq_len)
        return TensorDataset(ids, torch.from_numpy(comments.labels.astype(np.float32)))
