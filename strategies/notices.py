"""What the server tells the operator about a round's replies and what it sent: a standing
property of the federation (a stock site, a metric name only some sites send, an array sent
wider than ``transport-dtype``) once, a fault of the round (a dropped reply, a metric that is
not a finite number) every time, with the site named."""

from __future__ import annotations

from collections.abc import Hashable
from logging import INFO, WARNING
from typing import Any

from flwr.app import Message
from flwr.supercore import log

from strategies.checks import NOT_EVERYWHERE, NOT_FINITE, Checked


class Notices:
    """The server's log lines about replies, each standing one said once per run."""

    def __init__(self, names: dict[int, str] | None = None) -> None:
        self._told: set[Hashable] = set()  # what was already said once
        self.names = names if names is not None else {}  # node id -> the site's own name

    def site(self, node: int) -> str:
        """A site as its results are named (``site-1``, its data-dir, its ``site-name``), with
        Flower's node id; ``node <id>`` for a site that gave no name (a stock ClientApp)."""
        name = self.names.get(node)
        return f"{name} (node {node})" if name else f"node {node}"

    def first_time(self, what: Hashable) -> bool:
        """Whether ``what`` is said for the first time (and from now on, was said)."""
        new = what not in self._told
        self._told.add(what)
        return new

    def usable(self, server_round: int, reply: Message, problem: str | None,
               kind: str = "training") -> bool:
        """Whether a reply is usable; why not is logged, with its site and the reply's
        ``kind`` (``training`` or ``evaluation``)."""
        if problem is not None:
            log(WARNING, "Round %d: dropped the %s reply of %s: %s",
                server_round, kind, self.site(reply.metadata.src_node_id), problem)
        return problem is None

    def unusable_metrics(self, server_round: int, reply: Message, checked: Checked) -> None:
        """Name the site of each metric it sent that is not a finite number."""
        for why in checked.unusable.values():
            log(WARNING, "Round %d: %s: %s; it is not averaged this round (the site's "
                "other metrics are)", server_round, self.site(reply.metadata.src_node_id), why)

    def left_out(self, server_round: int, left_out: dict[str, str]) -> None:
        """Log once per name the metrics left out of the average (a metric some site sent as
        no finite number is named with the site, every round, by ``unusable_metrics``)."""
        new = {n: why for n, why in left_out.items()
               if why != NOT_FINITE and self.first_time(("metric", n))}
        partial = sorted(n for n, why in new.items() if why == NOT_EVERYWHERE)
        if partial:
            log(INFO, "Round %d: metrics %s are not reported by every site, so they are not "
                "averaged", server_round, partial)
        for name, why in new.items():
            if why != NOT_EVERYWHERE:
                log(WARNING, "Round %d: metric '%s' is not averaged: %s", server_round, name,
                    why)

    def sent_wider(self, server_round: int, wider: dict[str, str]) -> None:
        """Log once per key an array sent wider than ``transport-dtype`` (``transport``)."""
        for key, why in wider.items():
            if self.first_time(("wider", key)):
                log(WARNING, "Round %d: '%s' %s (said once per key)", server_round, key, why)

    def not_following(self, server_round: int, node: int, sent: dict[str, Any],
                      did: dict[str, Any]) -> None:
        """Warn once per site that it did not follow the co-learning schedule."""
        if self.first_time(("site", node)):
            log(WARNING, "Round %d: %s did not follow the co-learning schedule (sent %s; "
                "it reported %s); its model is averaged all the same. Sites running "
                "colearn_fl.client_app follow it.", server_round, self.site(node), sent,
                did or "nothing")

    def failures(self, server_round: int, failed: list[Message], transport_dtype: str) -> None:
        """Explain once that stock Flower clients cannot read bfloat16."""
        if failed and transport_dtype == "bfloat16" and self.first_time(("bf16",)):
            log(WARNING, "Round %d: %d site(s) failed with transport-dtype='bfloat16': stock "
                "Flower clients cannot read bfloat16 arrays; use transport-dtype='float16' "
                "or 'float32' with them.", server_round, len(failed))
