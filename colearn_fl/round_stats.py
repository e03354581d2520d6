"""``RoundStats``: what a site measures in a round and reports back (train loss, examples,
epochs run, the LR of its first and last step)."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.data import extract_batch_size
from typing_extensions import override


class RoundStats(Callback):
    """What a site reports: mean training loss over the round's batches, examples per epoch
    and evaluated, epochs run, and the LR of the round's first and last optimizer step.

    Reads the loss the module's ``training_step`` returns (a tensor or a dict with ``loss``),
    so a user's module needs no change. Put it after ``ServerSchedule`` in the callbacks, so
    it reads the LR the cycle set for the step.
    """

    def __init__(self) -> None:
        self._loss_sum = 0.0
        self._batches = 0
        self._epoch_examples = 0
        self.examples_per_epoch = 0
        self.eval_examples = 0
        self.epochs_run = 0
        self.lr_first = math.nan
        self.lr_last = math.nan

    @property
    def mean_loss(self) -> float:
        """Mean of the per-batch training losses seen so far (NaN before any batch)."""
        return self._loss_sum / self._batches if self._batches else math.nan

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_examples = 0

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._loss_sum += float(loss.detach())
            self._batches += 1
        self._epoch_examples += extract_batch_size(batch)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.examples_per_epoch = max(self.examples_per_epoch, self._epoch_examples)
        self.epochs_run += 1

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        self.lr_last = float(optimizer.param_groups[0]["lr"])
        if math.isnan(self.lr_first):
            self.lr_first = self.lr_last

    @override
    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        self.eval_examples += extract_batch_size(batch)
