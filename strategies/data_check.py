"""Every site's data opened before any training (Flower only).

Before round 1 the server sends ``query.data_check`` to the connected sites; each opens its
data as a training round would and replies with its sizes (``train-examples``,
``val-examples``) or fails with the error its data gave. One failing site stops the run
within seconds, instead of after a first round of training at the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from strategies.checks import metrics_of
from strategies.errors import ScheduleError
from strategies.query import query_sites, unhandled
from strategies.wire import (
    DATA_CHECK,
    SERVER_ROUND,
    SITE_NAME,
    TRAIN_EXAMPLES,
    TRAIN_UNSIZED,
    VAL_EXAMPLES,
)


def check_site_data(grid: Grid, nodes: Sequence[int], timeout: float,
                    evaluates: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    """Each node's data sizes, and notes on the sites that could not say (no answer within
    ``timeout``, or a stock Flower ClientApp without the query function: they may still
    train; with ``evaluates``, a site without validation data). Raises ``ScheduleError`` with
    one line per site whose data failed to open."""
    sizes, problems, notes, answered = [], [], [], set()
    for node, reply, reason in query_sites(grid, DATA_CHECK, RecordDict(
            {"config": ConfigRecord({SERVER_ROUND: 0})}), nodes, timeout):
        answered.add(node)
        site = _named(node, reply)
        if reason is not None:
            # Only an exception the site's own code raised is about its data; an unreachable
            # node or a ClientApp without the query function may still train later.
            if unhandled(reply):
                notes.append(f"{site}: not a colearn-fl site (its ClientApp has no "
                             "data_check query); it takes part in training")
            elif reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION:
                problems.append(f"{site}: {reason}")
            else:
                notes.append(f"{site}: {reason}; it may still train")
            continue
        values = metrics_of(reply.content) if reply.content.metric_records else {}
        sizes.append({"node-id": node, SITE_NAME: _name(reply),
                      TRAIN_EXAMPLES: values.get(TRAIN_EXAMPLES),
                      VAL_EXAMPLES: values.get(VAL_EXAMPLES)})
        if evaluates and values.get(VAL_EXAMPLES) == 0:
            notes.append(f"{site}: no validation data (no val_dataloader, or an empty "
                         "one): its federated evaluation fails every round; "
                         "fraction-evaluate=0 turns federated evaluation off")
        if values.get(TRAIN_UNSIZED):
            notes.append(f"{site}: its training data has no length (e.g. an "
                         "IterableDataset); it reports the examples it trains on each round")
        elif not values.get(TRAIN_EXAMPLES):
            problems.append(f"{site}: no training examples")
    notes += [f"node {node}: no answer within {timeout:g} s; it may still train"
              for node in nodes if node not in answered]
    if problems:
        raise ScheduleError("the data check before round 1 failed at "
                            f"{len(problems)} of {len(nodes)} site(s):\n  "
                            + "\n  ".join(sorted(problems)))
    return sizes, notes  # in query_sites' canonical order, not the replies' arrival order


def _name(reply: Message) -> str | None:
    """The name a colearn-fl site gave itself in its data check reply (``None``: none)."""
    if reply.has_error() or "site" not in reply.content.config_records:
        return None
    name = reply.content.config_records["site"].get(SITE_NAME)
    return str(name) if name else None


def _named(node: int, reply: Message) -> str:
    name = _name(reply)
    return f"{name} (node {node})" if name else f"node {node}"
