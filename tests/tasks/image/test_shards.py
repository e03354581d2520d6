"""tasks.image.shards: Fashion-MNIST in one readable folder per site."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.errors import ConfigError, DataError
from tasks.image.fashion_mnist import load_fashion_mnist
from tasks.image.shards import write_site_shards
from tests.tiny import FAKE_TEST, FAKE_TRAIN, fake_fashion_mnist

TRAIN, TEST = FAKE_TRAIN, FAKE_TEST


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A tiny Fashion-MNIST look-alike (``tests.tiny.fake_fashion_mnist``)."""
    return fake_fashion_mnist(tmp_path / "source")


@pytest.mark.parametrize("partitioning", ["iid", "dirichlet"])
def test_shards_are_disjoint_and_cover_both_splits(
    source: Path, tmp_path: Path, partitioning: str
) -> None:
    # Execute
    folders = write_site_shards(source, tmp_path / "shards", 3, seed=1,
                                partitioning=partitioning, alpha=1.0)
    # Assert: each folder is a readable data set; ids (pixel [0, 0]) never repeat
    assert [f.name for f in folders] == ["site-0", "site-1", "site-2"]
    for split, size in (("train", TRAIN), ("test", TEST)):
        ids = [load_fashion_mnist(f, split)[0][:, 0, 0].tolist() for f in folders]
        assert sum(len(part) for part in ids) == size
        assert sorted(i for part in ids for i in part) == list(range(size))


def test_shards_keep_labels_with_their_images(source: Path, tmp_path: Path) -> None:
    folders = write_site_shards(source, tmp_path / "shards", 2)
    images, labels = load_fashion_mnist(folders[1], "train")
    assert (labels == images[:, 0, 0] % 10).all()


def test_shards_cap_each_site(source: Path, tmp_path: Path) -> None:
    folders = write_site_shards(source, tmp_path / "shards", 2, max_samples=7)
    for folder in folders:
        assert len(load_fashion_mnist(folder, "train")[1]) == 7
        assert len(load_fashion_mnist(folder, "test")[1]) == 7


def test_shards_errors_name_the_fix(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max-samples"):
        write_site_shards(source, tmp_path / "s", 2, max_samples=-1)
    with pytest.raises(ConfigError, match="partitioning"):
        write_site_shards(source, tmp_path / "s", 2, partitioning="shards")
    with pytest.raises(DataError, match="missing"):
        write_site_shards(tmp_path / "nothing", tmp_path / "s", 2)
    with pytest.raises(DataError, match="source folder"):
        write_site_shards(source, source, 2)
