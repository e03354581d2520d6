"""Fashion-MNIST split into one folder per site, each readable on its own (a deployment demo).

A SuperNode started with ``--node-config "data-dir='...'"`` trains on every file of that
folder, so each site gets a folder holding only its own shard, in the data set's own idx
format.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np

from tasks.errors import ConfigError, DataError
from tasks.image.fashion_mnist import SPLIT_FILES, load_fashion_mnist, write_idx
from tasks.partition import Partitioning, check_partitioning, iid_partition, partition_indices

SITE_PREFIX = "site-"


def _cap(index: np.ndarray, max_samples: int, rng: np.random.Generator) -> np.ndarray:
    if max_samples == 0 or len(index) <= max_samples:
        return index
    return np.sort(rng.choice(index, size=max_samples, replace=False))


def write_site_shards(
    source_dir: str | Path,
    out_dir: str | Path,
    sites: int,
    seed: int = 0,
    max_samples: int = 0,
    partitioning: str = "iid",
    alpha: float = 0.5,
) -> list[Path]:
    """Split Fashion-MNIST into one folder per site, each readable on its own.

    The training split is divided with ``partition_indices`` (the simulation's split, so a
    deployment demo and a simulation with the same seed see the same sites); the test split
    is divided IID. Each ``out_dir/site-<i>/`` holds the four gzip idx files of its shard.

    Parameters
    ----------
    source_dir : str | Path
        Folder with the full data set (e.g. ``/usr/share/datasets/fashion-mnist``).
    out_dir : str | Path
        Output folder (created); give a site's SuperNode ``data-dir='out_dir/site-<i>'``.
    sites : int
        Number of sites, >= 1.
    seed : int
        Seed of the partition and of the ``max_samples`` subset (default: 0).
    max_samples : int
        Cap on each site's training and test images; 0 = its whole share (default: 0).
    partitioning : {'iid', 'dirichlet'}
        How the training split is divided (default: ``'iid'``).
    alpha : float
        Dirichlet concentration for ``dirichlet`` (default: 0.5).

    Returns
    -------
    list[Path]
        The site folders, in site order.
    """
    if max_samples < 0:
        raise ConfigError(f"max-samples={max_samples}: must be >= 0 (0 = each site's whole "
                          "share).")
    check_partitioning(partitioning)
    source, out = Path(source_dir), Path(out_dir)
    if source.resolve() == out.resolve():
        raise DataError(f"out_dir {out} is the source folder; choose a new folder for shards.")
    train, test = load_fashion_mnist(source, "train"), load_fashion_mnist(source, "test")
    train_parts = partition_indices(train[1].numpy(), sites, cast(Partitioning, partitioning),
                                    alpha, seed)
    test_parts = iid_partition(len(test[1]), sites, seed)
    rng = np.random.default_rng(seed)
    folders = []
    for site, (train_index, test_index) in enumerate(zip(train_parts, test_parts, strict=True)):
        folder = out / f"{SITE_PREFIX}{site}"
        for split, data, index in (("train", train, train_index), ("test", test, test_index)):
            rows = _cap(index, max_samples, rng)
            images_name, labels_name = SPLIT_FILES[split]
            write_idx(folder / f"{images_name}.gz", data[0].numpy()[rows])
            write_idx(folder / f"{labels_name}.gz", data[1].numpy()[rows].astype(np.uint8))
        folders.append(folder)
    return folders
