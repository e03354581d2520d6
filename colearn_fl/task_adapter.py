"""The one place a Flower run config and Context become a task's plain arguments.

Tasks are plain Lightning (``tasks.Task``): their factories take the task's own config
dataclass, a model name and an LR, or a ``tasks.shared.Site``. The apps speak Flower: a
``module_fn(run_config)``, a ``datamodule_fn(context)`` and a
``central_datamodule_fn(run_config)``. ``TaskAdapter`` turns one into the other.

A site's data is its node-config ``data-dir`` (a deployment site: all of its own files) or,
in simulation, its partition (node-config ``partition-id`` / ``num-partitions``) of the run
config's ``data-dir``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from flwr.app import Context
from pytorch_lightning.loggers import Logger

from colearn_fl.config import RunConfig, parse_section
from colearn_fl.node_config import node_partition
from tasks import Task, get_task, list_tasks
from tasks.registry import PROJECT_LR
from tasks.shared import Site

# The factories a ClientApp and a ServerApp take, in Flower's form (a user's own, or a task's).
ModuleFn = Callable[[dict[str, Any]], pl.LightningModule]  # run config -> the model
DataModuleFn = Callable[[Context], pl.LightningDataModule]  # a site's context -> its data
CentralDataFn = Callable[[dict[str, Any]], pl.LightningDataModule | None]  # the server's test
DefaultLrFn = Callable[[dict[str, Any]], float | str]  # the cycle's top for lr-max='default'
# A user's own Lightning logger: at a site, (run config, "site-<s>", "round-<r>-train") -> one
# per round's Trainer; at the server, (run config, "server", run folder name) -> one per run.
LoggerFn = Callable[[dict[str, Any], str, str], Logger]


def task_site(config: RunConfig, data_dir: str = "",
            partition: tuple[int, int] | None = None) -> Site:
    """A ``Site`` with the run config's data settings.

    Parameters
    ----------
    config : RunConfig
        The parsed run config (batch size, partitioning, seed, caps, workers).
    data_dir : str
        The directory to read; ``''`` = the task's default location (default: ``''``).
    partition : tuple[int, int] | None
        ``(partition-id, num-partitions)``; ``None`` = every file (default: None).
    """
    data = config.data
    return Site(data_dir=data_dir, partition=partition, batch_size=data.batch_size,
                partitioning=data.partitioning, dirichlet_alpha=data.dirichlet_alpha,
                seed=config.seed, max_samples=data.max_samples, num_workers=data.num_workers)


def context_site(context: Context, config: RunConfig) -> Site:
    """A site's data from its Flower context: its node-config ``data-dir`` (all of it), or
    its simulation partition of the run config's ``data-dir`` (``node_partition``)."""
    own_dir, partition = node_partition(context.node_config)
    if own_dir:
        return task_site(config, own_dir)
    return task_site(config, config.data.data_dir, partition)


def unknown_keys(run_config: Mapping[str, Any]) -> dict[str, str | None]:
    """Keys of ``run_config`` that neither colearn-fl nor any registered task defines, each
    with the closest key that is defined (or ``None``): likely typos, or a user app's own
    keys."""
    known = RunConfig.keys()
    for name in list_tasks():
        known |= {f.name.replace("_", "-") for f in dataclasses.fields(get_task(name).config)}
    return {key: next(iter(difflib.get_close_matches(key, sorted(known), n=1)), None)
            for key in run_config if key not in known}


def describe_unknown(unknown: Mapping[str, str | None]) -> str:
    """``'lr-mx' (did you mean 'lr-max'?), 'mine'``."""
    return ", ".join(f"{key!r}" + (f" (did you mean {near!r}?)" if near else "")
                     for key, near in unknown.items())


