"""Seeded simulation splits: IID and Dirichlet(alpha) label skew.

Every function is a pure function of its arguments (the seed included): the same call gives the
same partitions on every site, so each simulated site can compute the split on its own and keep
only its part. Partitions are disjoint, cover every sample and hold sorted indices.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from tasks.errors import ConfigError

Partitioning = Literal["iid", "dirichlet"]
PARTITIONINGS: tuple[str, ...] = ("iid", "dirichlet")
# Dirichlet draws are retried this many times before a too-small alpha is reported.
MAX_DIRICHLET_TRIES = 100


def check_num_partitions(num_partitions: int, num_samples: int | None = None) -> None:
    """Raise ``ConfigError`` unless ``1 <= num_partitions`` (and ``<= num_samples`` if given).

    Parameters
    ----------
    num_partitions : int
        Number of simulated sites (node-config ``num-partitions``).
    num_samples : int | None
        Samples to split; each partition needs at least one (default: None, not checked).
    """
    if isinstance(num_partitions, bool) or not isinstance(num_partitions, (int, np.integer)):
        raise ConfigError(
            f"num-partitions={num_partitions!r}: expected an int >= 1 (the number of sites)."
        )
    if num_partitions < 1:
        raise ConfigError(
            f"num-partitions={num_partitions}: must be >= 1; set it in the simulation's "
            "node config (e.g. options.num-supernodes in the federation config)."
        )
    if num_samples is not None and num_partitions > num_samples:
        raise ConfigError(
            f"num-partitions={num_partitions} exceeds the {num_samples} samples to split, so "
            "some sites would get none; use fewer sites or more data (max-samples=0 = all)."
        )


def check_partition_id(partition_id: int, num_partitions: int) -> None:
    """Raise ``ConfigError`` unless ``0 <= partition_id < num_partitions``.

    Parameters
    ----------
    partition_id : int
        This site's partition (node-config ``partition-id``).
    num_partitions : int
        Number of partitions (node-config ``num-partitions``).
    """
    check_num_partitions(num_partitions)
    if isinstance(partition_id, bool) or not isinstance(partition_id, (int, np.integer)):
        raise ConfigError(f"partition-id={partition_id!r}: expected an int in [0, num-partitions).")
    if not 0 <= partition_id < num_partitions:
        raise ConfigError(
            f"partition-id={partition_id} is out of range for num-partitions={num_partitions}; "
            f"allowed: 0 .. {num_partitions - 1}."
        )


def iid_partition(num_samples: int, num_partitions: int, seed: int) -> list[np.ndarray]:
    """Split ``range(num_samples)`` into near-equal, disjoint, random parts.

    Parameters
    ----------
    num_samples : int
        Number of samples to split.
    num_partitions : int
        Number of parts; sizes differ by at most one (the first parts are the larger).
    seed : int
        Seed of the permutation.

    Returns
    -------
    list[np.ndarray]
        ``num_partitions`` sorted int64 index arrays.
    """
    check_num_partitions(num_partitions, num_samples)
    order = np.random.default_rng(seed).permutation(num_samples)
    return [np.sort(part).astype(np.int64) for part in np.array_split(order, num_partitions)]


def dirichlet_partition(
    labels: np.ndarray, num_partitions: int, alpha: float, seed: int, min_size: int = 10
) -> list[np.ndarray]:
    """Label-skewed split: each class is divided over the partitions in Dir(alpha) proportions.

    Small ``alpha`` gives sites dominated by few classes, large ``alpha`` approaches IID
    (Hsu et al., 2019, "Measuring the effects of non-identical data distribution"). Draws are
    repeated (at most ``MAX_DIRICHLET_TRIES`` times) until every partition holds at least
    ``min_size`` samples.

    Parameters
    ----------
    labels : np.ndarray
        Integer class label of each sample, shape ``[N]``.
    num_partitions : int
        Number of parts.
    alpha : float
        Concentration of the Dirichlet distribution, > 0.
    seed : int
        Seed of the draws and of the shuffle within each class.
    min_size : int
        Smallest acceptable partition (default: 10).

    Returns
    -------
    list[np.ndarray]
        ``num_partitions`` sorted int64 index arrays, disjoint and covering ``range(N)``.
    """
    labels = np.asarray(labels).reshape(-1)
    check_num_partitions(num_partitions, labels.size)
    _check_alpha(alpha)
    if min_size * num_partitions > labels.size:
        raise ConfigError(
            f"num-partitions={num_partitions}: {labels.size} samples cannot give every site "
            f"{min_size}; use fewer sites or more data (max-samples=0 = all)."
        )
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for _ in range(MAX_DIRICHLET_TRIES):
        parts = _dirichlet_draw(by_class, num_partitions, alpha, rng)
        if min(len(part) for part in parts) >= min_size:
            return [np.sort(part).astype(np.int64) for part in parts]
    raise ConfigError(
        f"dirichlet-alpha={alpha}: {MAX_DIRICHLET_TRIES} draws all left a site with fewer than "
        f"{min_size} samples over num-partitions={num_partitions}; increase dirichlet-alpha, "
        "use fewer sites, or use partitioning='iid'."
    )


def _dirichlet_draw(
    by_class: list[np.ndarray], num_partitions: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """One draw: per class, shuffle its samples and cut them at Dir(alpha) proportions."""
    chunks: list[list[np.ndarray]] = [[] for _ in range(num_partitions)]
    for members in by_class:
        shuffled = rng.permutation(members)
        proportions = rng.dirichlet(np.full(num_partitions, alpha))
        cuts = (np.cumsum(proportions)[:-1] * len(shuffled)).astype(np.int64)
        for site, piece in enumerate(np.split(shuffled, cuts)):
            chunks[site].append(piece)
    return [np.concatenate(pieces) for pieces in chunks]


def partition_indices(
    labels: np.ndarray,
    num_partitions: int,
    partitioning: Partitioning,
    alpha: float,
    seed: int,
) -> list[np.ndarray]:
    """Split samples with the run config's ``partitioning`` (``iid`` or ``dirichlet``).

    Parameters
    ----------
    labels : np.ndarray
        Class label of each sample, shape ``[N]`` (only its length is used for ``iid``).
    num_partitions : int
        Number of parts (node-config ``num-partitions``).
    partitioning : {'iid', 'dirichlet'}
        Run-config ``partitioning``.
    alpha : float
        Run-config ``dirichlet-alpha`` (used by ``dirichlet`` only).
    seed : int
        Run-config ``seed``.

    Returns
    -------
    list[np.ndarray]
        ``num_partitions`` sorted, disjoint index arrays covering every sample.
    """
    check_partitioning(partitioning)
    if partitioning == "iid":
        return iid_partition(len(labels), num_partitions, seed)
    return dirichlet_partition(labels, num_partitions, alpha, seed)


def check_partitioning(partitioning: str) -> None:
    """Raise ``ConfigError`` unless ``partitioning`` is one of ``PARTITIONINGS``."""
    if partitioning not in PARTITIONINGS:
        raise ConfigError(
            f"partitioning={partitioning!r} is not known; use one of: "
            f"{', '.join(PARTITIONINGS)} (e.g. --run-config \"partitioning='iid'\")."
        )


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ConfigError(
            f"dirichlet-alpha={alpha!r}: must be a number > 0 (small = skewed sites, "
            "large = near IID); e.g. --run-config 'dirichlet-alpha=0.5'."
        )
