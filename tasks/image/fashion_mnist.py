"""Fashion-MNIST from idx files (gzip or uncompressed) in a directory; no download.

The idx format (LeCun et al.): two zero bytes, a type code (``0x08`` = unsigned byte), the
number of dimensions, then each dimension as a big-endian uint32, then the data in C order.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from tasks.errors import DataError

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
Split = Literal["train", "test"]
# Base names of the (images, labels) files of each split; ".gz" is tried first.
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL_FILES: tuple[str, ...] = SPLIT_FILES["train"] + SPLIT_FILES["test"]
_UBYTE = 0x08
_HEADER_PREFIX = 4  # 0x00 0x00 type ndim


def _find(data_dir: Path, base: str) -> Path | None:
    """``base.gz`` if present, else ``base``, else ``None``."""
    for candidate in (data_dir / f"{base}.gz", data_dir / base):
        if candidate.is_file():
            return candidate
    return None


def split_available(data_dir: str | Path, split: Split) -> bool:
    """Whether both files of ``split`` exist (gzip or plain) in ``data_dir``."""
    return all(_find(Path(data_dir), base) is not None for base in SPLIT_FILES[split])


def load_fashion_mnist(data_dir: str | Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one split of Fashion-MNIST.

    Parameters
    ----------
    data_dir : str | Path
        Directory with the idx files, e.g. ``DEFAULT_DATA_DIR``.
    split : {'train', 'test'}
        ``train`` (``train-*``) or ``test`` (``t10k-*``).

    Returns
    -------
    tuple[torch.Tensor, torch.Tensor]
        uint8 images ``[N, 28, 28]`` and int64 labels ``[N]``.

    Raises
    ------
    DataError
        When a file is missing (one error listing every missing file and how to get them) or
        malformed (bad magic number, truncated, image/label counts differ).
    """
    if split not in SPLIT_FILES:
        raise DataError(f"split={split!r} is not known; use 'train' or 'test'.")
    data_dir = Path(data_dir)
    images_base, labels_base = SPLIT_FILES[split]
    images_path, labels_path = _find(data_dir, images_base), _find(data_dir, labels_base)
    if images_path is None or labels_path is None:
        missing = [base for base in SPLIT_FILES[split] if _find(data_dir, base) is None]
        raise DataError(_missing_message(data_dir, missing))
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels; the files come from different releases or are "
            "damaged. Replace them with a matching pair."
        )
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def _missing_message(data_dir: Path, missing: list[str]) -> str:
    return (
        f"Fashion-MNIST files missing in data-dir {data_dir}: {', '.join(missing)} "
        "(.gz or uncompressed). Fix: `apt-get install dataset-fashion-mnist` (puts them in "
        f"{DEFAULT_DATA_DIR}), or place the four files {', '.join(ALL_FILES)} "
        "(each optionally .gz) in data-dir."
    )


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} cannot be read ({error}); download it again.") from error


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read an unsigned-byte idx file (gzip if it ends with ``.gz``).

    Parameters
    ----------
    path : str | Path
        The file.
    ndim : int | None
        Expected number of dimensions (default: None, any).

    Returns
    -------
    np.ndarray
        A read-only uint8 array with the file's dimensions.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as error:
        raise DataError(f"{path} cannot be read ({error}); download it again.") from error
    return _read_idx_once(str(path.resolve()), stat.st_size, stat.st_mtime_ns, ndim)


# A site's ClientApp process serves every round of a run: decoding the same gzip files again
# each round (~0.5 s for the 60k training images) was pure federation overhead. Keyed by the
# file's identity (path, size, mtime), bounded, and read-only arrays, so a changed file is
# read again and no caller can alter what another one gets.
@functools.lru_cache(maxsize=8)
def _read_idx_once(path_str: str, size: int, mtime_ns: int, ndim: int | None) -> np.ndarray:
    path = Path(path_str)
    raw = _read_bytes(path)
    if len(raw) < _HEADER_PREFIX or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE:
        magic = raw[:_HEADER_PREFIX].hex() or "empty"
        raise DataError(
            f"{path} is not an unsigned-byte idx file (magic number 0x{magic}, expected "
            "0x000008NN); it is damaged or not Fashion-MNIST. Download it again."
        )
    file_ndim = raw[3]
    if ndim is not None and file_ndim != ndim:
        raise DataError(f"{path} has {file_ndim} dimensions, expected {ndim}; wrong file?")
    data_start = _HEADER_PREFIX + 4 * file_ndim
    if len(raw) < data_start:
        raise DataError(f"{path} is truncated inside its header; download it again.")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=file_ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - data_start != expected:
        raise DataError(
            f"{path} holds {len(raw) - data_start} data bytes but its header {shape} needs "
            f"{expected}; it is truncated or damaged. Download it again."
        )
    return np.frombuffer(raw, np.uint8, offset=data_start).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray | torch.Tensor) -> Path:
    """Write a uint8 array as an idx file (gzip if ``path`` ends with ``.gz``).

    Parameters
    ----------
    path : str | Path
        Destination; parent directories are created.
    array : np.ndarray | torch.Tensor
        uint8 data with 1 to 255 dimensions.

    Returns
    -------
    Path
        The written file.
    """
    data = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if data.dtype != np.uint8 or not 1 <= data.ndim <= 255:
        raise DataError(
            f"write_idx({path}): need a uint8 array with 1..255 dimensions, got "
            f"{data.dtype} with {data.ndim}; convert with .astype(np.uint8)."
        )
    header = bytes([0, 0, _UBYTE, data.ndim]) + np.asarray(data.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(data).tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)
    return path
