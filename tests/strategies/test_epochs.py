"""Local epochs per round (ILE and its variants), exact budgets, and every schedule error."""

from __future__ import annotations

import pytest

from strategies.cycles import lr_at, round_lr_bounds
from strategies.epochs import EPOCH_SCHEDULES, local_epochs
from strategies.errors import ScheduleError


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("fixed", [2, 2, 2, 2]),
        ("linear", [2, 5, 8, 11]),  # T0 + step * (r - 1), step 3
        ("geometric", [2, 4, 8, 16]),  # T0 * mult^(r - 1), mult 2
        ("decaying", [2, 1, 1, 1]),  # T0 / mult^(r - 1), at least 1
    ],
)
def test_local_epochs(schedule: str, expected: list[int]) -> None:
    got = [local_epochs(schedule, r, initial=2, mult=2.0, step=3) for r in (1, 2, 3, 4)]
    assert got == expected


def test_geometric_rounds_fractional_growth() -> None:
    # 1 * 1.5^(r-1) = 1, 1.5, 2.25, 3.375 -> 1, 2, 2, 3
    assert [local_epochs("geometric", r, 1, mult=1.5) for r in (1, 2, 3, 4)] == [1, 2, 2, 3]


def test_every_epoch_schedule_is_tested() -> None:
    # budget: test_budget_spreads_whole_epochs_summing_exactly
    assert set(EPOCH_SCHEDULES) == {"fixed", "linear", "geometric", "decaying", "budget"}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: lr_at("sawtooth", 0.5, 0.1, 0.0), "lr-schedule='sawtooth' is not known"),
        (lambda: lr_at("cosine", 0.5, 0.01, 0.1), "need 0 <= lr-min <= lr-max"),
        (lambda: lr_at("cosine", 0.5, 0.0, 0.0), "lr-max > 0"),
        (lambda: lr_at("cosine", 0.5, 0.1, -0.1), "need 0 <= lr-min"),
        (lambda: round_lr_bounds("exp-range", 0.1, 0.0, 2, gamma=1.5), "lr-gamma=1.5"),
        (lambda: local_epochs("cubic", 1, 1), "epochs-schedule='cubic' is not known"),
        (lambda: local_epochs("fixed", 1, 0), "epochs-initial=0"),
        (lambda: local_epochs("geometric", 1, 1, mult=0.5), "epochs-mult=0.5"),
        (lambda: local_epochs("linear", 1, 1, step=-1), "epochs-step=-1"),
    ],
)
def test_validation_errors_name_the_key(call, match: str) -> None:
    with pytest.raises(ScheduleError, match=match):
        call()


@pytest.mark.parametrize("call", [
    lambda: lr_at("cosine", 1.5, 0.1, 0.0),
    lambda: local_epochs("fixed", 0, 1),
    lambda: round_lr_bounds("cosine", 0.1, 0.0, 0),
])
def test_position_and_round_out_of_range(call) -> None:
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(
    ("budget", "rounds", "shape", "mult", "expected"),
    [
        (7, 3, "geometric", 2.0, [1, 2, 4]),  # "7 epochs in 3 rounds": shares 1, 2, 4 exactly
        (7, 3, "decaying", 2.0, [4, 2, 1]),
        (7, 3, "flat", 2.0, [3, 2, 2]),  # 2.33 each: the left-over epoch to the first round
        (10, 3, "geometric", 2.0, [1, 3, 6]),  # shares 1.43, 2.86, 5.71
        (3, 3, "geometric", 2.0, [1, 1, 1]),  # one epoch a round is the least
        (20, 4, "decaying", 3.0, [14, 4, 1, 1]),  # shares 13.5, 4.5, 1.5, 0.5
    ],
)
def test_budget_spreads_whole_epochs_summing_exactly(budget: int, rounds: int, shape: str,
                                                     mult: float, expected: list[int]) -> None:
    # Execute
    epochs = [local_epochs("budget", r, 1, mult, budget=budget, rounds=rounds, shape=shape)
              for r in range(1, rounds + 1)]
    # Assert
    assert epochs == expected and sum(epochs) == budget


def test_decaying_epochs_halve_down_to_one() -> None:
    assert [local_epochs("decaying", r, 8) for r in range(1, 6)] == [8, 4, 2, 1, 1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget": 2, "rounds": 3}, "epochs-budget=2 with num-server-rounds=3"),
        ({"budget": 7, "rounds": 3, "shape": "cubic"}, "budget-shape='cubic' is not known"),
    ],
)
def test_budget_errors_name_the_key(kwargs: dict, match: str) -> None:
    with pytest.raises(ScheduleError, match=match):
        local_epochs("budget", 1, 1, **kwargs)
