"""A Grid whose training rounds run SecAgg+: the strategy above it sees only the mean.

``SecureAggregationGrid`` wraps the Grid a strategy is started with. Training messages go
through the four stages of ``strategies.secagg.server.SecureRound``; what comes back, for each
site that contributed, is a reply holding that site's own metrics (in the clear: the
per-site report, ``num-examples`` included) and the round's weighted mean model, the same in
every reply. A mean-based strategy (FedAvg and every server optimizer of
``strategies.server_optimizers``) computes from those replies exactly what it computes from the
sites' own models, so ``CoLearnSchedule`` and the strategy under it run unchanged. Every other
message (evaluation, the query actions) passes through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from flwr.app import Message, MessageType
from flwr.serverapp import Grid

from strategies.delegating_grid import DelegatingGrid
from strategies.secagg.server import SecureRound, Settings


class SecureAggregationGrid(DelegatingGrid):
    """Delegates to ``grid``; training rounds run SecAgg+ with ``settings``.

    Parameters
    ----------
    grid : Grid
        The Grid the strategy would use.
    settings : Settings, optional
        The threshold, clipping range and quantisation levels (default: ``Settings()``).
    records : dict[int, dict], optional
        Per-round records to add the protocol's traffic to (``CoLearnSchedule.rounds``):
        ``bytes-secagg-sent`` and ``bytes-secagg-received``, keys and shares included.

    Attributes
    ----------
    rounds : list[dict]
        Per secure round: the sites sampled, averaged and failed, and the protocol's bytes.
    """

    def __init__(self, grid: Grid, settings: Settings | None = None,
                 records: dict[int, dict] | None = None) -> None:
        super().__init__(grid)
        self.settings = settings or Settings()
        self.records = records
        self.rounds: list[dict] = []

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterator[Message]:
        """A training round's replies after SecAgg+; any other messages' as ``grid`` gives
        them."""
        messages = list(messages)
        if not messages or any(m.metadata.message_type != MessageType.TRAIN for m in messages):
            return iter(self.inner.send_and_receive(messages, timeout=timeout))
        secure = SecureRound(self.inner, messages, self.settings, timeout)
        replies = secure.run()
        traffic = {"bytes-secagg-sent": secure.sent_bytes,
                   "bytes-secagg-received": secure.received_bytes}
        self.rounds.append({"round": secure.round, "sites-sampled": len(messages),
                            "sites-averaged": sum(not r.has_error() for r in replies),
                            "sites-failed": sum(r.has_error() for r in replies), **traffic})
        if self.records is not None and isinstance(secure.round, int):
            self.records.setdefault(secure.round, {}).update(traffic)
        return iter(replies)
