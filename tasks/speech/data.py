"""``SpeechDataModule``: one site's Speech Commands clips, decoded once per process.

A simulated site keeps its partition of the training split (``iid``: speakers dealt out at
random; ``dirichlet``: class skew) and its IID shard of the validation split; a site without a
partition (a deployment site, or the server) keeps all of its files. The server evaluates on
the whole testing split. So ``federated-accuracy`` is the validation-list accuracy and
``central-accuracy`` the testing-list accuracy: Table 5's two columns.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from tasks.errors import DataError
from tasks.shared import HOLD_OUT_FRACTION, Site, SiteDataModule, cap_indices, validation_rows
from tasks.speech.clips import Augmentation, ClipDataset
from tasks.speech.config import SpeechConfig
from tasks.speech.folder import (
    LIST_FILES,
    SPLITS,
    load_background,
    load_clips,
    missing_message,
    scan,
    split_files,
)
from tasks.speech.index import ClipIndex, select_clips, site_rows, speaker_hold_out

LOG = logging.getLogger(__name__)


class SpeechDataModule(SiteDataModule):
    """Speech Commands of one site (a simulation partition or its own files), decoded once.

    A simulated site keeps its partition (``site_rows``) of the training split and its IID
    shard of the validation split; a site without a partition keeps all of its files. With no
    validation clips, a seeded 10 % of the training clips is held out instead. ``test`` is the
    whole testing split. Each split gets its silence share after partitioning.

    Parameters
    ----------
    site : Site
        The site: ``data_dir`` is the Speech Commands folder (``~`` is expanded); ``iid``
        partitioning deals speakers out, ``dirichlet`` skews classes; ``seed`` seeds the
        unknown draw, cap, partitions and evaluation silence; ``max_samples`` caps each
        split's keyword + unknown clips, before partitioning.
    speech : SpeechConfig
        The task's keys (default: ``SpeechConfig()``).
    """

    def __init__(self, site: Site, speech: SpeechConfig | None = None) -> None:
        super().__init__(site)
        self.root = Path(site.data_dir).expanduser()
        self.speech = speech or SpeechConfig()
        self._files: dict[str, list[str]] | None = None
        self.train_set: ClipDataset | None = None
        self.val_set: ClipDataset | None = None
        self.test_set: ClipDataset | None = None

    def setup(self, stage: str) -> None:
        """Index, partition and decode once; later calls reuse the tensors."""
        if stage == "fit" and self.train_set is None:
            train, val = self._site_splits()
            self.train_set = self._dataset(train, "training", self.speech.augmentation())
            if self.val_set is None:
                self.val_set = self._dataset(val, "validation", None)
        elif stage == "validate" and self.val_set is None:
            self.val_set = self._dataset(self._site_splits()[1], "validation", None)
        elif stage in ("test", "predict") and self.test_set is None:
            test = self.split("testing")
            if len(test) == 0:
                raise DataError(f"no testing clips in {self.root}: {LIST_FILES['testing']} lists "
                                "none of its files; restore it from the archive.")
            self.test_set = self._dataset(test.with_silence(self.speech.speech_silence_percentage),
                                          "testing", None)

    def split(self, name: str) -> ClipIndex:
        """Keyword and unknown clips of split ``name`` after the ``max-samples`` cap."""
        if self._files is None:
            self._files = split_files(self.root, scan(self.root))
        words = self.speech.words
        index = select_clips(self._files[name], words, self.speech.speech_unknown_percentage,
                             self.seed, name)
        if name == "training" and not (index.labels >= 2).any():
            raise DataError(f"no training clips of the keywords ({', '.join(words)}) in "
                            f"{self.root}; check speech-words and data-dir. "
                            f"{missing_message(self.root)}")
        return index.take(cap_indices(len(index), self.max_samples, self.seed))

    def _site_splits(self) -> tuple[ClipIndex, ClipIndex]:
        train, val = self.split("training"), self.split("validation")
        if len(val) == 0:
            LOG.warning("[colearn] no validation clips in %s: holding out %d%% of the training "
                        "speakers instead", self.root, round(100 * HOLD_OUT_FRACTION))
            rest, held = speaker_hold_out(train, HOLD_OUT_FRACTION, self.seed)
            train, val = train.take(rest), train.take(held)
        train = train.take(site_rows(train, self.site))
        val = val.take(validation_rows(len(val), self.site))
        share = self.speech.speech_silence_percentage
        return train.with_silence(share), val.with_silence(share)

    def _dataset(self, index: ClipIndex, split: str, augmentation: Augmentation | None
                 ) -> ClipDataset:
        files = tuple(path for path in index.paths if path is not None)
        root, rate = str(self.root), self.speech.speech_sample_rate
        samples = self.speech.clip_samples
        salt = 31 * SPLITS.index(split) + (self.partition[0] if self.partition else 0)
        return ClipDataset(load_clips(root, files, rate, samples), torch.from_numpy(index.labels),
                           load_background(root, rate, samples), augmentation,
                           seed=self.seed * 7919 + salt)
