"""The comparison's two non-federated methods: vanilla (pooled data) and ensemble (sites alone).

Both use the task's own model and data factories and the same sites (partitions, seed) as the
federated runs, so every method sees the same data; budgets are counted in sample-epochs
(docs/protocol.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch

from colearn_fl.config import AUTO, LR_FIND_RANGE, RunConfig
from colearn_fl.errors import DataError
from colearn_fl.site.callbacks.lr_cycle import LRCycle
from colearn_fl.site.lr_range import range_test
from colearn_fl.task_adapter import TaskAdapter
from colearn_fl.trainer import make_trainer
from strategies.lr_range import aggregate_suggestions
from strategies.wire import LR_DIVERGED, LR_SUGGESTED


@dataclass
class RunResult:
    """Final test metrics, the curve (sample-epochs, accuracy) and the wall time of a run."""

    accuracy: float
    curve: list[tuple[int, float]] = field(default_factory=list)
    wall_s: float = 0.0
    sample_epochs: int = 0


def vanilla(task: TaskAdapter, config: RunConfig, epochs: int) -> RunResult:
    """Centralized training on the pooled sites' data, one LR cycle stretched over the run.

    The test split is evaluated after every epoch, for the accuracy-vs-budget curve.
    """
    torch.manual_seed(config.seed)
    module = task.module(config)
    data = task.site_datamodule(config, partition=None)
    test = _test_loader(task, config)
    curve = _EpochCurve(test)
    start = time.monotonic()
    cycle = _cycle(task, config, module, data)
    _trainer(epochs, [cycle, curve], config).fit(module, datamodule=data)
    wall = time.monotonic() - start
    size = curve.examples
    return RunResult(accuracy=curve.points[-1], wall_s=wall, sample_epochs=size * epochs,
                        curve=[(size * (e + 1), acc) for e, acc in enumerate(curve.points)])


def ensemble(task: TaskAdapter, config: RunConfig, sites: int, epochs: int) -> RunResult:
    """Each site trains alone for ``epochs``; their test softmax outputs are averaged."""
    test = _test_loader(task, config)
    probabilities: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    budget, start = 0, time.monotonic()
    for site in range(sites):
        torch.manual_seed(config.seed + site)
        module = task.module(config)
        data = task.site_datamodule(config, partition=(site, sites))
        curve = _EpochCurve(None)
        cycle = _cycle(task, config, module, data)
        _trainer(epochs, [cycle, curve], config).fit(module, datamodule=data)
        budget += curve.examples * epochs
        site_probs, labels = _softmax_outputs(module, test)
        probabilities = site_probs if probabilities is None else probabilities + site_probs
    assert probabilities is not None and labels is not None
    accuracy = float((probabilities.argmax(1) == labels).float().mean())
    return RunResult(accuracy=accuracy, wall_s=time.monotonic() - start,
                        sample_epochs=budget, curve=[(budget, accuracy)])


class _EpochCurve(pl.Callback):
    """Counts training examples per epoch and (optionally) test accuracy after each epoch."""

    def __init__(self, test: torch.utils.data.DataLoader | None) -> None:
        self.test, self.points, self.examples, self._seen = test, [], 0, 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seen = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._seen += len(batch[0])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.examples = self._seen
        if self.test is not None:
            probs, labels = _softmax_outputs(pl_module, self.test)
            self.points.append(float((probs.argmax(1) == labels).float().mean()))
            pl_module.train()


def _softmax_outputs(module: pl.LightningModule,
                     loader: torch.utils.data.DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax outputs and labels over an (inputs, labels) loader."""
    module.eval()
    outputs, labels = [], []
    with torch.no_grad():
        for x, y in loader:
            outputs.append(torch.softmax(module(x.to(module.device)), dim=1).cpu())
            labels.append(y)
    return torch.cat(outputs), torch.cat(labels)


def _test_loader(task: TaskAdapter, config: RunConfig) -> torch.utils.data.DataLoader:
    data = task.central_datamodule(config)
    if data is None:
        raise DataError(f"task {task.task.name!r} has no test split in data-dir: the comparison "
                        "evaluates every method on it; point data-dir at a copy of the data set "
                        "with its test split (docs/tasks/).")
    data.prepare_data()
    data.setup("test")
    return data.test_dataloader()


def _cycle(task: TaskAdapter, config: RunConfig, module: pl.LightningModule,
           data: pl.LightningDataModule) -> LRCycle:
    """The run's LR cycle, stretched over all of a method's training; ``lr-max='auto'`` runs
    the LR range test on this method's own data, with the federated test's rule."""
    top, bottom = config.schedule.cycle(task.lr(config))
    if top == AUTO:
        training = config.training
        suggested, diverged = range_test(module, data, *LR_FIND_RANGE, training.lr_find_steps,
                                         training.precision)
        top = aggregate_suggestions([{LR_SUGGESTED: suggested, LR_DIVERGED: diverged}])[
            "lr-max"]
        bottom = top * config.schedule.lr_min_ratio if bottom is None else bottom
    return LRCycle(config.schedule.lr_schedule, float(top), float(bottom))


def _trainer(epochs: int, callbacks: list[pl.Callback], config: RunConfig) -> pl.Trainer:
    return make_trainer(config.training.precision, callbacks, epochs)
