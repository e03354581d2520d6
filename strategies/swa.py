"""Server-side SWA over cycle ends: a running average of the global models at the end of each
co-learning round (every round ends a cycle at its low LR), and the sites' refresh of its
normalisation statistics.

Stochastic Weight Averaging (Izmailov et al., UAI 2018, https://arxiv.org/abs/1803.05407)
averages the weights a cyclical schedule reaches at the bottom of its cycles; the average sits
in a flatter, better-generalising region than any one of them. Averaging weights does not give
the running statistics (BatchNorm's ``running_mean`` / ``running_var``) of the averaged model,
so they are recomputed by a forward pass over training data: here each site computes them over
its own data and the server pools them (``pool_statistics``); no data leaves a site.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from flwr.serverapp import Grid

from strategies.arrays import checked_arrays
from strategies.checks import check_reply
from strategies.query import query_sites
from strategies.running_stats import STATISTICS
from strategies.transport import to_numpy
from strategies.wire import BN_REFRESH, SERVER_ROUND

MEAN, VAR, COUNT = STATISTICS  # running_mean, running_var, num_batches_tracked


class SwaAverage:
    """The running mean of the global models at the end of rounds ``start``, ``start + 1``...

    Floating arrays are averaged in float64 and handed back in the global model's dtype;
    integer arrays (BatchNorm's ``num_batches_tracked``) are taken from the newest model, since
    an average of step counters means nothing. Normalisation statistics the sites recomputed
    for the current average (``replace``) are handed back in place of the averaged ones until
    the next model comes in; then, until they are recomputed again, the average holds the
    models' averaged statistics (never a blend of an earlier refresh and the models').

    Parameters
    ----------
    start : int
        First round whose model enters the average (``swa-start``); 0 turns SWA off.
    """

    def __init__(self, start: int) -> None:
        if start < 0:
            raise ValueError(f"swa-start={start}: must be >= 0 (0 turns SWA off).")
        self.start = start
        self.count = 0  # models averaged so far
        self._mean: dict[str, np.ndarray] = {}  # float64 (floating) or the newest (integer)
        self._dtypes: dict[str, np.dtype] = {}
        self._refreshed: dict[str, np.ndarray] = {}  # statistics recomputed for this average

    def covers(self, server_round: int) -> bool:
        """Whether the model of ``server_round`` enters the average."""
        return self.start > 0 and server_round >= self.start

    def add(self, arrays: ArrayRecord) -> None:
        """Fold one global model into the average (``mean += (x - mean) / count``); statistics
        recomputed for the previous average no longer hold."""
        self.count += 1
        self._refreshed = {}
        for key, array in arrays.items():
            values = to_numpy(array)
            self._dtypes[key] = values.dtype
            if not np.issubdtype(values.dtype, np.inexact) or key not in self._mean:
                self._mean[key] = values.astype(np.float64) if np.issubdtype(
                    values.dtype, np.inexact) else values.copy()
            else:
                self._mean[key] += (values.astype(np.float64) - self._mean[key]) / self.count

    def arrays(self) -> ArrayRecord | None:
        """The averaged model in the global model's dtypes, or ``None`` before the first."""
        if not self.count:
            return None
        return ArrayRecord(OrderedDict(
            (key, Array(np.array(self._refreshed.get(key, value), dtype=self._dtypes[key],
                                 order="C")))
            for key, value in self._mean.items()))

    def replace(self, statistics: ArrayRecord) -> None:
        """Hand back ``statistics`` (recomputed for the current average) in place of its
        averaged ones, until the next model comes in."""
        for key, array in statistics.items():
            values = to_numpy(array)
            self._refreshed[key] = values.astype(np.float64) if np.issubdtype(
                values.dtype, np.inexact) else values.copy()

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps so a resumed run continues the same average."""
        return {"start": self.start, "count": self.count,
                "mean": {k: v.copy() for k, v in self._mean.items()},
                "refreshed": {k: v.copy() for k, v in self._refreshed.items()},
                "dtypes": {k: str(v) for k, v in self._dtypes.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the average a checkpoint kept (``start`` stays the run config's; a
        checkpoint from before ``refreshed`` was kept holds the refreshed statistics in
        ``mean``)."""
        self.count = int(state["count"])
        self._mean = {k: np.array(v) for k, v in state["mean"].items()}
        self._refreshed = {k: np.array(v) for k, v in state.get("refreshed", {}).items()}
        self._dtypes = {k: np.dtype(v) for k, v in state["dtypes"].items()}


