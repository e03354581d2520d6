"""Server-side co-learning: the CoLearn strategy and its pure LR / epoch schedules."""

from __future__ import annotations

from typing import Any

from strategies.schedules import (
    EPOCH_SCHEDULES,
    LR_SCHEDULES,
    local_epochs,
    lr_at,
    round_lr_bounds,
)

__all__ = ["CoLearn", "EPOCH_SCHEDULES", "LR_SCHEDULES", "local_epochs", "lr_at", "round_lr_bounds"]


def __getattr__(name: str) -> Any:
    # CoLearn imports Flower and colearn_fl.config, which imports the schedules above:
    # loading it lazily keeps `strategies.schedules` importable without a cycle.
    if name == "CoLearn":
        from strategies.colearn import CoLearn

        return CoLearn
    raise AttributeError(f"module 'strategies' has no attribute {name!r}")
