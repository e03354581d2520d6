"""``ServerSchedule``: the server's LR cycle drives whatever optimizer the user's module
configures (a Lightning callback a site's Trainer runs in a co-learning round)."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_warn
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
