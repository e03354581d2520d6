"""Generated AudioSet look-alikes in the real packed layout, for tests and quick runs.

``write_synthetic(data_dir)`` writes ``bal_train.h5`` and ``eval.h5`` (optionally
``unbal_train.h5``) exactly as ``tasks.audioset.hdf5`` reads them. The label space is AudioSet's
527 classes, but only ``num_signal`` of them ever occur; each occurring class has its own fixed
direction in the 128-d embedding space, added to a few random seconds of every clip it labels
(a weak label: the clip is tagged, the seconds are not). Everything else is Gaussian noise.
A model can therefore learn the tags, and a random scorer's mAP is about the mean positive
rate of the occurring classes (``label_prior``). These files are not AudioSet: figures
measured on them say the code runs and learns, nothing about the real data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from tasks.audioset.hdf5 import EMBEDDING_DIM, EVAL_FILE, NUM_CLASSES, TIME_STEPS

SIGNAL_SEED = 1234  # the class directions: the same in every generated file
NOISE_STD = 0.25  # of the de-quantised embedding, i.e. 32 quantisation steps
SIGNAL_STRENGTH = 0.25  # per-dimension std of a class direction, in de-quantised units
SIGNAL_SECONDS = 3  # seconds of a clip that carry each of its classes
POSITIVE_RATE = 0.2  # chance that a clip has a given occurring class (>= 1 per clip)


def write_packed(path: str | Path, x: np.ndarray, y: np.ndarray,
                 video_ids: Sequence[str] | None = None) -> Path:
    """Write ``x`` / ``y`` / ``video_id_list`` as one packed file (no checks: tests write
    malformed files with it too).

    Parameters
    ----------
    path : str | Path
        The ``.h5`` file to write (its folder is created).
    x : np.ndarray
        Embeddings, normally ``N x 10 x 128`` uint8.
    y : np.ndarray
        Labels, normally ``N x 527`` bool.
    video_ids : Sequence[str] | None
        YouTube ids (default: ``'synth000000'``, ... like the real 11-character ids).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = video_ids if video_ids is not None else [f"synth{i:06d}" for i in range(len(x))]
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=x)
        handle.create_dataset("y", data=y)
        handle.create_dataset("video_id_list", data=np.array(ids, dtype="S"))
    return path


def signal_classes(num_signal: int) -> np.ndarray:
    """The classes that occur: ``num_signal`` spread evenly over 0 .. 526."""
    return np.linspace(0, NUM_CLASSES - 1, num_signal).round().astype(np.int64)


def synthetic_clips(num_clips: int, num_signal: int, seed: int,
                    strength: float = SIGNAL_STRENGTH) -> tuple[np.ndarray, np.ndarray]:
    """``num_clips`` clips: uint8 ``[N, 10, 128]`` and bool ``[N, 527]``.

    Each occurring class labels a clip with probability ``POSITIVE_RATE`` (a clip with none
    gets one at random); its direction (per-dimension std ``strength``) is added to
    ``SIGNAL_SECONDS`` random seconds.
    """
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(SIGNAL_SEED).normal(
        0.0, strength, (num_signal, EMBEDDING_DIM))
    present = rng.random((num_clips, num_signal)) < POSITIVE_RATE
    empty = np.flatnonzero(~present.any(axis=1))
    present[empty, rng.integers(0, num_signal, len(empty))] = True
    x = rng.normal(0.0, NOISE_STD, (num_clips, TIME_STEPS, EMBEDDING_DIM))
    for clip, k in zip(*np.nonzero(present), strict=True):
        seconds = rng.choice(TIME_STEPS, SIGNAL_SECONDS, replace=False)
        x[clip, seconds] += directions[k]
    y = np.zeros((num_clips, NUM_CLASSES), dtype=bool)
    y[:, signal_classes(num_signal)] = present
    quantised = np.clip(np.round(x * 128.0 + 128.0), 0, 255).astype(np.uint8)
    return quantised, y


def label_prior(y: np.ndarray) -> float:
    """Mean positive rate over the classes with positives: a random scorer's expected mAP."""
    rates = y.mean(axis=0)
    return float(rates[rates > 0].mean())


def write_synthetic(data_dir: str | Path, num_train: int = 2000, num_eval: int = 500,
                    num_unbal: int = 0, num_signal: int = 8, seed: int = 0,
                    strength: float = SIGNAL_STRENGTH) -> Path:
    """Write generated ``bal_train.h5``, ``eval.h5`` (and ``unbal_train.h5``) to ``data_dir``.

    Parameters
    ----------
    data_dir : str | Path
        Output folder (created).
    num_train, num_eval, num_unbal : int
        Clips in ``bal_train.h5`` / ``eval.h5`` / ``unbal_train.h5``; ``num_eval=0`` or
        ``num_unbal=0`` leaves that file out (default: 2000, 500, 0).
    num_signal : int
        Number of classes that occur (default: 8).
    seed : int
        Seed of the clips (each file gets its own stream) (default: 0).
    strength : float
        Per-dimension std of the class directions; smaller is harder (default: 0.25, learnt
        in a few hundred steps; 0.06 leaves the heads visibly apart after 3 short rounds).

    Returns
    -------
    Path
        ``data_dir``.
    """
    data_dir = Path(data_dir)
    files = (("bal_train.h5", num_train), (EVAL_FILE, num_eval), ("unbal_train.h5", num_unbal))
    for offset, (name, count) in enumerate(files):
        if count > 0:
            write_packed(data_dir / name,
                         *synthetic_clips(count, num_signal, seed + offset, strength))
    return data_dir
