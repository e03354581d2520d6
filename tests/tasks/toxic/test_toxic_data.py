"""Tests of the toxic task's data module: partitions, shards, hold-outs and stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.shared import Site
from tasks.toxic.data import CLEAN, ToxicDataModule, representative_class
from tasks.toxic.jigsaw import read_test
from tasks.toxic.synth import write_synthetic
from tasks.toxic.text import WordHashEncoder


def test_representative_class_is_first_positive_label_else_clean() -> None:
    # Prepare
    labels = np.array([[0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]])

    # Execute / Assert
    assert representative_class(labels).tolist() == [CLEAN, 0, 3]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=200, num_test=60)


def test_sites_partition_train_and_shard_the_test_rows(synthetic: Path) -> None:
    # Prepare
    encoder = WordHashEncoder(1000)
    sites = [ToxicDataModule(Site(str(synthetic), partition=(i, 2), batch_size=16,
                                  max_samples=100), encoder, 12) for i in range(2)]
    scored = len(read_test(synthetic))

    # Execute
    for site in sites:
        site.setup("fit")

    # Assert: 100 capped train rows -> 50 + 50; validation shards cover the scored test rows
    assert [len(s.train_set) for s in sites] == [50, 50]
    assert sum(len(s.val_set) for s in sites) == scored
    ids, labels = sites[0].train_set.tensors
    assert ids.shape == (50, 12) and labels.dtype == torch.float32 and labels.shape == (50, 6)


def test_dirichlet_partition_uses_representative_classes(synthetic: Path) -> None:
    # Prepare
    sites = [ToxicDataModule(Site(str(synthetic), partition=(i, 2), batch_size=16,
                                  partitioning="dirichlet", dirichlet_alpha=1.0),
                             WordHashEncoder(1000), 12)
             for i in range(2)]

    # Execute
    for site in sites:
        site.setup("fit")

    # Assert: disjoint cover of the 200 rows
    assert sum(len(s.train_set) for s in sites) == 200


def test_site_without_test_files_holds_out_ten_percent(tmp_path: Path) -> None:
    # Prepare
    write_synthetic(tmp_path, num_train=50, num_test=5)
    (tmp_path / "test.csv").unlink()
    (tmp_path / "test_labels.csv").unlink()
    module = ToxicDataModule(Site(str(tmp_path), batch_size=8), WordHashEncoder(100), 8)

    # Execute
    module.setup("fit")

    # Assert
    assert (len(module.train_set), len(module.val_set)) == (45, 5)


def test_validate_stage_tokenizes_only_this_sites_validation_rows(synthetic: Path) -> None:
    # Prepare
    module = ToxicDataModule(Site(str(synthetic), partition=(1, 2), batch_size=8),
                             WordHashEncoder(100), 8)

    # Execute
    module.setup("validate")

    # Assert: the second half-shard of the scored test rows, and no training tensors
    assert len(module.val_set) == len(read_test(synthetic)) // 2 and module.train_set is None


def test_site_without_test_files_validates_on_the_same_hold_out(tmp_path: Path) -> None:
    # Prepare
    write_synthetic(tmp_path, num_train=50, num_test=5)
    for name in ("test.csv", "test_labels.csv"):
        (tmp_path / name).unlink()
    fitted = ToxicDataModule(Site(str(tmp_path), batch_size=8), WordHashEncoder(100), 8)
    validated = ToxicDataModule(Site(str(tmp_path), batch_size=8), WordHashEncoder(100), 8)

    # Execute
    fitted.setup("fit")
    validated.setup("validate")

    # Assert: an evaluate round sees exactly the rows the training round held out
    assert torch.equal(fitted.val_set.tensors[0], validated.val_set.tensors[0])


def test_test_stage_tokenizes_only_the_test_split(synthetic: Path) -> None:
    # Prepare
    module = ToxicDataModule(Site(str(synthetic), batch_size=8), WordHashEncoder(100), 8)

    # Execute
    module.setup("test")

    # Assert
    assert len(module.test_set) == len(read_test(synthetic)) and module.train_set is None
