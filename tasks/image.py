"""The ``image`` task: Fashion-MNIST classification with a small CNN.

Data per site:

- simulation (node config has ``partition-id`` / ``num-partitions``, no ``data-dir``): every
  site reads the full data set from the run config's ``data-dir`` and keeps its partition of
  the training split (``partitioning``: ``iid`` or ``dirichlet``); it validates on its IID shard
  of the test split.
- deployment (node config ``data-dir``): the site uses all of its own files. A site whose
  directory has no test files (``t10k-*``) validates on a seeded 10% hold-out of its training
  files, which is then removed from its training data.
- the server (``central_datamodule_fn``) evaluates on the whole test split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from flwr.app import Context
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from colearn_fl.config import RunConfig
from tasks import Task, register_task
from tasks.common import (
    HOLD_OUT_FRACTION,
    cap_indices,
    check_data_args,
    hold_out_indices,
    make_loader,
    partition_rows,
    site_source,
    validation_rows,
)
from tasks.fashion_mnist import DEFAULT_DATA_DIR, load_fashion_mnist, split_available
from tasks.image_models import DEFAULT_MODEL, get_model, list_models

# Fashion-MNIST pixel mean and std (of x / 255 over the training split).
PIXEL_MEAN = 0.2860
PIXEL_STD = 0.3530
IN_CHANNELS = 1
NUM_CLASSES = 10

Images = tuple[torch.Tensor, torch.Tensor]  # uint8 [N, 28, 28], int64 [N]


class ImageClassifier(pl.LightningModule):
    """Cross-entropy image classifier; logs ``train-loss`` and ``loss`` / ``accuracy``.

    Parameters
    ----------
    model : str
        Image model registry name (default: ``'small-cnn'``).
    in_channels : int
        Input channels (default: 1).
    num_classes : int
        Number of classes (default: 10).
    lr : float
        Initial SGD learning rate; the server's cycle overrides it every step (default: 0.05).
    momentum : float
        Nesterov momentum (default: 0.9).
    weight_decay : float
        L2 weight decay (default: 5e-4).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        in_channels: int = IN_CHANNELS,
        num_classes: int = NUM_CLASSES,
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = get_model(model, in_channels, num_classes)
        # Separate metric objects: validation and test accumulate independently.
        self.val_accuracy = MulticlassAccuracy(num_classes, average="micro")
        self.test_accuracy = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of normalised images ``[B, C, H, W]``."""
        return self.net(images)

    def training_step(self, batch: Images, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train-loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(labels))
        return loss

    def validation_step(self, batch: Images, batch_idx: int) -> None:
        self._evaluate(batch, self.val_accuracy)

    def test_step(self, batch: Images, batch_idx: int) -> None:
        self._evaluate(batch, self.test_accuracy)

    def _evaluate(self, batch: Images, accuracy: MulticlassAccuracy) -> None:
        images, labels = batch
        logits = self(images)
        accuracy(logits, labels)
        self.log("loss", F.cross_entropy(logits, labels), on_step=False, on_epoch=True,
                 batch_size=len(labels))
        self.log("accuracy", accuracy, on_step=False, on_epoch=True, batch_size=len(labels))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # No scheduler: the server's LR cycle (ServerSchedule callback) sets the LR.
        return torch.optim.SGD(
            self.parameters(),
            lr=self.hparams.lr,
            momentum=self.hparams.momentum,
            nesterov=True,
            weight_decay=self.hparams.weight_decay,
        )


class ImageDataModule(pl.LightningDataModule):
    """Fashion-MNIST of one site (a simulation partition or its own files), in memory.

    Parameters
    ----------
    data_dir : str
        Directory with the idx files.
    batch_size : int
        Batch size of every loader.
    partition_id : int | None
        This site's simulation partition; ``None`` = use all the files (default: None).
    num_partitions : int | None
        Number of simulation partitions; required with ``partition_id`` (default: None).
    partitioning : {'iid', 'dirichlet'}
        How the training split is divided (default: ``'iid'``).
    dirichlet_alpha : float
        Concentration for ``dirichlet`` (default: 0.5).
    seed : int
        Seed of the subsets, partitions, hold-out and shuffling (default: 0).
    max_samples : int
        Cap on each split's size, applied before partitioning; 0 = all (default: 0).
    num_workers : int
        DataLoader worker processes (default: 0).
    """

    def __init__(
        self,
        data_dir: str,
        batch_size: int,
        partition_id: int | None = None,
        num_partitions: int | None = None,
        partitioning: str = "iid",
        dirichlet_alpha: float = 0.5,
        seed: int = 0,
        max_samples: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        check_data_args(batch_size, partition_id, num_partitions, partitioning, max_samples)
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.partition_id = partition_id
        self.num_partitions = num_partitions
        self.partitioning = partitioning
        self.dirichlet_alpha = dirichlet_alpha
        self.seed = seed
        self.max_samples = max_samples
        self.num_workers = num_workers
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    def setup(self, stage: str) -> None:
        """Load, cap, split and normalise once; later calls reuse the tensors."""
        if stage in ("fit", "validate") and self.train_set is None:
            train, test = self._raw_splits(need_train=True)
            if self.test_set is None:
                self.test_set = _normalise(test)
            self.train_set = _normalise(self._my_train(train))
            self.val_set = self._my_validation(self.test_set)
        elif stage in ("test", "predict") and self.test_set is None:
            self.test_set = _normalise(self._raw_splits(need_train=False)[1])

    def _raw_splits(self, need_train: bool) -> tuple[Images | None, Images]:
        """(train, test) after the ``max-samples`` cap; test = hold-out if no test files."""
        has_test = split_available(self.data_dir, "test")
        train = None
        if need_train or not has_test:
            train = _cap(load_fashion_mnist(self.data_dir, "train"), self.max_samples, self.seed)
        if has_test:
            test = _cap(load_fashion_mnist(self.data_dir, "test"), self.max_samples, self.seed)
        else:
            assert train is not None  # loaded above when there are no test files
            rest, held = hold_out_indices(len(train[1]), HOLD_OUT_FRACTION, self.seed)
            train, test = _take(train, rest), _take(train, held)
        return train, test

    def _my_train(self, train: Images | None) -> Images:
        assert train is not None  # _raw_splits(need_train=True) always loads it
        rows = partition_rows(train[1].numpy(), self._partition(), self.partitioning,
                              self.dirichlet_alpha, self.seed)
        return _take(train, rows)

    def _my_validation(self, test: TensorDataset) -> TensorDataset:
        index = torch.from_numpy(validation_rows(len(test), self._partition(), self.seed))
        return TensorDataset(*(tensor[index] for tensor in test.tensors))

    def _partition(self) -> tuple[int, int] | None:
        if self.partition_id is None or self.num_partitions is None:
            return None
        return self.partition_id, self.num_partitions

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, "fit", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, "validate", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The whole test split (the server's central evaluation)."""
        return self._loader(self.test_set, "test", shuffle=False)

    def _loader(self, data: TensorDataset | None, stage: str, shuffle: bool) -> DataLoader:
        return make_loader(data, stage, self.batch_size, shuffle, self.num_workers)


