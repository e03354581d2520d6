"""Which clips of a split a site uses: keywords, unknown and silence, partitions, hold-outs.

As TensorFlow's tutorial (``input_data.py``), each split holds its keyword files, plus
``speech-unknown-percentage`` % (of the keyword count) files of other words drawn with the
seed, plus ``speech-silence-percentage`` % silence clips cut from the background noise. Labels are
``_silence_`` = 0, ``_unknown_`` = 1, then the keywords in the order given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tasks.errors import ConfigError
from tasks.partition import iid_partition
from tasks.shared import Site, partition_rows
from tasks.speech.folder import SPLITS, speaker_of


@dataclass(frozen=True)
class ClipIndex:
    """Clips of one split: relative paths (``None`` = silence) and int64 labels."""

    paths: tuple[str | None, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, rows: np.ndarray) -> ClipIndex:
        """The clips at ``rows``."""
        return ClipIndex(tuple(self.paths[i] for i in rows), self.labels[rows])

    def with_silence(self, percentage: float) -> ClipIndex:
        """Append ``ceil(keywords * percentage / 100)`` silence clips (label 0)."""
        count = math.ceil(int((self.labels >= 2).sum()) * percentage / 100)
        return ClipIndex(self.paths + (None,) * count,
                         np.concatenate([self.labels, np.zeros(count, dtype=np.int64)]))

    @property
    def num_files(self) -> int:
        """Clips read from files (silence clips come last)."""
        return sum(path is not None for path in self.paths)


def select_clips(files: list[str], words: tuple[str, ...], unknown_percentage: float,
                 seed: int, split: str) -> ClipIndex:
    """Keyword files plus a seeded draw of other words' files labelled unknown (no silence)."""
    label = {word: i + 2 for i, word in enumerate(words)}
    known = [f for f in files if f.split("/")[0].lower() in label]
    others = [f for f in files if f.split("/")[0].lower() not in label]
    count = min(len(others), math.ceil(len(known) * unknown_percentage / 100))
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    unknown = [others[i] for i in np.sort(rng.permutation(len(others))[:count])]
    labels = [label[f.split("/")[0].lower()] for f in known] + [1] * len(unknown)
    return ClipIndex(tuple(known + unknown), np.asarray(labels, dtype=np.int64))


def site_rows(index: ClipIndex, site: Site) -> np.ndarray:
    """This site's rows of ``index``: ``iid`` deals speakers out, ``dirichlet`` skews labels.

    ``iid`` splits the speakers (not the files) at random, so a speaker's clips are all at one
    site, as they would be at separate data centers. ``dirichlet`` shares each class over the
    sites in Dirichlet(alpha) proportions (a speaker may then be at several sites).
    """
    partition = site.partition
    if partition is None or site.partitioning != "iid":
        return partition_rows(index.labels, site)
    speakers = [speaker_of(path) for path in index.paths if path is not None]
    names = sorted(set(speakers))
    if partition[1] > len(names):
        raise ConfigError(
            f"num-partitions={partition[1]} exceeds the {len(names)} training speakers, and "
            "partitioning='iid' gives each site whole speakers; use fewer sites, more data "
            "(max-samples=0) or partitioning='dirichlet'."
        )
    mine = {names[i] for i in iid_partition(len(names), partition[1], site.seed)[partition[0]]}
    return np.asarray([i for i, s in enumerate(speakers) if s in mine], dtype=np.int64)


def speaker_hold_out(index: ClipIndex, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (rest, hold-out): a seeded ``fraction`` of the speakers (at least one), whole.

    A validation set of speakers the model never trained on, as the list files give.
    """
    speakers = [speaker_of(path) if path is not None else "" for path in index.paths]
    names = sorted(set(speakers) - {""})
    count = max(1, round(fraction * len(names)))
    held = {names[i] for i in np.random.default_rng(seed).permutation(len(names))[:count]}
    is_held = np.asarray([s in held for s in speakers], dtype=bool)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)
