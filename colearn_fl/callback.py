"""Lightning callbacks a site's Trainer runs in a co-learning round.

``ServerSchedule`` makes the server's LR cycle drive whatever optimizer the user's module
configures; ``RoundStats`` measures what the site reports back (train loss, examples).
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_warn
from pytorch_lightning.utilities.data import extract_batch_size
from typing_extensions import override

from strategies.schedules import lr_at, validate_lr_cycle


class ServerSchedule(Callback):
    """Set the LR of every optimizer param group before each optimizer step.

    The round's ``N`` optimizer steps follow the server's cycle: step ``k`` (from 0) uses
    ``lr_at(schedule, k / N, lr_max, lr_min)``, so a ``cosine`` round starts at ``lr_max`` and
    anneals towards ``lr_min``, restarting in the next round (SGDR). Works with any optimizer;
    if the module also configures an LR scheduler, the server's cycle takes precedence and a
    warning says so.

    Parameters
    ----------
    schedule : str
        Cycle shape (``cosine``, ``triangular``, ``triangular2``, ``exp-range``, ``constant``).
    lr_max : float
        Top of this round's cycle.
    lr_min : float
        Bottom of this round's cycle.
    """

    def __init__(self, schedule: str, lr_max: float, lr_min: float) -> None:
        validate_lr_cycle(schedule, lr_max, lr_min)
        self.schedule, self.lr_max, self.lr_min = schedule, lr_max, lr_min
        self._first_step = 0
        self._total_steps = 1
        self.lrs: list[float] = []  # LR applied at each step of the round

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.lr_scheduler_configs:
            rank_zero_warn(
                "The module configures its own LR scheduler; the server's co-learning cycle "
                f"({self.schedule}, {self.lr_max:g} -> {self.lr_min:g}) sets the LR before "
                "every step and takes precedence. Drop the scheduler from "
                "configure_optimizers to silence this warning."
            )
        self._first_step = trainer.global_step
        total = trainer.estimated_stepping_batches
        self._total_steps = max(1, int(total)) if math.isfinite(total) else 1
        self.lrs = []

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        step = trainer.global_step - self._first_step
        position = min(1.0, step / self._total_steps)
        lr = lr_at(self.schedule, position, self.lr_max, self.lr_min)
        for group in optimizer.param_groups:
            group["lr"] = lr
        self.lrs.append(lr)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule, "lr_max": self.lr_max, "lr_min": self.lr_min}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.schedule = state_dict["schedule"]
        self.lr_max, self.lr_min = state_dict["lr_max"], state_dict["lr_min"]


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
