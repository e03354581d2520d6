"""What every task's data module shares: where a site's data is, and its seeded index splits.

A site is either a simulation partition (node config ``partition-id`` / ``num-partitions``,
data read from the run config's ``data-dir``) or a deployment site (node config ``data-dir``,
all of its own files). The helpers below work on sample indices, so each task keeps its own
storage (tensors in memory, files on disk, lazy HDF5 rows) and only says which rows a site uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from flwr.app import Context
from torch.utils.data import DataLoader, Dataset

from colearn_fl.config import DATA_DIR, NUM_PARTITIONS, PARTITION_ID, RunConfig
from colearn_fl.errors import ConfigError
from colearn_fl.partition import (
    PARTITIONINGS,
    check_num_partitions,
    check_partition_id,
    iid_partition,
    partition_indices,
)

HOLD_OUT_FRACTION = 0.1  # validation share of a site's training data when it has no test data


@dataclass(frozen=True)
class SiteSource:
    """Where one site's data comes from.

    Parameters
    ----------
    data_dir : str
        The directory to read.
    partition : tuple[int, int] | None
        ``(partition-id, num-partitions)`` in simulation; ``None`` = use every file.
    """

    data_dir: str
    partition: tuple[int, int] | None = None


def site_source(context: Context, default_dir: str) -> SiteSource:
    """A site's data: its node-config ``data-dir`` (all of it) or its simulation partition.

    Parameters
    ----------
    context : Context
        The site's Flower context.
    default_dir : str
        The task's default location, used when the run config's ``data-dir`` is empty.
    """
    node = context.node_config
    own_dir = node.get(DATA_DIR, "")
    if own_dir:
        return SiteSource(str(own_dir))
    config = RunConfig.from_dict(context.run_config)
    partition = None
    if PARTITION_ID in node or NUM_PARTITIONS in node:
        partition = (_node_int(node, PARTITION_ID), _node_int(node, NUM_PARTITIONS))
        check_partition_id(*partition)
    return SiteSource(config.data_dir or default_dir, partition)


def _node_int(node: Mapping[str, Any], key: str) -> int:
    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(
            f"node config {key}={value!r}: expected an int; simulation sets partition-id and "
            "num-partitions together, a deployment site sets data-dir instead."
        )
    return int(value)


def check_data_args(
    batch_size: int,
    partition_id: int | None,
    num_partitions: int | None,
    partitioning: str,
    max_samples: int,
) -> None:
    """Raise ``ConfigError`` naming the first bad data-module argument."""
    if batch_size < 1:
        raise ConfigError(f"batch-size={batch_size}: must be >= 1.")
    if max_samples < 0:
        raise ConfigError(f"max-samples={max_samples}: must be >= 0 (0 means all).")
    if partitioning not in PARTITIONINGS:
        raise ConfigError(
            f"partitioning={partitioning!r} is not known; use one of: {', '.join(PARTITIONINGS)}."
        )
    if partition_id is not None:
        if num_partitions is None:
            raise ConfigError(
                f"partition-id={partition_id} was given without num-partitions; the node config "
                "needs both (simulation sets them) or neither (a site with its own data-dir)."
            )
        check_partition_id(partition_id, num_partitions)
    elif num_partitions is not None:
        check_num_partitions(num_partitions)


def cap_indices(num_samples: int, max_samples: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``max_samples`` (all when 0 or more)."""
    if max_samples == 0 or max_samples >= num_samples:
        return np.arange(num_samples)
    return np.sort(np.random.default_rng(seed).permutation(num_samples)[:max_samples])


