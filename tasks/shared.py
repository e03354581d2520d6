"""What every task shares: the site description, the site data base class, the model registry.

A task is plain Lightning code. Its data module is told where one site's data is and how it is
sampled by a ``Site`` (plain arguments, no Flower): either a simulation partition
(``partition`` = ``(partition-id, num-partitions)``, every site reading the same ``data_dir``)
or a deployment site (``partition=None``: all of its own files). The helpers below work on
sample indices, so each task keeps its own storage (tensors in memory, files on disk, lazy HDF5
rows) and only says which rows a site uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from tasks.errors import ConfigError
from tasks.partition import (
    check_partition_id,
    check_partitioning,
    iid_partition,
    partition_indices,
)

HOLD_OUT_FRACTION = 0.1  # validation share of a site's training data when it has no test data
B = TypeVar("B", bound=Callable)
D = TypeVar("D")


@dataclass(frozen=True)
class Site:
    """One site's data: where it is and how it is sampled; checked when built.

    Parameters
    ----------
    data_dir : str
        The directory to read; ``''`` = the task's default location (default: ``''``).
    partition : tuple[int, int] | None
        ``(partition-id, num-partitions)`` in simulation; ``None`` = use every file
        (default: None).
    batch_size : int
        Batch size of every loader (default: 64).
    partitioning : {'iid', 'dirichlet'}
        How the training split is divided among the partitions (default: ``'iid'``).
    dirichlet_alpha : float
        Concentration for ``dirichlet`` (default: 0.5).
    seed : int
        Seed of the caps, partitions, hold-outs and shuffling (default: 0).
    max_samples : int
        Cap on each split's size, applied before partitioning; 0 = all (default: 0).
    num_workers : int
        DataLoader worker processes (default: 0).
    """

    data_dir: str = ""
    partition: tuple[int, int] | None = None
    batch_size: int = 64
    partitioning: str = "iid"
    dirichlet_alpha: float = 0.5
    seed: int = 0
    max_samples: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch-size={self.batch_size}: must be >= 1.")
        if self.max_samples < 0:
            raise ConfigError(f"max-samples={self.max_samples}: must be >= 0 (0 means all).")
        check_partitioning(self.partitioning)
        if self.partition is not None:
            check_partition_id(*self.partition)

    def located(self, default_dir: str) -> Site:
        """This site with ``default_dir`` as its data directory when it names none."""
        return self if self.data_dir else replace(self, data_dir=default_dir)

    def pooled(self) -> Site:
        """The same data settings over every file (no partition): the server's view."""
        return replace(self, partition=None)


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


def capped_splits(site: Site, has_test: bool, need_train: bool,
                  read: Callable[[str], D], take: Callable[[D, np.ndarray], D],
                  size: Callable[[D], int]) -> tuple[D | None, D]:
    """(train, test) of a site's files after the ``max-samples`` cap.

    Without test files, test is a seeded ``HOLD_OUT_FRACTION`` of train, removed from it.

    Parameters
    ----------
    site : Site
        The site (its ``max_samples`` and ``seed`` are used).
    has_test : bool
        Whether the site's files include a test split.
    need_train : bool
        Read the training split even when the test split exists on its own.
    read : Callable[[str], D]
        Reads ``'train'`` or ``'test'``.
    take, size : Callable
        Select rows of what ``read`` returns; count them.
    """

    def capped(split: str) -> D:
        data = read(split)
        return take(data, cap_indices(size(data), site.max_samples, site.seed))

    train = capped("train") if need_train or not has_test else None
    if has_test:
        return train, capped("test")
    assert train is not None  # read above when there are no test files
    rest, held = hold_out_indices(size(train), HOLD_OUT_FRACTION, site.seed)
    return take(train, rest), take(train, held)


def partition_rows(labels: np.ndarray, site: Site) -> np.ndarray:
    """Positions (into ``labels``) of this site's training samples; all when no partition.

    ``labels`` are one class per sample (``dirichlet`` skews by them); multi-label tasks pass
    one representative class per sample, or use ``iid``.
    """
    if site.partition is None:
        return np.arange(len(labels))
    parts = partition_indices(labels, site.partition[1], site.partitioning,  # type: ignore[arg-type]
                              site.dirichlet_alpha, site.seed)
    return np.sort(parts[site.partition[0]])


def validation_rows(num_samples: int, site: Site) -> np.ndarray:
    """This site's IID shard of an evaluation split; all of it when there is no partition."""
    if site.partition is None:
        return np.arange(num_samples)
    return np.sort(iid_partition(num_samples, site.partition[1], site.seed)[site.partition[0]])


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
    """Base of the tasks' data modules: one ``Site`` and the loaders; a subclass's ``setup``
    fills ``train_set``, ``val_set`` and ``test_set``.

    Parameters
    ----------
    site : Site
        Where this site's data is and how it is sampled (``data_dir`` already resolved).
    """

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site
        self.data_dir = site.data_dir
        self.batch_size = site.batch_size
        self.partition = site.partition
        self.partitioning = site.partitioning
        self.dirichlet_alpha = site.dirichlet_alpha
        self.seed = site.seed
        self.max_samples = site.max_samples
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
        return make_loader(data, stage, self.batch_size, shuffle, self.site.num_workers,
                           pin_memory=torch.cuda.is_available())


class ModelRegistry(Generic[B]):
    """Model builders of one task, by name (the ``model`` run-config key).

    torchvision/timm-style: ``register`` refuses duplicates, ``names`` is sorted and
    ``builder`` lists the valid names when asked for an unknown one. Each task keeps its own
    instance, since each task's builders take different arguments.

    Parameters
    ----------
    kind : str
        What the models are, for error messages (e.g. ``'an image model'``).
    default : str
        The model ``model=''`` means.
    task : str
        The task's registry name, for the example in error messages.
    """

    def __init__(self, kind: str, default: str, task: str) -> None:
        self.kind, self.default, self.task = kind, default, task
        self._builders: dict[str, B] = {}

    def register(self, name: str) -> Callable[[B], B]:
        """Decorator registering a builder as ``name``; a second one is refused."""

        def decorate(builder: B) -> B:
            if name in self._builders:
                raise ValueError(f"model {name!r} is already registered")
            self._builders[name] = builder
            return builder

        return decorate

    def names(self) -> list[str]:
        """Names of the registered models, sorted."""
        return sorted(self._builders)

    def builder(self, name: str) -> B:
        """The builder registered as ``name``; an unknown name lists the valid ones."""
        try:
            return self._builders[name]
        except KeyError:
            raise ConfigError(
                f"model={name!r} is not {self.kind}; use one of: {', '.join(self.names())} "
                f"(or model='' for {self.default}), e.g. --run-config "
                f"\"task='{self.task}' model='{self.default}'\"."
            ) from None
