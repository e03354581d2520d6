"""Task registry: a task bundles its config keys, model and data factories and its metrics.

Registration is lazy (name -> module): ``list_tasks`` knows every built-in task without
importing any, and ``get_task`` imports only the task asked for, so an image run never loads
the audio or text code (or h5py, or transformers). ``register_task`` refuses duplicates,
``list_tasks`` is sorted, and ``get_task`` names the valid tasks when asked for an unknown one
(torchvision/timm-style registry).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tasks.errors import ConfigError

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from tasks.shared import Site


def _unchanged(config: Any, data_dir: str) -> Any:
    return config


PROJECT_LR = 0.05  # lr-max measured for SGD with momentum on the small image CNNs


def _project_lr(config: Any, model: str) -> float | str:
    return PROJECT_LR


@dataclass(frozen=True)
class Task:
    """What the default apps (and any plain Lightning script) need to run one kind of task.

    Parameters
    ----------
    name : str
        Registry name, the value of the ``task`` run-config key.
    config : type
        Frozen dataclass of the task's own keys (kebab-case on the wire, snake_case fields,
        each with its default); its ``validate()`` names a bad key.
    build_module : Callable[..., pl.LightningModule]
        ``build_module(config, model, lr)``: the model named ``model`` (``''`` = the task's
        default), its optimizer starting at ``lr``.
    build_datamodule : Callable[[Any, Site], pl.LightningDataModule]
        One site's data; ``site.data_dir == ''`` means the task's default location.
    build_central_datamodule : Callable[[Any, Site], pl.LightningDataModule | None]
        The whole test split of ``site.data_dir`` (``test_dataloader``), or ``None`` when
        there is none there.
    metrics : tuple[str, ...]
        Names of the metrics the module logs in ``validation_step`` / ``test_step``.
    models : Callable[[], list[str]]
        Lists the model names ``build_module`` accepts.
    resolve : Callable[[Any, str], Any]
        ``resolve(config, data_dir)``: the config with what the run's data directory decides
        filled in (e.g. the image data set and class count), so that every site and the server
        build the same network (default: the config unchanged).
    default_lr : Callable[[Any, str], float | str]
        ``default_lr(config, model)``: the top of the LR cycle when the run leaves ``lr-max``
        at ``'default'``: a number measured for that model and optimizer, or ``'auto'`` (the
        federated LR range test) where none was measured (default: ``PROJECT_LR`` for every
        model).
    """

    name: str
    config: type
    build_module: Callable[..., pl.LightningModule]
    build_datamodule: Callable[[Any, Site], pl.LightningDataModule]
    build_central_datamodule: Callable[[Any, Site], pl.LightningDataModule | None]
    metrics: tuple[str, ...]
    models: Callable[[], list[str]]
    resolve: Callable[[Any, str], Any] = _unchanged
    default_lr: Callable[[Any, str], float | str] = _project_lr


# Built-in tasks: importing the module registers the task.
_BUILT_IN = {name: f"tasks.{name}" for name in ("audioset", "image", "speech", "toxic")}
_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to the registry; a second task with the same name is refused."""
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def list_tasks() -> list[str]:
    """Names of the built-in and registered tasks, sorted (imports none of them)."""
    return sorted({*_BUILT_IN, *_TASKS})


def get_task(name: str) -> Task:
    """The task registered as ``name`` (imported on first use); an unknown name lists the
    valid ones."""
    if name not in _TASKS and name in _BUILT_IN:
        importlib.import_module(_BUILT_IN[name])
    try:
        return _TASKS[name]
    except KeyError:
        raise ConfigError(
            f"task={name!r} is not known; use one of: {', '.join(list_tasks())} "
            "(e.g. --run-config \"task='image'\")."
        ) from None
