"""``LRCycle``: the server's LR cycle drives whatever optimizer the user's module
configures (a Lightning callback a site's Trainer runs in a co-learning round)."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_warn
from typing_extensions import override

from strategies.cycles import lr_at, validate_lr_cycle


class LRCycle(Callback):
    """Set the LR of every optimizer param group before each optimizer step.

    The round's ``N`` optimizer steps follow the server's cycle: step ``k`` (from 0) uses
    ``lr_at(schedule, k / N, lr_max, lr_min)``, so a ``cosine`` round starts at ``lr_max`` and
    anneals towards ``lr_min``, restarting in the next round (SGDR). Works with any optimizer;
    if the module also configures an LR scheduler, the server's cycle takes precedence and a
    warning says so. With training data that has no length (an ``IterableDataset``), the
    callback counts the batches of one pass before training to lay the cycle over the round.
    The first param group follows the cycle; a group that
    ``configure_optimizers`` built at another LR keeps its ratio to the first (groups at 1e-3
    and 1e-4 under a cycle from 0.01 run at 0.01 and 0.001 at the top).

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
        self.lrs: list[float] = []  # LR applied at each step of the round (the first group's)
        self._group_scales: dict[int, list[float]] = {}  # per optimizer: group LR / first's

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
        # Unsized data: Lightning gives inf, or max_steps (-1) when that is unset; 0 = count
        self._total_steps = int(total) if math.isfinite(total) and total > 0 else 0
        self.lrs = []
        self._group_scales = {}

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._total_steps:  # data without a length: one pass counts the batches
            batches = sum(1 for _ in trainer.train_dataloader)
            steps_per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
            self._total_steps = max(1, steps_per_epoch * max(1, trainer.max_epochs or 1))

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        step = trainer.global_step - self._first_step
        position = min(1.0, step / self._total_steps)
        lr = lr_at(self.schedule, position, self.lr_max, self.lr_min)
        for group, scale in zip(optimizer.param_groups, self._scales(optimizer), strict=True):
            group["lr"] = lr * scale
        self.lrs.append(lr)

    def _scales(self, optimizer: Any) -> list[float]:
        """Each param group's LR over the first group's, as ``configure_optimizers`` built
        them (read at the optimizer's first step, before the cycle changes any)."""
        key = id(optimizer)
        if key not in self._group_scales:
            bases = [float(g["lr"]) for g in optimizer.param_groups]
            first = bases[0]
            self._group_scales[key] = [b / first if first > 0 else 1.0 for b in bases]
        return self._group_scales[key]

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule, "lr_max": self.lr_max, "lr_min": self.lr_min}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.schedule = state_dict["schedule"]
        self.lr_max, self.lr_min = state_dict["lr_max"], state_dict["lr_min"]
