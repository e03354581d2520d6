"""Running statistics of normalisation layers, and every non-floating buffer: averaged, never
optimised."""

from __future__ import annotations

from flwr.app import ArrayRecord, Message, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from strategies.checks import ARRAYS, METRICS
from strategies.transport import is_floating
from strategies.wire import NUM_EXAMPLES

# Running statistics of normalisation layers (PyTorch's names): averaged, never optimised.
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def averaged_keys(reference: ArrayRecord) -> list[str]:
    """The keys of ``reference`` that are never optimised: running statistics (by name,
    ``STATISTICS``) and every array that is not floating-point (step counters, masks)."""
    return [key for key, array in reference.items()
            if key.endswith(STATISTICS) or not is_floating(array.dtype)]


def average_statistics(replies: list[Message], reference: ArrayRecord) -> ArrayRecord:
    """The sites' weighted average of every running statistic and non-floating array.

    Server optimizers (FedAvgM, FedAdam, ...) step every array they get, but a BatchNorm
    ``running_var`` is a statistic, not a parameter: a momentum step can drive it negative and
    the model's evaluation to NaN (measured: FedAvgM, momentum 0.9, round 2). An integer
    buffer fares no better: a step counter the sites advanced to 35, 40 and 45 in three rounds
    read 78 after them under FedAvgM (momentum 0.9), and 0 under FedAdam. Those arrays
    (``averaged_keys`` of the global model ``reference``) are averaged as FedAvg would, by
    ``num-examples``, whatever the optimizer; ``with_averages`` puts them into the
    optimizer's result. Call it before the wrapped strategy aggregates: some (FedMedian)
    take the arrays out of the replies they read.

    Parameters
    ----------
    replies : list[Message]
        The accepted replies, evened out (``checks.even_out``) or the one streamed mean.
    reference : ArrayRecord
        The global model.
    """
    keys = averaged_keys(reference)
    if not keys or not replies:
        return ArrayRecord()
    records = [RecordDict({ARRAYS: ArrayRecord({k: msg.content[ARRAYS][k] for k in keys}),
                           METRICS: msg.content[METRICS]}) for msg in replies]
    return aggregate_arrayrecords(records, NUM_EXAMPLES)


def with_averages(arrays: ArrayRecord, averages: ArrayRecord) -> ArrayRecord:
    """``arrays`` with the arrays ``averages`` holds (``average_statistics``) in their place."""
    if not len(averages):
        return arrays
    return ArrayRecord({k: averages[k] if k in averages else a for k, a in arrays.items()})
