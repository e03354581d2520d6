"""One site's toxic comments (a simulation partition or its own CSV files), tokenized once.

Data per site, as in the ``image`` task:

- simulation (node config ``partition-id`` / ``num-partitions``, no ``data-dir``): every site
  reads the run config's ``data-dir``, keeps its partition of ``train.csv`` (``iid``, or
  ``dirichlet`` over each row's representative class: its first positive label, else
  ``clean``) and validates on its IID shard of the scored test rows;
- deployment (node config ``data-dir``): the site uses all of its own files; without
  ``test.csv`` + ``test_labels.csv`` it validates on a seeded 10% hold-out of ``train.csv``;
- the server evaluates on every scored test row.

Only the rows a site uses are tokenized, once per split in ``setup``; the ids are kept per
process (``encode_cached``), so later rounds at the same site do not tokenize them again.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from tasks.common import (
    HOLD_OUT_FRACTION,
    SiteDataModule,
    cap_indices,
    hold_out_indices,
    partition_rows,
    validation_rows,
)
from tasks.toxic_csv import LABELS, Comments, has_test_split, read_test, read_train
from tasks.toxic_text import TextEncoder, encode_cached

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
    data_dir : str
        Directory with ``train.csv`` and optionally ``test.csv`` + ``test_labels.csv``.
    encoder : TextEncoder
        Turns comment texts into ids (``tasks.toxic_text.build_encoder``).
    seq_len : int
        Tokens per comment after truncation or padding.
    batch_size, partition_id, num_partitions, partitioning, dirichlet_alpha, seed, max_samples
        As in ``tasks.common.SiteDataModule`` (the arguments every site has); so is
        ``num_workers``.
    """

    def __init__(
        self,
        data_dir: str,
        batch_size: int,
        encoder: TextEncoder,
        seq_len: int,
        partition_id: int | None = None,
        num_partitions: int | None = None,
        partitioning: str = "iid",
        dirichlet_alpha: float = 0.5,
        seed: int = 0,
        max_samples: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, partition_id, num_partitions, partitioning, dirichlet_alpha,
                         seed, max_samples, num_workers)
        self.data_dir = data_dir
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
                rows = partition_rows(representative_class(train.labels), self.partition,
                                      self.partitioning, self.dirichlet_alpha, self.seed)
                self.train_set = self._encode(train.take(rows))
            if self.val_set is None:
                self.val_set = self._encode(
                    test.take(validation_rows(len(test), self.partition, self.seed)))
        elif stage in ("test", "predict") and self.test_set is None:
            self.test_set = self._encode(self._raw_splits(need_train=False)[1])

    def _raw_splits(self, need_train: bool) -> tuple[Comments | None, Comments]:
        """(train, test) after the ``max-samples`` cap; test = hold-out if no test files."""
        has_test = has_test_split(self.data_dir)
        train = None
        if need_train or not has_test:
            train = self._cap(read_train(self.data_dir))
        if has_test:
            return train, self._cap(read_test(self.data_dir))
        assert train is not None  # read above when there are no test files
        rest, held = hold_out_indices(len(train), HOLD_OUT_FRACTION, self.seed)
        return train.take(rest), train.take(held)

    def _cap(self, comments: Comments) -> Comments:
        return comments.take(cap_indices(len(comments), self.max_samples, self.seed))

    def _encode(self, comments: Comments) -> TensorDataset:
        ids = encode_cached(self.encoder, comments.texts, self.seq_len)
        return TensorDataset(ids, torch.from_numpy(comments.labels.astype(np.float32)))



