"""A user's own tiny LightningModule and DataModule (not from ``tasks/``), for plugin tests.

The data carry a learnable rule (the label is the sign of the first feature), so a few
co-learning rounds must beat chance by a wide margin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinyClassifier(pl.LightningModule):
    """Two-class MLP with a BatchNorm buffer; optimizer and optional scheduler of its own."""

    def __init__(self, optimizer: str = "sgd", with_scheduler: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
        self.optimizer_name, self.with_scheduler = optimizer, with_scheduler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("loss", nn.functional.cross_entropy(logits, y))
        self.log("accuracy", (logits.argmax(1) == y).float().mean())

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def configure_optimizers(self) -> Any:
        if self.optimizer_name == "adam":
            optimizer: torch.optim.Optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        else:
            optimizer = torch.optim.SGD(self.parameters(), lr=0.123, momentum=0.9)
        if not self.with_scheduler:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)}


class TinyLinear(TinyClassifier):
    """``TinyClassifier`` without BatchNorm: its gradient over a batch is the mean of its
    gradients over the batch's halves, as distributed data parallel computes it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def rule_data(n: int, seed: int) -> TensorDataset:
    """``n`` samples whose label is whether the first feature is positive."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    return TensorDataset(x, (x[:, 0] > 0).long())


class TinyData(pl.LightningDataModule):
    """A site's synthetic data: ``n`` training and ``n // 2`` validation samples."""

    def __init__(self, n: int = 64, seed: int = 0, batch_size: int = 16,
                 shuffle: bool = True) -> None:
        super().__init__()
        self.n, self.seed, self.batch_size, self.shuffle = n, seed, batch_size, shuffle

    def train_dataloader(self) -> DataLoader:
        return DataLoader(rule_data(self.n, self.seed), batch_size=self.batch_size,
                          shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(rule_data(self.n // 2, self.seed + 100), batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(rule_data(200, 999), batch_size=50)


FAKE_TRAIN, FAKE_TEST = 120, 30  # images in fake_fashion_mnist's splits


def fake_fashion_mnist(folder: Path) -> Path:
    """A tiny Fashion-MNIST look-alike in ``folder`` (gzip idx files): pixel [0, 0] of image i
    holds i % 256 (its identity) and its label is i % 10."""
    import numpy as np

    from tasks.image.fashion_mnist import write_idx

    rng = np.random.default_rng(0)
    for prefix, size in (("train", FAKE_TRAIN), ("t10k", FAKE_TEST)):
        images = rng.integers(0, 256, (size, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(size) % 256
        labels = (np.arange(size) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder
