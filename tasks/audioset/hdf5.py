"""AudioSet embeddings in Kong et al.'s packed HDF5 form, read lazily by row.

Layout of ``data-dir`` (the ``packed_features`` folder of qiuqiangkong/audioset_classification):

- ``bal_train.h5``, ``unbal_train.h5``: training clips (which are used: ``audioset-train``,
  ``tasks.audioset.config.TRAIN_FILES``);
- ``eval.h5``: the evaluation clips (optional at a deployment site).

Each file holds ``x``: ``N x 10 x 128`` uint8 (one quantised 128-d embedding per second), ``y``:
``N x 527`` bool (multi-hot labels) and ``video_id_list`` (not used). Rows are never loaded
whole: a ``PackedRows`` data set keeps (file, row) indices and reads each batch's rows with one
sorted HDF5 selection per file, through a file handle opened in the process that reads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from tasks.errors import DataError

TIME_STEPS, EMBEDDING_DIM, NUM_CLASSES = 10, 128, 527
EVAL_FILE = "eval.h5"
LABEL_CHUNK = 65_536  # rows of ``y`` read at a time when finding each row's first label
HOW_TO_GET = (
    "Fix: download Kong et al.'s packed embeddings (the packed_features folder linked from "
    "github.com/qiuqiangkong/audioset_classification) or pack Google's AudioSet embeddings "
    "(features.tar.gz, research.google.com/audioset/download.html) as in "
    "docs/tasks/audioset.md, and set data-dir to the folder holding bal_train.h5, "
    "unbal_train.h5 and eval.h5."
)


def dequantize(x: torch.Tensor) -> torch.Tensor:
    """uint8 embeddings -> float32 ``(x - 128) / 128`` in [-1, 1).

    The convention of Kong et al.'s code (``uint8_to_float32`` in ``utils/utilities.py`` of
    qiuqiangkong/audioset_classification), used by the attention papers' results.
    """
    return (x.float() - 128.0) / 128.0


def eval_available(data_dir: str | Path) -> bool:
    """Whether ``data-dir`` has the evaluation file."""
    return (Path(data_dir) / EVAL_FILE).is_file()


def require_files(data_dir: str | Path, names: Sequence[str], what: str) -> list[Path]:
    """The paths of ``names`` in ``data_dir``; one ``DataError`` listing every missing one."""
    paths = [Path(data_dir) / name for name in names]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise DataError(f"AudioSet files missing in data-dir {data_dir}: {', '.join(missing)} "
                        f"(needed for {what}). {HOW_TO_GET}")
    return paths


def packed_length(path: str | Path) -> int:
    """Number of clips in a packed file, after checking its datasets' shapes and dtypes.

    Raises
    ------
    DataError
        When the file is not HDF5, lacks ``x`` or ``y``, or they have the wrong shape,
        dtype or differing lengths; the message names the file, the dataset and what was
        expected.
    """
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path} is not a readable HDF5 file ({error}). {HOW_TO_GET}") from error
    with handle:
        x = _dataset(handle, path, "x", (TIME_STEPS, EMBEDDING_DIM), ("uint8",))
        y = _dataset(handle, path, "y", (NUM_CLASSES,), ("bool", "uint8"))
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{path}: dataset 'x' has {x.shape[0]} rows but 'y' has "
                            f"{y.shape[0]}; the file is damaged or mixes two packings. "
                            "Pack it again.")
        return int(x.shape[0])


def _dataset(handle: h5py.File, path: str | Path, name: str, row_shape: tuple[int, ...],
             dtypes: tuple[str, ...]) -> h5py.Dataset:
    expected = " x ".join(["N", *map(str, row_shape)]) + f" {' or '.join(dtypes)}"
    data = handle.get(name)
    if not isinstance(data, h5py.Dataset):
        raise DataError(f"{path} has no dataset {name!r} (expected {expected}); it is not "
                        f"a packed AudioSet file. {HOW_TO_GET}")
    if tuple(data.shape[1:]) != row_shape or data.ndim != len(row_shape) + 1 \
            or data.dtype.name not in dtypes:
        raise DataError(f"{path}: dataset {name!r} is {' x '.join(map(str, data.shape))} "
                        f"{data.dtype}, expected {expected}. Pack the file again "
                        "(docs/tasks/audioset.md).")
    return data


def first_labels(path: str | Path) -> np.ndarray:
    """Each clip's first positive class (-1 for none): its class for ``dirichlet`` splits."""
    stat = Path(path).stat()
    return _first_labels_once(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


# A ClientApp process serves every round: reading unbal_train's 2M x 527 labels again each
# round would dominate it. Keyed by the file's identity, bounded, and read-only.
@functools.lru_cache(maxsize=4)
def _first_labels_once(path: str, size: int, mtime_ns: int) -> np.ndarray:
    with h5py.File(path, "r") as handle:
        y = handle["y"]
        chunks = []
        for start in range(0, y.shape[0], LABEL_CHUNK):
            block = np.asarray(y[start:start + LABEL_CHUNK], dtype=bool)
            chunks.append(np.where(block.any(axis=1), block.argmax(axis=1), -1))
    labels = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)
    labels.setflags(write=False)
    return labels


