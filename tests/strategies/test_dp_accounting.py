"""Central DP bookkeeping: the ledger against Google's dp-accounting called directly, the
effective and combined multipliers by hand, and the adaptive clip's geometric step."""

from __future__ import annotations

import math

import dp_accounting
import pytest
from dp_accounting.rdp import RdpAccountant
from flwr.supercore.differential_privacy import compute_adaptive_noise_params

from strategies.dp_accounting import (
    PrivacyLedger,
    combined_noise_multiplier,
    effective_noise_multiplier,
    geometric_update,
)

DELTA = 1e-5


def direct_epsilon(event: dp_accounting.DpEvent, rounds: int, replace_one: bool = False) -> float:
    relation = (dp_accounting.NeighboringRelation.REPLACE_ONE if replace_one
                else dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE)
    accountant = RdpAccountant(neighboring_relation=relation)
    accountant.compose(event, rounds)
    return accountant.get_epsilon(DELTA)


@pytest.mark.parametrize("rounds", [1, 4, 10])
def test_epsilon_without_sampling_is_the_gaussian_mechanisms_composed(rounds: int) -> None:
    # Prepare
    ledger = PrivacyLedger(DELTA, sampled=False)
    # Execute: every connected site (3 of 3) trains each round
    for _ in range(rounds):
        ledger.compose(ledger.event(1.3, 3, 3))
    # Assert: the library's own value for the same noise and rounds, no amplification
    assert ledger.epsilon() == pytest.approx(
        direct_epsilon(dp_accounting.GaussianDpEvent(1.3), rounds), rel=1e-12)


def test_epsilon_with_sampling_is_the_subsampled_mechanism_at_replace_one() -> None:
    # Prepare
    ledger = PrivacyLedger(DELTA, sampled=True)
    # Execute: 2 of 5 sites a round, 6 rounds, effective multiplier 1.3
    for _ in range(6):
        ledger.compose(ledger.event(1.3, 2, 5))
    # Assert: sampled without replacement; replace-one doubles the sensitivity, so the
    # accounted multiplier is half the effective one
    event = dp_accounting.SampledWithoutReplacementDpEvent(
        5, 2, dp_accounting.GaussianDpEvent(0.65))
    assert ledger.epsilon() == pytest.approx(direct_epsilon(event, 6, replace_one=True), rel=1e-12)


def test_a_round_from_fewer_sites_is_accounted_at_a_rate_never_below_its_own() -> None:
    # Prepare: the first release fixed the population at 10 connected sites
    ledger = PrivacyLedger(DELTA, sampled=True)
    ledger.compose(ledger.event(1.0, 3, 10))
    # Execute: 2 of 5 connected (rate 0.4)
    event = ledger.event(1.0, 2, 5)
    # Assert: 4 of 10, the same rate; 2 of 3 (rate 0.67) rounds up to 7 of 10
    assert (event.sample_size, event.population_size) == (4, 10)
    assert ledger.event(1.0, 2, 3).sample_size == 7


def test_projection_leaves_the_ledger_and_replay_rebuilds_it() -> None:
    # Prepare
    ledger = PrivacyLedger(DELTA, sampled=False)
    for multiplier in (1.0, 0.8):
        ledger.compose(ledger.event(multiplier, 2, 2))
    spent = ledger.epsilon()
    # Execute
    projected = ledger.projected(ledger.event(0.8, 2, 2))
    resumed = PrivacyLedger(DELTA, sampled=False)
    resumed.replay(ledger.releases)
    # Assert
    assert ledger.epsilon() == spent < projected
    assert len(ledger.releases) == 2
    assert resumed.epsilon() == pytest.approx(spent, rel=1e-12)
    direct = direct_epsilon(dp_accounting.ComposedDpEvent(
        [dp_accounting.GaussianDpEvent(1.0)] + [dp_accounting.GaussianDpEvent(0.8)] * 2), 1)
    assert projected == pytest.approx(direct, rel=1e-12)


def test_effective_multiplier_under_unequal_weights_by_hand() -> None:
    # Flower's std is z*C/n = 1.0*C/2; the weighted mean of weights 1 and 3 moves by up to
    # C*3/4 when the larger site changes: z_eff = (C/2) / (3C/4) = 2/3.
    assert effective_noise_multiplier(1.0, 2, [1.0, 3.0]) == pytest.approx(2 / 3)
    # Equal weights: the nominal multiplier; three sites where two were expected: 1.5 z
    assert effective_noise_multiplier(1.2, 2, [5.0, 5.0]) == pytest.approx(1.2)
    assert effective_noise_multiplier(1.0, 2, [4.0, 4.0, 4.0]) == pytest.approx(1.5)


def test_combined_multiplier_is_andrew_et_al_theorem_1() -> None:
    # (2^-2 + (2*1)^-2)^-1/2 = (1/4 + 1/4)^-1/2 = sqrt(2)
    assert combined_noise_multiplier(2.0, 1.0) == pytest.approx(math.sqrt(2))
    # Flower raises the model's multiplier so that model and count together give z
    stddev, model = compute_adaptive_noise_params(0.7, 10, 0.5)
    assert combined_noise_multiplier(model, stddev) == pytest.approx(0.7)
    assert combined_noise_multiplier(2.0, 0.0) == 0.0  # a count without noise: no privacy


def test_geometric_update_steps_toward_the_target_quantile() -> None:
    # 3 of 4 within the clip, target 1/2: C * exp(-0.2 * (0.75 - 0.5)) shrinks it
    assert geometric_update(1.0, 0.75, 0.5, 0.2) == pytest.approx(math.exp(-0.05))
    assert geometric_update(1.0, 0.25, 0.5, 0.2) == pytest.approx(math.exp(0.05))
    assert geometric_update(1.0, 0.5, 0.5, 0.2) == 1.0
