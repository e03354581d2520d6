"""Central DP bookkeeping, Flower-only: what each round's noise is worth and adaptive clipping.

- ``effective_noise_multiplier``: Flower's client-side wrappers add noise of std
  ``z * C / n`` (``n`` sampled sites), which is ``z`` times the sensitivity of an *unweighted*
  mean. ``CoLearnSchedule`` averages weighted by examples, so one site's clipped update moves
  the mean by up to ``C * w_max / sum(w)``; the multiplier the noise actually gives is
  ``z * sum(w) / (n * w_max)``.
- ``combined_noise_multiplier``: adaptive clipping also releases a noised count of unclipped
  updates; Andrew et al. (2021, Theorem 1, https://arxiv.org/abs/1905.03871) show the pair is
  one Gaussian mechanism with ``z^-2 = z_model^-2 + (2 * sigma_b)^-2``.
- ``geometric_update``: Andrew et al.'s clip update ``C * exp(-lr * (b - q))``, ``b`` the
  noised fraction of updates *within* the clip and ``q`` the target quantile.
- ``PrivacyLedger``: Flower's ``RdpAccountant`` (Google's ``dp-accounting``, ``flwr[dp]``) fed
  one Gaussian event per released round, with a record per round that a resumed run replays.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.serverapp import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    RdpAccountant,
    SamplingMethod,
)
from flwr.serverapp.exception import PrivacyBudgetExhausted


@dataclass(frozen=True)
class AdaptiveClip:
    """Andrew et al.'s adaptive clipping settings.

    Parameters
    ----------
    quantile : float
        Target fraction of updates within the clip (``q``): the clip tracks that quantile of
        the sites' update norms.
    lr : float
        Step of the geometric update (``eta_C``).
    count_stddev : float
        Std of the Gaussian noise on the count of updates within the clip (``sigma_b``).
    """

    quantile: float = 0.5
    lr: float = 0.2
    count_stddev: float = 0.0


class BudgetSpent(PrivacyBudgetExhausted):
    """The next round would take epsilon past the target: the run ends before it.

    A normal end of a run (the last model is kept), not a failure; Flower's
    ``PrivacyBudgetExhausted`` so that Flower's own handling applies elsewhere.
    """

    def __init__(self, server_round: int, spent: float, projected: float, target: float,
                 delta: float) -> None:
        self.server_round, self.spent, self.projected = server_round, spent, projected
        self.target, self.delta = target, delta
        super().__init__(
            f"privacy budget spent: epsilon {spent:.4g} (delta {delta:g}) after round "
            f"{server_round - 1}; round {server_round} would bring it to {projected:.4g} > "
            f"dp-target-epsilon={target:g}, so the run stops with round {server_round - 1}'s "
            "model")


def effective_noise_multiplier(noise_multiplier: float, num_sampled_clients: int,
                               weights: list[float]) -> float:
    """The noise std ``z * C / n`` over the weighted mean's sensitivity ``C * w_max / sum(w)``.

    Equal weights over ``n`` sites give ``z``; one site holding more examples than the others
    gives less. Without weights (no site averaged) the nominal ``z``.
    """
    if not weights:
        return noise_multiplier
    return noise_multiplier * sum(weights) / (num_sampled_clients * max(weights))


def combined_noise_multiplier(model_multiplier: float, count_stddev: float) -> float:
    """The one Gaussian mechanism that releasing the noised model (multiplier
    ``model_multiplier``) and the noised count (std ``count_stddev``, sensitivity 1/2 for the
    bits minus 1/2) amount to: ``(z_model^-2 + (2 sigma_b)^-2)^-1/2`` (Andrew et al., Thm 1)."""
    if model_multiplier <= 0 or count_stddev <= 0:
        return 0.0  # a value released without noise: no privacy
    return (model_multiplier ** -2 + (2 * count_stddev) ** -2) ** -0.5


def noisy_unclipped_fraction(unclipped: int, total: int, count_stddev: float) -> float:
    """The fraction of ``total`` updates within the clip, with N(0, sigma_b^2) on the count
    (Flower's ``_noisy_fraction``, on the count Andrew et al. noise)."""
    return float(np.random.normal(unclipped, count_stddev)) / total


def geometric_update(clipping_norm: float, unclipped_fraction: float, quantile: float,
                     lr: float) -> float:
    """Andrew et al.'s ``C * exp(-lr * (b - q))``: more updates within the clip than the
    target quantile shrinks it, fewer grows it."""
    return clipping_norm * math.exp(-lr * (unclipped_fraction - quantile))


class PrivacyLedger:
    """Epsilon spent so far, from Flower's ``RdpAccountant``, one event per released round.

    Without site sampling (``sampled=False``: every connected site trains) each round is a
    Gaussian mechanism of the effective multiplier, add-or-remove-one site, no amplification.
    With sampling (fraction-train < 1) Flower samples a fixed number of sites without
    replacement: the event is ``WITHOUT_REPLACEMENT`` under the replace-one relation, whose
    sensitivity is twice the add-or-remove one, so the accounted multiplier is half the
    effective one. Flower's accountant holds one population (the sites connected at the
    first release); a round drawn from a different number of sites is accounted at a rate
    rounded up onto it, never below the true one.

    Parameters
    ----------
    delta : float
        The delta epsilon is reported at.
    sampled : bool
        Whether the sites are sampled (fraction-train < 1).
    """

    def __init__(self, delta: float, sampled: bool) -> None:
        if importlib.util.find_spec("dp_accounting") is None:
            raise ImportError("privacy accounting needs Google's dp-accounting, which "
                              "colearn-fl installs with flwr[dp]: pip install 'flwr[dp]'")
        self.delta, self.sampled = delta, sampled
        self.releases: list[dict[str, Any]] = []  # one per round, as composed (resume)
        self._accountant: RdpAccountant | None = None

    def event(self, multiplier: float, sample_size: int, population: int) -> GaussianPrivacyEvent:
        """The accountant's event for a round of effective multiplier ``multiplier`` that
        sampled ``sample_size`` of ``population`` connected sites."""
        base = self._accountant.config.population_size if self._accountant else population
        if not self.sampled:
            return GaussianPrivacyEvent(multiplier, base, base)
        rate_up = -(-sample_size * base // population)  # ceil: never a lower rate
        return GaussianPrivacyEvent(multiplier / 2, min(max(rate_up, 1), base), base)

    def compose(self, event: GaussianPrivacyEvent) -> dict[str, Any]:
        """Compose one released round; its record (for ``history.json`` and ``replay``)."""
        self._ready(event.population_size).compose(event)
        release = {"noise-multiplier": event.noise_multiplier, "sample-size": event.sample_size,
                   "population-size": event.population_size}
        self.releases.append(release)
        return release

    def replay(self, releases: list[dict[str, Any]]) -> None:
        """Compose the rounds a resumed run's history recorded, as they were composed."""
        for release in releases:
            self.compose(GaussianPrivacyEvent(float(release["noise-multiplier"]),
                                              int(release["sample-size"]),
                                              int(release["population-size"])))

    def epsilon(self) -> float:
        """Epsilon spent so far at ``delta`` (0 before any release)."""
        return 0.0 if self._accountant is None else self._accountant.get_epsilon(self.delta)

    def projected(self, event: GaussianPrivacyEvent) -> float:
        """Epsilon after one more round of ``event``; the ledger is unchanged."""
        trial = RdpAccountant(self._ready(event.population_size).config)
        trial.load_state_dict(self._ready(event.population_size).state_dict())
        trial.compose(event)
        return trial.get_epsilon(self.delta)

    def _ready(self, population: int) -> RdpAccountant:
        if self._accountant is None:
            method, relation = (
                (SamplingMethod.WITHOUT_REPLACEMENT, NeighboringRelation.REPLACE_ONE)
                if self.sampled else
                (SamplingMethod.NO_AMPLIFICATION, NeighboringRelation.ADD_OR_REMOVE_ONE))
            self._accountant = RdpAccountant(PrivacyConfig(
                target_delta=self.delta, population_size=population,
                neighboring_relation=relation, sampling_method=method))
        return self._accountant
