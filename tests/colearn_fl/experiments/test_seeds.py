"""Multi-seed summaries: means, sample std and paired 95 % intervals, by hand."""

from __future__ import annotations

import math

import pytest

from colearn_fl.experiments.seeds import summarise, t_quantile


def test_mean_std_and_paired_difference_by_hand() -> None:
    # Prepare: 3 seeds; fedavg - colearn per seed = +0.02, +0.01, +0.03
    accuracy = {0: {"colearn": 0.90, "fedavg": 0.92},
                1: {"colearn": 0.88, "fedavg": 0.89},
                2: {"colearn": 0.86, "fedavg": 0.89}}
    # Execute
    colearn, fedavg = summarise(accuracy)
    # Assert: mean 0.88, sample std 0.02; diffs mean 0.02, std 0.01, half-width
    # t(0.975, 2) * 0.01 / sqrt(3) = 4.303 * 0.005774 = 0.024843
    assert colearn.method == "colearn" and colearn.mean == pytest.approx(0.88)
    assert colearn.std == pytest.approx(0.02)
    # co-learning against itself: every paired difference is 0, so is its interval
    assert (colearn.diff, colearn.diff_low, colearn.diff_high) == (0.0, 0.0, 0.0)
    assert fedavg.diff == pytest.approx(0.02)
    assert fedavg.diff_low == pytest.approx(0.02 - 0.024843, abs=1e-6)
    assert fedavg.diff_high == pytest.approx(0.02 + 0.024843, abs=1e-6)


def test_one_seed_has_no_interval_and_no_reference_no_difference() -> None:
    (only,) = summarise({0: {"vanilla": 0.9}})
    assert only.std == 0.0 and math.isnan(only.diff)
    colearn, vanilla = summarise({3: {"colearn": 0.8, "vanilla": 0.9}})
    assert vanilla.diff == pytest.approx(0.1) and math.isnan(vanilla.diff_low)


def test_every_method_needs_every_seed() -> None:
    with pytest.raises(ValueError, match=r"missing \(seed, method\): \[\(1, 'fedavg'\)\]"):
        summarise({0: {"colearn": 0.9, "fedavg": 0.9}, 1: {"colearn": 0.9}})


def test_t_quantiles() -> None:
    assert t_quantile(1) == 12.706 and t_quantile(30) == 2.042
    assert t_quantile(1000) == pytest.approx(1.95996, abs=1e-4)
