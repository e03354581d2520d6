"""The training, validation and test steps every task's LightningModule shares.

A batch is ``(inputs, targets)``, ``self(inputs)`` gives the outputs and ``criterion`` the loss.
Every task logs the same two losses under the same names: ``train-loss`` (the epoch mean while
training; the sites report it to the server) and ``loss`` (validation and test). A task adds
its own metrics by overriding ``score`` (per batch) and ``log_epoch_metrics`` (at the end of
an evaluation epoch, for metrics such as AUROC that need every batch first).
"""

from __future__ import annotations

from typing import Any, Literal

import pytorch_lightning as pl
import torch

Stage = Literal["validate", "test"]


class SupervisedModule(pl.LightningModule):
    """Base of the tasks' modules: shared steps, task-specific loss and metrics."""

    def criterion(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``outputs`` (what ``forward`` returns) against ``targets``."""
        raise NotImplementedError

    def score(self, stage: Stage, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Update (and log) the task's metrics for one evaluation batch (default: none)."""

    def log_epoch_metrics(self, stage: Stage) -> None:
        """Log the metrics that need the whole evaluation epoch (default: none)."""

    def training_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = self.criterion(self(inputs), targets)
        self.log("train-loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(targets))
        return loss

    def validation_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("validate", batch)

    def test_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def on_validation_epoch_end(self) -> None:
        self.log_epoch_metrics("validate")

    def on_test_epoch_end(self) -> None:
        self.log_epoch_metrics("test")

    def _evaluate(self, stage: Stage, batch: tuple[Any, torch.Tensor]) -> None:
        inputs, targets = batch
        outputs = self(inputs)
        self.log("loss", self.criterion(outputs, targets), on_step=False, on_epoch=True,
                 batch_size=len(targets))
        self.score(stage, outputs, targets)
