"""The LR cycle: hand-computed values at the start, middle and end of a round; its bounds per
round."""

from __future__ import annotations

import math

import pytest

from strategies.cycles import LR_SCHEDULES, lr_at, round_lr_bounds


@pytest.mark.parametrize(
    ("schedule", "start", "middle", "end"),
    [
        # cosine (SGDR): lr_min + (lr_max - lr_min) * (1 + cos(pi * p)) / 2
        ("cosine", 0.1, 0.0505, 0.001),
        # triangular shapes rise from lr_min to lr_max at mid-round and fall back
        ("triangular", 0.001, 0.1, 0.001),
        ("triangular2", 0.001, 0.1, 0.001),
        ("exp-range", 0.001, 0.1, 0.001),
        ("constant", 0.1, 0.1, 0.1),
    ],
)
def test_lr_at_start_middle_end(schedule: str, start: float, middle: float, end: float) -> None:
    # Prepare
    lr_max, lr_min = 0.1, 0.001
    # Execute
    got = [lr_at(schedule, p, lr_max, lr_min) for p in (0.0, 0.5, 1.0)]
    # Assert
    assert got == pytest.approx([start, middle, end])


def test_cosine_quarter_point() -> None:
    # (1 + cos(pi/4)) / 2 = 0.853553...
    assert lr_at("cosine", 0.25, 1.0, 0.0) == pytest.approx((1 + math.sqrt(0.5)) / 2)


def test_triangular_quarter_point() -> None:
    assert lr_at("triangular", 0.25, 0.2, 0.0) == pytest.approx(0.1)


def test_every_lr_schedule_is_tested() -> None:
    assert set(LR_SCHEDULES) == {"cosine", "triangular", "triangular2", "exp-range", "constant"}


@pytest.mark.parametrize(
    ("schedule", "server_round", "expected_top"),
    [
        ("cosine", 3, 0.1),
        ("triangular", 3, 0.1),
        ("constant", 3, 0.1),
        ("triangular2", 1, 0.1),
        ("triangular2", 2, 0.001 + 0.099 / 2),
        ("triangular2", 3, 0.001 + 0.099 / 4),
        ("exp-range", 3, 0.001 + 0.099 * 0.25),  # gamma 0.5, squared
    ],
)
def test_round_lr_bounds(schedule: str, server_round: int, expected_top: float) -> None:
    # Execute
    top, bottom = round_lr_bounds(schedule, 0.1, 0.001, server_round, gamma=0.5)
    # Assert
    assert top == pytest.approx(expected_top)
    assert bottom == 0.001


def test_exp_range_uses_gamma() -> None:
    top, _ = round_lr_bounds("exp-range", 1.0, 0.0, 3, gamma=0.9)
    assert top == pytest.approx(0.81)
