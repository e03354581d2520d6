"""Tests of the seeded IID and Dirichlet simulation splits."""

from __future__ import annotations

import numpy as np
import pytest

from colearn_fl.errors import ConfigError
from tasks.partition import (
    check_partition_id,
    dirichlet_partition,
    iid_partition,
    partition_indices,
)


def _labels(num_classes: int = 10, per_class: int = 100) -> np.ndarray:
    """``per_class`` samples of each class, classes interleaved: 0, 1, ..., 9, 0, 1, ..."""
    return np.tile(np.arange(num_classes), per_class)


def _assert_disjoint_and_covering(parts: list[np.ndarray], num_samples: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == num_samples
    np.testing.assert_array_equal(np.sort(joined), np.arange(num_samples))


def _same(parts: list[np.ndarray], others: list[np.ndarray]) -> bool:
    return len(parts) == len(others) and all(
        np.array_equal(a, b) for a, b in zip(parts, others, strict=True)
    )


def _mean_dominant_share(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """Average over sites of the share of the site's most frequent label."""
    return float(np.mean([np.bincount(labels[p]).max() / len(p) for p in parts]))


def test_iid_sizes_are_near_equal_and_split_covers_all() -> None:
    # Prepare: 10 samples over 3 sites -> sizes 4, 3, 3 (the first parts take the remainder).
    num_samples, num_partitions = 10, 3

    # Execute
    parts = iid_partition(num_samples, num_partitions, seed=0)

    # Assert
    assert [len(p) for p in parts] == [4, 3, 3]
    _assert_disjoint_and_covering(parts, num_samples)
    assert all(np.all(np.diff(p) > 0) for p in parts)  # sorted, no repeats


def test_iid_is_deterministic_per_seed() -> None:
    # Prepare / Execute
    first = iid_partition(100, 4, seed=7)
    again = iid_partition(100, 4, seed=7)
    other = iid_partition(100, 4, seed=8)

    # Assert
    assert _same(first, again)
    assert not _same(first, other)


def test_iid_single_partition_is_everything() -> None:
    # Execute
    (only,) = iid_partition(5, 1, seed=0)

    # Assert
    np.testing.assert_array_equal(only, np.arange(5))


def test_dirichlet_is_disjoint_covering_sorted_and_respects_min_size() -> None:
    # Prepare
    labels = _labels()

    # Execute
    parts = dirichlet_partition(labels, num_partitions=4, alpha=0.5, seed=0, min_size=20)

    # Assert
    assert len(parts) == 4
    _assert_disjoint_and_covering(parts, len(labels))
    assert min(len(p) for p in parts) >= 20
    assert all(np.all(np.diff(p) > 0) for p in parts)
    assert all(p.dtype == np.int64 for p in parts)


def test_dirichlet_same_seed_same_split_other_seed_differs() -> None:
    # Prepare
    labels = _labels()

    # Execute
    first = dirichlet_partition(labels, 4, alpha=0.5, seed=1)
    again = dirichlet_partition(labels, 4, alpha=0.5, seed=1)
    other = dirichlet_partition(labels, 4, alpha=0.5, seed=2)

    # Assert
    assert _same(first, again)
    assert not _same(first, other)


def test_small_alpha_gives_skewed_sites_large_alpha_near_iid() -> None:
    # Prepare: 10 balanced classes; with IID sites the dominant label share is about 0.1+.
    labels = _labels(per_class=200)

    # Execute
    skewed = dirichlet_partition(labels, 4, alpha=0.05, seed=0)
    uniform = dirichlet_partition(labels, 4, alpha=100.0, seed=0)

    # Assert
    assert _mean_dominant_share(labels, skewed) > 0.3
    assert _mean_dominant_share(labels, uniform) < 0.15
    assert _mean_dominant_share(labels, skewed) > _mean_dominant_share(labels, uniform)


def test_partition_indices_dispatches_on_partitioning() -> None:
    # Prepare
    labels = _labels()

    # Execute
    iid = partition_indices(labels, 4, "iid", alpha=0.5, seed=3)
    dirichlet = partition_indices(labels, 4, "dirichlet", alpha=0.5, seed=3)

    # Assert
    assert _same(iid, iid_partition(len(labels), 4, 3))
    expected = dirichlet_partition(labels, 4, alpha=0.5, seed=3)
    assert _same(dirichlet, expected)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: iid_partition(10, 0, seed=0), "num-partitions=0"),
        (lambda: iid_partition(3, 4, seed=0), "num-partitions=4 exceeds the 3 samples"),
        (lambda: dirichlet_partition(_labels(), 4, alpha=0.0, seed=0), "dirichlet-alpha=0.0"),
        (lambda: dirichlet_partition(_labels(), 4, alpha=-1, seed=0), "dirichlet-alpha=-1"),
        (lambda: dirichlet_partition(_labels(per_class=3), 4, 0.5, 0), "num-partitions=4"),
        (lambda: partition_indices(_labels(), 2, "shards", 0.5, 0), "partitioning='shards'"),
        (lambda: check_partition_id(4, 4), "partition-id=4 is out of range"),
        (lambda: check_partition_id(-1, 4), "partition-id=-1"),
        (lambda: check_partition_id(0, 0), "num-partitions=0"),
    ],
)
def test_invalid_arguments_raise_config_error_naming_the_key(call, match: str) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=match):
        call()


def test_dirichlet_gives_up_after_bounded_tries_naming_alpha() -> None:
    # Prepare: alpha this small puts almost every class on one site, so sites stay empty.
    labels = _labels(num_classes=2, per_class=50)

    # Execute / Assert
    with pytest.raises(ConfigError, match=r"dirichlet-alpha=0.001.*increase dirichlet-alpha"):
        dirichlet_partition(labels, num_partitions=8, alpha=0.001, seed=0, min_size=10)
