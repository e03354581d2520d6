"""One site's AudioSet clips: which packed rows it trains, validates and tests on.

Simulation: every site reads the same ``data-dir``, keeps its partition of the training rows
(``iid``, or ``dirichlet`` over each clip's first positive class) and validates on its IID
shard of ``eval.h5``. A deployment site (no partition) uses all of its own files; without
``eval.h5`` it validates on a seeded ``HOLD_OUT_FRACTION`` of its training rows. The rows are
read lazily (``tasks.audioset.hdf5.PackedRows``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.audioset.config import TRAIN_FILES, check_train_set
from tasks.audioset.hdf5 import EVAL_FILE, PackedRows, RowSet, eval_available, require_files
from tasks.shared import Site, SiteDataModule, capped_splits, partition_rows, validation_rows

DEFAULT_DATA_DIR = "/usr/share/datasets/audioset/packed_features"


class AudioSetDataModule(SiteDataModule):
    """One site's AudioSet clips (a simulation partition or its own files), read lazily.

    Parameters
    ----------
    site : Site
        Where the packed files are (``tasks.audioset.hdf5``) and how they are sampled.
    train_set : {'bal_train', 'unbal_train', 'both'}
        Which training files are used (default: ``'bal_train'``).
    """

    def __init__(self, site: Site, train_set: str = "bal_train") -> None:
        super().__init__(site)
        check_train_set(train_set)
        self.train_split = train_set
        self.train_set: PackedRows | None = None
        self.val_set: PackedRows | None = None
        self.test_set: PackedRows | None = None

    def setup(self, stage: str) -> None:
        """Check the files and choose this site's rows once; no clip is read here."""
        if stage in ("fit", "validate") and self.train_set is None:
            train, test = self._splits(need_train=True)
            assert train is not None  # loaded when need_train
            if self.test_set is None:
                self.test_set = PackedRows(test)
            labels = (train.first_labels() if self.partitioning == "dirichlet"
                      else np.zeros(len(train), dtype=np.int64))
            self.train_set = PackedRows(train.take(partition_rows(labels, self.site)))
            self.val_set = PackedRows(test.take(validation_rows(len(test), self.site)))
        elif stage in ("test", "predict") and self.test_set is None:
            self.test_set = PackedRows(self._splits(need_train=False)[1])

    def _splits(self, need_train: bool) -> tuple[RowSet | None, RowSet]:
        """(train, test) after the ``max-samples`` cap; test = hold-out if no eval.h5."""
        return capped_splits(self.site, eval_available(self.data_dir), need_train,
                             self._read, RowSet.take, len)

    def _read(self, split: str) -> RowSet:
        if split == "test":
            return RowSet.whole([Path(self.data_dir) / EVAL_FILE])
        return RowSet.whole(require_files(self.data_dir, TRAIN_FILES[self.train_split],
                                          f"audioset-train='{self.train_split}'"))
