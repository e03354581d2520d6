"""Central evaluation: the global model on the server's own test split, every round."""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from logging import WARNING
from typing import Any

import pytorch_lightning as pl
from flwr.supercore import log

from colearn_fl.task_adapter import CentralDataFn
from colearn_fl.trainer import make_trainer

CentralEval = Callable[[pl.LightningModule], dict[str, float]]


def central_evaluator(datamodule_fn: CentralDataFn | None, raw: dict[str, Any],
                      precision: str = "32-true") -> CentralEval | None:
    """Set up the server's test data once; return a function that evaluates a module on it
    (in the sites' ``precision``), or ``None`` when ``datamodule_fn`` gives no data."""
    datamodule = datamodule_fn(raw) if datamodule_fn else None
    if datamodule is None:
        log(WARNING, "[colearn] the server has no test data: central evaluation is skipped "
            "(only the sites' federated metrics are recorded)")
        return None
    datamodule.prepare_data()
    datamodule.setup("test")
    loader = datamodule.test_dataloader()

    def evaluate(module: pl.LightningModule) -> dict[str, float]:
        trainer = make_trainer(precision, [])
        results = trainer.test(module, dataloaders=loader, verbose=False)
        return {k: float(v) for k, v in (results[0] if results else {}).items()}

    return evaluate


def start_central_eval(datamodule_fn: CentralDataFn | None, raw: dict[str, Any],
                       precision: str, module: pl.LightningModule | None
                       ) -> Future[tuple[CentralEval | None, dict[str, float] | None]]:
    """Set up the central evaluation in a thread, and evaluate ``module`` (the initial
    model; ``None``: a resumed run, nothing to evaluate) with it, while the sites check their
    data: neither waits for the other before round 1.

    The future gives ``(evaluate, initial metrics)``; an error in the server's test data is
    raised by ``result()``. The plotting library is imported there too, for round 0's plot.
    """

    def work() -> tuple[CentralEval | None, dict[str, float] | None]:
        evaluate = central_evaluator(datamodule_fn, raw, precision)
        initial = evaluate(copy.deepcopy(module)) if evaluate and module is not None else None
        import matplotlib.pyplot  # noqa: F401  (round 0 draws curves.png)

        return evaluate, initial

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="central-eval")
    future = pool.submit(work)
    pool.shutdown(wait=False)  # the work goes on; nothing else is queued
    return future
