"""Streaming aggregation: fold each reply into a running weighted sum as it arrives.

Flower's ``FedAvg`` keeps every reply of a round in memory before it averages them, so a round
of ``n`` sites needs ``n`` copies of the model on the server (20 sites of a ResNet-152, 233 MB
a copy at float32: about 4.7 GB). ``WeightedSum`` needs one float64 copy, whatever ``n``: a
reply's arrays and metrics are added as ``weight * value`` and the reply can be released.

The strategies whose aggregation is the weighted mean (``server_optimizers.MEAN_BASED``:
FedAvg and the server optimizers that step from it) then receive one reply that carries the
mean, weighted by the total examples, and compute from it exactly what they compute from the
individual replies.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
from flwr.serverapp.strategy import Strategy

from strategies.checks import ARRAYS, METRICS, Metric, left_out_reason, metric_kind
from strategies.server_optimizers import MEAN_BASED
from strategies.transport import to_numpy
from strategies.wire import NUM_EXAMPLES


def is_mean_based(strategy: Strategy) -> bool:
    """Whether ``strategy`` aggregates by the weighted mean (streaming gives the same)."""
    return type(strategy) in MEAN_BASED


# How FedAvg and Flower's DP wrappers end their aggregate_train line (the last two arguments)
FLOWER_COUNT = "Received %s results and %s failures"


class _ReplyCount(logging.Filter):
    """Puts the number of replies summed into the mean in place of the one reply a wrapped
    Flower strategy says it received ("aggregate_train: Received 1 results ...")."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def filter(self, record: logging.LogRecord) -> bool:
        if (isinstance(record.msg, str) and record.msg.endswith(FLOWER_COUNT)
                and isinstance(record.args, tuple) and len(record.args) >= 2):
            record.args = (*record.args[:-2], self.count, record.args[-1])
        return True


@contextmanager
def replies_reported_as(count: int) -> Iterator[None]:
    """Within the block, Flower's strategies log ``count`` results received (the replies the
    one streamed mean stands for), not 1."""
    flower = logging.getLogger("flwr")
    counter = _ReplyCount(count)
    flower.addFilter(counter)
    try:
        yield
    finally:
        flower.removeFilter(counter)


class WeightedSum:
    """Running ``sum(w_i * x_i)`` and ``sum(w_i)`` over arrays and metrics, in float64."""

    def __init__(self) -> None:
        self.total = 0.0  # sum of the weights
        self.count = 0  # replies folded in
        self._arrays: OrderedDict[str, np.ndarray] = OrderedDict()
        self._metrics: dict[str, np.ndarray] = {}
        self._reported: dict[str, int] = {}  # replies that reported each metric
        self._kinds: dict[str, set[str]] = {}  # the forms each metric came in (metric_kind)
        self._unusable: set[str] = set()  # metrics some reply sent as no finite number

    def add(self, arrays: ArrayRecord, weight: float, metrics: dict[str, Metric],
            unusable: Iterable[str] = ()) -> None:
        """Fold in one reply: its arrays (already checked: any floating precision), weight,
        metrics and the names of the metrics it sent unusable (``checks.Checked``).

        A metric whose form differs from the first reply's (a number here, a list there) is
        no longer summed; ``left_out`` says why.
        """
        if not weight > 0:
            raise ValueError(f"weight={weight}: must be > 0")
        self.total += weight
        self.count += 1
        for key, array in arrays.items():
            term = weight * to_numpy(array).astype(np.float64)
            if key in self._arrays:
                self._arrays[key] += term
            else:
                self._arrays[key] = term
        for name in unusable:
            self._unusable.add(name)
            self._reported[name] = self._reported.get(name, 0) + 1
        for name, value in metrics.items():
            self._reported[name] = self._reported.get(name, 0) + 1
            kinds = self._kinds.setdefault(name, set())
            kinds.add(metric_kind(value))
            if len(kinds) == 1:  # a number or a list, as every reply before
                term = weight * np.asarray(value, dtype=np.float64)
                self._metrics[name] = (self._metrics[name] + term if name in self._metrics
                                       else term)

    def mean_arrays(self) -> ArrayRecord:
        """The weighted mean of every array, in float64 (``restore_dtypes`` casts it back)."""
        if not self.count:
            raise ValueError("no reply was added")
        return ArrayRecord(OrderedDict(
            (key, Array(np.array(value / self.total, order="C")))
            for key, value in self._arrays.items()))

    def mean_metrics(self) -> dict[str, float | list[float]]:
        """The weighted mean of each metric that can be averaged (lists element-wise)."""
        left_out = self.left_out()
        return {name: (value / self.total).tolist() for name, value in self._metrics.items()
                if name not in left_out}

    def left_out(self) -> dict[str, str]:
        """The metrics left out of ``mean_metrics``, and why (``checks.left_out_reason``)."""
        reasons = {name: left_out_reason(self.count, seen, name in self._unusable,
                                         self._kinds.get(name, set()))
                   for name, seen in self._reported.items()}
        return {name: why for name, why in sorted(reasons.items()) if why is not None}

    def mean_reply(self) -> RecordDict:
        """A reply's content holding the mean, weighted by all the examples: a mean-based
        strategy computes from it what it computes from the replies themselves."""
        total = int(self.total) if float(self.total).is_integer() else self.total
        return RecordDict({ARRAYS: self.mean_arrays(),
                           METRICS: MetricRecord({**self.mean_metrics(), NUM_EXAMPLES: total})})
