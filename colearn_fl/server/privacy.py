"""Central differential privacy, server side: Flower's client-side clipping wrapper, accounted.

The server averages the sites' clipped models with ``CoLearn`` and adds Gaussian noise of
standard deviation ``dp-noise-multiplier * clipping norm / sampled sites`` to the average,
through Flower's ``DifferentialPrivacyClientSideFixedClipping`` wrapped around ``CoLearn``
(Andrew et al., https://arxiv.org/abs/1905.03871; McMahan et al.,
https://arxiv.org/abs/1710.06963). The sites clip with
``colearn_fl.site.clipping_mod.clipping_mod``.

Flower's wrapper treats every array as a float vector and would add truncated noise to a
state_dict's integer buffers (BatchNorm's ``num_batches_tracked``): here they are kept out of
the noise and travel unchanged; noise that makes a BatchNorm ``running_var`` negative is
clipped at 0 (post-processing, so the guarantee is unchanged).

``AccountedClipping`` adds what Flower's wrappers cannot do over ``CoLearn``: the (epsilon,
delta) spent after every round (``dp-`` keys of the round's record), a budget that ends the
run before a round would exceed it, and adaptive clipping (``dp-clipping='adaptive'``).
Flower's accountant refuses any strategy but a uniform ``FedAvg``, and its adaptive wrapper
reads the sites' norm bits after the wrapped strategy aggregated (``CoLearn`` has released the
replies by then), iterates a streamed reply iterator twice, and steps the clip with the
clipped fraction where Andrew et al. use the unclipped one (moving it away from the target).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from logging import INFO, WARNING
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, Strategy
from flwr.supercore import log
from flwr.supercore.differential_privacy import KEY_NORM_BIT, compute_adaptive_noise_params

from colearn_fl.config import RunConfig
from colearn_fl.errors import ColearnError
from strategies import CoLearnSchedule
from strategies.dp_accounting import (
    AdaptiveClip,
    BudgetSpent,
    PrivacyLedger,
    combined_noise_multiplier,
    effective_noise_multiplier,
    geometric_update,
    noisy_unclipped_fraction,
)
from strategies.transport import is_floating
from strategies.wire import NUM_EXAMPLES

ACCOUNTED_OPTIMIZERS = ("fedavg", "fedprox")  # their aggregate is the weighted mean itself


class ClientSideFixedClipping(DifferentialPrivacyClientSideFixedClipping):
    """Flower's client-side fixed-clipping DP wrapper, noising only floating-point arrays.

    It still calls the wrapped strategy's ``configure_train`` (which receives the config with
    Flower's ``clipping_norm`` key added) and ``aggregate_train``, so ``CoLearn``'s schedule,
    reply checks, dtype restore and per-round records are unchanged. A round in which any site
    replied with an error is not aggregated (Flower's rule: the noise is calibrated for every
    sampled site); the failure is still recorded in ``CoLearn.rounds``.

    Parameters
    ----------
    strategy : Strategy
        The wrapped strategy (``CoLearn``).
    noise_multiplier : float
        ``dp-noise-multiplier``; the noise std is ``noise_multiplier * clipping_norm /
        num_sampled_clients``.
    clipping_norm : float
        ``dp-clipping-norm``, sent to the sites as ``clipping_norm``.
    num_sampled_clients : int
        Sites expected per training round (see ``sampled_sites``).
    """

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Flower's DP aggregation; a skipped round is recorded like a failed one."""
        replies = list(replies)
        if any(m.has_error() for m in replies) and isinstance(self.strategy, CoLearnSchedule):
            record = self.strategy.rounds.setdefault(server_round + self.strategy.round_offset,
                                                     {})
            record.update({"sites-failed": sum(m.has_error() for m in replies),
                           "sites-dropped": 0, "sites-averaged": 0,
                           "errors": [m.error.reason for m in replies if m.has_error()]})
            log(WARNING, "Round %d: a site failed, so differential privacy skips the round; "
                "the global model is unchanged", server_round + self.strategy.round_offset)
        return super().aggregate_train(server_round, replies)

    def _add_noise_to_aggregated_arrays(self, aggregated_arrays: ArrayRecord) -> ArrayRecord:
        # Flower's hook: noise the floating arrays only, keep the order and the other arrays.
        floating = ArrayRecord(OrderedDict(
            (k, a) for k, a in aggregated_arrays.items() if is_floating(a.dtype)))
        noised = super()._add_noise_to_aggregated_arrays(floating)
        out = OrderedDict()
        for key, array in aggregated_arrays.items():
            array = noised.get(key, array)
            if key.endswith("running_var"):  # a variance must stay >= 0 (BatchNorm)
                array = Array(np.maximum(array.numpy(), 0))
            out[key] = array
        return ArrayRecord(out)


