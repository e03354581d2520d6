"""The federated LR range test behind ``lr-max='auto'`` (Flower only).

Before round 1 the server sends the initial global model to the sites in a
``query.lr_find`` message; each site runs an LR range test on its own data (Smith, "Cyclical
Learning Rates for Training Neural Networks", WACV 2017: the CLR paper's own recipe for the
cycle's bounds) and replies with its suggested LR and the LR at which its loss diverged. The
server takes a robust aggregate: the median suggestion, capped a factor ``DIVERGENCE_MARGIN``
below the smallest divergence LR any site saw.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, RecordDict
from flwr.serverapp import Grid

from strategies.checks import metrics_of
from strategies.errors import ScheduleError
from strategies.query import query_sites
from strategies.wire import (
    LR_DIVERGED,
    LR_FIND,
    LR_FIND_MAX,
    LR_FIND_MIN,
    LR_FIND_STEPS,
    LR_SUGGESTED,
    NUM_EXAMPLES,
    SERVER_ROUND,
)

DIVERGENCE_MARGIN = 4.0  # the chosen LR stays at least this factor below any divergence LR


def aggregate_suggestions(sites: Sequence[dict[str, float]]) -> dict[str, float]:
    """``lr-max`` from the sites' answers: the median of ``lr-suggested``, capped at the
    smallest ``lr-diverged`` / ``DIVERGENCE_MARGIN``; with both inputs, for the record."""
    if not sites:
        raise ScheduleError("lr-max='auto': no site answered the LR range test")
    median = float(statistics.median(s[LR_SUGGESTED] for s in sites))
    cap = min(s[LR_DIVERGED] for s in sites) / DIVERGENCE_MARGIN
    return {"lr-max": min(median, cap), "median-suggestion": median, "divergence-cap": cap}


def federated_range_test(grid: Grid, model: ArrayRecord, nodes: Sequence[int], *,
                         min_lr: float, max_lr: float, steps: int,
                         timeout: float) -> dict[str, Any]:
    """Run the LR range test at ``nodes`` from ``model`` and aggregate their answers.

    Returns the aggregate (``aggregate_suggestions``) with each site's answer under
    ``sites``. Raises ``ScheduleError`` naming the sites' reasons when none answered.
    """
    config = ConfigRecord({SERVER_ROUND: 0, LR_FIND_MIN: min_lr, LR_FIND_MAX: max_lr,
                           LR_FIND_STEPS: steps})
    sites, problems = [], []
    for node, reply, error in query_sites(grid, LR_FIND, RecordDict(
            {"arrays": model, "config": config}), nodes, timeout):
        if error is not None:
            problems.append(f"node {node}: {error}")
            continue
        values = metrics_of(reply.content) if reply.content.metric_records else {}
        if not all(isinstance(values.get(k), (int, float)) and values[k] > 0
                   for k in (LR_SUGGESTED, LR_DIVERGED)):
            problems.append(f"node {node}: no positive {LR_SUGGESTED} / {LR_DIVERGED}")
            continue
        sites.append({"node-id": node, LR_SUGGESTED: float(values[LR_SUGGESTED]),
                      LR_DIVERGED: float(values[LR_DIVERGED]),
                      NUM_EXAMPLES: values.get(NUM_EXAMPLES, 0)})
    if not sites:
        raise ScheduleError(
            f"lr-max='auto': none of the {len(nodes)} site(s) completed the LR range test "
            f"({'; '.join(problems) or 'no replies before round-timeout'}). Set lr-max to a "
            "number, or fix the sites.")
    return {**aggregate_suggestions(sites), "sites": sites, "problems": problems}
