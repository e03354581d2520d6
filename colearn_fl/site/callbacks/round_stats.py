"""``RoundStats``: what a site measures in a round and reports back (train loss, examples,
epochs run, the LR of its first and last step, and per local epoch: the training loss, the LR
at the epoch's end and the validation metrics)."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.data import extract_batch_size
from typing_extensions import override

from colearn_fl.errors import ConfigError

PUBLISHED = "colearn-round/"  # prefix of the figures put in trainer.callback_metrics
PUBLISHED_EPOCHS = PUBLISHED + "epoch/"  # ... and of the per-epoch series (1-d tensors)


class RoundStats(Callback):
    """What a site reports: mean training loss over the round's batches, examples per epoch
    and evaluated, epochs run, and the LR of the round's first and last optimizer step.

    Reads the loss the module's ``training_step`` returns (a tensor or a dict with ``loss``),
    so a user's module needs no change. Put it after ``LRCycle`` in the callbacks, so
    it reads the LR the cycle set for the step.

    Per local epoch it keeps the mean training loss, the LR at the epoch's end and, when the
    Trainer validates (a site with a validation split), the metrics the module logged in
    validation: ``epochs`` maps a name (``train-loss``, ``lr``, the logged names) to one value
    per epoch. Validation never changes what the site trains: the random number generators
    are restored after it (a validation DataLoader draws a seed from torch's generator).

    Under distributed training (a site with ``devices > 1``) the examples and losses are
    summed over the workers when training ends, and the figures are put in
    ``trainer.callback_metrics``, which Lightning hands from rank 0 back to the process that
    called ``fit``: call ``read_back(trainer)`` there after ``fit``.
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
        self._epoch_loss = [0.0, 0]  # this epoch's loss sum and batches
        self.epochs: dict[str, list[float]] = {"train-loss": [], "lr": []}
        self._before_validation: dict[str, Any] = {}
        self._rng: tuple[Any, ...] | None = None

    @property
    def mean_loss(self) -> float:
        """Mean of the per-batch training losses seen so far (NaN before any batch)."""
        return self._loss_sum / self._batches if self._batches else math.nan

    @property
    def batches(self) -> int:
        """Training batches whose ``training_step`` returned a loss."""
        return self._batches

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not any(getattr(o, "param_groups", None) for o in trainer.optimizers):
            name = type(pl_module).__name__
            raise ConfigError(
                f"{name}.configure_optimizers() returned no optimizer, so this site has nothing "
                "to train with (co-learning sets the LR of an optimizer's param groups every "
                f"step). Return one from {name}.configure_optimizers, e.g. "
                "torch.optim.SGD(self.parameters(), lr=0.01).")

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_examples = 0
        self._epoch_loss = [0.0, 0]

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            value = float(loss.detach())
            self._loss_sum += value
            self._batches += 1
            self._epoch_loss[0] += value
            self._epoch_loss[1] += 1
        self._epoch_examples += extract_batch_size(batch)
        # Lightning draws the validation loader's seed before any validation hook runs: the
        # generators as the epoch's last training batch left them are restored after
        # validation (which runs at the epoch's end). An unsized loader: after every batch.
        total = trainer.num_training_batches
        if not math.isfinite(total) or batch_idx + 1 >= total:
            self._rng = (torch.get_rng_state(), random.getstate(), np.random.get_state(),
                         torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.examples_per_epoch = max(self.examples_per_epoch, self._epoch_examples)
        self.epochs_run += 1
        total, batches = self._epoch_loss
        if trainer.world_size > 1:  # this epoch's loss over every worker's batches
            sums = trainer.strategy.reduce(torch.tensor(
                [total, float(batches)], dtype=torch.float64, device=pl_module.device),
                reduce_op="sum")
            total, batches = float(sums[0]), int(sums[1])
        self.epochs["train-loss"].append(total / batches if batches else math.nan)
        self.epochs["lr"].append(self.lr_last)

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training or trainer.state.fn != "fit":
            return
        self._before_validation = dict(trainer.callback_metrics)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._rng is None or trainer.state.fn != "fit":  # not a validation inside fit
            return
        torch.set_rng_state(self._rng[0])
        random.setstate(self._rng[1])
        np.random.set_state(self._rng[2])
        if self._rng[3] is not None:
            torch.cuda.set_rng_state_all(self._rng[3])
        self._rng = None
        # What this validation logged: the entries it added or replaced (each epoch's
        # validation puts new tensors in callback_metrics; training's stay as they were).
        logged = {name: value for name, value in trainer.callback_metrics.items()
                  if self._before_validation.get(name) is not value
                  and not name.startswith(PUBLISHED) and value.numel() == 1}
        for name, value in logged.items():
            series = self.epochs.setdefault(_epoch_name(name), [])
            series += [math.nan] * (self.epochs_run - len(series))  # epochs it was not logged
            series.append(float(value))

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:  # every worker saw its share: sum over them
            sums = trainer.strategy.reduce(torch.tensor(
                [float(self.examples_per_epoch), self._loss_sum, float(self._batches)],
                dtype=torch.float64, device=pl_module.device), reduce_op="sum")
            self.examples_per_epoch = int(sums[0])
            self._loss_sum, self._batches = float(sums[1]), int(sums[2])
        for name, value in self._published().items():
            trainer.callback_metrics[PUBLISHED + name] = torch.tensor(value, dtype=torch.float64)
        for name, series in self.epochs.items():
            trainer.callback_metrics[PUBLISHED_EPOCHS + name] = torch.tensor(
                series, dtype=torch.float64)

    def _published(self) -> dict[str, float]:
        return {"examples-per-epoch": self.examples_per_epoch, "loss-sum": self._loss_sum,
                "batches": self._batches, "epochs-run": self.epochs_run,
                "lr-first": self.lr_first, "lr-last": self.lr_last}

    def read_back(self, trainer: pl.Trainer) -> None:
        """Take the training figures from ``trainer.callback_metrics`` (where a spawned rank
        0 left them); a no-op when training ran in this process."""
        metrics = trainer.callback_metrics
        if PUBLISHED + "batches" not in metrics:
            return
        value = {name: float(metrics[PUBLISHED + name]) for name in self._published()}
        self.examples_per_epoch, self.epochs_run = (int(value["examples-per-epoch"]),
                                                    int(value["epochs-run"]))
        self._loss_sum, self._batches = value["loss-sum"], int(value["batches"])
        self.lr_first, self.lr_last = value["lr-first"], value["lr-last"]
        self.epochs = {name.removeprefix(PUBLISHED_EPOCHS): [float(v) for v in series.tolist()]
                       for name, series in metrics.items() if name.startswith(PUBLISHED_EPOCHS)}

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


def _epoch_name(logged: str) -> str:
    """The kebab-case name of a metric logged in validation, kept apart from the two names
    the site measures itself (``train-loss``, ``lr``)."""
    name = logged.replace("_", "-").replace("/", "-")
    return f"val-{name}" if name in ("train-loss", "lr") else name
