"""Server-side co-learning, with Flower and NumPy only: the round schedule over any Flower
strategy (``CoLearnSchedule``), the paper's configuration (``CoLearn``), the pure LR / epoch
schedules, the wire keys and Flower's server optimizers by name."""

from __future__ import annotations

from strategies.colearn import CoLearn
from strategies.colearn_schedule import CoLearnSchedule
from strategies.cycles import LR_SCHEDULES, lr_at, round_lr_bounds
from strategies.epochs import EPOCH_SCHEDULES, local_epochs
from strategies.errors import ScheduleError
from strategies.server_optimizers import SERVER_OPTIMIZERS, server_optimizer

__all__ = ["CoLearn", "CoLearnSchedule", "EPOCH_SCHEDULES", "LR_SCHEDULES", "SERVER_OPTIMIZERS",
           "ScheduleError", "local_epochs", "lr_at", "round_lr_bounds", "server_optimizer"]
