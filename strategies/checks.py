"""What the server accepts from a site, whatever client it runs, and how replies are evened out.

Every reply (training, evaluation, the SWA statistics refresh) goes through ``check_reply``
once, with or without streaming: its model, if it carries one, is decoded and cast to the
global model's dtypes first and judged as cast (``strategies.arrays.checked_arrays``: keys,
the data's shape and dtype, finite values), next to a positive ``num-examples``. A training
reply whose ``train-loss`` is not finite is dropped (the site diverged).

Metrics never cost a site its model. Names are compared in kebab-case (Flower's own examples
send snake_case names such as ``train_loss``). A metric value that is not a finite number (or
a list of finite numbers) is left out at that site, and the site named; the site's other
metrics count. A metric is averaged only when every accepted reply sent it, usably, in the
same form (a number everywhere, or lists of one length): a metric some site sent as NaN is
not averaged that round rather than averaged over the other sites, so a federated metric
always covers the same sites as the round's other metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from strategies.arrays import checked_arrays
from strategies.wire import EPOCH_PREFIX, NUM_EXAMPLES, TRAIN_LOSS

ARRAYS, METRICS = "arrays", "metrics"  # the record names every reply gets before averaging
Metric = int | float | list[int] | list[float]
# Why a metric is left out of a round's average (``left_out_reason``)
NOT_EVERYWHERE = "not reported by every site"
NOT_FINITE = "not a finite number at every site"


@dataclass
class Checked:
    """A reply that passed ``check_reply``, decoded.

    Attributes
    ----------
    metrics : dict[str, Metric]
        Its metrics with kebab-case names, ``num-examples`` included, minus the unusable ones.
    weight : float
        Its ``num-examples``.
    arrays : ArrayRecord | None
        Its model in the global model's dtypes; ``None`` for evaluation replies.
    unusable : dict[str, str]
        Metrics it sent that are left out (not finite), and why.
    epochs : dict[str, Metric]
        Its per-epoch series (``epoch-*`` metrics), kept apart: recorded, never averaged.
    """

    metrics: dict[str, Metric]
    weight: float
    arrays: ArrayRecord | None = None
    unusable: dict[str, str] = field(default_factory=dict)
    epochs: dict[str, Metric] = field(default_factory=dict)


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


def check_reply(content: RecordDict, reference: ArrayRecord | None,
                model: bool = True) -> tuple[Checked | None, str | None]:
    """A reply decoded and checked, or why it cannot be averaged.

    Parameters
    ----------
    content : RecordDict
        The reply's content.
    reference : ArrayRecord | None
        The model it must fit, in the dtypes to cast it to (the global model, or the SWA
        model's statistics); ``None``: its arrays are kept as they came.
    model : bool (default: True)
        Whether the reply carries a model (one ``ArrayRecord``): training and statistics
        replies do, evaluation replies do not (their arrays are ignored).
    """
    if model and len(content.array_records) != 1:
        return None, "expected exactly one ArrayRecord (the model)"
    problem = weight_problem(content)
    if problem is not None:
        return None, problem
    metrics = metrics_of(content)
    loss = metrics.get(TRAIN_LOSS)
    if model and isinstance(loss, float) and not math.isfinite(loss):
        return None, f"'{TRAIN_LOSS}' is {loss}: the site's training diverged"
    arrays = next(iter(content.array_records.values())) if model else None
    if arrays is not None and reference is not None:
        arrays, problem = checked_arrays(reference, arrays)
        if problem is not None:
            return None, problem
    epochs = {name: metrics.pop(name) for name in list(metrics) if name.startswith(EPOCH_PREFIX)}
    unusable = {name: why for name, value in metrics.items()
                if (why := metric_problem(name, value)) is not None}
    usable = {name: value for name, value in metrics.items() if name not in unusable}
    return Checked(usable, float(metrics[NUM_EXAMPLES]), arrays, unusable, epochs), None


def metrics_of(content: RecordDict) -> dict[str, Metric]:
    """The reply's one MetricRecord with kebab-case names."""
    return {kebab(k): v for k, v in next(iter(content.metric_records.values())).items()}


def metric_problem(name: str, value: Metric) -> str | None:
    """Why a metric value cannot be averaged (it is not a finite number, or a list of finite
    numbers), or ``None``."""
    numbers = value if isinstance(value, list) else [value]
    if all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
        return None
    if isinstance(value, list):
        return f"'{name}' is {value!r}, not a list of finite numbers"
    return f"'{name}' is {value!r}, not a finite number"


def metric_kind(value: Metric) -> str:
    """The form of a metric value: averaged only with values of the same form."""
    return f"a list of {len(value)}" if isinstance(value, list) else "a number"


def left_out_reason(sites: int, reporting: int, unusable: bool, kinds: set[str]) -> str | None:
    """Why a metric is not averaged over ``sites`` accepted replies, or ``None`` if it is.

    ``reporting``: the replies that sent it; ``unusable``: whether one of them sent it as no
    finite number; ``kinds``: the forms of the usable values (``metric_kind``).
    """
    if reporting != sites:
        return NOT_EVERYWHERE
    if unusable:
        return NOT_FINITE
    if len(kinds) > 1:
        return f"sent as {' by some sites and as '.join(sorted(kinds))} by others"
    return None


def even_out(replies: list[Message], checked: list[Checked]) -> dict[str, str]:
    """Give every reply the same record names, its decoded model and the metrics that can be
    averaged (``left_out_reason``); return the metrics left out, and why.

    Parameters
    ----------
    replies : list[Message]
        Accepted replies (rewritten in place).
    checked : list[Checked]
        Each reply as ``check_reply`` decoded it, minus any metric the caller keeps for itself.
    """
    names = set().union(*(set(c.metrics) | set(c.unusable) for c in checked))
    left_out = {}
    for name in sorted(names):
        reason = left_out_reason(
            len(checked), sum(name in c.metrics or name in c.unusable for c in checked),
            any(name in c.unusable for c in checked),
            {metric_kind(c.metrics[name]) for c in checked if name in c.metrics})
        if reason is not None:
            left_out[name] = reason
    for msg, reply in zip(replies, checked, strict=True):
        content = RecordDict({METRICS: MetricRecord(
            {k: v for k, v in sorted(reply.metrics.items()) if k not in left_out})})
        if reply.arrays is not None:
            content[ARRAYS] = reply.arrays
        msg.content = content
    return left_out