def hold_out_indices(num_samples: int, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(num_samples)`` into sorted (rest, hold-out); >= 1 held out."""
    order = np.random.default_rng(seed).permutation(num_samples)
    size = max(1, round(fraction * num_samples))
    return np.sort(order[size:]), np.sort(order[:size])


def partition_rows(
    labels: np.ndarray, partition: tuple[int, int] | None, partitioning: str, alpha: float,
    seed: int,
) -> np.ndarray:
    """Positions (into ``labels``) of this site's training samples; all when no partition.

    ``labels`` are one class per sample (``dirichlet`` skews by them); multi-label tasks pass
    one representative class per sample, or use ``iid``.
    """
    if partition is None:
        return np.arange(len(labels))
    parts = partition_indices(labels, partition[1], partitioning, alpha, seed)
    return np.sort(parts[partition[0]])


def validation_rows(num_samples: int, partition: tuple[int, int] | None, seed: int
                    ) -> np.ndarray:
    """This site's IID shard of an evaluation split; all of it when there is no partition."""
    if partition is None:
        return np.arange(num_samples)
    return np.sort(iid_partition(num_samples, partition[1], seed)[partition[0]])


def site_arguments(config: RunConfig, partition: tuple[int, int] | None) -> dict[str, Any]:
    """``SiteDataModule``'s arguments from the run config and a site's partition."""
    partition_id, num_partitions = partition if partition is not None else (None, None)
    return {"batch_size": config.batch_size, "partition_id": partition_id,
            "num_partitions": num_partitions, "partitioning": config.partitioning,
            "dirichlet_alpha": config.dirichlet_alpha, "seed": config.seed,
            "max_samples": config.max_samples, "num_workers": config.num_workers}


def make_loader(data: Dataset | None, stage: str, batch_size: int, shuffle: bool,
                num_workers: int, **kwargs: Any) -> DataLoader:
    """A DataLoader over ``data``; asks for ``setup(stage)`` first when it is missing.

    Shuffling draws from torch's global RNG, which the client seeds per (seed, round, site):
    every round sees a new order, and a rerun the same one.
    """
    if data is None:
        raise RuntimeError(f"call setup({stage!r}) before asking for its dataloader")
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      persistent_workers=num_workers > 0, **kwargs)


class SiteDataModule(pl.LightningDataModule):
    """Base of the tasks' data modules: the arguments every site has, checked once, and the
    loaders; a subclass's ``setup`` fills ``train_set``, ``val_set`` and ``test_set``.

    Parameters
    ----------
    batch_size : int
        Batch size of every loader.
    partition_id : int | None
        This site's simulation partition; ``None`` = use all its files (default: None).
    num_partitions : int | None
        Number of simulation partitions; required with ``partition_id`` (default: None).
    partitioning : {'iid', 'dirichlet'}
        How the training split is divided (default: ``'iid'``).
    dirichlet_alpha : float
        Concentration for ``dirichlet`` (default: 0.5).
    seed : int
        Seed of the caps, partitions, hold-outs and shuffling (default: 0).
    max_samples : int
        Cap on each split's size, applied before partitioning; 0 = all (default: 0).
    num_workers : int
        DataLoader worker processes (default: 0).
    """

    def __init__(self, batch_size: int, partition_id: int | None = None,
                 num_partitions: int | None = None, partitioning: str = "iid",
                 dirichlet_alpha: float = 0.5, seed: int = 0, max_samples: int = 0,
                 num_workers: int = 0) -> None:
        super().__init__()
        check_data_args(batch_size, partition_id, num_partitions, partitioning, max_samples)
        self.batch_size = batch_size
        self.partition = (None if partition_id is None or num_partitions is None
                          else (partition_id, num_partitions))
        self.partitioning = partitioning
        self.dirichlet_alpha = dirichlet_alpha
        self.seed = seed
        self.max_samples = max_samples
        self.num_workers = num_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def train_dataloader(self) -> DataLoader:
        """This site's training data, reshuffled every epoch."""
        return self._loader(self.train_set, "fit", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """This site's validation data (its federated evaluation)."""
        return self._loader(self.val_set, "validate", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The whole test split (the server's central evaluation)."""
        return self._loader(self.test_set, "test", shuffle=False)

    def _loader(self, data: Dataset | None, stage: str, shuffle: bool) -> DataLoader:
        # Pinned host memory speeds up copies to a GPU; it only costs on a CPU-only machine.
        return make_loader(data, stage, self.batch_size, shuffle, self.num_workers,
                           pin_memory=torch.cuda.is_available())
