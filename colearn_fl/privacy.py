"""Central differential privacy for co-learning: Flower's client-side fixed clipping.

Each site clips its update (reply minus the model it received) to an L2 norm of
``dp-clipping-norm`` with Flower's ``fixedclipping_mod``; the server averages the clipped
models with ``CoLearn`` and adds Gaussian noise of standard deviation
``dp-noise-multiplier * dp-clipping-norm / sampled sites`` to the average, through Flower's
``DifferentialPrivacyClientSideFixedClipping`` wrapped around ``CoLearn``
(Andrew et al., https://arxiv.org/abs/1905.03871; McMahan et al.,
https://arxiv.org/abs/1710.06963).

Flower's mod and wrapper treat every array as a float vector. A state_dict also holds integer
buffers (BatchNorm's ``num_batches_tracked``): the mod would fold the buffer's step count into
the update's norm and then fail to scale it in place (int64 ``*=`` float), and the wrapper
would add truncated noise to it. Here integer and bool arrays are kept out of both, and travel
unchanged; noise that makes a BatchNorm ``running_var`` negative is clipped at 0
(post-processing, so the guarantee is unchanged).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from logging import WARNING

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MessageType, MetricRecord
from flwr.clientapp.mod import fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, Strategy
from flwr.supercore import log

from colearn_fl.config import RunConfig
from strategies.colearn import CoLearn


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
        if any(m.has_error() for m in replies) and isinstance(self.strategy, CoLearn):
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
            (k, a) for k, a in aggregated_arrays.items() if _floating(a)))
        noised = super()._add_noise_to_aggregated_arrays(floating)
        out = OrderedDict()
        for key, array in aggregated_arrays.items():
            array = noised.get(key, array)
            if key.endswith("running_var"):  # a variance must stay >= 0 (BatchNorm)
                array = Array(np.maximum(array.numpy(), 0))
            out[key] = array
        return ArrayRecord(out)


def with_privacy(strategy: CoLearn, config: RunConfig) -> Strategy:
    """``strategy`` wrapped for central DP when ``dp-noise-multiplier > 0``, else itself."""
    if config.dp_noise_multiplier <= 0:
        return strategy
    return ClientSideFixedClipping(
        strategy, noise_multiplier=config.dp_noise_multiplier,
        clipping_norm=config.dp_clipping_norm, num_sampled_clients=sampled_sites(config),
    )


def sampled_sites(config: RunConfig) -> int:
    """Sites FedAvg samples per training round when ``min-available-nodes`` are connected.

    More connected sites means more sampled ones and a smaller true sensitivity, so the noise
    stays sufficient (Flower logs the discrepancy).
    """
    return max(int(config.min_available_nodes * config.fraction_train), 1)


def clipping_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """A ClientApp mod: Flower's ``fixedclipping_mod`` on training messages when the run
    config enables DP (``dp-noise-multiplier > 0``); otherwise a pass-through.

    Integer and bool arrays are hidden from ``fixedclipping_mod`` (the ClientApp still receives
    and returns the whole state_dict) and put back unchanged in the reply.
    """
    enabled = RunConfig.from_dict(context.run_config).dp_noise_multiplier > 0
    if msg.metadata.message_type != MessageType.TRAIN or not enabled:
        return call_next(msg, context)
    if len(msg.content.array_records) != 1:
        return fixedclipping_mod(msg, context, call_next)  # replies with Flower's error
    key, sent = next(iter(msg.content.array_records.items()))
    fixed = [k for k, a in sent.items() if not _floating(a)]
    if not fixed:
        return fixedclipping_mod(msg, context, call_next)
    held: dict[str, Array] = {}

    def train_whole_model(inner: Message, ctx: Context) -> Message:
        inner.content[key] = sent
        reply = call_next(inner, ctx)
        if not reply.has_error() and len(reply.content.array_records) == 1:
            reply_key, arrays = next(iter(reply.content.array_records.items()))
            held.update((k, arrays[k]) for k in fixed if k in arrays)
            reply.content[reply_key] = _without(arrays, fixed)
        return reply

    msg.content[key] = _without(sent, fixed)
    reply = fixedclipping_mod(msg, context, train_whole_model)
    if reply.has_error() or len(reply.content.array_records) != 1:
        return reply
    reply_key, clipped = next(iter(reply.content.array_records.items()))
    reply.content[reply_key] = ArrayRecord(OrderedDict(
        (k, held[k] if k in held else clipped[k]) for k in sent.keys()
        if k in held or k in clipped))
    return reply


def _floating(array: Array) -> bool:
    return array.dtype.startswith(("float", "bfloat"))


def _without(arrays: ArrayRecord, keys: list[str]) -> ArrayRecord:
    return ArrayRecord(OrderedDict((k, a) for k, a in arrays.items() if k not in keys))
