"""Running statistics of normalisation layers: averaged, never optimised."""

from __future__ import annotations

from flwr.app import ArrayRecord, Message, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from strategies.checks import ARRAYS, METRICS
from strategies.wire import NUM_EXAMPLES

# Running statistics of normalisation layers (PyTorch's names): averaged, never optimised.
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


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
