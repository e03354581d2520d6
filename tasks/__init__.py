"""Task registry: a task bundles a model factory, a data factory and the metrics it reports.

``register_task`` refuses duplicates, ``list_tasks`` is sorted, and ``get_task`` names the
valid tasks when asked for an unknown one (torchvision/timm-style registry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from flwr.app import Context

from colearn_fl.errors import ConfigError


@dataclass(frozen=True)
class Task:
    """What the default apps need to run one kind of experiment.

    Parameters
    ----------
    name : str
        Registry name, the value of the ``task`` run-config key.
    module_fn : Callable[[Mapping[str, Any]], pl.LightningModule]
        Builds the model from the raw run config (``model`` key picks the architecture).
    datamodule_fn : Callable[[Context], pl.LightningDataModule]
        Builds a site's data from its context: its own ``data-dir`` (node config) or its
        simulation partition (``partition-id`` / ``num-partitions``).
    central_datamodule_fn : Callable[[Mapping[str, Any]], pl.LightningDataModule | None]
        Builds the server's test data (``test_dataloader``) from the run config, or ``None``.
    metrics : tuple[str, ...]
        Names of the metrics the module logs in ``validation_step`` / ``test_step``.
    models : Callable[[], list[str]]
        Lists the model names the ``model`` key accepts.
    config : type | None
        Frozen dataclass of the task's own run-config keys (parsed with
        ``colearn_fl.config.parse_section``); their defaults are in pyproject too
        (default: None).
    """

    name: str
    module_fn: Callable[[Mapping[str, Any]], pl.LightningModule]
    datamodule_fn: Callable[[Context], pl.LightningDataModule]
    central_datamodule_fn: Callable[[Mapping[str, Any]], pl.LightningDataModule | None]
    metrics: tuple[str, ...]
    models: Callable[[], list[str]]
    config: type | None = None


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to the registry; a second task with the same name is refused."""
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def list_tasks() -> list[str]:
    """Names of the registered tasks, sorted."""
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The task registered as ``name``; an unknown name lists the valid ones."""
    try:
        return _TASKS[name]
    except KeyError:
        raise ConfigError(
            f"task={name!r} is not known; use one of: {', '.join(list_tasks())} "
            "(e.g. --run-config \"task='image'\")."
        ) from None


# Importing a task module registers it.
from tasks import audioset, image, speech, toxic  # noqa: E402,F401
