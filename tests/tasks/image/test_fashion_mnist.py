"""Tests of the Fashion-MNIST idx reader and writer."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.errors import DataError
from tasks.image.fashion_mnist import (
    DEFAULT_DATA_DIR,
    load_fashion_mnist,
    read_idx,
    split_available,
    write_idx,
)


def _write_split(directory: Path, prefix: str, images: np.ndarray, labels: np.ndarray,
                 suffix: str = ".gz") -> None:
    write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)


def _tiny(count: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.arange(count * 28 * 28, dtype=np.int64).reshape(count, 28, 28) % 256
    labels = np.arange(count) % 10
    return images.astype(np.uint8), labels.astype(np.uint8)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_write_then_load_round_trips(tmp_path: Path, suffix: str) -> None:
    # Prepare
    images, labels = _tiny(5)
    _write_split(tmp_path, "t10k", images, labels, suffix)

    # Execute
    loaded_images, loaded_labels = load_fashion_mnist(tmp_path, "test")

    # Assert
    assert loaded_images.dtype == torch.uint8 and loaded_images.shape == (5, 28, 28)
    assert loaded_labels.dtype == torch.int64 and loaded_labels.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(loaded_images.numpy(), images)


def test_idx_header_is_the_documented_layout(tmp_path: Path) -> None:
    # Prepare: a 2x3 array -> magic 00 00 08 02, dims 2 and 3 big-endian, then 6 data bytes.
    array = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)

    # Execute
    path = write_idx(tmp_path / "a-idx2-ubyte", array)

    # Assert
    expected = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    assert path.read_bytes() == expected
    np.testing.assert_array_equal(read_idx(path), array)


def test_missing_files_give_one_error_with_the_fix(tmp_path: Path) -> None:
    # Prepare: only the labels of the training split are there.
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))

    # Execute
    with pytest.raises(DataError) as caught:
        load_fashion_mnist(tmp_path, "train")

    # Assert
    message = str(caught.value)
    assert str(tmp_path) in message
    assert "missing" in message and "train-images-idx3-ubyte" in message
    assert "apt-get install dataset-fashion-mnist" in message
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in message


def test_bad_magic_names_the_file(tmp_path: Path) -> None:
    # Prepare: a gzip file whose content is not idx.
    images, labels = _tiny(2)
    _write_split(tmp_path, "train", images, labels)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as handle:
        handle.write(b"<html>not found</html>")

    # Execute / Assert
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is not an unsigned-byte idx"):
        load_fashion_mnist(tmp_path, "train")


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    # Prepare: drop the last 10 data bytes of an uncompressed image file.
    images, labels = _tiny(2)
    _write_split(tmp_path, "train", images, labels, suffix="")
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])

    # Execute / Assert
    with pytest.raises(DataError, match="train-images-idx3-ubyte holds 1558 data bytes"):
        load_fashion_mnist(tmp_path, "train")


def test_damaged_gzip_names_the_file(tmp_path: Path) -> None:
    # Prepare: cut a gzip stream in half.
    images, labels = _tiny(4)
    _write_split(tmp_path, "train", images, labels)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])

    # Execute / Assert
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz cannot be read"):
        load_fashion_mnist(tmp_path, "train")


def test_image_and_label_counts_must_match(tmp_path: Path) -> None:
    # Prepare: 3 images but 2 labels.
    images, labels = _tiny(3)
    _write_split(tmp_path, "train", images, labels[:2])

    # Execute / Assert
    with pytest.raises(DataError, match=r"3 images but .* 2 labels"):
        load_fashion_mnist(tmp_path, "train")


def test_split_available_needs_both_files(tmp_path: Path) -> None:
    # Prepare
    images, labels = _tiny(1)
    _write_split(tmp_path, "train", images, labels, suffix="")
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)

    # Execute / Assert
    assert split_available(tmp_path, "train")
    assert not split_available(tmp_path, "test")


def test_write_idx_refuses_non_uint8(tmp_path: Path) -> None:
    # Execute / Assert
    with pytest.raises(DataError, match="need a uint8 array"):
        write_idx(tmp_path / "x-idx1-ubyte", np.zeros(3, np.float32))


@pytest.mark.skipif(not Path(DEFAULT_DATA_DIR).is_dir(), reason="dataset-fashion-mnist absent")
def test_installed_data_set_has_the_published_sizes() -> None:
    # Execute
    train_images, train_labels = load_fashion_mnist(DEFAULT_DATA_DIR, "train")
    test_images, test_labels = load_fashion_mnist(DEFAULT_DATA_DIR, "test")

    # Assert: 60,000 / 10,000 28x28 images, 10 balanced classes.
    assert train_images.shape == (60_000, 28, 28) and test_images.shape == (10_000, 28, 28)
    assert torch.bincount(train_labels).tolist() == [6_000] * 10
    assert torch.bincount(test_labels).tolist() == [1_000] * 10