def _cap(data: Images, max_samples: int, seed: int) -> Images:
    return _take(data, cap_indices(len(data[1]), max_samples, seed))


def _take(data: Images, index: np.ndarray) -> Images:
    rows = torch.from_numpy(np.asarray(index, dtype=np.int64))
    return data[0][rows], data[1][rows]


def _normalise(data: Images) -> TensorDataset:
    """uint8 ``[N, H, W]`` -> float ``[N, 1, H, W]`` standardised, once for the whole split."""
    images = (data[0].unsqueeze(1).float() / 255.0 - PIXEL_MEAN) / PIXEL_STD
    return TensorDataset(images, data[1])


def module_fn(run_config: Mapping[str, Any]) -> ImageClassifier:
    """The model named by ``model`` ('' = small-cnn), SGD starting at ``lr-max``."""
    config = RunConfig.from_dict(run_config)
    return ImageClassifier(model=config.model or DEFAULT_MODEL, lr=config.lr_max)


def _datamodule(config: RunConfig, data_dir: str, partition: tuple[int, int] | None
                ) -> ImageDataModule:
    partition_id, num_partitions = partition if partition is not None else (None, None)
    return ImageDataModule(
        data_dir=data_dir,
        batch_size=config.batch_size,
        partition_id=partition_id,
        num_partitions=num_partitions,
        partitioning=config.partitioning,
        dirichlet_alpha=config.dirichlet_alpha,
        seed=config.seed,
        max_samples=config.max_samples,
        num_workers=config.num_workers,
    )


def datamodule_fn(context: Context) -> ImageDataModule:
    """A site's data: its node-config ``data-dir`` (all of it) or its simulation partition."""
    source = site_source(context, DEFAULT_DATA_DIR)
    return _datamodule(RunConfig.from_dict(context.run_config), source.data_dir,
                       source.partition)


def central_datamodule_fn(run_config: Mapping[str, Any]) -> ImageDataModule | None:
    """The server's whole test split, or ``None`` when ``data-dir`` has no test files."""
    config = RunConfig.from_dict(run_config)
    data_dir = config.data_dir or DEFAULT_DATA_DIR
    if not split_available(data_dir, "test"):
        return None
    return _datamodule(config, data_dir, None)


register_task(
    Task(
        name="image",
        module_fn=module_fn,
        datamodule_fn=datamodule_fn,
        central_datamodule_fn=central_datamodule_fn,
        metrics=("accuracy",),
        models=list_models,
    )
)