@dataclass(frozen=True)
class TaskAdapter:
    """A registered task's factories, in two forms: from a parsed ``RunConfig`` (what the apps
    call, having parsed the message's run config once) and in the Flower form a user's own
    factories have (``module_fn(run_config)``, ``datamodule_fn(context)``), which parse it.

    Parameters
    ----------
    task : Task
        The task (``tasks.get_task``).
    """

    task: Task

    @classmethod
    def named(cls, name: str) -> TaskAdapter:
        """The adapter of the task registered as ``name``."""
        return cls(get_task(name))

    @classmethod
    def of_run(cls, run: RunConfig) -> TaskAdapter:
        """The adapter of the task the run config's ``task`` key names."""
        return cls.named(run.task)

    def config(self, run: RunConfig) -> Any:
        """The task's own keys (``run.extra``), parsed, checked and resolved against the run's
        data-dir."""
        return self.task.resolve(parse_section(self.task.config, run.extra), run.data.data_dir)

    def lr(self, run: RunConfig) -> float | str:
        """The top of the LR cycle for ``lr-max='default'``: the task's number for the run's
        model and optimizer, or ``'auto'`` where it has none."""
        return self.task.default_lr(self.config(run), run.model)

    def module(self, run: RunConfig) -> pl.LightningModule:
        """The model the run config's ``model`` names, its optimizer starting at the cycle's
        top (the server's cycle sets the LR of every step in a round)."""
        top, _ = run.schedule.cycle(self.lr(run))
        return self.task.build_module(self.config(run), model=run.model,
                                      lr=top if isinstance(top, float) else PROJECT_LR)

    def datamodule(self, context: Context, run: RunConfig) -> pl.LightningDataModule:
        """A site's data: its node-config ``data-dir`` or its simulation partition."""
        return self.task.build_datamodule(self.config(run), context_site(context, run))

    def central_datamodule(self, run: RunConfig) -> pl.LightningDataModule | None:
        """The server's test data (all of the run config's ``data-dir``), or ``None``."""
        return self.task.build_central_datamodule(self.config(run),
                                                  task_site(run, run.data.data_dir))

    def site_datamodule(self, run: RunConfig,
                        partition: tuple[int, int] | None) -> pl.LightningDataModule:
        """Simulated site ``partition`` of the run config's data (``None``: all of it), as a
        simulated site would see it; for the non-federated comparison methods."""
        return self.task.build_datamodule(self.config(run),
                                          task_site(run, run.data.data_dir, partition))

    # The Flower form: what a user's own app passes to client_app / server_app.

    def module_fn(self, run_config: Mapping[str, Any]) -> pl.LightningModule:
        """``module`` from a raw run config (a ``ModuleFn``)."""
        return self.module(RunConfig.from_dict(run_config))

    def datamodule_fn(self, context: Context) -> pl.LightningDataModule:
        """``datamodule`` from a Flower context (a ``DataModuleFn``)."""
        return self.datamodule(context, RunConfig.from_dict(context.run_config))

    def central_datamodule_fn(self, run_config: Mapping[str, Any]
                              ) -> pl.LightningDataModule | None:
        """``central_datamodule`` from a raw run config (a ``CentralDataFn``)."""
        return self.central_datamodule(RunConfig.from_dict(run_config))

    def default_lr(self, run_config: Mapping[str, Any]) -> float | str:
        """``lr`` from a raw run config (a ``DefaultLrFn``)."""
        return self.lr(RunConfig.from_dict(run_config))

    @property
    def lr_source(self) -> str:
        """Where ``lr`` comes from, for the server's log."""
        return f"the {self.task.name} task's tuned bound for its model"

    def factories(self, run: RunConfig) -> RunFactories:
        """This run's factories in the Flower form, bound to ``run`` (parsed once): the apps
        call them with that same run config, so they do not parse it again."""
        def default_lr(_raw: Mapping[str, Any]) -> float | str:
            return self.lr(run)

        default_lr.source = self.lr_source  # type: ignore[attr-defined]
        return RunFactories(module_fn=lambda _raw: self.module(run),
                            datamodule_fn=lambda context: self.datamodule(context, run),
                            central_datamodule_fn=lambda _raw: self.central_datamodule(run),
                            default_lr=default_lr)


@dataclass(frozen=True)
class RunFactories:
    """The four Flower-form factories of one run (``TaskAdapter.factories``)."""

    module_fn: ModuleFn
    datamodule_fn: DataModuleFn
    central_datamodule_fn: CentralDataFn
    default_lr: DefaultLrFn