@dataclass(frozen=True)
class RowSet:
    """Rows of one or more packed files, concatenated in file order.

    Parameters
    ----------
    paths : tuple[str, ...]
        The files.
    rows : tuple[np.ndarray, ...]
        Per file, the sorted row indices used.
    """

    paths: tuple[str, ...]
    rows: tuple[np.ndarray, ...]

    @classmethod
    def whole(cls, paths: Sequence[str | Path]) -> RowSet:
        """Every row of ``paths`` (each checked with ``packed_length``)."""
        return cls(tuple(str(p) for p in paths),
                   tuple(np.arange(packed_length(p)) for p in paths))

    def __len__(self) -> int:
        return int(sum(len(r) for r in self.rows))

    def take(self, positions: np.ndarray) -> RowSet:
        """The rows at sorted ``positions`` of the concatenation."""
        positions = np.asarray(positions, dtype=np.int64)
        offsets = np.cumsum([0, *(len(r) for r in self.rows)])
        parts = []
        for k, rows in enumerate(self.rows):
            mine = positions[(positions >= offsets[k]) & (positions < offsets[k + 1])]
            parts.append(rows[mine - offsets[k]])
        return RowSet(self.paths, tuple(parts))

    def first_labels(self) -> np.ndarray:
        """Each row's first positive class (-1 for none), in concatenation order."""
        return np.concatenate([first_labels(p)[r] for p, r in zip(self.paths, self.rows,
                                                                   strict=True)])


class PackedRows(Dataset):
    """A ``RowSet`` as a data set of ``(x [10, 128] float32, y [527] float32)`` clips.

    ``__getitems__`` (used by the DataLoader for whole batches) reads each file's rows of a
    batch in one sorted selection. HDF5 handles are opened lazily in the reading process (a
    DataLoader worker opens its own) and are never pickled.
    """

    def __init__(self, rows: RowSet) -> None:
        self.row_set = rows
        self._offsets = np.cumsum([0, *(len(r) for r in rows.rows)])
        self._files: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        index = np.asarray(indices, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"clip index out of range for {len(self)} clips")
        part = np.searchsorted(self._offsets, index, side="right") - 1
        x = np.empty((len(index), TIME_STEPS, EMBEDDING_DIM), dtype=np.uint8)
        y = np.empty((len(index), NUM_CLASSES), dtype=np.float32)
        for k in np.unique(part):
            where = np.flatnonzero(part == k)
            file_rows = self.row_set.rows[k][index[where] - self._offsets[k]]
            unique, inverse = np.unique(file_rows, return_inverse=True)  # HDF5 wants sorted
            handle = self._file(int(k))
            x[where] = handle["x"][unique][inverse]
            y[where] = handle["y"][unique][inverse]
        clips, labels = dequantize(torch.from_numpy(x)), torch.from_numpy(y)
        return list(zip(clips, labels, strict=True))

    def _file(self, k: int) -> h5py.File:
        if self._pid != os.getpid():  # a forked worker must not share its parent's handles
            self._files, self._pid = {}, os.getpid()
        if k not in self._files:
            self._files[k] = h5py.File(self.row_set.paths[k], "r")
        return self._files[k]

    def close(self) -> None:
        """Close the open HDF5 handles (they reopen on the next read)."""
        for handle in self._files.values():
            handle.close()
        self._files = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state