def statistics_keys(arrays: ArrayRecord) -> list[str]:
    """The running statistics of ``arrays`` (BatchNorm-style names), in order."""
    return [key for key in arrays if key.endswith(STATISTICS)]


def pool_statistics(replies: Sequence[tuple[ArrayRecord, float]],
                    reference: ArrayRecord | None = None) -> ArrayRecord:
    """Pool per-site normalisation statistics into those of all the sites' data together.

    Each reply holds, per normalisation layer, the mean and the (population) variance of the
    layer's input over that site's data, and the site's number of examples ``n_i``. With
    ``N = sum n_i`` the pooled moments are exact (law of total variance)::

        mean = sum(n_i * mean_i) / N
        var  = sum(n_i * (var_i + mean_i**2)) / N - mean**2

    computed in float64 and handed back in the reference's dtypes (the global model's: a
    float16 reply's means of +-300 pool to a variance of 90100, beyond float16);
    ``num_batches_tracked`` is the sites' sum. Keys that are not running statistics are
    ignored.

    Parameters
    ----------
    replies : Sequence[tuple[ArrayRecord, float]]
        Each site's statistics (checked: ``checks.check_reply``) and its examples.
    reference : ArrayRecord | None
        The model whose dtypes the result takes; ``None``: the first reply's.
    """
    if not replies:
        raise ValueError("no statistics to pool")
    weights = [float(weight) for _, weight in replies]
    total = sum(weights)
    pooled: OrderedDict[str, Array] = OrderedDict()
    for key in statistics_keys(replies[0][0]):
        values = [to_numpy(record[key]) for record, _ in replies]
        if key.endswith(MEAN):
            result = _weighted([v.astype(np.float64) for v in values], weights, total)
        elif key.endswith(VAR):
            layer_means = [to_numpy(record[key[: -len(VAR)] + MEAN]).astype(np.float64)
                           for record, _ in replies]
            second = _weighted([v.astype(np.float64) + m ** 2
                                for v, m in zip(values, layer_means, strict=True)],
                               weights, total)
            result = np.maximum(second - _weighted(layer_means, weights, total) ** 2, 0.0)
        else:
            result = sum(values)
        dtype = values[0].dtype if reference is None else np.dtype(reference[key].dtype)
        with np.errstate(over="ignore"):  # beyond the dtype: refresh_statistics' check says so
            pooled[key] = Array(np.array(result, dtype=dtype, order="C"))
    return ArrayRecord(pooled)


def _weighted(values: list[np.ndarray], weights: list[float], total: float) -> np.ndarray:
    return sum(w * v for w, v in zip(weights, values, strict=True)) / total


def refresh_statistics(grid: Grid, model: ArrayRecord, sent: ArrayRecord,
                       node_ids: Sequence[int], server_round: int,
                       timeout: float) -> tuple[ArrayRecord | None, list[str]]:
    """Ask ``node_ids`` to recompute ``model``'s normalisation statistics over their training
    data (a forward-only ``query.bn_refresh`` round) and pool their answers.

    Parameters
    ----------
    grid : Grid
        The training rounds' grid.
    model : ArrayRecord
        The SWA model in the global model's dtypes: each answer must hold exactly its
        statistics keys and is decoded into its dtypes and checked like a training reply
        (``checks.check_reply``: shapes, finite values, a positive ``num-examples``).
    sent : ArrayRecord
        The same model as it travels (``transport-dtype``).
    node_ids, server_round, timeout
        Whom to ask, the round the query belongs to, and how long to wait.

    Returns
    -------
    tuple[ArrayRecord | None, list[str]]
        The pooled statistics (``None`` when no site answered usably) and, per site that did
        not, why.
    """
    reference = ArrayRecord(OrderedDict((k, model[k]) for k in statistics_keys(model)))
    content = RecordDict({"arrays": sent, "config": ConfigRecord({SERVER_ROUND: server_round})})
    usable, problems = [], []
    for node, reply, error in query_sites(grid, BN_REFRESH, content, node_ids, timeout):
        checked, problem = (None, error) if error is not None else check_reply(
            reply.content, reference)
        if checked is None:
            problems.append(f"node {node}: {problem}")
        else:
            usable.append((checked.arrays, checked.weight))
    if not usable:
        return None, problems
    pooled = pool_statistics(usable, reference)
    problem = checked_arrays(reference, pooled)[1]
    return (None, [*problems, f"the pooled statistics: {problem}"]) if problem else (
        pooled, problems)