class AccountedClipping(ClientSideFixedClipping):
    """``ClientSideFixedClipping`` with accounting, a budget and optionally adaptive clipping.

    After every round the wrapped ``CoLearnSchedule``'s record of it gets ``dp-clipping-norm``
    (the clip sent that round), ``dp-epsilon`` and ``dp-delta`` (spent so far), and for a
    released round ``dp-noise-effective`` (the multiplier the noise gave under the sites'
    example weights) and ``dp-release`` (the accountant's event, replayed on resume). With a
    budget, ``configure_train`` raises ``BudgetSpent`` before a round whose epsilon would pass
    it, projecting that round with the previous round's effective multiplier (the nominal
    one before the first: the next round's weights are not known yet).

    Parameters
    ----------
    strategy : CoLearnSchedule
        The wrapped strategy.
    noise_multiplier : float
        ``dp-noise-multiplier``: the accounted multiplier for equal weights. With adaptive
        clipping the model's noise is raised so the model and the clipped count together
        give it (Flower's ``compute_adaptive_noise_params``).
    clipping_norm : float
        ``dp-clipping-norm``: the clip (adaptive: its first value).
    num_sampled_clients : int
        Sites expected per training round (``sampled_sites``): Flower's noise divisor.
    ledger : PrivacyLedger or None
        The accountant; ``None``: no ``dp-epsilon`` (a server optimizer whose aggregate is not
        the weighted mean).
    target_epsilon : float
        ``dp-target-epsilon``; 0 = no budget.
    adaptive : AdaptiveClip or None
        Adaptive clipping's settings (``count_stddev`` 0: Flower's ``sites / 20``).
    """

    def __init__(self, strategy: CoLearnSchedule, noise_multiplier: float, clipping_norm: float,
                 num_sampled_clients: int, *, ledger: PrivacyLedger | None,
                 target_epsilon: float = 0.0, adaptive: AdaptiveClip | None = None) -> None:
        model_multiplier = noise_multiplier
        if adaptive is not None:
            stddev, model_multiplier = compute_adaptive_noise_params(
                noise_multiplier, num_sampled_clients, adaptive.count_stddev or None)
            adaptive = AdaptiveClip(adaptive.quantile, adaptive.lr, stddev)
        super().__init__(strategy, noise_multiplier=model_multiplier,
                         clipping_norm=clipping_norm, num_sampled_clients=num_sampled_clients)
        self.ledger, self.target_epsilon, self.adaptive = ledger, target_epsilon, adaptive
        self.last_effective = noise_multiplier  # projects the next round (budget)
        self._drawn = (0, 0)  # (sites sampled, sites connected) of the round in flight

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """Flower's messages (with ``clipping_norm``), unless the round would pass the budget."""
        round_ = server_round + self.strategy.round_offset
        population = len(list(grid.get_node_ids()))
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self._drawn = (len(messages), population)
        if self.ledger is not None and self.target_epsilon > 0 and messages:
            projected = self.ledger.projected(
                self.ledger.event(self.last_effective, len(messages), population))
            if projected > self.target_epsilon:
                self.strategy.rounds.pop(round_, None)  # never sent: no history row
                raise BudgetSpent(round_, self.ledger.epsilon(), projected,
                                  self.target_epsilon, self.ledger.delta)
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Flower's DP aggregation, then the round's ``dp-`` record and the clip's update."""
        replies = list(replies)
        round_ = server_round + self.strategy.round_offset
        within = self._take_norm_bits(round_, replies) if self.adaptive else []
        used = self.clipping_norm
        arrays, metrics = super().aggregate_train(server_round, replies)
        record = self.strategy.rounds.setdefault(round_, {})
        record["dp-clipping-norm"] = used
        if arrays is not None:
            record.update(self._released(record, within))
        if self.ledger is not None:
            record.update({"dp-epsilon": self.ledger.epsilon(), "dp-delta": self.ledger.delta})
        return arrays, metrics

    def _released(self, record: dict[str, Any], within: list[int]) -> dict[str, Any]:
        """Account a released round (and step an adaptive clip): its ``dp-`` keys."""
        weights = [float(site[NUM_EXAMPLES]) for site in record.get("site-reports", [])]
        multiplier = effective_noise_multiplier(self.noise_multiplier, self.num_sampled_clients,
                                                weights)
        out: dict[str, Any] = {}
        if self.adaptive is not None:
            fraction = noisy_unclipped_fraction(sum(within), len(within),
                                                self.adaptive.count_stddev)
            self.clipping_norm = geometric_update(self.clipping_norm, fraction,
                                                  self.adaptive.quantile, self.adaptive.lr)
            multiplier = combined_noise_multiplier(multiplier, self.adaptive.count_stddev)
            out["dp-unclipped-fraction"] = fraction
        out["dp-noise-effective"] = self.last_effective = multiplier
        if self.ledger is not None and multiplier > 0:
            out["dp-release"] = self.ledger.compose(self.ledger.event(multiplier, *self._drawn))
        return out

    def _take_norm_bits(self, server_round: int, replies: list[Message]) -> list[int]:
        """1 for each reply whose update was within the clip (Flower's ``norm_bit`` is 1 when
        the site clipped), taken out of its metrics so it is not averaged as one."""
        within = []
        for msg in replies:
            if msg.has_error():
                continue
            found = [r for r in msg.content.metric_records.values() if KEY_NORM_BIT in r]
            if not found:
                raise ColearnError(
                    f"round {server_round}: node {msg.metadata.src_node_id} replied without "
                    f"'{KEY_NORM_BIT}' under dp-clipping='adaptive': it does not run colearn-fl's "
                    "clipping mod (or Flower's adaptiveclipping_mod), so its update may be "
                    "unclipped. Give every site colearn_fl.client_app's mods.")
            within.append(1 - int(found[0].pop(KEY_NORM_BIT)))
        return within

    def resume(self, history: list[dict[str, Any]]) -> None:
        """Continue the ledger and the clip of the rounds a resumed run's history recorded."""
        if self.ledger is not None:
            self.ledger.replay([row["dp-release"] for row in history if "dp-release" in row])
        rows = [row for row in history if "dp-clipping-norm" in row]
        if not rows:
            return
        last = rows[-1]
        self.last_effective = float(last.get("dp-noise-effective", self.last_effective))
        self.clipping_norm = float(last["dp-clipping-norm"])
        if self.adaptive is not None and "dp-unclipped-fraction" in last:
            self.clipping_norm = geometric_update(
                self.clipping_norm, float(last["dp-unclipped-fraction"]),
                self.adaptive.quantile, self.adaptive.lr)


