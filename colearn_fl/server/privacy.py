"""Central differential privacy, server side: Flower's client-side fixed-clipping wrapper.

The server averages the sites' clipped models with ``CoLearn`` and adds Gaussian noise of
standard deviation ``dp-noise-multiplier * dp-clipping-norm / sampled sites`` to the average,
through Flower's ``DifferentialPrivacyClientSideFixedClipping`` wrapped around ``CoLearn``
(Andrew et al., https://arxiv.org/abs/1905.03871; McMahan et al.,
https://arxiv.org/abs/1710.06963). The sites clip with
``colearn_fl.site.clipping_mod.clipping_mod``.

Flower's wrapper treats every array as a float vector and would add truncated noise to a
state_dict's integer buffers (BatchNorm's ``num_batches_tracked``): here they are kept out of
the noise and travel unchanged; noise that makes a BatchNorm ``running_var`` negative is
clipped at 0 (post-processing, so the guarantee is unchanged).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from logging import WARNING

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, Strategy
from flwr.supercore import log

from colearn_fl.config import RunConfig
from strategies import CoLearnSchedule
from strategies.transport import is_floating


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


def with_privacy(strategy: CoLearnSchedule, config: RunConfig) -> Strategy:
    """``strategy`` wrapped for central DP when ``dp-noise-multiplier > 0``, else itself."""
    if config.privacy.dp_noise_multiplier <= 0:
        return strategy
    return ClientSideFixedClipping(
        strategy, noise_multiplier=config.privacy.dp_noise_multiplier,
        clipping_norm=config.privacy.dp_clipping_norm, num_sampled_clients=sampled_sites(config),
    )


def sampled_sites(config: RunConfig) -> int:
    """Sites FedAvg samples per training round when ``min-available-nodes`` are connected.

    More connected sites means more sampled ones and a smaller true sensitivity, so the noise
    stays sufficient (Flower logs the discrepancy).
    """
    return max(int(config.rounds.min_available_nodes * config.rounds.fraction_train), 1)
