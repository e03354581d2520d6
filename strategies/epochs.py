"""Local epochs per round (ILE and its variants): how long each round trains.

Pure functions, no Flower or Lightning; rounds count from 1. The LR cycle inside a round is in
``strategies.cycles``.

Reference: Mi et al., "Collaborative deep learning across multiple data centers", Sci China
Inf Sci 63:182102 (2020): incremental local epochs (ILE).
"""

from __future__ import annotations

import math

from strategies.cycles import check_round
from strategies.errors import ScheduleError

EPOCH_SCHEDULES = ("fixed", "linear", "geometric", "decaying", "budget")
BUDGET_SHAPES = ("geometric", "decaying", "flat")


def validate_epochs(schedule: str, initial: int, mult: float = 2.0, step: int = 1,
                    budget: int = 0, rounds: int = 0, shape: str = "geometric") -> None:
    """Raise ``ScheduleError`` unless the epoch schedule is known and its parameters valid."""
    if schedule not in EPOCH_SCHEDULES:
        raise ScheduleError(
            f"epochs-schedule={schedule!r} is not known; use one of: "
            f"{', '.join(EPOCH_SCHEDULES)}."
        )
    if initial < 1:
        raise ScheduleError(f"epochs-initial={initial}: must be a positive number of epochs.")
    if mult < 1.0:
        raise ScheduleError(f"epochs-mult={mult}: must be >= 1 (the growth factor of "
                            "'geometric', the decay factor of 'decaying').")
    if step < 0:
        raise ScheduleError(f"epochs-step={step}: must be >= 0 (local epochs never shrink).")
    if schedule == "budget":
        _check_budget(budget, rounds, shape)


def local_epochs(
    schedule: str, server_round: int, initial: int, mult: float = 2.0, step: int = 1,
    budget: int = 0, rounds: int = 0, shape: str = "geometric",
) -> int:
    """Local epochs in round ``server_round`` (ILE, or its opposite).

    - ``fixed``: ``initial`` every round.
    - ``linear``: ``initial + step * (round - 1)``.
    - ``geometric``: ``round(initial * mult ** (round - 1))``.
    - ``decaying``: ``round(initial / mult ** (round - 1))``, at least 1 (many local epochs
      early, few late; arXiv 2305.09628).
    - ``budget``: ``budget`` pooled epochs spread over ``rounds`` rounds in ``shape``
      (``budget_epochs``).
    """
    validate_epochs(schedule, initial, mult, step, budget, rounds, shape)
    check_round(server_round)
    if schedule == "fixed":
        return initial
    if schedule == "linear":
        return initial + step * (server_round - 1)
    if schedule == "decaying":
        return max(1, round(initial / mult ** (server_round - 1)))
    if schedule == "budget":
        if server_round > rounds:
            raise ValueError(f"server_round={server_round}: the budget covers {rounds} rounds")
        return budget_epochs(budget, rounds, shape, mult)[server_round - 1]
    return max(1, round(initial * mult ** (server_round - 1)))


def budget_epochs(budget: int, rounds: int, shape: str = "geometric",
                  mult: float = 2.0) -> list[int]:
    """Whole local epochs per round that sum exactly to ``budget`` (pooled epochs).

    1. Each round's share of the budget follows ``shape``: ``geometric`` grows by ``mult``
       per round, ``decaying`` shrinks by it, ``flat`` is even.
    2. Shares are rounded down (every round gets at least 1 epoch).
    3. The epochs left over go, one by one, to the rounds whose share lost the most to the
       rounding (the earliest first on ties), or are taken back from the rounds that gained.

    "7 epochs in 3 rounds", geometric x2: ``[1, 2, 4]``; decaying: ``[4, 2, 1]``; flat:
    ``[3, 2, 2]``.
    """
    _check_budget(budget, rounds, shape)
    if mult < 1.0:
        raise ScheduleError(f"epochs-mult={mult}: must be >= 1.")
    if shape == "flat":
        weights = [1.0] * rounds
    else:
        weights = [mult ** r for r in range(rounds)]
        if shape == "decaying":
            weights.reverse()
    share = [budget * w / sum(weights) for w in weights]
    epochs = [max(1, math.floor(x)) for x in share]
    while sum(epochs) < budget:
        epochs[max(range(rounds), key=lambda r: (share[r] - epochs[r], -r))] += 1
    while sum(epochs) > budget:
        epochs[min((r for r in range(rounds) if epochs[r] > 1),
                   key=lambda r: (share[r] - epochs[r], r))] -= 1
    return epochs


def _check_budget(budget: int, rounds: int, shape: str) -> None:
    if shape not in BUDGET_SHAPES:
        raise ScheduleError(f"budget-shape={shape!r} is not known; use one of: "
                            f"{', '.join(BUDGET_SHAPES)}.")
    if rounds < 1 or budget < rounds:
        raise ScheduleError(
            f"epochs-budget={budget} with num-server-rounds={rounds}: epochs-schedule='budget' "
            "needs a budget of at least one pooled epoch per round (e.g. --run-config "
            "\"epochs-schedule='budget' epochs-budget=7 num-server-rounds=3\").")