def with_privacy(strategy: CoLearnSchedule, config: RunConfig,
                 history: list[dict[str, Any]] | None = None) -> Strategy:
    """``strategy`` wrapped for central DP when ``dp-noise-multiplier > 0``, else itself;
    ``history``: a resumed run's rows, whose epsilon and clip the wrapper continues."""
    privacy = config.privacy
    if privacy.dp_noise_multiplier <= 0:
        return strategy
    ledger = None
    if config.server.server_optimizer in ACCOUNTED_OPTIMIZERS:
        ledger = PrivacyLedger(privacy.dp_delta, sampled=config.rounds.fraction_train < 1)
    else:
        log(WARNING, "[colearn] server-optimizer=%r adds the DP noise after its own step, "
            "whose sensitivity is not the weighted mean's: no dp-epsilon is recorded (use "
            "fedavg or fedprox for an accounted run)", config.server.server_optimizer)
    adaptive = None
    if privacy.dp_clipping == "adaptive":
        adaptive = AdaptiveClip(privacy.dp_clip_quantile, privacy.dp_clip_lr,
                                privacy.dp_clipped_count_stddev)
    wrapped = AccountedClipping(
        strategy, noise_multiplier=privacy.dp_noise_multiplier,
        clipping_norm=privacy.dp_clipping_norm, num_sampled_clients=sampled_sites(config),
        ledger=ledger, target_epsilon=privacy.dp_target_epsilon, adaptive=adaptive)
    wrapped.resume(history or [])
    if ledger is not None:
        log(INFO, "[colearn] privacy: epsilon %.4g at delta %g spent so far%s",
            ledger.epsilon(), ledger.delta, f", budget {privacy.dp_target_epsilon:g}"
            if privacy.dp_target_epsilon > 0 else "")
    return wrapped


def sampled_sites(config: RunConfig) -> int:
    """Sites FedAvg samples per training round when ``min-available-nodes`` are connected.

    More connected sites means more sampled ones and a smaller true sensitivity, so the noise
    stays sufficient (Flower logs the discrepancy).
    """
    return max(int(config.rounds.min_available_nodes * config.rounds.fraction_train), 1)
