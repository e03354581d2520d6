"""What the server accepts from a site, whatever client it runs, and how replies are evened out.

A training reply is judged by its model alone (one ``ArrayRecord`` whose keys and shapes fit
the global model, finite values, floating arrays in any floating precision) and a positive
``num-examples``. Metric names never cost a site its model: they are compared in kebab-case
(Flower's own examples send snake_case names such as ``train_loss``), and only the names that
every accepted reply shares are averaged.
"""

from __future__ import annotations

import math

from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from strategies.arrays import reply_problem
from strategies.transport import decode
from strategies.wire import NUM_EXAMPLES, TRAIN_LOSS

ARRAYS, METRICS = "arrays", "metrics"  # the record names every reply gets before averaging


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
