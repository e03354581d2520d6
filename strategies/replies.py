"""What the server accepts from a site, whatever client it runs, and how replies are evened out.

A training reply is judged by its model alone (one ``ArrayRecord`` whose keys and shapes fit
the global model, finite values, floating arrays in any floating precision) and a positive
``num-examples``. Metric names never cost a site its model: they are compared in kebab-case
(Flower's own examples send snake_case names such as ``train_loss``), and only the names that
every accepted reply shares are averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from strategies.arrays import count_bytes, reply_problem
from strategies.canonical import canonical_order
from strategies.schedules import lr_at
from strategies.transport import decode
from strategies.wire import (
    EPOCHS_RUN,
    LOCAL_EPOCHS,
    LR_FIRST,
    LR_LAST,
    LR_MAX,
    LR_MIN,
    LR_SCHEDULE,
    NUM_EXAMPLES,
    TRAIN_LOSS,
)

ARRAYS, METRICS = "arrays", "metrics"  # the record names every reply gets before averaging
# Running statistics of normalisation layers (PyTorch's names): averaged, never optimised.
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
SITE_REPORT = (EPOCHS_RUN, LR_FIRST, LR_LAST)  # what a site did; recorded, never averaged
LR_TOLERANCE = 1e-6  # relative: a reported LR within this of the cycle's counts as followed


def kebab(name: str) -> str:
    """A metric name in the project's kebab-case (``train_loss`` -> ``train-loss``)."""
    return name.replace("_", "-")


def weight_problem(content: RecordDict) -> str | None:
    """Why the reply's metrics cannot weight an average, or ``None`` if they can."""
    if len(content.metric_records) != 1:
        return f"expected exactly one MetricRecord with '{NUM_EXAMPLES}'"
    metrics = next(iter(content.metric_records.values()))
    weight = {kebab(k): v for k, v in metrics.items()}.get(NUM_EXAMPLES)
    if (isinstance(weight, bool) or not isinstance(weight, (int, float))
            or not math.isfinite(weight) or weight <= 0):
        return f"'{NUM_EXAMPLES}' missing or not positive ({weight!r})"
    return None


def model_problem(content: RecordDict, sent: ArrayRecord | None) -> str | None:
    """Why a training reply cannot be averaged into the model ``sent``, or ``None``: its
    weight, a ``train-loss`` that is not finite (the site diverged), or its arrays."""
    if len(content.array_records) != 1:
        return "expected exactly one ArrayRecord (the model)"
    problem = weight_problem(content)
    if problem is not None:
        return problem
    loss = metrics_of(content).get(TRAIN_LOSS)
    if isinstance(loss, float) and not math.isfinite(loss):
        return f"'{TRAIN_LOSS}' is {loss}: the site's training diverged"
    return None if sent is None else reply_problem(sent, next(iter(content.array_records.values())))


def metrics_of(content: RecordDict) -> dict[str, float | int]:
    """The reply's one MetricRecord with kebab-case names."""
    return {kebab(k): v for k, v in next(iter(content.metric_records.values())).items()}


def even_out(replies: list[Message], metrics: list[dict[str, float | int]],
             reference: ArrayRecord | None) -> set[str]:
    """Give every reply the same record names, the global model's dtypes and the metric names
    all of them share; return the names that were left out.

    Parameters
    ----------
    replies : list[Message]
        Accepted replies (rewritten in place).
    metrics : list[dict]
        Each reply's metrics (kebab-case), as ``metrics_of`` read them, minus anything the
        caller keeps for itself.
    reference : ArrayRecord | None
        The global model (full precision); ``None`` for evaluation replies, which carry no
        model.
    """
    shared = set.intersection(*(set(m) for m in metrics)) if metrics else set()
    for msg, values in zip(replies, metrics, strict=True):
        content = RecordDict({METRICS: MetricRecord({k: values[k] for k in sorted(shared)})})
        if reference is not None:
            content[ARRAYS] = decode(next(iter(msg.content.array_records.values())), reference)
        msg.content = content
    return set().union(*(set(m) for m in metrics)) - shared if metrics else set()


def average_statistics(arrays: ArrayRecord, replies: list[Message]) -> ArrayRecord:
    """``arrays`` with every running statistic replaced by the sites' weighted average.

    Server optimizers (FedAvgM, FedAdam, ...) step every array they get, but a BatchNorm
    ``running_var`` is a statistic, not a parameter: a momentum step can drive it negative and
    the model's evaluation to NaN (measured: FedAvgM, momentum 0.9, round 2). Statistics are
    recognised by name (``STATISTICS``) and averaged as FedAvg would, by ``num-examples``.
    """
    keys = [k for k in arrays if k.endswith(STATISTICS)]
    if not keys or not replies:
        return arrays
    records = [RecordDict({ARRAYS: ArrayRecord({k: msg.content[ARRAYS][k] for k in keys}),
                           METRICS: msg.content[METRICS]}) for msg in replies]
    averaged = aggregate_arrayrecords(records, NUM_EXAMPLES)
    return ArrayRecord({k: averaged[k] if k in averaged else a for k, a in arrays.items()})


def sent_bytes(replies: Iterable[Message]) -> int:
    """Bytes of array data in the replies that carry content."""
    return sum(count_bytes(record) for m in replies if not m.has_error()
               for record in m.content.array_records.values())


def followed_schedule(sent: dict[str, Any], did: dict[str, Any]) -> bool:
    """Whether a site's report matches the round's epochs and LR cycle."""
    if set(did) != set(SITE_REPORT) or did[EPOCHS_RUN] != sent[LOCAL_EPOCHS]:
        return False
    top, bottom = sent[LR_MAX], sent[LR_MIN]
    start = lr_at(sent[LR_SCHEDULE], 0.0, top, bottom)
    slack = LR_TOLERANCE * max(top, 1e-12)
    return (abs(did[LR_FIRST] - start) <= slack
            and bottom - slack <= did[LR_LAST] <= top + slack)


def short_reason(reason: str) -> str:
    """The site's own error message out of a reply's error reason (which may hold a trace)."""
    marker = "Message: "
    text = reason.rsplit(marker, 1)[-1] if marker in reason else reason
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return reason
    return (lines[0] if marker in reason else lines[-1]).rstrip("'>")


def query_sites(grid: Grid, message_type: str, content: RecordDict, nodes: Sequence[int],
                timeout: float) -> Iterator[tuple[int, Message, str | None]]:
    """Send ``content`` as a ``message_type`` message to each of ``nodes``; once every reply
    came (or ``timeout`` passed), yield them in their canonical order (``strategies.canonical``:
    set by content, not arrival) with each sender and, for an error reply, the site's own
    reason."""
    messages = [Message(content=content, message_type=message_type, dst_node_id=node)
                for node in nodes]
    for reply in canonical_order(grid.send_and_receive(messages, timeout=timeout)):
        reason = short_reason(reply.error.reason) if reply.has_error() else None
        yield reply.metadata.src_node_id, reply, reason
