"""The LR cycle inside a round (CLR): its bounds per round and the LR at each step.

Pure functions, no Flower or Lightning. The server decides a round's cycle *bounds*
(``round_lr_bounds``); the site decides the LR of each step from its position in the round
(``lr_at``). Rounds count from 1, positions run over [0, 1]. The epochs per round are in
``strategies.epochs``; ``CoLearnSchedule`` sends both as the round's schedule.

References: Mi et al., "Collaborative deep learning across multiple data centers", Sci China
Inf Sci 63:182102 (2020); Loshchilov & Hutter, "SGDR" (2017); Smith, "Cyclical learning rates
for training neural networks" (2017).
"""

from __future__ import annotations

import math

from strategies.errors import ScheduleError

LR_SCHEDULES = ("cosine", "triangular", "triangular2", "exp-range", "constant")


def validate_lr_cycle(schedule: str, lr_max: float, lr_min: float) -> None:
    """Raise ``ScheduleError`` unless ``schedule`` is known and ``0 <= lr_min <= lr_max``."""
    if schedule not in LR_SCHEDULES:
        raise ScheduleError(
            f"lr-schedule={schedule!r} is not known; use one of: {', '.join(LR_SCHEDULES)}."
        )
    if not (lr_max > 0 and 0 <= lr_min <= lr_max and math.isfinite(lr_max)):
        raise ScheduleError(
            f"lr-max={lr_max}, lr-min={lr_min}: need 0 <= lr-min <= lr-max and lr-max > 0 "
            "(e.g. --run-config 'lr-max=0.05 lr-min=0.0005')."
        )


def round_lr_bounds(
    schedule: str, lr_max: float, lr_min: float, server_round: int, gamma: float = 0.5
) -> tuple[float, float]:
    """The (top, bottom) of round ``server_round``'s LR cycle.

    ``triangular2`` halves the cycle's amplitude every round; ``exp-range`` multiplies it by
    ``gamma`` every round; every other shape keeps the configured bounds.
    """
    validate_lr_cycle(schedule, lr_max, lr_min)
    check_round(server_round)
    if schedule == "triangular2":
        decay = 0.5 ** (server_round - 1)
    elif schedule == "exp-range":
        if not 0.0 < gamma <= 1.0:
            raise ScheduleError(f"lr-gamma={gamma}: must be in (0, 1].")
        decay = gamma ** (server_round - 1)
    else:
        decay = 1.0
    return lr_min + (lr_max - lr_min) * decay, lr_min


def lr_at(schedule: str, position: float, lr_max: float, lr_min: float) -> float:
    """The LR at ``position`` in [0, 1] of a round whose cycle spans [``lr_min``, ``lr_max``].

    - ``cosine``: SGDR, from ``lr_max`` at 0 down to ``lr_min`` at 1.
    - ``triangular``, ``triangular2``, ``exp-range``: ``lr_min`` at 0, ``lr_max`` at 0.5,
      ``lr_min`` at 1 (the amplitude decay between rounds is in ``round_lr_bounds``).
    - ``constant``: ``lr_max`` throughout.
    """
    validate_lr_cycle(schedule, lr_max, lr_min)
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position={position}: must be in [0, 1]")
    if schedule == "constant":
        return lr_max
    if schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * position))
    else:
        shape = 1.0 - abs(2.0 * position - 1.0)
    return lr_min + (lr_max - lr_min) * shape


def check_round(server_round: int) -> None:
    if server_round < 1:
        raise ValueError(f"server_round={server_round}: rounds count from 1")
