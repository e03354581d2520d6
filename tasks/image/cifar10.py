"""CIFAR-10 from the standard ``cifar-10-batches-py`` folder (the python pickle batches).

The layout is the one https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz unpacks to:
``data_batch_1`` ... ``data_batch_5`` (10,000 images each) and ``test_batch``, each a pickled
dict with ``b'data'`` (uint8 ``[N, 3072]``: 1024 red, then green, then blue values, row-major)
and ``b'labels'`` (N ints in 0..9). A site holding a shard may have any subset of the
``data_batch_*`` files. torchvision's reader is not used: it insists on the original files'
MD5 sums, which a site's own shard (or a test's tiny batch) cannot have.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from tasks.errors import DataError

FOLDER = "cifar-10-batches-py"
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
TRAIN_PREFIX = "data_batch_"
TEST_FILE = "test_batch"
# Per-channel mean and std of x / 255 over the training split (R, G, B).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
DOWNLOAD = ("download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and unpack it "
            "(tar xzf cifar-10-python.tar.gz) so that data-dir holds cifar-10-batches-py/ "
            "(or point data-dir at that folder itself)")

Split = Literal["train", "test"]


def batches_dir(data_dir: str | Path) -> Path | None:
    """The folder holding the batches: ``data_dir`` itself or its ``cifar-10-batches-py``."""
    root = Path(data_dir)
    for candidate in (root, root / FOLDER):
        if (candidate / TEST_FILE).is_file() or any(candidate.glob(f"{TRAIN_PREFIX}*")):
            return candidate
    return None


def split_files(data_dir: str | Path, split: Split) -> list[Path]:
    """The batch files of ``split`` (sorted); empty when there are none."""
    folder = batches_dir(data_dir)
    if folder is None:
        return []
    if split == "test":
        return [folder / TEST_FILE] if (folder / TEST_FILE).is_file() else []
    return sorted(p for p in folder.glob(f"{TRAIN_PREFIX}*") if p.is_file())


def load_cifar10(data_dir: str | Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]`` of one split.

    Raises
    ------
    DataError
        When the split's files are missing (with download instructions) or a batch is not a
        CIFAR-10 pickle (naming the file and what is wrong).
    """
    files = split_files(data_dir, split)
    if not files:
        wanted = TEST_FILE if split == "test" else f"{TRAIN_PREFIX}1 ... {TRAIN_PREFIX}5"
        raise DataError(f"CIFAR-10: no {split} batches ({wanted}) in {data_dir}: {DOWNLOAD}.")
    parts = [_read_batch_once(str(p), p.stat().st_mtime_ns) for p in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(images), torch.from_numpy(labels)


@functools.lru_cache(maxsize=8)
def _read_batch_once(path_str: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one batch file once per process (simulated sites share a worker's cache)."""
    path = Path(path_str)
    try:
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise DataError(f"CIFAR-10 batch {path} is not readable ({error}); it should be a "
                        f"python pickle from cifar-10-python.tar.gz: {DOWNLOAD}.") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"CIFAR-10 batch {path}: expected a dict with b'data' and b'labels', "
                        f"found {keys}.")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != int(np.prod(IMAGE_SHAPE)):
        raise DataError(f"CIFAR-10 batch {path}: b'data' is {data.dtype} {data.shape}, "
                        "expected uint8 [N, 3072].")
    if labels.shape != (len(data),) or (len(labels) and not 0 <= labels.min() <= labels.max()
                                        < NUM_CLASSES):
        raise DataError(f"CIFAR-10 batch {path}: b'labels' must be {len(data)} ints in "
                        f"0..{NUM_CLASSES - 1}.")
    return data.reshape(-1, *IMAGE_SHAPE), labels


def write_cifar10_batch(path: str | Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """Write ``images`` (uint8 ``[N, 3, 32, 32]``) and labels as a CIFAR-10 pickle batch."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {b"batch_label": path.name.encode(), b"labels": [int(v) for v in labels],
             b"data": np.asarray(images, dtype=np.uint8).reshape(len(images), -1),
             b"filenames": [f"{i}.png".encode() for i in range(len(images))]}
    with path.open("wb") as handle:
        pickle.dump(batch, handle)
    return path
