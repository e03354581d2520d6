"""The federated LR range test's aggregate, on hand-computed answers."""

from __future__ import annotations

import pytest

from strategies.errors import ScheduleError
from strategies.lr_range import aggregate_suggestions


def test_median_suggestion_capped_below_the_smallest_divergence() -> None:
    # Prepare: three sites; the median suggestion is 0.05, the smallest divergence 0.12
    sites = [{"lr-suggested": 0.01, "lr-diverged": 1.0},
             {"lr-suggested": 0.05, "lr-diverged": 0.12},
             {"lr-suggested": 0.3, "lr-diverged": 1.0}]
    # Execute
    found = aggregate_suggestions(sites)
    # Assert: cap = 0.12 / 4 = 0.03 < 0.05, so the cap wins
    assert found["median-suggestion"] == pytest.approx(0.05)
    assert found["divergence-cap"] == pytest.approx(0.03)
    assert found["lr-max"] == pytest.approx(0.03)


def test_median_wins_when_below_the_cap() -> None:
    found = aggregate_suggestions([{"lr-suggested": 0.02, "lr-diverged": 1.0},
                                   {"lr-suggested": 0.04, "lr-diverged": 1.0}])
    assert found["lr-max"] == pytest.approx(0.03)  # median of two = their mean


def test_no_answers_is_an_error() -> None:
    with pytest.raises(ScheduleError, match="no site answered"):
        aggregate_suggestions([])
